//! Benchmark: the operator at scale, on the emulator, as a child process.
//!
//! The emulator (cluster mode: Deployments get pods that start at once and
//! become available) runs in this process; the operator is the real binary
//! (`portfolio-operator run`, built by cargo for this bench), so the CPU time
//! (`utime + stime` of `/proc/<pid>/stat`) and the peak RSS (`VmHWM` of
//! `/proc/<pid>/status`) are the operator's alone. It reaches the emulator
//! through a kubeconfig of its own that impersonates the operator's service
//! account (`as:`), so the emulator's request hook counts exactly its requests
//! (the bench's client impersonates nobody; the emulator's simulated
//! controllers make no HTTP requests).
//!
//! An app is *converged* when its status has `observedGeneration` equal to its
//! `metadata.generation` and `Ready=True` (its Deployment available). Writes
//! are the operator's create, update, patch and delete requests, counted once
//! every app has converged and the operator has stopped writing (no write for
//! 1 s). Each scenario gets a fresh emulator and operator; a first operator
//! fills the on-disk plugin cache, so that the scenarios' operators load the
//! plugins compiled (as a restarted pod with a cache volume does) and the
//! compiler's memory is not in their peak RSS. Prints one line per scenario,
//! plus, after each `scale` line, the resident memory once ready and at the
//! end, and where the writes went:
//!
//! - `scale apps=N converge_s= apps_per_s= p50_ms= p99_ms= writes_per_app= cpu_ms_per_app= rss_mib=`:
//!   N apps created by 16 concurrent clients (p50/p99 from the create request
//!   to converged; CPU from the first create to the end of the count;
//!   `rss_mib` is the peak, `VmHWM`);
//! - `reload apps=1000 affected=… all_reconciled_ms= untouched_ok=`: half the
//!   apps use a generator published as a ConfigMap (the built-in generator's
//!   component, renamed); a new version is published, and the bench waits
//!   until every affected app's `status.plugin.id` names it. `untouched_ok`
//!   says whether the operator made no request naming an unaffected app or
//!   one of its children in the meantime. A second `reload` line says where
//!   the time went: the operator's CPU (the new version's compile included),
//!   this process's (the emulator and the clients), and the writes, until the
//!   last affected app was reconciled, and the reconciles per affected app
//!   until the writes were quiet;
//! - `restart apps=1000 ready_ms= writes=`: the operator of the reload
//!   scenario stopped (SIGTERM) and started again against its converged apps:
//!   time from spawn to `/readyz` answering 200, and its writes in the 3 s
//!   after;
//! - `latency rate=20/s apps= p50_ms= p99_ms=`: apps created one by one at a
//!   fixed rate well below the throughput;
//! - `machine yardstick_ms=`: the time one thread takes for a fixed amount of
//!   JSON work, so that figures of different machines can be compared.
//!
//! `SCALE_APPS` sets the N of the `scale` lines (default `1000,10000`);
//! `SCALE_RELOAD_APPS` the apps of `reload`/`restart` (default 1000);
//! `SCALE_LATENCY_APPS` the apps of `latency` (default 200, i.e. 10 s);
//! `SCALE_ONLY=scale|reload|latency` runs one scenario (`reload` includes
//! `restart`); `SCALE_OPERATOR=<path>` runs another build of the operator
//! (to compare two builds in alternating runs on a noisy machine). The operator's log goes to a temporary directory whose path is
//! printed (removed at the end unless `SCALE_KEEP_LOGS=1`; its tail is
//! printed when the operator does not become ready). A scenario gives up when no app converges for a minute,
//! naming some that did not and what their status says.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use portfolio_api::PortfolioApp;
use serde_json::{Value, json};

/// The emulator (in this process, standing in for the API server) spent about 40 % of its
/// instructions in glibc's `malloc` and `free` (cachegrind, server-side applies); it shares
/// the 2 cores with the operator, so its speed showed in `reload`. Only this process uses
/// mimalloc: the operator binary keeps the system allocator (its CPU and RSS are what the
/// bench measures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The operator binary, built by cargo for this bench (benches get the
/// package's binaries built, in the same profile, and their paths).
const OPERATOR_BIN: &str = env!("CARGO_BIN_EXE_portfolio-operator");

/// Concurrent clients creating apps in the `scale` scenario.
const CLIENTS: usize = 16;

/// Apps per second in the `latency` scenario.
const LATENCY_RATE: u32 = 20;

/// Longest wait for anything (a scenario of 10 000 apps included).
const PATIENCE: Duration = Duration::from_secs(1800);

/// How long no app may become converged before the bench gives up.
const STALL: Duration = Duration::from_secs(60);

/// What runs the workloads the operator creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workloads {
    /// Nothing: an API server alone, as in the measurement on a
    /// real kube-apiserver without controllers. An app converges when its
    /// children are applied and its status says so (the Deployment waits
    /// for a controller that never comes).
    None,
    /// The emulator's simulated controllers and kubelet: Deployments get
    /// pods that start at once, and an app converges when it is Ready. Its
    /// status then changes as the rollout goes (waiting → rolling out →
    /// Ready), each change a status write and the last an Event.
    Simulated,
}

impl Workloads {
    fn name(self) -> &'static str {
        match self {
            Workloads::None => "none",
            Workloads::Simulated => "simulated",
        }
    }

    /// Whether `app` has converged under these workloads.
    fn converged(self) -> Arc<dyn Fn(&PortfolioApp) -> bool + Send + Sync> {
        match self {
            Workloads::None => Arc::new(applied),
            Workloads::Simulated => Arc::new(converged),
        }
    }
}

/// The namespace of every scenario (each has an emulator of its own).
const NAMESPACE: &str = "bench";

/// Name of the ConfigMap plugin of the `reload` scenario: as long as the
/// built-in `deployment-generator`, so the component can be renamed in place.
const TEAM_PLUGIN: &str = "bench-team-generator";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        // Dropping `run` on a signal drops its `Operator`s, which kill the
        // child processes: none outlives an interrupted bench.
        tokio::select! {
            () = run() => {}
            () = interrupted() => eprintln!("interrupted; the operator is stopped"),
        }
    });
}

/// Completes on SIGINT or SIGTERM.
async fn interrupted() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

async fn run() {
    let only = std::env::var("SCALE_ONLY").ok();
    let wanted = |case: &str| only.as_deref().is_none_or(|only| only == case);
    let sizes = list_env("SCALE_APPS", &[1000, 10000]);
    let workloads: Vec<Workloads> = std::env::var("SCALE_WORKLOADS")
        .unwrap_or_else(|_| "none,simulated".to_owned())
        .split(',')
        .map(|w| match w.trim() {
            "none" => Workloads::None,
            "simulated" => Workloads::Simulated,
            other => panic!("SCALE_WORKLOADS: {other:?} is neither none nor simulated"),
        })
        .collect();
    let reload_apps = list_env("SCALE_RELOAD_APPS", &[1000])[0];
    let latency_apps = list_env("SCALE_LATENCY_APPS", &[200])[0];
    // Compiled plugins are kept here across the scenarios' operators, as
    // in a pod with a cache volume: only the first start compiles.
    let mut work = tempfile::tempdir().expect("temporary directory");
    // SCALE_KEEP_LOGS=1 keeps the operators' logs (and the plugin cache).
    if std::env::var_os("SCALE_KEEP_LOGS").is_some_and(|v| v == "1") {
        work.disable_cleanup(true);
    }
    eprintln!(
        "operator: {OPERATOR_BIN}; its logs: {}/operator-*.log",
        work.path().display()
    );
    let started = Instant::now();
    let yardstick = yardstick();
    warm_plugin_cache(work.path()).await;
    // The small scenarios first: each has a fresh emulator and operator,
    // but the emulators all live in this process, whose heap after the
    // 10 000-app scenarios made the restart's lists (served by the
    // emulator) slower by half (ready_ms 723 - 898 at the end, 387 - 481
    // alone).
    let mut others = Vec::new();
    if wanted("reload") {
        others.extend(reload_and_restart(work.path(), reload_apps).await);
    }
    if wanted("latency") {
        others.push(latency(work.path(), latency_apps).await);
    }
    let mut lines = vec![yardstick];
    if wanted("scale") {
        for &n in &sizes {
            for &mode in &workloads {
                lines.extend(scale(work.path(), n, mode).await);
            }
        }
    }
    lines.extend(others);
    eprintln!("bench took {:.0} s", started.elapsed().as_secs_f64());
    // Last, together, so that they are easy to find after the logs.
    for line in lines {
        println!("{line}");
    }
}

/// How fast this machine is at work like the operator's, to compare figures
/// taken on different machines: one thread checking and writing a 2 KiB JSON
/// object (a Deployment's size) 2 000 times, the best of five rounds, before
/// anything else runs. It allocates nothing per round (the text is scanned
/// into `IgnoredAny`, written into one buffer), so the allocator does not
/// move it. CPU figures scale with it, roughly: these sessions' machines
/// differed by 2 - 3 x.
fn yardstick() -> String {
    let mut object = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
    object["metadata"] =
        json!({"name": "yardstick", "namespace": NAMESPACE, "labels": {"app": "yardstick"}});
    object["spec"] = serde_json::to_value(app("yardstick", None).spec).expect("the app's spec");
    object["managedFields"] = json!(
        (0..12)
            .map(|i| json!({"manager": format!("manager-{i}"), "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:metadata": {"f:labels": {}}}}}}))
            .collect::<Vec<_>>()
    );
    let text = serde_json::to_string(&object).expect("serialize");
    let mut written = Vec::with_capacity(2 * text.len());
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..2000 {
                let scanned: serde::de::IgnoredAny =
                    serde_json::from_str(std::hint::black_box(&text)).expect("parse");
                std::hint::black_box(scanned);
                written.clear();
                serde_json::to_writer(&mut written, &object).expect("serialize");
                std::hint::black_box(&written);
            }
            start.elapsed()
        })
        .min()
        .unwrap_or_default();
    format!(
        "machine yardstick_ms={:.1} object_bytes={} (lower is faster)",
        best.as_secs_f64() * 1000.0,
        text.len()
    )
}

/// A comma-separated list of numbers from `var`, else `default`.
fn list_env(var: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(var) {
        Ok(text) => text
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{var}={text}: not a list of numbers"))
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

/// Start an operator once, so that the plugin cache holds every plugin
/// compiled: the scenarios then measure an operator that loads them from
/// disk, as a restarted pod with a cache volume does, and the compiler's
/// memory does not count in their peak RSS.
async fn warm_plugin_cache(work: &Path) {
    let cluster = Cluster::start(work, Workloads::None).await;
    cluster.publish_team_plugin("0.1.0").await;
    let mut operator = cluster.spawn_operator(work, "warm-up");
    // A first start (plugins compiled, not loaded from the cache) has been
    // seen never to become ready: "the watches of PortfolioApps and their
    // children have not listed yet", in an empty namespace, once in three
    // runs. The cache is filled by then, and that is all this start is for.
    if let Err(error) = operator.wait_ready(Duration::from_secs(20)).await {
        eprintln!("warning: the warm-up operator: {error}");
    }
    operator.stop();
}

/// `scale`: N apps created by [`CLIENTS`] concurrent clients.
async fn scale(work: &Path, n: usize, workloads: Workloads) -> Vec<String> {
    let mode = workloads.name();
    let cluster = Cluster::start(work, workloads).await;
    let operator = cluster
        .start_operator(work, &format!("scale-{n}-{mode}"))
        .await;
    let rss_ready = operator.rss_mib("VmRSS");
    let reconciles_before = operator.reconciles().await;
    let tracker = Tracker::watch(cluster.apps(), workloads.converged());
    cluster.recorder.reset();
    let cpu_before = operator.cpu();
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (cluster, tracker) = (&cluster, &tracker);
            async move {
                let name = format!("app-{i:05}");
                tracker.created(&name);
                cluster.create_app(&name, None).await;
            }
        })
        .buffer_unordered(CLIENTS)
        .collect::<()>()
        .await;
    tracker.wait_for(n, "converged").await;
    let converge = started.elapsed();
    cluster.recorder.wait_quiet().await;
    let cpu = operator.cpu() - cpu_before;
    let rss = operator.rss_mib("VmHWM");
    let rss_end = operator.rss_mib("VmRSS");
    let (p50, p99) = tracker.latencies();
    let writes = cluster.recorder.writes();
    let reads = cluster.recorder.reads();
    let total: usize = writes.values().sum();
    let reconciles = operator.reconciles().await;
    let (reconciles, unchanged) = (
        reconciles.0 - reconciles_before.0,
        reconciles.1 - reconciles_before.1,
    );
    drop(operator);
    vec![
        format!(
            "scale apps={n} converge_s={:.2} apps_per_s={:.0} p50_ms={p50:.0} p99_ms={p99:.0} \
             writes_per_app={:.2} cpu_ms_per_app={:.2} rss_mib={rss:.0} workloads={mode}",
            converge.as_secs_f64(),
            n as f64 / converge.as_secs_f64(),
            total as f64 / n as f64,
            cpu.as_secs_f64() * 1000.0 / n as f64,
        ),
        format!(
            "scale apps={n} workloads={mode} rss_ready_mib={rss_ready:.0} rss_end_mib={rss_end:.0} \
             reconciles_per_app={:.2} (unchanged {:.2}) writes_per_app_by_request: {} \
             reads_per_app_by_request: {}",
            reconciles / n as f64,
            unchanged / n as f64,
            per_app(&writes, n),
            per_app(&reads, n)
        ),
    ]
}

/// `reload`, then `restart` against the same converged apps.
async fn reload_and_restart(work: &Path, n: usize) -> Vec<String> {
    let cluster = Cluster::start(work, Workloads::None).await;
    cluster.publish_team_plugin("0.1.0").await;
    let operator = cluster.start_operator(work, "reload").await;
    // Even apps use the ConfigMap plugin (`team-…`), odd ones the built-in
    // (`base-…`): different prefixes, so a request naming an app or one of
    // its children (they are named after the app) tells which half it is.
    let name = |i: usize| {
        if i.is_multiple_of(2) {
            format!("team-{i:05}")
        } else {
            format!("base-{i:05}")
        }
    };
    let tracker = Tracker::watch(cluster.apps(), Workloads::None.converged());
    futures::stream::iter(0..n)
        .map(|i| {
            let (cluster, tracker, name) = (&cluster, &tracker, name(i));
            async move {
                tracker.created(&name);
                let plugin = name.starts_with("team-").then_some(TEAM_PLUGIN);
                cluster.create_app(&name, plugin).await;
            }
        })
        .buffer_unordered(CLIENTS)
        .collect::<()>()
        .await;
    tracker.wait_for(n, "converged").await;
    cluster.recorder.wait_quiet().await;
    drop(tracker);

    // The new version: every affected app is reconciled again when its
    // status names it.
    let affected = n.div_ceil(2);
    let new_id = format!("{TEAM_PLUGIN}@0.2.0");
    let reloaded = {
        let new_id = new_id.clone();
        Arc::new(move |app: &PortfolioApp| {
            app.status
                .as_ref()
                .and_then(|s| s.plugin.as_ref())
                .is_some_and(|p| p.id == new_id)
        })
    };
    let tracker = Tracker::watch(cluster.apps(), reloaded);
    cluster.recorder.reset();
    let reconciles_before = operator.reconciles().await;
    let published = Instant::now();
    let cpu_before = (operator.cpu(), own_cpu());
    cluster.publish_team_plugin("0.2.0").await;
    tracker.wait_for(affected, &format!("on {new_id}")).await;
    let all_reconciled = published.elapsed();
    let (operator_cpu, own) = (operator.cpu() - cpu_before.0, own_cpu() - cpu_before.1);
    let reload_writes: usize = cluster.recorder.writes().values().sum();
    cluster.recorder.wait_quiet().await;
    let reconciles = operator.reconciles().await;
    let (reconciles, unchanged) = (
        reconciles.0 - reconciles_before.0,
        reconciles.1 - reconciles_before.1,
    );
    let touched: Vec<String> = cluster
        .recorder
        .requests()
        .into_iter()
        .filter(|r| r.name.starts_with("base-"))
        .map(|r| format!("{} {} {}", r.verb, r.resource, r.name))
        .collect();
    if !touched.is_empty() {
        eprintln!(
            "reload: {} requests touched unaffected apps, e.g. {:?}",
            touched.len(),
            &touched[..touched.len().min(5)]
        );
    }
    let mut lines = vec![
        format!(
            "reload apps={n} affected={affected} all_reconciled_ms={:.0} untouched_ok={}",
            all_reconciled.as_secs_f64() * 1000.0,
            touched.is_empty()
        ),
        // Where the time went: the operator's CPU (the new version's compile
        // included), and this process's (the emulator and the clients), both
        // until the last affected app was reconciled.
        format!(
            "reload operator_cpu_ms={:.0} emulator_cpu_ms={:.0} writes_until_then={reload_writes} \
             reconciles_per_affected_app={:.2} (unchanged {:.2})",
            operator_cpu.as_secs_f64() * 1000.0,
            own.as_secs_f64() * 1000.0,
            reconciles / affected as f64,
            unchanged / affected as f64,
        ),
    ];
    drop(tracker);

    // Restart: stopped as Kubernetes stops a pod, then started again.
    operator.stop();
    cluster.recorder.reset();
    let operator = cluster.start_operator(work, "restart").await;
    let ready = operator.spawned.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes = cluster.recorder.writes();
    let total: usize = writes.values().sum();
    lines.push(format!(
        "restart apps={n} ready_ms={:.0} writes={total}",
        ready.as_secs_f64() * 1000.0
    ));
    if total > 0 {
        lines.push(format!("restart writes_by_request: {}", counts(&writes)));
    }
    drop(operator);
    lines
}

/// `latency`: apps created one by one at [`LATENCY_RATE`] per second.
async fn latency(work: &Path, n: usize) -> String {
    let cluster = Cluster::start(work, Workloads::None).await;
    let operator = cluster.start_operator(work, "latency").await;
    let tracker = Tracker::watch(cluster.apps(), Workloads::None.converged());
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / LATENCY_RATE);
    let mut creates = Vec::with_capacity(n);
    for i in 0..n {
        ticks.tick().await;
        let (apps, name) = (cluster.apps(), format!("app-{i:05}"));
        tracker.created(&name);
        creates.push(tokio::spawn(async move {
            apps.create(&PostParams::default(), &app(&name, None))
                .await
                .unwrap_or_else(|e| panic!("create {name}: {e}"));
        }));
    }
    for create in creates {
        create.await.expect("create task");
    }
    tracker.wait_for(n, "converged").await;
    let (p50, p99) = tracker.latencies();
    drop(operator);
    format!("latency rate={LATENCY_RATE}/s apps={n} p50_ms={p50:.0} p99_ms={p99:.0}")
}

/// Whether the app's children are applied for its current generation and
/// its status says so (all an API server without controllers gets to).
fn applied(app: &PortfolioApp) -> bool {
    let Some(status) = &app.status else {
        return false;
    };
    status.observed_generation.is_some()
        && status.observed_generation == app.metadata.generation
        && status.resources.len() == 3
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.status == "True")
}

/// Whether the app is converged: its current generation observed, and Ready.
fn converged(app: &PortfolioApp) -> bool {
    let Some(status) = &app.status else {
        return false;
    };
    status.observed_generation.is_some()
        && status.observed_generation == app.metadata.generation
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// A PortfolioApp like `examples/sample-app.yaml`, without migrations or
/// secrets: one replica (so no PodDisruptionBudget), two ports, some config.
fn app(name: &str, plugin: Option<&str>) -> PortfolioApp {
    let mut spec = json!({
        "image": "ghcr.io/acme/shop:1.4.2",
        "replicas": 1,
        "ports": [
            {"name": "http", "containerPort": 8080, "servicePort": 80},
            {"name": "metrics", "containerPort": 9090, "servicePort": 9090},
        ],
        "config": {"LOG_LEVEL": "info", "FEATURE_CHECKOUT": "true"},
    });
    if let Some(plugin) = plugin {
        spec["generator"] = json!({"plugin": plugin});
    }
    serde_json::from_value(json!({
        "apiVersion": "portfolio.dev/v1alpha1",
        "kind": "PortfolioApp",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }))
    .expect("a valid PortfolioApp")
}

/// The emulator, a client of the bench's own, and the recorder of the
/// operator's requests.
struct Cluster {
    _emulator: emulator::Emulator,
    client: kube::Client,
    recorder: Arc<Recorder>,
    /// The kubeconfig the operator uses: the emulator's, impersonating its service account.
    operator_kubeconfig: PathBuf,
}

impl Cluster {
    /// A fresh emulator with the CRDs and the namespace.
    async fn start(work: &Path, workloads: Workloads) -> Self {
        let emulator = emulator::Emulator::builder()
            .cluster(workloads == Workloads::Simulated)
            // Pods start at once: the bench measures the operator, not the rollout.
            .pod_start_delay(Duration::ZERO)
            // Nothing is deleted here, and the emulator's garbage collector
            // rescans every object's owners (quadratic): at 10 000 apps it,
            // not the operator, set the pace.
            .garbage_collection(false)
            .start()
            .expect("start the emulator");
        let client = portfolio_operator::client::connect(Some(emulator.kubeconfig_path()))
            .await
            .expect("a client of the emulator");
        portfolio_operator::crds::install(&client, "bench", Duration::from_secs(60))
            .await
            .expect("install the CRDs");
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create the namespace");
        let user = format!(
            "system:serviceaccount:{NAMESPACE}:{}",
            portfolio_operator::manifests::NAME
        );
        let recorder = Arc::new(Recorder {
            user: user.clone(),
            quiet_since: Mutex::new(Instant::now()),
            seen: Mutex::new(Vec::new()),
        });
        emulator.set_request_hook(Some(recorder.clone()));
        // Same server, same credentials, plus `as:`.
        let mut kubeconfig: Value = serde_saphyr::from_str(
            &std::fs::read_to_string(emulator.kubeconfig_path()).expect("read the kubeconfig"),
        )
        .expect("the emulator's kubeconfig");
        for entry in kubeconfig["users"]
            .as_array_mut()
            .expect("kubeconfig users")
        {
            entry["user"]["as"] = Value::from(user.clone());
        }
        let operator_kubeconfig = work.join(format!("kubeconfig-{}", emulator.addr().port()));
        // JSON is YAML.
        std::fs::write(&operator_kubeconfig, kubeconfig.to_string())
            .expect("write the operator's kubeconfig");
        Cluster {
            _emulator: emulator,
            client,
            recorder,
            operator_kubeconfig,
        }
    }

    fn apps(&self) -> Api<PortfolioApp> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    async fn create_app(&self, name: &str, plugin: Option<&str>) {
        self.apps()
            .create(&PostParams::default(), &app(name, plugin))
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }

    /// Start the operator and wait until it is ready.
    async fn start_operator(&self, work: &Path, label: &str) -> Operator {
        let mut operator = self.spawn_operator(work, label);
        if let Err(error) = operator.wait_ready(Duration::from_secs(60)).await {
            panic!("{error}");
        }
        operator
    }

    /// Start the operator, scoped to the namespace.
    fn spawn_operator(&self, work: &Path, label: &str) -> Operator {
        let port = free_port();
        let log_path = work.join(format!("operator-{label}.log"));
        let log = std::fs::File::create(&log_path).expect("create the operator's log");
        let spawned = Instant::now();
        let binary = std::env::var_os("SCALE_OPERATOR").unwrap_or_else(|| OPERATOR_BIN.into());
        let child = Command::new(binary)
            .arg("run")
            .arg("--kubeconfig")
            .arg(&self.operator_kubeconfig)
            .args(["--namespace", NAMESPACE, "--plugin-namespace", NAMESPACE])
            .args(["--ops-addr", &format!("127.0.0.1:{port}")])
            .arg("--plugin-cache-dir")
            .arg(work.join("plugin-cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {OPERATOR_BIN}: {e}"));
        Operator {
            child,
            port,
            spawned,
            log: log_path,
        }
    }

    /// Publish the renamed built-in generator as version `version`.
    async fn publish_team_plugin(&self, version: &str) {
        let config_map = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": TEAM_PLUGIN, "labels": {"portfolio.dev/plugin": "true"}},
            "data": {"name": TEAM_PLUGIN, "version": version},
            "binaryData": {"plugin.wasm": ByteString(team_component(version))},
        });
        Api::<ConfigMap>::namespaced(self.client.clone(), NAMESPACE)
            .patch(
                TEAM_PLUGIN,
                &PatchParams::apply("bench").force(),
                &Patch::Apply(&config_map),
            )
            .await
            .expect("publish the plugin ConfigMap");
    }
}

/// The built-in generator's component as `bench-team-generator@<version>`.
///
/// `describe()` returns its name and version from string constants that the
/// compiler laid out side by side in the data segment; replacing those bytes
/// with others of the same length changes what the component says of itself
/// (and its digest) and nothing else.
fn team_component(version: &str) -> Vec<u8> {
    let name = portfolio_operator::builtin::DEFAULT_GENERATOR.as_bytes();
    assert_eq!(
        name.len(),
        TEAM_PLUGIN.len(),
        "{TEAM_PLUGIN} must be as long as the built-in's name"
    );
    let mut bytes = portfolio_operator::builtin::BUILTINS
        .iter()
        .find(|b| b.file == "deployment_generator.wasm")
        .expect("the built-in deployment generator")
        .bytes
        .to_vec();
    let at: Vec<usize> = bytes
        .windows(name.len())
        .enumerate()
        .filter(|(_, w)| *w == name)
        .map(|(i, _)| i)
        .collect();
    let [at] = at[..] else {
        panic!(
            "expected the built-in generator's name once in its component, found it {} times: \
             the bench cannot rename it",
            at.len()
        );
    };
    // Its version follows its name.
    let old_version = bytes[at + name.len()..]
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .count();
    assert_eq!(
        old_version,
        version.len(),
        "the built-in's version is not followed by a version as long as {version}"
    );
    bytes[at..at + name.len()].copy_from_slice(TEAM_PLUGIN.as_bytes());
    bytes[at + name.len()..at + name.len() + version.len()].copy_from_slice(version.as_bytes());
    bytes
}

/// A free port on 127.0.0.1 (free when asked; nothing else here binds one).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The operator's process; killed when dropped, whatever path the bench takes.
struct Operator {
    child: Child,
    /// Port of its ops endpoint (`/readyz`).
    port: u16,
    spawned: Instant,
    log: PathBuf,
}

impl Operator {
    /// Poll `/readyz` until it answers 200 (or say why not, after `patience`).
    async fn wait_ready(&mut self, patience: Duration) -> Result<(), String> {
        let deadline = Instant::now() + patience;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the operator exited ({status}) before it was ready; its log ends:\n{}",
                    self.log_tail()
                ));
            }
            let answer = readyz(self.port).await;
            if answer.as_ref().is_some_and(|(code, _)| *code == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the operator was not ready within {patience:?}: /readyz says {answer:?}; \
                     its log ends:\n{}",
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The last lines of its log (the log goes with the temporary directory).
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// CPU time used so far (user + system, every thread).
    fn cpu(&self) -> Duration {
        cpu_of(&format!("/proc/{}/stat", self.child.id()))
    }

    /// A size of `/proc/<pid>/status` in MiB: `VmHWM` (peak resident) or `VmRSS` (resident now).
    fn rss_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/<pid>/status");
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/<pid>/status"));
        kib / 1024.0
    }

    /// Its reconciles so far, whatever their result, and those of them
    /// that found nothing changed (`/metrics`).
    async fn reconciles(&self) -> (f64, f64) {
        let Some((200, text)) = http_get(self.port, "/metrics").await else {
            panic!("the operator's /metrics did not answer");
        };
        let sum = |prefix: &str| -> f64 {
            text.lines()
                .filter(|line| line.starts_with(prefix))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        (
            sum("portfolio_reconciles_total{"),
            sum("portfolio_reconciles_unchanged_total "),
        )
    }

    /// Stop it as Kubernetes stops a pod: SIGTERM, then SIGKILL after 10 s.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("the operator did not stop within 10 s of SIGTERM; killing it");
        // Drop kills it.
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time this process (the emulator and the bench's clients) has used so far.
fn own_cpu() -> Duration {
    cpu_of("/proc/self/stat")
}

/// User + system CPU time (every thread) of the `/proc/<pid>/stat` at `path`.
fn cpu_of(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    // Fields after the command name (which may hold spaces), from field
    // 3 (state): utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap_or_else(|| panic!("{path}: no command name"))
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat`'s times.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            // What every Linux on x86 and arm64 uses.
            .unwrap_or(100)
    })
}

/// The status code `/readyz` answers on `port`, if it answers, and what it says.
async fn readyz(port: u16) -> Option<(u16, String)> {
    http_get(port, "/readyz").await
}

/// The status code and the whole answer of `GET path` on the ops server.
async fn http_get(port: u16, path: &'static str) -> Option<(u16, String)> {
    // Blocking std I/O on a blocking thread: the workspace's tokio has no `net`.
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let code = answer.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, answer))
    })
    .await
    .ok()?
}

/// One request of the operator, as the emulator saw it.
#[derive(Clone, Debug)]
struct Request {
    verb: String,
    /// `group/resource[/subresource]` (`core` for the core group).
    resource: String,
    name: String,
}

/// Records every request the operator makes (those that impersonate its
/// service account).
struct Recorder {
    user: String,
    /// When the operator last wrote.
    quiet_since: Mutex<Instant>,
    seen: Mutex<Vec<Request>>,
}

fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

impl emulator::RequestHook for Recorder {
    fn on_request(&self, info: &emulator::RequestInfo) -> emulator::HookOutcome {
        if info.impersonate_user == self.user {
            let group = if info.group.is_empty() {
                "core"
            } else {
                &info.group
            };
            let mut resource = format!("{group}/{}", info.resource);
            if !info.subresource.is_empty() {
                resource.push('/');
                resource.push_str(&info.subresource);
            }
            if is_write(&info.verb) {
                *lock(&self.quiet_since) = Instant::now();
            }
            lock(&self.seen).push(Request {
                verb: info.verb.clone(),
                resource,
                name: info.name.clone(),
            });
        }
        emulator::HookOutcome::default()
    }
}

impl Recorder {
    fn reset(&self) {
        lock(&self.seen).clear();
        *lock(&self.quiet_since) = Instant::now();
    }

    fn requests(&self) -> Vec<Request> {
        lock(&self.seen).clone()
    }

    /// Writes since the last reset, by `verb resource`.
    fn writes(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in lock(&self.seen).iter().filter(|r| is_write(&r.verb)) {
            *counts
                .entry(format!("{} {}", r.verb, r.resource))
                .or_insert(0) += 1;
        }
        counts
    }

    /// The operator's reads (gets and lists, not watches) by verb and resource.
    fn reads(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in lock(&self.seen)
            .iter()
            .filter(|r| r.verb == "get" || r.verb == "list")
        {
            *counts
                .entry(format!("{} {}", r.verb, r.resource))
                .or_insert(0) += 1;
        }
        counts
    }

    /// Wait until the operator has not written for a second (at most 30 s):
    /// writes that trail convergence (a second status write, say) count too.
    async fn wait_quiet(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while lock(&self.quiet_since).elapsed() < Duration::from_secs(1) {
            if Instant::now() > deadline {
                eprintln!("the operator still writes 30 s after convergence");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn counts(writes: &BTreeMap<String, usize>) -> String {
    writes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn per_app(writes: &BTreeMap<String, usize>, n: usize) -> String {
    writes
        .iter()
        .map(|(k, v)| format!("{k}={:.2}", *v as f64 / n as f64))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An app's status in a line: generations and conditions.
fn summary(app: &PortfolioApp) -> String {
    let Some(status) = &app.status else {
        return "no status".to_owned();
    };
    let conditions: Vec<String> = status
        .conditions
        .iter()
        .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
        .collect();
    format!(
        "generation {:?}, observed {:?}; {}",
        app.metadata.generation,
        status.observed_generation,
        conditions.join("; ")
    )
}

/// Predicate that says when an app has reached the state being waited for.
type Done = Arc<dyn Fn(&PortfolioApp) -> bool + Send + Sync>;

/// When each app was created and when it first reached the awaited state,
/// from a watch of the bench's own (not counted as the operator's).
struct Tracker {
    created: Arc<Mutex<HashMap<String, Instant>>>,
    done: Arc<Mutex<HashMap<String, Instant>>>,
    /// What the latest status of each app not yet done says, for the stall report.
    pending: Arc<Mutex<BTreeMap<String, String>>>,
    watching: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Tracker {
    fn watch(apps: Api<PortfolioApp>, is_done: Done) -> Self {
        let done = Arc::new(Mutex::new(HashMap::new()));
        let watching = Arc::new(AtomicBool::new(false));
        let pending = Arc::new(Mutex::new(BTreeMap::new()));
        let (seen, listed, waiting) = (done.clone(), watching.clone(), pending.clone());
        let task = tokio::spawn(async move {
            let mut events = watcher(apps, watcher::Config::default()).boxed();
            while let Some(event) = events.try_next().await.expect("watch PortfolioApps") {
                let app = match event {
                    watcher::Event::Apply(app) | watcher::Event::InitApply(app) => app,
                    watcher::Event::InitDone => {
                        listed.store(true, Ordering::Release);
                        continue;
                    }
                    _ => continue,
                };
                let done = is_done(&app);
                let summary = summary(&app);
                let Some(name) = app.metadata.name else {
                    continue;
                };
                if done {
                    lock(&waiting).remove(&name);
                    lock(&seen).entry(name).or_insert_with(Instant::now);
                } else if !lock(&seen).contains_key(&name) {
                    lock(&waiting).insert(name, summary);
                }
            }
        });
        Tracker {
            created: Arc::new(Mutex::new(HashMap::new())),
            done,
            pending,
            watching,
            task,
        }
    }

    fn created(&self, name: &str) {
        lock(&self.created).insert(name.to_owned(), Instant::now());
    }

    /// Wait until `n` apps are done; fail after [`PATIENCE`], or when no
    /// app has become done for [`STALL`] (saying where some of the others stand).
    async fn wait_for(&self, n: usize, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        let mut reported = Instant::now();
        let (mut last_count, mut progressed) = (0, Instant::now());
        loop {
            let count = lock(&self.done).len();
            if count >= n && self.watching.load(Ordering::Acquire) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {count} of {n} apps {what} after {PATIENCE:?}"
            );
            if count != last_count {
                (last_count, progressed) = (count, Instant::now());
            }
            if progressed.elapsed() > STALL {
                let pending = lock(&self.pending);
                let examples: Vec<String> = pending
                    .iter()
                    .take(5)
                    .map(|(name, summary)| format!("{name}: {summary}"))
                    .collect();
                panic!(
                    "stalled: {count} of {n} apps {what}, none more for {STALL:?}; {} are not, e.g.\n{}",
                    pending.len(),
                    examples.join("\n")
                );
            }
            if reported.elapsed() > Duration::from_secs(10) {
                eprintln!("  {count} of {n} apps {what}");
                reported = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// p50 and p99 of the time from create to done, in milliseconds.
    fn latencies(&self) -> (f64, f64) {
        let created = lock(&self.created);
        let done = lock(&self.done);
        let mut times: Vec<f64> = created
            .iter()
            .filter_map(|(name, at)| {
                done.get(name)
                    .map(|d| d.saturating_duration_since(*at).as_secs_f64() * 1000.0)
            })
            .collect();
        assert!(!times.is_empty(), "no app was both created and done");
        times.sort_by(f64::total_cmp);
        let percentile = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
        (percentile(0.50), percentile(0.99))
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
