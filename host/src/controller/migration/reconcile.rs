//! One reconcile of a DatabaseMigration: plan → choose the step → run or
//! observe its Job → interpret → status, lock and Events.
//!
//! The state of a run is read from the cluster, not only from status: the
//! Jobs of the current plan (found by the labels and annotation the host
//! puts on them) say which step and attempt is current and how it went, so a
//! lost status or a restart resumes where the run is. Status is the record
//! for people, plus the few facts the Jobs cannot hold (when the next attempt
//! may start).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use portfolio_api::{
    Approval, DatabaseMigration, DatabaseMigrationStatus, MIGRATION_KIND, MigrationPhase,
    MigrationRun, MigrationStatusPhase as Phase, PlanStepSummary,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::jobs::{
    self, ATTEMPT_LABEL, JobState, PLAN_HASH_ANNOTATION, REPAIRS_ANNOTATION, STEP_LABEL,
};
use super::lock::{Database, Holder, Taken};
use super::report::{self, Standing};
use super::{Error, MigrationContext, SUCCEEDED_ANNOTATION, is_owned_by};
use crate::controller::act::Children;
use crate::controller::cleanup::FINALIZER;
use crate::controller::decide::Existing;
use crate::controller::status::{self, Target};
use crate::events::{self, Severity};
use crate::failure::{Failure, ReconcileError};
use crate::pipeline::{PipelineError, PlannedStep, Subject};
use crate::plugin::{Plugin, StepOutcome, StepPhase, World};

/// The field of the spec that names the strategy.
pub const STRATEGY_FIELD: &str = "spec.strategy.plugin";

/// Look again this often while waiting for something no watch reports (a
/// lock held by another process, a pod that is still stopping).
const POLL: Duration = Duration::from_secs(5);
/// Look again this often while waiting for a lock or a rollout: a release
/// or an app change wakes the migration sooner.
const WAIT: Duration = Duration::from_secs(30);
/// Look again this soon while the Job watch has not shown a Job started
/// (its event normally queues the migration first).
const UNSEEN_RECHECK: Duration = Duration::from_secs(1);
/// Resync of a finished migration.
const RESYNC: Duration = Duration::from_secs(10 * 60);
/// The Job controller enforces `activeDeadlineSeconds`; the host stops a Job
/// itself only this long after the timeout, as a backstop.
const DEADLINE_GRACE: Duration = Duration::from_secs(30);

/// The strategy a migration names (the built-in one of its tool when it names none).
pub fn reference_of(migration: &DatabaseMigration) -> &str {
    migration
        .spec
        .strategy
        .as_ref()
        .map_or(migration.spec.tool.as_str(), |strategy| {
            strategy.plugin.as_str()
        })
}

/// The hash of a plan: its steps' keys, phases and Jobs as the host applies
/// them (so a new strategy version or setting is a new plan).
pub fn plan_hash(steps: &[PlannedStep]) -> String {
    let canonical: Vec<_> = steps
        .iter()
        .map(|step| json!([step.key, step.phase.as_str(), step.job.object()]))
        .collect();
    let digest = Sha256::digest(serde_json::Value::Array(canonical).to_string().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// What a reconcile concluded besides the status.
struct Decision {
    action: Action,
    /// The run is over (or waits for a person or a rollout): let go of the lock.
    release: bool,
    /// A failure to return after the status is written (retried with backoff).
    error: Option<ReconcileError>,
}

impl Decision {
    fn wait(action: Action) -> Self {
        Decision {
            action,
            release: false,
            error: None,
        }
    }

    fn done(action: Action) -> Self {
        Decision {
            action,
            release: true,
            error: None,
        }
    }
}

/// One migration's reconcile, with what it works on.
struct Run<'a> {
    ctx: &'a MigrationContext,
    migration: &'a DatabaseMigration,
    namespace: String,
    uid: String,
    me: Holder,
    database: Database,
    /// The status being built.
    next: DatabaseMigrationStatus,
    standing: Standing,
    now: Timestamp,
    /// The stored status (as last written, when the cache lags behind).
    before: DatabaseMigrationStatus,
}

/// Reconcile `migration`.
pub async fn reconcile(
    migration: Arc<DatabaseMigration>,
    ctx: &MigrationContext,
) -> Result<Action, Error> {
    // Decisions rest on the observed Jobs: before the Job watch has listed,
    // a running Job would look absent.
    ctx.jobs_listed(Duration::from_secs(30)).await;
    let uid = migration.uid().unwrap_or_default();
    // Nor before it shows the Jobs this migration started (see `Unseen`):
    // their events queue it again.
    if let Some(job) = ctx
        .unseen
        .waiting_for(&uid, std::time::Instant::now(), |job| {
            ctx.jobs.get(job).is_some()
        })
    {
        tracing::debug!(job = %job.name, "waiting for the Job watch to show a Job this migration started");
        return Ok(Action::requeue(UNSEEN_RECHECK));
    }
    let before = ctx
        .written
        .current(&uid, &migration.status.clone().unwrap_or_default());
    let mut run = Run {
        ctx,
        migration: &migration,
        namespace: migration.namespace().unwrap_or_default(),
        uid: migration.uid().unwrap_or_default(),
        me: Holder::of(&migration),
        database: Database::of(&migration.spec.database.url),
        next: before.clone(),
        standing: Standing::new(Phase::Pending, "Pending", ""),
        now: Timestamp::now(),
        before: before.clone(),
    };
    if migration.meta().deletion_timestamp.is_some() {
        return run.finalize().await;
    }
    run.ensure_finalizer().await?;
    run.next.observed_generation = migration.metadata.generation;
    let decision = run.drive().await;
    let decision = match decision {
        Ok(decision) => decision,
        Err(error) => {
            // A failure the run could not get past: said in status, retried.
            run.standing = Standing::new(
                run.next.phase.unwrap_or(Phase::Pending),
                error.failure.reason(),
                error.message.clone(),
            );
            Decision {
                action: Action::requeue(POLL),
                release: !run.has_active_job(),
                error: Some(error),
            }
        }
    };
    // Only a run in progress can hold the lock: a finished or waiting
    // migration costs the API server nothing.
    let may_hold = matches!(
        before.phase,
        None | Some(Phase::Pending | Phase::Planning | Phase::Running)
    );
    if decision.release
        && may_hold
        && run
            .ctx
            .locks
            .release(&run.database, &run.me)
            .await
            .map_err(lock_error)?
    {
        tracing::info!(database = %run.database.url, "released the database lock");
        run.ctx.released(&run.database);
    }
    run.report(&before).await?;
    match decision.error {
        Some(error) if !error.failure.waits_for_change() => Err(error),
        _ => Ok(decision.action),
    }
}

fn lock_error(error: super::lock::LockError) -> ReconcileError {
    ReconcileError::new(Failure::ApiError, error.to_string())
}

fn pipeline_failure(ctx: &MigrationContext, error: &PipelineError) -> ReconcileError {
    if let PipelineError::Plugin(plugin_error) = error {
        ctx.metrics.plugin_failure(plugin_error.reason());
    }
    ReconcileError::new(error.failure(), error.to_string())
}

/// How a step's latest attempt stands.
enum Attempt {
    /// No Job for the step yet.
    None,
    /// Its Job runs (or has not been judged finished by the Job controller).
    Active(Arc<Job>),
    /// Its Job is over.
    Finished(Arc<Job>),
}

impl Run<'_> {
    fn set(&mut self, phase: Phase, reason: &str, message: impl Into<String>) {
        self.standing = Standing::new(phase, reason, message);
        self.next.phase = Some(phase);
    }

    fn subject(&self) -> Result<Subject, ReconcileError> {
        Subject::new(
            MIGRATION_KIND,
            &self.migration.metadata,
            &self.migration.spec,
        )
        .map_err(|e| pipeline_failure(self.ctx, &e))
    }

    /// The Jobs of this migration the watch holds.
    fn own_jobs(&self) -> Vec<Arc<Job>> {
        self.ctx
            .jobs
            .state()
            .into_iter()
            .filter(|job| {
                job.namespace().as_deref() == Some(self.namespace.as_str())
                    && is_owned_by(job, self.migration)
            })
            .collect()
    }

    fn has_active_job(&self) -> bool {
        self.own_jobs()
            .iter()
            .any(|job| jobs::state(job) == JobState::Active)
    }

    /// The Jobs of step `key` of the plan `hash`, latest attempt last.
    fn step_jobs(&self, key: &str, hash: &str) -> Vec<Arc<Job>> {
        let mut found: Vec<_> = self
            .own_jobs()
            .into_iter()
            .filter(|job| {
                job.labels().get(STEP_LABEL).map(String::as_str) == Some(key)
                    && job
                        .annotations()
                        .get(PLAN_HASH_ANNOTATION)
                        .map(String::as_str)
                        == Some(hash)
            })
            .collect();
        found.sort_by_key(|job| jobs::attempt_of(job));
        found
    }

    fn latest(&self, key: &str, hash: &str) -> Attempt {
        match self.step_jobs(key, hash).pop() {
            None => Attempt::None,
            Some(job) if jobs::state(&job) == JobState::Active => Attempt::Active(job),
            Some(job) => Attempt::Finished(job),
        }
    }

    async fn drive(&mut self) -> Result<Decision, ReconcileError> {
        let ctx = self.ctx;
        let plugin = match ctx.pipeline().resolve(
            STRATEGY_FIELD,
            reference_of(self.migration),
            World::MigrationStrategy,
        ) {
            Ok(plugin) => plugin,
            Err(error) => return Ok(self.plugin_trouble(pipeline_failure(ctx, &error))),
        };
        let subject = self.subject()?;
        let observed = self
            .own_jobs()
            .iter()
            .filter_map(|job| serde_json::to_value(&**job).ok())
            .collect();
        let (steps, summary) = match ctx.pipeline().plan(&plugin, &subject, observed).await {
            Ok(plan) => plan,
            Err(error) => return Ok(self.plugin_trouble(pipeline_failure(ctx, &error))),
        };
        let hash = plan_hash(&steps);
        self.start_plan(&steps, &summary, &hash);

        // Never twice: the record on the migration itself.
        if self.migration.annotations().get(SUCCEEDED_ANNOTATION) == Some(&hash) {
            self.set_succeeded();
            return Ok(Decision::done(Action::requeue(RESYNC)));
        }
        if self.next.phase == Some(Phase::Failed) {
            // Failed for this plan and generation: a change of the spec runs it again.
            let message = self.next.last_error.clone().unwrap_or_default();
            let reason = self.failed_reason();
            self.set(Phase::Failed, &reason, message);
            return Ok(Decision::done(Action::await_change()));
        }

        let runnable: Vec<&PlannedStep> = steps
            .iter()
            .filter(|s| s.phase != StepPhase::Maintenance)
            .collect();
        let maintenance = steps.iter().find(|s| s.phase == StepPhase::Maintenance);
        // Each pass finishes a step or decides to wait; a plan has few steps.
        for _ in 0..=runnable.len() {
            let Some(step) = runnable
                .iter()
                .find(|s| !self.next.completed_steps.contains(&s.key))
                .copied()
            else {
                return self.succeed(&hash).await;
            };
            self.next.current_step = Some(step.key.clone());
            match self.latest(&step.key, &hash) {
                Attempt::None => {
                    if let Some(decision) = self.gate(step, &hash) {
                        return Ok(decision);
                    }
                    if let Some(decision) = self.backing_off() {
                        return Ok(decision);
                    }
                    let attempt = self.attempts_so_far(&step.key, &hash) + 1;
                    return self.start(step, attempt, &hash, None).await;
                }
                Attempt::Active(job) => return self.watch(step, &job).await,
                Attempt::Finished(job) => {
                    let outcome = self.interpret(&plugin, &subject, step, &job).await?;
                    match self
                        .judge(&plugin, &subject, step, maintenance, &job, outcome, &hash)
                        .await?
                    {
                        Some(decision) => return Ok(decision),
                        // The step succeeded: on to the next one.
                        None => continue,
                    }
                }
            }
        }
        self.succeed(&hash).await
    }

    /// Start a new plan's record, or keep the current one's.
    fn start_plan(&mut self, steps: &[PlannedStep], summary: &str, hash: &str) {
        let generation = self.migration.metadata.generation;
        let failed_before =
            self.next.phase == Some(Phase::Failed) && self.before.observed_generation != generation;
        if self.next.plan_hash.as_deref() != Some(hash) || failed_before {
            self.next.plan_hash = Some(hash.to_owned());
            self.next.completed_steps.clear();
            self.next.current_step = None;
            self.next.current_job = None;
            self.next.attempts = 0;
            self.next.next_attempt_at = None;
            self.next.last_error = None;
            self.next.phase = Some(Phase::Pending);
            self.next.plan_summary =
                Some(report::clip(summary, report::MAX_TEXT)).filter(|summary| !summary.is_empty());
        }
        self.next.plan = steps
            .iter()
            .take(report::MAX_PLAN_STEPS)
            .map(|step| PlanStepSummary {
                key: step.key.clone(),
                phase: step.phase.as_str().to_owned(),
                description: step.description.clone(),
            })
            .collect();
    }

    /// The plugin could not be resolved or called: said in status; the lock
    /// is let go unless a Job runs (it still needs the lock to finish).
    fn plugin_trouble(&mut self, error: ReconcileError) -> Decision {
        let phase = match error.failure {
            Failure::InvalidSpec | Failure::PolicyViolation => Phase::Failed,
            _ => self
                .next
                .phase
                .filter(|p| *p != Phase::Succeeded)
                .unwrap_or(Phase::Pending),
        };
        self.next.last_error = Some(report::clip(&error.message, report::MAX_TEXT));
        self.set(phase, error.failure.reason(), error.message.clone());
        let action = if error.failure.waits_for_change() {
            Action::await_change()
        } else {
            Action::requeue(POLL)
        };
        Decision {
            action,
            release: !self.has_active_job(),
            error: (!error.failure.waits_for_change()).then_some(error),
        }
    }

    fn failed_reason(&self) -> String {
        self.before
            .conditions
            .iter()
            .find(|c| c.type_ == "Degraded")
            .map(|c| c.reason.clone())
            .filter(|reason| !reason.is_empty() && reason != "AsExpected")
            .unwrap_or_else(|| "Failed".to_owned())
    }

    fn set_succeeded(&mut self) {
        self.next.current_job = None;
        self.next.current_step = None;
        self.next.next_attempt_at = None;
        self.next.last_error = None;
        let (reason, message) = if self.migration.spec.dry_run {
            (
                "DryRun",
                "dry run: the plan was made and validated; nothing was changed".to_owned(),
            )
        } else {
            (
                "Succeeded",
                match &self.next.applied_version {
                    Some(version) => format!("every step succeeded; schema version {version}"),
                    None => "every step succeeded".to_owned(),
                },
            )
        };
        self.set(Phase::Succeeded, reason, message);
    }

    /// Every step succeeded: record it on the migration first (what makes
    /// it never run again), then in status.
    async fn succeed(&mut self, hash: &str) -> Result<Decision, ReconcileError> {
        let api: Api<DatabaseMigration> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let patch = json!({"metadata": {"annotations": {SUCCEEDED_ANNOTATION: hash}}});
        api.patch_metadata(
            &self.migration.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|error| {
            ReconcileError::api(
                Failure::ApiError,
                &format!("recording the succeeded plan on {}", self.path()),
                &error,
            )
        })?;
        self.set_succeeded();
        Ok(Decision::done(Action::requeue(RESYNC)))
    }

    fn path(&self) -> String {
        format!("{}/{}", self.namespace, self.migration.name_any())
    }

    /// Whether something outside this migration must happen before a step
    /// starts: a rollout (contract), or a person's approval.
    fn gate(&mut self, step: &PlannedStep, hash: &str) -> Option<Decision> {
        let spec = &self.migration.spec;
        if spec.phase == MigrationPhase::Contract
            && self.next.completed_steps.is_empty()
            && let Err(waiting) = self.contract_gate()
        {
            self.set(Phase::Pending, "WaitingForRollout", waiting);
            return Some(Decision::done(Action::requeue(WAIT)));
        }
        let applies = matches!(step.phase, StepPhase::Expand | StepPhase::Contract);
        if applies
            && spec.approval == Approval::Manual
            && spec.approved_plan_hash.as_deref() != Some(hash)
        {
            let message = match &spec.approved_plan_hash {
                Some(approved) => format!(
                    "the plan changed since {approved} was approved: review status.planSummary and set spec.approvedPlanHash to {hash} to run it"
                ),
                None => format!(
                    "review status.planSummary and set spec.approvedPlanHash to {hash} to run it"
                ),
            };
            self.next.current_job = None;
            self.set(Phase::AwaitingApproval, "AwaitingApproval", message);
            return Some(Decision::done(Action::await_change()));
        }
        None
    }

    /// A contract migration starts once its app's new version is out.
    fn contract_gate(&self) -> Result<(), String> {
        let app_name = self
            .migration
            .spec
            .app_ref
            .as_ref()
            .map(|r| r.name.clone())
            .or_else(|| {
                // An app that lists this migration.
                self.ctx.apps.state().iter().find_map(|app| {
                    let app = app.parsed.as_ref().ok()?;
                    (app.namespace().as_deref() == Some(self.namespace.as_str())
                        && app.spec.migrations.contains(&self.migration.name_any()))
                    .then(|| app.name_any())
                })
            });
        let Some(app_name) = app_name else {
            return Ok(());
        };
        let app = self
            .ctx
            .apps
            .get(&ObjectRef::new(&app_name).within(&self.namespace))
            .and_then(|watched| watched.parsed.as_ref().ok().cloned());
        let migrations = self.ctx.migrations.state();
        crate::controller::gates::contract_may_start(app.as_deref(), &migrations).map_err(
            |waiting| {
                if app.is_none() {
                    format!("waiting for PortfolioApp {app_name}, which does not exist")
                } else {
                    waiting
                }
            },
        )
    }

    /// Waiting between attempts after a retryable failure.
    fn backing_off(&mut self) -> Option<Decision> {
        let at: Timestamp = self.next.next_attempt_at.as_deref()?.parse().ok()?;
        if at <= self.now {
            return None;
        }
        let wait = Duration::try_from(at.duration_since(self.now)).unwrap_or(POLL);
        let message = format!(
            "{}; next attempt at {at}",
            self.next.last_error.clone().unwrap_or_default()
        );
        self.set(Phase::Running, "Retrying", message);
        Some(Decision::wait(Action::requeue(
            wait + Duration::from_millis(50),
        )))
    }

    /// Attempts of `key` under plan `hash` the cluster has seen (its Jobs'
    /// attempt labels), or the status says (its Jobs may be gone).
    fn attempts_so_far(&self, key: &str, hash: &str) -> u32 {
        let from_jobs = self
            .step_jobs(key, hash)
            .last()
            .map_or(0, |job| jobs::attempt_of(job));
        let from_status = if self.next.current_step.as_deref() == Some(key) {
            u32::try_from(self.next.attempts).unwrap_or(0)
        } else {
            0
        };
        from_jobs.max(from_status)
    }

    /// Take the lock, then create attempt `attempt` of `step` (for a
    /// maintenance step, `repairs` is the attempt it repairs for).
    async fn start(
        &mut self,
        step: &PlannedStep,
        attempt: u32,
        hash: &str,
        repairs: Option<u32>,
    ) -> Result<Decision, ReconcileError> {
        // A Job of an earlier plan (the spec changed while it ran) is let
        // finish, never stopped half-way, and never run beside another.
        let base = step.job.key().name.clone();
        let name = jobs::attempt_name(&base, attempt);
        if let Some(other) = self
            .own_jobs()
            .into_iter()
            .find(|job| jobs::state(job) == JobState::Active && job.name_any() != name)
        {
            self.set(
                Phase::Running,
                "WaitingForPreviousJob",
                format!(
                    "Job {} of an earlier plan is still running; step {} starts when it has finished",
                    other.name_any(),
                    step.key
                ),
            );
            return Ok(Decision::wait(Action::requeue(WAIT)));
        }
        match self
            .ctx
            .locks
            .take(&self.database, &self.me)
            .await
            .map_err(lock_error)?
        {
            Taken::Ours => {}
            Taken::HeldBy(holder) => {
                self.ctx
                    .wait_for(&self.database, ObjectRef::from_obj(self.migration));
                self.next.current_job = None;
                self.set(
                    Phase::Pending,
                    "WaitingForLock",
                    format!(
                        "{} is migrating the same database ({}); this one starts when it is done",
                        holder.describe(),
                        self.database.url
                    ),
                );
                return Ok(Decision::wait(Action::requeue(WAIT)));
            }
        }
        let mut job = step.job.renamed(&name);
        job.set_label(STEP_LABEL, &step.key);
        job.set_label(ATTEMPT_LABEL, &attempt.to_string());
        job.set_annotation(PLAN_HASH_ANNOTATION, hash);
        if let Some(repairs) = repairs {
            job.set_annotation(REPAIRS_ANNOTATION, &repairs.to_string());
        }
        // spec.timeout is enforced by the Job controller: the deadline is the
        // timeout, or the strategy's own if it is shorter.
        let timeout = i64::try_from(self.timeout().as_secs()).unwrap_or(i64::MAX);
        let deadline = job
            .object()
            .pointer("/spec/activeDeadlineSeconds")
            .and_then(serde_json::Value::as_i64)
            .filter(|own| *own > 0)
            .map_or(timeout, |own| own.min(timeout));
        job.set_spec_field("activeDeadlineSeconds", json!(deadline));
        let children = Children {
            client: &self.ctx.client,
            namespace: &self.namespace,
            kinds: self.ctx.policy.kinds(),
        };
        // The watch does not hold it as ours: if something is there, it is
        // someone else's, and it is not taken over.
        let existing = children.existing([job.key()]).await?;
        if let Some(Existing::Present(other)) = existing.get(job.key()) {
            let ours = other
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == self.uid);
            if !ours {
                return Err(ReconcileError::new(
                    Failure::Conflict,
                    format!(
                        "{} already exists and is not this migration's: rename or delete it, the migration's Job needs its name",
                        job.key()
                    ),
                ));
            }
        }
        children.apply(&job).await?;
        self.ctx.unseen.started(
            &self.uid,
            ObjectRef::new(&name).within(&self.namespace),
            std::time::Instant::now(),
        );
        self.ctx.metrics.applied();
        tracing::info!(job = %name, step = %step.key, attempt, "started a migration Job");
        if repairs.is_none() {
            self.next.attempts = i32::try_from(attempt).unwrap_or(i32::MAX);
        }
        self.next.current_job = Some(name.clone());
        self.next.next_attempt_at = None;
        self.running(step, &name, attempt);
        Ok(Decision::wait(self.until_deadline(None)))
    }

    fn running(&mut self, step: &PlannedStep, job: &str, attempt: u32) {
        let phase = if step.phase == StepPhase::PlanOnly {
            Phase::Planning
        } else {
            Phase::Running
        };
        let reason = if phase == Phase::Planning {
            "Planning"
        } else {
            "Running"
        };
        let of = self.migration.spec.backoff_limit.saturating_add(1).max(1);
        self.set(
            phase,
            reason,
            format!(
                "step {} ({}): Job {job}, attempt {attempt} of {of}",
                step.key, step.description
            ),
        );
    }

    fn timeout(&self) -> Duration {
        jobs::parse_timeout(&self.migration.spec.timeout).unwrap_or(Duration::from_secs(15 * 60))
    }

    /// Look again when a Job started at `started` passes its deadline.
    fn until_deadline(&self, started: Option<Timestamp>) -> Action {
        let deadline = self.timeout() + DEADLINE_GRACE;
        let elapsed = started
            .map(|at| self.now.duration_since(at))
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or_default();
        Action::requeue(deadline.saturating_sub(elapsed) + Duration::from_secs(1))
    }

    /// A Job of the current step runs: wait for it (the Job watch brings
    /// its changes), stopping it if the Job controller has not at the deadline.
    async fn watch(
        &mut self,
        step: &PlannedStep,
        job: &Arc<Job>,
    ) -> Result<Decision, ReconcileError> {
        let name = job.name_any();
        let attempt = jobs::attempt_of(job);
        self.next.current_job = Some(name.clone());
        if step.phase != StepPhase::Maintenance {
            self.next.attempts = self.next.attempts.max(i32::try_from(attempt).unwrap_or(0));
        }
        self.running(step, &name, attempt);
        let started = jobs::started(job);
        let overdue = started.is_some_and(|at| {
            self.now.duration_since(at)
                > SignedDuration::try_from(self.timeout() + DEADLINE_GRACE)
                    .unwrap_or(SignedDuration::MAX)
        });
        if overdue {
            // The Job controller enforces the deadline the host set; this is
            // the backstop for a cluster where it did not.
            let api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => {
                    return Err(ReconcileError::api(
                        Failure::ApiError,
                        &format!("stopping Job {name}, which ran past spec.timeout"),
                        &error,
                    ));
                }
            }
            return Ok(self.fail(
                "Timeout",
                &format!(
                    "step {} ran longer than spec.timeout ({}); its Job {name} was stopped",
                    step.key, self.migration.spec.timeout
                ),
            ));
        }
        Ok(Decision::wait(self.until_deadline(started)))
    }

    async fn interpret(
        &self,
        plugin: &Arc<Plugin>,
        subject: &Subject,
        step: &PlannedStep,
        job: &Arc<Job>,
    ) -> Result<StepOutcome, ReconcileError> {
        let uid = job.uid().unwrap_or_default();
        let message = match self.ctx.cached_message(&uid) {
            Some(message) => message,
            None => {
                let container = step
                    .job
                    .object()
                    .pointer("/spec/template/spec/containers/0/name")
                    .and_then(serde_json::Value::as_str);
                let message =
                    jobs::termination_message(&self.ctx.client, &self.namespace, &uid, container)
                        .await
                        .map_err(|error| {
                            ReconcileError::api(
                                Failure::ApiError,
                                &format!("reading the pods of Job {}", job.name_any()),
                                &error,
                            )
                        })?;
                self.ctx.cache_message(&uid, message.clone());
                message
            }
        };
        let job_json = serde_json::to_value(&**job).unwrap_or_default();
        self.ctx
            .pipeline()
            .interpret(plugin, subject, step, job_json, message)
            .await
            .map_err(|e| pipeline_failure(self.ctx, &e))
    }

    fn history_entry(
        &self,
        step: &PlannedStep,
        job: &Job,
        result: &str,
        message: &str,
    ) -> MigrationRun {
        let finished = match jobs::state(job) {
            JobState::Finished { at } => at,
            JobState::Active => None,
        };
        MigrationRun {
            plan_hash: self.next.plan_hash.clone().unwrap_or_default(),
            step: step.key.clone(),
            job: job.name_any(),
            result: result.to_owned(),
            applied_version: None,
            started_at: jobs::started(job).map(|t| t.to_string()),
            finished_at: finished.map(|t| t.to_string()),
            message: report::clip(message, 1024),
        }
    }

    /// Act on what became of the latest attempt of `step`. `None` when the
    /// step succeeded and the run goes on.
    #[allow(clippy::too_many_arguments)]
    async fn judge(
        &mut self,
        plugin: &Arc<Plugin>,
        subject: &Subject,
        step: &PlannedStep,
        maintenance: Option<&PlannedStep>,
        job: &Arc<Job>,
        outcome: StepOutcome,
        hash: &str,
    ) -> Result<Option<Decision>, ReconcileError> {
        let attempt = jobs::attempt_of(job);
        match outcome {
            StepOutcome::Running => {
                // The Job is over but the strategy cannot tell yet (e.g. its
                // pod's status is not written): look again shortly.
                self.running(step, &job.name_any(), attempt);
                Ok(Some(Decision::wait(Action::requeue(POLL))))
            }
            StepOutcome::Succeeded {
                applied_version,
                summary,
            } => {
                let mut entry = self.history_entry(step, job, "Succeeded", &summary);
                entry.applied_version = applied_version.clone();
                let new = !self
                    .next
                    .history
                    .iter()
                    .any(|r| r.job == entry.job && r.result == "Succeeded");
                report::record(&mut self.next, entry);
                if step.phase == StepPhase::PlanOnly && !summary.is_empty() {
                    self.next.plan_summary = Some(report::clip(&summary, report::MAX_TEXT));
                }
                if applied_version.is_some() && step.phase != StepPhase::PlanOnly {
                    self.next.applied_version = applied_version;
                }
                if new {
                    tracing::info!(job = %job.name_any(), step = %step.key, "migration step succeeded");
                }
                self.next.completed_steps.push(step.key.clone());
                self.next.current_job = None;
                self.next.attempts = 0;
                self.next.next_attempt_at = None;
                self.next.last_error = None;
                Ok(None)
            }
            StepOutcome::Failed {
                reason,
                message,
                retryable,
            } => {
                let allowed = self.allowed_attempts(maintenance, hash);
                self.failed_attempt(step, job, &reason, &message).await;
                if retryable && attempt < allowed {
                    let finished = match jobs::state(job) {
                        JobState::Finished { at: Some(at) } => at,
                        _ => self.now,
                    };
                    let wait = self.retry_wait(attempt);
                    let at = finished
                        .checked_add(SignedDuration::try_from(wait).unwrap_or(SignedDuration::ZERO))
                        .unwrap_or(self.now);
                    self.next.last_error = Some(report::clip(
                        &format!("attempt {attempt} of {allowed} failed ({reason}): {message}"),
                        report::MAX_TEXT,
                    ));
                    self.next.next_attempt_at = Some(at.to_string());
                    if let Some(decision) = self.backing_off() {
                        return Ok(Some(decision));
                    }
                    self.next.current_step = Some(step.key.clone());
                    return self.start(step, attempt + 1, hash, None).await.map(Some);
                }
                let message = if retryable {
                    format!("{message} (gave up after {attempt} attempts)")
                } else {
                    message
                };
                Ok(Some(self.fail(&reason, &message)))
            }
            StepOutcome::LockHeld { holder } => self
                .lock_held(plugin, subject, step, maintenance, job, &holder, hash)
                .await
                .map(Some),
        }
    }

    /// `backoffLimit` + 1 attempts, and one more after a maintenance step ran.
    fn allowed_attempts(&self, maintenance: Option<&PlannedStep>, hash: &str) -> u32 {
        let base = u32::try_from(self.migration.spec.backoff_limit.max(0)).unwrap_or(0) + 1;
        let repaired = maintenance.is_some_and(|m| !self.step_jobs(&m.key, hash).is_empty());
        base + u32::from(repaired)
    }

    fn retry_wait(&self, attempt: u32) -> Duration {
        let base = self.ctx.config.retry_backoff;
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        base.saturating_mul(factor)
            .min(self.ctx.config.max_retry_backoff)
    }

    async fn failed_attempt(&mut self, step: &PlannedStep, job: &Job, reason: &str, message: &str) {
        let entry = self.history_entry(step, job, "Failed", &format!("{reason}: {message}"));
        let new = !self
            .next
            .history
            .iter()
            .any(|r| r.job == entry.job && r.result == "Failed");
        report::record(&mut self.next, entry);
        if new {
            events::publish(
                &self.ctx.recorder,
                &self.migration.object_ref(&()),
                Severity::Warning,
                "StepFailed",
                "Migrate",
                &format!(
                    "step {} failed in Job {} ({reason}): {message}",
                    step.key,
                    job.name_any()
                ),
            )
            .await;
        }
    }

    fn fail(&mut self, reason: &str, message: &str) -> Decision {
        self.next.current_job = None;
        self.next.next_attempt_at = None;
        self.next.last_error = Some(report::clip(message, report::MAX_TEXT));
        self.set(Phase::Failed, reason, message);
        Decision::done(Action::await_change())
    }

    /// The tool's own lock is held: run the maintenance step once, when no
    /// attempt may still be running, then try again.
    #[allow(clippy::too_many_arguments)]
    async fn lock_held(
        &mut self,
        plugin: &Arc<Plugin>,
        subject: &Subject,
        step: &PlannedStep,
        maintenance: Option<&PlannedStep>,
        job: &Arc<Job>,
        holder: &str,
        hash: &str,
    ) -> Result<Decision, ReconcileError> {
        let attempt = jobs::attempt_of(job);
        let entry = self.history_entry(step, job, "LockHeld", holder);
        report::record(&mut self.next, entry);
        let Some(maintenance) = maintenance else {
            return Ok(self.fail(
                "LockHeld",
                &format!(
                    "the tool's lock on the database is held ({holder}) and the strategy offers no maintenance step to release it: release it by hand, or allow the step (plugin settings or the annotation portfolio.dev/allow-maintenance), then change the spec to run again"
                ),
            ));
        };
        let repairs: Vec<Arc<Job>> = self.step_jobs(&maintenance.key, hash);
        let for_this = repairs.iter().find(|m| {
            m.annotations().get(REPAIRS_ANNOTATION).map(String::as_str)
                == Some(attempt.to_string().as_str())
        });
        match for_this {
            None if !repairs.is_empty() => Ok(self.fail(
                "LockHeld",
                &format!(
                    "the tool's lock on the database is still held ({holder}) after {} ran: release it by hand, then change the spec to run again",
                    maintenance.key
                ),
            )),
            None => {
                // Never while an attempt may still hold the lock for real.
                for other in self.own_jobs() {
                    let running = jobs::state(&other) == JobState::Active
                        || jobs::pods_running(&self.ctx.client, &self.namespace, &other.uid().unwrap_or_default())
                            .await
                            .map_err(|error| {
                                ReconcileError::api(
                                    Failure::ApiError,
                                    &format!("reading the pods of Job {}", other.name_any()),
                                    &error,
                                )
                            })?;
                    if running {
                        self.set(
                            Phase::Running,
                            "WaitingForPreviousAttempt",
                            format!(
                                "the tool's lock is held ({holder}); {} runs once the pods of Job {} are gone",
                                maintenance.key,
                                other.name_any()
                            ),
                        );
                        return Ok(Decision::wait(Action::requeue(POLL)));
                    }
                }
                let count = u32::try_from(repairs.len()).unwrap_or(0) + 1;
                self.next.current_step = Some(maintenance.key.clone());
                self.start(maintenance, count, hash, Some(attempt)).await
            }
            Some(repair) if jobs::state(repair) == JobState::Active => {
                let repair = Arc::clone(repair);
                self.next.current_step = Some(maintenance.key.clone());
                self.watch(maintenance, &repair).await
            }
            Some(repair) => {
                let repair = Arc::clone(repair);
                match self.interpret(plugin, subject, maintenance, &repair).await? {
                    StepOutcome::Succeeded { summary, .. } => {
                        let entry = self.history_entry(maintenance, &repair, "Succeeded", &summary);
                        report::record(&mut self.next, entry);
                        self.next.current_step = Some(step.key.clone());
                        self.start(step, attempt + 1, hash, None).await
                    }
                    StepOutcome::Running => Ok(Decision::wait(Action::requeue(POLL))),
                    StepOutcome::Failed { reason, message, .. } => {
                        self.failed_attempt(maintenance, &repair, &reason, &message).await;
                        Ok(self.fail(&reason, &format!("{} failed: {message}", maintenance.key)))
                    }
                    StepOutcome::LockHeld { holder } => Ok(self.fail(
                        "LockHeld",
                        &format!("{} could not release the tool's lock ({holder})", maintenance.key),
                    )),
                }
            }
        }
    }

    async fn ensure_finalizer(&self) -> Result<(), ReconcileError> {
        if self.migration.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let api: Api<DatabaseMigration> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        crate::controller::cleanup::add_finalizer(&api, self.migration.meta())
            .await
            .map_err(|error| {
                ReconcileError::api(
                    Failure::ApiError,
                    &format!("adding the finalizer {FINALIZER} to {}", self.path()),
                    &error,
                )
            })
    }

    /// Deleted: stop what runs, keep the record in an Event, let go of the
    /// lock, and remove the finalizer. Nothing here waits for anything.
    async fn finalize(&mut self) -> Result<Action, Error> {
        if !self.migration.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        let overdue = self
            .migration
            .meta()
            .deletion_timestamp
            .as_ref()
            .is_some_and(|at| {
                self.now.duration_since(at.0)
                    > SignedDuration::try_from(self.ctx.config.cleanup_timeout)
                        .unwrap_or(SignedDuration::MAX)
            });
        let result = self.stop_everything().await;
        if let Err(error) = result {
            if !overdue {
                return Err(error);
            }
            tracing::warn!(error = %error, "cleanup of a deleted migration failed past its timeout; letting it go");
        }
        let api: Api<DatabaseMigration> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        crate::controller::cleanup::remove_finalizer_from(&api, self.migration.meta())
            .await
            .map_err(|error| {
                ReconcileError::api(
                    Failure::ApiError,
                    &format!("removing the finalizer {FINALIZER} from {}", self.path()),
                    &error,
                )
            })?;
        Ok(Action::await_change())
    }

    async fn stop_everything(&mut self) -> Result<(), ReconcileError> {
        let mut stopped = Vec::new();
        for job in self.own_jobs() {
            if jobs::state(&job) != JobState::Active {
                continue;
            }
            let api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
            match api
                .delete(&job.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => stopped.push(job.name_any()),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => {
                    return Err(ReconcileError::api(
                        Failure::CleanupFailed,
                        &format!("stopping Job {} of the deleted migration", job.name_any()),
                        &error,
                    ));
                }
            }
        }
        if self
            .ctx
            .locks
            .release(&self.database, &self.me)
            .await
            .map_err(lock_error)?
        {
            self.ctx.released(&self.database);
        }
        let status = self.before.clone();
        let phase = status.phase.map_or("Pending", report::phase_name);
        let mut note = if stopped.is_empty() {
            format!("deleted in phase {phase}; no Job was running")
        } else {
            format!(
                "deleted in phase {phase} during step {}; stopped Job {}",
                status.current_step.as_deref().unwrap_or("?"),
                stopped.join(", ")
            )
        };
        if let Some(version) = &status.applied_version {
            note.push_str(&format!("; schema version {version}"));
        }
        for run in status.history.iter().take(3) {
            note.push_str(&format!(
                "; {} {} {} ({})",
                run.step,
                run.result,
                run.job,
                run.finished_at.as_deref().unwrap_or("-")
            ));
        }
        events::publish(
            &self.ctx.recorder,
            &self.migration.object_ref(&()),
            if stopped.is_empty() {
                Severity::Normal
            } else {
                Severity::Warning
            },
            "Deleted",
            "Delete",
            &note,
        )
        .await;
        Ok(())
    }

    /// Write the status (when it changed) and the Event of a phase change.
    async fn report(&mut self, before: &DatabaseMigrationStatus) -> Result<(), Error> {
        let now = Time(self.now);
        self.next.phase = Some(self.standing.phase);
        self.next.conditions = report::conditions(
            &before.conditions,
            &self.standing,
            self.migration.metadata.generation,
            &now,
        );
        let target = Target::of(self.migration);
        if status::write(self.ctx, &target, before, &self.next).await? {
            self.ctx
                .written
                .wrote(&self.uid, before.clone(), self.next.clone());
        }
        if let Some((warning, reason, note)) = report::phase_event(before.phase, &self.standing) {
            events::publish(
                &self.ctx.recorder,
                &target.reference,
                if warning {
                    Severity::Warning
                } else {
                    Severity::Normal
                },
                &reason,
                "Migrate",
                &note,
            )
            .await;
        }
        Ok(())
    }
}
