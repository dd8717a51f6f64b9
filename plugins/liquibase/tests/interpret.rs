//! `interpret` on realistic Jobs and termination messages.
//!
//! The termination messages are made the way a cluster makes them: the
//! step's own container program (taken from the planned Job) runs with a
//! fake `liquibase` that prints recorded Liquibase 4.33 console output
//! (`tests/fixtures`) for each command it is given, and exits as Liquibase
//! would. So these tests cover the wrapper, its awk program and the reader
//! together.

#![cfg(not(target_arch = "wasm32"))]

use liquibase::Liquibase;
use strategy_kit::Outcome;
use strategy_kit::testing::{self, failed, fixture, input};

const SPEC: &str = r#"{"tool": "liquibase", "database": {"url": "jdbc:postgresql://db.shop.svc:5432/shop", "credentialsSecretRef": {"name": "shop-db"}}, "source": {"configMapRef": {"name": "shop-changelog"}}, "liquibase": {"changelogFile": "db/changelog.yaml", "parameters": {"schema": "shop"}}, "timeout": "15m"}"#;
const DRY_RUN_SPEC: &str = r#"{"tool": "liquibase", "dryRun": true, "database": {"url": "jdbc:postgresql://db.shop.svc:5432/shop", "credentialsSecretRef": {"name": "shop-db"}}, "source": {"configMapRef": {"name": "shop-changelog"}}, "liquibase": {"changelogFile": "db/changelog.yaml"}}"#;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The termination message step `key` leaves when each Liquibase command
/// of `outputs` prints its stdout and stderr fixtures and exits with its code.
fn termination_message(key: &str, outputs: &[(&str, &str, &str, i32)]) -> String {
    let mut fake = String::from(
        "cmd=\nfor a in \"$@\"; do case \"$a\" in update-sql|status|update|release-locks) cmd=$a ;; --output-file=*) sql=${a#--output-file=} ;; esac; done\n\
         if [ \"$cmd\" = update-sql ]; then cat >\"$sql\" <<'SQL'\n-- Lock Database\nUPDATE DATABASECHANGELOGLOCK SET LOCKED = TRUE WHERE ID = 1;\n-- Changeset db/changelog.yaml::2::alice\nCREATE TABLE shop.orders (id BIGINT NOT NULL, CONSTRAINT orders_pkey PRIMARY KEY (id));\nINSERT INTO shop.DATABASECHANGELOG (ID, AUTHOR) VALUES ('2', 'alice');\n-- Changeset db/changelog.yaml::3::alice\nCREATE INDEX orders_created ON shop.orders(id);\nSQL\nfi\ncase \"$cmd\" in\n",
    );
    for (command, stdout, stderr, code) in outputs {
        fake.push_str(&format!(
            "{command})\ncat <<'OUT'\n{}\nOUT\ncat >&2 <<'ERR'\n{}\nERR\nexit {code} ;;\n",
            fixture(FIXTURES, stdout),
            fixture(FIXTURES, stderr)
        ));
    }
    fake.push_str("esac\necho \"unexpected command $cmd\" >&2\nexit 99\n");
    testing::termination_message::<Liquibase>(SPEC, r#"{"allowReleaseLocks": true}"#, key, &fake)
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
    testing::interpret::<Liquibase>(&input(spec, settings, annotations), key, job, message)
}

fn update_failing_with(stderr: &str) -> String {
    termination_message("update", &[("update", "", stderr, 1)])
}

#[test]
fn a_successful_update_reports_the_last_changeset() {
    let message = termination_message("update", &[("update", "update-success.out", "", 0)]);
    assert_eq!(
        interpret("update", "job-complete.json", Some(&message)),
        Outcome::Succeeded {
            applied_version: Some("db/changelog.yaml::3::alice".into()),
            summary: "applied 2 changeset(s), the last db/changelog.yaml::3::alice; 1 ran before"
                .into(),
        }
    );
}

#[test]
fn an_update_with_nothing_to_do_says_so() {
    let message = termination_message("update", &[("update", "update-up-to-date.out", "", 0)]);
    assert_eq!(
        interpret("update", "job-complete.json", Some(&message)),
        Outcome::Succeeded {
            applied_version: None,
            summary: "nothing to apply; 3 changeset(s) ran before".into(),
        }
    );
}

#[test]
fn the_plan_step_renders_sql_and_lists_pending_changesets() {
    let message = termination_message(
        "plan",
        &[
            ("update-sql", "plan-update-sql.out", "", 0),
            ("status", "plan-status.out", "", 0),
        ],
    );
    assert!(message.contains("CREATE TABLE shop.orders"), "{message}");
    assert!(!message.contains("DATABASECHANGELOG"), "{message}");
    assert_eq!(
        interpret("plan", "job-complete.json", Some(&message)),
        Outcome::Succeeded {
            applied_version: None,
            summary: "2 changeset(s) pending (db/changelog.yaml::2::alice, db/changelog.yaml::3::alice); update-sql rendered 2 statement(s)".into(),
        }
    );
}

#[test]
fn a_failing_update_sql_stops_the_plan_step() {
    let message = termination_message(
        "plan",
        &[
            ("update-sql", "", "update-connection-refused.err", 1),
            ("status", "plan-status.out", "", 0),
        ],
    );
    assert!(
        !message.contains("pendingChangeset"),
        "status ran: {message}"
    );
    let failure = failed(interpret("plan", "job-failed.json", Some(&message)));
    assert_eq!(
        (failure.reason, failure.retryable),
        ("ConnectionRefused", true)
    );
}

#[test]
fn bad_sql_is_not_retryable_and_names_the_changeset() {
    let message = termination_message(
        "update",
        &[("update", "update-sql-error.out", "update-sql-error.err", 1)],
    );
    let failure = failed(interpret("update", "job-failed.json", Some(&message)));
    assert_eq!((failure.reason, failure.retryable), ("SqlError", false));
    for expected in [
        "db/changelog.yaml::2::alice",
        "syntax error at or near \"TABL\"",
    ] {
        assert!(
            failure.message.contains(expected),
            "{expected}: {}",
            failure.message
        );
    }
}

#[test]
fn connection_failures_are_retryable() {
    for (stderr, reason) in [
        ("update-connection-refused.err", "ConnectionRefused"),
        ("update-unknown-host.err", "UnknownHost"),
    ] {
        let failure = failed(interpret(
            "update",
            "job-failed.json",
            Some(&update_failing_with(stderr)),
        ));
        assert_eq!(
            (failure.reason, failure.retryable),
            (reason, true),
            "{stderr}"
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
    let failure = failed(interpret(
        "update",
        "job-failed.json",
        Some(&update_failing_with("update-auth-failed.err")),
    ));
    assert_eq!(
        (failure.reason, failure.retryable),
        ("AuthenticationFailed", false)
    );
}

#[test]
fn a_changed_changeset_is_a_checksum_mismatch() {
    let failure = failed(interpret(
        "update",
        "job-failed.json",
        Some(&update_failing_with("update-checksum.err")),
    ));
    assert_eq!(
        (failure.reason, failure.retryable),
        ("ChecksumMismatch", false)
    );
    assert!(
        failure.message.contains("db/changelog.yaml::1::alice"),
        "{}",
        failure.message
    );
}

#[test]
fn a_held_lock_asks_for_release_locks_only_when_allowed() {
    let message = termination_message(
        "update",
        &[("update", "update-lock-held.out", "update-lock-held.err", 1)],
    );
    // Not allowed: retryable, in case the holder is a live run.
    let denied = failed(interpret("update", "job-failed.json", Some(&message)));
    assert_eq!((denied.reason, denied.retryable), ("LockHeld", true));
    assert!(
        denied
            .message
            .contains("shop-update-7f3a9c21d0-x7k2p (10.42.0.17)"),
        "{}",
        denied.message
    );
    assert!(denied.message.contains("allowReleaseLocks"));
    // Allowed by the setting or the annotation: the release-locks step may fix it.
    let annotated = [(
        "portfolio.dev/allow-maintenance".to_owned(),
        "release-locks".to_owned(),
    )];
    for (settings, annotations) in [
        (r#"{"allowReleaseLocks": true}"#, &[][..]),
        ("{}", &annotated[..]),
    ] {
        let outcome = interpret_with(
            SPEC,
            settings,
            annotations,
            "update",
            "job-failed.json",
            Some(&message),
        );
        let Outcome::LockHeld(holder) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(
            holder.contains(
                "held by shop-update-7f3a9c21d0-x7k2p (10.42.0.17) since 11/26/26, 9:58 AM"
            ),
            "{holder}"
        );
    }
    // Never in a dry run, which has no release-locks step.
    let dry = failed(interpret_with(
        DRY_RUN_SPEC,
        r#"{"allowReleaseLocks": true}"#,
        &[],
        "plan",
        "job-failed.json",
        Some(&message),
    ));
    assert_eq!(dry.reason, "LockHeld");
}

#[test]
fn a_lock_waited_on_until_the_deadline_is_still_a_held_lock() {
    // SIGTERM at the deadline: Liquibase stops while waiting, without its error.
    let message = termination_message("update", &[("update", "update-lock-held.out", "", 143)]);
    let outcome = interpret_with(
        SPEC,
        r#"{"allowReleaseLocks": true}"#,
        &[],
        "update",
        "job-deadline-exceeded.json",
        Some(&message),
    );
    assert!(matches!(outcome, Outcome::LockHeld(_)), "{outcome:?}");
}

#[test]
fn release_locks_reports_success() {
    let message = termination_message(
        "release-locks",
        &[("release-locks", "release-locks.out", "", 0)],
    );
    assert_eq!(
        interpret_with(
            SPEC,
            r#"{"allowReleaseLocks": true}"#,
            &[],
            "release-locks",
            "job-complete.json",
            Some(&message)
        ),
        Outcome::Succeeded {
            applied_version: None,
            summary: "released the changelog lock (DATABASECHANGELOGLOCK)".into(),
        }
    );
}

#[test]
fn a_deadline_is_a_retryable_timeout() {
    let partial = termination_message("update", &[("update", "update-success.out", "", 143)]);
    for message in [None, Some(partial.as_str()), Some("garbage")] {
        let failure = failed(interpret("update", "job-deadline-exceeded.json", message));
        assert_eq!(
            (failure.reason, failure.retryable),
            ("DeadlineExceeded", true)
        );
    }
}

#[test]
fn truncated_messages_never_turn_a_failure_into_a_success() {
    let message = termination_message(
        "update",
        &[("update", "update-sql-error.out", "update-sql-error.err", 1)],
    );
    let mut cut = 0;
    while cut < message.len() {
        if message.is_char_boundary(cut) {
            let outcome = interpret("update", "job-failed.json", Some(&message[..cut]));
            assert!(
                matches!(outcome, Outcome::Failed(_)),
                "cut at {cut}: {outcome:?}"
            );
        }
        cut += 5;
    }
}

#[test]
fn log_text_instead_of_a_summary_is_still_read() {
    let log = fixture(FIXTURES, "update-lock-held.err");
    let failure = failed(interpret("update", "job-failed.json", Some(&log)));
    assert_eq!(failure.reason, "LockHeld");
    let outcome = interpret_with(
        SPEC,
        r#"{"allowReleaseLocks": true}"#,
        &[],
        "update",
        "job-failed.json",
        Some(&log),
    );
    assert!(matches!(outcome, Outcome::LockHeld(_)));
}
