//! Telling failures apart: which are worth a retry and which need a person.
//!
//! The rule of thumb: a failure caused by the world (the database is down,
//! a name does not resolve yet, the pod ran out of time or memory, another
//! session holds a lock) may go away, so it is retryable; a failure caused
//! by the migration or its configuration (bad SQL, a changed checksum,
//! wrong credentials, a missing driver) will happen again, so it is not.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;

use crate::Failure;
use crate::observe::failed_container;

/// Longest message a failure carries: status fields and events stay readable.
pub const MAX_MESSAGE: usize = 1024;

/// `text` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `text` on one line: runs of whitespace become one space, and the rulers
/// of dashes tools put under titles disappear.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if word.len() >= 3 && word.bytes().all(|b| b == b'-') {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// A connection, authentication or driver problem described in `text` (a
/// tool's error message or log), if any.
pub fn connection_problem(text: &str) -> Option<Failure> {
    let lower = text.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|needle| lower.contains(needle));
    let detail = || clip(text, MAX_MESSAGE / 2);
    if has(&[
        "password authentication failed",
        "access denied for user",
        "login failed for user",
        "invalid username/password",
        "authentication failed",
        "ora-01017",
    ]) {
        return Some(Failure::permanent(
            "AuthenticationFailed",
            format!(
                "the database refused the credentials; check the user name and password in the Secret named by spec.database.credentialsSecretRef: {}",
                detail()
            ),
        ));
    }
    if has(&[
        "unknownhostexception",
        "unknown host",
        "name or service not known",
        "temporary failure in name resolution",
        "nodename nor servname",
    ]) {
        return Some(Failure::transient(
            "UnknownHost",
            format!(
                "the database host name does not resolve (yet); check the host in spec.database.url: {}",
                detail()
            ),
        ));
    }
    // "Connection refused", or PostgreSQL's "Connection to db:5432 refused."
    if has(&["connection refused", "connect refused"])
        || (has(&["connection to "]) && has(&[" refused"]))
    {
        return Some(Failure::transient(
            "ConnectionRefused",
            format!(
                "the database refused the connection (not running, or wrong port in spec.database.url): {}",
                detail()
            ),
        ));
    }
    if has(&[
        "connect timed out",
        "connection timed out",
        "sockettimeoutexception",
        "no route to host",
        "network is unreachable",
        "connection reset",
        "the connection attempt failed",
        "communications link failure",
        "connection is closed",
        "i/o error",
    ]) {
        return Some(Failure::transient(
            "ConnectionFailed",
            format!(
                "the connection to the database failed or timed out (network policy, firewall, or the database is overloaded): {}",
                detail()
            ),
        ));
    }
    if has(&[
        "no suitable driver",
        "driver class was not specified",
        "cannot find database driver",
        "classnotfoundexception",
        "unable to instantiate jdbc driver",
    ]) {
        return Some(Failure::permanent(
            "DriverMissing",
            format!(
                "the tool's image has no JDBC driver for spec.database.url; use an image that bundles it (spec.image or the plugin's image setting): {}",
                detail()
            ),
        ));
    }
    if has(&["outofmemoryerror", "java heap space"]) {
        return Some(Failure::transient(
            "OutOfMemory",
            format!(
                "the tool ran out of memory; raise the memory limit (spec.strategy.settings.resources): {}",
                detail()
            ),
        ));
    }
    None
}

/// How a SQLSTATE classes a database error: `(reason, retryable)`.
///
/// Connection exceptions (08), transaction rollbacks such as serialization
/// failures and deadlocks (40), insufficient resources (53), operator
/// intervention such as a cancelled statement or a restart (57), and lock
/// timeouts (55P03) pass; everything else (syntax errors, missing objects,
/// constraint violations, permissions) is the migration's.
pub fn sql_state(state: &str) -> (&'static str, bool) {
    match state.get(..2) {
        Some("08") => ("ConnectionFailed", true),
        Some("28") => ("AuthenticationFailed", false),
        Some("40") => ("TransactionRolledBack", true),
        Some("53") => ("InsufficientResources", true),
        Some("57") => ("OperatorIntervention", true),
        Some("3D") => ("DatabaseNotFound", false),
        Some("42") if state == "42501" => ("InsufficientPrivilege", false),
        _ if state == "55P03" => ("LockNotAvailable", true),
        _ => ("SqlError", false),
    }
}

/// A failure told by the wrapper's exit code alone, for codes that mean the
/// same whatever the tool: killed, terminated, not found.
pub fn exit_code(code: i32, tool: &str, image: &str) -> Option<Failure> {
    match code {
        137 => Some(Failure::transient(
            "Killed",
            format!(
                "{tool} was killed (exit code 137), most often for exceeding its memory limit (OOMKilled); raise the memory limit (spec.strategy.settings.resources) if this repeats"
            ),
        )),
        143 => Some(Failure::transient(
            "Terminated",
            format!(
                "{tool} was stopped (SIGTERM) before it finished, e.g. by a node drain or the deadline"
            ),
        )),
        126 | 127 => Some(Failure::permanent(
            "ToolNotFound",
            format!(
                "the image {image} has no runnable {tool} (exit code {code}); use an image of {tool} (spec.image or the plugin's image setting)"
            ),
        )),
        _ => None,
    }
}

/// A failure told by the Job's `Failed` condition, for when no summary says more.
pub fn job_failure(reason: &str, message: &str, tool: &str, image: &str, timeout: &str) -> Failure {
    if reason == "DeadlineExceeded" {
        return Failure::transient(
            "DeadlineExceeded",
            format!(
                "the step ran longer than spec.timeout ({timeout}) and was stopped; raise spec.timeout if the migration needs longer, else check the pod's events (image pull, scheduling, a lock wait)"
            ),
        );
    }
    if let Some((container, code)) = failed_container(message) {
        if container == crate::job::COPY_CONTAINER {
            return Failure::permanent(
                "SourceCopyFailed",
                format!(
                    "copying the migrations out of spec.source.image failed (exit code {code}); the image must contain `cp` and the directory spec.source.path"
                ),
            );
        }
        if let Some(failure) = exit_code(code, tool, image) {
            return failure;
        }
        return Failure::transient(
            "JobFailed",
            format!("{tool} failed with exit code {code} and left no summary; see the pod's log"),
        );
    }
    Failure::transient(
        "JobFailed",
        clip(
            &format!(
                "the Job failed ({}: {}) and left no summary; see the pod's log and events",
                if reason.is_empty() {
                    "no reason"
                } else {
                    reason
                },
                message
            ),
            MAX_MESSAGE,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_respects_characters() {
        assert_eq!(clip("  short  ", 10), "short");
        let cut = clip("ééééé", 6);
        assert!(cut.ends_with('…'));
        assert!(cut.len() <= 6, "{cut}");
        assert_eq!(clip(&"x".repeat(50), 10).chars().count(), 8);
    }

    #[test]
    fn one_line_flattens_tool_messages() {
        assert_eq!(
            one_line("Migration V2__x.sql failed\n-----------\nSQL State  : 42601\n"),
            "Migration V2__x.sql failed SQL State : 42601"
        );
        assert_eq!(one_line("a - b"), "a - b");
    }

    #[test]
    fn connection_problems_are_told_apart() {
        let cases = [
            (
                "Connection to db:5432 refused. Check that the hostname and port are correct",
                "ConnectionRefused",
                true,
            ),
            (
                "java.net.UnknownHostException: db.shop.svc",
                "UnknownHost",
                true,
            ),
            ("The connection attempt failed.", "ConnectionFailed", true),
            (
                "FATAL: password authentication failed for user \"shop\"",
                "AuthenticationFailed",
                false,
            ),
            (
                "Access denied for user 'shop'@'10.0.0.1' (using password: YES)",
                "AuthenticationFailed",
                false,
            ),
            (
                "No suitable driver found for jdbc:foo://x",
                "DriverMissing",
                false,
            ),
            (
                "java.lang.OutOfMemoryError: Java heap space",
                "OutOfMemory",
                true,
            ),
        ];
        for (text, reason, retryable) in cases {
            let failure = connection_problem(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(
                (failure.reason, failure.retryable),
                (reason, retryable),
                "{text}"
            );
        }
        assert_eq!(
            connection_problem("ERROR: syntax error at or near \"TABL\""),
            None
        );
    }

    #[test]
    fn sql_states() {
        assert_eq!(sql_state("42601"), ("SqlError", false));
        assert_eq!(sql_state("23505"), ("SqlError", false));
        assert_eq!(sql_state("08001"), ("ConnectionFailed", true));
        assert_eq!(sql_state("40P01"), ("TransactionRolledBack", true));
        assert_eq!(sql_state("55P03"), ("LockNotAvailable", true));
        assert_eq!(sql_state("57014"), ("OperatorIntervention", true));
        assert_eq!(sql_state("28P01"), ("AuthenticationFailed", false));
        assert_eq!(sql_state("42501"), ("InsufficientPrivilege", false));
        assert_eq!(sql_state(""), ("SqlError", false));
        assert_eq!(sql_state("é"), ("SqlError", false));
    }

    #[test]
    fn job_failures() {
        let timeout = job_failure(
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            "flyway",
            "i",
            "15m",
        );
        assert_eq!(
            (timeout.reason, timeout.retryable),
            ("DeadlineExceeded", true)
        );
        assert!(timeout.message.contains("15m"));
        let oom = job_failure(
            "PodFailurePolicy",
            "Container flyway for pod a/b failed with exit code 137 matching FailJob rule at index 1",
            "flyway",
            "i",
            "15m",
        );
        assert_eq!((oom.reason, oom.retryable), ("Killed", true));
        let copy = job_failure(
            "PodFailurePolicy",
            "Container copy-source for pod a/b failed with exit code 1 matching FailJob rule at index 1",
            "flyway",
            "i",
            "15m",
        );
        assert_eq!((copy.reason, copy.retryable), ("SourceCopyFailed", false));
        let other = job_failure(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            "flyway",
            "i",
            "15m",
        );
        assert_eq!((other.reason, other.retryable), ("JobFailed", true));
        let not_found = job_failure(
            "PodFailurePolicy",
            "Container flyway for pod a/b failed with exit code 127 matching FailJob rule at index 1",
            "flyway",
            "busybox",
            "15m",
        );
        assert_eq!(
            (not_found.reason, not_found.retryable),
            ("ToolNotFound", false)
        );
    }
}
