//! The one way from a custom resource to the objects the operator applies:
//! resolve the plugin → call the world's function → check every object
//! against the output policy → decorate. The controllers, deletion and
//! `render` all go through here, so each step has one place.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use portfolio_api::API_VERSION;
use serde::Serialize;
use serde_json::Value;

use crate::decorate::{DesiredObject, Owner, decorate};
use crate::failure::Failure;
use crate::plugin::{
    CallContext, ChildObject, GenerateInput, GeneratedOutput, Plan, PlanStep, Plugin, PluginError,
    StepOutcome, StepPhase, World,
};
use crate::policy::{OutputPolicy, PolicyViolation};
use crate::registry::{PluginRef, PluginRefError, Registry, ResolveError};

/// The custom resource a plugin is called for, as the plugin sees it.
#[derive(Clone, Debug)]
pub struct Subject {
    /// `PortfolioApp` or `DatabaseMigration`: the owner kind of its children.
    pub kind: &'static str,
    /// `metadata.name`; children are named after it.
    pub name: String,
    /// Its namespace; every child goes there.
    pub namespace: String,
    /// Its uid; without one (offline rendering) children get no owner reference.
    pub uid: Option<String>,
    /// `metadata.generation`.
    pub generation: i64,
    /// Its labels, handed to the plugin.
    pub labels: BTreeMap<String, String>,
    /// Its annotations, handed to the plugin.
    pub annotations: BTreeMap<String, String>,
    /// Its spec as JSON.
    pub spec: Value,
}

impl Subject {
    /// The subject of a resource of `kind` with `metadata` and `spec`;
    /// without a namespace it is `default`, as `kubectl apply` would place it.
    pub fn new(
        kind: &'static str,
        metadata: &ObjectMeta,
        spec: &impl Serialize,
    ) -> Result<Self, PipelineError> {
        Ok(Subject {
            kind,
            name: metadata.name.clone().unwrap_or_default(),
            namespace: metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            uid: metadata.uid.clone().filter(|uid| !uid.is_empty()),
            generation: metadata.generation.unwrap_or(0),
            labels: metadata.labels.clone().unwrap_or_default(),
            annotations: metadata.annotations.clone().unwrap_or_default(),
            spec: serde_json::to_value(spec).map_err(|e| PipelineError::Spec(e.to_string()))?,
        })
    }

    /// `namespace/name`, for logs and plugin call contexts.
    pub fn path(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn input(&self, observed: Vec<Value>) -> GenerateInput {
        GenerateInput {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            uid: self.uid.clone().unwrap_or_default(),
            generation: self.generation,
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            spec: self.spec.clone(),
            observed: observed.into_iter().map(for_plugin).collect(),
        }
    }

    fn context(&self) -> CallContext {
        CallContext {
            object: self.path(),
        }
    }

    fn owner(&self) -> Owner<'_> {
        Owner {
            api_version: API_VERSION,
            kind: self.kind,
            name: &self.name,
            namespace: &self.namespace,
            uid: self.uid.as_deref(),
        }
    }
}

/// An observed child as a plugin sees it: without bookkeeping it has no use
/// for (`managedFields` is large, and changes with every write).
fn for_plugin(mut object: Value) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    object
}

/// A step of the pipeline failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The plugin reference cannot be parsed.
    #[error("{field}: {error}")]
    Reference {
        /// `spec.generator.plugin` or `spec.strategy.plugin`.
        field: &'static str,
        /// What is wrong with the reference's text.
        error: Box<PluginRefError>,
    },
    /// No active plugin matches the reference.
    #[error("{field}: {error}; publish it, or fix the reference")]
    Resolve {
        /// `spec.generator.plugin` or `spec.strategy.plugin`.
        field: &'static str,
        /// What matched nothing, and what is active instead.
        error: Box<ResolveError>,
    },
    /// The plugin failed, or refused the spec.
    #[error("{0}")]
    Plugin(Box<PluginError>),
    /// The plugin returned something the operator does not allow; nothing
    /// of its output is applied.
    #[error("plugin {plugin} broke the output policy: {violation}")]
    Policy {
        /// `name@version`.
        plugin: String,
        /// The rule.
        violation: Box<PolicyViolation>,
    },
    /// The spec cannot be turned into JSON (a defect of the types).
    #[error("the spec cannot be serialised: {0}")]
    Spec(String),
}

impl PipelineError {
    /// The reconcile failure this is.
    pub fn failure(&self) -> Failure {
        match self {
            PipelineError::Reference { .. } | PipelineError::Spec(_) => Failure::InvalidSpec,
            PipelineError::Resolve { .. } => Failure::PluginNotFound,
            PipelineError::Plugin(error) if error.is_user_error() => Failure::InvalidSpec,
            PipelineError::Plugin(_) => Failure::PluginFailed,
            PipelineError::Policy { .. } => Failure::PolicyViolation,
        }
    }
}

/// What a generator returned for a subject, checked and decorated.
#[derive(Debug)]
pub struct Generated {
    /// The children to apply, in the plugin's order.
    pub desired: Vec<DesiredObject>,
    /// The rest of the output (its objects moved into `desired`).
    pub output: GeneratedOutput,
    /// What [`Pipeline::finalize`] would answer for the same input, when
    /// it was asked along (see [`Pipeline::generate`]).
    pub finalize: Option<Result<Vec<DesiredObject>, PipelineError>>,
}

/// One step of a migration plan, its Job checked and decorated.
#[derive(Clone, Debug)]
pub struct PlannedStep {
    /// The step's key within the plan.
    pub key: String,
    /// When it runs.
    pub phase: StepPhase,
    /// What the step is for.
    pub description: String,
    /// The Job to run.
    pub job: DesiredObject,
    /// The step as the strategy returned it: `interpret` is handed this.
    pub raw: PlanStep,
}

/// Resolves plugins in a registry and polices their output.
#[derive(Clone, Copy)]
pub struct Pipeline<'a> {
    registry: &'a Registry,
    policy: &'a OutputPolicy,
}

impl<'a> Pipeline<'a> {
    /// A pipeline over `registry`'s plugins under `policy`.
    pub fn new(registry: &'a Registry, policy: &'a OutputPolicy) -> Self {
        Pipeline { registry, policy }
    }

    /// The active plugin of `world` that `reference` (read from `field`) names.
    pub fn resolve(
        &self,
        field: &'static str,
        reference: &str,
        world: World,
    ) -> Result<Arc<Plugin>, PipelineError> {
        let parsed: PluginRef = reference.parse().map_err(|e| PipelineError::Reference {
            field,
            error: Box::new(e),
        })?;
        self.registry
            .resolve(&parsed, world)
            .map_err(|e| PipelineError::Resolve {
                field,
                error: Box::new(e),
            })
    }

    /// The children `plugin` generates for `subject`, which has `observed`
    /// children now; with `finalize`, also what [`Pipeline::finalize`] would
    /// answer for the same input, asked in the same trip to the plugin's
    /// thread.
    pub async fn generate(
        &self,
        plugin: &Arc<Plugin>,
        subject: &Subject,
        observed: Vec<Value>,
        finalize: bool,
    ) -> Result<Generated, PipelineError> {
        let (generated, finalized) = plugin
            .generate_then_finalize_async(subject.input(observed), subject.context(), finalize)
            .await;
        let mut output = generated.map_err(|e| PipelineError::Plugin(Box::new(e)))?;
        let objects = std::mem::take(&mut output.objects);
        let desired = self.police(plugin, subject, objects)?;
        let finalize = finalized.map(|answer| self.policed(plugin, subject, answer));
        Ok(Generated {
            desired,
            output,
            finalize,
        })
    }

    /// The objects `plugin` wants to exist while `subject` is deleted (a backup Job).
    pub async fn finalize(
        &self,
        plugin: &Arc<Plugin>,
        subject: &Subject,
        observed: Vec<Value>,
    ) -> Result<Vec<DesiredObject>, PipelineError> {
        let answer = plugin
            .finalize_async(subject.input(observed), subject.context())
            .await;
        self.policed(plugin, subject, answer)
    }

    /// A finalize call's `answer`, policed as [`Pipeline::finalize`] answers it.
    fn policed(
        &self,
        plugin: &Arc<Plugin>,
        subject: &Subject,
        answer: Result<Vec<ChildObject>, PluginError>,
    ) -> Result<Vec<DesiredObject>, PipelineError> {
        let objects = answer.map_err(|e| PipelineError::Plugin(Box::new(e)))?;
        self.police(plugin, subject, objects)
    }

    /// The plan `plugin` (a migration strategy) makes for `subject`, every
    /// step's Job checked and decorated; also the plan's summary.
    pub async fn plan(
        &self,
        plugin: &Arc<Plugin>,
        subject: &Subject,
        observed: Vec<Value>,
    ) -> Result<(Vec<PlannedStep>, String), PipelineError> {
        let Plan { steps, summary } = plugin
            .plan_async(subject.input(observed), subject.context())
            .await
            .map_err(|e| PipelineError::Plugin(Box::new(e)))?;
        let jobs = steps.iter().map(|step| step.job.clone()).collect();
        let jobs = self.police(plugin, subject, jobs)?;
        let planned = steps
            .into_iter()
            .zip(jobs)
            .map(|(raw, job)| PlannedStep {
                key: raw.key.clone(),
                phase: raw.phase,
                description: raw.description.clone(),
                job,
                raw,
            })
            .collect();
        Ok((planned, summary))
    }

    /// What `plugin` (a migration strategy) makes of `step`, whose Job is
    /// now `job` and whose pod left `termination_message`.
    pub async fn interpret(
        &self,
        plugin: &Arc<Plugin>,
        subject: &Subject,
        step: &PlannedStep,
        job: Value,
        termination_message: Option<String>,
    ) -> Result<StepOutcome, PipelineError> {
        plugin
            .interpret_async(
                subject.input(Vec::new()),
                step.raw.clone(),
                job,
                termination_message,
                subject.context(),
            )
            .await
            .map_err(|e| PipelineError::Plugin(Box::new(e)))
    }

    /// Every object passes the policy before any is decorated: a plugin
    /// that breaks it gets nothing applied.
    fn police(
        &self,
        plugin: &Plugin,
        subject: &Subject,
        objects: Vec<ChildObject>,
    ) -> Result<Vec<DesiredObject>, PipelineError> {
        for object in &objects {
            self.policy
                .check(plugin.info(), object, &subject.namespace)
                .map_err(|violation| PipelineError::Policy {
                    plugin: plugin.id().to_string(),
                    violation: Box::new(violation),
                })?;
        }
        let owner = subject.owner();
        Ok(objects
            .into_iter()
            .map(|object| decorate(object, &owner, plugin))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_never_see_managed_fields() {
        let seen = for_plugin(serde_json::json!({
            "metadata": {"name": "shop", "managedFields": [{"manager": "x"}]},
            "spec": {"replicas": 2},
        }));
        assert_eq!(
            seen,
            serde_json::json!({"metadata": {"name": "shop"}, "spec": {"replicas": 2}})
        );
    }

    #[test]
    fn a_subject_without_a_namespace_is_in_default() {
        let metadata = ObjectMeta {
            name: Some("shop".into()),
            uid: Some(String::new()),
            ..ObjectMeta::default()
        };
        let subject = Subject::new("PortfolioApp", &metadata, &serde_json::json!({})).unwrap();
        assert_eq!(subject.path(), "default/shop");
        assert_eq!(subject.uid, None, "an empty uid is no uid");
    }
}
