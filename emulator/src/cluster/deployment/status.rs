//! The Deployment's status and conditions, as Kubernetes' `calculateStatus`,
//! `syncRolloutStatus` and `checkPausedConditions` write them.

use std::time::Duration;

use serde_json::{Value, json};

use super::strategy::{replicas, surge_and_unavailable};
use super::{spec_replicas, status_count};
use crate::api::now;
use crate::cluster::{condition, int_at, omit_zero, seconds_since, str_at};

/// Sets a deployment condition as Kubernetes' `SetDeploymentCondition` does: no change when
/// status and reason are the same; the transition time survives a same-status change; the
/// condition moves to the end.
pub(super) fn set_condition(
    conds: &mut Vec<Value>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) {
    let ts = now();
    let current = conds
        .iter()
        .find(|c| c.get("type") == Some(&json!(type_)))
        .cloned();
    if let Some(c) = &current
        && c.get("status") == Some(&json!(status))
        && c.get("reason") == Some(&json!(reason))
    {
        return;
    }
    let since = current
        .as_ref()
        .filter(|c| c.get("status") == Some(&json!(status)))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or(json!(ts));
    conds.retain(|c| c.get("type") != Some(&json!(type_)));
    conds.push(
        json!({"type": type_, "status": status, "lastUpdateTime": ts,
        "lastTransitionTime": since, "reason": reason, "message": message}),
    );
}

/// Removes a condition.
fn remove_condition(conds: &mut Vec<Value>, type_: &str) {
    conds.retain(|c| c.get("type") != Some(&json!(type_)));
}

/// Whether the Deployment has a progress deadline (Kubernetes' "none" is MaxInt32).
pub(super) fn has_progress_deadline(d: &Value) -> bool {
    int_at(d, "/spec/progressDeadlineSeconds").is_some_and(|s| s != i64::from(i32::MAX))
}

/// The Progressing condition of a paused or resumed Deployment (unless its deadline passed).
pub(super) fn check_paused(d: &Value, paused: bool, conds: &mut Vec<Value>) {
    if has_progress_deadline(d) {
        let reason = condition(&json!(conds), "Progressing")
            .map(|c| str_at(c, "/reason").to_string())
            .unwrap_or_default();
        if reason != "ProgressDeadlineExceeded" {
            if paused && reason != "DeploymentPaused" {
                set_condition(
                    conds,
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused",
                );
            } else if !paused && reason == "DeploymentPaused" {
                set_condition(
                    conds,
                    "Progressing",
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed",
                );
            }
        }
    }
}

/// The Deployment's status from its ReplicaSets (`calculateStatus`) with the Available,
/// Progressing and ReplicaFailure conditions (`syncRolloutStatus`, not while paused); and when
/// to look again for a progress deadline.
pub(super) fn rollout_status(
    d: &Value,
    name: &str,
    new_rs: Option<&Value>,
    olds: &[Value],
    old_status: &Value,
    mut conds: Vec<Value>,
    paused: bool,
) -> (Value, Option<Duration>) {
    let mut all: Vec<&Value> = olds.iter().collect();
    if let Some(rs) = new_rs {
        all.push(rs);
    }
    let available: i64 = all
        .iter()
        .map(|r| status_count(r, "availableReplicas"))
        .sum();
    let total_spec: i64 = all.iter().map(|r| spec_replicas(r)).sum();
    let want = replicas(d);
    let (_, max_unavailable) = surge_and_unavailable(d);
    let mut status = json!({
        "observedGeneration": int_at(d, "/metadata/generation").unwrap_or(1),
        "replicas": all.iter().map(|r| status_count(r, "replicas")).sum::<i64>(),
        "updatedReplicas": new_rs.map(|r| status_count(r, "replicas")).unwrap_or(0),
        "readyReplicas": all.iter().map(|r| status_count(r, "readyReplicas")).sum::<i64>(),
        "availableReplicas": available,
        "unavailableReplicas": (total_spec - available).max(0),
    });
    if let Some(c) = old_status.get("collisionCount") {
        status["collisionCount"] = c.clone();
    }
    let max_unavailable = if want == 0 { 0 } else { max_unavailable };
    if available >= want - max_unavailable {
        set_condition(
            &mut conds,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        );
    } else {
        set_condition(
            &mut conds,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        );
    }
    // syncRolloutStatus (not while paused: the paused condition stands)
    let mut requeue = None;
    if !paused {
        if !has_progress_deadline(d) {
            remove_condition(&mut conds, "Progressing");
        } else {
            let current = condition(
                &json!(old_status.get("conditions").cloned().unwrap_or(json!([]))),
                "Progressing",
            )
            .cloned();
            let current_reason = current
                .as_ref()
                .map(|c| str_at(c, "/reason").to_string())
                .unwrap_or_default();
            let replicas_now = int_at(&status, "/replicas").unwrap_or(0);
            let updated = int_at(&status, "/updatedReplicas").unwrap_or(0);
            let complete_before =
                replicas_now == updated && current_reason == "NewReplicaSetAvailable";
            let rs_name = new_rs.map(|r| str_at(r, "/metadata/name").to_string());
            let what = |verb: &str| match &rs_name {
                Some(n) => format!("ReplicaSet \"{n}\" {verb}"),
                None => format!("Deployment \"{name}\" {verb}"),
            };
            let complete = updated == want
                && replicas_now == want
                && available == want
                && int_at(&status, "/observedGeneration") >= int_at(d, "/metadata/generation");
            let old = |f: &str| int_at(old_status, &format!("/{f}")).unwrap_or(0);
            let progressing = updated > old("updatedReplicas")
                || (replicas_now - updated) < (old("replicas") - old("updatedReplicas"))
                || int_at(&status, "/readyReplicas").unwrap_or(0) > old("readyReplicas")
                || available > old("availableReplicas");
            let deadline = int_at(d, "/spec/progressDeadlineSeconds").unwrap_or(600);
            let progress_cond = condition(&json!(conds), "Progressing").cloned();
            let last_update = progress_cond
                .as_ref()
                .map(|c| str_at(c, "/lastUpdateTime").to_string())
                .unwrap_or_default();
            let reason_now = progress_cond
                .as_ref()
                .map(|c| str_at(c, "/reason").to_string())
                .unwrap_or_default();
            if !complete_before {
                if complete {
                    set_condition(
                        &mut conds,
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        &what("has successfully progressed."),
                    );
                } else if progressing {
                    let since = progress_cond
                        .as_ref()
                        .filter(|c| c.get("status") == Some(&json!("True")))
                        .and_then(|c| c.get("lastTransitionTime").cloned());
                    remove_condition(&mut conds, "Progressing");
                    set_condition(
                        &mut conds,
                        "Progressing",
                        "True",
                        "ReplicaSetUpdated",
                        &what("is progressing."),
                    );
                    if let (Some(since), Some(c)) = (since, conds.last_mut()) {
                        c["lastTransitionTime"] = since;
                    }
                } else if reason_now != "NewReplicaSetAvailable"
                    && progress_cond.is_some()
                    && (reason_now == "ProgressDeadlineExceeded"
                        || seconds_since(&last_update) > deadline as f64)
                {
                    set_condition(
                        &mut conds,
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        &what("has timed out progressing."),
                    );
                } else if progress_cond.is_some() && reason_now != "ProgressDeadlineExceeded" {
                    // requeueStuckDeployment: look again when the deadline passes.
                    let left = deadline as f64 - seconds_since(&last_update);
                    requeue = Some(Duration::from_secs_f64(left.max(0.0) + 0.6));
                }
            }
        }
        // ReplicaFailure conditions of the ReplicaSets move up.
        let failure = new_rs.into_iter().chain(olds).find_map(|r| {
            r.pointer("/status/conditions")
                .and_then(|c| condition(c, "ReplicaFailure"))
                .cloned()
        });
        match failure {
            Some(f) => set_condition(
                &mut conds,
                "ReplicaFailure",
                str_at(&f, "/status"),
                str_at(&f, "/reason"),
                str_at(&f, "/message"),
            ),
            None => remove_condition(&mut conds, "ReplicaFailure"),
        }
    }
    status["conditions"] = Value::Array(conds);
    omit_zero(
        &mut status,
        &[
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ],
    );
    (status, requeue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_transition_time_and_skip_no_ops() {
        let mut c = Vec::new();
        set_condition(
            &mut c,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "m",
        );
        let before = c.clone();
        set_condition(
            &mut c,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "m",
        );
        assert_eq!(c, before);
        set_condition(&mut c, "Progressing", "True", "NewReplicaSetCreated", "x");
        set_condition(
            &mut c,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "ok",
        );
        assert_eq!(c[1]["type"], "Available");
    }
}
