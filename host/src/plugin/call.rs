//! Calls of the `generator` world (`generate`, `finalize`) and the input they
//! are given; each runs in the sandbox and its output is checked.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use wasmtime::Store;

use super::bindings::types::{self, ObjectMeta, ReconcileInput};
use super::error::{CallFailure, PluginError};
use super::load::Plugin;
use super::output::{self, ChildObject, GeneratedOutput, RawGenerateOutput};
use super::sandbox::{self, CallContext, HostState, WorldPre};

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
    /// `spec` of the custom resource; the plugin gets it as JSON text.
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
                    serde_json::to_string(object).unwrap_or_default(),
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
            // Straight into a buffer: `Value`'s `Display` goes through the
            // formatter piece by piece.
            spec: serde_json::to_string(&self.spec).unwrap_or_default(),
            settings: settings.to_owned(),
            observed: observed.into_iter().map(|entry| entry.3).collect(),
        }
    }
}

/// What [`Plugin::generate_then_finalize_async`] answers: the generate
/// call's result, and the finalize call's when it was made.
pub type GeneratedAndFinalized = (
    Result<GeneratedOutput, PluginError>,
    Option<Result<Vec<ChildObject>, PluginError>>,
);

impl Plugin {
    /// Ask a generator for the children of `input`, checked (blocking: run it
    /// off the async executor, e.g. with [`Plugin::generate_async`]).
    pub fn generate(
        &self,
        input: &GenerateInput,
        context: &CallContext,
    ) -> Result<GeneratedOutput, PluginError> {
        self.generate_checked(&input.to_wit(&self.settings), context)
    }

    /// [`Plugin::generate`] on an input already in the WIT's form.
    fn generate_checked(
        &self,
        wit: &ReconcileInput,
        context: &CallContext,
    ) -> Result<GeneratedOutput, PluginError> {
        let raw = self.generate_wit(wit, context)?;
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
        self.generate_wit(&input.to_wit(&self.settings), context)
    }

    /// [`Plugin::generate_raw`] on an input already in the WIT's form.
    fn generate_wit(
        &self,
        wit: &ReconcileInput,
        context: &CallContext,
    ) -> Result<RawGenerateOutput, PluginError> {
        let raw = self.call("generate", context, |store, pre| match pre {
            WorldPre::Generator(pre) => {
                let bindings = pre.instantiate(&mut *store)?;
                Ok(bindings
                    .portfolio_plugin_generation()
                    .call_generate(&mut *store, wit)?)
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
        self.finalize_wit(&input.to_wit(&self.settings), context)
    }

    /// [`Plugin::finalize`] on an input already in the WIT's form.
    fn finalize_wit(
        &self,
        wit: &ReconcileInput,
        context: &CallContext,
    ) -> Result<Vec<ChildObject>, PluginError> {
        let raw = self.call("finalize", context, |store, pre| match pre {
            WorldPre::Generator(pre) => {
                let bindings = pre.instantiate(&mut *store)?;
                Ok(bindings
                    .portfolio_plugin_generation()
                    .call_finalize(&mut *store, wit)?)
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
        self.generate_then_finalize_async(input, context, false)
            .await
            .0
    }

    /// [`Plugin::generate`] and then, when it succeeded and `finalize` is
    /// set, [`Plugin::finalize`] on the same input, each in a fresh instance
    /// as always, in one trip to the blocking pool: a reconcile asks both,
    /// and the hand-over to a pool thread and back cost about as much as a
    /// call of the built-in generator.
    pub async fn generate_then_finalize_async(
        self: &Arc<Self>,
        input: GenerateInput,
        context: CallContext,
        finalize: bool,
    ) -> GeneratedAndFinalized {
        let plugin = Arc::clone(self);
        let label = self.label.to_string();
        tokio::task::spawn_blocking(move || {
            // Both calls take the same input: put in the WIT's form once
            // (the observed children written out as JSON text).
            let wit = input.to_wit(&plugin.settings);
            let generated = plugin.generate_checked(&wit, &context);
            let finalized =
                (finalize && generated.is_ok()).then(|| plugin.finalize_wit(&wit, &context));
            (generated, finalized)
        })
        .await
        .unwrap_or_else(|join| (Err(worker_died(label, "generate", join)), None))
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
        sandbox::run(
            &self.compiled.pre,
            &self.limits,
            &self.label,
            call,
            context,
            body,
        )
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

#[cfg(test)]
mod tests {
    use super::*;

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
