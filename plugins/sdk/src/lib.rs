//! Rust SDK for portfolio-operator plugins.
//!
//! A plugin implements [`Generator`] or [`MigrationStrategy`] and exports it
//! with [`export_generator!`] or [`export_migration_strategy!`]. The helpers in
//! [`input`] turn the host's JSON text into typed values with errors that name
//! the offending field, and [`log`] writes to the operator's log.
//!
//! Only the world a plugin exports ends up in its component: the bindings of
//! the other world are never linked.

#![warn(missing_docs)]

pub mod alloc;
pub mod input;
pub mod log;
pub mod output;

/// Bindings of the `generator` world (documented in `wit/portfolio.wit`).
#[allow(missing_docs)]
pub mod generator {
    wit_bindgen::generate!({
        world: "generator",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_generator",
        default_bindings_module: "portfolio_plugin_sdk::generator",
    });
}

/// Bindings of the `migration-strategy` world; shares the types of [`generator`].
#[allow(missing_docs)]
pub mod migration {
    wit_bindgen::generate!({
        world: "migration-strategy",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_migration_strategy",
        default_bindings_module: "portfolio_plugin_sdk::migration",
        with: {
            "portfolio:plugin/types@0.1.0": crate::generator::portfolio::plugin::types,
            "portfolio:plugin/host@0.1.0": crate::generator::portfolio::plugin::host,
        },
    });
}

pub use generator::exports::portfolio::plugin::generation::{GenerateOutput, Guest as Generator};
pub use generator::portfolio::plugin::types::{
    Condition, ConditionStatus, InvalidInput, KindRef, LogLevel, ObjectMeta, PluginError,
    PluginInfo, ReconcileInput,
};
pub use migration::exports::portfolio::plugin::migration::{
    Guest as MigrationStrategy, InterpretInput, PlanOutput, PlanStep, StepFailure, StepOutcome,
    StepPhase, StepSuccess,
};

/// Export a [`Generator`] implementation as this component's `generator` world.
#[macro_export]
macro_rules! export_generator {
    ($($rest:tt)*) => {
        #[cfg(target_arch = "wasm32")]
        $crate::generator::export_generator!($($rest)*);
    };
}

/// Export a [`MigrationStrategy`] implementation as this component's `migration-strategy` world.
#[macro_export]
macro_rules! export_migration_strategy {
    ($($rest:tt)*) => {
        #[cfg(target_arch = "wasm32")]
        $crate::migration::export_migration_strategy!($($rest)*);
    };
}

impl PluginError {
    /// The user's fault: `field` (a JSON path such as `spec.ports[0].name`) is wrong.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        PluginError::InvalidSpec(InvalidInput {
            field: field.into(),
            message: message.into(),
        })
    }

    /// The plugin's fault; the host retries later.
    pub fn internal(message: impl Into<String>) -> Self {
        PluginError::Internal(message.into())
    }
}

impl KindRef {
    /// A kind the plugin may emit, e.g. `KindRef::new("apps/v1", "Deployment")`.
    pub fn new(api_version: &str, kind: &str) -> Self {
        KindRef {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        }
    }
}
