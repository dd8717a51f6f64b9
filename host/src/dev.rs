//! `dev`: the whole product on one machine — the embedded emulator as a
//! cluster, the CRDs, the operator, optionally some manifests, and a live view
//! of each app's conditions as they change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use portfolio_api::PortfolioApp;
use serde_json::Value;

use crate::controller::metrics::Metrics;
use crate::controller::{ControllerConfig, conditions};
use crate::operator::{OperatorOptions, StartError};
use crate::plugin::Runtime;
use crate::policy::OutputPolicy;
use crate::render::{Document, Location, RenderError, read_manifests};

/// The field manager of what `dev` itself applies (CRDs, namespaces, manifests).
pub const FIELD_MANAGER: &str = "portfolio-dev";

/// How long the CRDs may take to be served.
const CRD_TIMEOUT: Duration = Duration::from_secs(30);

/// What `dev` is told.
#[derive(Clone, Debug, Default)]
pub struct DevOptions {
    /// Port of the emulated API server on 127.0.0.1 (0 picks a free one).
    pub port: u16,
    /// Write the kubeconfig here and keep it; otherwise a temporary file, removed on exit.
    pub kubeconfig: Option<PathBuf>,
    /// Manifests to apply once the operator runs (files or directories).
    pub apply: Vec<PathBuf>,
    /// Watch this directory for plugins too.
    pub plugin_dir: Option<PathBuf>,
    /// Namespace of the plugin ConfigMaps (created).
    pub plugin_namespace: String,
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    pub ops_addr: Option<std::net::SocketAddr>,
    /// What plugins may create.
    pub policy: OutputPolicy,
    /// The controller's settings (`namespace` is ignored: dev watches all).
    pub controller: ControllerConfig,
}

/// `dev` could not start or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// A manifest cannot be read.
    #[error(transparent)]
    Manifest(#[from] RenderError),
    /// A manifest is not an object Kubernetes can take.
    #[error("{location}: {message}")]
    InvalidManifest {
        /// Where.
        location: Location,
        /// What is wrong.
        message: String,
    },
    /// The emulator cannot start.
    #[error("cannot start the emulated cluster: {0}")]
    Emulator(#[from] emulator::Error),
    /// The emulator's kubeconfig does not give a client.
    #[error("cannot connect to the emulated cluster: {0}")]
    Client(String),
    /// The CRDs cannot be installed.
    #[error(transparent)]
    Crds(#[from] crate::crds::InstallError),
    /// The API server refused something `dev` applies.
    #[error("{what}: {source}")]
    Apply {
        /// What was applied, and from where.
        what: String,
        /// Why it was refused.
        #[source]
        source: kube::Error,
    },
    /// The operator could not start.
    #[error(transparent)]
    Operator(#[from] StartError),
}

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
    let client = client(&kubeconfig).await?;
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
            namespace: None,
            ..options.controller
        },
        policy: options.policy,
        plugin_dir: options.plugin_dir,
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
    if manifests
        .iter()
        .any(|m| m.gvk.group == portfolio_api::GROUP && m.gvk.kind == portfolio_api::MIGRATION_KIND)
    {
        print(
            &mut out,
            "note: DatabaseMigrations are stored, but this version does not run them yet \
             (`portfolio-operator render -f FILE` shows the Jobs they would run)\n",
        );
    }
    if !manifests.is_empty() {
        print(&mut out, "\n");
    }

    let apps: Api<PortfolioApp> = Api::all(client.clone());
    let mut events = watcher(apps, watcher::Config::default()).boxed();
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

async fn client(kubeconfig: &std::path::Path) -> Result<kube::Client, DevError> {
    let error = |e: &dyn std::fmt::Display| DevError::Client(e.to_string());
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| error(&e))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| error(&e))?;
    kube::Client::try_from(config).map_err(|e| error(&e))
}

/// Create `name` unless this run already has.
async fn ensure_namespace(
    client: &kube::Client,
    name: &str,
    done: &mut BTreeSet<String>,
) -> Result<(), DevError> {
    if done.contains(name) {
        return Ok(());
    }
    let api: Api<Namespace> = Api::all(client.clone());
    let namespace =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Apply(&namespace),
    )
    .await
    .map_err(|source| DevError::Apply {
        what: format!("namespace {name}"),
        source,
    })?;
    done.insert(name.to_owned());
    Ok(())
}

/// A manifest object, checked enough to apply.
#[derive(Debug)]
struct Manifest {
    location: Location,
    gvk: GroupVersionKind,
    name: String,
    namespace: Option<String>,
    object: Value,
}

impl Manifest {
    fn parse(document: Document) -> Result<Manifest, DevError> {
        let invalid = |message: String| DevError::InvalidManifest {
            location: document.location.clone(),
            message,
        };
        let mut object = document.value.clone();
        let Some(map) = object.as_object_mut() else {
            return Err(invalid(
                "expected a Kubernetes object (a mapping)".to_owned(),
            ));
        };
        let text = |field: &str| map.get(field).and_then(Value::as_str).map(str::to_owned);
        let api_version = text("apiVersion")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid("apiVersion: missing".to_owned()))?;
        let kind = text("kind")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid("kind: missing".to_owned()))?;
        let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) else {
            return Err(invalid("metadata: missing".to_owned()));
        };
        let name = metadata
            .get("name")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid("metadata.name: missing".to_owned()))?
            .to_owned();
        let namespace = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        // The examples carry a uid so that `render` is deterministic; a cluster
        // assigns its own, and these fields would make an apply fail.
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
        ] {
            metadata.remove(field);
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        Ok(Manifest {
            gvk: GroupVersionKind::gvk(group, version, &kind),
            location: document.location,
            name,
            namespace,
            object,
        })
    }

    /// Apply it (creating its namespace if need be); the line to print.
    async fn apply(
        &self,
        client: &kube::Client,
        namespaces: &mut BTreeSet<String>,
    ) -> Result<String, DevError> {
        let what = format!("{} {}", self.gvk.kind, self.name);
        let (resource, capabilities) = kube::discovery::pinned_kind(client, &self.gvk)
            .await
            .map_err(|source| DevError::Apply {
                what: format!(
                    "{}: {what}: the cluster does not serve {}/{} {}",
                    self.location, self.gvk.group, self.gvk.version, self.gvk.kind
                ),
                source,
            })?;
        let (api, shown): (Api<DynamicObject>, String) = match capabilities.scope {
            Scope::Namespaced => {
                let namespace = self.namespace.as_deref().unwrap_or("default");
                ensure_namespace(client, namespace, namespaces).await?;
                (
                    Api::namespaced_with(client.clone(), namespace, &resource),
                    format!("{namespace}/{}", self.name),
                )
            }
            Scope::Cluster => (Api::all_with(client.clone(), &resource), self.name.clone()),
        };
        api.patch(
            &self.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&self.object),
        )
        .await
        .map_err(|source| DevError::Apply {
            what: format!("{}: {what}", self.location),
            source,
        })?;
        Ok(format!(
            "applied {} {shown} ({})",
            self.gvk.kind,
            self.location.path.display()
        ))
    }
}

/// The live view: one line per app whenever what it shows changes.
#[derive(Debug)]
pub struct View {
    started: Instant,
    shown: BTreeMap<String, String>,
}

impl View {
    /// A view whose timestamps count from `started`.
    pub fn new(started: Instant) -> Self {
        View {
            started,
            shown: BTreeMap::new(),
        }
    }

    /// The line to print for `app`, if it differs from the last one shown.
    pub fn changed(&mut self, app: &PortfolioApp) -> Option<String> {
        let key = key(app);
        let summary = summary(app);
        if self.shown.get(&key) == Some(&summary) {
            return None;
        }
        self.shown.insert(key.clone(), summary.clone());
        Some(self.line(&key, &summary))
    }

    /// The line to print for a deleted `app`.
    pub fn deleted(&mut self, app: &PortfolioApp) -> Option<String> {
        let key = key(app);
        self.shown.remove(&key)?;
        Some(self.line(&key, "deleted"))
    }

    fn line(&self, key: &str, summary: &str) -> String {
        format!(
            "{:>7.1}s  {key:<30} {summary}\n",
            self.started.elapsed().as_secs_f64()
        )
    }
}

fn key(app: &PortfolioApp) -> String {
    format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any())
}

/// What a person wants to see: the three conditions, the pods, and the
/// message of the condition that matters most right now.
fn summary(app: &PortfolioApp) -> String {
    if app.meta().deletion_timestamp.is_some() {
        let message = app
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == conditions::READY))
            .map(|c| c.message.clone())
            .unwrap_or_default();
        return format!("deleting: {message}");
    }
    let Some(status) = app.status.as_ref().filter(|s| !s.conditions.is_empty()) else {
        return "waiting for the operator".to_owned();
    };
    let condition = |type_: &str| status.conditions.iter().find(|c| c.type_ == type_);
    let state = |type_: &str| condition(type_).map_or("?", |c| c.status.as_str());
    let mut text = format!(
        "Ready={:<5} Progressing={:<5} Degraded={:<5}",
        state(conditions::READY),
        state(conditions::PROGRESSING),
        state(conditions::DEGRADED),
    );
    if let Some(replicas) = status.replicas {
        let _ = write!(
            text,
            " pods {}/{replicas}",
            status.ready_replicas.unwrap_or(0)
        );
    }
    let stale = status.observed_generation != app.meta().generation;
    let focus = [conditions::DEGRADED, conditions::PROGRESSING]
        .into_iter()
        .filter_map(condition)
        .find(|c| c.status == "True")
        .or_else(|| condition(conditions::READY));
    if let Some(c) = focus {
        let _ = write!(text, "  {}: {}", c.reason, c.message);
    }
    if stale {
        text.push_str("  (spec changed; not reconciled yet)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(status: Value) -> PortfolioApp {
        serde_json::from_value(json!({
            "apiVersion": "portfolio.dev/v1alpha1",
            "kind": "PortfolioApp",
            "metadata": {"name": "shop", "namespace": "demo", "generation": 2},
            "spec": {"image": "example/shop:1"},
            "status": status,
        }))
        .expect("app")
    }

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn the_view_prints_each_change_once() {
        let mut view = View::new(Instant::now());
        let waiting = app(json!({}));
        let line = view.changed(&waiting).expect("first sight");
        assert!(line.contains("demo/shop"), "{line}");
        assert!(line.contains("waiting for the operator"), "{line}");
        assert_eq!(view.changed(&waiting), None, "nothing changed");

        let rolling = app(json!({
            "observedGeneration": 2, "replicas": 2, "readyReplicas": 1,
            "conditions": [
                condition("Ready", "False", "RollingOut", "1 of 2 pods available"),
                condition("Progressing", "True", "RollingOut", "Deployment shop is rolling out"),
                condition("Degraded", "False", "AsExpected", ""),
            ],
        }));
        let line = view.changed(&rolling).expect("a change");
        assert!(line.contains("Ready=False"), "{line}");
        assert!(line.contains("pods 1/2"), "{line}");
        assert!(
            line.contains("RollingOut: Deployment shop is rolling out"),
            "the progressing message: {line}"
        );
        assert!(!line.contains("not reconciled"), "{line}");

        let broken = app(json!({
            "observedGeneration": 1,
            "conditions": [
                condition("Ready", "False", "PluginFailed", "x"),
                condition("Progressing", "True", "RollingOut", "y"),
                condition("Degraded", "True", "PluginFailed", "plugin g@1.0.0 trapped"),
            ],
        }));
        let line = view.changed(&broken).expect("a change");
        assert!(
            line.contains("PluginFailed: plugin g@1.0.0 trapped"),
            "Degraded comes first: {line}"
        );
        assert!(line.contains("not reconciled yet"), "{line}");

        let line = view.deleted(&broken).expect("deleted");
        assert!(line.contains("deleted"), "{line}");
        assert_eq!(view.deleted(&broken), None, "said once");
    }

    fn document(value: Value) -> Document {
        Document {
            location: Location {
                path: PathBuf::from("x.yaml"),
                document: Some(1),
                object: None,
            },
            value,
        }
    }

    #[test]
    fn manifests_lose_what_a_cluster_assigns() {
        let manifest = Manifest::parse(document(json!({
            "apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioApp",
            "metadata": {"name": "shop", "namespace": "demo", "uid": "u", "resourceVersion": "3",
                         "labels": {"a": "b"}},
            "spec": {"image": "x"},
        })))
        .expect("valid");
        assert_eq!(manifest.gvk.group, "portfolio.dev");
        assert_eq!(manifest.gvk.version, "v1alpha1");
        assert_eq!(manifest.namespace.as_deref(), Some("demo"));
        assert_eq!(
            manifest.object["metadata"],
            json!({"name": "shop", "namespace": "demo", "labels": {"a": "b"}})
        );
        let core = Manifest::parse(document(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}
        })))
        .expect("valid");
        assert_eq!(core.gvk.group, "");
        assert_eq!(core.namespace, None);
    }

    #[test]
    fn malformed_manifests_say_what_is_missing_and_where() {
        for (value, expected) in [
            (json!("text"), "expected a Kubernetes object"),
            (
                json!({"kind": "ConfigMap", "metadata": {"name": "c"}}),
                "apiVersion: missing",
            ),
            (
                json!({"apiVersion": "v1", "metadata": {"name": "c"}}),
                "kind: missing",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap"}),
                "metadata: missing",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ""}}),
                "metadata.name: missing",
            ),
        ] {
            let error = Manifest::parse(document(value))
                .expect_err("invalid")
                .to_string();
            assert!(error.contains(expected), "{error}");
            assert!(error.starts_with("x.yaml, document 1"), "{error}");
        }
    }
}
