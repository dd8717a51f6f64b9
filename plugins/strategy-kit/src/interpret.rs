//! From an observed Job and its termination message to a step's outcome.
//!
//! The Job's conditions say whether the step is over; the summary in the
//! termination message says what happened. Either may be missing or
//! unhelpful (a pod garbage-collected before its message was read, a
//! container killed before it could write one, a message replaced by log
//! text), so each is used for what it can tell and the rest is inferred.

use alloc::format;

use crate::classify::{connection_problem, job_failure};
use crate::observe::{JobState, job_state};
use crate::summary::Summary;
use crate::{Error, Failure, Outcome};

/// What a tool knows about its own output.
pub trait Reader {
    /// The outcome told by a summary of a finished step.
    fn read(&self, summary: &Summary<'_>) -> Outcome;

    /// The outcome told by log text that replaced the summary (the kubelet's
    /// `FallbackToLogsOnError`), if the text says anything recognisable.
    fn read_text(&self, text: &str) -> Option<Outcome> {
        connection_problem(text).map(Outcome::Failed)
    }
}

/// Facts about the step the messages need.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The tool, for messages.
    pub tool: &'static str,
    /// The image the step ran, for messages.
    pub image: &'a str,
    /// `spec.timeout` as written, for messages.
    pub timeout: &'a str,
}

/// The outcome of a step whose Job is `job` (JSON) and whose main container
/// left `message`.
pub fn outcome(
    job: &str,
    message: Option<&str>,
    context: &Context<'_>,
    reader: &impl Reader,
) -> Result<Outcome, Error> {
    let state = job_state(job)?;
    let summary = message.and_then(Summary::parse);
    Ok(match state {
        JobState::Running => Outcome::Running,
        JobState::Complete => match summary {
            Some(summary) => reader.read(&summary),
            // The wrapper exits non-zero whenever the tool failed, so a
            // complete Job is a success even when its summary is gone.
            None => Outcome::Succeeded {
                applied_version: None,
                summary: format!("{} finished; its summary was not available", context.tool),
            },
        },
        JobState::Failed {
            reason,
            message: why,
        } => {
            let deadline = reason == "DeadlineExceeded";
            let read = match (&summary, message) {
                (Some(summary), _) => Some(reader.read(summary)),
                (None, Some(text)) => reader.read_text(text),
                (None, None) => None,
            };
            match read {
                // A lock waited on until the deadline is still a held lock.
                Some(Outcome::LockHeld(holder)) => Outcome::LockHeld(holder),
                Some(Outcome::Failed(failure)) if !deadline => Outcome::Failed(failure),
                // Success, nothing readable, or a deadline: the Job's word counts.
                _ => Outcome::Failed(job_failure(
                    &reason,
                    &why,
                    context.tool,
                    context.image,
                    context.timeout,
                )),
            }
        }
    })
}

/// An outcome for a summary whose wrapper exited non-zero and whose facts
/// the tool could not explain: killed, not found, or unknown.
pub fn unexplained(summary: &Summary<'_>, context: &Context<'_>, detail: Option<&str>) -> Outcome {
    if let Some(failure) =
        crate::classify::exit_code(summary.exit_code, context.tool, context.image)
    {
        return Outcome::Failed(failure);
    }
    let mut message = format!(
        "{} exited with code {} without a recognisable error",
        context.tool, summary.exit_code
    );
    if let Some(detail) = detail.filter(|detail| !detail.trim().is_empty()) {
        message.push_str(": ");
        message.push_str(&crate::classify::clip(
            detail,
            crate::classify::MAX_MESSAGE / 2,
        ));
    } else {
        message.push_str("; see the pod's log");
    }
    Outcome::Failed(Failure::transient("ToolFailed", message))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Reader for Echo {
        fn read(&self, summary: &Summary<'_>) -> Outcome {
            match summary.first_str("result") {
                Some("ok") => Outcome::Succeeded {
                    applied_version: summary.first_str("version").map(str::to_owned),
                    summary: "ok".into(),
                },
                Some("lock") => Outcome::LockHeld("someone".into()),
                _ => Outcome::Failed(Failure::permanent("SqlError", "bad")),
            }
        }
    }

    const CONTEXT: Context<'static> = Context {
        tool: "flyway",
        image: "flyway/flyway:1",
        timeout: "15m",
    };

    const RUNNING: &str = r#"{"status": {"active": 1}}"#;
    const COMPLETE: &str =
        r#"{"status": {"conditions": [{"type": "Complete", "status": "True"}]}}"#;
    const DEADLINE: &str = r#"{"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]}}"#;
    const FAILED: &str = r#"{"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "message": "Container flyway for pod a/b failed with exit code 1 matching FailJob rule at index 1"}]}}"#;

    fn summary(result: &str) -> String {
        format!(
            "{{\"format\":\"portfolio.dev/migration-summary/v1\",\"tool\":\"flyway\",\"step\":\"migrate\",\"exitCode\":0}}\n{{\"result\":\"{result}\"}}\n{{\"version\":\"3\"}}\n"
        )
    }

    #[test]
    fn a_running_job_is_running_whatever_the_message() {
        assert_eq!(
            outcome(RUNNING, Some(&summary("ok")), &CONTEXT, &Echo),
            Ok(Outcome::Running)
        );
        assert_eq!(
            outcome(RUNNING, None, &CONTEXT, &Echo),
            Ok(Outcome::Running)
        );
    }

    #[test]
    fn a_complete_job_is_read_from_its_summary_or_trusted_without_one() {
        assert_eq!(
            outcome(COMPLETE, Some(&summary("ok")), &CONTEXT, &Echo),
            Ok(Outcome::Succeeded {
                applied_version: Some("3".into()),
                summary: "ok".into()
            })
        );
        assert!(matches!(
            outcome(COMPLETE, Some("garbage \u{fffd}"), &CONTEXT, &Echo),
            Ok(Outcome::Succeeded {
                applied_version: None,
                ..
            })
        ));
    }

    #[test]
    fn a_deadline_wins_over_the_tools_word_except_for_a_held_lock() {
        let Ok(Outcome::Failed(failure)) =
            outcome(DEADLINE, Some(&summary("bad")), &CONTEXT, &Echo)
        else {
            panic!()
        };
        assert_eq!(
            (failure.reason, failure.retryable),
            ("DeadlineExceeded", true)
        );
        assert_eq!(
            outcome(DEADLINE, Some(&summary("lock")), &CONTEXT, &Echo),
            Ok(Outcome::LockHeld("someone".into()))
        );
        let Ok(Outcome::Failed(failure)) = outcome(DEADLINE, None, &CONTEXT, &Echo) else {
            panic!()
        };
        assert_eq!(failure.reason, "DeadlineExceeded");
    }

    #[test]
    fn a_failed_job_is_explained_by_its_summary_its_log_or_its_condition() {
        let Ok(Outcome::Failed(failure)) = outcome(FAILED, Some(&summary("bad")), &CONTEXT, &Echo)
        else {
            panic!()
        };
        assert_eq!(failure.reason, "SqlError");
        let Ok(Outcome::Failed(failure)) = outcome(
            FAILED,
            Some("Exception in thread main\njava.net.ConnectException: Connection refused"),
            &CONTEXT,
            &Echo,
        ) else {
            panic!()
        };
        assert_eq!(
            (failure.reason, failure.retryable),
            ("ConnectionRefused", true)
        );
        let Ok(Outcome::Failed(failure)) = outcome(FAILED, Some("%%%"), &CONTEXT, &Echo) else {
            panic!()
        };
        assert_eq!((failure.reason, failure.retryable), ("JobFailed", true));
        // A failed Job whose summary claims success is still a failure.
        let Ok(Outcome::Failed(failure)) = outcome(FAILED, Some(&summary("ok")), &CONTEXT, &Echo)
        else {
            panic!()
        };
        assert_eq!(failure.reason, "JobFailed");
    }

    #[test]
    fn an_unreadable_job_is_an_internal_error() {
        assert!(matches!(
            outcome("{", None, &CONTEXT, &Echo),
            Err(Error::Internal(_))
        ));
    }
}
