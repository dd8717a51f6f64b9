//! The sandboxed WebAssembly plugin host.
//!
//! One [`Runtime`] per process owns the wasmtime engine. [`Runtime::load`]
//! compiles a component once per content digest, checks it against the
//! expected world and asks it to describe itself; the resulting [`Plugin`] is
//! then called any number of times, each call in a fresh store and instance
//! with its own [`Limits`]. Every failure is a [`PluginError`].
//!
//! The modules depend on each other one way, from the bottom up: `domain`
//! (what a plugin is: world, digest, id, info), `limits`, `error`, `output`
//! (checking what a plugin returned); `sandbox` (one call in a fresh
//! instance); `load` (bytes to a checked [`Plugin`]); `call` and `strategy`
//! (the functions of the two worlds); `cache` and `runtime` (the engine, and
//! compiled components in memory and on disk).

mod bindings;
mod cache;
mod call;
mod domain;
mod error;
mod limits;
mod load;
mod log_bridge;
mod output;
mod runtime;
mod sandbox;
mod strategy;

pub use cache::{ArtifactCache, CacheError};
pub use call::GenerateInput;
pub(crate) use domain::feed_json;
pub use domain::{Digest, KindRef, PluginId, PluginInfo, WIT_VERSION, World};
pub use error::{CallFailure, LoadError, PluginError};
pub use limits::{Limits, LimitsError, LimitsOverride};
pub use load::{LoadOptions, Plugin};
pub use output::{ChildObject, GeneratedOutput, ObjectKey, PluginCondition, PluginConditionStatus};
pub use runtime::{Runtime, RuntimeConfig, RuntimeError, RuntimeStats};
pub use sandbox::CallContext;
pub use strategy::{Plan, PlanStep, StepOutcome, StepPhase};

pub use load::is_dns_label;
#[cfg(test)]
pub(crate) use output::checked_objects;
pub(crate) use output::is_dns_subdomain;
