//! Built-in migration strategy: runs Liquibase as Kubernetes Jobs.
//!
//! # Plan
//!
//! | key | phase | runs |
//! |---|---|---|
//! | `plan` | `plan-only` | `liquibase update-sql` (the SQL `update` would run, kept in the log and quoted in the summary) then `liquibase status --verbose`; changes nothing |
//! | `update` | `spec.phase` | `liquibase update --show-summary=summary` (absent with `spec.dryRun`) |
//! | `release-locks` | `maintenance` | `liquibase release-locks` (only when allowed, never with `spec.dryRun`) |
//!
//! The `release-locks` step is in the plan when the plugin's setting
//! `allowReleaseLocks` is true, or when the DatabaseMigration carries the
//! annotation `portfolio.dev/allow-maintenance: release-locks` (see
//! [`strategy_kit::maintenance`]). `interpret` answers `lock-held` when
//! Liquibase could not acquire `DATABASECHANGELOGLOCK` (a crashed run leaves
//! it held for good) and the plan carries `release-locks`; the operator then
//! runs it and the blocked step again. Without it, the same condition fails
//! the step with the retryable `LockHeld`, in case the holder is a live run.
//!
//! Liquibase waits for the lock `lockWaitMinutes` (setting, default 5), but
//! at most half of `spec.timeout`, so a held lock is reported as such rather
//! than as a timeout.
//!
//! # Machine-readable output
//!
//! Liquibase's JSON output (structured logging, `--log-format=JSON`) needs
//! a Liquibase Pro license, so the Job's wrapper builds the summary from the
//! console output instead (see `script.rs`).
//!
//! # Image
//!
//! [`DEFAULT_IMAGE`] is `liquibase/liquibase:4.33.0`, the last Apache-2.0
//! release, whose image bundles the common JDBC drivers (PostgreSQL,
//! MariaDB, SQL Server, DB2, Snowflake, SQLite, …). Liquibase 5 images
//! (Functional Source License) ship without drivers: a platform that wants
//! Liquibase 5 builds an image with `lpm add <driver> --global` and names it
//! in the `image` setting. The image's user is `liquibase` (1001), given
//! numerically (`runAsUser`) so that `runAsNonRoot` can be verified.

// no_std in the component: no WASI imports, and smaller (see the SDK).
#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]
extern crate alloc;

mod options;
mod read;
mod script;

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use portfolio_api::MigrationTool;
use strategy_kit::interpret::{Context, outcome};
use strategy_kit::job::{Env, EnvValue, JobRequest, build};
use strategy_kit::settings::{Defaults, JobSettings, Settings};
use strategy_kit::spec::{Migration, Source};
use strategy_kit::{Error, Input, Outcome, PLAN_KEY, Phase, Plan, Step, Strategy, maintenance};

/// Name under which this plugin registers.
pub const NAME: &str = "liquibase";

/// The image used unless `spec.image` or the `image` setting names another.
pub const DEFAULT_IMAGE: &str = "liquibase/liquibase:4.33.0";

/// Key of the apply step.
pub const UPDATE_KEY: &str = "update";

/// Key of the maintenance step.
pub const RELEASE_LOCKS_KEY: &str = "release-locks";

/// Minutes Liquibase waits for the changelog lock by default (Liquibase's own default).
const DEFAULT_LOCK_WAIT_MINUTES: u32 = 5;

/// Built-in defaults of the settings.
pub const DEFAULTS: Defaults = Defaults {
    tool: MigrationTool::Liquibase,
    image: DEFAULT_IMAGE,
    run_as_user: 1001,
};

/// The strategy, as the component exports it and the tests take it.
pub struct Liquibase;

impl Strategy for Liquibase {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Runs Liquibase changelogs as Kubernetes Jobs: update-sql and status, then update; release-locks when allowed.";
    const KINDS: &'static [(&'static str, &'static str)] = &[("batch/v1", "Job")];

    fn settings_schema() -> String {
        strategy_kit::settings::schema(&DEFAULTS)
    }

    fn plan(input: &Input<'_>) -> Result<Plan, Error> {
        let prepared = prepare(input)?;
        let spec = &prepared.migration.spec;
        let options = options::options(&prepared.migration)?;
        let phase = match spec.phase {
            portfolio_api::MigrationPhase::Expand => Phase::Expand,
            portfolio_api::MigrationPhase::Contract => Phase::Contract,
        };
        let changelog = options.changelog_file;
        let mut steps = Vec::with_capacity(3);
        steps.push(step(
            input,
            &prepared,
            &options,
            PLAN_KEY,
            Phase::PlanOnly,
            "Liquibase update-sql and status: renders the pending SQL and lists the changesets not yet applied; changes nothing".to_owned(),
        )?);
        if !spec.dry_run {
            steps.push(step(
                input,
                &prepared,
                &options,
                UPDATE_KEY,
                phase,
                format!("Liquibase update ({} phase) of {changelog}", phase.as_str()),
            )?);
        }
        if prepared.release_planned {
            steps.push(step(
                input,
                &prepared,
                &options,
                RELEASE_LOCKS_KEY,
                Phase::Maintenance,
                "Liquibase release-locks: clears DATABASECHANGELOGLOCK after a crashed run; runs only after interpret reported the lock held".to_owned(),
            )?);
        }
        let source = match prepared.migration.source() {
            Source::ConfigMap(name) => format!("ConfigMap {name}"),
            Source::Image(image) => format!("image {image}"),
        };
        let mut summary = if spec.dry_run {
            format!(
                "Liquibase dry run: update-sql and status of {changelog} from {source}; nothing is applied"
            )
        } else {
            format!(
                "Liquibase: update-sql and status, then update ({}) of {changelog} from {source}",
                phase.as_str()
            )
        };
        if let Some(contexts) = &options.context_filter {
            summary.push_str(&format!("; contexts {contexts}"));
        }
        if let Some(labels) = options.label_filter {
            summary.push_str(&format!("; labels {labels}"));
        }
        summary.push_str(&format!("; image {}", prepared.job_settings.image));
        if prepared.release_planned {
            summary.push_str("; release-locks allowed");
        }
        Ok(Plan {
            steps,
            summary: strategy_kit::classify::clip(&summary, 1024),
        })
    }

    fn interpret(
        input: &Input<'_>,
        key: &str,
        job: &str,
        message: Option<&str>,
    ) -> Result<Outcome, Error> {
        if ![PLAN_KEY, UPDATE_KEY, RELEASE_LOCKS_KEY].contains(&key) {
            return Err(Error::Internal(format!("liquibase plans no step {key:?}")));
        }
        let prepared = prepare(input)?;
        let reader = read::LiquibaseReader {
            key,
            release_planned: prepared.release_planned,
            context: Context {
                tool: NAME,
                image: &prepared.job_settings.image,
                timeout: &prepared.migration.spec.timeout,
            },
        };
        outcome(job, message, &reader.context, &reader)
    }
}

strategy_kit::export_strategy!(crate::Liquibase);

struct Prepared {
    migration: Migration,
    job_settings: JobSettings,
    lock_wait_minutes: String,
    release_planned: bool,
}

fn prepare(input: &Input<'_>) -> Result<Prepared, Error> {
    let migration = Migration::parse(input, MigrationTool::Liquibase)?;
    let settings = Settings::parse(input.settings, MigrationTool::Liquibase)?;
    options::options(&migration)?;
    let job_settings = settings.resolve(
        &DEFAULTS,
        migration.spec.image.as_deref(),
        &migration.object_settings,
    );
    // Give up on a held lock in time to say so before the deadline.
    let half_timeout = u32::try_from(migration.timeout_seconds / 120).unwrap_or(u32::MAX);
    let lock_wait = settings
        .lock_wait_minutes
        .unwrap_or(DEFAULT_LOCK_WAIT_MINUTES)
        .min(half_timeout);
    let release_planned = maintenance::allowed(
        RELEASE_LOCKS_KEY,
        settings.allow_release_locks.unwrap_or(false),
        migration.spec.dry_run,
        input.annotations,
    );
    Ok(Prepared {
        migration,
        job_settings,
        lock_wait_minutes: lock_wait.to_string(),
        release_planned,
    })
}

fn step(
    input: &Input<'_>,
    prepared: &Prepared,
    options: &options::Options<'_>,
    key: &'static str,
    phase: Phase,
    description: String,
) -> Result<Step, Error> {
    let spec = &prepared.migration.spec;
    let credentials = &spec.database.credentials_secret_ref;
    let mut env = vec![
        Env {
            name: "LIQUIBASE_COMMAND_URL",
            value: EnvValue::Value(&spec.database.url),
        },
        Env {
            name: "LIQUIBASE_COMMAND_USERNAME",
            value: EnvValue::Secret {
                name: &credentials.name,
                key: &credentials.username_key,
            },
        },
        Env {
            name: "LIQUIBASE_COMMAND_PASSWORD",
            value: EnvValue::Secret {
                name: &credentials.name,
                key: &credentials.password_key,
            },
        },
        Env {
            name: "LIQUIBASE_CHANGELOG_LOCK_WAIT_TIME_IN_MINUTES",
            value: EnvValue::Value(&prepared.lock_wait_minutes),
        },
        // Errors with their causes (and stack traces, which the summary skips) on stderr.
        Env {
            name: "LIQUIBASE_LOG_LEVEL",
            value: EnvValue::Value("SEVERE"),
        },
        Env {
            name: "LIQUIBASE_SHOW_BANNER",
            value: EnvValue::Value("false"),
        },
        Env {
            name: "LIQUIBASE_ANALYTICS_ENABLED",
            value: EnvValue::Value("false"),
        },
    ];
    let mut args = Vec::new();
    if key != RELEASE_LOCKS_KEY {
        env.push(Env {
            name: "LIQUIBASE_SEARCH_PATH",
            value: EnvValue::Value(&spec.source.path),
        });
        env.push(Env {
            name: "LIQUIBASE_COMMAND_CHANGELOG_FILE",
            value: EnvValue::Value(options.changelog_file),
        });
        if let Some(contexts) = &options.context_filter {
            env.push(Env {
                name: "LIQUIBASE_COMMAND_CONTEXT_FILTER",
                value: EnvValue::Value(contexts),
            });
        }
        if let Some(labels) = options.label_filter {
            env.push(Env {
                name: "LIQUIBASE_COMMAND_LABEL_FILTER",
                value: EnvValue::Value(labels),
            });
        }
        args.clone_from(&options.parameter_args);
    }
    let program = script::program(key);
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
        script: &program,
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
