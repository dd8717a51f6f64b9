//! Shared helpers of the built-in migration strategies (`flyway`, `liquibase`).
//!
//! Everything here is plain Rust without WebAssembly bindings, so the
//! strategies' logic runs and is tested natively; each strategy's
//! `component.rs` maps these types onto the WIT ones.
//!
//! The conventions both strategies follow (and the host may rely on):
//!
//! - **Steps.** `plan` returns a plan-only step (key [`PLAN_KEY`]), then the
//!   apply step for `spec.phase` (unless `spec.dryRun`), then the tool's
//!   maintenance step when it may be used (see [`maintenance`]).
//! - **Jobs.** One `batch/v1` Job per step, named by [`names::job_name`]:
//!   `<migration>-<key>-<hash>`, a DNS-1123 label of at most 63 characters
//!   whose hash covers the migration's uid, the step key and the Job's whole
//!   content, so that the name changes exactly when the Job would.
//! - **Termination message.** The Job's container writes a summary in JSON
//!   Lines to `/dev/termination-log` (see [`summary`]); `interpret` reads it,
//!   and copes with it being truncated, replaced by log text, or missing.
//!
//! A strategy implements [`Strategy`] and exports it as the
//! `migration-strategy` world with [`export_strategy!`]; the `testing`
//! module (feature `testing`) runs the checks every strategy must pass
//! against it, natively.

// no_std in the components: no WASI imports, and smaller (see the SDK).
#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]
extern crate alloc;

pub mod classify;
pub mod duration;
pub mod interpret;
pub mod job;
pub mod maintenance;
pub mod names;
pub mod observe;
pub mod script;
pub mod settings;
pub mod spec;
pub mod summary;
#[cfg(all(feature = "testing", not(target_arch = "wasm32")))]
pub mod testing;
#[cfg(target_arch = "wasm32")]
pub mod wit;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Key of the plan-only step of every plan.
pub const PLAN_KEY: &str = "plan";

/// Export `$strategy` (a [`Strategy`]) as the component's
/// `migration-strategy` world, with what a `no_std` component needs from a
/// runtime (see the SDK's `no_std_runtime!`). Call it once, at the top level
/// of the strategy's crate, which depends on `portfolio-plugin-sdk` when
/// built for WebAssembly; elsewhere it expands to nothing.
#[macro_export]
macro_rules! export_strategy {
    ($strategy:ty) => {
        /// The component glue: the `migration-strategy` world.
        #[cfg(all(target_arch = "wasm32", not(test)))]
        mod component {
            portfolio_plugin_sdk::no_std_runtime!();

            type Component = $crate::wit::Component<$strategy>;
            portfolio_plugin_sdk::export_migration_strategy!(Component);
        }
    };
}

/// A migration strategy: what the component exports and the tests exercise.
pub trait Strategy {
    /// Name under which the plugin registers, also the Jobs' container name.
    const NAME: &'static str;
    /// The plugin's semantic version.
    const VERSION: &'static str;
    /// One line about the plugin, for `describe`.
    const DESCRIPTION: &'static str;
    /// The kinds the plugin may emit, as (apiVersion, kind).
    const KINDS: &'static [(&'static str, &'static str)];

    /// JSON Schema of the settings, for `describe`.
    fn settings_schema() -> String;

    /// The steps of the migration in `input`.
    fn plan(input: &Input<'_>) -> Result<Plan, Error>;

    /// The outcome of step `key`, whose Job is `job` (JSON) and whose
    /// container left `message`.
    fn interpret(
        input: &Input<'_>,
        key: &str,
        job: &str,
        message: Option<&str>,
    ) -> Result<Outcome, Error>;
}

/// What a strategy is handed about the migration being reconciled.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// `metadata.name` of the DatabaseMigration.
    pub name: &'a str,
    /// `metadata.uid`; empty when the object was never stored (offline `render`).
    pub uid: &'a str,
    /// `metadata.annotations`, sorted by key.
    pub annotations: &'a [(String, String)],
    /// The spec, as JSON text.
    pub spec: &'a str,
    /// The strategy's settings, as JSON text (`{}` or empty when none).
    pub settings: &'a str,
}

/// A spec or settings a strategy cannot work with: the user's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// JSON path of the offending field, e.g. `spec.timeout` or `settings.allowRepair`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Invalid {
    /// `field` is wrong because of `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl core::error::Error for Invalid {}

/// Why a strategy call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The spec or settings are wrong; nothing changes until they do.
    Invalid(Invalid),
    /// The strategy cannot make sense of what the host handed it (a Job that
    /// is not JSON, a step it never planned); the host retries.
    Internal(String),
}

impl From<Invalid> for Error {
    fn from(invalid: Invalid) -> Self {
        Error::Invalid(invalid)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(invalid) => invalid.fmt(f),
            Error::Internal(message) => f.write_str(message),
        }
    }
}

impl core::error::Error for Error {}

/// When a step runs relative to the application's rollout (WIT `step-phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before the new application version rolls out.
    Expand,
    /// After the new application version is available.
    Contract,
    /// Reads and validates only; runs first.
    PlanOnly,
    /// Repairs the tool's bookkeeping; run only after `interpret` said `lock-held`.
    Maintenance,
}

impl Phase {
    /// As written in labels and status: `expand`, `contract`, `plan-only`, `maintenance`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Expand => "expand",
            Phase::Contract => "contract",
            Phase::PlanOnly => "plan-only",
            Phase::Maintenance => "maintenance",
        }
    }
}

/// One Job to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Stable key of the step within the plan, e.g. `plan` or `migrate`.
    pub key: &'static str,
    /// When the step runs.
    pub phase: Phase,
    /// The `batch/v1` Job manifest as JSON text.
    pub job: String,
    /// One line for people: what the step does.
    pub description: String,
}

/// The ordered steps of a migration and a summary for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Steps in the order they run.
    pub steps: Vec<Step>,
    /// A short summary of the plan, shown in status.
    pub summary: String,
}

/// A step that failed, and whether running it again may help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// CamelCase reason, e.g. `SqlError` or `ConnectionRefused`.
    pub reason: &'static str,
    /// What happened and what to do, for people.
    pub message: String,
    /// Whether running the step again may succeed.
    pub retryable: bool,
}

impl Failure {
    /// A failure that running the step again will not fix.
    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
            retryable: false,
        }
    }

    /// A failure that may go away by itself (a network hiccup, a busy database).
    pub fn transient(reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
            retryable: true,
        }
    }
}

/// What became of a step (WIT `step-outcome`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still running; ask again later.
    Running,
    /// Done.
    Succeeded {
        /// The schema version now applied, when the tool reports one.
        applied_version: Option<String>,
        /// One line for people.
        summary: String,
    },
    /// Failed.
    Failed(Failure),
    /// The tool's bookkeeping blocks it; the plan's maintenance step may fix it.
    LockHeld(String),
}
