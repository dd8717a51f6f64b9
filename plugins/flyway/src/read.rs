//! What a Flyway step's summary means: the schema version reached, or why not.
//!
//! Flyway's JSON carries an `errorCode` (see Flyway's "Exit codes and error
//! codes" reference), a SQLSTATE when the database raised the error, and
//! messages. The classification prefers the most specific of them: a
//! failed migration left in the history (repair), a validation code, the
//! SQLSTATE, then the text.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use strategy_kit::classify::{MAX_MESSAGE, clip, connection_problem, one_line, sql_state};
use strategy_kit::interpret::{Context, Reader, unexplained};
use strategy_kit::summary::{Summary, Value};
use strategy_kit::{Failure, Outcome};

use crate::{MIGRATE_KEY, REPAIR_KEY};

/// A failure told by one of Flyway's error codes or a phrase of its messages.
struct Rule {
    /// Any of these error codes.
    codes: &'static [&'static str],
    /// Or this phrase in a message.
    phrase: &'static str,
    reason: &'static str,
    retryable: bool,
    /// What it means and what to do; the message follows.
    advice: &'static str,
}

/// Rules that win over a SQLSTATE: validation, the lock, the driver.
const BEFORE_SQL_STATE: &[Rule] = &[
    Rule {
        codes: &["CHECKSUM_MISMATCH"],
        phrase: "checksum mismatch",
        reason: "ChecksumMismatch",
        retryable: false,
        advice: "a migration changed after it was applied; applied migrations must not change, so revert the change (or run flyway repair by hand if it was intended)",
    },
    Rule {
        codes: &[
            "APPLIED_VERSIONED_MIGRATION_NOT_RESOLVED",
            "APPLIED_REPEATABLE_MIGRATION_NOT_RESOLVED",
        ],
        phrase: "not resolved locally",
        reason: "MigrationMissing",
        retryable: false,
        advice: "a migration applied to the database is missing from the source; restore it in the source",
    },
    Rule {
        codes: &[
            "RESOLVED_VERSIONED_MIGRATION_NOT_APPLIED",
            "RESOLVED_REPEATABLE_MIGRATION_NOT_APPLIED",
        ],
        phrase: "not applied to database",
        reason: "MigrationOutOfOrder",
        retryable: false,
        advice: "a migration older than the schema's version was added; give it a newer version, or set spec.flyway.outOfOrder",
    },
    Rule {
        codes: &[
            "DUPLICATE_VERSIONED_MIGRATION",
            "DUPLICATE_REPEATABLE_MIGRATION",
            "DUPLICATE_UNDO_MIGRATION",
            "DUPLICATE_DELETED_MIGRATION",
        ],
        phrase: "Found more than one migration",
        reason: "DuplicateMigration",
        retryable: false,
        advice: "two migrations share a version or description",
    },
    Rule {
        codes: &["NON_EMPTY_SCHEMA_WITHOUT_SCHEMA_HISTORY_TABLE"],
        phrase: "without schema history table",
        reason: "BaselineRequired",
        retryable: false,
        advice: "the schema already has objects but no Flyway history; set spec.flyway.baselineOnMigrate to adopt it",
    },
    Rule {
        codes: &[
            "VALIDATE_ERROR",
            "DESCRIPTION_MISMATCH",
            "TYPE_MISMATCH",
            "OUTDATED_REPEATABLE_MIGRATION",
            "SCHEMA_DOES_NOT_EXIST",
        ],
        phrase: "Validate failed",
        reason: "ValidationFailed",
        retryable: false,
        advice: "Flyway's validation failed",
    },
    Rule {
        codes: &[],
        // PostgreSQL's advisory lock, MySQL's named lock, …
        phrase: "retries exceeded while attempting to acquire",
        reason: "LockTimeout",
        retryable: true,
        advice: "another Flyway run holds the database's migration lock; it is released when that run ends",
    },
    Rule {
        codes: &["JDBC_DRIVER"],
        phrase: "Unable to instantiate JDBC driver",
        reason: "DriverMissing",
        retryable: false,
        advice: "the Flyway image has no JDBC driver for spec.database.url; use an image with it (spec.image or the plugin's image setting)",
    },
];

/// Rules for what is left once no SQLSTATE explains the failure.
const AFTER_SQL_STATE: &[Rule] = &[
    Rule {
        codes: &["CONFIGURATION", "CONFIGURATION_RECOVERABLE", "ERROR"],
        phrase: "Invalid argument",
        reason: "ConfigurationError",
        retryable: false,
        advice: "Flyway refused its configuration",
    },
    Rule {
        codes: &["FAULT"],
        phrase: "Unexpected error",
        reason: "ToolFault",
        retryable: false,
        advice: "Flyway failed unexpectedly (an internal error; see the pod's log)",
    },
];

/// The failure of the first rule that `codes` or `text` match.
fn matching(
    rules: &[Rule],
    codes: &[&str],
    text: &str,
    detail: &dyn Fn() -> String,
) -> Option<Failure> {
    let rule = rules.iter().find(|rule| {
        codes.iter().any(|code| rule.codes.contains(code)) || text.contains(rule.phrase)
    })?;
    Some(Failure {
        reason: rule.reason,
        message: format!("{}: {}", rule.advice, detail()),
        retryable: rule.retryable,
    })
}

/// Reads the summaries of one migration's Flyway steps.
pub struct FlywayReader<'a> {
    /// The step's key.
    pub key: &'a str,
    /// Whether the plan carries the `repair` step.
    pub repair_planned: bool,
    /// Messages' context.
    pub context: Context<'a>,
}

impl Reader for FlywayReader<'_> {
    fn read(&self, summary: &Summary<'_>) -> Outcome {
        let failed = summary.exit_code != 0
            || summary.first("failed") == Some(&Value::Bool(true))
            || summary
                .all("success")
                .chain(summary.all("validationSuccessful"))
                .any(|value| value == &Value::Bool(false));
        if failed {
            self.failure(summary)
        } else {
            self.success(summary)
        }
    }
}

impl FlywayReader<'_> {
    fn success(&self, summary: &Summary<'_>) -> Outcome {
        // The operator keeps at most 256 bytes of a version.
        let version = |key: &str| {
            summary
                .last(key)
                .and_then(Value::as_str)
                .map(|version| clip(version, 256))
        };
        match self.key {
            MIGRATE_KEY => {
                let executed = summary
                    .first("migrationsExecuted")
                    .and_then(Value::as_int)
                    .unwrap_or(0);
                let initial = version("initialSchemaVersion");
                let target = version("targetSchemaVersion").or_else(|| initial.clone());
                let text = match (executed, &initial, &target) {
                    (0, _, Some(at)) => {
                        format!("nothing to migrate; the schema is at version {at}")
                    }
                    (0, _, None) => "nothing to migrate".to_owned(),
                    (n, Some(from), Some(to)) => {
                        format!("applied {n} migration(s): version {from} → {to}")
                    }
                    (n, None, Some(to)) => {
                        format!("applied {n} migration(s) to an empty schema: now at version {to}")
                    }
                    (n, _, None) => format!("applied {n} migration(s)"),
                };
                Outcome::Succeeded {
                    applied_version: target,
                    summary: text,
                }
            }
            REPAIR_KEY => {
                let actions: Vec<String> = summary
                    .all("repairActions")
                    .filter_map(|value| match value {
                        Value::List(items) => Some(items.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                Outcome::Succeeded {
                    applied_version: None,
                    summary: if actions.is_empty() {
                        "repair: nothing to repair".to_owned()
                    } else {
                        clip(&format!("repair: {}", actions.join("; ")), 256)
                    },
                }
            }
            _ => {
                let current = version("schemaVersion");
                let pending = summary
                    .first("pendingCount")
                    .and_then(Value::as_int)
                    .unwrap_or(0);
                let versions: Vec<&str> = summary.strings("pendingVersion").collect();
                let at = match &current {
                    Some(version) => format!("the schema is at version {version}"),
                    None => "the schema is empty".to_owned(),
                };
                let text = match pending {
                    0 => format!("{at}; nothing pending; validation passed"),
                    n => {
                        let more = if versions.len() < n as usize {
                            ", …"
                        } else {
                            ""
                        };
                        format!(
                            "{at}; {n} pending migration(s) ({}{more}); validation passed",
                            versions.join(", ")
                        )
                    }
                };
                Outcome::Succeeded {
                    applied_version: current,
                    summary: text,
                }
            }
        }
    }

    fn failure(&self, summary: &Summary<'_>) -> Outcome {
        let codes: Vec<&str> = summary.strings("errorCode").collect();
        let messages: Vec<&str> = summary
            .strings("message")
            .chain(summary.strings("errorMessage"))
            .chain(summary.strings("cause"))
            .collect();
        let text = messages.join("\n");
        let detail = || clip(&one_line(&text), MAX_MESSAGE - 256);
        let sql_state_value = summary
            .first_str("sqlState")
            .filter(|state| !state.is_empty());

        if text.contains("Detected failed migration")
            || text.contains("Detected failed repeatable migration")
        {
            return self.needs_repair(&text);
        }
        if let Some(state) = sql_state_value
            && !(state.starts_with("08") || state.starts_with("28"))
        {
            return Outcome::Failed(self.sql_failure(summary, state, &text));
        }
        if let Some(failure) = connection_problem(&text) {
            return Outcome::Failed(failure);
        }
        if let Some(failure) = matching(BEFORE_SQL_STATE, &codes, &text, &detail) {
            return Outcome::Failed(failure);
        }
        if let Some(state) = sql_state_value {
            return Outcome::Failed(self.sql_failure(summary, state, &text));
        }
        if summary.exit_code == 35 {
            return Outcome::Failed(Failure::permanent(
                "LicenseRequired",
                format!(
                    "the Flyway image asks for a license (exit code 35); use the open-source image or configure a license: {}",
                    detail()
                ),
            ));
        }
        if let Some(failure) = matching(AFTER_SQL_STATE, &codes, &text, &detail) {
            return Outcome::Failed(failure);
        }
        let stderr: Vec<&str> = summary.strings("stderr").collect();
        let detail_text = if text.is_empty() {
            stderr.join("\n")
        } else {
            text
        };
        if let Some(failure) = connection_problem(&detail_text) {
            return Outcome::Failed(failure);
        }
        unexplained(summary, &self.context, Some(&one_line(&detail_text)))
    }

    fn sql_failure(&self, summary: &Summary<'_>, state: &str, text: &str) -> Failure {
        let (reason, retryable) = sql_state(state);
        // Flyway's message repeats the database's under "Message    : …".
        let database_message = text
            .lines()
            .find_map(|line| line.trim_start().strip_prefix("Message"))
            .map(|rest| rest.trim_start().trim_start_matches(':').trim())
            .filter(|message| !message.is_empty())
            .unwrap_or(text);
        let location = match (
            summary.first_str("path"),
            summary.first("lineNumber").and_then(Value::as_int),
        ) {
            (Some(path), Some(line)) if line > 0 => format!(" in {path} at line {line}"),
            (Some(path), _) => format!(" in {path}"),
            _ => String::new(),
        };
        let advice = if retryable {
            "a transient condition; the step is retried"
        } else {
            "fix the migration (a migration that failed was rolled back where the database supports transactional DDL) and update the source"
        };
        Failure {
            reason,
            message: clip(
                &format!(
                    "the database rejected a statement{location}: {} (SQLSTATE {state}); {advice}",
                    one_line(database_message)
                ),
                MAX_MESSAGE,
            ),
            retryable,
        }
    }

    fn needs_repair(&self, text: &str) -> Outcome {
        let detail = clip(&one_line(text), MAX_MESSAGE - 384);
        if self.repair_planned {
            Outcome::LockHeld(clip(
                &format!(
                    "Flyway's schema history records a failed migration, which blocks every later run; the repair step removes that record so the migration can run again (the changes it half-applied stay in the database): {detail}"
                ),
                MAX_MESSAGE,
            ))
        } else {
            Outcome::Failed(Failure::permanent(
                "FailedMigrationNeedsRepair",
                clip(
                    &format!(
                        "Flyway's schema history records a failed migration (on a database without transactional DDL); remove what it half-applied, then allow the repair step: the plugin setting allowRepair, or the annotation {}: repair on this DatabaseMigration: {detail}",
                        strategy_kit::maintenance::ANNOTATION
                    ),
                    MAX_MESSAGE,
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn outcome(key: &str, exit_code: i32, facts: &[&str]) -> Outcome {
        let mut text = alloc::format!(
            "{{\"format\":\"{}\",\"tool\":\"flyway\",\"step\":\"{key}\",\"exitCode\":{exit_code}}}\n",
            strategy_kit::summary::FORMAT
        );
        for fact in facts {
            text.push_str(fact);
            text.push('\n');
        }
        let summary = Summary::parse(&text).unwrap();
        FlywayReader {
            key,
            repair_planned: false,
            context: Context {
                tool: "flyway",
                image: "flyway/flyway:13.0.0",
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
    fn every_error_code_has_a_reason() {
        let cases = [
            (
                "DUPLICATE_VERSIONED_MIGRATION",
                ("DuplicateMigration", false),
            ),
            (
                "NON_EMPTY_SCHEMA_WITHOUT_SCHEMA_HISTORY_TABLE",
                ("BaselineRequired", false),
            ),
            (
                "APPLIED_VERSIONED_MIGRATION_NOT_RESOLVED",
                ("MigrationMissing", false),
            ),
            (
                "RESOLVED_VERSIONED_MIGRATION_NOT_APPLIED",
                ("MigrationOutOfOrder", false),
            ),
            ("DESCRIPTION_MISMATCH", ("ValidationFailed", false)),
            ("JDBC_DRIVER", ("DriverMissing", false)),
            ("CONFIGURATION", ("ConfigurationError", false)),
            ("FAULT", ("ToolFault", false)),
        ];
        for (code, expected) in cases {
            let code_fact = alloc::format!("{{\"errorCode\":\"{code}\"}}");
            let outcome = outcome(
                "migrate",
                1,
                &[&code_fact, r#"{"message":"it went wrong"}"#],
            );
            assert_eq!(reason(outcome), expected, "{code}");
        }
    }

    #[test]
    fn transient_sql_states_are_retryable() {
        let outcome = outcome(
            "migrate",
            1,
            &[
                r#"{"errorCode":"FAILED_VERSIONED_MIGRATION"}"#,
                r#"{"sqlState":"40P01"}"#,
                r#"{"message":"Migration V4__x.sql failed\nMessage    : ERROR: deadlock detected\n"}"#,
            ],
        );
        let Outcome::Failed(failure) = outcome else {
            panic!()
        };
        assert_eq!(
            (failure.reason, failure.retryable),
            ("TransactionRolledBack", true)
        );
        assert!(
            failure
                .message
                .contains("ERROR: deadlock detected (SQLSTATE 40P01)"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn exit_codes_without_facts() {
        assert_eq!(
            reason(outcome("migrate", 35, &[])),
            ("LicenseRequired", false)
        );
        assert_eq!(reason(outcome("migrate", 137, &[])), ("Killed", true));
        assert_eq!(
            reason(outcome("migrate", 127, &[])),
            ("ToolNotFound", false)
        );
        let unknown = outcome("migrate", 2, &[r#"{"stderr":"something odd"}"#]);
        let Outcome::Failed(failure) = unknown else {
            panic!()
        };
        assert_eq!((failure.reason, failure.retryable), ("ToolFailed", true));
        assert!(failure.message.contains("something odd"));
    }

    #[test]
    fn an_empty_schema_and_an_empty_repair_read_well() {
        assert_eq!(
            outcome(
                "plan",
                0,
                &[
                    r#"{"schemaVersion":null}"#,
                    r#"{"validationSuccessful":true}"#
                ]
            ),
            Outcome::Succeeded {
                applied_version: None,
                summary: "the schema is empty; nothing pending; validation passed".to_string(),
            }
        );
        assert_eq!(
            outcome("repair", 0, &[r#"{"repairActions":[]}"#]),
            Outcome::Succeeded {
                applied_version: None,
                summary: "repair: nothing to repair".to_string(),
            }
        );
        let many: alloc::vec::Vec<alloc::string::String> = (0..10)
            .map(|v| alloc::format!("{{\"pendingVersion\":\"{v}\"}}"))
            .collect();
        let mut facts: alloc::vec::Vec<&str> =
            alloc::vec![r#"{"schemaVersion":"0"}"#, r#"{"pendingCount":42}"#];
        facts.extend(many.iter().map(alloc::string::String::as_str));
        let Outcome::Succeeded { summary, .. } = outcome("plan", 0, &facts) else {
            panic!()
        };
        assert!(
            summary.contains("42 pending migration(s) (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, …)"),
            "{summary}"
        );
    }
}
