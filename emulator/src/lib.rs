//! An embedded, in-memory Kubernetes API server for tests and local runs, optionally with
//! simulated controllers that make it behave as a cluster (Deployments become available,
//! Jobs complete, pods run), and a control API for faults and workload outcomes.
//!
//! ```no_run
//! // A bare API server:
//! let emu = emulator::Emulator::start().expect("emulator");
//! println!("kubectl --kubeconfig {} get ns", emu.kubeconfig_path().display());
//! // A living cluster whose migration Jobs fail:
//! let cluster = emulator::Emulator::cluster().expect("emulator");
//! cluster
//!     .control()
//!     .add_outcome(emulator::OutcomeRule::fail("relation exists").name("migrate-*"))
//!     .expect("rule");
//! ```

#![warn(missing_docs)]

pub mod api;
mod base64;
pub mod builtin_schema;
pub mod cluster;
pub mod control;
pub mod convert;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod fields;
pub mod http;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod schema;
pub mod selector;
mod server;
pub mod store;
pub mod table;
pub mod tls;
pub mod validation;
mod value_path;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use api::{Api, Options};
pub use cluster::Controller;
pub use control::{
    Control, FaultRule, Knobs, MetricRule, Outcome, OutcomeRule, PauseMode, WatchExpiry,
};
pub use error::{ApiError, Error};
pub use http::{HookOutcome, RequestHook, RequestInfo};

/// Configures an [`Emulator`] before it starts.
#[derive(Debug, Clone)]
pub struct Builder {
    port: u16,
    token: Option<String>,
    kubeconfig: Option<PathBuf>,
    options: Options,
    bookmark_interval: Duration,
    worker_threads: usize,
    tls: bool,
    cluster: bool,
    overrides: Vec<(Controller, bool)>,
    knobs: Knobs,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            port: 0,
            token: None,
            kubeconfig: None,
            options: Options::default(),
            bookmark_interval: Duration::from_secs(30),
            worker_threads: 2,
            tls: false,
            cluster: false,
            overrides: Vec::new(),
            knobs: Knobs::default(),
        }
    }
}

impl Builder {
    /// Port on 127.0.0.1 (0 picks a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Require this bearer token on every request but health and version checks.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Write the kubeconfig here (kept on drop) instead of a temporary file (removed on drop).
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    /// Events of history kept for watches and consistent lists before 410 Gone.
    pub fn history_window(mut self, events: usize) -> Self {
        self.options.history_window = events;
        self
    }

    /// Whether deletion honours ownerReferences and namespace deletion empties the namespace
    /// (the garbage collector controller; on by default, also without [`Builder::cluster`]).
    pub fn garbage_collection(self, on: bool) -> Self {
        self.controller(Controller::GarbageCollector, on)
    }

    /// Cluster mode: every simulated controller runs (Deployments become available, Jobs
    /// complete, ...), and the `kubernetes` Service exists. Without it only the garbage
    /// collector runs: a bare API server.
    pub fn cluster(mut self, on: bool) -> Self {
        self.cluster = on;
        self
    }

    /// Switches one controller on or off, whatever the mode.
    pub fn controller(mut self, c: Controller, on: bool) -> Self {
        self.overrides.retain(|(x, _)| *x != c);
        self.overrides.push((c, on));
        self
    }

    /// Timings and behaviour of the simulated workloads (changeable later through
    /// [`Control::update_knobs`]).
    pub fn knobs(mut self, knobs: Knobs) -> Self {
        self.knobs = knobs;
        self
    }

    /// From a pod being scheduled to its containers running and ready (default 500 ms).
    pub fn pod_start_delay(mut self, d: Duration) -> Self {
        self.knobs.pod_start_delay = d;
        self
    }

    /// How long a pod of a Job runs before it ends (default 1 s).
    pub fn job_duration(mut self, d: Duration) -> Self {
        self.knobs.job_duration = d;
        self
    }

    /// The first delay before a Job replaces a failed pod (default 1 s; doubles per failure).
    pub fn job_backoff(mut self, d: Duration) -> Self {
        self.knobs.job_backoff = d;
        self
    }

    /// How often autoscalers are reconciled (default 1 s).
    pub fn hpa_sync_period(mut self, d: Duration) -> Self {
        self.knobs.hpa_sync_period = d.max(Duration::from_millis(1));
        self
    }

    /// Adds a marker: images whose name contains it never become ready.
    pub fn never_ready_marker(mut self, marker: impl Into<String>) -> Self {
        let m = marker.into();
        if !m.is_empty() && !self.knobs.never_ready_markers.contains(&m) {
            self.knobs.never_ready_markers.push(m);
        }
        self
    }

    /// The controllers this configuration runs.
    pub fn controllers(&self) -> Vec<Controller> {
        let base: Vec<Controller> = if self.cluster {
            Controller::ALL.to_vec()
        } else {
            vec![Controller::GarbageCollector]
        };
        Controller::ALL
            .into_iter()
            .filter(|c| {
                self.overrides
                    .iter()
                    .find(|(x, _)| x == c)
                    .map(|(_, on)| *on)
                    .unwrap_or(base.contains(c))
            })
            .collect()
    }

    /// How often watches that allow bookmarks receive one.
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every.max(Duration::from_millis(1));
        self
    }

    /// Serve https with a fresh CA (in the kubeconfig) instead of plain http. kubectl sends
    /// bearer tokens only over https.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Threads serving HTTP (default 2).
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = n.max(1);
        self
    }

    /// Binds 127.0.0.1, writes the kubeconfig and serves on a thread of its own, so the
    /// emulator works whatever runtime (if any) the caller uses.
    pub fn start(self) -> Result<Emulator, Error> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let controllers = self.controllers();
        let mut options = self.options.clone();
        options.garbage_collection = controllers.contains(&Controller::GarbageCollector);
        let api = Arc::new(Api::new(options));
        let compacting = api.clone();
        let control = Control::new(
            self.knobs.clone(),
            controllers.clone(),
            Box::new(move || compacting.compact()),
        );
        let state = Arc::new(http::ServerState {
            api: api.clone(),
            token: self.token.clone(),
            addr: addr.to_string(),
            bookmark_interval: self.bookmark_interval,
            hook: RwLock::new(None),
            control: control.clone(),
        });
        let tls = if self.tls {
            Some(tls::generate()?)
        } else {
            None
        };
        let root_ca = match (&tls, controllers.contains(&Controller::RootCaPublisher)) {
            (Some(t), _) => t.ca_pem.clone(),
            (None, true) => tls::ca_pem()?,
            (None, false) => String::new(),
        };
        if self.cluster {
            bootstrap(&api, controllers.contains(&Controller::PersistentVolume))?;
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let kubeconfig = write_kubeconfig(
            self.kubeconfig.as_deref(),
            &format!("{scheme}://{addr}"),
            self.token.as_deref(),
            tls.as_ref().map(|t| t.ca_pem.as_str()),
        )?;
        let tls_config = tls.map(|t| t.config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.worker_threads)
            .thread_name("kube-emulator")
            .enable_all()
            .build()?;
        control.set_runtime(runtime.handle().clone());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .fallback(http::handle)
            .with_state(state.clone());
        let recorder = Arc::new(cluster::Recorder::new(api.clone()));
        let (cluster_api, cluster_control) = (api.clone(), control.clone());
        let serve_control = control.clone();
        let thread = std::thread::Builder::new()
            .name(format!("kube-emulator-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "emulator listener failed");
                            return;
                        }
                    };
                    cluster::start(cluster_api, cluster_control, recorder, root_ca);
                    let serve = server::serve(listener, addr, app, tls_config, serve_control);
                    tokio::select! {
                        _ = serve => {}
                        _ = stopped => {}
                    }
                });
                // Open watches and connections end with the runtime.
                runtime.shutdown_background();
            })
            .map_err(|e| Error::Start(e.to_string()))?;
        tracing::debug!(%addr, ?controllers, "emulator started");
        Ok(Emulator {
            scheme,
            addr,
            kubeconfig,
            api,
            state,
            control,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

/// What a cluster has from its first moment: the `kubernetes` Service of the API server in
/// `default` (the API server's own controller creates it), and a default StorageClass when
/// volumes are provisioned.
fn bootstrap(api: &Api, storage: bool) -> Result<(), Error> {
    if storage {
        let rt = api.resolve("storage.k8s.io", "v1", "storageclasses")?;
        let opts = api::WriteOptions {
            field_manager: Some("kube-apiserver".into()),
            ..Default::default()
        };
        api.create(&rt, "", cluster::storage::default_class(), &opts)?;
    }
    let rt = api.resolve("", "v1", "services")?;
    let svc = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"], "type": "ClusterIP",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
    });
    let opts = api::WriteOptions {
        field_manager: Some("kube-apiserver".into()),
        ..Default::default()
    };
    api.create(&rt, "default", svc, &opts)?;
    Ok(())
}

enum Kubeconfig {
    Temp(tempfile::TempPath),
    Kept(PathBuf),
}

impl Kubeconfig {
    fn path(&self) -> &Path {
        match self {
            Kubeconfig::Temp(p) => p,
            Kubeconfig::Kept(p) => p,
        }
    }
}

/// The kubeconfig text for a server (JSON string literals are valid YAML scalars).
pub fn kubeconfig_yaml(server: &str, token: Option<&str>, ca_pem: Option<&str>) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let ca = match ca_pem {
        Some(pem) => format!(
            "\n    certificate-authority-data: {}",
            q(&base64::encode(pem.as_bytes()))
        ),
        None => String::new(),
    };
    let user = match token {
        Some(t) => format!("\n    token: {}", q(t)),
        None => " {}".to_string(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n    server: {}{ca}\ncontexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: emulator\n    namespace: default\ncurrent-context: emulator\npreferences: {{}}\nusers:\n- name: emulator\n  user:{user}\n",
        q(server)
    )
}

fn write_kubeconfig(
    path: Option<&Path>,
    server: &str,
    token: Option<&str>,
    ca_pem: Option<&str>,
) -> Result<Kubeconfig, Error> {
    let text = kubeconfig_yaml(server, token, ca_pem);
    match path {
        Some(p) => {
            std::fs::write(p, text)?;
            Ok(Kubeconfig::Kept(p.to_path_buf()))
        }
        None => {
            let mut f = tempfile::Builder::new()
                .prefix("kube-emulator-")
                .suffix(".kubeconfig")
                .tempfile()?;
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            Ok(Kubeconfig::Temp(f.into_temp_path()))
        }
    }
}

/// A running emulator: an API server on 127.0.0.1 with its own kubeconfig; stops on drop.
pub struct Emulator {
    scheme: &'static str,
    addr: SocketAddr,
    kubeconfig: Kubeconfig,
    api: Arc<Api>,
    state: Arc<http::ServerState>,
    control: Arc<Control>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Emulator {
    /// Starts an emulator with default settings on a free port.
    pub fn start() -> Result<Emulator, Error> {
        Builder::default().start()
    }

    /// A builder for non-default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Starts an emulator in cluster mode (every simulated controller on) on a free port.
    pub fn cluster() -> Result<Emulator, Error> {
        Builder::default().cluster(true).start()
    }

    /// The control plane: faults, pauses, workload outcomes, knobs (also served over HTTP
    /// under `/emulator/v1/`).
    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// `http://127.0.0.1:<port>` (or `https://` with TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The kubeconfig file pointing at this emulator.
    pub fn kubeconfig_path(&self) -> &Path {
        self.kubeconfig.path()
    }

    /// The in-process API (what simulated controllers and tests use without HTTP).
    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    /// Installs (or clears) the hook consulted before every resource request.
    pub fn set_request_hook(&self, hook: Option<Arc<dyn RequestHook>>) {
        *self.state.hook.write().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Ends every open watch stream (clients see the connection close and re-watch).
    pub fn cut_watches(&self) {
        self.control.cut_watches();
    }

    /// Forgets history: watches and lists at older resourceVersions get 410 Gone.
    pub fn compact(&self) {
        self.control.compact();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_is_valid_yaml() {
        for token in [None, Some("s3cr:et \"x\"")] {
            let text = kubeconfig_yaml("http://127.0.0.1:1", token, Some("pem"));
            let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
            assert_eq!(v["clusters"][0]["cluster"]["server"], "http://127.0.0.1:1");
            assert_eq!(
                v["users"][0]["user"].get("token").and_then(|t| t.as_str()),
                token
            );
        }
    }

    #[test]
    fn starts_and_stops_and_removes_its_kubeconfig() {
        let emu = Emulator::start().unwrap();
        let path = emu.kubeconfig_path().to_path_buf();
        assert!(path.exists());
        let addr = emu.addr();
        drop(emu);
        assert!(!path.exists());
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}
