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

pub mod act;
pub mod app;
pub mod children;
pub mod cleanup;
pub mod conditions;
pub mod decide;
pub mod gates;
pub mod metrics;
pub mod status;
pub mod watched;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::Api;
use kube::core::DynamicObject;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use portfolio_api::PortfolioApp;
use tracing::Instrument;

use crate::policy::OutputPolicy;
use crate::registry::{PluginRef, Registry, RegistryEvent};
use children::ChildStores;
use metrics::Metrics;
use watched::WatchedApp;

/// How the controller behaves.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Watch apps in this namespace only; all namespaces when `None`.
    pub namespace: Option<String>,
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
            namespace: None,
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
    /// Namespace scope, concurrency, timeouts and backoff.
    pub config: ControllerConfig,
    /// Reconcile, apply and status-write counters (shared with `/metrics`).
    pub metrics: Arc<Metrics>,
    /// Failures in a row, per app, for backoff.
    failures: Mutex<HashMap<ObjectRef<WatchedApp>, u32>>,
}

/// Why a reconcile did not finish: its reason, its metric label, and
/// whether it waits for a change or is retried with backoff.
pub type Error = crate::failure::ReconcileError;

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
            Ok(Action::await_change())
        }
    } else {
        // Adding the finalizer changes the app; the watch brings it back.
        cleanup::ensure_finalizer(&app, ctx).await?;
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
    } = setup;
    let apps: Api<WatchedApp> = match &config.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let child_config = watcher::Config::default().labels(&children::managed_selector());

    let mut stores = Vec::new();
    let mut controller = Controller::new(apps, watcher::Config::default());
    for kind in policy.kinds().iter() {
        let resource = kind.resource();
        let api: Api<DynamicObject> = match &config.namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let writer = reflector::store::Writer::new(resource.clone());
        stores.push((resource.clone(), writer.as_reader()));
        let stream = watcher(api, child_config.clone())
            .default_backoff()
            .reflect(writer)
            .touched_objects();
        controller = controller.owns_stream_with(stream, resource);
    }

    // Re-reconcile exactly the apps whose plugin changed.
    let app_store = controller.store();
    let mut events = registry.subscribe();
    let (trigger, triggered) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let plugin = match events.recv().await {
                Ok(RegistryEvent::Activated { id, .. } | RegistryEvent::Removed { id, .. }) => {
                    id.name
                }
                Ok(RegistryEvent::Rejected { .. }) => continue,
                // Missed events: the plugins that changed are unknown, so every app is looked at.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    for app in app_store.state() {
                        let _ = trigger.send(ObjectRef::from_obj(&*app));
                    }
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            for app in apps_using(&app_store.state(), &plugin) {
                if trigger.send(app).is_err() {
                    return;
                }
            }
        }
    });
    let triggered = futures::stream::unfold(triggered, |mut receiver| async move {
        receiver.recv().await.map(|app| (app, receiver))
    });

    let context = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        registry,
        policy,
        children: ChildStores::new(stores),
        config: config.clone(),
        metrics,
        failures: Mutex::new(HashMap::new()),
    });
    // Health hooks (crate::health): ready once every watch has had its first list.
    let (children_listed, apps_listed) = (context.children.clone(), controller.store());
    let listed = Arc::clone(&health);
    tokio::spawn(async move {
        children_listed.wait_until_ready(Duration::MAX).await;
        if apps_listed.wait_until_ready().await.is_ok() {
            listed.watches_listed();
        }
    });

    controller
        .reconcile_on(triggered)
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
