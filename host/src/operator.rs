//! The running operator: plugin runtime and registry (built-ins, a
//! directory, ConfigMaps), the PortfolioApp controller, and the ops endpoints
//! (`/metrics`, `/healthz`, `/readyz`). `run` and `dev` start it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use kube::runtime::events::{Recorder, Reporter};

use crate::controller::metrics::Metrics;
use crate::controller::{self, ControllerConfig, Setup};
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
        /// Where.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A worker stopped while starting.
    #[error("{0}")]
    Worker(String),
}

/// Run the operator against `client` until `shutdown` completes.
pub async fn run(
    options: OperatorOptions,
    client: kube::Client,
    runtime: Runtime,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), StartError> {
    let registry = Arc::new(Registry::new());
    let loader = runtime.clone();
    let builtins = Arc::clone(&registry);
    tokio::task::spawn_blocking(move || builtins.load_builtins(&loader))
        .await
        .map_err(|e| StartError::Worker(e.to_string()))??;

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
        let rejected = Arc::clone(&metrics);
        tokio::spawn(registry::configmaps::watch(
            client.clone(),
            namespace,
            runtime.clone(),
            Arc::clone(&registry),
            Recorder::new(client.clone(), reporter.clone()),
            Arc::new(move || rejected.plugin_rejected("configmap")),
        ))
    });
    let ops = match options.ops_addr {
        Some(addr) => Some(serve_ops(addr, Arc::clone(&metrics)).await?),
        None => None,
    };
    tracing::info!(
        namespace = options.controller.namespace.as_deref().unwrap_or("(all)"),
        plugins = registry.entries().len(),
        "operator started"
    );
    controller::run(
        Setup {
            client,
            registry,
            policy: options.policy,
            config: options.controller,
            metrics,
            reporter,
        },
        shutdown,
    )
    .await;
    if let Some(task) = configmaps {
        task.abort();
    }
    if let Some(task) = ops {
        task.abort();
    }
    tracing::info!("operator stopped");
    Ok(())
}

/// Serve the ops endpoints on `addr`.
async fn serve_ops(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<tokio::task::JoinHandle<()>, StartError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Ops { addr, source })?;
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
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }));
    Ok(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(error = %error, "the ops endpoints stopped");
        }
    }))
}
