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
        let has_code = |wanted: &[&str]| codes.iter().any(|code| wanted.contains(code));
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
        if has_code(&["CHECKSUM_MISMATCH"]) || text.contains("checksum mismatch") {
            return Outcome::Failed(Failure::permanent(
                "ChecksumMismatch",
                format!(
                    "a migration changed after it was applied; applied migrations must not change, so revert the change (or run flyway repair by hand if it was intended): {}",
                    detail()
                ),
            ));
        }
        if has_code(&[
            "APPLIED_VERSIONED_MIGRATION_NOT_RESOLVED",
            "APPLIED_REPEATABLE_MIGRATION_NOT_RESOLVED",
        ]) || text.contains("not resolved locally")
        {
            return Outcome::Failed(Failure::permanent(
                "MigrationMissing",
                format!(
                    "a migration applied to the database is missing from the source; restore it in the source: {}",
                    detail()
                ),
            ));
        }
        if has_code(&[
            "RESOLVED_VERSIONED_MIGRATION_NOT_APPLIED",
            "RESOLVED_REPEATABLE_MIGRATION_NOT_APPLIED",
        ]) || text.contains("not applied to database")
        {
            return Outcome::Failed(Failure::permanent(
                "MigrationOutOfOrder",
                format!(
                    "a migration older than the schema's version was added; give it a newer version, or set spec.flyway.outOfOrder: {}",
                    detail()
                ),
            ));
        }
        if has_code(&[
            "DUPLICATE_VERSIONED_MIGRATION",
            "DUPLICATE_REPEATABLE_MIGRATION",
            "DUPLICATE_UNDO_MIGRATION",
            "DUPLICATE_DELETED_MIGRATION",
        ]) {
            return Outcome::Failed(Failure::permanent(
                "DuplicateMigration",
                format!(
                    "two migrations share a version or description: {}",
                    detail()
                ),
            ));
        }
        if has_code(&["NON_EMPTY_SCHEMA_WITHOUT_SCHEMA_HISTORY_TABLE"]) {
            return Outcome::Failed(Failure::permanent(
                "BaselineRequired",
                format!(
                    "the schema already has objects but no Flyway history; set spec.flyway.baselineOnMigrate to adopt it: {}",
                    detail()
                ),
            ));
        }
        if has_code(&[
            "VALIDATE_ERROR",
            "DESCRIPTION_MISMATCH",
            "TYPE_MISMATCH",
            "OUTDATED_REPEATABLE_MIGRATION",
            "SCHEMA_DOES_NOT_EXIST",
        ]) {
            return Outcome::Failed(Failure::permanent(
                "ValidationFailed",
                format!("Flyway's validation failed: {}", detail()),
            ));
        }
        if text.contains("attempting to acquire") && text.contains("lock") {
            return Outcome::Failed(Failure::transient(
                "LockTimeout",
                format!(
                    "another Flyway run holds the database's migration lock; it is released when that run ends: {}",
                    detail()
                ),
            ));
        }
        if has_code(&["JDBC_DRIVER"]) {
            return Outcome::Failed(Failure::permanent(
                "DriverMissing",
                format!(
                    "the Flyway image has no JDBC driver for spec.database.url; use an image with it (spec.image or the plugin's image setting): {}",
                    detail()
                ),
            ));
        }
        if let Some(state) = sql_state_value {
            return Outcome::Failed(self.sql_failure(summary, state, &text));
        }
        if has_code(&["CONFIGURATION", "CONFIGURATION_RECOVERABLE", "ERROR"]) {
            return Outcome::Failed(Failure::permanent(
                "ConfigurationError",
                format!("Flyway refused its configuration: {}", detail()),
            ));
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
        if has_code(&["FAULT"]) {
            return Outcome::Failed(Failure::permanent(
                "ToolFault",
                format!(
                    "Flyway failed unexpectedly (an internal error; see the pod's log): {}",
                    detail()
                ),
            ));
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
