//! DatabaseMigrations end to end: planned by the built-in strategies, run as
//! Jobs by the emulator's simulated Job controller, whose pods end with the
//! termination messages the strategies' real container programs leave
//! (`tests/fixtures`, see the README there).

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use portfolio_api::{DatabaseMigration, DatabaseMigrationStatus, MigrationStatusPhase};
use portfolio_e2e::Harness;

const FLYWAY_PLAN: &str = include_str!("../fixtures/flyway-plan-success.txt");
const FLYWAY_MIGRATED: &str = include_str!("../fixtures/flyway-migrate-success.txt");
const FLYWAY_SQL_ERROR: &str = include_str!("../fixtures/flyway-migrate-sql-error.txt");
const FLYWAY_REFUSED: &str = include_str!("../fixtures/flyway-migrate-connection-refused.txt");
const LIQUIBASE_PLAN: &str = include_str!("../fixtures/liquibase-plan.txt");
const LIQUIBASE_UPDATED: &str = include_str!("../fixtures/liquibase-update-success.txt");
const LIQUIBASE_LOCK_HELD: &str = include_str!("../fixtures/liquibase-update-lock-held.txt");
const LIQUIBASE_RELEASED: &str = include_str!("../fixtures/liquibase-release-locks.txt");

/// A Flyway migration of database `db`, with `extra` spec lines.
fn flyway(name: &str, db: &str, extra: &str) -> String {
    format!(
        "apiVersion: portfolio.dev/v1alpha1\nkind: DatabaseMigration\nmetadata:\n  name: {name}\nspec:\n  tool: flyway\n  database:\n    url: jdbc:postgresql://{db}:5432/shop\n    credentialsSecretRef:\n      name: shop-db\n  source:\n    configMapRef:\n      name: shop-sql\n{extra}"
    )
}

/// A Liquibase migration of database `db`, with `extra` lines after `metadata.name`
/// (`annotations`) and after the spec.
fn liquibase(name: &str, db: &str, metadata: &str, extra: &str) -> String {
    format!(
        "apiVersion: portfolio.dev/v1alpha1\nkind: DatabaseMigration\nmetadata:\n  name: {name}\n{metadata}spec:\n  tool: liquibase\n  database:\n    url: jdbc:postgresql://{db}:5432/shop\n    credentialsSecretRef:\n      name: shop-db\n  source:\n    configMapRef:\n      name: shop-changelog\n  liquibase:\n    changelogFile: changelog.yaml\n{extra}"
    )
}

/// Pods of Jobs named like `pattern` succeed with `message` (the latest rule that matches wins).
fn succeed(h: &mut Harness, pattern: &str, message: &str) {
    h.job_outcome(pattern, true, message, Duration::from_millis(200));
}

/// Pods of Jobs named like `pattern` fail with `message`.
fn fail(h: &mut Harness, pattern: &str, message: &str) {
    h.job_outcome(pattern, false, message, Duration::from_millis(200));
}

/// Pods of Jobs named like `pattern` run for `millis`, then succeed with `message`.
fn slow(h: &mut Harness, pattern: &str, message: &str, millis: u64) {
    h.job_outcome(pattern, true, message, Duration::from_millis(millis));
}

async fn status_of(h: &Harness, name: &str) -> Option<DatabaseMigrationStatus> {
    h.api::<DatabaseMigration>()
        .get_opt(name)
        .await
        .ok()??
        .status
}

async fn await_phase(
    h: &Harness,
    name: &str,
    phase: MigrationStatusPhase,
) -> DatabaseMigrationStatus {
    h.eventually(&format!("{name} is {phase:?}"), || async {
        let status = status_of(h, name).await?;
        (status.phase == Some(phase)).then_some(status)
    })
    .await
}

/// The Jobs of migration `name`, by step (`plan` first) and attempt: creation
/// times are whole seconds, too coarse to order them.
async fn jobs_of(h: &Harness, name: &str) -> Vec<Job> {
    let mut jobs = h
        .api::<Job>()
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")))
        .await
        .expect("jobs")
        .items;
    let rank = |job: &Job| {
        let attempt: u32 = job
            .labels()
            .get("portfolio.dev/attempt")
            .and_then(|a| a.parse().ok())
            .unwrap_or(1);
        (step_of(job) != "plan", step_of(job), attempt)
    };
    jobs.sort_by_key(rank);
    jobs
}

fn step_of(job: &Job) -> String {
    job.labels()
        .get("portfolio.dev/step")
        .cloned()
        .unwrap_or_default()
}

fn finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

/// Reasons of the Events about migration `name`.
async fn event_reasons(h: &Harness, name: &str) -> Vec<String> {
    h.api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

fn skip_unless_simulated(h: &Harness) -> bool {
    if h.simulates_workloads() {
        return false;
    }
    eprintln!(
        "skipped: needs a Job controller that enforces activeDeadlineSeconds (the emulator's simulated cluster)"
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flyway_migration_plans_runs_and_records_its_version() {
    let mut h = Harness::new("flyway-success").await;
    succeed(&mut h, "shop-v3-plan-*", FLYWAY_PLAN);
    succeed(&mut h, "shop-v3-migrate-*", FLYWAY_MIGRATED);
    h.start_operator().await;
    h.apply_yaml(&flyway("shop-v3", "db", "")).await;
    let status = await_phase(&h, "shop-v3", MigrationStatusPhase::Succeeded).await;
    assert_eq!(status.applied_version.as_deref(), Some("3"), "{status:?}");
    assert_eq!(status.completed_steps, ["plan", "migrate"]);
    assert!(
        status
            .plan_hash
            .as_deref()
            .is_some_and(|h| h.starts_with("sha256:"))
    );
    assert_eq!(
        status
            .history
            .iter()
            .map(|r| (r.step.as_str(), r.result.as_str()))
            .collect::<Vec<_>>(),
        [("migrate", "Succeeded"), ("plan", "Succeeded")]
    );
    assert_eq!(status.observed_generation, Some(1));
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    let jobs = jobs_of(&h, "shop-v3").await;
    assert_eq!(
        jobs.iter().map(step_of).collect::<Vec<_>>(),
        ["plan", "migrate"]
    );
    for job in &jobs {
        assert!(
            job.owner_references()
                .iter()
                .any(|o| o.kind == "DatabaseMigration" && o.controller == Some(true)),
            "{job:?}"
        );
    }
    let migration = h
        .api::<DatabaseMigration>()
        .get("shop-v3")
        .await
        .expect("get");
    assert_eq!(
        migration.annotations().get("portfolio.dev/succeeded-plan"),
        status.plan_hash.as_ref(),
        "the succeeded plan is recorded on the migration"
    );
    let reasons = event_reasons(&h, "shop-v3").await;
    for phase in ["Planning", "Running", "Succeeded"] {
        assert!(reasons.iter().any(|r| r == phase), "{phase}: {reasons:?}");
    }
    // The lock was let go.
    let leases = h.api::<k8s_openapi::api::coordination::v1::Lease>();
    let locks = leases
        .list(&ListParams::default().labels("portfolio.dev/database-lock=true"))
        .await
        .expect("leases");
    assert!(locks.items.is_empty(), "{:?}", locks.items);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liquibase_migration_succeeds() {
    let mut h = Harness::new("liquibase-success").await;
    succeed(&mut h, "orders-plan-*", LIQUIBASE_PLAN);
    succeed(&mut h, "orders-update-*", LIQUIBASE_UPDATED);
    h.start_operator().await;
    h.apply_yaml(&liquibase("orders", "db", "", "")).await;
    let status = await_phase(&h, "orders", MigrationStatusPhase::Succeeded).await;
    assert_eq!(status.completed_steps, ["plan", "update"]);
    assert!(status.plan_summary.is_some(), "{status:?}");
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_is_retried_with_a_new_job_and_then_succeeds() {
    let mut h = Harness::new("retry").await;
    succeed(&mut h, "retried-plan-*", FLYWAY_PLAN);
    fail(&mut h, "retried-migrate-*", FLYWAY_REFUSED);
    succeed(&mut h, "retried-migrate-*-2", FLYWAY_MIGRATED);
    h.start_operator().await;
    h.apply_yaml(&flyway("retried", "db", "  backoffLimit: 2\n"))
        .await;
    let status = await_phase(&h, "retried", MigrationStatusPhase::Succeeded).await;
    let migrate: Vec<String> = jobs_of(&h, "retried")
        .await
        .iter()
        .filter(|job| step_of(job) == "migrate")
        .map(|job| job.name_any())
        .collect();
    assert_eq!(migrate.len(), 2, "{migrate:?}");
    assert!(migrate[1].ends_with("-2"), "{migrate:?}");
    let failed = status
        .history
        .iter()
        .find(|r| r.result == "Failed")
        .expect("the failed attempt is in the history");
    assert!(failed.message.contains("ConnectionRefused"), "{failed:?}");
    assert!(
        event_reasons(&h, "retried")
            .await
            .iter()
            .any(|r| r == "StepFailed")
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sql_fails_for_good_with_the_tools_message() {
    let mut h = Harness::new("bad-sql").await;
    succeed(&mut h, "broken-plan-*", FLYWAY_PLAN);
    fail(&mut h, "broken-migrate-*", FLYWAY_SQL_ERROR);
    h.start_operator().await;
    h.apply_yaml(&flyway("broken", "db", "  backoffLimit: 3\n"))
        .await;
    let status = await_phase(&h, "broken", MigrationStatusPhase::Failed).await;
    let error = status.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("syntax error at or near \"TABL\""),
        "{error}"
    );
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "SqlError")
    );
    // Not retried: one migrate Job, and it stays that way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let migrate = jobs_of(&h, "broken")
        .await
        .into_iter()
        .filter(|j| step_of(j) == "migrate")
        .count();
    assert_eq!(migrate, 1);
    assert!(
        event_reasons(&h, "broken")
            .await
            .iter()
            .any(|r| r == "Failed")
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_runs_past_the_timeout_is_stopped_and_fails() {
    let mut h = Harness::new("timeout").await;
    if skip_unless_simulated(&h) {
        return h.cleanup().await;
    }
    succeed(&mut h, "slowpoke-plan-*", FLYWAY_PLAN);
    slow(&mut h, "slowpoke-migrate-*", FLYWAY_MIGRATED, 60_000);
    h.start_operator().await;
    h.apply_yaml(&flyway(
        "slowpoke",
        "db",
        "  timeout: 2s\n  backoffLimit: 0\n",
    ))
    .await;
    let status = await_phase(&h, "slowpoke", MigrationStatusPhase::Failed).await;
    let job = jobs_of(&h, "slowpoke")
        .await
        .into_iter()
        .find(|j| step_of(j) == "migrate")
        .expect("the migrate Job");
    assert_eq!(
        job.spec.as_ref().and_then(|s| s.active_deadline_seconds),
        Some(2)
    );
    let error = status.last_error.unwrap_or_default();
    assert!(
        error.to_lowercase().contains("deadline") || error.contains("timeout"),
        "{error}"
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_step_adopts_the_job_and_a_success_is_never_run_again() {
    let mut h = Harness::new("restart-mid-step").await;
    succeed(&mut h, "steady-plan-*", FLYWAY_PLAN);
    slow(&mut h, "steady-migrate-*", FLYWAY_MIGRATED, 2_500);
    h.start_operator().await;
    h.apply_yaml(&flyway("steady", "db", "")).await;
    h.eventually("the migrate Job runs", || async {
        let status = status_of(&h, "steady").await?;
        (status.phase == Some(MigrationStatusPhase::Running) && status.current_job.is_some())
            .then_some(())
    })
    .await;
    h.stop_operator().await;
    h.start_operator().await;
    await_phase(&h, "steady", MigrationStatusPhase::Succeeded).await;
    let steps: Vec<String> = jobs_of(&h, "steady").await.iter().map(step_of).collect();
    assert_eq!(steps, ["plan", "migrate"], "exactly one Job per step");

    // The status is lost (a restore without it, a hand edit) and the operator restarts.
    h.stop_operator().await;
    h.api::<DatabaseMigration>()
        .patch_status(
            "steady",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": null})),
        )
        .await
        .expect("clear the status");
    h.start_operator().await;
    let status = await_phase(&h, "steady", MigrationStatusPhase::Succeeded).await;
    assert!(status.last_error.is_none());
    let steps: Vec<String> = jobs_of(&h, "steady").await.iter().map(step_of).collect();
    assert_eq!(steps, ["plan", "migrate"], "nothing ran again");
    h.cleanup().await;
}

/// Poll the Jobs of `migrations` until all succeeded; the most Jobs seen
/// active at once, and the migrations in the order their Jobs first appeared.
async fn watch_runs(h: &Harness, migrations: &[&str]) -> (usize, Vec<String>) {
    let mut most = 0;
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    let deadline = tokio::time::Instant::now() + portfolio_e2e::PATIENCE;
    loop {
        let mut active = 0;
        for name in migrations {
            for job in jobs_of(h, name).await {
                if seen.insert(job.name_any()) {
                    order.push((*name).to_owned());
                }
                if !finished(&job) {
                    active += 1;
                }
            }
        }
        most = most.max(active);
        let mut done = true;
        for name in migrations {
            done &= status_of(h, name)
                .await
                .is_some_and(|s| s.phase == Some(MigrationStatusPhase::Succeeded));
        }
        if done {
            return (most, order);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: {order:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_migrations_of_one_database_run_one_after_the_other() {
    let mut h = Harness::new("same-database").await;
    for name in ["first", "second"] {
        slow(&mut h, &format!("{name}-plan-*"), FLYWAY_PLAN, 400);
        slow(&mut h, &format!("{name}-migrate-*"), FLYWAY_MIGRATED, 400);
    }
    h.start_operator().await;
    // The same database, written differently.
    h.apply_yaml(&flyway("first", "shared-db", "")).await;
    h.apply_yaml(&flyway("second", "SHARED-DB", "")).await;
    let waiting = h
        .eventually("one of them waits for the lock", || async {
            for name in ["first", "second"] {
                let status = status_of(&h, name).await?;
                let progressing = status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Progressing")?;
                if progressing.reason == "WaitingForLock" {
                    return Some(progressing.message.clone());
                }
            }
            None
        })
        .await;
    assert!(
        waiting.contains("DatabaseMigration"),
        "the holder is named: {waiting}"
    );
    let (most, order) = watch_runs(&h, &["first", "second"]).await;
    assert_eq!(most, 1, "at most one Job at a time: {order:?}");
    assert!(
        order == ["first", "first", "second", "second"]
            || order == ["second", "second", "first", "first"],
        "one whole migration after the other: {order:?}"
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_watch_shows_late_is_never_started_twice() {
    let mut h = Harness::new("late-job-watch").await;
    slow(&mut h, "late-plan-*", FLYWAY_PLAN, 400);
    slow(&mut h, "late-migrate-*", FLYWAY_MIGRATED, 400);
    h.start_operator().await;
    if let Some(emulator) = &h.emulator {
        // The Job watch, started again, shows nothing for 3 s: the status
        // written after the plan Job (and its record) come back long before
        // the Job does. Once, like a slow watch cache on a busy API server.
        emulator
            .control()
            .add_fault(
                emulator::FaultRule::delay(Duration::from_secs(3))
                    .verb("watch")
                    .resource("jobs")
                    .times(1),
            )
            .expect("a delayed Job watch");
        emulator.cut_watches();
    }
    h.apply_yaml(&flyway("late", "db", "")).await;
    let (most, order) = watch_runs(&h, &["late"]).await;
    assert_eq!(most, 1, "at most one Job at a time: {order:?}");
    let jobs: Vec<String> = jobs_of(&h, "late")
        .await
        .iter()
        .map(|job| job.name_any())
        .collect();
    assert_eq!(jobs.len(), 2, "exactly one Job per step: {jobs:?}");
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_of_different_databases_run_in_parallel() {
    let mut h = Harness::new("other-databases").await;
    for name in ["left", "right"] {
        slow(&mut h, &format!("{name}-plan-*"), FLYWAY_PLAN, 1_500);
        slow(&mut h, &format!("{name}-migrate-*"), FLYWAY_MIGRATED, 300);
    }
    h.start_operator().await;
    h.apply_yaml(&flyway("left", "left-db", "")).await;
    h.apply_yaml(&flyway("right", "right-db", "")).await;
    let (most, order) = watch_runs(&h, &["left", "right"]).await;
    assert_eq!(most, 2, "both ran at once: {order:?}");
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_approval_runs_only_the_approved_plan() {
    let mut h = Harness::new("approval").await;
    succeed(&mut h, "gated-plan-*", FLYWAY_PLAN);
    succeed(&mut h, "gated-migrate-*", FLYWAY_MIGRATED);
    h.start_operator().await;
    h.apply_yaml(&flyway("gated", "db", "  approval: Manual\n"))
        .await;
    let status = await_phase(&h, "gated", MigrationStatusPhase::AwaitingApproval).await;
    let hash = status.plan_hash.clone().expect("a plan hash");
    assert!(status.plan_summary.is_some());
    let steps: Vec<String> = jobs_of(&h, "gated").await.iter().map(step_of).collect();
    assert_eq!(steps, ["plan"], "only the plan-only step ran");

    // A wrong hash approves nothing.
    let wrong = format!("sha256:{}", "0".repeat(64));
    h.apply_yaml(&flyway(
        "gated",
        "db",
        &format!("  approval: Manual\n  approvedPlanHash: \"{wrong}\"\n"),
    ))
    .await;
    h.eventually("the wrong hash is seen", || async {
        let status = status_of(&h, "gated").await?;
        (status.observed_generation == Some(2)
            && status.phase == Some(MigrationStatusPhase::AwaitingApproval))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        jobs_of(&h, "gated").await.len(),
        1,
        "nothing ran on a wrong hash"
    );

    // The right one runs it.
    h.apply_yaml(&flyway(
        "gated",
        "db",
        &format!("  approval: Manual\n  approvedPlanHash: \"{hash}\"\n"),
    ))
    .await;
    await_phase(&h, "gated", MigrationStatusPhase::Succeeded).await;

    // A changed plan needs approval again, even with the old hash still set.
    h.apply_yaml(&flyway(
        "gated",
        "db",
        &format!(
            "  approval: Manual\n  approvedPlanHash: \"{hash}\"\n  flyway:\n    target: \"4\"\n"
        ),
    ))
    .await;
    let status = h
        .eventually("the new plan awaits approval", || async {
            let status = status_of(&h, "gated").await?;
            (status.phase == Some(MigrationStatusPhase::AwaitingApproval)
                && status.plan_hash.as_deref() != Some(hash.as_str()))
            .then_some(status)
        })
        .await;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert!(ready.message.contains("plan changed"), "{}", ready.message);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_tool_lock_is_released_once_and_the_update_retried() {
    let mut h = Harness::new("stale-lock").await;
    succeed(&mut h, "locked-plan-*", LIQUIBASE_PLAN);
    fail(&mut h, "locked-update-*", LIQUIBASE_LOCK_HELD);
    succeed(&mut h, "locked-release-locks-*", LIQUIBASE_RELEASED);
    succeed(&mut h, "locked-update-*-2", LIQUIBASE_UPDATED);
    h.start_operator().await;
    h.apply_yaml(&liquibase(
        "locked",
        "db",
        "  annotations:\n    portfolio.dev/allow-maintenance: release-locks\n",
        "  backoffLimit: 0\n",
    ))
    .await;
    let status = await_phase(&h, "locked", MigrationStatusPhase::Succeeded).await;
    let jobs = jobs_of(&h, "locked").await;
    let steps: Vec<(String, Option<String>)> = jobs
        .iter()
        .map(|job| {
            let attempt = job.labels().get("portfolio.dev/attempt").cloned();
            (step_of(job), attempt)
        })
        .collect();
    let attempt = |n: &str| Some(n.to_owned());
    assert_eq!(
        steps,
        [
            ("plan".into(), attempt("1")),
            ("release-locks".into(), attempt("1")),
            ("update".into(), attempt("1")),
            ("update".into(), attempt("2")),
        ],
        "{status:?}"
    );
    let release = jobs
        .iter()
        .find(|j| step_of(j) == "release-locks")
        .expect("release-locks");
    assert_eq!(
        release
            .annotations()
            .get("portfolio.dev/repairs-attempt")
            .map(String::as_str),
        Some("1"),
        "it ran for the first update attempt"
    );
    assert!(
        status.history.iter().any(|r| r.result == "LockHeld"),
        "{status:?}"
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_only_plans() {
    let mut h = Harness::new("dry-run").await;
    succeed(&mut h, "rehearsal-plan-*", FLYWAY_PLAN);
    h.start_operator().await;
    h.apply_yaml(&flyway("rehearsal", "db", "  dryRun: true\n"))
        .await;
    let status = await_phase(&h, "rehearsal", MigrationStatusPhase::Succeeded).await;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.reason, "DryRun");
    let steps: Vec<String> = jobs_of(&h, "rehearsal").await.iter().map(step_of).collect();
    assert_eq!(steps, ["plan"]);
    assert_eq!(status.applied_version, None);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_migration_stops_its_job_and_lets_go() {
    let mut h = Harness::new("delete-running").await;
    succeed(&mut h, "doomed-plan-*", FLYWAY_PLAN);
    slow(&mut h, "doomed-migrate-*", FLYWAY_MIGRATED, 60_000);
    h.start_operator().await;
    h.apply_yaml(&flyway("doomed", "db", "")).await;
    let job = h
        .eventually("the migrate Job runs", || async {
            status_of(&h, "doomed")
                .await?
                .current_job
                .filter(|job| job.contains("-migrate-"))
        })
        .await;
    h.api::<DatabaseMigration>()
        .delete("doomed", &DeleteParams::default())
        .await
        .expect("delete");
    h.eventually("the migration is gone", || async {
        h.api::<DatabaseMigration>()
            .get_opt("doomed")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    h.eventually("its Job is gone", || async {
        h.api::<Job>()
            .get_opt(&job)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let reasons = event_reasons(&h, "doomed").await;
    assert!(reasons.iter().any(|r| r == "Deleted"), "{reasons:?}");
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_asks_nothing_of_finished_migrations() {
    let mut h = Harness::new("restart-finished").await;
    succeed(&mut h, "done-plan-*", FLYWAY_PLAN);
    succeed(&mut h, "done-migrate-*", FLYWAY_MIGRATED);
    fail(&mut h, "broken-migrate-*", FLYWAY_SQL_ERROR);
    h.start_operator().await;
    h.apply_yaml(&flyway("done", "db-a", "")).await;
    h.apply_yaml(&flyway("broken", "db-b", "")).await;
    h.apply_yaml(&flyway("waiting", "db-c", "  approval: Manual\n"))
        .await;
    await_phase(&h, "done", MigrationStatusPhase::Succeeded).await;
    await_phase(&h, "broken", MigrationStatusPhase::Failed).await;
    await_phase(&h, "waiting", MigrationStatusPhase::AwaitingApproval).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.stop_operator().await;

    if !h.emulated() {
        eprintln!("skipped the request count: it needs the emulator's view of the requests");
        return h.cleanup().await;
    }
    h.forget_operator_requests();
    h.start_operator().await;
    // The new operator reconciled every migration.
    h.await_reconciles_ok(3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests = h.operator_requests();
    let asked: Vec<_> = requests
        .iter()
        .filter(|(request, _)| !request.starts_with("list ") && !request.starts_with("watch "))
        .filter(|(request, _)| {
            !request.contains("coordination.k8s.io/leases") || !request.starts_with("get ")
        })
        .collect();
    // The leadership Lease is read and renewed; nothing else is asked.
    assert!(
        asked.iter().all(|(request, _)| request.contains("leases")),
        "a restart must not touch finished migrations: {requests:?}"
    );
    assert_eq!(h.metrics.writes(), 0, "{requests:?}");
    assert_eq!(h.metrics.applies(), 0, "{requests:?}");
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_reported_and_never_run() {
    let mut h = Harness::new("migration-bad-input").await;
    h.start_operator().await;
    // Credentials in the URL: the strategy refuses the spec.
    h.apply_yaml(&flyway("leaky", "alice:secret@db", "")).await;
    // A strategy nobody published.
    h.apply_yaml(&flyway(
        "orphan",
        "db",
        "  strategy:\n    plugin: team-flyway@^2\n",
    ))
    .await;
    let leaky = await_phase(&h, "leaky", MigrationStatusPhase::Failed).await;
    let degraded = leaky
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded");
    assert_eq!(degraded.reason, "InvalidSpec", "{degraded:?}");
    assert!(
        degraded.message.contains("spec.database.url"),
        "{}",
        degraded.message
    );
    assert!(
        !degraded.message.contains("secret"),
        "the password is not repeated: {}",
        degraded.message
    );
    let orphan = h
        .eventually("the missing strategy is reported", || async {
            let status = status_of(&h, "orphan").await?;
            let degraded = status.conditions.iter().find(|c| c.type_ == "Degraded")?;
            (degraded.reason == "PluginNotFound").then_some(status)
        })
        .await;
    assert_eq!(orphan.phase, Some(MigrationStatusPhase::Pending));
    assert!(
        orphan
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("team-flyway")),
        "{orphan:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["leaky", "orphan"] {
        assert!(jobs_of(&h, name).await.is_empty(), "{name} ran nothing");
    }
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_changed_mid_run_lets_the_running_job_finish_first() {
    let mut h = Harness::new("changed-mid-run").await;
    succeed(&mut h, "moving-plan-*", FLYWAY_PLAN);
    slow(&mut h, "moving-migrate-*", FLYWAY_MIGRATED, 1_500);
    h.start_operator().await;
    h.apply_yaml(&flyway("moving", "db", "  flyway:\n    target: \"3\"\n"))
        .await;
    h.eventually("the migrate Job runs", || async {
        status_of(&h, "moving")
            .await?
            .current_job
            .filter(|job| job.contains("-migrate-"))
    })
    .await;
    h.apply_yaml(&flyway("moving", "db", "  flyway:\n    target: \"4\"\n"))
        .await;
    let mut most = 0;
    let deadline = tokio::time::Instant::now() + portfolio_e2e::PATIENCE;
    loop {
        let active = jobs_of(&h, "moving")
            .await
            .iter()
            .filter(|j| !finished(j))
            .count();
        most = most.max(active);
        let status = status_of(&h, "moving").await.unwrap_or_default();
        if status.observed_generation == Some(2)
            && status.phase == Some(MigrationStatusPhase::Succeeded)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(most, 1, "the new plan's Jobs waited for the old one");
    let steps: Vec<String> = jobs_of(&h, "moving").await.iter().map(step_of).collect();
    assert_eq!(
        steps,
        ["plan", "plan", "migrate", "migrate"],
        "both plans ran whole"
    );
    h.cleanup().await;
}
