//! What the Job observed in the cluster says: still running, complete, or failed.

use alloc::format;
use alloc::string::String;

use crate::Error;
use crate::summary::read_string;

/// Where a Job is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Not finished, or finished but its pods are still terminating.
    Running,
    /// The `Complete` condition is true.
    Complete,
    /// The `Failed` condition is true.
    Failed {
        /// The condition's reason: `DeadlineExceeded`, `BackoffLimitExceeded`, `PodFailurePolicy`, …
        reason: String,
        /// The condition's message, e.g. which container exited with which code.
        message: String,
    },
}

/// The members of a condition that matter here.
#[derive(Default)]
struct Condition {
    type_: String,
    status: String,
    reason: String,
    message: String,
}

/// Read the state of the Job in `json` (a whole `batch/v1` Job).
///
/// Only the terminal conditions count. `FailureTarget` and
/// `SuccessCriteriaMet` (Kubernetes 1.31+) are set while the pods still
/// terminate; answering before `Failed` or `Complete` could let the operator
/// start a retry while the old pod still talks to the database.
pub fn job_state(json: &str) -> Result<JobState, Error> {
    let conditions = conditions(json).ok_or_else(|| {
        Error::Internal(format!(
            "the observed Job is not a Job: {}",
            crate::classify::clip(json, 120)
        ))
    })?;
    for condition in conditions {
        if condition.status != "True" {
            continue;
        }
        match condition.type_.as_str() {
            "Complete" => return Ok(JobState::Complete),
            "Failed" => {
                return Ok(JobState::Failed {
                    reason: condition.reason,
                    message: condition.message,
                });
            }
            _ => {}
        }
    }
    Ok(JobState::Running)
}

/// `status.conditions` of the Job in `json`; `None` when `json` is not a JSON
/// object or the conditions are not a list of objects.
///
/// A few lines of reading instead of serde types: the Job is read once per
/// call, and three derived types would cost the component kilobytes.
fn conditions(json: &str) -> Option<alloc::vec::Vec<Condition>> {
    let mut conditions = alloc::vec::Vec::new();
    let mut cursor = Cursor { rest: json };
    cursor.object(&mut |key, cursor| match key {
        "status" => cursor.object(&mut |key, cursor| match key {
            "conditions" => cursor.array(&mut |cursor| {
                let mut condition = Condition::default();
                cursor.object(&mut |key, cursor| {
                    let slot = match key {
                        "type" => &mut condition.type_,
                        "status" => &mut condition.status,
                        "reason" => &mut condition.reason,
                        "message" => &mut condition.message,
                        _ => return cursor.skip(0),
                    };
                    *slot = cursor.string()?;
                    Some(())
                })?;
                conditions.push(condition);
                Some(())
            }),
            _ => cursor.skip(0),
        }),
        _ => cursor.skip(0),
    })?;
    cursor.rest.trim().is_empty().then_some(conditions)
}

/// Nesting deeper than this is refused rather than followed (the stack is small).
const MAX_DEPTH: usize = 64;

/// A reader over JSON text that can walk objects and arrays and skip values.
struct Cursor<'a> {
    rest: &'a str,
}

type Visit<'v, 'a> = dyn FnMut(&str, &mut Cursor<'a>) -> Option<()> + 'v;

impl<'a> Cursor<'a> {
    fn eat(&mut self, byte: u8) -> bool {
        self.rest = self.rest.trim_start();
        match self.rest.as_bytes().first() {
            Some(first) if *first == byte => {
                self.rest = &self.rest[1..];
                true
            }
            _ => false,
        }
    }

    fn string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let (string, rest) = read_string(self.rest);
        self.rest = rest?;
        Some(string)
    }

    /// Call `visit` with each member's key; it must consume the value.
    fn object(&mut self, visit: &mut Visit<'_, 'a>) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.string()?;
            if !self.eat(b':') {
                return None;
            }
            visit(&key, self)?;
            if self.eat(b'}') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// Call `visit` for each element; it must consume it.
    fn array(&mut self, visit: &mut dyn FnMut(&mut Cursor<'a>) -> Option<()>) -> Option<()> {
        if !self.eat(b'[') {
            return None;
        }
        if self.eat(b']') {
            return Some(());
        }
        loop {
            visit(self)?;
            if self.eat(b']') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// Skip one value of any kind.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.rest = self.rest.trim_start();
        match self.rest.as_bytes().first()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(&mut |_, cursor| cursor.skip(depth + 1)),
            b'[' => self.array(&mut |cursor| cursor.skip(depth + 1)),
            _ => {
                // A number or a literal runs to the next delimiter.
                let end = self
                    .rest
                    .find([',', '}', ']', ' ', '\n', '\r', '\t'])
                    .unwrap_or(self.rest.len());
                let token = &self.rest[..end];
                let valid = matches!(token, "true" | "false" | "null")
                    || (!token.is_empty()
                        && token.bytes().all(|b| {
                            b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')
                        }));
                self.rest = &self.rest[end..];
                valid.then_some(())
            }
        }
    }
}

/// The container and exit code in a Job failure message written by a
/// `FailJob` pod failure rule: "Container flyway for pod ns/x failed with
/// exit code 137 matching FailJob rule at index 1".
pub fn failed_container(message: &str) -> Option<(&str, i32)> {
    let rest = message.strip_prefix("Container ")?;
    let (container, rest) = rest.split_once(' ')?;
    let code = rest.split_once("exit code ")?.1;
    let digits = code
        .find(|c: char| !c.is_ascii_digit())
        .map_or(code, |end| &code[..end]);
    Some((container, digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_decide_the_state() {
        assert_eq!(
            job_state(r#"{"status": {"active": 1}}"#),
            Ok(JobState::Running)
        );
        assert_eq!(job_state(r#"{"metadata": {}}"#), Ok(JobState::Running));
        assert_eq!(
            job_state(r#"{"status": {"conditions": [{"type": "Complete", "status": "True"}]}}"#),
            Ok(JobState::Complete)
        );
        assert_eq!(
            job_state(
                r#"{"status": {"conditions": [{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]}}"#
            ),
            Ok(JobState::Running)
        );
        assert_eq!(
            job_state(
                r#"{"status": {"conditions": [{"type": "Failed", "status": "False"}, {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]}}"#
            ),
            Ok(JobState::Failed {
                reason: "DeadlineExceeded".into(),
                message: "Job was active longer than specified deadline".into()
            })
        );
    }

    #[test]
    fn garbage_is_the_hosts_problem() {
        for garbage in [
            "not json",
            "",
            "[]",
            r#"{"status": {"conditions": 3}}"#,
            r#"{"status": {"conditions": [{"type": 1}]}}"#,
            r#"{"status": {"conditions": [}"#,
            r#"{"status": {} } trailing"#,
            r#"{"a": tru}"#,
            r#"{"a": "unterminated}"#,
        ] {
            assert!(
                matches!(job_state(garbage), Err(Error::Internal(_))),
                "{garbage}"
            );
        }
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(job_state(&deep), Err(Error::Internal(_))));
    }

    #[test]
    fn a_whole_kubernetes_job_is_read() {
        let job = r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"shop-migrate-1","labels":{"a":"b"},"generation":1,"managedFields":[{"fieldsV1":{"f:spec":{}}}]},"spec":{"backoffLimit":0,"activeDeadlineSeconds":900,"template":{"spec":{"containers":[{"name":"flyway","args":["-x=1.5e3"]}]}}},"status":{"startTime":"2026-11-26T10:15:00Z","failed":1,"ready":0,"terminating":0,"uncountedTerminatedPods":{},"conditions":[{"type":"FailureTarget","status":"True","lastProbeTime":"2026-11-26T10:30:00Z","reason":"DeadlineExceeded","message":"Job was active longer than specified deadline"},{"type":"Failed","status":"True","reason":"DeadlineExceeded","message":"Job was active longer than specified deadline \u2014 \"quoted\""}]}}"#;
        assert_eq!(
            job_state(job),
            Ok(JobState::Failed {
                reason: "DeadlineExceeded".into(),
                message: "Job was active longer than specified deadline — \"quoted\"".into()
            })
        );
    }

    #[test]
    fn pod_failure_policy_messages_name_container_and_exit_code() {
        assert_eq!(
            failed_container(
                "Container flyway for pod shop/shop-migrate-1-x failed with exit code 137 matching FailJob rule at index 1"
            ),
            Some(("flyway", 137))
        );
        assert_eq!(
            failed_container("Job has reached the specified backoff limit"),
            None
        );
        assert_eq!(failed_container("Container x failed with exit code"), None);
    }
}
