//! `interpret` on realistic Jobs and termination messages.
//!
//! The termination messages are made the way a cluster makes them: the
//! step's own container program (taken from the planned Job) runs with a
//! fake `flyway` that prints a recorded Flyway 13 output (`tests/fixtures`)
//! and exits as Flyway would. So these tests cover the wrapper, its awk
//! program and the reader together.

#![cfg(not(target_arch = "wasm32"))]

use flyway::Flyway;
use strategy_kit::Outcome;
use strategy_kit::testing::{self, failed, fixture, input};

const SPEC: &str = r#"{"tool": "flyway", "database": {"url": "jdbc:postgresql://db.shop.svc:5432/shop", "credentialsSecretRef": {"name": "shop-db"}}, "source": {"configMapRef": {"name": "shop-sql"}}, "timeout": "15m"}"#;
const DRY_RUN_SPEC: &str = r#"{"tool": "flyway", "dryRun": true, "database": {"url": "jdbc:postgresql://db.shop.svc:5432/shop", "credentialsSecretRef": {"name": "shop-db"}}, "source": {"configMapRef": {"name": "shop-sql"}}}"#;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The termination message step `key` leaves when Flyway prints the
/// fixture `output` and exits with `code`.
fn termination_message(key: &str, output: &str, code: i32) -> String {
    let fake = format!(
        "cat <<'FLYWAY_OUTPUT'\n{}\nFLYWAY_OUTPUT\nexit {code}",
        fixture(FIXTURES, output)
    );
    testing::termination_message::<Flyway>(SPEC, r#"{"allowRepair": true}"#, key, &fake)
}

fn interpret(key: &str, job: &str, message: Option<&str>) -> Outcome {
    interpret_with(SPEC, "{}", &[], key, job, message)
}

fn interpret_with(
    spec: &str,
    settings: &str,
    annotations: &[(String, String)],
    key: &str,
    job: &str,
    message: Option<&str>,
) -> Outcome {
    testing::interpret::<Flyway>(&input(spec, settings, annotations), key, job, message)
}

#[test]
fn a_successful_migrate_reports_the_version_reached() {
    let message = termination_message("migrate", "migrate-success.json", 0);
    assert_eq!(
        interpret("migrate", "job-complete.json", Some(&message)),
        Outcome::Succeeded {
            applied_version: Some("3".into()),
            summary: "applied 2 migration(s): version 1 → 3".into(),
        }
    );
}

#[test]
fn a_migrate_with_nothing_to_do_reports_the_current_version() {
    let message = termination_message("migrate", "migrate-up-to-date.json", 0);
    assert_eq!(
        interpret("migrate", "job-complete.json", Some(&message)),
        Outcome::Succeeded {
            applied_version: Some("3".into()),
            summary: "nothing to migrate; the schema is at version 3".into(),
        }
    );
}

#[test]
fn the_plan_step_lists_pending_migrations() {
    let message = termination_message("plan", "plan-success.json", 0);
    let Outcome::Succeeded {
        applied_version,
        summary,
    } = interpret("plan", "job-complete.json", Some(&message))
    else {
        panic!()
    };
    assert_eq!(applied_version.as_deref(), Some("1"));
    assert_eq!(
        summary,
        "the schema is at version 1; 2 pending migration(s) (2, 3); validation passed"
    );
}

#[test]
fn bad_sql_is_not_retryable_and_says_where() {
    let message = termination_message("migrate", "migrate-sql-error.json", 1);
    let failure = failed(interpret("migrate", "job-failed.json", Some(&message)));
    assert_eq!((failure.reason, failure.retryable), ("SqlError", false));
    for expected in [
        "/migrations/V2__add_orders.sql at line 1",
        "syntax error at or near \"TABL\"",
        "SQLSTATE 42601",
    ] {
        assert!(
            failure.message.contains(expected),
            "{expected}: {}",
            failure.message
        );
    }
}

#[test]
fn bad_sql_reported_with_exit_code_zero_is_still_a_failure() {
    // Without the report module Flyway prints the failed result and exits 0;
    // the wrapper turns that into 1, so the Job fails too.
    let message = termination_message("migrate", "migrate-sql-error.json", 0);
    let failure = failed(interpret("migrate", "job-failed.json", Some(&message)));
    assert_eq!(failure.reason, "SqlError");
}

#[test]
fn connection_failures_are_retryable() {
    for (output, reason) in [
        ("migrate-connection-refused.json", "ConnectionRefused"),
        ("migrate-unknown-host.json", "UnknownHost"),
    ] {
        let message = termination_message("migrate", output, 1);
        let failure = failed(interpret("migrate", "job-failed.json", Some(&message)));
        assert_eq!(
            (failure.reason, failure.retryable),
            (reason, true),
            "{output}"
        );
        assert!(
            failure.message.contains("db.shop.svc"),
            "{}",
            failure.message
        );
    }
}

#[test]
fn refused_credentials_are_not_retryable() {
    let message = termination_message("plan", "migrate-auth-failed.json", 1);
    let failure = failed(interpret("plan", "job-failed.json", Some(&message)));
    assert_eq!(
        (failure.reason, failure.retryable),
        ("AuthenticationFailed", false)
    );
    assert!(failure.message.contains("credentialsSecretRef"));
}

#[test]
fn a_busy_migration_lock_is_retryable() {
    let message = termination_message("migrate", "migrate-lock-timeout.json", 1);
    let failure = failed(interpret("migrate", "job-failed.json", Some(&message)));
    assert_eq!((failure.reason, failure.retryable), ("LockTimeout", true));
}

#[test]
fn a_changed_migration_is_a_checksum_mismatch_in_plan_and_migrate() {
    for (key, output) in [
        ("plan", "plan-checksum-mismatch.json"),
        ("migrate", "migrate-checksum-mismatch.json"),
    ] {
        let message = termination_message(key, output, 1);
        let failure = failed(interpret(key, "job-failed.json", Some(&message)));
        assert_eq!(
            (failure.reason, failure.retryable),
            ("ChecksumMismatch", false),
            "{key}"
        );
        assert!(failure.message.contains("version 1"), "{}", failure.message);
    }
}

#[test]
fn a_failed_migration_in_the_history_asks_for_repair_only_when_allowed() {
    let annotated = [(
        "portfolio.dev/allow-maintenance".to_owned(),
        "repair".to_owned(),
    )];
    for (key, output) in [
        ("plan", "plan-needs-repair.json"),
        ("migrate", "migrate-needs-repair.json"),
    ] {
        let message = termination_message(key, output, 1);
        // Not allowed: a failure a person must resolve.
        let denied = failed(interpret(key, "job-failed.json", Some(&message)));
        assert_eq!(
            (denied.reason, denied.retryable),
            ("FailedMigrationNeedsRepair", false)
        );
        assert!(denied.message.contains("allowRepair"));
        assert!(denied.message.contains("portfolio.dev/allow-maintenance"));
        // Allowed by the setting or the annotation: the repair step may fix it.
        for (settings, annotations) in [
            (r#"{"allowRepair": true}"#, &[][..]),
            ("{}", &annotated[..]),
        ] {
            let outcome = interpret_with(
                SPEC,
                settings,
                annotations,
                key,
                "job-failed.json",
                Some(&message),
            );
            let Outcome::LockHeld(why) = outcome else {
                panic!("{key}: {outcome:?}")
            };
            assert!(why.contains("version 2"), "{why}");
        }
        // Never in a dry run, which has no repair step.
        let dry = failed(interpret_with(
            DRY_RUN_SPEC,
            r#"{"allowRepair": true}"#,
            &[],
            "plan",
            "job-failed.json",
            Some(&message),
        ));
        assert_eq!(dry.reason, "FailedMigrationNeedsRepair");
    }
}

#[test]
fn repair_reports_what_it_did() {
    let message = termination_message("repair", "repair-success.json", 0);
    assert_eq!(
        interpret_with(
            SPEC,
            r#"{"allowRepair": true}"#,
            &[],
            "repair",
            "job-complete.json",
            Some(&message)
        ),
        Outcome::Succeeded {
            applied_version: None,
            summary: "repair: Removed failed migrations".into(),
        }
    );
}

#[test]
fn a_deadline_is_a_retryable_timeout_whatever_the_message() {
    let partial = termination_message("migrate", "migrate-sql-error.json", 143);
    for message in [None, Some(partial.as_str()), Some("garbage")] {
        let failure = failed(interpret("migrate", "job-deadline-exceeded.json", message));
        assert_eq!(
            (failure.reason, failure.retryable),
            ("DeadlineExceeded", true)
        );
        assert!(failure.message.contains("15m"), "{}", failure.message);
    }
}

#[test]
fn truncated_messages_never_turn_a_failure_into_a_success() {
    let message = termination_message("migrate", "migrate-sql-error.json", 1);
    let mut cut = 0;
    while cut < message.len() {
        if message.is_char_boundary(cut) {
            let outcome = interpret("migrate", "job-failed.json", Some(&message[..cut]));
            assert!(
                matches!(outcome, Outcome::Failed(_)),
                "cut at {cut}: {outcome:?}"
            );
            // Once the header and the SQLSTATE survive, the reason does too.
            if message[..cut].contains("\"sqlState\":\"42601\"}\n") {
                assert_eq!(failed(outcome).reason, "SqlError", "cut at {cut}");
            }
        }
        cut += 7;
    }
}

#[test]
fn kubernetes_cutting_a_long_message_keeps_the_facts_before_the_cut() {
    // A message longer than Kubernetes keeps (4096 bytes), cut in a string.
    let message = termination_message("migrate", "migrate-success.json", 0);
    let long = format!("{message}{{\"message\":\"{}\"}}\n", "x".repeat(5000));
    let cut = &long[..4096];
    let Outcome::Succeeded {
        applied_version, ..
    } = interpret("migrate", "job-complete.json", Some(cut))
    else {
        panic!()
    };
    assert_eq!(applied_version.as_deref(), Some("3"));
}

#[test]
fn log_text_instead_of_a_summary_is_still_read() {
    let log = "ERROR: Unable to obtain connection from database (jdbc:postgresql://db.shop.svc:5432/shop) for user 'shop': Connection to db.shop.svc:5432 refused.";
    let failure = failed(interpret("migrate", "job-failed.json", Some(log)));
    assert_eq!(
        (failure.reason, failure.retryable),
        ("ConnectionRefused", true)
    );
}
