//! `interpret` on realistic Jobs and termination messages.
//!
//! The termination messages are made the way a cluster makes them: the
//! step's own container program (taken from the planned Job) runs with a
//! fake `flyway` that prints a recorded Flyway 13 output (`tests/fixtures`)
//! and exits as Flyway would. So these tests cover the wrapper, its awk
//! program and the reader together.

#![cfg(not(target_arch = "wasm32"))]

use serde_json::Value;
use strategy_kit::testing;
use strategy_kit::{Error, Failure, Input, Outcome};

const SPEC: &str = r#"{"tool": "flyway", "database": {"url": "jdbc:postgresql://db.shop.svc:5432/shop", "credentialsSecretRef": {"name": "shop-db"}}, "source": {"configMapRef": {"name": "shop-sql"}}, "timeout": "15m"}"#;
const DRY_RUN_SPEC: &str = r#"{"tool": "flyway", "dryRun": true, "database": {"url": "jdbc:postgresql://db.shop.svc:5432/shop", "credentialsSecretRef": {"name": "shop-db"}}, "source": {"configMapRef": {"name": "shop-sql"}}}"#;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn input<'a>(spec: &'a str, settings: &'a str, annotations: &'a [(String, String)]) -> Input<'a> {
    Input {
        name: "shop",
        uid: "0b6f3c1e-7d4a-4f9e-9c55-2a1e8d6b4f10",
        annotations,
        spec,
        settings,
    }
}

/// The termination message step `key` leaves when Flyway prints the
/// fixture `output` and exits with `code`.
fn termination_message(key: &str, output: &str, code: i32) -> String {
    let plan = flyway::plan(&input(SPEC, r#"{"allowRepair": true}"#, &[])).unwrap();
    let step = plan.steps.iter().find(|step| step.key == key).unwrap();
    let job: Value = serde_json::from_str(&step.job).unwrap();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let program = container["command"][2].as_str().unwrap();
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arg| arg.as_str().unwrap().to_owned())
        .collect();
    let fake = format!(
        "cat <<'FLYWAY_OUTPUT'\n{}\nFLYWAY_OUTPUT\nexit {code}",
        fixture(output)
    );
    let run = testing::run(program, key, &args, "flyway", &fake);
    assert!(run.termination_message.len() <= 4000);
    if std::env::var_os("SHOW_TERMINATION_MESSAGES").is_some() {
        eprintln!("--- {key}:\n{}", run.termination_message);
    }
    run.termination_message
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
    let outcome = flyway::interpret(
        &input(spec, settings, annotations),
        key,
        &fixture(job),
        message,
    )
    .unwrap();
    within_the_operators_bounds(&outcome);
    outcome
}

/// What the operator checks of every outcome (host/src/plugin/strategy.rs):
/// CamelCase reasons, texts of at most 2048 bytes, versions of at most 256.
fn within_the_operators_bounds(outcome: &Outcome) {
    match outcome {
        Outcome::Running => {}
        Outcome::Succeeded {
            applied_version,
            summary,
        } => {
            assert!(
                applied_version
                    .as_ref()
                    .is_none_or(|version| version.len() <= 256)
            );
            assert!(!summary.is_empty() && summary.len() <= 2048, "{summary}");
        }
        Outcome::Failed(failure) => {
            assert!(failure.reason.starts_with(|c: char| c.is_ascii_uppercase()));
            assert!(failure.reason.chars().all(|c| c.is_ascii_alphanumeric()));
            assert!(!failure.message.is_empty() && failure.message.len() <= 2048);
        }
        Outcome::LockHeld(holder) => assert!(!holder.is_empty() && holder.len() <= 2048),
    }
}

fn failed(outcome: Outcome) -> Failure {
    match outcome {
        Outcome::Failed(failure) => failure,
        other => panic!("expected a failure, got {other:?}"),
    }
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
fn a_killed_container_is_retryable() {
    // The container was killed before it could write its summary.
    let failure = failed(interpret("migrate", "job-oom-killed.json", None));
    assert_eq!((failure.reason, failure.retryable), ("Killed", true));
    assert!(failure.message.contains("memory"));
    // The kubelet's fallback: the log's tail instead of a summary.
    let log = "WARNING: sun.misc.Unsafe::objectFieldOffset\nException in thread \"main\" java.lang.OutOfMemoryError: Java heap space\n";
    let failure = failed(interpret("migrate", "job-oom-killed.json", Some(log)));
    assert_eq!((failure.reason, failure.retryable), ("OutOfMemory", true));
}

#[test]
fn a_source_image_without_the_migrations_is_not_retryable() {
    let failure = failed(interpret("migrate", "job-source-copy-failed.json", None));
    assert_eq!(
        (failure.reason, failure.retryable),
        ("SourceCopyFailed", false)
    );
}

#[test]
fn running_and_terminating_jobs_are_running() {
    let message = termination_message("migrate", "migrate-success.json", 0);
    for job in ["job-running.json", "job-terminating.json"] {
        assert_eq!(interpret("migrate", job, None), Outcome::Running);
        assert_eq!(interpret("migrate", job, Some(&message)), Outcome::Running);
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
fn garbage_messages_fall_back_on_the_jobs_word() {
    for garbage in [
        "",
        "\0\0\u{fffd}",
        "{{{{",
        "null",
        "[1,2",
        "{\"format\":\"portfolio.dev/migration-summary/v1\"",
    ] {
        assert!(
            matches!(
                interpret("migrate", "job-complete.json", Some(garbage)),
                Outcome::Succeeded {
                    applied_version: None,
                    ..
                }
            ),
            "{garbage:?}"
        );
        let failure = failed(interpret("migrate", "job-failed.json", Some(garbage)));
        assert_eq!(
            (failure.reason, failure.retryable),
            ("JobFailed", true),
            "{garbage:?}"
        );
    }
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

#[test]
fn what_the_host_got_wrong_is_an_internal_error() {
    let spec_input = input(SPEC, "{}", &[]);
    assert!(matches!(
        flyway::interpret(
            &spec_input,
            "release-locks",
            &fixture("job-complete.json"),
            None
        ),
        Err(Error::Internal(_))
    ));
    assert!(matches!(
        flyway::interpret(&spec_input, "migrate", "{not a job", None),
        Err(Error::Internal(_))
    ));
    // A spec that no longer makes sense is the user's to fix.
    let bad = input(r#"{"tool": "flyway"}"#, "{}", &[]);
    assert!(matches!(
        flyway::interpret(&bad, "migrate", &fixture("job-complete.json"), None),
        Err(Error::Invalid(_))
    ));
}
