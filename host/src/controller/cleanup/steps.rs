//! The deletion steps of an app: graceful shutdown, then the plugin's
//! `finalize` objects (a backup Job) to completion, then the volume's
//! reclaim policy, then let go. Every step is read from the cluster, so a
//! restarted operator carries on where it was.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::core::DynamicObject;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use portfolio_api::{APP_KIND, PortfolioApp, ReclaimPolicy};
use serde_json::{Value, json};

use super::super::act::Children;
use super::super::app::{generator_of, pipeline_failure};
use super::super::children::Observed;
use super::super::conditions::{self, Wanted};
use super::super::decide::{Existing, OwnerRef, decide};
use super::super::status::{self, Target};
use super::super::{Context, Error};
use super::{SKIP_ANNOTATION, remove_finalizer};
use crate::decorate::FIELD_MANAGER;
use crate::events::{self, Severity};
use crate::failure::{Failure, ReconcileError};
use crate::pipeline::Subject;

/// How often a cleanup that waits looks again.
const POLL: Duration = Duration::from_secs(2);

/// Where a cleanup stands.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Waiting for pods to stop.
    ShuttingDown(String),
    /// Waiting for a finalize Job.
    Finalizing(String),
    /// A finalize Job failed, or cannot be created; only a person can decide.
    Blocked(String),
    /// Everything done.
    Done,
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
            Severity::Warning,
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
                    Severity::Normal,
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
        Step::Blocked(message) => (
            None,
            Some(format!(
                "{message}; or set the annotation {SKIP_ANNOTATION}=true to delete without cleanup"
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
        match api.delete(&child.object.name_any(), &only(child)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => {
                return Err(ReconcileError::api(
                    Failure::CleanupFailed,
                    &format!("deleting {} before the shutdown", child.key()),
                    &error,
                ));
            }
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
                .map_err(|error| {
                    ReconcileError::api(
                        Failure::CleanupFailed,
                        &format!("scaling Deployment {name} to zero"),
                        &error,
                    )
                })?;
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

/// Delete options that delete `child` and nothing created under its name since.
fn only(child: &Observed) -> DeleteParams {
    DeleteParams {
        preconditions: Some(Preconditions {
            uid: child.object.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    }
}

/// Apply what the plugin's `finalize` returns, through the same pipeline and
/// the same rules as every apply, and wait for its Jobs.
async fn finalize(app: &PortfolioApp, ctx: &Context, observed: &[Observed]) -> Result<Step, Error> {
    let namespace = app.namespace().unwrap_or_default();
    let name = app.name_any();
    let uid = app.uid().unwrap_or_default();
    let plugin = generator_of(app, ctx).map_err(|e| pipeline_failure(ctx, &e))?;
    let subject =
        Subject::new(APP_KIND, &app.metadata, &app.spec).map_err(|e| pipeline_failure(ctx, &e))?;
    let desired = ctx
        .pipeline()
        .finalize(
            &plugin,
            &subject,
            observed.iter().map(Observed::to_json).collect(),
        )
        .await
        .map_err(|e| pipeline_failure(ctx, &e))?;

    let children = Children {
        client: &ctx.client,
        namespace: &namespace,
        kinds: ctx.policy.kinds(),
    };
    let ours: BTreeSet<_> = observed.iter().map(Observed::key).collect();
    let unknown: Vec<_> = desired
        .iter()
        .map(|o| o.key())
        .filter(|key| !ours.contains(*key))
        .collect();
    let mut existing: BTreeMap<_, Existing> = BTreeMap::new();
    for key in &unknown {
        if let Some(cached) = ctx.children.find(&namespace, key) {
            existing.insert(
                (*key).clone(),
                Existing::Present(Box::new(DynamicObject::clone(&cached))),
            );
        }
    }
    let missing: Vec<_> = unknown
        .into_iter()
        .filter(|key| !existing.contains_key(*key))
        .collect();
    existing.extend(children.existing(missing).await?);
    let owner = OwnerRef {
        kind: APP_KIND,
        name: &name,
        uid: &uid,
    };
    // Only the finalize objects are decided on: nothing is pruned here.
    let decision = decide(owner, &desired, observed, &existing, ctx.policy.kinds());
    if let Some(conflict) = decision.conflicts.first() {
        return Ok(Step::Blocked(format!(
            "the finalize object {} already exists and {}",
            conflict.key, conflict.holder
        )));
    }
    let mut stored = BTreeMap::new();
    for object in &decision.apply {
        let applied = children.apply(object).await?;
        ctx.metrics.applied();
        stored.insert(object.key().clone(), applied.status().cloned());
    }

    let mut waiting = Vec::new();
    for object in desired.iter().filter(|o| o.key().kind == "Job") {
        let key = object.key();
        // Its status as the apply answered, or as the watch holds it.
        let status = match stored.get(key) {
            Some(status) => status.clone(),
            None => observed
                .iter()
                .find(|c| &c.key() == key)
                .and_then(|c| c.object.data.get("status").cloned()),
        };
        let conditions = status
            .as_ref()
            .and_then(|status| status.get("conditions"))
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
            return Ok(Step::Blocked(format!(
                "finalize Job {} failed; fix it and delete the failed Job to retry",
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
        let failed = |what: &str, error: &kube::Error| {
            ReconcileError::api(
                Failure::CleanupFailed,
                &format!("{what} PersistentVolumeClaim {name}"),
                error,
            )
        };
        match policy {
            ReclaimPolicy::Delete => match api.delete(&name, &only(claim)).await {
                Ok(_) => {
                    publish(
                        app,
                        ctx,
                        Severity::Normal,
                        "VolumeDeleted",
                        &format!("PersistentVolumeClaim {name} deleted (reclaimPolicy Delete)"),
                    )
                    .await
                }
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                Err(error) => return Err(failed("deleting", &error)),
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
                    .map_err(|error| failed("releasing", &error))?;
                publish(app, ctx, Severity::Normal, "VolumeRetained", &format!("PersistentVolumeClaim {name} is kept (reclaimPolicy Retain) and no longer belongs to the app")).await;
            }
        }
    }
    Ok(())
}

/// Say where the cleanup stands in the conditions, and in an Event when the
/// step changes (not on every pass).
async fn report(
    app: &PortfolioApp,
    ctx: &Context,
    progressing: Option<(&str, String)>,
    degraded: Option<String>,
) -> Result<(), Error> {
    let uid = app.uid().unwrap_or_default();
    let current = ctx
        .written
        .current(&uid, &app.status.clone().unwrap_or_default());
    let mut wanted = vec![Wanted {
        type_: conditions::READY,
        status: false,
        reason: "Deleting".into(),
        message: "the app is being deleted".into(),
    }];
    wanted.push(match &progressing {
        Some((reason, message)) => Wanted {
            type_: conditions::PROGRESSING,
            status: true,
            reason: (*reason).into(),
            message: message.clone(),
        },
        None => Wanted {
            type_: conditions::PROGRESSING,
            status: false,
            reason: "Deleting".into(),
            message: "cleanup is stuck".into(),
        },
    });
    wanted.push(match &degraded {
        Some(message) => Wanted {
            type_: conditions::DEGRADED,
            status: true,
            reason: Failure::CleanupFailed.reason().into(),
            message: message.clone(),
        },
        None => Wanted {
            type_: conditions::DEGRADED,
            status: false,
            reason: "AsExpected".into(),
            message: String::new(),
        },
    });
    let now = crate::controller::conditions::now();
    let conditions = conditions::merge(&current.conditions, &wanted, app.metadata.generation, &now);
    let status = portfolio_api::PortfolioAppStatus {
        conditions,
        ..current.clone()
    };
    if !status::write(ctx, &Target::of(app), &current, &status).await? {
        return Ok(());
    }
    ctx.written.wrote(&uid, current.clone(), status);
    let holds = |type_: &str, message: &str| {
        current
            .conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True" && c.message == message)
    };
    if let Some((_, message)) = progressing
        && !holds(conditions::PROGRESSING, &message)
    {
        publish(app, ctx, Severity::Normal, "Deleting", &message).await;
    }
    if let Some(message) = degraded
        && !holds(conditions::DEGRADED, &message)
    {
        publish(app, ctx, Severity::Warning, "CleanupFailed", &message).await;
    }
    Ok(())
}

async fn publish(
    app: &PortfolioApp,
    ctx: &Context,
    severity: Severity,
    reason: &str,
    message: &str,
) {
    events::publish(
        &ctx.recorder,
        &app.object_ref(&()),
        severity,
        reason,
        "Cleanup",
        message,
    )
    .await;
}
