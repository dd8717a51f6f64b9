//! The built-in plugins, compiled from `plugins/` by the build script and embedded in the binary.

/// One embedded component.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    /// File name it was built as, for messages.
    pub file: &'static str,
    /// The component.
    pub bytes: &'static [u8],
}

/// Every built-in plugin.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        file: "deployment_generator.wasm",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/deployment_generator.wasm")),
    },
    Builtin {
        file: "flyway.wasm",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/flyway.wasm")),
    },
    Builtin {
        file: "liquibase.wasm",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/liquibase.wasm")),
    },
];

/// The generator used when a `PortfolioApp` names none.
pub const DEFAULT_GENERATOR: &str = "deployment-generator";

/// Where the build put every component of `plugins/`, test fixtures included
/// (for tests outside this crate).
#[doc(hidden)]
pub const PLUGIN_BUILD_DIR: &str = env!("PORTFOLIO_PLUGIN_BUILD_DIR");
