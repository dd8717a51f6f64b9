//! Deleting an app, behind the finalizer `portfolio.dev/cleanup`: graceful
//! shutdown, then the plugin's `finalize` objects (a backup Job) to
//! completion, then the volume's reclaim policy, then let go. Every step is
//! read from the cluster, so a restarted operator carries on where it was.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::DynamicObject;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use portfolio_api::{API_VERSION, APP_KIND, PortfolioApp, PortfolioAppStatus, ReclaimPolicy};
use serde_json::{Value, json};

use super::children::{self, Observed};
use super::conditions::{self, Wanted};
use super::watched::WatchedApp;
use super::{Context, Error};
use crate::decorate::{FIELD_MANAGER, Owner, decorate};
use crate::plugin::{CallContext, GenerateInput, World};
use crate::registry::PluginRef;

/// The finalizer that holds an app until its cleanup is done.
pub const FINALIZER: &str = "portfolio.dev/cleanup";

/// Annotation that skips the cleanup (`"true"`): the app and its children are
/// deleted at once, without shutdown, backup or volume handling.
pub const SKIP_ANNOTATION: &str = "portfolio.dev/skip-cleanup";

/// How often a cleanup that waits looks again.
const POLL: Duration = Duration::from_secs(2);

/// Where a cleanup stands.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Waiting for pods to stop.
    ShuttingDown(String),
    /// Waiting for a finalize Job.
    Finalizing(String),
    /// A finalize Job failed; only a person can decide.
    FinalizeFailed(String),
    /// Everything done.
    Done,
}

/// Make sure the finalizer is on a live app (a no-op when it is).
pub async fn ensure_finalizer(app: &PortfolioApp, ctx: &Context) -> Result<(), Error> {
    if app.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let api: Api<PortfolioApp> =
        Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    // The test guards against racing another writer of the list.
    let patch = if app.meta().finalizers.is_none() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": app.finalizers()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    };
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(|e| Error::Internal(e.to_string()))?;
    api.patch(
        &app.name_any(),
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}

async fn remove_finalizer(meta: &ObjectMeta, ctx: &Context) -> Result<(), Error> {
    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
    let Some(index) = finalizers.iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    // Lenient: the app may be one whose spec no longer parses.
    let api: Api<WatchedApp> = Api::namespaced(
        ctx.client.clone(),
        meta.namespace.as_deref().unwrap_or_default(),
    );
    let name = meta.name.clone().unwrap_or_default();
    let path = format!("/metadata/finalizers/{index}");
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]))
    .map_err(|e| Error::Internal(e.to_string()))?;
    match api
        .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
    {
        Ok(_) => Ok(()),
        // Gone already: nothing holds it any more.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(Error::Kube(error)),
    }
}

/// One pass of the cleanup of a deleted app.
pub async fn run(app: Arc<PortfolioApp>, ctx: &Context) -> Result<Action, Error> {
    let namespace = app.namespace().unwrap_or_default();
    let name = app.name_any();
    let uid = app.uid().unwrap_or_default();
    if app.annotations().get(SKIP_ANNOTATION).map(String::as_str) == Some("true") {
        tracing::info!(app = %format!("{namespace}/{name}"), "cleanup skipped by annotation");
        publish(
            &app,
            ctx,
            EventType::Warning,
            "CleanupSkipped",
            &format!("{SKIP_ANNOTATION} is set: no shutdown, backup or volume handling"),
        )
        .await;
        remove_finalizer(&app.metadata, ctx).await?;
        return Ok(Action::await_change());
    }
    let observed = ctx.children.of(&namespace, &name, &uid);
    let step = match shut_down(&app, ctx, &observed).await? {
        Step::Done => match finalize(&app, ctx, &observed).await? {
            Step::Done => {
                reclaim_volumes(&app, ctx, &observed).await?;
                remove_finalizer(&app.metadata, ctx).await?;
                publish(
                    &app,
                    ctx,
                    EventType::Normal,
                    "CleanedUp",
                    "shutdown, backup and volumes handled; the rest goes with the app",
                )
                .await;
                return Ok(Action::await_change());
            }
            other => other,
        },
        other => other,
    };
    let started = app
        .meta()
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or_else(k8s_openapi::jiff::Timestamp::now);
    let waited = k8s_openapi::jiff::Timestamp::now().duration_since(started);
    let timed_out =
        waited.as_secs() >= i64::try_from(ctx.config.cleanup_timeout.as_secs()).unwrap_or(i64::MAX);
    let (progressing, degraded) = match &step {
        Step::ShuttingDown(message) | Step::Finalizing(message) if !timed_out => {
            (Some(("Deleting", message.clone())), None)
        }
        Step::ShuttingDown(message) | Step::Finalizing(message) => (
            None,
            Some(format!(
                "cleanup did not finish within {} s: {message}; fix it, or set the annotation {SKIP_ANNOTATION}=true to delete without cleanup",
                ctx.config.cleanup_timeout.as_secs()
            )),
        ),
        Step::FinalizeFailed(message) => (
            None,
            Some(format!(
                "{message}; fix it and delete the failed Job to retry, or set the annotation {SKIP_ANNOTATION}=true to delete without cleanup"
            )),
        ),
        Step::Done => (None, None),
    };
    report(&app, ctx, progressing, degraded).await?;
    Ok(Action::requeue(if timed_out { POLL * 15 } else { POLL }))
}

/// Scale the Deployment to zero (after removing the autoscaler that would
/// scale it back) and wait for its pods to stop.
async fn shut_down(
    app: &PortfolioApp,
    ctx: &Context,
    observed: &[Observed],
) -> Result<Step, Error> {
    let namespace = app.namespace().unwrap_or_default();
    for child in observed
        .iter()
        .filter(|c| c.resource.kind == "HorizontalPodAutoscaler")
    {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &namespace, &child.resource);
        match api
            .delete(&child.object.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(Error::Kube(error)),
        }
    }
    let mut waiting = Vec::new();
    for child in observed.iter().filter(|c| c.resource.kind == "Deployment") {
        let name = child.object.name_any();
        let spec_replicas = child
            .object
            .data
            .pointer("/spec/replicas")
            .and_then(Value::as_i64);
        if spec_replicas != Some(0) {
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), &namespace, &child.resource);
            // A merge patch, not an apply: applying only spec.replicas would
            // drop every other field the operator applied.
            let patch = json!({"spec": {"replicas": 0}});
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            api.patch(&name, &params, &Patch::Merge(&patch))
                .await
                .map_err(Error::Kube)?;
            waiting.push(format!("scaling Deployment {name} to zero"));
            continue;
        }
        let running = child
            .object
            .data
            .pointer("/status/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if running > 0 {
            waiting.push(format!(
                "waiting for {running} pods of Deployment {name} to stop"
            ));
        }
    }
    Ok(if waiting.is_empty() {
        Step::Done
    } else {
        Step::ShuttingDown(waiting.join("; "))
    })
}

/// Apply what the plugin's `finalize` returns and wait for its Jobs.
async fn finalize(app: &PortfolioApp, ctx: &Context, observed: &[Observed]) -> Result<Step, Error> {
    let namespace = app.namespace().unwrap_or_default();
    let name = app.name_any();
    let uid = app.uid().unwrap_or_default();
    let reference: PluginRef =
        super::app::reference_of(app)
            .parse()
            .map_err(|e: crate::registry::PluginRefError| Error::Transient {
                reason: "InvalidSpec",
                message: e.to_string(),
            })?;
    let plugin = ctx
        .registry
        .resolve(&reference, World::Generator)
        .map_err(|e| Error::Transient {
            reason: "PluginNotFound",
            message: e.to_string(),
        })?;
    let input = GenerateInput {
        name: name.clone(),
        namespace: namespace.clone(),
        uid: uid.clone(),
        generation: app.metadata.generation.unwrap_or(0),
        labels: app.labels().clone(),
        annotations: app.annotations().clone(),
        spec: serde_json::to_value(&app.spec).map_err(|e| Error::Internal(e.to_string()))?,
        observed: observed.iter().map(Observed::to_json).collect(),
    };
    let objects = plugin
        .finalize_async(
            input,
            CallContext {
                object: format!("{namespace}/{name}"),
            },
        )
        .await
        .map_err(|e| Error::Transient {
            reason: e.reason(),
            message: e.to_string(),
        })?;
    let owner = Owner {
        api_version: API_VERSION,
        kind: APP_KIND,
        name: &name,
        namespace: &namespace,
        uid: Some(&uid),
    };
    let mut waiting = Vec::new();
    for child in objects {
        ctx.policy
            .check(plugin.info(), &child, &namespace)
            .map_err(|violation| Error::Transient {
                reason: "PolicyViolation",
                message: violation.to_string(),
            })?;
        let desired = decorate(child, &owner, &plugin);
        let key = desired.key().clone();
        let current = ctx.children.find(&namespace, &key);
        let stored = children::apply(&ctx.client, &namespace, &desired, current.as_deref())
            .await
            .map_err(|e| Error::Transient {
                reason: "ApplyFailed",
                message: e.to_string(),
            })?;
        if key.kind != "Job" {
            continue;
        }
        let job = stored.map(Arc::new).or(current);
        let conditions = job
            .as_ref()
            .and_then(|job| job.data.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let holds = |type_: &str| {
            conditions
                .iter()
                .any(|c| c["type"] == type_ && c["status"] == "True")
        };
        if holds("Complete") {
            continue;
        }
        if holds("Failed") {
            return Ok(Step::FinalizeFailed(format!(
                "finalize Job {} failed",
                key.name
            )));
        }
        waiting.push(format!("waiting for finalize Job {}", key.name));
    }
    Ok(if waiting.is_empty() {
        Step::Done
    } else {
        Step::Finalizing(waiting.join("; "))
    })
}

/// Follow `spec.storage.reclaimPolicy`: keep the claims (released from the
/// app, so garbage collection leaves them) or delete them.
async fn reclaim_volumes(
    app: &PortfolioApp,
    ctx: &Context,
    observed: &[Observed],
) -> Result<(), Error> {
    let namespace = app.namespace().unwrap_or_default();
    let uid = app.uid().unwrap_or_default();
    let policy = app
        .spec
        .storage
        .as_ref()
        .map_or(ReclaimPolicy::Retain, |storage| storage.reclaim_policy);
    for claim in observed
        .iter()
        .filter(|c| c.resource.kind == "PersistentVolumeClaim")
    {
        let name = claim.object.name_any();
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &namespace, &claim.resource);
        match policy {
            ReclaimPolicy::Delete => match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {
                    publish(
                        app,
                        ctx,
                        EventType::Normal,
                        "VolumeDeleted",
                        &format!("PersistentVolumeClaim {name} deleted (reclaimPolicy Delete)"),
                    )
                    .await
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(Error::Kube(error)),
            },
            ReclaimPolicy::Retain => {
                let owners: Vec<Value> = claim
                    .object
                    .metadata
                    .owner_references
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .filter(|owner| owner.uid != uid)
                    .filter_map(|owner| serde_json::to_value(owner).ok())
                    .collect();
                // A merge patch replaces the list: only our reference goes.
                let patch = json!({"metadata": {"ownerReferences": owners}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(Error::Kube)?;
                publish(app, ctx, EventType::Normal, "VolumeRetained", &format!("PersistentVolumeClaim {name} is kept (reclaimPolicy Retain) and no longer belongs to the app")).await;
            }
        }
    }
    Ok(())
}

async fn report(
    app: &PortfolioApp,
    ctx: &Context,
    progressing: Option<(&str, String)>,
    degraded: Option<String>,
) -> Result<(), Error> {
    let current = app.status.clone().unwrap_or_default();
    let mut wanted = vec![Wanted {
        type_: conditions::READY,
        status: false,
        reason: "Deleting".into(),
        message: "the app is being deleted".into(),
    }];
    match &progressing {
        Some((reason, message)) => wanted.push(Wanted {
            type_: conditions::PROGRESSING,
            status: true,
            reason: (*reason).into(),
            message: message.clone(),
        }),
        None => wanted.push(Wanted {
            type_: conditions::PROGRESSING,
            status: false,
            reason: "Deleting".into(),
            message: "cleanup is stuck".into(),
        }),
    }
    match &degraded {
        Some(message) => wanted.push(Wanted {
            type_: conditions::DEGRADED,
            status: true,
            reason: conditions::Failure::CleanupFailed.reason().into(),
            message: message.clone(),
        }),
        None => wanted.push(Wanted {
            type_: conditions::DEGRADED,
            status: false,
            reason: "AsExpected".into(),
            message: String::new(),
        }),
    }
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let conditions = conditions::merge(&current.conditions, &wanted, app.metadata.generation, &now);
    let status = PortfolioAppStatus {
        conditions,
        ..current.clone()
    };
    if serde_json::to_value(&status).ok() == serde_json::to_value(&current).ok() {
        return Ok(());
    }
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
    // An event when the step changes, not on every pass.
    let message_of =
        |conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition], type_: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == type_)
                .map(|c| (c.status.clone(), c.message.clone()))
        };
    if let Some((_, message)) = progressing
        && message_of(&current.conditions, conditions::PROGRESSING)
            != Some(("True".into(), message.clone()))
    {
        publish(app, ctx, EventType::Normal, "Deleting", &message).await;
    }
    if let Some(message) = degraded
        && message_of(&current.conditions, conditions::DEGRADED)
            != Some(("True".into(), message.clone()))
    {
        publish(app, ctx, EventType::Warning, "CleanupFailed", &message).await;
    }
    Ok(())
}

async fn publish(app: &PortfolioApp, ctx: &Context, type_: EventType, reason: &str, message: &str) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(message.chars().take(1000).collect()),
        action: "Cleanup".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &app.object_ref(&())).await {
        tracing::warn!(app = %format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any()), error = %error, "cannot publish an event");
    }
}

/// An app whose stored object does not parse: say so (Degraded, InvalidSpec)
/// and wait for a fix. Deleting it removes the finalizer only when
/// [`SKIP_ANNOTATION`] allows it, since a cleanup needs the spec.
pub async fn malformed(
    watched: &WatchedApp,
    problem: &str,
    ctx: &Context,
) -> Result<Action, Error> {
    let meta = &watched.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_default();
    let skip = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(SKIP_ANNOTATION))
        .is_some_and(|v| v == "true");
    let has_finalizer = meta
        .finalizers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|f| f == FINALIZER);
    tracing::warn!(app = %format!("{namespace}/{name}"), problem, "the app does not match the PortfolioApp schema");
    if meta.deletion_timestamp.is_some() && has_finalizer && skip {
        remove_finalizer(meta, ctx).await?;
        return Ok(Action::await_change());
    }
    let mut message = format!(
        "the stored object does not match the PortfolioApp schema: {problem}; fix it (kubectl edit portfolioapp {name} -n {namespace})"
    );
    if meta.deletion_timestamp.is_some() && has_finalizer {
        message.push_str(&format!(
            "; until then it cannot be cleaned up, or set the annotation {SKIP_ANNOTATION}=true to delete it without cleanup"
        ));
    }
    let verdict = conditions::Verdict::Failed {
        failure: conditions::Failure::InvalidSpec,
        message,
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let wanted = conditions::conditions(&verdict);
    let merged = conditions::merge(&watched.conditions, &wanted, meta.generation, &now);
    let unchanged = wanted.iter().all(|want| {
        watched.conditions.iter().any(|c| {
            c.type_ == want.type_
                && (c.status == "True") == want.status
                && c.reason == want.reason
                && c.message == want.message
        })
    });
    if !unchanged {
        let api: Api<WatchedApp> = Api::namespaced(ctx.client.clone(), &namespace);
        // Only the conditions: the rest of the status may be what does not parse.
        let patch = json!({"apiVersion": API_VERSION, "kind": APP_KIND, "metadata": {"name": name}, "status": {"conditions": merged}});
        let written = api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await;
        let transitions = match written {
            Ok(_) => {
                ctx.metrics.status_written();
                conditions::transitions(&watched.conditions, &merged)
            }
            // An API server without validation ratcheting (before 1.30)
            // refuses any write to an object that fails its schema; the Event
            // still tells people.
            Err(kube::Error::Api(status)) if status.code == 422 => {
                vec![conditions::Transition {
                    warning: true,
                    reason: conditions::Failure::InvalidSpec.reason().to_owned(),
                    message: merged
                        .iter()
                        .find(|c| c.type_ == conditions::DEGRADED)
                        .map(|c| c.message.clone())
                        .unwrap_or_default(),
                }]
            }
            Err(error) => return Err(Error::Kube(error)),
        };
        for transition in transitions {
            let event = Event {
                type_: if transition.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: transition.reason,
                note: Some(transition.message.chars().take(1000).collect()),
                action: "Reconcile".into(),
                secondary: None,
            };
            if let Err(error) = ctx.recorder.publish(&event, &watched.object_ref(&())).await {
                tracing::warn!(app = %format!("{namespace}/{name}"), error = %error, "cannot publish an event");
            }
        }
    }
    Ok(Action::await_change())
}
