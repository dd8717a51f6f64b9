//! What the status of a PortfolioApp says, decided from what a reconcile saw:
//! pure functions, so every rule is tested without an API server.

use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition: the app is serving its current spec.
pub const READY: &str = "Ready";
/// Condition: a change is rolling out.
pub const PROGRESSING: &str = "Progressing";
/// Condition: something is wrong; the reason names the failing step.
pub const DEGRADED: &str = "Degraded";

pub use crate::failure::Failure;

use super::gates::Hold;

/// Where the app's Deployment stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// No Deployment among the children (a plugin may not make one).
    None,
    /// The Deployment controller has not seen the latest spec yet, or pods are being replaced.
    InProgress {
        /// What is happening, for people.
        message: String,
    },
    /// Every replica runs the current template and is available.
    Complete {
        /// Ready pods.
        ready: i32,
    },
    /// The Deployment gave up (`ProgressDeadlineExceeded`).
    Failed {
        /// Kubernetes' message.
        message: String,
    },
}

impl Rollout {
    /// Read a Deployment's status against its generation and desired replicas.
    pub fn of(
        generation: Option<i64>,
        desired: Option<i32>,
        status: Option<&DeploymentStatus>,
    ) -> Self {
        let Some(status) = status else {
            return Rollout::InProgress {
                message: "waiting for the Deployment controller".to_owned(),
            };
        };
        if status.observed_generation < generation {
            return Rollout::InProgress {
                message: "waiting for the Deployment controller to see the new spec".to_owned(),
            };
        }
        let conditions = status.conditions.as_deref().unwrap_or_default();
        if let Some(stuck) = conditions.iter().find(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        }) {
            return Rollout::Failed {
                message: stuck
                    .message
                    .clone()
                    .unwrap_or_else(|| "the rollout exceeded its progress deadline".to_owned()),
            };
        }
        let desired = desired.or(status.replicas).unwrap_or(0);
        let updated = status.updated_replicas.unwrap_or(0);
        let available = status.available_replicas.unwrap_or(0);
        let total = status.replicas.unwrap_or(0);
        // `replicas` leaves out terminating pods, which may still serve the
        // old version through their grace period; where the cluster reports
        // them (`terminatingReplicas`), the rollout waits for them too, so a
        // contract migration never runs under an old pod.
        let terminating = status.terminating_replicas.unwrap_or(0);
        if terminating > 0 && updated >= desired && available >= desired && total <= desired {
            return Rollout::InProgress {
                message: if terminating == 1 {
                    "1 old pod still terminating".to_owned()
                } else {
                    format!("{terminating} old pods still terminating")
                },
            };
        }
        if updated >= desired && available >= desired && total <= desired {
            Rollout::Complete {
                ready: status.ready_replicas.unwrap_or(0),
            }
        } else {
            Rollout::InProgress {
                message: format!("{updated} of {desired} pods updated, {available} available"),
            }
        }
    }
}

/// What a reconcile concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `spec.paused` is set: nothing was applied.
    Paused,
    /// Everything was applied; the rollout is where it is.
    Applied(Rollout),
    /// The new pod template waits for the app's expand migrations: nothing
    /// of the new spec was applied, the previous children stay as they are.
    Held(Hold),
    /// A step failed.
    Failed {
        /// Which step, as a reason.
        failure: Failure,
        /// What to do about it, for people.
        message: String,
    },
}

/// A condition as the status will say it (no timestamp yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// `Ready`, `Progressing` or `Degraded`.
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: bool,
    /// A CamelCase reason a person can look up (`RollingOut`, `Conflict`).
    pub reason: String,
    /// What is going on and, for a failure, what to do about it.
    pub message: String,
}

fn wanted(type_: &'static str, status: bool, reason: &str, message: impl Into<String>) -> Wanted {
    Wanted {
        type_,
        status,
        reason: reason.to_owned(),
        message: message.into(),
    }
}

/// The time now, as a condition holds it: metav1.Time is whole seconds on
/// the wire, so a condition made with a finer time would not equal itself
/// read back, and every comparison with the cached status would differ.
pub fn now() -> Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    Time(k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// The three conditions a verdict means.
pub fn conditions(verdict: &Verdict) -> [Wanted; 3] {
    match verdict {
        Verdict::Paused => [
            wanted(
                READY,
                false,
                "Paused",
                "spec.paused is set: changes are not applied",
            ),
            wanted(PROGRESSING, false, "Paused", "spec.paused is set"),
            wanted(DEGRADED, false, "Paused", "spec.paused is set"),
        ],
        Verdict::Applied(Rollout::None) => [
            wanted(READY, true, "Applied", "every object is applied"),
            wanted(PROGRESSING, false, "Applied", "every object is applied"),
            wanted(DEGRADED, false, "AsExpected", ""),
        ],
        Verdict::Applied(Rollout::InProgress { message }) => [
            wanted(READY, false, "RollingOut", message.clone()),
            wanted(PROGRESSING, true, "RollingOut", message.clone()),
            wanted(DEGRADED, false, "AsExpected", ""),
        ],
        Verdict::Applied(Rollout::Complete { ready }) => [
            wanted(READY, true, "Available", format!("{ready} pods ready")),
            wanted(
                PROGRESSING,
                false,
                "RolloutComplete",
                "the current spec is rolled out",
            ),
            wanted(DEGRADED, false, "AsExpected", ""),
        ],
        Verdict::Applied(Rollout::Failed { message }) => [
            wanted(
                READY,
                false,
                Failure::RolloutFailed.reason(),
                message.clone(),
            ),
            wanted(
                PROGRESSING,
                false,
                Failure::RolloutFailed.reason(),
                message.clone(),
            ),
            wanted(
                DEGRADED,
                true,
                Failure::RolloutFailed.reason(),
                message.clone(),
            ),
        ],
        Verdict::Held(hold @ Hold::Pending { message }) => [
            wanted(READY, false, hold.failure().reason(), message.clone()),
            wanted(PROGRESSING, true, hold.failure().reason(), message.clone()),
            wanted(DEGRADED, false, "AsExpected", ""),
        ],
        Verdict::Held(hold @ Hold::Failed { message }) => [
            wanted(READY, false, hold.failure().reason(), message.clone()),
            wanted(PROGRESSING, false, hold.failure().reason(), message.clone()),
            wanted(DEGRADED, true, hold.failure().reason(), message.clone()),
        ],
        Verdict::Failed { failure, message } => [
            wanted(READY, false, failure.reason(), message.clone()),
            wanted(PROGRESSING, false, failure.reason(), message.clone()),
            wanted(DEGRADED, true, failure.reason(), message.clone()),
        ],
    }
}

/// Merge `wanted` into `current`: a condition whose status is unchanged keeps
/// its `lastTransitionTime`; others not among the three (the plugin's own)
/// are left to the caller.
pub fn merge(
    current: &[Condition],
    wanted: &[Wanted],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    wanted
        .iter()
        .map(|want| {
            let status = if want.status { "True" } else { "False" };
            let since = current
                .iter()
                .find(|c| c.type_ == want.type_ && c.status == status)
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            Condition {
                type_: want.type_.to_owned(),
                status: status.to_owned(),
                reason: want.reason.clone(),
                message: want.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// A condition change worth an event: its status flipped, or (for a
/// failure) its reason changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Whether it is bad news (a Warning Event).
    pub warning: bool,
    /// The Event's reason: the condition's.
    pub reason: String,
    /// The Event's note.
    pub message: String,
}

/// The events `after` deserves, compared with `before`.
pub fn transitions(before: &[Condition], after: &[Condition]) -> Vec<Transition> {
    let find = |conditions: &[Condition], type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    let mut events = Vec::new();
    if let Some((status, reason)) = find(after, READY)
        && find(before, READY).map(|(s, _)| s) != Some(status.clone())
        && status == "True"
    {
        events.push(Transition {
            warning: false,
            reason,
            message: "the app is ready".to_owned(),
        });
    }
    if let Some((status, reason)) = find(after, DEGRADED)
        && status == "True"
        && find(before, DEGRADED) != Some((status.clone(), reason.clone()))
    {
        let message = after
            .iter()
            .find(|c| c.type_ == DEGRADED)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        events.push(Transition {
            warning: true,
            reason,
            message,
        });
    }
    // A held rollout is news when it starts and when it ends (a failed
    // migration is already news as Degraded).
    let pending = Failure::MigrationsPending.reason();
    let held = |conditions: &[Condition]| {
        find(conditions, PROGRESSING).is_some_and(|(_, reason)| reason == pending)
    };
    if held(after) && !held(before) {
        let message = after
            .iter()
            .find(|c| c.type_ == PROGRESSING)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        events.push(Transition {
            warning: false,
            reason: pending.to_owned(),
            message,
        });
    }
    let holding = |conditions: &[Condition]| {
        let failed = Failure::MigrationFailed.reason();
        find(conditions, PROGRESSING)
            .is_some_and(|(_, reason)| reason == pending || reason == failed)
    };
    if holding(before) && !holding(after) {
        events.push(Transition {
            warning: false,
            reason: "RolloutReleased".to_owned(),
            message: "the rollout is no longer held by migrations".to_owned(),
        });
    }
    if let Some((status, _)) = find(after, DEGRADED)
        && status == "False"
        && find(before, DEGRADED).is_some_and(|(s, _)| s == "True")
    {
        events.push(Transition {
            warning: false,
            reason: "Recovered".to_owned(),
            message: "the app is no longer degraded".to_owned(),
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentCondition;

    fn status(observed: i64, replicas: i32, updated: i32, available: i32) -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ready_replicas: Some(available),
            ..Default::default()
        }
    }

    fn time(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn rollouts_are_read_like_kubectl_rollout_status() {
        assert!(matches!(
            Rollout::of(Some(2), Some(3), None),
            Rollout::InProgress { .. }
        ));
        assert!(matches!(
            Rollout::of(Some(2), Some(3), Some(&status(1, 3, 3, 3))),
            Rollout::InProgress { .. }
        ));
        assert!(matches!(
            Rollout::of(Some(2), Some(3), Some(&status(2, 4, 2, 3))),
            Rollout::InProgress { .. }
        ));
        assert_eq!(
            Rollout::of(Some(2), Some(3), Some(&status(2, 3, 3, 3))),
            Rollout::Complete { ready: 3 }
        );
        let mut terminating = status(2, 3, 3, 3);
        terminating.terminating_replicas = Some(1);
        assert_eq!(
            Rollout::of(Some(2), Some(3), Some(&terminating)),
            Rollout::InProgress {
                message: "1 old pod still terminating".into()
            }
        );
        // With autoscaling the Deployment's own replica count is the target.
        assert_eq!(
            Rollout::of(Some(2), None, Some(&status(2, 5, 5, 5))),
            Rollout::Complete { ready: 5 }
        );
        let mut stuck = status(2, 3, 1, 2);
        stuck.conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet \"shop-1\" has timed out progressing.".into()),
            ..Default::default()
        }]);
        assert!(matches!(
            Rollout::of(Some(2), Some(3), Some(&stuck)),
            Rollout::Failed { message } if message.contains("timed out")
        ));
    }

    #[test]
    fn failures_name_the_step_in_all_three_conditions() {
        let [ready, progressing, degraded] = conditions(&Verdict::Failed {
            failure: Failure::PolicyViolation,
            message: "no ClusterRoles".into(),
        });
        assert!(!ready.status && !progressing.status && degraded.status);
        assert_eq!(degraded.reason, "PolicyViolation");
        assert_eq!(ready.message, "no ClusterRoles");
        assert!(Failure::PolicyViolation.waits_for_change());
        assert!(!Failure::ApplyFailed.waits_for_change());
    }

    #[test]
    fn a_held_rollout_progresses_and_a_failed_migration_degrades() {
        let pending = Hold::Pending {
            message: "the new pod template waits for expand migration m (Running)".into(),
        };
        let [ready, progressing, degraded] = conditions(&Verdict::Held(pending));
        assert_eq!(
            (ready.status, progressing.status, degraded.status),
            (false, true, false)
        );
        assert_eq!(ready.reason, "MigrationsPending");
        assert_eq!(progressing.reason, "MigrationsPending");
        assert!(progressing.message.contains("m (Running)"));
        let failed = Hold::Failed {
            message: "expand migration m failed: bad SQL".into(),
        };
        let [ready, progressing, degraded] = conditions(&Verdict::Held(failed));
        assert_eq!(
            (ready.status, progressing.status, degraded.status),
            (false, false, true)
        );
        assert_eq!(degraded.reason, "MigrationFailed");
        assert_eq!(degraded.message, "expand migration m failed: bad SQL");
    }

    #[test]
    fn holding_and_releasing_a_rollout_are_events() {
        let ready = merge(
            &[],
            &conditions(&Verdict::Applied(Rollout::Complete { ready: 2 })),
            Some(1),
            &time(1),
        );
        let held = merge(
            &ready,
            &conditions(&Verdict::Held(Hold::Pending {
                message: "waits for m (Pending)".into(),
            })),
            Some(2),
            &time(2),
        );
        let events = transitions(&ready, &held);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            (events[0].warning, events[0].reason.as_str()),
            (false, "MigrationsPending")
        );
        assert_eq!(events[0].message, "waits for m (Pending)");
        let still = merge(
            &held,
            &conditions(&Verdict::Held(Hold::Pending {
                message: "waits for m (Running)".into(),
            })),
            Some(2),
            &time(3),
        );
        assert!(
            transitions(&held, &still).is_empty(),
            "a new phase is no news"
        );
        let failed = merge(
            &still,
            &conditions(&Verdict::Held(Hold::Failed {
                message: "m failed".into(),
            })),
            Some(2),
            &time(4),
        );
        let events = transitions(&still, &failed);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].warning && events[0].reason == "MigrationFailed");
        let rolling = merge(
            &failed,
            &conditions(&Verdict::Applied(Rollout::InProgress {
                message: "1 of 2 pods updated".into(),
            })),
            Some(2),
            &time(5),
        );
        let reasons: Vec<String> = transitions(&failed, &rolling)
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, ["RolloutReleased", "Recovered"]);
    }

    #[test]
    fn transition_times_move_only_when_status_changes() {
        let first = merge(
            &[],
            &conditions(&Verdict::Applied(Rollout::InProgress {
                message: "1 of 3".into(),
            })),
            Some(1),
            &time(100),
        );
        let second = merge(
            &first,
            &conditions(&Verdict::Applied(Rollout::InProgress {
                message: "2 of 3".into(),
            })),
            Some(1),
            &time(200),
        );
        assert_eq!(
            second[0].last_transition_time,
            time(100),
            "Ready stayed False"
        );
        assert_eq!(second[0].message, "2 of 3");
        let third = merge(
            &second,
            &conditions(&Verdict::Applied(Rollout::Complete { ready: 3 })),
            Some(1),
            &time(300),
        );
        assert_eq!(
            third[0].last_transition_time,
            time(300),
            "Ready became True"
        );
        assert_eq!(
            third[2].last_transition_time,
            time(100),
            "Degraded stayed False"
        );
    }

    #[test]
    fn events_mark_transitions_not_reconciles() {
        let rolling = merge(
            &[],
            &conditions(&Verdict::Applied(Rollout::InProgress {
                message: "m".into(),
            })),
            Some(1),
            &time(1),
        );
        let ready = merge(
            &rolling,
            &conditions(&Verdict::Applied(Rollout::Complete { ready: 2 })),
            Some(1),
            &time(2),
        );
        assert_eq!(transitions(&rolling, &ready).len(), 1);
        assert!(
            transitions(&ready, &ready).is_empty(),
            "no event when nothing changed"
        );
        let broken = merge(
            &ready,
            &conditions(&Verdict::Failed {
                failure: Failure::InvalidSpec,
                message: "bad".into(),
            }),
            Some(2),
            &time(3),
        );
        let events = transitions(&ready, &broken);
        assert_eq!(events.len(), 1);
        assert!(events[0].warning);
        assert_eq!(events[0].reason, "InvalidSpec");
        let other = merge(
            &broken,
            &conditions(&Verdict::Failed {
                failure: Failure::ApplyFailed,
                message: "x".into(),
            }),
            Some(2),
            &time(4),
        );
        assert_eq!(
            transitions(&broken, &other).len(),
            1,
            "a new failure is news"
        );
        let fixed = merge(
            &other,
            &conditions(&Verdict::Applied(Rollout::Complete { ready: 2 })),
            Some(3),
            &time(5),
        );
        let events = transitions(&other, &fixed);
        assert!(events.iter().any(|e| e.reason == "Recovered"));
        assert!(events.iter().any(|e| e.reason == "Available"));
    }
}
