//! Configuring an emulator, and starting it: the API, the control plane, the HTTP server and
//! the simulated controllers on a runtime and thread of their own.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::api::{Api, Options};
use crate::cluster::{self, Controller};
use crate::control::{Control, Knobs};
use crate::error::Error;
use crate::kubeconfig::write_kubeconfig;
use crate::{Emulator, http, server, tls};

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
            cluster::bootstrap(&api, controllers.contains(&Controller::PersistentVolume))?;
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
                            tracing::error!(target: "emulator", error = %e, "emulator listener failed");
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
        tracing::debug!(target: "emulator", %addr, ?controllers, "emulator started");
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
