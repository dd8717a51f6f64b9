//! Shared harness of the integration tests: an emulator per test, or the real cluster named
//! by `EMULATOR_CONFORMANCE_KUBECONFIG`, with a fresh namespace per test; and the fixtures and
//! checks several suites use.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::{Value, json};

/// Skips the rest of a test unless it has an emulator of its own: one it starts with its own
/// settings, whose server-wide state (knobs, faults, pauses, history) it may change.
macro_rules! emulator_only {
    ($c:expr) => {
        if $c.emu.is_none() {
            eprintln!("skipped: needs an emulator of its own");
            return;
        }
    };
}
pub(crate) use emulator_only;

/// Skips the rest of a test where no workloads run: pods that must start, become ready and
/// finish need the emulator's simulated ones, or a real cluster whose nodes run containers
/// (declared with `EMULATOR_CONFORMANCE_WORKLOADS=1`).
macro_rules! needs_workloads {
    ($c:expr) => {
        if !$c.workloads {
            eprintln!(
                "skipped: needs the emulator's simulated workloads (or \
                 EMULATOR_CONFORMANCE_WORKLOADS=1 for a cluster whose nodes run containers)"
            );
            return;
        }
    };
}
pub(crate) use needs_workloads;

/// Skips the rest of a test where the emulator's control API does not answer.
macro_rules! needs_control_api {
    ($c:expr) => {
        if !$c.control_api {
            eprintln!("skipped: needs the emulator's control API");
            return;
        }
    };
}
pub(crate) use needs_control_api;

/// One test's view of the cluster.
pub struct Cluster {
    /// The emulator, unless a real cluster is used.
    pub emu: Option<emulator::Emulator>,
    /// A kube-rs client.
    pub client: Client,
    /// The kubeconfig to give kubectl.
    pub kubeconfig: PathBuf,
    /// A namespace of this test's own.
    pub ns: String,
    /// ConfigMaps the cluster itself puts into every namespace (`kube-root-ca.crt`), present
    /// before the test starts.
    pub base_configmaps: Vec<String>,
    /// Whether the emulator's control API answers: an emulator of the test's own, or an
    /// emulator behind `EMULATOR_CONFORMANCE_KUBECONFIG` (shared with other tests: rules a
    /// test adds there are scoped to its namespace).
    pub control_api: bool,
    /// Whether pods run: the emulator's simulated kubelet, or a real cluster declared to run
    /// containers (`EMULATOR_CONFORMANCE_WORKLOADS=1`).
    pub workloads: bool,
    /// kubectl's discovery cache, private to the test and removed with it.
    cache: tempfile::TempDir,
    /// Cluster-scoped objects the test made (`resource`, `name`), deleted when it ends,
    /// however it ends.
    cleanup: std::sync::Mutex<Vec<(String, String)>>,
}

/// The simulated controllers of an emulator that serves the control API at `client`'s
/// server; `None` for a real cluster.
async fn emulator_controllers(client: &Client) -> Option<Vec<String>> {
    let req = http::Request::builder()
        .uri("/emulator/v1/cluster")
        .header("Accept", "application/json")
        .body(kube::client::Body::empty())
        .ok()?;
    let resp = client.send(req).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&http_body_util_collect(resp.into_body()).await).ok()?;
    Some(
        v["controllers"]
            .as_array()?
            .iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect(),
    )
}

fn suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{}", t % 0xfffff, N.fetch_add(1, Ordering::Relaxed))
}

async fn client_for(path: &PathBuf) -> Client {
    let kc = Kubeconfig::read_from(path).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(cfg).expect("client")
}

/// Short delays for the simulated workloads, so tests run quickly.
pub fn fast(b: emulator::Builder) -> emulator::Builder {
    b.pod_start_delay(Duration::from_millis(30))
        .job_duration(Duration::from_millis(100))
        .job_backoff(Duration::from_millis(50))
        .hpa_sync_period(Duration::from_millis(100))
}

/// Whether the suite runs against a real cluster.
pub fn real_cluster() -> Option<PathBuf> {
    std::env::var_os("EMULATOR_CONFORMANCE_KUBECONFIG").map(PathBuf::from)
}

impl Cluster {
    /// An emulator (or the real cluster) with a fresh namespace.
    pub async fn new() -> Cluster {
        Self::with(emulator::Emulator::builder()).await
    }

    /// Like [`Cluster::new`] with a customised emulator. The emulator runs in cluster mode
    /// (every simulated controller on, as a real cluster has them) with short delays, unless
    /// the builder switches controllers off.
    pub async fn with(b: emulator::Builder) -> Cluster {
        let (emu, kubeconfig) = match real_cluster() {
            Some(p) => (None, p),
            None => {
                let e = fast(b.cluster(true)).start().expect("emulator starts");
                let p = e.kubeconfig_path().to_path_buf();
                (Some(e), p)
            }
        };
        let client = client_for(&kubeconfig).await;
        let controllers: Option<Vec<String>> = match &emu {
            Some(e) => Some(
                e.control()
                    .controllers()
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect(),
            ),
            None => emulator_controllers(&client).await,
        };
        // A real cluster runs them all.
        let runs = |c: emulator::Controller| {
            controllers
                .as_ref()
                .is_none_or(|list| list.iter().any(|n| n == c.name()))
        };
        let control_api = controllers.is_some();
        let workloads = match &controllers {
            Some(_) => runs(emulator::Controller::Kubelet),
            None => std::env::var_os("EMULATOR_CONFORMANCE_WORKLOADS").is_some_and(|v| v == "1"),
        };
        let ns = format!("conf-{}", suffix());
        let nsapi: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(client.clone());
        let obj =
            serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).expect("ns");
        nsapi
            .create(&Default::default(), &obj)
            .await
            .expect("create test namespace");
        // As Kubernetes' own e2e framework does, wait for what the cluster adds to a new
        // namespace, so the test sees a settled namespace.
        let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client.clone(), &ns);
        let sas: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
            kube::Api::namespaced(client.clone(), &ns);
        if runs(emulator::Controller::RootCaPublisher) {
            eventually("kube-root-ca.crt in the test namespace", || {
                let cms = cms.clone();
                async move { cms.get_opt("kube-root-ca.crt").await.ok().flatten() }
            })
            .await;
        }
        if runs(emulator::Controller::ServiceAccount) {
            eventually("the default service account in the test namespace", || {
                let sas = sas.clone();
                async move { sas.get_opt("default").await.ok().flatten() }
            })
            .await;
        }
        let base_configmaps = cms
            .list(&Default::default())
            .await
            .expect("list configmaps")
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        Cluster {
            emu,
            client,
            kubeconfig,
            ns,
            base_configmaps,
            control_api,
            workloads,
            cache: tempfile::tempdir().expect("kubectl cache dir"),
            cleanup: Default::default(),
        }
    }

    /// A name no other test (of this run or another, on a shared cluster) uses, derived from
    /// the test's namespace: for CRD short names, groups and other cluster-wide names.
    pub fn unique(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.ns.replace('-', ""))
    }

    /// Deletes the cluster-scoped `resource/name` (a CRD, another namespace) when the test
    /// ends, even if it fails.
    pub fn delete_at_end(&self, resource: &str, name: &str) {
        self.cleanup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((resource.to_string(), name.to_string()));
    }

    /// The API of a namespaced kind in this test's namespace.
    pub fn api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        kube::Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates a ConfigMap `name` holding `k: v` in this test's namespace.
    pub async fn create_cm(&self, name: &str) -> ConfigMap {
        self.api::<ConfigMap>()
            .create(&PostParams::default(), &cm(name, json!({"k": "v"})))
            .await
            .expect("create")
    }

    /// A watch of this test's ConfigMaps from `after`'s resourceVersion.
    pub async fn watch_cms(
        &self,
        after: &ConfigMap,
        timeout: u32,
    ) -> BoxStream<'static, kube::Result<WatchEvent<ConfigMap>>> {
        let rv = after
            .metadata
            .resource_version
            .as_deref()
            .expect("resourceVersion");
        self.api::<ConfigMap>()
            .watch(&WatchParams::default().timeout(timeout), rv)
            .await
            .expect("watch")
            .boxed()
    }

    /// A kube-runtime reflector of this test's ConfigMaps: its store, and the task that feeds
    /// it (stopped when dropped).
    pub fn cm_reflector(&self) -> (Store<ConfigMap>, Reflecting) {
        let (reader, writer) = reflector::store();
        let stream = reflector(writer, watcher(self.api(), Default::default()))
            .applied_objects()
            .boxed();
        let task = tokio::spawn(async move { stream.for_each(|_| async {}).await });
        (reader, Reflecting(task))
    }

    /// Waits until a reflector's store holds `n` ConfigMaps besides the cluster's own.
    pub async fn reflected(&self, store: &Store<ConfigMap>, n: usize, what: &str) {
        let want = n + self.base_configmaps.len();
        eventually(what, || {
            let have = store.state().len();
            async move { (have == want).then_some(()) }
        })
        .await;
    }

    /// The emulator, for tests that need an emulator-only facility (skip them first with
    /// `emulator_only!`).
    pub fn emu(&self) -> &emulator::Emulator {
        self.emu.as_ref().expect("emulator_only! checked first")
    }

    /// `names` plus the ConfigMaps the cluster put into the namespace, sorted as lists are.
    pub fn with_base(&self, names: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        v.extend(self.base_configmaps.iter().cloned());
        v.sort();
        v
    }

    /// A raw request; answers (status code, JSON body or Null).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let (code, _, v) = self
            .raw_with_headers(method, path, content_type, body)
            .await;
        (code, v)
    }

    /// A raw request; answers (status code, headers, JSON body or Null).
    pub async fn raw_with_headers(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, http::HeaderMap, Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("Content-Type", content_type)
            .header("Accept", "application/json")
            .body(kube::client::Body::from(body))
            .expect("request");
        let resp = self.client.send(req).await.expect("response");
        let code = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = http_body_util_collect(resp.into_body()).await;
        (
            code,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A request to the emulator's control API (`/emulator/v1/<path>`) with a JSON body.
    pub async fn control(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).expect("json")
        };
        self.raw(
            method,
            &format!("/emulator/v1/{path}"),
            "application/json",
            bytes,
        )
        .await
    }

    /// Runs kubectl against this cluster; answers (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        self.kubectl_stdin(args, None)
    }

    /// Runs kubectl with standard input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use std::io::Write;
        let mut cmd = std::process::Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.env("KUBECACHEDIR", self.cache.path());
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        if let Some(input) = stdin
            && let Some(mut s) = child.stdin.take()
        {
            s.write_all(input.as_bytes()).expect("stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("kubectl output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

async fn http_body_util_collect(body: kube::client::Body) -> Vec<u8> {
    use http_body_util::BodyExt;
    body.collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.emu.is_some() {
            // Everything goes with the test's own emulator.
            return;
        }
        // Best effort: a shared cluster keeps nothing a test made.
        let mut objects =
            std::mem::take(&mut *self.cleanup.lock().unwrap_or_else(|p| p.into_inner()));
        objects.push(("namespace".into(), self.ns.clone()));
        for (resource, name) in objects {
            let _ = std::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args([
                    "delete",
                    &resource,
                    &name,
                    "--ignore-not-found",
                    "--wait=false",
                ])
                .env("KUBECACHEDIR", self.cache.path())
                .output();
        }
    }
}

/// The task feeding a reflector; it stops when this is dropped.
pub struct Reflecting(tokio::task::JoinHandle<()>);

impl Drop for Reflecting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Polls `f` until it returns `Some`, for up to 30 s (never a timing assertion).
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A ConfigMap named `name` with `data` (null for none).
pub fn cm(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).expect("configmap")
}

/// The code, reason and message of an API error (any other error fails the test).
pub fn api_err(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Whether a watch stream ends (bookmarks aside) within 30 s; an error counts as an end.
pub async fn stream_ends<K>(
    s: &mut (impl Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) -> bool {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match s.try_next().await {
                Ok(Some(WatchEvent::Bookmark(_))) => continue,
                other => return other.map(|o| o.is_none()).unwrap_or(true),
            }
        }
    })
    .await
    .expect("the stream ends")
}
