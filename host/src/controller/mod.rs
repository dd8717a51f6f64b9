//! The PortfolioApp controller: a level-based reconcile through the generator
//! plugin, with label-filtered watches of the children it owns, re-reconciles
//! of exactly the apps whose plugin changed, and a finalizer for cleanup.
//!
//! Where each step of a reconcile lives:
//! watch ([`run`], over the kinds of [`crate::kinds`]) → resolve, call,
//! policy, decorate ([`crate::pipeline`]) → decide ([`decide`], pure) →
//! apply / prune ([`act`]) → status and events ([`status`],
//! [`crate::events`]). [`app`] tells the story of one reconcile, [`cleanup`]
//! of a deletion; every failure is a [`crate::failure::ReconcileError`].
//! A new pod template waits for the app's expand migrations ([`gates`]),
//! whose watch re-reconciles the apps they gate.

pub mod act;
pub mod app;
pub mod children;
pub mod cleanup;
pub mod conditions;
pub mod decide;
pub mod gates;
pub mod metrics;
pub mod migration;
pub mod scope;
pub mod settled;
pub mod status;
pub mod watched;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::core::DynamicObject;
use kube::discovery::ApiResource;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use portfolio_api::{DatabaseMigration, PortfolioApp};
use tracing::Instrument;

use crate::policy::OutputPolicy;
use crate::registry::{PluginRef, Registry, RegistryEvent};
use children::ChildStores;
use gates::MigrationFacts;
use metrics::Metrics;
use watched::WatchedApp;

/// How the controller behaves.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Watch apps in these namespaces only; all namespaces when empty.
    pub namespaces: Vec<String>,
    /// Apps reconciled at once.
    pub max_concurrent_reconciles: u16,
    /// How long a deletion's cleanup may take before it is reported stuck.
    pub cleanup_timeout: Duration,
    /// Longest wait between retries of a failing app.
    pub max_backoff: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            namespaces: Vec::new(),
            max_concurrent_reconciles: 8,
            cleanup_timeout: Duration::from_secs(15 * 60),
            max_backoff: Duration::from_secs(5 * 60),
        }
    }
}

/// Longest wait for the child watches' first list before reconciling anyway.
const CHILD_SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: kube::Client,
    /// The active plugins.
    pub registry: Arc<Registry>,
    /// What plugins may create.
    pub policy: OutputPolicy,
    /// Where events go.
    pub recorder: Recorder,
    /// The watched children.
    pub children: ChildStores,
    /// The watched DatabaseMigrations, for the rollout gates.
    pub migrations: MigrationStore,
    /// Namespace scope, concurrency, timeouts and backoff.
    pub config: ControllerConfig,
    /// Reconcile, apply and status-write counters (shared with `/metrics`).
    pub metrics: Arc<Metrics>,
    /// Failures in a row, per app, for backoff.
    failures: Mutex<HashMap<ObjectRef<WatchedApp>, u32>>,
    /// The watched apps, as the watch holds them now.
    pub apps: kube::runtime::reflector::Store<WatchedApp>,
    /// App statuses written that the cache may not show yet.
    pub written: Arc<status::Written<portfolio_api::PortfolioAppStatus>>,
    /// What each app's last reconcile saw and wrote: reconciles that would
    /// get the same inputs are skipped.
    pub settled: Arc<settled::Settled>,
    /// Apps to reconcile again because a child event held back while they
    /// were reconciled showed something new (see [`Settling`]).
    held_back: tokio::sync::mpsc::UnboundedSender<ObjectRef<WatchedApp>>,
}

/// Why a reconcile did not finish: its reason, its metric label, and
/// whether it waits for a change or is retried with backoff.
pub type Error = crate::failure::ReconcileError;

/// The DatabaseMigrations of the watched namespaces, held untyped (read
/// through [`MigrationFacts`]) so that one malformed migration never hides
/// the others, and indexed by namespace: every reconcile reads its own.
#[derive(Clone)]
pub struct MigrationStore {
    index: ChildStores,
    /// The key of a migration named `name`, but for the name.
    key: crate::plugin::ObjectKey,
    /// When the watch started: reconciles wait for its first list only
    /// until a timeout from then, not each for a timeout of its own.
    started: tokio::time::Instant,
    /// Whether the wait has timed out and said so once.
    warned: Arc<std::sync::atomic::AtomicBool>,
}

impl MigrationStore {
    /// An empty store, and the writer that keeps it in step with the watch.
    pub fn new() -> (Self, children::ChildWriter) {
        let resource = ApiResource::erase::<DatabaseMigration>(&());
        let key = crate::plugin::ObjectKey {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
            name: String::new(),
        };
        let (index, mut writers) = ChildStores::new(vec![resource]);
        let store = MigrationStore {
            index,
            key,
            started: tokio::time::Instant::now(),
            warned: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        // One kind, so one writer.
        let writer = writers.remove(0);
        (store, writer)
    }

    /// The migrations of `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<MigrationFacts> {
        self.index
            .in_namespace(namespace)
            .iter()
            .map(|m| MigrationFacts::from_dynamic(m))
            .collect()
    }

    /// Whether the watch has had its first list.
    pub fn listed(&self) -> bool {
        self.index.listed()
    }

    /// Wait for the first list, at most until `timeout` after the watch
    /// started. Until it lists, new pod templates wait (see [`app`]).
    pub async fn wait_until_listed(&self, timeout: Duration) {
        let first_list = self.index.wait_listed();
        let listed_in_time = match self.started.checked_add(timeout) {
            Some(deadline) => tokio::time::timeout_at(deadline, first_list).await.is_ok(),
            None => {
                first_list.await;
                true
            }
        };
        if !listed_in_time && !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "the watch of DatabaseMigrations has not listed yet (is their CRD installed?); new pod templates wait for it"
            );
        }
    }

    /// Whether the migration `namespace/name` is in the store.
    fn contains(&self, namespace: &str, name: &str) -> bool {
        let key = crate::plugin::ObjectKey {
            name: name.to_owned(),
            ..self.key.clone()
        };
        self.index.find(namespace, &key).is_some()
    }
}

impl Context {
    /// The reconcile pipeline over the active plugins and the output policy.
    pub fn pipeline(&self) -> crate::pipeline::Pipeline<'_> {
        crate::pipeline::Pipeline::new(&self.registry, &self.policy)
    }
}

/// Backoff after `failures` failures in a row: 2 s doubling, capped.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    let seconds = 2u64.saturating_mul(1u64 << failures.min(16).saturating_sub(1));
    Duration::from_secs(seconds).min(max)
}

async fn reconcile(watched: Arc<WatchedApp>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        app = %format!("{}/{}", watched.namespace().unwrap_or_default(), watched.name_any())
    );
    reconcile_inner(watched, ctx).instrument(span).await
}

async fn reconcile_inner(watched: Arc<WatchedApp>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Decisions rest on the observed children: a reconcile before the child
    // watches have listed would re-apply what is already there.
    ctx.children.wait_until_ready(CHILD_SYNC_TIMEOUT).await;
    ctx.migrations.wait_until_listed(CHILD_SYNC_TIMEOUT).await;
    ctx.registry.wait_sources_listed().await;
    let _settling = Settling::start(&ctx, &watched);
    let started = Instant::now();
    let key = ObjectRef::from_obj(&*watched);
    let result = match &watched.parsed {
        Ok(app) => reconcile_app(Arc::clone(app), &ctx).await,
        Err(problem) => cleanup::malformed(&watched, problem, &ctx).await,
    };
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok(_) => {
            ctx.metrics.reconciled("ok", seconds);
            ctx.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
        Err(error) => ctx.metrics.reconciled(error.metric_label(), seconds),
    }
    result
}

async fn reconcile_app(app: Arc<PortfolioApp>, ctx: &Context) -> Result<Action, Error> {
    if app.meta().deletion_timestamp.is_some() {
        if app.finalizers().iter().any(|f| f == cleanup::FINALIZER) {
            cleanup::run(app, ctx).await
        } else {
            let uid = app.uid().unwrap_or_default();
            ctx.written.forget(&uid);
            ctx.settled.forget(&uid);
            Ok(Action::await_change())
        }
    } else {
        // The finalizer is put on (and taken off) by the reconcile, as
        // deleting the app comes to have work or no longer has.
        app::apply(app, ctx).await
    }
}

fn error_policy(app: Arc<WatchedApp>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(&*app);
    let failures = {
        let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let wait = backoff(failures, ctx.config.max_backoff);
    tracing::warn!(app = %format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any()), error = %error, failures, retry_in_s = wait.as_secs(), "reconcile failed");
    Action::requeue(wait)
}

/// The apps whose generator reference names `plugin`.
fn apps_using(apps: &[Arc<WatchedApp>], plugin: &str) -> Vec<ObjectRef<WatchedApp>> {
    apps.iter()
        .filter(|watched| {
            watched.parsed.as_ref().is_ok_and(|app| {
                app::reference_of(app)
                    .parse::<PluginRef>()
                    .is_ok_and(|reference| reference.name == plugin)
            })
        })
        .map(|app| ObjectRef::from_obj(&**app))
        .collect()
}

/// The apps each migration (by namespace and name) gated at its last change.
type Gated = Mutex<HashMap<(String, String), Vec<ObjectRef<WatchedApp>>>>;

/// The apps to reconcile when `migration` changed: those it gates now, and
/// those it gated at its previous change (its `appRef` may have moved, or
/// it is gone), remembered in `gated`.
fn apps_to_recheck(
    migration: &DynamicObject,
    apps: &[Arc<WatchedApp>],
    migrations: &MigrationStore,
    gated: &Gated,
) -> Vec<ObjectRef<WatchedApp>> {
    let facts = MigrationFacts::from_dynamic(migration);
    let parsed = apps.iter().filter_map(|w| w.parsed.as_deref().ok());
    let now: Vec<ObjectRef<WatchedApp>> = gates::apps_of(&facts, parsed)
        .into_iter()
        .map(|app| ObjectRef::new(&app.name).within(app.namespace.as_deref().unwrap_or_default()))
        .collect();
    let key = (facts.namespace.clone(), facts.name.clone());
    let mut gated = gated.lock().unwrap_or_else(|e| e.into_inner());
    let before = if migrations.contains(&facts.namespace, &facts.name) {
        gated.insert(key, now.clone())
    } else {
        gated.remove(&key)
    };
    let mut all = now;
    for app in before.into_iter().flatten() {
        if !all.contains(&app) {
            all.push(app);
        }
    }
    all
}

/// Which of some objects name a plugin (by its name).
pub(crate) type UsersOf<K> = fn(&[Arc<K>], &str) -> Vec<ObjectRef<K>>;

/// Send to `wake` the objects of `store` that `using` finds naming a plugin
/// whose active version changed (every object when changes were missed), for
/// as long as the registry and the receiver live.
pub(crate) fn wake_on_plugin_changes<K>(
    registry: &Registry,
    store: kube::runtime::reflector::Store<K>,
    wake: tokio::sync::mpsc::UnboundedSender<ObjectRef<K>>,
    using: UsersOf<K>,
) where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let mut events = registry.subscribe();
    tokio::spawn(async move {
        loop {
            let plugin = match events.recv().await {
                Ok(RegistryEvent::Activated { id, .. } | RegistryEvent::Removed { id, .. }) => {
                    id.name
                }
                Ok(RegistryEvent::Rejected { .. }) => continue,
                // Missed events: the plugins that changed are unknown, so every object is looked at.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    for object in store.state() {
                        let _ = wake.send(ObjectRef::from_obj(&*object));
                    }
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            for object in using(&store.state(), &plugin) {
                if wake.send(object).is_err() {
                    return;
                }
            }
        }
    });
}

/// The items sent to `receiver`, as a stream (a controller's extra triggers).
pub(crate) fn receiver_stream<T>(
    receiver: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

/// The watch of `resource` (a child kind, or DatabaseMigrations) in each of
/// `namespaces` (see [`scope`]), read off the wire as the caches keep it
/// ([`wire::WireChild`]).
fn child_watches(
    client: &kube::Client,
    namespaces: &scope::Namespaces,
    resource: &ApiResource,
    config: &watcher::Config,
) -> Vec<(
    String,
    impl futures::Stream<Item = Result<watcher::Event<wire::WireChild>, watcher::Error>> + Send + use<>,
)> {
    scope::watches(
        scope::dynamic_apis::<wire::WireChild>(client, namespaces, resource),
        config,
        &resource.kind,
    )
}

/// Whether `event` (of a child of kind `resource`) need not queue its app:
/// a child at a version the last reconcile of its app knew, or one held back
/// while its app is being reconciled (see [`settled::Settled::echo`]). A
/// deletion never is.
fn is_echo(
    event: &watcher::Event<wire::WireChild>,
    resource: &ApiResource,
    settled: &settled::Settled,
) -> bool {
    let (watcher::Event::Apply(object) | watcher::Event::InitApply(object)) = event else {
        return false;
    };
    let meta = &object.metadata;
    let (Some(owner), Some(name), Some(version)) = (
        children::controller_uid(meta),
        meta.name.as_deref(),
        meta.resource_version.as_deref(),
    ) else {
        return false;
    };
    let key = settled::ChildKey {
        api_version: &resource.api_version,
        kind: &resource.kind,
        name,
    };
    settled.echo(owner, key, version)
}

/// A reconcile of an app under way, for [`settled::Settled::start`]: when it
/// ends (or is dropped), the app is queued again if a child event held back
/// meanwhile was news.
struct Settling<'a> {
    ctx: &'a Context,
    uid: String,
    app: ObjectRef<WatchedApp>,
}

impl<'a> Settling<'a> {
    fn start(ctx: &'a Context, watched: &WatchedApp) -> Option<Self> {
        let uid = watched.metadata.uid.clone()?;
        ctx.settled.start(&uid);
        Some(Settling {
            ctx,
            uid,
            app: ObjectRef::from_obj(watched),
        })
    }
}

impl Drop for Settling<'_> {
    fn drop(&mut self) {
        if self.ctx.settled.finish(&self.uid) {
            // Closed only when the controller has stopped.
            let _ = self.ctx.held_back.send(self.app.clone());
        }
    }
}

/// What changed of an app, as the migration controller reads it: which app,
/// and the migrations its spec lists.
#[derive(Clone, Debug)]
pub struct AppChange {
    /// The app's namespace.
    pub namespace: String,
    /// The app's name.
    pub name: String,
    /// Its `spec.migrations` (none when it does not parse).
    pub migrations: Vec<String>,
}

impl AppChange {
    /// The change that `app` is.
    pub fn of(app: &WatchedApp) -> Self {
        AppChange {
            namespace: app.metadata.namespace.clone().unwrap_or_default(),
            name: app.metadata.name.clone().unwrap_or_default(),
            migrations: app
                .parsed
                .as_ref()
                .map(|app| app.spec.migrations.clone())
                .unwrap_or_default(),
        }
    }
}

/// The app controller's side of the PortfolioApps' watch when both
/// controllers share it (one watch and one cache, not two): it keeps the
/// cache in step and tells every change.
pub struct AppFeed {
    writer: kube::runtime::reflector::store::Writer<WatchedApp>,
    changes: tokio::sync::mpsc::UnboundedSender<AppChange>,
}

/// The migration controller's side of the shared watch: the cache, and
/// every change of an app.
pub struct SharedApps {
    /// The apps, as the app controller's watch holds them.
    pub store: kube::runtime::reflector::Store<WatchedApp>,
    /// Each app applied or deleted.
    pub changes: tokio::sync::mpsc::UnboundedReceiver<AppChange>,
}

/// One watch of PortfolioApps for both controllers.
pub fn share_apps() -> (AppFeed, SharedApps) {
    let writer = kube::runtime::reflector::store::Writer::<WatchedApp>::default();
    let store = writer.as_reader();
    let (tell, changes) = tokio::sync::mpsc::unbounded_channel();
    (
        AppFeed {
            writer,
            changes: tell,
        },
        SharedApps { store, changes },
    )
}

/// Everything the controller needs besides its context.
pub struct Setup {
    /// The API client.
    pub client: kube::Client,
    /// The active plugins.
    pub registry: Arc<Registry>,
    /// What plugins may create.
    pub policy: OutputPolicy,
    /// Namespace scope, concurrency, timeouts and backoff.
    pub config: ControllerConfig,
    /// Counters (shared with the ops server).
    pub metrics: Arc<Metrics>,
    /// Who the operator is, in events.
    pub reporter: Reporter,
    /// Where the probes learn that the watches listed and what is in flight.
    pub health: Arc<crate::health::Health>,
    /// The PortfolioApps' watch when the migration controller shares it
    /// ([`share_apps`]); without it the controller keeps its own.
    pub apps: Option<AppFeed>,
}

/// Run the controller until `shutdown` completes.
pub async fn run(
    setup: Setup,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let Setup {
        client,
        registry,
        policy,
        config,
        metrics,
        reporter,
        health,
        apps,
    } = setup;
    let child_config = watcher::Config::default().labels(&children::managed_selector());

    // The apps' reflector is ours, not the controller's own, so that its
    // first list can be told to the health probes: kube's
    // `Store::wait_until_ready` wakes only the last of its waiters, and the
    // controller's runner is one (it waits on the store before reconciling),
    // so a second waiter could leave either asleep for good.
    let (app_writer, app_changes) = match apps {
        Some(feed) => (feed.writer, Some(feed.changes)),
        None => (kube::runtime::reflector::store::Writer::default(), None),
    };
    let app_reader = app_writer.as_reader();
    let (apps_listed_tx, mut apps_listed) = tokio::sync::watch::channel(false);
    let settled = Arc::new(settled::Settled::default());
    let forget = Arc::clone(&settled);
    // The echoes of a reconcile's own writes that come once it has
    // recorded what it did queue nothing: they would only be skipped as
    // unchanged.
    let app_echoes = Arc::clone(&settled);
    let written = Arc::new(status::Written::default());
    let seen_written = Arc::clone(&written);
    let app_watches = scope::watches(
        scope::apis::<WatchedApp>(&client, &config.namespaces),
        &watcher::Config::default(),
        "PortfolioApp",
    );
    let app_stream = scope::reflect(app_watches, app_writer)
        .inspect(move |event| {
            match event {
                Ok(watcher::Event::InitDone) => {
                    apps_listed_tx.send_replace(true);
                }
                Ok(watcher::Event::Apply(app) | watcher::Event::InitApply(app)) => {
                    if let (Some(uid), Ok(parsed)) = (&app.metadata.uid, &app.parsed) {
                        match &parsed.status {
                            Some(status) => seen_written.observed(uid, status),
                            None => seen_written.observed(uid, &Default::default()),
                        }
                    }
                }
                // Gone without a finalizer: no reconcile sees it go.
                Ok(watcher::Event::Delete(app)) => {
                    if let Some(uid) = &app.metadata.uid {
                        forget.forget(uid);
                        seen_written.forget(uid);
                    }
                }
                _ => {}
            }
            if let (
                Some(changes),
                Ok(
                    watcher::Event::Apply(app)
                    | watcher::Event::InitApply(app)
                    | watcher::Event::Delete(app),
                ),
            ) = (&app_changes, event)
            {
                // The migration controller stopping first ends this one too.
                let _ = changes.send(AppChange::of(app));
            }
        })
        .applied_objects()
        .try_filter(move |watched| {
            let echo = matches!(&watched.parsed, Ok(app) if app_echoes.knows_app(app));
            std::future::ready(!echo)
        });
    let mut controller = Controller::for_stream(app_stream, app_reader);
    let resources: Vec<ApiResource> = policy.kinds().iter().map(|k| k.resource()).collect();
    let (child_stores, writers) = ChildStores::new(resources.clone());
    for (resource, writer) in resources.into_iter().zip(writers) {
        // The index is kept in step before the controller sees an object,
        // as a reflector would, so that its reconcile reads it.
        let (echoes, kind) = (Arc::clone(&settled), resource.clone());
        let stream = scope::reflect(
            child_watches(&client, &config.namespaces, &resource, &child_config),
            writer,
        )
        .try_filter(move |event| std::future::ready(!is_echo(event, &kind, &echoes)))
        .touched_objects();
        controller = controller.owns_stream_with(stream, resource);
    }

    // Re-reconcile the apps a DatabaseMigration gates when it changes.
    let migration_resource = ApiResource::erase::<DatabaseMigration>(&());
    let (migrations, migration_writer) = MigrationStore::new();
    let migration_stream = scope::reflect(
        child_watches(
            &client,
            &config.namespaces,
            &migration_resource,
            &watcher::Config::default(),
        ),
        migration_writer,
    )
    .touched_objects();
    let (gated_apps, gated_by) = (controller.store(), migrations.clone());
    let gated = Mutex::new(HashMap::new());
    controller = controller.watches_stream_with(
        migration_stream,
        move |migration| {
            apps_to_recheck(&migration.object(), &gated_apps.state(), &gated_by, &gated)
        },
        migration_resource,
    );

    // Re-reconcile exactly the apps whose plugin changed.
    let (trigger, triggered) = tokio::sync::mpsc::unbounded_channel();
    wake_on_plugin_changes(&registry, controller.store(), trigger, apps_using);
    let triggered = receiver_stream(triggered);
    let (held_back, news) = tokio::sync::mpsc::unbounded_channel();
    let news = receiver_stream(news);

    let apps = controller.store();
    let context = Arc::new(Context {
        apps,
        recorder: Recorder::new(client.clone(), reporter),
        client,
        registry,
        policy,
        children: child_stores,
        migrations: migrations.clone(),
        config: config.clone(),
        metrics,
        failures: Mutex::new(HashMap::new()),
        written,
        settled,
        held_back,
    });
    // Health hooks (crate::health): ready once every watch has had its first list.
    let children_listed = context.children.clone();
    let listed = Arc::clone(&health);
    let started = Instant::now();
    tokio::spawn(async move {
        children_listed.wait_until_ready(Duration::MAX).await;
        migrations.wait_until_listed(Duration::MAX).await;
        if apps_listed.wait_for(|listed| *listed).await.is_ok() {
            listed.watches_listed();
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis(),
                "every watch of the controller has listed"
            );
        }
    });

    controller
        .reconcile_on(triggered)
        .reconcile_on(news)
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(config.max_concurrent_reconciles),
        )
        .graceful_shutdown_on(shutdown)
        .run(health.track(reconcile), error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(error = %error, "controller event");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let max = Duration::from_secs(300);
        assert_eq!(backoff(1, max), Duration::from_secs(2));
        assert_eq!(backoff(2, max), Duration::from_secs(4));
        assert_eq!(backoff(5, max), Duration::from_secs(32));
        assert_eq!(backoff(30, max), max);
    }

    #[tokio::test]
    async fn reconciles_wait_for_the_first_list_of_migrations_only_so_long() {
        let (store, writer) = MigrationStore::new();
        // The deadline counts from the start of the watch: past, no wait.
        store.wait_until_listed(Duration::ZERO).await;
        assert!(!store.listed());
        assert!(store.warned.load(std::sync::atomic::Ordering::Relaxed));
        writer.apply(&watcher::Event::Init);
        writer.apply(&watcher::Event::InitDone);
        tokio::time::timeout(
            Duration::from_secs(10),
            store.wait_until_listed(Duration::MAX),
        )
        .await
        .expect("woken by the first list");
        assert!(store.listed());
    }

    #[tokio::test]
    async fn a_migration_change_reconciles_the_apps_it_gates_and_gated() {
        let app = |name: &str, listed: &[&str]| {
            let mut app = PortfolioApp::new(name, portfolio_api::PortfolioAppSpec::default());
            app.metadata.namespace = Some("demo".into());
            app.spec.migrations = listed.iter().map(|s| (*s).to_owned()).collect();
            Arc::new(WatchedApp {
                metadata: app.metadata.clone(),
                parsed: Ok(Arc::new(app)),
                conditions: Vec::new(),
            })
        };
        let apps = [app("shop", &[]), app("cart", &[]), app("lister", &["m"])];
        let migration = |app_ref: &str| -> wire::WireChild {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "portfolio.dev/v1alpha1", "kind": "DatabaseMigration",
                "metadata": {"name": "m", "namespace": "demo"},
                "spec": {"appRef": {"name": app_ref}},
            }))
            .expect("a migration")
        };
        let (store, writer) = MigrationStore::new();
        writer.apply(&watcher::Event::Init);
        writer.apply(&watcher::Event::InitDone);
        let gated = Mutex::new(HashMap::new());
        let names = |refs: Vec<ObjectRef<WatchedApp>>| -> Vec<String> {
            refs.into_iter().map(|r| r.name).collect()
        };

        writer.apply(&watcher::Event::Apply(migration("shop")));
        let first = apps_to_recheck(&migration("shop").object(), &apps, &store, &gated);
        assert_eq!(names(first), ["shop", "lister"]);
        // Its appRef moves to cart: shop is looked at again too (it is no longer held by it).
        writer.apply(&watcher::Event::Apply(migration("cart")));
        let moved = apps_to_recheck(&migration("cart").object(), &apps, &store, &gated);
        assert_eq!(names(moved), ["cart", "lister", "shop"]);
        // Deleted: the apps it gated, and nothing remembered.
        writer.apply(&watcher::Event::Delete(migration("cart")));
        let deleted = apps_to_recheck(&migration("cart").object(), &apps, &store, &gated);
        assert_eq!(names(deleted), ["cart", "lister"]);
        assert!(gated.lock().unwrap_or_else(|e| e.into_inner()).is_empty());
    }

    #[test]
    fn only_apps_naming_a_plugin_are_triggered() {
        let app = |name: &str, generator: Option<&str>| {
            let mut app = PortfolioApp::new(name, portfolio_api::PortfolioAppSpec::default());
            app.metadata.namespace = Some("demo".into());
            app.spec.generator = generator.map(|plugin| portfolio_api::PluginSelector {
                plugin: plugin.into(),
                settings: None,
            });
            Arc::new(WatchedApp {
                metadata: app.metadata.clone(),
                parsed: Ok(Arc::new(app)),
                conditions: Vec::new(),
            })
        };
        let malformed = Arc::new(WatchedApp {
            metadata: kube::api::ObjectMeta {
                name: Some("e".into()),
                namespace: Some("demo".into()),
                ..Default::default()
            },
            parsed: Err("spec: invalid type".into()),
            conditions: Vec::new(),
        });
        let apps = [
            app("a", None),
            app("b", Some("team-gen@^1")),
            app("c", Some("deployment-generator@0.1.0")),
            app("d", Some("other")),
            malformed,
        ];
        let names = |plugin| -> Vec<String> {
            apps_using(&apps, plugin)
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        assert_eq!(names("deployment-generator"), ["a", "c"]);
        assert_eq!(names("team-gen"), ["b"]);
        assert!(names("nobody").is_empty());
    }
}
