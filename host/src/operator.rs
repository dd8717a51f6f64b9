//! The running operator: plugin runtime and registry (built-ins, a
//! directory, ConfigMaps), the PortfolioApp controller, and the ops endpoints
//! (`/metrics`, and `/healthz` and `/readyz` from what each part reports to
//! [`Health`]). `run` and `dev` start it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use kube::runtime::events::{Recorder, Reporter};

use crate::controller::metrics::Metrics;
use crate::controller::{self, ControllerConfig, Setup};
use crate::health::{Health, Report};
use crate::leader::{self, LeaderElection, LeaderError};
use crate::plugin::Runtime;
use crate::policy::OutputPolicy;
use crate::registry::{self, Registry};

/// Everything the operator is told at start.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    /// The controller's settings.
    pub controller: ControllerConfig,
    /// What plugins may create.
    pub policy: OutputPolicy,
    /// Watch this directory for plugins too.
    pub plugin_dir: Option<PathBuf>,
    /// Watch plugin ConfigMaps in this namespace; none to not watch any.
    pub plugin_namespace: Option<String>,
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    pub ops_addr: Option<SocketAddr>,
    /// The name events are reported under (the operator's pod, in a cluster).
    pub instance: String,
    /// Act only while holding this Lease; none to act at once, alone.
    pub leader_election: Option<LeaderElection>,
    /// The migration controller's settings.
    pub migrations: crate::controller::migration::MigrationConfig,
}

/// The operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A built-in plugin is broken: the binary was built wrong.
    #[error(transparent)]
    Builtin(#[from] registry::BuiltinError),
    /// The plugin directory cannot be watched.
    #[error(transparent)]
    Directory(#[from] registry::DirectoryError),
    /// The ops endpoint cannot listen.
    #[error("cannot serve the ops endpoints on {addr}: {source}")]
    Ops {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system refused.
        #[source]
        source: std::io::Error,
    },
    /// A worker stopped while starting.
    #[error("{0}")]
    Worker(String),
    /// Leader election could not start, or leadership was lost: the process
    /// must end so that it cannot act beside the new leader.
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// Run the operator against `client` until `shutdown` completes.
pub async fn run(
    options: OperatorOptions,
    client: kube::Client,
    runtime: Runtime,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), StartError> {
    let health = Arc::new(Health::new());
    run_with_health(options, client, runtime, metrics, health, shutdown).await
}

/// [`run`], reporting its state to `health` (for probes served elsewhere too).
pub async fn run_with_health(
    options: OperatorOptions,
    client: kube::Client,
    runtime: Runtime,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), StartError> {
    // Probes answer from the start (saying what is not ready yet), and while
    // a standby waits to lead.
    let ops = match options.ops_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Ops { addr, source })?;
            Some(serve_ops(
                listener,
                Arc::clone(&metrics),
                Arc::clone(&health),
            ))
        }
        None => None,
    };
    let crds = health.keep_checking_crds(client.clone(), options.controller.namespaces.clone());
    let result = start(&options, client, runtime, metrics, &health, shutdown).await;
    if let Err(StartError::Leader(error)) = &result {
        health.leadership_lost(error.to_string());
    }
    crds.abort();
    stop_task(ops);
    tracing::info!("operator stopped");
    result
}

/// Load the built-ins, wait to lead if asked to, then lead until `shutdown`.
async fn start(
    options: &OperatorOptions,
    client: kube::Client,
    runtime: Runtime,
    metrics: Arc<Metrics>,
    health: &Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), StartError> {
    let counter = Arc::clone(&metrics);
    let registry = Arc::new(Registry::with_on_reject(move |source, reason| {
        counter.plugin_rejected(source.as_str(), reason.as_str());
    }));
    let loader = runtime.clone();
    let builtins = Arc::clone(&registry);
    tokio::task::spawn_blocking(move || builtins.load_builtins(&loader))
        .await
        .map_err(|e| StartError::Worker(e.to_string()))??;
    health.builtins_loaded(registry.entries().len());

    let mut shutdown = Box::pin(shutdown);
    let leader = match options.leader_election.clone() {
        Some(election) => {
            tokio::select! {
                leader = leader::acquire(election, health) => Some(leader?),
                () = &mut shutdown => {
                    tracing::info!("operator stopped before it led");
                    return Ok(());
                }
            }
        }
        None => {
            health.acting_alone();
            None
        }
    };
    let parts = Parts {
        client,
        runtime,
        registry,
        metrics,
        health: Arc::clone(health),
    };
    let result = lead(options, parts, leader.as_ref(), shutdown).await;
    if let Some(leader) = leader
        && result.is_ok()
    {
        // A standby takes over at once instead of waiting for the lease to expire.
        if let Err(error) = leader.release().await {
            tracing::warn!(error = %error, "cannot release the leadership lease");
        }
    }
    result
}

fn controller_failed(error: tokio::task::JoinError) -> StartError {
    StartError::Worker(format!("the controller stopped: {error}"))
}

fn stop_task(task: Option<tokio::task::JoinHandle<()>>) {
    if let Some(task) = task {
        task.abort();
    }
}

/// What the acting part of the operator works with.
struct Parts {
    client: kube::Client,
    runtime: Runtime,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// Everything that acts on the cluster: plugin sources that write events,
/// and the controller. Ends on shutdown, or with an error when leadership is lost.
async fn lead(
    options: &OperatorOptions,
    parts: Parts,
    leader: Option<&leader::Leader>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), StartError> {
    let Parts {
        client,
        runtime,
        registry,
        metrics,
        health,
    } = parts;
    // Kept alive for as long as the operator runs.
    let _directory = match &options.plugin_dir {
        Some(dir) => Some(
            registry::watch_directory(dir.clone(), runtime.clone(), Arc::clone(&registry)).await?,
        ),
        None => None,
    };
    let reporter = Reporter {
        controller: "portfolio-operator".into(),
        instance: Some(options.instance.clone()),
    };
    let configmaps = options.plugin_namespace.clone().map(|namespace| {
        // Reconciles wait for its first list (at most this long): an app
        // whose plugin is in a ConfigMap would otherwise be reported
        // without it right after a start.
        registry.expect_source(std::time::Duration::from_secs(30));
        tokio::spawn(registry::configmaps::watch(
            client.clone(),
            namespace,
            runtime.clone(),
            Arc::clone(&registry),
            Recorder::new(client.clone(), reporter.clone()),
        ))
    });
    tracing::info!(
        namespaces = %controller::scope::describe(&options.controller.namespaces),
        plugins = registry.entries().len(),
        "operator started"
    );
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let (app_feed, shared_apps) = controller::share_apps();
    let migrations = controller::migration::run(
        controller::migration::MigrationSetup {
            client: client.clone(),
            registry: Arc::clone(&registry),
            policy: options.policy.clone(),
            config: options.migrations.clone(),
            metrics: Arc::clone(&metrics),
            reporter: reporter.clone(),
            apps: Some(shared_apps),
        },
        shutdown.clone(),
    );
    let apps = controller::run(
        Setup {
            client,
            registry,
            policy: options.policy.clone(),
            config: options.controller.clone(),
            metrics,
            reporter,
            health: Arc::clone(&health),
            apps: Some(app_feed),
        },
        shutdown,
    );
    // Both controllers end together: on shutdown, or when one stops.
    let controller = async move {
        tokio::select! {
            () = apps => {}
            () = migrations => {}
        }
    };
    // The controller runs on a task of its own, so that the lease's renewals
    // and the reconciles never share one task's wake-ups.
    health.controller_started();
    let mut controller = tokio::spawn(controller);
    let result = match leader {
        Some(leader) => {
            tokio::select! {
                ended = &mut controller => ended.map_err(controller_failed),
                error = leader.lost() => {
                    // Cancel in-flight reconciles at once, as a process exit
                    // would: the new leader may act now.
                    controller.abort();
                    Err(StartError::Leader(error))
                }
            }
        }
        None => controller.await.map_err(controller_failed),
    };
    health.controller_stopped();
    stop_task(configmaps);
    result
}

/// Serve `/metrics`, `/healthz` and `/readyz` on `listener` until the task
/// is aborted. A failing probe answers 503; every answer says, check by
/// check, what was found.
pub fn serve_ops(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> tokio::task::JoinHandle<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    }
    let ready = Arc::clone(&health);
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let report = health.liveness();
                async move { answer(&report) }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let report = ready.readiness();
                async move { answer(&report) }
            }),
        );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(error = %error, "the ops endpoints stopped");
        }
    })
}

fn answer(report: &Report) -> (StatusCode, String) {
    let status = if report.passed() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, report.to_text())
}
