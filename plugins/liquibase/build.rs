//! Link options of the component.

fn main() {
    // 2 MiB of initial memory: the 1 MiB stack, static data, and room for a
    // call's heap, so that a call never grows memory (growing makes the host
    // change page protections on every call). It stays within what the host
    // keeps resident between calls; untouched pages cost nothing.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo::rustc-link-arg=--initial-memory=2097152");
    }
}
