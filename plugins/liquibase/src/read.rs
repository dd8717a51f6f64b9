//! What a Liquibase step's summary means: the changesets applied, or why not.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::vec::Vec;

use strategy_kit::classify::{MAX_MESSAGE, clip, connection_problem, one_line};
use strategy_kit::interpret::{Context, Reader, unexplained};
use strategy_kit::summary::{Summary, Value};
use strategy_kit::{Failure, Outcome};

use crate::{RELEASE_LOCKS_KEY, UPDATE_KEY};

/// The sentence Liquibase starts a held-lock error with.
const LOCK_HELD: &str = "Could not acquire change log lock";

/// Reads the summaries of one migration's Liquibase steps.
pub struct LiquibaseReader<'a> {
    /// The step's key.
    pub key: &'a str,
    /// Whether the plan carries the `release-locks` step.
    pub release_planned: bool,
    /// Messages' context.
    pub context: Context<'a>,
}

impl Reader for LiquibaseReader<'_> {
    fn read(&self, summary: &Summary<'_>) -> Outcome {
        if summary.exit_code == 0 {
            return self.success(summary);
        }
        let errors: Vec<&str> = summary.strings("error").collect();
        let text = errors.join("\n");
        // Interrupted while waiting for the lock (the deadline): still a held lock.
        if text.contains(LOCK_HELD) || summary.first("waitedForLock") == Some(&Value::Bool(true)) {
            return self.lock_held(&text);
        }
        self.failure(summary, &text)
    }

    fn read_text(&self, text: &str) -> Option<Outcome> {
        if text.contains(LOCK_HELD) {
            return Some(self.lock_held(text));
        }
        connection_problem(text).map(Outcome::Failed)
    }
}

impl LiquibaseReader<'_> {
    fn success(&self, summary: &Summary<'_>) -> Outcome {
        let int = |key: &str| summary.last(key).and_then(Value::as_int);
        match self.key {
            UPDATE_KEY => {
                let ran = int("run").or(int("ran")).unwrap_or(0);
                let previously = int("previouslyRun").unwrap_or(0);
                let last = summary.first_str("lastChangeset").map(str::to_owned);
                let text = match (ran, &last) {
                    (0, _) => format!("nothing to apply; {previously} changeset(s) ran before"),
                    (n, Some(last)) => {
                        format!(
                            "applied {n} changeset(s), the last {last}; {previously} ran before"
                        )
                    }
                    (n, None) => format!("applied {n} changeset(s); {previously} ran before"),
                };
                Outcome::Succeeded {
                    // The operator keeps at most 256 bytes of a version.
                    applied_version: if ran > 0 {
                        last.map(|last| clip(&last, 256))
                    } else {
                        None
                    },
                    summary: clip(&text, 512),
                }
            }
            RELEASE_LOCKS_KEY => Outcome::Succeeded {
                applied_version: None,
                summary: "released the changelog lock (DATABASECHANGELOGLOCK)".to_owned(),
            },
            _ => {
                let pending = int("pendingCount");
                let listed: Vec<&str> = summary.strings("pendingChangeset").collect();
                let statements = int("sqlStatements").unwrap_or(0);
                let text = match pending {
                    Some(0) => "the database is up to date; nothing pending".to_owned(),
                    Some(n) => {
                        let more = if (listed.len() as i64) < n {
                            ", …"
                        } else {
                            ""
                        };
                        format!(
                            "{n} changeset(s) pending ({}{more}); update-sql rendered {statements} statement(s)",
                            listed.join(", ")
                        )
                    }
                    None => format!("update-sql rendered {statements} statement(s)"),
                };
                Outcome::Succeeded {
                    applied_version: None,
                    summary: clip(&text, 512),
                }
            }
        }
    }

    fn lock_held(&self, text: &str) -> Outcome {
        let holder = text
            .lines()
            .find_map(|line| {
                line.split_once("Currently locked by ")
                    .map(|(_, by)| by.trim())
            })
            .map_or_else(
                || "DATABASECHANGELOGLOCK is held by another Liquibase run".to_owned(),
                |by| format!("DATABASECHANGELOGLOCK is held by {by}"),
            );
        if self.release_planned {
            Outcome::LockHeld(clip(
                &format!("{holder}; if that run crashed, the release-locks step clears the lock"),
                MAX_MESSAGE,
            ))
        } else {
            Outcome::Failed(Failure::transient(
                "LockHeld",
                clip(
                    &format!(
                        "{holder}; it is retried in case that run is still going. If it crashed, release the lock: allow the release-locks step with the plugin setting allowReleaseLocks, or the annotation {}: release-locks on this DatabaseMigration",
                        strategy_kit::maintenance::ANNOTATION
                    ),
                    MAX_MESSAGE,
                ),
            ))
        }
    }

    fn failure(&self, summary: &Summary<'_>, text: &str) -> Outcome {
        // The line Liquibase leads with says the most; the indented lines
        // under it (Reason:, Position:, - Caused by:) belong to it, and what
        // follows (the exception, repeated) does not.
        let headline = text
            .lines()
            .position(|line| line.starts_with("Unexpected error running Liquibase:"))
            .map_or(text.to_owned(), |start| {
                let mut lines = text.lines().skip(start);
                lines
                    .next()
                    .into_iter()
                    .chain(lines.take_while(|line| {
                        line.starts_with([' ', '\t']) && !line.trim_start().starts_with("at ")
                    }))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        let headline = headline
            .strip_prefix("Unexpected error running Liquibase:")
            .unwrap_or(&headline);
        let detail = || clip(&one_line(headline), MAX_MESSAGE - 256);
        if let Some(failure) = connection_problem(text) {
            return Outcome::Failed(failure);
        }
        if text.contains("Validation Failed") || text.contains("check sum") {
            let (reason, what) = if text.contains("check sum") {
                (
                    "ChecksumMismatch",
                    "a changeset changed after it was applied; applied changesets must not change, so revert it (or add a new changeset, or set validCheckSum on it if the change is intended)",
                )
            } else {
                (
                    "ValidationFailed",
                    "the changelog failed validation; fix it",
                )
            };
            return Outcome::Failed(Failure::permanent(reason, format!("{what}: {}", detail())));
        }
        if text.contains("Preconditions Failed") || text.contains("PreconditionFailedException") {
            return Outcome::Failed(Failure::permanent(
                "PreconditionFailed",
                format!("a changeset's precondition failed: {}", detail()),
            ));
        }
        if text.contains("Migration failed for change") {
            let lower = text.to_ascii_lowercase();
            let transient = [
                "deadlock",
                "could not serialize",
                "lock timeout",
                "lock wait timeout",
                "canceling statement due to",
                "the database system is starting up",
                "the database system is shutting down",
            ]
            .iter()
            .any(|needle| lower.contains(needle));
            let message = format!("the database rejected a changeset: {}", detail());
            return Outcome::Failed(if transient {
                Failure::transient(
                    "TransactionRolledBack",
                    format!("{message}; a transient condition, the step is retried"),
                )
            } else {
                Failure::permanent(
                    "SqlError",
                    format!(
                        "{message}; fix the changeset (rolled back where the database supports transactional DDL) and update the source"
                    ),
                )
            });
        }
        if text.contains("Error parsing command line") || text.contains("Unexpected argument") {
            return Outcome::Failed(Failure::permanent(
                "ConfigurationError",
                format!("Liquibase refused its arguments: {}", detail()),
            ));
        }
        if [
            "ChangeLogParseException",
            "not found in the configured search path",
            "does not exist",
            "Error parsing",
        ]
        .iter()
        .any(|needle| text.contains(needle))
        {
            return Outcome::Failed(Failure::permanent(
                "ChangelogInvalid",
                format!(
                    "Liquibase could not read the changelog (spec.liquibase.changelogFile under spec.source.path): {}",
                    detail()
                ),
            ));
        }
        unexplained(summary, &self.context, Some(&one_line(headline)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(key: &str, exit_code: i32, errors: &[&str]) -> Outcome {
        let mut text = alloc::format!(
            "{{\"format\":\"{}\",\"tool\":\"liquibase\",\"step\":\"{key}\",\"exitCode\":{exit_code}}}\n",
            strategy_kit::summary::FORMAT
        );
        for error in errors {
            text.push_str(&alloc::format!("{{\"error\":\"{error}\"}}\n"));
        }
        let summary = Summary::parse(&text).unwrap();
        LiquibaseReader {
            key,
            release_planned: false,
            context: Context {
                tool: "liquibase",
                image: "liquibase/liquibase:4.33.0",
                timeout: "15m",
            },
        }
        .read(&summary)
    }

    fn reason(outcome: Outcome) -> (&'static str, bool) {
        match outcome {
            Outcome::Failed(failure) => (failure.reason, failure.retryable),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn liquibase_errors_have_reasons() {
        let cases = [
            (
                "Unexpected error running Liquibase: Preconditions Failed",
                ("PreconditionFailed", false),
            ),
            (
                "Unexpected error running Liquibase: The file db/changelog.yaml was not found in the configured search path:",
                ("ChangelogInvalid", false),
            ),
            (
                "Error parsing command line: Invalid argument '--context-filter'",
                ("ConfigurationError", false),
            ),
            (
                "Unexpected error running Liquibase: Migration failed for changeset db/c.yaml::4::bob:",
                ("SqlError", false),
            ),
            (
                "Unexpected error running Liquibase: Migration failed for changeset db/c.yaml::4::bob: ERROR: deadlock detected",
                ("TransactionRolledBack", true),
            ),
            (
                "Unexpected error running Liquibase: No suitable driver found for jdbc:db2://x",
                ("DriverMissing", false),
            ),
            ("something nobody expected", ("ToolFailed", true)),
        ];
        for (error, expected) in cases {
            assert_eq!(reason(outcome("update", 1, &[error])), expected, "{error}");
        }
        assert_eq!(reason(outcome("update", 127, &[])), ("ToolNotFound", false));
    }

    #[test]
    fn a_failure_message_leads_with_liquibases_own_line() {
        let Outcome::Failed(failure) = outcome(
            "update",
            1,
            &[
                "[2026-11-26 10:15:03] SEVERE [liquibase.changelog] noise",
                "Unexpected error running Liquibase: Migration failed for changeset db/c.yaml::4::bob:",
                "     Reason: liquibase.exception.DatabaseException: ERROR: column \\\"x\\\" does not exist",
                "liquibase.exception.CommandExecutionException: repeated",
            ],
        ) else {
            panic!()
        };
        assert!(
            failure.message.starts_with(
                "the database rejected a changeset: Migration failed for changeset db/c.yaml::4::bob: Reason: liquibase.exception.DatabaseException: ERROR: column \"x\" does not exist; fix the changeset"
            ),
            "{}",
            failure.message
        );
        assert!(!failure.message.contains("noise"));
        assert!(!failure.message.contains("repeated"));
    }

    #[test]
    fn the_headline_is_the_unexpected_error_block_whatever_follows_it() {
        // The summary puts the block first and the other error lines after it.
        let Outcome::Failed(failure) = outcome(
            "update",
            1,
            &[
                "Unexpected error running Liquibase: Connection could not be created to jdbc:postgresql://127.0.0.1:1/shop with driver org.postgresql.Driver.  Connection to 127.0.0.1:1 refused.",
                "  - Caused by: Connection refused",
                "ERROR: Exception Details",
                "ERROR: Exception Primary Class:  ConnectException",
            ],
        ) else {
            panic!()
        };
        assert_eq!(
            (failure.reason, failure.retryable),
            ("ConnectionRefused", true)
        );
        let Outcome::Failed(failure) = outcome(
            "update",
            1,
            &[
                "Unexpected error running Liquibase: Migration failed for changeset c.yaml::6::carol:",
                "     Reason: liquibase.exception.DatabaseException: ERROR: syntax error at or near \\\"TABL\\\"",
                "  Position: 8 [Failed SQL: (0) CREATE TABL shop.broken (id BIGINT)]",
                "[2026-12-06 23:36:27] SEVERE [liquibase.changelog] ChangeSet c.yaml::6::carol encountered an exception.",
                "ERROR: Exception Details",
            ],
        ) else {
            panic!()
        };
        assert_eq!((failure.reason, failure.retryable), ("SqlError", false));
        assert!(
            failure
                .message
                .contains("Position: 8 [Failed SQL: (0) CREATE TABL shop.broken (id BIGINT)]"),
            "{}",
            failure.message
        );
        assert!(!failure.message.contains("SEVERE"), "{}", failure.message);
        assert!(
            !failure.message.contains("Exception Details"),
            "{}",
            failure.message
        );
    }
}
