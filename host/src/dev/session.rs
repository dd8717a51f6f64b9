//! One `dev` session: start the emulator, install the CRDs, run the
//! operator, apply the manifests, and show the live view until stopped.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher;
use portfolio_api::PortfolioApp;

use super::manifests::{Manifest, ensure_namespace};
use super::view::View;
use super::{DevError, DevOptions, FIELD_MANAGER};
use crate::controller::ControllerConfig;
use crate::controller::metrics::Metrics;
use crate::operator::{OperatorOptions, StartError};
use crate::plugin::Runtime;
use crate::render::read_manifests;

/// How long the CRDs may take to be served.
const CRD_TIMEOUT: Duration = Duration::from_secs(30);

/// Run `dev` until `shutdown` completes, writing what happens to `out`.
pub async fn run(
    options: DevOptions,
    runtime: Runtime,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    mut out: impl std::io::Write + Send,
) -> Result<(), DevError> {
    // Bad manifests fail before anything starts.
    let documents = read_manifests(&options.apply)?;
    let manifests = documents
        .into_iter()
        .map(Manifest::parse)
        .collect::<Result<Vec<_>, _>>()?;

    let mut builder = emulator::Emulator::builder()
        .cluster(true)
        .port(options.port);
    if let Some(path) = &options.kubeconfig {
        builder = builder.kubeconfig(path);
    }
    let emulator = builder.start()?;
    let kubeconfig = emulator.kubeconfig_path().to_owned();
    let client = crate::client::connect(Some(&kubeconfig)).await?;
    crate::crds::install(&client, FIELD_MANAGER, CRD_TIMEOUT).await?;
    let mut namespaces = BTreeSet::new();
    ensure_namespace(&client, &options.plugin_namespace, &mut namespaces).await?;

    let mut banner = String::new();
    let _ = write!(
        banner,
        "portfolio-operator dev: an emulated cluster at {} (in memory; it goes away when this stops)\n\n\
         From another shell:\n  \
         kubectl --kubeconfig {path} get papp,deploy,svc,cm -A\n  \
         export KUBECONFIG={path}   # then plain kubectl\n\n\
         Plugins: ConfigMaps labelled portfolio.dev/plugin=true in namespace {plugins}.\n\
         Ctrl-C stops the operator and the cluster.\n",
        emulator.url(),
        path = kubeconfig.display(),
        plugins = options.plugin_namespace,
    );
    print(&mut out, &banner);

    let operator_options = OperatorOptions {
        controller: ControllerConfig {
            namespaces: Vec::new(),
            ..options.controller
        },
        policy: options.policy,
        plugin_dir: options.plugin_dir,
        migrations: crate::controller::migration::MigrationConfig {
            lock_namespace: options.plugin_namespace.clone(),
            ..Default::default()
        },
        plugin_namespace: Some(options.plugin_namespace),
        ops_addr: options.ops_addr,
        instance: FIELD_MANAGER.to_owned(),
        leader_election: None,
    };
    let (stop_operator, operator_stopped) = tokio::sync::oneshot::channel::<()>();
    let operator_client = client.clone();
    let mut operator = tokio::spawn(async move {
        crate::operator::run(
            operator_options,
            operator_client,
            runtime,
            Arc::new(Metrics::new()),
            async move {
                let _ = operator_stopped.await;
            },
        )
        .await
    });

    for manifest in &manifests {
        let line = manifest.apply(&client, &mut namespaces).await?;
        print(&mut out, &format!("{line}\n"));
    }
    if !manifests.is_empty() {
        print(&mut out, "\n");
    }

    let apps: Api<PortfolioApp> = Api::all(client.clone());
    let mut events = watcher(apps, watcher::Config::default()).boxed();
    let migrations: Api<portfolio_api::DatabaseMigration> = Api::all(client.clone());
    let mut migration_events = watcher(migrations, watcher::Config::default()).boxed();
    let mut view = View::new(Instant::now());
    let mut shutdown = std::pin::pin!(shutdown);
    let result = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            finished = &mut operator => {
                break match finished {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(DevError::Operator(error)),
                    Err(error) => Err(DevError::Operator(StartError::Worker(error.to_string()))),
                };
            }
            event = events.next() => match event {
                Some(Ok(watcher::Event::Apply(app) | watcher::Event::InitApply(app))) => {
                    if let Some(line) = view.changed(&app) {
                        print(&mut out, &line);
                    }
                }
                Some(Ok(watcher::Event::Delete(app))) => {
                    if let Some(line) = view.deleted(&app) {
                        print(&mut out, &line);
                    }
                }
                Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
                // The watcher retries by itself; a blip is not worth a line.
                Some(Err(error)) => tracing::debug!(error = %error, "the live view's watch failed"),
                None => break Ok(()),
            },
            event = migration_events.next() => match event {
                Some(Ok(watcher::Event::Apply(m) | watcher::Event::InitApply(m))) => {
                    if let Some(line) = view.migration_changed(&m) {
                        print(&mut out, &line);
                    }
                }
                Some(Ok(watcher::Event::Delete(m))) => {
                    if let Some(line) = view.migration_deleted(&m) {
                        print(&mut out, &line);
                    }
                }
                Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
                Some(Err(error)) => tracing::debug!(error = %error, "the live view's watch of migrations failed"),
                None => break Ok(()),
            },
        }
    };
    let _ = stop_operator.send(());
    if !operator.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(10), operator).await;
    }
    drop(emulator);
    result
}

/// Write and flush; a closed terminal is no reason to stop the operator.
fn print(out: &mut impl std::io::Write, text: &str) {
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
