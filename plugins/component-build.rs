//! Link options of the built-in components, shared by their packages
//! (`build = "../component-build.rs"`): a build script is the only place
//! where a package sets link arguments for itself alone, and a
//! `rustflags` entry in `.cargo/config.toml` would be replaced by the
//! `CARGO_ENCODED_RUSTFLAGS` that the operator's build passes.

fn main() {
    // 2 MiB of initial memory: the 1 MiB stack, static data, and room for a
    // call's heap, so that a call never grows memory (growing makes the host
    // change page protections on every call). It stays within what the host
    // keeps resident between calls; untouched pages cost nothing.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo::rustc-link-arg=--initial-memory=2097152");
    }
}
