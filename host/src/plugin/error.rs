//! Typed failures of loading and calling plugins.

use std::time::Duration;

use super::domain::World;
use super::limits::LimitsError;

/// A plugin call that failed: which plugin, which call, and why.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("plugin {plugin}: {call}: {failure}")]
pub struct PluginError {
    /// `name@version` of the plugin.
    pub plugin: String,
    /// The exported function that failed (`describe`, `generate`, `finalize`).
    pub call: &'static str,
    /// What went wrong, typed: it decides the condition's reason and whether to retry.
    pub failure: CallFailure,
}

impl PluginError {
    /// Whether the failure is the user's fault: retrying will not help until
    /// the object (or the plugin's settings) changes.
    pub fn is_user_error(&self) -> bool {
        self.failure.is_user_error()
    }

    /// CamelCase reason for a status condition or an event.
    pub fn reason(&self) -> &'static str {
        self.failure.reason()
    }
}

/// Why one plugin call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallFailure {
    /// The call ran past its time budget and was interrupted.
    #[error("exceeded its time budget of {} ms and was stopped", budget.as_millis())]
    Deadline {
        /// The budget it had.
        budget: Duration,
    },
    /// The plugin tried to grow its memory past its cap.
    #[error("ran out of memory (its cap is {} MiB)", limit_bytes >> 20)]
    OutOfMemory {
        /// The cap, in bytes.
        limit_bytes: usize,
    },
    /// The plugin trapped: a panic, an unreachable, a stack overflow, a bad memory access.
    #[error("crashed (WebAssembly trap: {message})")]
    Trap {
        /// What wasmtime says happened.
        message: String,
    },
    /// The plugin returned more bytes than its cap.
    #[error("returned {bytes} bytes of output, more than its limit of {limit} bytes")]
    OutputTooLarge {
        /// Bytes of output the call returned.
        bytes: usize,
        /// The plugin's output cap, in bytes.
        limit: usize,
    },
    /// The plugin returned more objects than its cap.
    #[error("returned {count} objects, more than its limit of {limit}")]
    TooManyObjects {
        /// Objects the call returned.
        count: usize,
        /// The plugin's cap on objects per call.
        limit: usize,
    },
    /// The plugin returned something that is not what the contract promises.
    #[error("returned malformed output: {detail}")]
    MalformedOutput {
        /// Where and what, e.g. `object 2: metadata.name is missing`.
        detail: String,
    },
    /// The plugin says the spec or its settings are wrong (the user's fault).
    #[error("invalid spec: {}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
    InvalidSpec {
        /// JSON path of the offending field; empty when none in particular.
        field: String,
        /// The plugin's explanation, shown to the object's owner.
        message: String,
    },
    /// The plugin reports a failure of its own (retried).
    #[error("reported an internal error: {message}")]
    Internal {
        /// The plugin's explanation, for its author (logged and shown in status).
        message: String,
    },
    /// The host could not run the call (no free instance slot, a worker died).
    #[error("could not be run: {message}")]
    Unavailable {
        /// What went wrong on the host side.
        message: String,
    },
}

impl CallFailure {
    /// Whether the failure is the user's fault.
    pub fn is_user_error(&self) -> bool {
        matches!(self, CallFailure::InvalidSpec { .. })
    }

    /// CamelCase reason for a status condition, an event or a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            CallFailure::Deadline { .. } => "PluginDeadlineExceeded",
            CallFailure::OutOfMemory { .. } => "PluginOutOfMemory",
            CallFailure::Trap { .. } => "PluginTrapped",
            CallFailure::OutputTooLarge { .. } | CallFailure::TooManyObjects { .. } => {
                "PluginOutputTooLarge"
            }
            CallFailure::MalformedOutput { .. } => "PluginOutputMalformed",
            CallFailure::InvalidSpec { .. } => "InvalidSpec",
            CallFailure::Internal { .. } => "PluginFailed",
            CallFailure::Unavailable { .. } => "PluginUnavailable",
        }
    }
}

/// Why a component could not become a usable plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are bigger than the runtime accepts.
    #[error("is {bytes} bytes, more than the {limit}-byte limit for a plugin")]
    TooLarge {
        /// Size of the component offered.
        bytes: usize,
        /// The runtime's `max_component_bytes`.
        limit: usize,
    },
    /// Precompiled native code: never loaded from outside the process.
    #[error(
        "is a precompiled wasmtime artifact; only WebAssembly components are accepted (native code is never loaded from outside)"
    )]
    Precompiled,
    /// Not WebAssembly at all.
    #[error("is not WebAssembly (it does not start with the \\0asm header)")]
    NotWasm,
    /// A core module rather than a component.
    #[error(
        "is a core WebAssembly module, not a component: build it for the wasm32-wasip2 target, or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    /// wasmtime refused to compile it.
    #[error("is not a valid WebAssembly component: {0}")]
    Compile(String),
    /// It exports neither world's interface.
    #[error(
        "does not export portfolio:plugin/generation or portfolio:plugin/migration, so it is not a portfolio plugin (it exports: {})",
        if exports.is_empty() { "nothing".to_owned() } else { exports.join(", ") }
    )]
    NoKnownWorld {
        /// What it does export.
        exports: Vec<String>,
    },
    /// Built against a version of the contract this host cannot speak.
    #[error(
        "was built against {interface}@{found}, which this host (portfolio:plugin@{host}) cannot use; rebuild it against the wit/ directory of this operator"
    )]
    IncompatibleVersion {
        /// The interface, e.g. `portfolio:plugin/generation`.
        interface: String,
        /// The version it was built against.
        found: String,
        /// The version this host speaks.
        host: &'static str,
    },
    /// A plugin of one world where the other is needed.
    #[error("is a {found} plugin, but a {expected} plugin is needed here")]
    WrongWorld {
        /// The world required here.
        expected: World,
        /// The world the component exports.
        found: World,
    },
    /// It imports something the host does not grant.
    #[error(
        "imports `{name}`, which the host does not provide (a plugin may import only portfolio:plugin/host, plus WASI interfaces that trap if called)"
    )]
    UnsupportedImport {
        /// The import's name, e.g. `wasi:sockets/tcp@0.2.0` or `acme:db/query`.
        name: String,
    },
    /// Its exports do not have the functions or types of the world.
    #[error("does not match the {world} world of portfolio:plugin@{host}: {detail}")]
    Signature {
        /// The world it claims.
        world: World,
        /// The version this host speaks.
        host: &'static str,
        /// What wasmtime found wrong.
        detail: String,
    },
    /// `describe()` itself failed.
    #[error("describe() failed: {0}")]
    Describe(PluginError),
    /// `describe()` returned something unusable.
    #[error("describe() returned {0}")]
    InvalidInfo(String),
    /// The registration's limits are out of range.
    #[error("has invalid limits: {0}")]
    Limits(#[from] LimitsError),
    /// The registration's settings are not a JSON object.
    #[error("has invalid settings: {0}")]
    Settings(String),
    /// The host could not set the plugin up.
    #[error("could not be prepared: {0}")]
    Host(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_plugin_call_and_field() {
        let error = PluginError {
            plugin: "deployment-generator@0.1.0".into(),
            call: "generate",
            failure: CallFailure::InvalidSpec {
                field: "spec.replicas".into(),
                message: "must be 0 or more, not -1".into(),
            },
        };
        assert_eq!(
            error.to_string(),
            "plugin deployment-generator@0.1.0: generate: invalid spec: spec.replicas: must be 0 or more, not -1"
        );
        assert!(error.is_user_error());
        assert_eq!(error.reason(), "InvalidSpec");
    }

    #[test]
    fn only_invalid_spec_is_the_users_fault() {
        let deadline = CallFailure::Deadline {
            budget: Duration::from_millis(200),
        };
        assert!(!deadline.is_user_error());
        assert_eq!(
            deadline.to_string(),
            "exceeded its time budget of 200 ms and was stopped"
        );
    }
}
