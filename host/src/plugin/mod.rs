//! The sandboxed WebAssembly plugin host.
//!
//! One [`Runtime`] per process owns the wasmtime engine. [`Runtime::load`]
//! compiles a component once per content digest, checks it against the
//! expected world and asks it to describe itself; the resulting [`Plugin`] is
//! then called any number of times, each call in a fresh store and instance
//! with its own [`Limits`]. Every failure is a [`PluginError`].

mod bindings;
mod cache;
mod call;
mod error;
mod limits;
mod load;
mod log_bridge;
mod output;
mod runtime;
mod strategy;

pub use cache::{ArtifactCache, CacheError};
pub use call::{CallContext, GenerateInput};
pub use error::{CallFailure, LoadError, PluginError};
pub use limits::{Limits, LimitsError, LimitsOverride};
pub use load::{Digest, KindRef, LoadOptions, Plugin, PluginId, PluginInfo, World};
pub use output::{ChildObject, GeneratedOutput, ObjectKey, PluginCondition, PluginConditionStatus};
pub use runtime::{Runtime, RuntimeConfig, RuntimeError, RuntimeStats};
pub use strategy::{Plan, PlanStep, StepOutcome, StepPhase};

/// Version of the WIT package this host speaks (`portfolio:plugin@…`).
pub const WIT_VERSION: &str = "0.1.0";

pub(crate) use load::is_dns_label;
#[cfg(test)]
pub(crate) use output::checked_objects;
pub(crate) use output::is_dns_subdomain;
