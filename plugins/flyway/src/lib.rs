//! Built-in migration strategy: runs Flyway as Kubernetes Jobs.
//!
//! # Plan
//!
//! | key | phase | runs |
//! |---|---|---|
//! | `plan` | `plan-only` | `flyway info validate`: lists pending migrations and validates the applied ones (pending ones are not an error here); changes nothing |
//! | `migrate` | `spec.phase` | `flyway migrate` (absent with `spec.dryRun`) |
//! | `repair` | `maintenance` | `flyway repair` (only when allowed, never with `spec.dryRun`) |
//!
//! The `repair` step is in the plan when the plugin's setting `allowRepair`
//! is true, or when the DatabaseMigration carries the annotation
//! `portfolio.dev/allow-maintenance: repair` (see
//! [`strategy_kit::maintenance`]). `interpret` answers `lock-held` when
//! Flyway reports a failed migration in its schema history (left behind on
//! databases without transactional DDL) and the plan carries `repair`; the
//! operator then runs `repair` and the failed step again. Without it, the
//! same condition fails the step with `FailedMigrationNeedsRepair`.
//!
//! Flyway's own lock (a session-level advisory lock on PostgreSQL, a lock
//! table elsewhere) dies with the session, so it never needs releasing; a
//! run that waited too long for it fails with the retryable `LockTimeout`.
//!
//! # Jobs
//!
//! See [`strategy_kit`] and [`strategy_kit::job`] for the Job skeleton. The
//! container runs Flyway with `-outputType=json`, `-cleanDisabled=true`
//! forced, everything else from `spec.flyway` as arguments, and the
//! credentials from the Secret in `FLYWAY_USER` / `FLYWAY_PASSWORD`.
//!
//! # Image
//!
//! [`DEFAULT_IMAGE`] is the open-source `flyway/flyway` image (Temurin on
//! Ubuntu, with the common JDBC drivers). It declares no user, so the pods
//! run as user 10001 (setting `runAsUser`); its files are world-readable.

// no_std in the component: no WASI imports, and smaller (see the SDK).
#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]
extern crate alloc;

mod options;
mod read;
mod script;

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use portfolio_api::MigrationTool;
use strategy_kit::interpret::{Context, outcome};
use strategy_kit::job::{Env, EnvValue, JobRequest, build};
use strategy_kit::settings::{Defaults, JobSettings, Settings};
use strategy_kit::spec::{Migration, Source};
use strategy_kit::{Error, Input, Outcome, PLAN_KEY, Phase, Plan, Step, Strategy, maintenance};

/// Name under which this plugin registers.
pub const NAME: &str = "flyway";

/// The image used unless `spec.image` or the `image` setting names another:
/// the open-source Flyway release of 2026-07-20.
pub const DEFAULT_IMAGE: &str = "flyway/flyway:13.0.0";

/// Key of the apply step.
pub const MIGRATE_KEY: &str = "migrate";

/// Key of the maintenance step.
pub const REPAIR_KEY: &str = "repair";

/// Built-in defaults of the settings.
pub const DEFAULTS: Defaults = Defaults {
    tool: MigrationTool::Flyway,
    image: DEFAULT_IMAGE,
    run_as_user: 10001,
};

/// The strategy, as the component exports it and the tests take it.
pub struct Flyway;

impl Strategy for Flyway {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Runs Flyway migrations as Kubernetes Jobs: info and validate, then migrate; repair when allowed.";
    const KINDS: &'static [(&'static str, &'static str)] = &[("batch/v1", "Job")];

    fn settings_schema() -> String {
        strategy_kit::settings::schema(&DEFAULTS)
    }

    fn plan(input: &Input<'_>) -> Result<Plan, Error> {
        let prepared = prepare(input)?;
        let spec = &prepared.migration.spec;
        let program = script::program();
        let phase = match spec.phase {
            portfolio_api::MigrationPhase::Expand => Phase::Expand,
            portfolio_api::MigrationPhase::Contract => Phase::Contract,
        };
        let target = spec
            .flyway
            .as_ref()
            .and_then(|options| options.target.as_deref())
            .map_or_else(
                || "the latest version".to_owned(),
                |target| format!("version {target}"),
            );

        let mut steps = Vec::with_capacity(3);
        steps.push(step(
            input,
            &prepared,
            &program,
            PLAN_KEY,
            Phase::PlanOnly,
            // Pending migrations are what the plan is about, not a validation error.
            &["-ignoreMigrationPatterns=*:pending,*:future", "info", "validate"],
            "Flyway info and validate: lists the pending migrations and checks the applied ones; changes nothing".to_owned(),
        )?);
        if !spec.dry_run {
            steps.push(step(
                input,
                &prepared,
                &program,
                MIGRATE_KEY,
                phase,
                &["migrate"],
                format!("Flyway migrate ({} phase) to {target}", phase.as_str()),
            )?);
        }
        if prepared.repair_planned {
            steps.push(step(
                input,
                &prepared,
                &program,
                REPAIR_KEY,
                Phase::Maintenance,
                &["repair"],
                "Flyway repair: removes a failed migration from the schema history; runs only after interpret reported it".to_owned(),
            )?);
        }

        let source = match prepared.migration.source() {
            Source::ConfigMap(name) => format!("ConfigMap {name}"),
            Source::Image(image) => format!("image {image}"),
        };
        let mut summary = if spec.dry_run {
            format!("Flyway dry run: info and validate against {source}; nothing is migrated")
        } else {
            format!(
                "Flyway: validate, then migrate ({}) to {target} from {source}",
                phase.as_str()
            )
        };
        summary.push_str(&format!("; image {}", prepared.job_settings.image));
        if prepared.repair_planned {
            summary.push_str("; repair allowed");
        }
        Ok(Plan { steps, summary })
    }

    fn interpret(
        input: &Input<'_>,
        key: &str,
        job: &str,
        message: Option<&str>,
    ) -> Result<Outcome, Error> {
        if ![PLAN_KEY, MIGRATE_KEY, REPAIR_KEY].contains(&key) {
            return Err(Error::Internal(format!("flyway plans no step {key:?}")));
        }
        let prepared = prepare(input)?;
        let reader = read::FlywayReader {
            key,
            repair_planned: prepared.repair_planned,
            context: Context {
                tool: NAME,
                image: &prepared.job_settings.image,
                timeout: &prepared.migration.spec.timeout,
            },
        };
        outcome(job, message, &reader.context, &reader)
    }
}

strategy_kit::export_strategy!(crate::Flyway);

/// A migration checked and ready for Jobs.
struct Prepared {
    migration: Migration,
    job_settings: JobSettings,
    args: Vec<String>,
    repair_planned: bool,
}

fn prepare(input: &Input<'_>) -> Result<Prepared, Error> {
    let migration = Migration::parse(input, MigrationTool::Flyway)?;
    let settings = Settings::parse(input.settings, MigrationTool::Flyway)?;
    let job_settings = settings.resolve(
        &DEFAULTS,
        migration.spec.image.as_deref(),
        &migration.object_settings,
    );
    let args = options::common_args(&migration)?;
    let repair_planned = maintenance::allowed(
        REPAIR_KEY,
        settings.allow_repair.unwrap_or(false),
        migration.spec.dry_run,
        input.annotations,
    );
    Ok(Prepared {
        migration,
        job_settings,
        args,
        repair_planned,
    })
}

fn step(
    input: &Input<'_>,
    prepared: &Prepared,
    program: &str,
    key: &'static str,
    phase: Phase,
    command: &[&str],
    description: String,
) -> Result<Step, Error> {
    let spec = &prepared.migration.spec;
    let credentials = &spec.database.credentials_secret_ref;
    let env = [
        Env {
            name: "FLYWAY_USER",
            value: EnvValue::Secret {
                name: &credentials.name,
                key: &credentials.username_key,
            },
        },
        Env {
            name: "FLYWAY_PASSWORD",
            value: EnvValue::Secret {
                name: &credentials.name,
                key: &credentials.password_key,
            },
        },
        Env {
            name: "REDGATE_DISABLE_TELEMETRY",
            value: EnvValue::Value("true"),
        },
    ];
    let mut args = prepared.args.clone();
    args.extend(command.iter().map(|arg| (*arg).to_owned()));
    let job = build(&JobRequest {
        tool: NAME,
        migration: input.name,
        uid: input.uid,
        key,
        phase,
        settings: &prepared.job_settings,
        deadline_seconds: prepared.migration.timeout_seconds,
        source: prepared.migration.source(),
        source_path: &spec.source.path,
        script: program,
        args: &args,
        env: &env,
    })?;
    Ok(Step {
        key,
        phase,
        job: job.json,
        description,
    })
}
