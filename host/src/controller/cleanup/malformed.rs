//! Apps whose stored object no longer parses: reported, never a stopped watch.

use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::super::conditions::{self, Failure, Transition};
use super::super::status::{self, Target};
use super::super::watched::WatchedApp;
use super::super::{Context, Error};
use super::{FINALIZER, SKIP_ANNOTATION, remove_finalizer};

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
        failure: Failure::InvalidSpec,
        message: message.clone(),
    };
    let now = crate::controller::conditions::now();
    let merged = conditions::merge(
        &watched.conditions,
        &conditions::conditions(&verdict),
        meta.generation,
        &now,
    );
    let target = Target::of(watched);
    // Only the conditions: the rest of the status may be what does not
    // parse. The change test compares the conditions alone, minus the
    // transition times `merge` keeps.
    let before = json!({"conditions": comparable(&watched.conditions)});
    let after = json!({"conditions": comparable(&merged)});
    if before == after {
        return Ok(Action::await_change());
    }
    let status = json!({"conditions": merged});
    match status::write(ctx, &target, &Value::Null, &status).await {
        Ok(_) => status::announce(ctx, &target, &watched.conditions, &merged).await,
        // An API server without validation ratcheting (before 1.30) refuses
        // any write to an object that fails its schema; the Event still
        // tells people.
        Err(error) if error.is_invalid() => {
            status::announce_all(
                ctx,
                &target,
                vec![Transition {
                    warning: true,
                    reason: Failure::InvalidSpec.reason().to_owned(),
                    message,
                }],
            )
            .await;
        }
        Err(error) => return Err(error.into()),
    }
    Ok(Action::await_change())
}

/// Conditions without what `merge` carries over unchanged anyway.
fn comparable(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> Value {
    Value::Array(
        conditions
            .iter()
            .map(|c| json!([c.type_, c.status, c.reason, c.message]))
            .collect(),
    )
}
