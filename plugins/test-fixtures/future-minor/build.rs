//! Derives a "future" contract from wit/: version 0.1.1, one function more.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let source = manifest.join("../../../wit/portfolio.wit");
    println!("cargo::rerun-if-changed={}", source.display());
    let text = match std::fs::read_to_string(&source) {
        Ok(text) => text,
        Err(error) => {
            println!("cargo::error=cannot read {}: {error}", source.display());
            return;
        }
    };
    let future = text
        .replace("package portfolio:plugin@0.1.0;", "package portfolio:plugin@0.1.1;")
        .replace(
            "interface generation {\n",
            "interface generation {\n    /// Added in 0.1.1: a liveness probe for the plugin.\n    health: func() -> string;\n\n",
        );
    if future == text || !future.contains("health: func()") {
        println!("cargo::error=wit/portfolio.wit changed shape; update the future-minor fixture");
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("wit");
    let written = std::fs::create_dir_all(&out)
        .and_then(|()| std::fs::write(out.join("portfolio.wit"), future));
    if let Err(error) = written {
        println!("cargo::error=cannot write the future contract: {error}");
    }
}
