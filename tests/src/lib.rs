//! The end-to-end harness: a cluster (the emulator in cluster mode, or a real
//! one when `PORTFOLIO_E2E_KUBECONFIG` is set), a namespace of the test's
//! own, and the operator running in-process against it through a kubeconfig,
//! exactly as it runs against a real cluster. The tests that use it are the
//! modules of `tests/e2e/`, one test binary.

pub mod jobs;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::discovery::ApiResource;
use portfolio_api::PortfolioApp;
use portfolio_operator::controller::ControllerConfig;
use portfolio_operator::controller::metrics::Metrics;
use portfolio_operator::controller::migration::MigrationConfig;
use portfolio_operator::leader::LeaderElection;
use portfolio_operator::operator::OperatorOptions;
use portfolio_operator::plugin::{Runtime, RuntimeConfig};
use portfolio_operator::policy::OutputPolicy;
use serde_json::Value;

/// Kubeconfig of a real cluster to run against instead of the emulator.
pub const KUBECONFIG_ENV: &str = "PORTFOLIO_E2E_KUBECONFIG";

/// `off`: the emulator serves the API only, as envtest's kube-apiserver
/// does, and tests run their Jobs themselves ([`jobs`]).
pub const WORKLOADS_ENV: &str = "PORTFOLIO_E2E_WORKLOADS";

/// How long to wait for anything to converge.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A cluster, a namespace, and perhaps a running operator.
pub struct Harness {
    /// The emulator, when no real cluster is given.
    pub emulator: Option<emulator::Emulator>,
    /// A client for the cluster.
    pub client: kube::Client,
    kubeconfig: PathBuf,
    /// The test's own namespace.
    pub namespace: String,
    /// More namespaces the operator watches besides [`Harness::namespace`].
    also_watched: Vec<String>,
    /// Every namespace the test made besides its own (deleted at cleanup).
    others: Vec<String>,
    /// Counters of the running (or last) operator.
    pub metrics: Arc<Metrics>,
    operator: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    /// On the emulator: every request the operator made.
    rbac: Option<Arc<RbacRecorder>>,
    /// Whether the emulator simulates workloads (its Job controller, kubelet, …).
    workloads: bool,
    /// Where nothing runs Jobs: the test runs them.
    job_driver: Option<jobs::JobDriver>,
}

/// The service account the operator acts as on the emulator, as
/// `portfolio-operator manifests` installs it.
fn service_account(namespace: &str) -> String {
    format!(
        "system:serviceaccount:{namespace}:{}",
        portfolio_operator::manifests::NAME
    )
}

/// Records the requests made as the operator's service account. The emulator
/// enforces no RBAC; the harness checks them against the installed rules.
struct RbacRecorder {
    user: String,
    /// The child kinds the running operator manages (and is granted).
    kinds: portfolio_operator::kinds::ChildKinds,
    seen: std::sync::Mutex<Vec<emulator::http::RequestInfo>>,
}

impl emulator::http::RequestHook for RbacRecorder {
    fn on_request(&self, info: &emulator::http::RequestInfo) -> emulator::http::HookOutcome {
        if info.impersonate_user == self.user {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(info.clone());
        }
        emulator::http::HookOutcome::default()
    }
}

impl RbacRecorder {
    /// Requests the rules `manifests` grants would refuse, for an operator
    /// that lives in `namespace` and watches it and `also_watched`.
    fn denied(&self, namespace: &str, also_watched: &[String]) -> Vec<String> {
        use portfolio_operator::manifests::{allows, app_rules, own_namespace_rules};
        let watched = app_rules(&self.kinds);
        let mut own = watched.clone();
        own.extend(own_namespace_rules());
        let mut denied: Vec<String> = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| {
                let rules = if r.namespace == namespace {
                    &own
                } else if also_watched.contains(&r.namespace) {
                    &watched
                } else {
                    return true;
                };
                !allows(rules, &r.verb, &r.group, &r.resource, &r.subresource)
            })
            .map(|r| {
                format!(
                    "{} {}/{}/{} in {:?}",
                    r.verb, r.group, r.resource, r.subresource, r.namespace
                )
            })
            .collect();
        denied.sort();
        denied.dedup();
        denied
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

impl Harness {
    /// A cluster with the CRDs installed and a fresh namespace for `test`.
    pub async fn new(test: &str) -> Self {
        let workloads = std::env::var(WORKLOADS_ENV).map_or(true, |value| value != "off");
        Self::with_workloads(test, workloads).await
    }

    /// A cluster as [`Harness::new`], where on the emulator nothing runs
    /// Deployments or Jobs (`workloads` false), as on an API server alone:
    /// for tests that count what the operator writes, which a rollout's
    /// status updates would add to.
    pub async fn with_workloads(test: &str, workloads: bool) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
        let (emulator, kubeconfig) = match std::env::var_os(KUBECONFIG_ENV) {
            Some(path) => (None, PathBuf::from(path)),
            None => {
                let emulator = emulator::Emulator::builder()
                    .cluster(workloads)
                    .pod_start_delay(Duration::from_millis(50))
                    .job_duration(Duration::from_millis(200))
                    .never_ready_marker("never-ready")
                    .start()
                    .expect("emulator");
                let path = emulator.kubeconfig_path().to_owned();
                (Some(emulator), path)
            }
        };
        let simulated = workloads && emulator.is_some();
        let client = client(&kubeconfig).await;
        install_crds(&client).await;
        let namespace = format!(
            "e2e-{}-{}-{}",
            test.replace('_', "-").chars().take(30).collect::<String>(),
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        create_namespace(&client, &namespace).await;
        Harness {
            emulator,
            client,
            kubeconfig,
            namespace,
            also_watched: Vec::new(),
            others: Vec::new(),
            metrics: Arc::new(Metrics::new()),
            operator: None,
            rbac: None,
            workloads: simulated,
            job_driver: None,
        }
    }

    /// Create another namespace, `<namespace>-<suffix>`, for the test; the
    /// operator watches it too (with the rules of a watched namespace only)
    /// when `watched`. Call it before starting the operator.
    pub async fn another_namespace(&mut self, suffix: &str, watched: bool) -> String {
        let name = format!("{}-{suffix}", self.namespace);
        create_namespace(&self.client, &name).await;
        self.others.push(name.clone());
        if watched {
            self.also_watched.push(name.clone());
        }
        name
    }

    /// Every namespace the operator watches.
    fn watched(&self) -> Vec<String> {
        let mut watched = vec![self.namespace.clone()];
        watched.extend(self.also_watched.iter().cloned());
        watched
    }

    /// Whether Jobs and Deployments run by themselves: on the emulator's
    /// simulated cluster (not with `PORTFOLIO_E2E_WORKLOADS=off`).
    pub fn simulates_workloads(&self) -> bool {
        self.workloads
    }

    /// Pods of Jobs whose name matches `pattern` (`*` for any run of
    /// characters) end after `duration` with exit code 0 (`succeed`) or 1
    /// and `message` as their termination message; the latest rule that
    /// matches wins, and without one they succeed. On the simulated cluster
    /// this is an outcome rule of the emulator; elsewhere the test runs the
    /// Jobs itself ([`jobs::JobDriver`]).
    pub fn job_outcome(&mut self, pattern: &str, succeed: bool, message: &str, duration: Duration) {
        if self.workloads
            && let Some(emulator) = &self.emulator
        {
            let mut rule = if succeed {
                emulator::OutcomeRule::succeed(message)
            } else {
                emulator::OutcomeRule::fail(message)
            };
            rule.duration_ms = Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
            emulator
                .control()
                .add_outcome(rule.name(pattern).namespace(&self.namespace))
                .expect("outcome rule");
            return;
        }
        let client = self.client.clone();
        let namespace = self.namespace.clone();
        self.job_driver
            .get_or_insert_with(|| jobs::JobDriver::start(client, &namespace))
            .add(jobs::JobRule {
                pattern: pattern.to_owned(),
                succeed,
                message: message.to_owned(),
                duration,
            });
    }

    /// The kubeconfig of the cluster, for tools such as `kubectl`.
    pub fn kubeconfig(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// Whether the test runs against the emulator (tests that need its control API skip otherwise).
    pub fn emulated(&self) -> bool {
        self.emulator.is_some()
    }

    /// Start the operator, scoped to the test's namespace (where it also looks for plugin ConfigMaps).
    pub async fn start_operator(&mut self) {
        self.start_operator_with(OutputPolicy::default()).await;
    }

    /// Start the operator with an output policy of the test's choosing.
    pub async fn start_operator_with(&mut self, policy: OutputPolicy) {
        assert!(self.operator.is_none(), "the operator is already running");
        let mut config = config(&self.kubeconfig).await;
        if let Some(emulator) = &self.emulator {
            // The operator acts as its service account, and every request it
            // makes is checked against the RBAC it is installed with.
            let recorder = Arc::clone(self.rbac.get_or_insert_with(|| {
                Arc::new(RbacRecorder {
                    user: service_account(&self.namespace),
                    kinds: policy.kinds().clone(),
                    seen: std::sync::Mutex::new(Vec::new()),
                })
            }));
            emulator.set_request_hook(Some(recorder));
            config.auth_info.impersonate = Some(service_account(&self.namespace));
        }
        let client = kube::Client::try_from(config.clone()).expect("client");
        // As installed: with leader election (one replica here).
        let leader_election = LeaderElection {
            namespace: self.namespace.clone(),
            lease_name: portfolio_operator::manifests::NAME.to_owned(),
            identity: portfolio_operator::leader::default_identity(),
            lease_seconds: 15,
            grace_seconds: 5,
            config,
        };
        let runtime = Runtime::new(RuntimeConfig {
            instance_slots: 8,
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let options = OperatorOptions {
            controller: ControllerConfig {
                namespaces: self.watched(),
                cleanup_timeout: Duration::from_secs(60),
                max_backoff: Duration::from_secs(4),
                ..ControllerConfig::default()
            },
            policy,
            plugin_dir: None,
            plugin_namespace: Some(self.namespace.clone()),
            ops_addr: None,
            instance: format!("e2e-{}", self.namespace),
            leader_election: Some(leader_election),
            migrations: MigrationConfig {
                namespaces: self.watched(),
                lock_namespace: self.namespace.clone(),
                retry_backoff: Duration::from_millis(500),
                max_retry_backoff: Duration::from_secs(2),
                cleanup_timeout: Duration::from_secs(30),
                ..MigrationConfig::default()
            },
        };
        self.metrics = Arc::new(Metrics::new());
        let metrics = Arc::clone(&self.metrics);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(error) =
                portfolio_operator::operator::run(options, client, runtime, metrics, shutdown).await
            {
                panic!("the operator failed: {error}");
            }
        });
        self.operator = Some((stop, task));
    }

    /// Stop the operator and wait until it has; then check that the RBAC
    /// of `portfolio-operator manifests` allows every request it made.
    pub async fn stop_operator(&mut self) {
        if let Some((stop, task)) = self.operator.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(PATIENCE, task).await;
        }
        if let Some(recorder) = &self.rbac {
            assert!(recorder.count() > 0, "no request of the operator was seen");
            let denied = recorder.denied(&self.namespace, &self.also_watched);
            assert!(
                denied.is_empty(),
                "the operator's RBAC (portfolio-operator manifests) does not allow:\n{}",
                denied.join("\n")
            );
        }
    }

    /// On the emulator: the requests the operator made so far, as
    /// `verb group/resource[/subresource]`, counted.
    pub fn operator_requests(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        if let Some(recorder) = &self.rbac {
            for r in recorder
                .seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                let mut key = format!("{} {}/{}", r.verb, r.group, r.resource);
                if !r.subresource.is_empty() {
                    key.push('/');
                    key.push_str(&r.subresource);
                }
                *counts.entry(key).or_insert(0) += 1;
            }
        }
        counts
    }

    /// On the emulator: the namespaces the operator's requests so far were
    /// made in (`""` for requests outside any namespace).
    pub fn operator_request_namespaces(&self) -> std::collections::BTreeSet<String> {
        self.rbac
            .iter()
            .flat_map(|recorder| {
                recorder
                    .seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|r| r.namespace.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// On the emulator: forget the requests recorded so far (the RBAC check
    /// at [`Harness::stop_operator`] then covers only later ones).
    pub fn forget_operator_requests(&self) {
        if let Some(recorder) = &self.rbac {
            recorder
                .seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
    }

    /// Wait until the running operator has ended `n` reconciles well.
    pub async fn await_reconciles_ok(&self, n: u64) {
        let metrics = Arc::clone(&self.metrics);
        self.eventually(&format!("{n} reconciles ended well"), || async {
            let count: u64 = metrics
                .encode()
                .lines()
                .find(|l| l.starts_with("portfolio_reconciles_total{result=\"ok\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            (count >= n).then_some(())
        })
        .await;
    }

    /// The PortfolioApp API of the test's namespace.
    pub fn apps(&self) -> Api<PortfolioApp> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Any namespaced API of the test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Create (or update) an object from YAML in the test's namespace with server-side apply.
    pub async fn apply_yaml(&self, yaml: &str) -> DynamicObject {
        let mut value: Value = serde_saphyr::from_str(yaml).expect("YAML");
        value["metadata"]["namespace"] = Value::from(self.namespace.clone());
        let api_version = value["apiVersion"].as_str().expect("apiVersion").to_owned();
        let kind = value["kind"].as_str().expect("kind").to_owned();
        let name = value["metadata"]["name"].as_str().expect("name").to_owned();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        let gvk = kube::core::GroupVersionKind::gvk(group, version, &kind);
        let (resource, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .expect("discovery");
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
        api.patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&value),
        )
        .await
        .expect("apply")
    }

    /// Poll `check` until it returns `Some`, or fail after [`PATIENCE`] with `what`.
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(found) = check().await {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The app's condition `type_`, as (status, reason, message).
    pub async fn condition(&self, app: &str, type_: &str) -> Option<(String, String, String)> {
        let app = self.apps().get_opt(app).await.ok()??;
        app.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status, c.reason, c.message))
    }

    /// Wait until the app's condition `type_` has `status` (and, if given, `reason`).
    pub async fn await_condition(
        &self,
        app: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) -> String {
        self.eventually(
            &format!("{app} has {type_}={status} {reason:?}"),
            || async {
                let (s, r, message) = self.condition(app, type_).await?;
                (s == status && reason.is_none_or(|reason| reason == r)).then_some(message)
            },
        )
        .await
    }

    /// Delete the test's namespace (on a real cluster; the emulator goes away with the harness).
    pub async fn cleanup(mut self) {
        self.stop_operator().await;
        if self.emulator.is_none() {
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            for namespace in std::iter::once(&self.namespace).chain(&self.others) {
                let _ = namespaces.delete(namespace, &DeleteParams::default()).await;
            }
        }
    }
}

/// Create the namespace `name`.
async fn create_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let object: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("namespace");
    namespaces
        .create(&PostParams::default(), &object)
        .await
        .expect("create namespace");
}

/// A client for the cluster of `kubeconfig`.
pub async fn client(kubeconfig: &std::path::Path) -> kube::Client {
    portfolio_operator::client::connect(Some(kubeconfig))
        .await
        .expect("client")
}

async fn config(kubeconfig: &std::path::Path) -> kube::Config {
    portfolio_operator::client::config(Some(kubeconfig))
        .await
        .expect("config")
}

/// Install (or update) both CRDs and wait until they are served.
pub async fn install_crds(client: &kube::Client) {
    portfolio_operator::crds::install(client, "e2e", PATIENCE)
        .await
        .expect("install the CRDs");
}

/// The API resource of a built-in kind, for dynamic lookups.
pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk(group, version, kind),
        plural,
    )
}
