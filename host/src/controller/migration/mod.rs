//! The DatabaseMigration controller: plans a migration with its strategy
//! plugin, runs the steps as Jobs in order, reads their outcome with the
//! strategy's `interpret`, and reports it in status and Events.
//!
//! Where each part lives: the watches and what every reconcile shares
//! ([`run`], [`MigrationContext`]); one reconcile ([`reconcile`]); the
//! per-database lock ([`lock`]); Job names, states and messages ([`jobs`]);
//! what the status says ([`report`]). The plan goes through the shared
//! [`crate::pipeline`] (resolve → plan → policy → decorate), Jobs are
//! applied with [`super::act::Children`], status is written by
//! [`super::status`].
//!
//! What makes a migration run once, and one at a time:
//! - Job names are deterministic (the strategy's name for the first attempt,
//!   `-2`, `-3`… for retries), so an operator restarted mid-step finds the
//!   running Job (by name and by the labels the host puts on it) and never
//!   starts a second one;
//! - a migration that started a Job decides nothing until the Job watch
//!   shows it ([`jobs::Unseen`]): its status, written after the Job, may come
//!   back first, and the step would look as if it had no Job;
//! - the hash of a plan that succeeded is recorded on the migration itself,
//!   in the annotation [`SUCCEEDED_ANNOTATION`] (metadata survives a lost or
//!   rewritten status, and a restore without status), and a plan with that
//!   hash is never run again;
//! - a Lease per database ([`lock`]) is taken before any Job of a run starts
//!   and released when the run ends.

pub mod jobs;
pub mod lock;
pub mod reconcile;
pub mod report;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use portfolio_api::DatabaseMigration;
use tracing::Instrument;

use super::metrics::Metrics;
use super::scope;
use super::watched::WatchedApp;
use crate::policy::OutputPolicy;
use crate::registry::{PluginRef, Registry};

pub use lock::{Database, Holder, Locks};

/// Annotation on a migration with the hash of the last plan that succeeded:
/// a plan with this hash is never run again.
pub const SUCCEEDED_ANNOTATION: &str = "portfolio.dev/succeeded-plan";

/// How the migration controller behaves.
#[derive(Clone, Debug)]
pub struct MigrationConfig {
    /// Watch migrations in these namespaces only; all namespaces when empty.
    pub namespaces: Vec<String>,
    /// Where the per-database lock Leases live (the operator's namespace).
    pub lock_namespace: String,
    /// Wait before the second attempt of a failed step; doubled for each further one.
    pub retry_backoff: Duration,
    /// Longest wait between attempts.
    pub max_retry_backoff: Duration,
    /// Migrations reconciled at once.
    pub max_concurrent_reconciles: u16,
    /// How long a deletion may take before the finalizer is removed regardless.
    pub cleanup_timeout: Duration,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        MigrationConfig {
            namespaces: Vec::new(),
            lock_namespace: crate::manifests::DEFAULT_NAMESPACE.to_owned(),
            retry_backoff: Duration::from_secs(10),
            max_retry_backoff: Duration::from_secs(5 * 60),
            max_concurrent_reconciles: 8,
            cleanup_timeout: Duration::from_secs(2 * 60),
        }
    }
}

/// What every migration reconcile shares.
pub struct MigrationContext {
    /// The API client.
    pub client: kube::Client,
    /// The active plugins.
    pub registry: Arc<Registry>,
    /// What plugins may create (Jobs, for a strategy).
    pub policy: OutputPolicy,
    /// Where Events go.
    pub recorder: Recorder,
    /// Counters shared with `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Scope, lock namespace, backoff.
    pub config: MigrationConfig,
    /// The database locks.
    pub locks: Locks,
    /// The Jobs the operator made (label-filtered).
    pub jobs: Store<Job>,
    /// Whether the Job watch has listed. One task waits on the store and
    /// tells every reconcile: kube's `Store::wait_until_ready` wakes only the
    /// last of several concurrent waiters.
    jobs_listed: tokio::sync::watch::Receiver<bool>,
    /// The apps, for contract migrations waiting on a rollout.
    pub apps: Store<WatchedApp>,
    /// The migrations, for the expand migrations of an app.
    pub migrations: Store<DatabaseMigration>,
    /// Migrations waiting for a database lock, by Lease name: woken when it is released.
    waiting: Mutex<HashMap<String, HashSet<ObjectRef<DatabaseMigration>>>>,
    wake: tokio::sync::mpsc::UnboundedSender<ObjectRef<DatabaseMigration>>,
    /// Termination messages of finished Jobs, by Job uid (a finished Job's
    /// pod does not change, so it is read once).
    messages: Mutex<HashMap<String, Option<String>>>,
    /// Failures in a row, per migration, for backoff.
    failures: Mutex<HashMap<ObjectRef<DatabaseMigration>, u32>>,
    /// The Jobs started that the Job watch has not shown yet.
    unseen: jobs::Unseen,
    /// The statuses written that the cache may not show yet: a reconcile
    /// queued by our own metadata patch would otherwise start from the
    /// status before the last write and undo it.
    written: super::status::Written<portfolio_api::DatabaseMigrationStatus>,
}

/// Keep at most this many termination messages in memory.
const MAX_MESSAGES: usize = 1024;

impl MigrationContext {
    /// The reconcile pipeline over the active plugins and the output policy.
    pub fn pipeline(&self) -> crate::pipeline::Pipeline<'_> {
        crate::pipeline::Pipeline::new(&self.registry, &self.policy)
    }

    /// Remember that `migration` waits for the lock of `database`.
    fn wait_for(&self, database: &Database, migration: ObjectRef<DatabaseMigration>) {
        lock_map(&self.waiting)
            .entry(database.lease.clone())
            .or_default()
            .insert(migration);
    }

    /// Wake the migrations waiting for the lock of `database`.
    fn released(&self, database: &Database) {
        let waiting = lock_map(&self.waiting).remove(&database.lease);
        for migration in waiting.into_iter().flatten() {
            let _ = self.wake.send(migration);
        }
    }

    /// Wait (at most `timeout`) until the Job watch has listed.
    async fn jobs_listed(&self, timeout: Duration) {
        let mut listed = self.jobs_listed.clone();
        if !matches!(
            tokio::time::timeout(timeout, listed.wait_for(|listed| *listed)).await,
            Ok(Ok(_))
        ) {
            tracing::warn!("the Job watch has not listed yet; reconciling without it");
        }
    }

    fn cached_message(&self, job_uid: &str) -> Option<Option<String>> {
        lock_map(&self.messages).get(job_uid).cloned()
    }

    fn cache_message(&self, job_uid: &str, message: Option<String>) {
        let mut messages = lock_map(&self.messages);
        if messages.len() >= MAX_MESSAGES {
            messages.clear();
        }
        messages.insert(job_uid.to_owned(), message);
    }
}

impl super::status::Writer for MigrationContext {
    fn client(&self) -> &kube::Client {
        &self.client
    }
    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

fn lock_map<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a reconcile did not finish.
pub type Error = crate::failure::ReconcileError;

/// Everything the migration controller needs besides its context.
pub struct MigrationSetup {
    /// The API client.
    pub client: kube::Client,
    /// The active plugins.
    pub registry: Arc<Registry>,
    /// What plugins may create.
    pub policy: OutputPolicy,
    /// Scope, lock namespace, backoff.
    pub config: MigrationConfig,
    /// Counters (shared with the ops server).
    pub metrics: Arc<Metrics>,
    /// Who the operator is, in Events.
    pub reporter: Reporter,
    /// The app controller's watch of PortfolioApps, shared
    /// ([`super::share_apps`]); without it this controller keeps its own.
    pub apps: Option<super::SharedApps>,
}

/// The migrations whose strategy reference names `plugin`.
fn migrations_using(
    migrations: &[Arc<DatabaseMigration>],
    plugin: &str,
) -> Vec<ObjectRef<DatabaseMigration>> {
    migrations
        .iter()
        .filter(|m| {
            reconcile::reference_of(m)
                .parse::<PluginRef>()
                .is_ok_and(|reference| reference.name == plugin)
        })
        .map(|m| ObjectRef::from_obj(&**m))
        .collect()
}

/// The migrations linked to `app` (named in its `spec.migrations`, or naming
/// it in `spec.appRef`): a change of the app may let a contract one start.
fn migrations_of_app(
    migrations: &[Arc<DatabaseMigration>],
    app: &super::AppChange,
) -> Vec<ObjectRef<DatabaseMigration>> {
    migrations
        .iter()
        .filter(|m| m.metadata.namespace.as_deref() == Some(app.namespace.as_str()))
        .filter(|m| {
            m.spec.app_ref.as_ref().is_some_and(|r| r.name == app.name)
                || app.migrations.contains(&m.name_any())
        })
        .map(|m| ObjectRef::from_obj(&**m))
        .collect()
}

/// The watch of `K` in each of `namespaces` (see [`scope`]).
fn typed_watches<K>(
    client: &kube::Client,
    namespaces: &scope::Namespaces,
    config: watcher::Config,
) -> Vec<(
    String,
    impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + use<K>,
)>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    scope::watches(scope::apis::<K>(client, namespaces), &config, &K::kind(&()))
}

/// Run the migration controller until `shutdown` completes.
pub async fn run(
    setup: MigrationSetup,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let MigrationSetup {
        client,
        registry,
        policy,
        config,
        metrics,
        reporter,
        apps: shared,
    } = setup;
    let namespaces = &config.namespaces;
    let (migration_reader, migration_writer) = reflector::store::<DatabaseMigration>();
    let migration_stream = scope::reflect(
        typed_watches(&client, namespaces, watcher::Config::default()),
        migration_writer,
    )
    .applied_objects();
    let mut controller = Controller::for_stream(migration_stream, migration_reader);
    let migration_store = controller.store();

    let job_writer = reflector::store::Writer::<Job>::default();
    let jobs = job_writer.as_reader();
    let job_stream = scope::reflect(
        typed_watches(
            &client,
            namespaces,
            watcher::Config::default().labels(&super::children::managed_selector()),
        ),
        job_writer,
    )
    .touched_objects();
    controller = controller.owns_stream(job_stream);

    // Woken: by a released lock, by a plugin that changed, and by a change
    // of an app that may let a contract migration start.
    let (wake, woken) = tokio::sync::mpsc::unbounded_channel();
    let (apps, app_changes) = match shared {
        Some(shared) => (shared.store, super::receiver_stream(shared.changes).boxed()),
        None => {
            let app_writer = reflector::store::Writer::<WatchedApp>::default();
            let apps = app_writer.as_reader();
            let changes = scope::reflect(
                typed_watches(&client, namespaces, watcher::Config::default()),
                app_writer,
            )
            .touched_objects()
            .filter_map(|app| std::future::ready(app.ok().map(|app| super::AppChange::of(&app))))
            .boxed();
            (apps, changes)
        }
    };
    let (for_apps, wake_for_apps) = (migration_store.clone(), wake.clone());
    tokio::spawn(async move {
        let mut app_changes = app_changes;
        while let Some(change) = app_changes.next().await {
            if wake_for_apps.is_closed() {
                // The controller has stopped.
                return;
            }
            for migration in migrations_of_app(&for_apps.state(), &change) {
                if wake_for_apps.send(migration).is_err() {
                    // The controller has stopped.
                    return;
                }
            }
        }
    });

    super::wake_on_plugin_changes(
        &registry,
        migration_store.clone(),
        wake.clone(),
        migrations_using,
    );
    let woken = super::receiver_stream(woken);

    let (tell, jobs_listed) = tokio::sync::watch::channel(false);
    let listing = jobs.clone();
    tokio::spawn(async move {
        if listing.wait_until_ready().await.is_ok() {
            let _ = tell.send(true);
        }
    });
    let context = Arc::new(MigrationContext {
        recorder: Recorder::new(client.clone(), reporter),
        locks: Locks::new(client.clone(), config.lock_namespace.clone()),
        client,
        registry,
        policy,
        metrics,
        config: config.clone(),
        jobs,
        jobs_listed,
        apps,
        migrations: migration_store,
        waiting: Mutex::new(HashMap::new()),
        wake,
        messages: Mutex::new(HashMap::new()),
        failures: Mutex::new(HashMap::new()),
        unseen: jobs::Unseen::default(),
        written: super::status::Written::default(),
    });
    controller
        .reconcile_on(woken)
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(config.max_concurrent_reconciles),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile_traced, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(error = %error, "migration controller event");
            }
        })
        .await;
}

async fn reconcile_traced(
    migration: Arc<DatabaseMigration>,
    ctx: Arc<MigrationContext>,
) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        migration = %format!("{}/{}", migration.namespace().unwrap_or_default(), migration.name_any())
    );
    // A strategy published in a ConfigMap is known once that source has listed.
    ctx.registry.wait_sources_listed().await;
    let started = std::time::Instant::now();
    let key = ObjectRef::from_obj(&*migration);
    let result = reconcile::reconcile(migration, &ctx).instrument(span).await;
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok(_) => {
            ctx.metrics.reconciled("ok", seconds);
            lock_map(&ctx.failures).remove(&key);
        }
        Err(error) => ctx.metrics.reconciled(error.metric_label(), seconds),
    }
    result
}

fn error_policy(
    migration: Arc<DatabaseMigration>,
    error: &Error,
    ctx: Arc<MigrationContext>,
) -> Action {
    let key = ObjectRef::from_obj(&*migration);
    let failures = {
        let mut failures = lock_map(&ctx.failures);
        let count = failures.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let wait = super::backoff(failures, ctx.config.max_retry_backoff);
    tracing::warn!(
        migration = %format!("{}/{}", migration.namespace().unwrap_or_default(), migration.name_any()),
        error = %error, failures, retry_in_s = wait.as_secs(), "reconcile failed"
    );
    Action::requeue(wait)
}

/// The migration's kind, for owner checks.
fn is_owned_by(job: &Job, migration: &DatabaseMigration) -> bool {
    let uid = migration.meta().uid.as_deref().unwrap_or_default();
    job.owner_references()
        .iter()
        .any(|owner| owner.controller == Some(true) && owner.uid == uid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portfolio_api::DatabaseMigrationSpec;

    fn migration(name: &str, app: Option<&str>) -> Arc<DatabaseMigration> {
        let mut spec: DatabaseMigrationSpec = serde_json::from_value(serde_json::json!({
            "tool": "flyway",
            "database": {"url": "jdbc:postgresql://db/shop", "credentialsSecretRef": {"name": "s"}},
            "source": {"configMapRef": {"name": "sql"}},
        }))
        .unwrap();
        spec.app_ref = app.map(|name| portfolio_api::LocalObjectRef { name: name.into() });
        let mut m = DatabaseMigration::new(name, spec);
        m.metadata.namespace = Some("demo".into());
        Arc::new(m)
    }

    #[test]
    fn an_app_wakes_the_migrations_it_lists_or_that_name_it() {
        let mut app = portfolio_api::PortfolioApp::new("shop", Default::default());
        app.metadata.namespace = Some("demo".into());
        app.spec.migrations = vec!["listed".into()];
        let watched = WatchedApp {
            metadata: app.metadata.clone(),
            parsed: Ok(Arc::new(app)),
            conditions: Vec::new(),
        };
        let mut elsewhere = (*migration("naming", Some("shop"))).clone();
        elsewhere.metadata.namespace = Some("other".into());
        let all = [
            migration("listed", None),
            migration("naming", Some("shop")),
            migration("unrelated", Some("cart")),
            Arc::new(elsewhere),
        ];
        let names: Vec<String> =
            migrations_of_app(&all, &crate::controller::AppChange::of(&watched))
                .into_iter()
                .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
                .collect();
        assert_eq!(names, ["demo/listed", "demo/naming"]);
    }

    #[test]
    fn only_migrations_naming_a_plugin_are_woken() {
        let mut custom = (*migration("custom", None)).clone();
        custom.spec.strategy = Some(portfolio_api::PluginSelector {
            plugin: "team-flyway@^2".into(),
            settings: None,
        });
        let all = [migration("builtin", None), Arc::new(custom)];
        let names = |plugin| -> Vec<String> {
            migrations_using(&all, plugin)
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        assert_eq!(names("flyway"), ["builtin"]);
        assert_eq!(names("team-flyway"), ["custom"]);
        assert!(names("liquibase").is_empty());
    }
}
