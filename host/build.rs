//! Builds the plugins workspace (`../plugins`) for wasm32-wasip2 and hands the
//! built-in components to the operator, which embeds them.
//!
//! The plugins get their own target directory (`<target>/wasm-plugins`), so
//! the nested cargo never waits on the lock of the outer build, and their
//! size-optimised release profile is used whatever profile the host is built
//! with. The only thing this needs is `rustup target add wasm32-wasip2`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Components embedded in the operator.
const BUILTINS: &[&str] = &["deployment_generator.wasm", "flyway.wasm", "liquibase.wasm"];

/// Packages of the plugins workspace to build: the built-ins, and the
/// components the tests load.
const PACKAGES: &[&str] = &[
    "deployment-generator",
    "flyway",
    "liquibase",
    "hostile",
    "future-minor",
];

/// Environment that cargo sets for this build script and that must not leak
/// into the nested build (it would retarget, re-flag or re-wrap it).
const CLEARED_PREFIXES: &[&str] = &[
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_BUILD_",
    "CARGO_TARGET_",
    "CARGO_PROFILE_",
    "CARGO_ENCODED_",
    "DEP_",
];
const CLEARED: &[&str] = &[
    "RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
    "NUM_JOBS",
    "RUSTC_LINKER",
    "CARGO_RUSTC_CURRENT_DIR",
    "__CARGO_FIX_PLZ",
];

fn main() {
    if let Err(message) = build() {
        // `cargo::error` shows the message without a backtrace and fails the build.
        for line in message.lines() {
            println!("cargo::error={line}");
        }
    }
}

fn build() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let root = manifest_dir
        .parent()
        .ok_or("the host crate has no parent directory")?
        .to_owned();
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);

    for watched in ["plugins", "wit", "api"] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }

    check_target()?;

    let target_dir = plugins_target_dir(&out_dir)?;
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(&plugins)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args(PACKAGES.iter().flat_map(|package| ["-p", package]))
        .arg("--target-dir")
        .arg(&target_dir);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if CLEARED.contains(&key) || CLEARED_PREFIXES.iter().any(|p| key.starts_with(p)) {
            command.env_remove(key);
        }
    }
    // Panic locations embed source paths; mapping them to fixed prefixes makes
    // a plugin's bytes, and so its digest, the same on every machine with the
    // same toolchain.
    let mut remaps = vec![format!("--remap-path-prefix={}=/portfolio", root.display())];
    if let Some(cargo_home) = cargo_home() {
        remaps.push(format!(
            "--remap-path-prefix={}=/cargo",
            cargo_home.display()
        ));
    }
    command.env("CARGO_ENCODED_RUSTFLAGS", remaps.join("\x1f"));
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo to build the plugins: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building the plugins in {} failed:\n{}",
            plugins.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }

    let built = target_dir.join("wasm32-wasip2").join("release");
    for file in BUILTINS {
        let from = built.join(file);
        std::fs::copy(&from, out_dir.join(file))
            .map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    }
    // Tests load the other components of the plugins workspace (hostile
    // fixtures among them) from here.
    println!(
        "cargo::rustc-env=PORTFOLIO_PLUGIN_BUILD_DIR={}",
        built.display()
    );
    Ok(())
}

/// Where cargo keeps downloaded crates' sources.
fn cargo_home() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}

/// `<target>/wasm-plugins`, next to the profile directories of the host build.
fn plugins_target_dir(out_dir: &Path) -> Result<PathBuf, String> {
    // OUT_DIR is <target>[/<triple>]/<profile>/build/<package>-<hash>/out.
    let build = out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .ok_or_else(|| format!("unexpected OUT_DIR layout: {}", out_dir.display()))?;
    let target = build
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected OUT_DIR layout: {}", out_dir.display()))?;
    Ok(target.join("wasm-plugins"))
}

/// Fail early, with the fix, when the WebAssembly target is not installed.
fn check_target() -> Result<(), String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .output()
        .map_err(|e| format!("cannot run {rustc}: {e}"))?;
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && !libdir.is_empty() && Path::new(&libdir).is_dir() {
        Ok(())
    } else {
        Err(
            "the wasm32-wasip2 target is not installed; run: rustup target add wasm32-wasip2"
                .into(),
        )
    }
}
