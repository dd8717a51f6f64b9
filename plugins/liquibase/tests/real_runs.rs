//! `interpret` on what real Liquibase runs left: the termination messages,
//! stdout, stderr and update-sql output that the host's real-tool tests
//! (`host/tests/it/real_tools.rs`) saved from the Jobs of
//! `examples/liquibase-migration.yaml` run with the Liquibase 4.28 CLI
//! against PostgreSQL 15 (`tests/fixtures/liquibase-4.28`; rewritten only by
//! `UPDATE_FIXTURES=1` there).
//!
//! Each case reads the saved termination message, and also replays the saved
//! output through the current step program (a fake `liquibase` that prints
//! it), so a change to the program is checked against real output too.

#![cfg(not(target_arch = "wasm32"))]

use liquibase::Liquibase;
use strategy_kit::Outcome;
use strategy_kit::summary::Summary;
use strategy_kit::testing::{self, failed, fixture, input};

/// The example's spec, as far as `interpret` reads it.
const SPEC: &str = r#"{"tool": "liquibase", "phase": "contract", "approval": "Manual", "database": {"url": "jdbc:postgresql://127.0.0.1:5432/shop", "credentialsSecretRef": {"name": "shop-db"}}, "source": {"image": "ghcr.io/acme/shop-changelog:1.4.2", "path": "/liquibase/changelog"}, "liquibase": {"changelogFile": "changelog.yaml", "contexts": ["production"], "labels": "!experimental", "parameters": {"schema": "shop"}}, "timeout": "20m"}"#;

/// Settings under which every step is planned (release-locks included).
const RELEASE_ALLOWED: &str = r#"{"allowReleaseLocks": true}"#;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/liquibase-4.28");

/// The saved termination message of `case`'s step `key`.
fn saved(case: &str, key: &str) -> String {
    fixture(DIR, &format!("{case}.{key}.termination-log"))
}

/// The termination message the current program makes from `case`'s saved
/// output: the step's last Liquibase command prints the saved stdout and
/// stderr and exits with the saved code; `update-sql` writes the saved SQL.
fn replayed(case: &str, key: &str) -> String {
    let code = Summary::parse(&saved(case, key))
        .expect("a saved summary")
        .exit_code;
    let path = |suffix: &str| format!("{DIR}/{case}.{key}.{suffix}");
    let sql = path("sql");
    let fake = format!(
        "cmd=\nfor a in \"$@\"; do case \"$a\" in update-sql|status|update|release-locks) cmd=$a ;; --output-file=*) out=${{a#--output-file=}} ;; esac; done\n\
         if [ \"$cmd\" = update-sql ]; then if [ -f '{sql}' ]; then cat '{sql}' >\"$out\"; fi; exit 0; fi\n\
         cat '{stdout}'\ncat '{stderr}' >&2\nexit {code}\n",
        stdout = path("stdout"),
        stderr = path("stderr"),
    );
    testing::termination_message::<Liquibase>(SPEC, RELEASE_ALLOWED, key, &fake)
}

fn interpret(settings: &str, key: &str, message: &str) -> Outcome {
    let code = Summary::parse(message).expect("a summary").exit_code;
    let job = if code == 0 {
        "job-complete.json"
    } else {
        "job-failed.json"
    };
    testing::interpret::<Liquibase>(&input(SPEC, settings, &[]), key, job, Some(message))
}

/// The outcome of `case`'s step `key` from the saved message and from the
/// replayed one, which must agree; and neither may take Liquibase's
/// informational lines for errors.
fn outcome(case: &str, key: &str, settings: &str) -> Outcome {
    let saved = saved(case, key);
    let replayed = replayed(case, key);
    for message in [&saved, &replayed] {
        assert!(message.len() <= 4000);
        let summary = Summary::parse(message).expect("a summary");
        for error in summary.strings("error") {
            assert!(
                ![
                    "Starting Liquibase",
                    "Liquibase Version",
                    "executed successfully",
                    "Picked up",
                    "LIQUIBASE_"
                ]
                .iter()
                .any(|noise| error.contains(noise)),
                "noise recorded as an error: {error}"
            );
        }
    }
    let from_saved = interpret(settings, key, &saved);
    assert_eq!(
        from_saved,
        interpret(settings, key, &replayed),
        "the current program reads the real output differently:\n{replayed}"
    );
    from_saved
}

#[test]
fn a_clean_update() {
    assert_eq!(
        outcome("clean", "update", "{}"),
        Outcome::Succeeded {
            applied_version: Some("changelog.yaml::3::alice".into()),
            summary: "applied 3 changeset(s), the last changelog.yaml::3::alice; 0 ran before"
                .into(),
        }
    );
    let summary = saved("clean", "update");
    assert!(!summary.contains("\"error\""), "{summary}");
}

#[test]
fn an_already_applied_changelog() {
    assert_eq!(
        outcome("already-applied", "update", "{}"),
        Outcome::Succeeded {
            applied_version: None,
            summary: "nothing to apply; 3 changeset(s) ran before".into(),
        }
    );
}

#[test]
fn contexts_and_labels_filter_changesets() {
    assert_eq!(
        outcome("filters", "update", "{}"),
        Outcome::Succeeded {
            applied_version: Some("changelog.yaml::4::bob".into()),
            summary: "applied 4 changeset(s), the last changelog.yaml::4::bob; 0 ran before".into(),
        }
    );
    assert!(saved("filters", "update").contains("{\"filteredOut\":2}"));
}

#[test]
fn bad_sql_is_not_retryable_and_quotes_postgresql() {
    let failure = failed(outcome("bad-sql", "update", "{}"));
    assert_eq!((failure.reason, failure.retryable), ("SqlError", false));
    for words in [
        "Migration failed for changeset changelog.yaml::2::carol",
        "syntax error at or near \"TABL\"",
    ] {
        assert!(failure.message.contains(words), "{}", failure.message);
    }
}

#[test]
fn a_refused_connection_is_retryable() {
    let failure = failed(outcome("connection-refused", "update", "{}"));
    assert_eq!(
        (failure.reason, failure.retryable),
        ("ConnectionRefused", true)
    );
}

#[test]
fn a_stale_lock_asks_for_release_locks_which_clears_it() {
    let Outcome::LockHeld(holder) = outcome("stale-lock", "update", RELEASE_ALLOWED) else {
        panic!("expected LockHeld")
    };
    assert!(
        holder.contains("shop-cleanup-update-crashed (10.42.0.17)"),
        "{holder}"
    );
    // Without release-locks in the plan: retryable, in case the holder lives.
    let denied = failed(interpret("{}", "update", &saved("stale-lock", "update")));
    assert_eq!((denied.reason, denied.retryable), ("LockHeld", true));
    assert_eq!(
        outcome("stale-lock", "release-locks", RELEASE_ALLOWED),
        Outcome::Succeeded {
            applied_version: None,
            summary: "released the changelog lock (DATABASECHANGELOGLOCK)".into(),
        }
    );
    let Outcome::Succeeded {
        applied_version, ..
    } = outcome("stale-lock-retried", "update", RELEASE_ALLOWED)
    else {
        panic!("expected the retried update to succeed")
    };
    assert_eq!(applied_version.as_deref(), Some("changelog.yaml::3::alice"));
}

#[test]
fn the_plan_step_lists_pending_changesets() {
    assert_eq!(
        outcome("plan", "plan", "{}"),
        Outcome::Succeeded {
            applied_version: None,
            summary: "3 changeset(s) pending (changelog.yaml::1::alice, changelog.yaml::2::alice, changelog.yaml::3::alice); update-sql rendered 3 statement(s)".into(),
        }
    );
}
