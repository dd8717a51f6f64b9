//! Rust bindings of the WIT contract in `wit/`, generated at compile time.

/// Host-side bindings of the `generator` world, and of the `types` and
/// `host` interfaces both worlds share.
pub mod generator {
    wasmtime::component::bindgen!({
        world: "generator",
        path: "../wit",
    });
}

/// The `migration-strategy` world; shares the types and host interface of [`generator`].
pub mod migration {
    wasmtime::component::bindgen!({
        world: "migration-strategy",
        path: "../wit",
        with: {
            "portfolio:plugin/types": super::generator::portfolio::plugin::types,
            "portfolio:plugin/host": super::generator::portfolio::plugin::host,
        },
    });
}

pub use generator::portfolio::plugin::types;
