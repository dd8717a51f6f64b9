//! One plugin call: a fresh store and instance, limits armed, failures typed.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use wasmtime::{Store, Trap};

use super::bindings::generator;
use super::bindings::types::{self, LogLevel, ObjectMeta, ReconcileInput};
use super::error::{CallFailure, PluginError};
use super::limits::{CallLimiter, Limits};
use super::load::{NotGranted, Plugin, WorldPre};
use super::log_bridge::LogBridge;
use super::output::{self, ChildObject, GeneratedOutput, RawGenerateOutput};
use super::runtime::EPOCH_TICK;

/// What a store holds for the duration of one call.
pub(crate) struct HostState {
    limiter: CallLimiter,
    log: LogBridge,
}

impl types::Host for HostState {}

impl generator::portfolio::plugin::host::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log.write(level, &message);
    }
}

/// Context of a call, for logs: which object it is about.
#[derive(Clone, Debug, Default)]
pub struct CallContext {
    /// `namespace/name` of the custom resource, or empty.
    pub object: String,
}

/// The custom resource a generator is asked about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerateInput {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`, empty when never stored.
    pub uid: String,
    /// `metadata.generation`, 0 when never stored.
    pub generation: i64,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec`.
    pub spec: Value,
    /// Children currently observed in the cluster.
    pub observed: Vec<Value>,
}

impl GenerateInput {
    pub(crate) fn to_wit(&self, settings: &str) -> ReconcileInput {
        let mut observed: Vec<(String, String, String, String)> = self
            .observed
            .iter()
            .map(|object| {
                let field = |pointer: &str| {
                    object
                        .pointer(pointer)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                (
                    field("/apiVersion"),
                    field("/kind"),
                    field("/metadata/name"),
                    object.to_string(),
                )
            })
            .collect();
        observed.sort();
        ReconcileInput {
            meta: ObjectMeta {
                name: self.name.clone(),
                namespace: self.namespace.clone(),
                uid: self.uid.clone(),
                generation: self.generation,
                labels: self.labels.clone().into_iter().collect(),
                annotations: self.annotations.clone().into_iter().collect(),
            },
            spec: self.spec.to_string(),
            settings: settings.to_owned(),
            observed: observed.into_iter().map(|entry| entry.3).collect(),
        }
    }
}

impl Plugin {
    /// Ask a generator for the children of `input`, checked (blocking: run it
    /// off the async executor, e.g. with [`Plugin::generate_async`]).
    pub fn generate(
        &self,
        input: &GenerateInput,
        context: &CallContext,
    ) -> Result<GeneratedOutput, PluginError> {
        let raw = self.generate_raw(input, context)?;
        self.validate(raw)
    }

    /// Check what [`Plugin::generate_raw`] returned against the output limits and the contract.
    pub fn validate(&self, raw: RawGenerateOutput) -> Result<GeneratedOutput, PluginError> {
        output::generate_output(raw.0, &self.limits)
            .map_err(|failure| self.error("generate", failure))
    }

    /// The call alone: a fresh instance, `generate`, and the plugin's own
    /// verdict, with nothing it returned checked yet (blocking).
    pub fn generate_raw(
        &self,
        input: &GenerateInput,
        context: &CallContext,
    ) -> Result<RawGenerateOutput, PluginError> {
        let wit = input.to_wit(&self.settings);
        let raw = self.call("generate", context, |store, pre| match pre {
            WorldPre::Generator(pre) => {
                let bindings = pre.instantiate(&mut *store)?;
                Ok(bindings
                    .portfolio_plugin_generation()
                    .call_generate(&mut *store, &wit)?)
            }
            WorldPre::MigrationStrategy(_) => Err(wrong_world()),
        })?;
        raw.map(RawGenerateOutput)
            .map_err(|error| self.error("generate", plugin_failure(error)))
    }

    /// Ask a generator what must run before `input` is deleted (blocking).
    pub fn finalize(
        &self,
        input: &GenerateInput,
        context: &CallContext,
    ) -> Result<Vec<ChildObject>, PluginError> {
        let wit = input.to_wit(&self.settings);
        let raw = self.call("finalize", context, |store, pre| match pre {
            WorldPre::Generator(pre) => {
                let bindings = pre.instantiate(&mut *store)?;
                Ok(bindings
                    .portfolio_plugin_generation()
                    .call_finalize(&mut *store, &wit)?)
            }
            WorldPre::MigrationStrategy(_) => Err(wrong_world()),
        })?;
        let raw = raw.map_err(|error| self.error("finalize", plugin_failure(error)))?;
        output::checked_objects(&raw, &self.limits)
            .map_err(|failure| self.error("finalize", failure))
    }

    /// [`Plugin::generate`] on the blocking pool, so the async executor never stalls.
    pub async fn generate_async(
        self: &Arc<Self>,
        input: GenerateInput,
        context: CallContext,
    ) -> Result<GeneratedOutput, PluginError> {
        let plugin = Arc::clone(self);
        let label = self.label.to_string();
        tokio::task::spawn_blocking(move || plugin.generate(&input, &context))
            .await
            .unwrap_or_else(|join| Err(worker_died(label, "generate", join)))
    }

    /// [`Plugin::finalize`] on the blocking pool.
    pub async fn finalize_async(
        self: &Arc<Self>,
        input: GenerateInput,
        context: CallContext,
    ) -> Result<Vec<ChildObject>, PluginError> {
        let plugin = Arc::clone(self);
        let label = self.label.to_string();
        tokio::task::spawn_blocking(move || plugin.finalize(&input, &context))
            .await
            .unwrap_or_else(|join| Err(worker_died(label, "finalize", join)))
    }

    pub(crate) fn error(&self, call: &'static str, failure: CallFailure) -> PluginError {
        PluginError {
            plugin: self.label.to_string(),
            call,
            failure,
        }
    }

    /// Run `body` in a fresh store and instance under this plugin's limits.
    pub(crate) fn call<R>(
        &self,
        call: &'static str,
        context: &CallContext,
        body: impl FnOnce(&mut Store<HostState>, &WorldPre) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        run(
            &self.compiled.pre,
            &self.limits,
            &self.label,
            call,
            context,
            body,
        )
    }
}

/// The engine behind a pre-linked component.
fn engine_of(pre: &WorldPre) -> &wasmtime::Engine {
    match pre {
        WorldPre::Generator(pre) => pre.engine(),
        WorldPre::MigrationStrategy(pre) => pre.engine(),
    }
}

/// Run one call; shared by [`Plugin`] and by loading, which calls `describe`
/// before a `Plugin` exists.
pub(crate) fn run<R>(
    pre: &WorldPre,
    limits: &Limits,
    label: &Arc<str>,
    call: &'static str,
    context: &CallContext,
    body: impl FnOnce(&mut Store<HostState>, &WorldPre) -> wasmtime::Result<R>,
) -> Result<R, PluginError> {
    let state = HostState {
        limiter: CallLimiter::new(limits.memory_bytes),
        log: LogBridge::new(
            Arc::clone(label),
            Arc::from(context.object.as_str()),
            limits.max_log_lines,
        ),
    };
    let mut store = Store::new(engine_of(pre), state);
    store.limiter(|state| &mut state.limiter);
    store.set_epoch_deadline(deadline_ticks(limits));
    store.epoch_deadline_trap();

    let result = body(&mut store, pre);

    let dropped = store.data().log.dropped();
    if dropped > 0 {
        tracing::warn!(plugin = %label, object = %context.object, call, dropped, "plugin wrote more log lines than its limit; the rest were dropped");
    }
    let memory_exhausted = store.data().limiter.memory_exhausted;
    // The store (and with it the instance) is dropped here, after every call,
    // trap or not: an instance is never reused.
    drop(store);

    result.map_err(|error| {
        // The full chain (with a wasm backtrace) helps plugin authors; the
        // typed failure keeps only what a status condition should say.
        tracing::debug!(plugin = %label, object = %context.object, call, error = ?error, "plugin call failed");
        PluginError {
            plugin: label.to_string(),
            call,
            failure: classify(&error, limits, memory_exhausted),
        }
    })
}

/// Epoch ticks that cover the time budget; the first tick may come at once, so add one.
fn deadline_ticks(limits: &Limits) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    (limits.timeout.as_micros().div_ceil(tick) as u64).saturating_add(1)
}

/// Map a wasmtime error to a typed failure.
fn classify(error: &wasmtime::Error, limits: &Limits, memory_exhausted: bool) -> CallFailure {
    if memory_exhausted {
        return CallFailure::OutOfMemory {
            limit_bytes: limits.memory_bytes,
        };
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => CallFailure::Deadline {
                budget: limits.timeout,
            },
            trap => CallFailure::Trap {
                message: trap.to_string(),
            },
        };
    }
    if let Some(not_granted) = error.downcast_ref::<NotGranted>() {
        return CallFailure::Trap {
            message: not_granted.to_string(),
        };
    }
    // Anything else failed before the plugin ran (e.g. no free instance slot):
    // the root cause says what, without wasmtime's backtrace context.
    CallFailure::Unavailable {
        message: error.root_cause().to_string(),
    }
}

pub(crate) fn plugin_failure(error: types::PluginError) -> CallFailure {
    match error {
        types::PluginError::InvalidSpec(invalid) => CallFailure::InvalidSpec {
            field: invalid.field,
            message: invalid.message,
        },
        types::PluginError::Internal(message) => CallFailure::Internal { message },
    }
}

fn wrong_world() -> wasmtime::Error {
    wasmtime::format_err!("this call belongs to the other world")
}

pub(crate) fn worker_died(
    plugin: String,
    call: &'static str,
    join: tokio::task::JoinError,
) -> PluginError {
    PluginError {
        plugin,
        call,
        failure: CallFailure::Unavailable {
            message: format!("the worker running the call stopped: {join}"),
        },
    }
}

/// `describe()` of a freshly linked component, under the plugin's limits.
pub(crate) fn describe(
    pre: &WorldPre,
    limits: &Limits,
    label: &Arc<str>,
) -> Result<types::PluginInfo, PluginError> {
    run(
        pre,
        limits,
        label,
        "describe",
        &CallContext::default(),
        |store, pre| match pre {
            WorldPre::Generator(pre) => {
                let bindings = pre.instantiate(&mut *store)?;
                bindings
                    .portfolio_plugin_generation()
                    .call_describe(&mut *store)
            }
            WorldPre::MigrationStrategy(pre) => {
                let bindings = pre.instantiate(&mut *store)?;
                bindings
                    .portfolio_plugin_migration()
                    .call_describe(&mut *store)
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadlines_cover_the_budget() {
        let limits = Limits {
            timeout: Duration::from_millis(100),
            ..Limits::default()
        };
        let ticks = deadline_ticks(&limits);
        assert!(
            Duration::from_micros(EPOCH_TICK.as_micros() as u64 * (ticks - 1)) >= limits.timeout
        );
    }

    #[test]
    fn observed_children_are_sorted_for_reproducible_calls() {
        let input = GenerateInput {
            observed: vec![
                serde_json::json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"b"}}),
                serde_json::json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"z"}}),
            ],
            spec: serde_json::json!({}),
            ..Default::default()
        };
        let wit = input.to_wit("{}");
        assert!(wit.observed[0].contains("ConfigMap"));
        assert!(wit.observed[1].contains("Service"));
    }
}
