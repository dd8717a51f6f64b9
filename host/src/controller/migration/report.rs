//! What a migration's status says: its phase, the three conditions that
//! phase means, a bounded history, and the Event a phase change deserves.
//! Pure functions, tested without a server.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use portfolio_api::{DatabaseMigrationStatus, MigrationRun, MigrationStatusPhase};

use crate::controller::conditions::{self, DEGRADED, PROGRESSING, READY, Wanted};

/// Runs kept in `status.history`.
pub const MAX_HISTORY: usize = 10;
/// Steps shown in `status.plan`.
pub const MAX_PLAN_STEPS: usize = 20;
/// Longest `status.planSummary` and `status.lastError`.
pub const MAX_TEXT: usize = 4096;

/// Where a migration stands after a reconcile: its phase, and the reason and
/// message its conditions give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    /// The phase.
    pub phase: MigrationStatusPhase,
    /// CamelCase reason (`Running`, `WaitingForLock`, `SqlError`, …).
    pub reason: String,
    /// What is going on, for people.
    pub message: String,
}

impl Standing {
    /// A standing of `phase` with `reason` and `message`.
    pub fn new(phase: MigrationStatusPhase, reason: &str, message: impl Into<String>) -> Self {
        Standing {
            phase,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// As written in status: `Pending`, `Running`, ….
pub fn phase_name(phase: MigrationStatusPhase) -> &'static str {
    match phase {
        MigrationStatusPhase::Pending => "Pending",
        MigrationStatusPhase::Planning => "Planning",
        MigrationStatusPhase::AwaitingApproval => "AwaitingApproval",
        MigrationStatusPhase::Running => "Running",
        MigrationStatusPhase::Succeeded => "Succeeded",
        MigrationStatusPhase::Failed => "Failed",
    }
}

fn wanted(type_: &'static str, status: bool, reason: &str, message: &str) -> Wanted {
    Wanted {
        type_,
        status,
        reason: reason.to_owned(),
        message: message.to_owned(),
    }
}

/// `Ready`, `Progressing` and `Degraded` for a standing.
pub fn wanted_conditions(standing: &Standing) -> [Wanted; 3] {
    let (reason, message) = (standing.reason.as_str(), standing.message.as_str());
    match standing.phase {
        MigrationStatusPhase::Succeeded => [
            wanted(READY, true, reason, message),
            wanted(PROGRESSING, false, reason, message),
            wanted(DEGRADED, false, "AsExpected", ""),
        ],
        MigrationStatusPhase::Failed => [
            wanted(READY, false, reason, message),
            wanted(PROGRESSING, false, reason, message),
            wanted(DEGRADED, true, reason, message),
        ],
        MigrationStatusPhase::AwaitingApproval => [
            wanted(READY, false, reason, message),
            wanted(PROGRESSING, false, reason, message),
            wanted(DEGRADED, false, "AsExpected", ""),
        ],
        MigrationStatusPhase::Pending
        | MigrationStatusPhase::Planning
        | MigrationStatusPhase::Running => [
            wanted(READY, false, reason, message),
            wanted(PROGRESSING, true, reason, message),
            // A problem that is retried (a plugin failure, a failed attempt)
            // degrades the migration while it lasts.
            wanted(
                DEGRADED,
                is_problem(reason),
                if is_problem(reason) {
                    reason
                } else {
                    "AsExpected"
                },
                if is_problem(reason) { message } else { "" },
            ),
        ],
    }
}

/// Reasons of a phase that keeps going but is not well: a retried failure.
fn is_problem(reason: &str) -> bool {
    matches!(
        reason,
        "Retrying" | "PluginNotFound" | "PluginFailed" | "Conflict" | "ApiError"
    )
}

/// The conditions of `standing`, keeping transition times of those that did not change.
pub fn conditions(
    current: &[Condition],
    standing: &Standing,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    conditions::merge(current, &wanted_conditions(standing), generation, now)
}

/// Add `run` to the history, newest first, at most [`MAX_HISTORY`] long,
/// unless the same Job's run is there already.
pub fn record(status: &mut DatabaseMigrationStatus, run: MigrationRun) {
    if !run.job.is_empty()
        && status
            .history
            .iter()
            .any(|r| r.job == run.job && r.result == run.result)
    {
        return;
    }
    status.history.insert(0, run);
    status.history.truncate(MAX_HISTORY);
}

/// `text` cut to at most `max` bytes on a character boundary.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The Event a change from `before` to `after` deserves: (warning, reason, note).
pub fn phase_event(
    before: Option<MigrationStatusPhase>,
    after: &Standing,
) -> Option<(bool, String, String)> {
    if before == Some(after.phase) {
        return None;
    }
    let warning = after.phase == MigrationStatusPhase::Failed;
    Some((
        warning,
        phase_name(after.phase).to_owned(),
        if after.message.is_empty() {
            after.reason.clone()
        } else {
            after.message.clone()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(job: &str, result: &str) -> MigrationRun {
        MigrationRun {
            plan_hash: "sha256:x".into(),
            step: "migrate".into(),
            job: job.into(),
            result: result.into(),
            ..MigrationRun::default()
        }
    }

    #[test]
    fn history_is_bounded_newest_first_and_never_repeats_a_job() {
        let mut status = DatabaseMigrationStatus::default();
        for i in 0..15 {
            record(&mut status, run(&format!("j{i}"), "Failed"));
        }
        record(&mut status, run("j14", "Failed"));
        assert_eq!(status.history.len(), MAX_HISTORY);
        assert_eq!(status.history[0].job, "j14");
        assert_eq!(status.history[1].job, "j13");
    }

    #[test]
    fn each_phase_says_ready_progressing_and_degraded() {
        let of = |phase, reason| {
            wanted_conditions(&Standing::new(phase, reason, "m"))
                .map(|w| (w.type_, w.status, w.reason))
        };
        assert_eq!(
            of(MigrationStatusPhase::Succeeded, "Succeeded"),
            [
                (READY, true, "Succeeded".to_owned()),
                (PROGRESSING, false, "Succeeded".to_owned()),
                (DEGRADED, false, "AsExpected".to_owned())
            ]
        );
        assert_eq!(
            of(MigrationStatusPhase::Failed, "SqlError")[2],
            (DEGRADED, true, "SqlError".to_owned())
        );
        assert_eq!(
            of(MigrationStatusPhase::Pending, "WaitingForLock")[1],
            (PROGRESSING, true, "WaitingForLock".to_owned())
        );
        assert!(of(MigrationStatusPhase::Running, "Retrying")[2].1);
        assert!(!of(MigrationStatusPhase::AwaitingApproval, "AwaitingApproval")[1].1);
    }

    #[test]
    fn only_phase_changes_make_events() {
        let running = Standing::new(MigrationStatusPhase::Running, "Running", "step migrate");
        assert_eq!(
            phase_event(Some(MigrationStatusPhase::Running), &running),
            None
        );
        assert_eq!(
            phase_event(Some(MigrationStatusPhase::Pending), &running),
            Some((false, "Running".into(), "step migrate".into()))
        );
        let failed = Standing::new(MigrationStatusPhase::Failed, "SqlError", "");
        assert_eq!(
            phase_event(None, &failed),
            Some((true, "Failed".into(), "SqlError".into()))
        );
    }

    #[test]
    fn long_texts_are_clipped_on_a_character_boundary() {
        assert_eq!(clip("short", 10), "short");
        let cut = clip(&"é".repeat(100), 11);
        assert!(cut.len() <= 11 && cut.ends_with('…'), "{cut}");
    }
}
