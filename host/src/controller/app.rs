//! One reconcile of a PortfolioApp: load → decide → act → report.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use portfolio_api::{
    API_VERSION, APP_KIND, PluginStatus, PortfolioApp, PortfolioAppStatus, RawJson, ResourceRef,
};
use serde_json::{Value, json};

use super::children::{self, Observed};
use super::conditions::{self, Failure, Rollout, Verdict};
use super::{Context, Error};
use crate::builtin::DEFAULT_GENERATOR;
use crate::decorate::{FIELD_MANAGER, Owner, decorate};
use crate::plugin::{CallContext, GenerateInput, GeneratedOutput, Plugin, World};
use crate::registry::PluginRef;

/// Resync even when nothing changes, so drift of fields no watch reports is found.
const RESYNC: Duration = Duration::from_secs(10 * 60);

/// What converging produced, whatever the verdict.
struct Outcome {
    verdict: Verdict,
    plugin: Option<Arc<Plugin>>,
    output: Option<GeneratedOutput>,
    applied: Vec<ResourceRef>,
    deployment: Option<DeploymentStatus>,
}

impl Outcome {
    fn failed(failure: Failure, message: String, plugin: Option<Arc<Plugin>>) -> Self {
        Outcome {
            verdict: Verdict::Failed { failure, message },
            plugin,
            output: None,
            applied: Vec::new(),
            deployment: None,
        }
    }
}

/// Bring the children of `app` in line with its spec, and say so in status.
pub async fn apply(app: Arc<PortfolioApp>, ctx: &Context) -> Result<Action, Error> {
    let outcome = converge(&app, ctx).await?;
    report(&app, ctx, &outcome).await?;
    Ok(match &outcome.verdict {
        Verdict::Failed { failure, .. } if failure.waits_for_change() => Action::await_change(),
        Verdict::Failed { failure, message } => {
            return Err(Error::Transient {
                reason: failure.reason(),
                message: message.clone(),
            });
        }
        _ => Action::requeue(
            outcome
                .output
                .as_ref()
                .and_then(|output| output.requeue_after)
                .map_or(RESYNC, |hint| hint.min(RESYNC)),
        ),
    })
}

/// The plugin an app's spec names (the built-in generator when it names none).
pub fn reference_of(app: &PortfolioApp) -> &str {
    app.spec
        .generator
        .as_ref()
        .map_or(DEFAULT_GENERATOR, |generator| generator.plugin.as_str())
}

async fn converge(app: &PortfolioApp, ctx: &Context) -> Result<Outcome, Error> {
    if app.spec.paused {
        return Ok(Outcome {
            verdict: Verdict::Paused,
            plugin: None,
            output: None,
            applied: Vec::new(),
            deployment: None,
        });
    }
    let namespace = app.namespace().unwrap_or_default();
    let name = app.name_any();
    let uid = app.uid().unwrap_or_default();

    let reference: PluginRef = match reference_of(app).parse() {
        Ok(reference) => reference,
        Err(error) => {
            return Ok(Outcome::failed(
                Failure::InvalidSpec,
                format!("spec.generator.plugin: {error}"),
                None,
            ));
        }
    };
    let plugin = match ctx.registry.resolve(&reference, World::Generator) {
        Ok(plugin) => plugin,
        Err(error) => {
            return Ok(Outcome::failed(
                Failure::PluginNotFound,
                format!("spec.generator.plugin: {error}; publish it, or fix the reference"),
                None,
            ));
        }
    };

    let observed = ctx.children.of(&namespace, &name, &uid);
    let input = GenerateInput {
        name: name.clone(),
        namespace: namespace.clone(),
        uid: uid.clone(),
        generation: app.metadata.generation.unwrap_or(0),
        labels: app.labels().clone(),
        annotations: app.annotations().clone(),
        spec: serde_json::to_value(&app.spec).map_err(|e| Error::Internal(e.to_string()))?,
        observed: observed.iter().map(observed_for_plugin).collect(),
    };
    let context = CallContext {
        object: format!("{namespace}/{name}"),
    };
    let output = match plugin.generate_async(input, context).await {
        Ok(output) => output,
        Err(error) => {
            ctx.metrics.plugin_failure(error.reason());
            let failure = if error.is_user_error() {
                Failure::InvalidSpec
            } else {
                Failure::PluginFailed
            };
            return Ok(Outcome::failed(failure, error.to_string(), Some(plugin)));
        }
    };

    // Every object passes the policy before any is applied: a plugin that
    // breaks it changes nothing.
    let owner = Owner {
        api_version: API_VERSION,
        kind: APP_KIND,
        name: &name,
        namespace: &namespace,
        uid: Some(&uid),
    };
    let mut desired = Vec::with_capacity(output.objects.len());
    for child in output.objects.iter().cloned() {
        if let Err(violation) = ctx.policy.check(plugin.info(), &child, &namespace) {
            return Ok(Outcome::failed(
                Failure::PolicyViolation,
                format!(
                    "plugin {} broke the output policy: {violation}",
                    plugin.id()
                ),
                Some(plugin),
            ));
        }
        desired.push(decorate(child, &owner, &plugin));
    }

    let mut applied = Vec::with_capacity(desired.len());
    let mut deployment = None;
    for object in &desired {
        let key = object.key();
        let current = ctx.children.find(&namespace, key);
        let stored =
            match children::apply(&ctx.client, &namespace, object, current.as_deref()).await {
                Ok(stored) => stored,
                Err(error) => {
                    return Ok(Outcome::failed(
                        Failure::ApplyFailed,
                        error.to_string(),
                        Some(plugin),
                    ));
                }
            };
        if stored.is_some() {
            ctx.metrics.applied();
        }
        if key.kind == "Deployment" {
            let object = stored.map(Arc::new).or(current);
            deployment = object.as_ref().map(|object| {
                let desired_replicas = desired_replicas(object_spec(object));
                (
                    object.metadata.generation,
                    desired_replicas,
                    deployment_status(object),
                )
            });
        }
        applied.push(ResourceRef {
            api_version: key.api_version.clone(),
            kind: key.kind.clone(),
            name: key.name.clone(),
        });
    }

    let keep: BTreeSet<_> = desired.iter().map(|object| object.key().clone()).collect();
    if let Err(error) = children::prune(&ctx.client, &namespace, &observed, &keep).await {
        return Ok(Outcome::failed(
            Failure::ApplyFailed,
            error.to_string(),
            Some(plugin),
        ));
    }

    let rollout = match &deployment {
        None => Rollout::None,
        Some((generation, desired_replicas, status)) => {
            Rollout::of(*generation, *desired_replicas, status.as_ref())
        }
    };
    Ok(Outcome {
        verdict: Verdict::Applied(rollout),
        plugin: Some(plugin),
        output: Some(output),
        applied,
        deployment: deployment.and_then(|(_, _, status)| status),
    })
}

/// A child as the plugin sees it: without bookkeeping it has no use for.
fn observed_for_plugin(observed: &Observed) -> Value {
    let mut value = observed.to_json();
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    value
}

fn object_spec(object: &kube::core::DynamicObject) -> &Value {
    object.data.get("spec").unwrap_or(&Value::Null)
}

fn desired_replicas(spec: &Value) -> Option<i32> {
    spec.get("replicas")
        .and_then(Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
}

fn deployment_status(object: &kube::core::DynamicObject) -> Option<DeploymentStatus> {
    object
        .data
        .get("status")
        .and_then(|status| serde_json::from_value(status.clone()).ok())
}

/// Write status (only when it changes) and emit events on transitions.
async fn report(app: &PortfolioApp, ctx: &Context, outcome: &Outcome) -> Result<(), Error> {
    let current = app.status.clone().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let generation = app.metadata.generation;
    let mut conditions = conditions::merge(
        &current.conditions,
        &conditions::conditions(&outcome.verdict),
        generation,
        &now,
    );
    if let Some(output) = &outcome.output {
        for own in &output.conditions {
            let since = current
                .conditions
                .iter()
                .find(|c| c.type_ == own.type_ && c.status == own.status.as_str())
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            conditions.push(Condition {
                type_: own.type_.clone(),
                status: own.status.as_str().to_owned(),
                reason: own.reason.clone(),
                message: own.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            });
        }
    }
    let plugin_status = outcome
        .output
        .as_ref()
        .filter(|output| !output.status.is_empty())
        .and_then(|output| {
            RawJson::from_text(Value::Object(output.status.clone()).to_string()).ok()
        });
    let paused_or_failed = !matches!(outcome.verdict, Verdict::Applied(_));
    let status = PortfolioAppStatus {
        observed_generation: generation,
        conditions,
        replicas: outcome.deployment.as_ref().and_then(|s| s.replicas),
        ready_replicas: outcome.deployment.as_ref().and_then(|s| s.ready_replicas),
        // Paused, or no plugin found: the children are still the last plugin's.
        plugin: outcome
            .plugin
            .as_ref()
            .map(|plugin| PluginStatus {
                id: plugin.id().to_string(),
                digest: plugin.digest().to_string(),
            })
            .or_else(|| current.plugin.clone()),
        // After a failure the children applied before stay as they were.
        resources: if paused_or_failed {
            current.resources.clone()
        } else {
            outcome.applied.clone()
        },
        migrations: current.migrations.clone(),
        plugin_status: plugin_status.or(if paused_or_failed {
            current.plugin_status.clone()
        } else {
            None
        }),
    };
    if !same_status(&current, &status) {
        tracing::debug!(
            before = %serde_json::to_string(&current).unwrap_or_default(),
            after = %serde_json::to_string(&status).unwrap_or_default(),
            "writing status"
        );
        let api: Api<PortfolioApp> =
            Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
        let patch = json!({"apiVersion": API_VERSION, "kind": APP_KIND, "metadata": {"name": app.name_any()}, "status": status});
        api.patch_status(
            &app.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Kube)?;
        ctx.metrics.status_written();
    }
    for transition in conditions::transitions(&current.conditions, &status.conditions) {
        let event = Event {
            type_: if transition.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: transition.reason,
            note: Some(truncate(&transition.message, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        // An event is a courtesy; failing to publish one is not a failed reconcile.
        if let Err(error) = ctx.recorder.publish(&event, &app.object_ref(&())).await {
            tracing::warn!(app = %format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any()), error = %error, "cannot publish an event");
        }
    }
    Ok(())
}

/// Status equality that ignores nothing but JSON formatting.
fn same_status(a: &PortfolioAppStatus, b: &PortfolioAppStatus) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
