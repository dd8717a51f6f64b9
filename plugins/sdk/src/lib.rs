//! Rust SDK for portfolio-operator plugins.
//!
//! A plugin implements [`Generator`] or [`MigrationStrategy`] and exports it
//! with [`export_generator!`] or [`export_migration_strategy!`]. The helpers in
//! [`input`] turn the host's JSON text into typed values with errors that name
//! the offending field, and [`log`] writes to the operator's log.
//!
//! Only the world a plugin exports ends up in its component: the bindings of
//! the other world are never linked.
//!
//! The SDK needs only `alloc`, so a plugin can be `#![no_std]`: it then
//! imports nothing from WASI at all and is smaller (the built-ins are). A
//! `no_std` plugin calls [`no_std_runtime!`] once to get an allocator and a
//! panic handler that logs the panic message before the call traps.

#![cfg_attr(not(test), no_std)]
extern crate alloc;

pub mod input;
pub mod log;
pub mod memory;
pub mod output;
#[doc(hidden)]
pub mod runtime;

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

/// Define what a `#![no_std]` plugin needs from a runtime: the bump
/// allocator (every call gets a fresh instance, so nothing is worth freeing)
/// and a panic handler that writes the panic message to the operator's log
/// before the call traps. Call it once, at the top level of the plugin crate.
#[macro_export]
macro_rules! no_std_runtime {
    () => {
        #[cfg(all(target_arch = "wasm32", not(test)))]
        #[global_allocator]
        static PORTFOLIO_PLUGIN_ALLOCATOR: $crate::memory::BumpAllocator =
            $crate::memory::BumpAllocator::new();

        #[cfg(all(target_arch = "wasm32", not(test)))]
        #[panic_handler]
        fn portfolio_plugin_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::runtime::panicked(info)
        }

        // The canonical ABI allocates arguments through this export; with
        // `std` the C library provides it.
        #[cfg(all(target_arch = "wasm32", not(test)))]
        #[unsafe(no_mangle)]
        unsafe extern "C" fn cabi_realloc(
            old: *mut u8,
            old_len: usize,
            align: usize,
            new_len: usize,
        ) -> *mut u8 {
            // SAFETY: the host passes a block it got from this function.
            unsafe { $crate::runtime::cabi_realloc(old, old_len, align, new_len) }
        }

        // Without the C library, `core` still calls `memcmp` to compare slices.
        #[cfg(all(target_arch = "wasm32", not(test)))]
        #[unsafe(no_mangle)]
        unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, len: usize) -> i32 {
            // SAFETY: the compiler calls this with `len` readable bytes at both.
            unsafe { $crate::runtime::memcmp(a, b, len) }
        }
    };
}

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

use alloc::borrow::ToOwned;
use alloc::string::String;

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
