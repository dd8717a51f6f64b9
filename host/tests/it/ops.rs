//! What operations people see: `/readyz`, `/healthz` and `/metrics` over HTTP
//! from an operator running on the emulator, and `plugin list` against a
//! cluster.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use emulator::control::FaultRule;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};
use portfolio_operator::controller::ControllerConfig;
use portfolio_operator::controller::metrics::Metrics;
use portfolio_operator::health::Health;
use portfolio_operator::leader::LeaderElection;
use portfolio_operator::operator::{self, OperatorOptions, StartError};
use portfolio_operator::policy::OutputPolicy;
use serde_json::json;

/// Longest wait for anything to happen; a bound, not a performance check.
const PATIENCE: Duration = Duration::from_secs(60);
const NAMESPACE: &str = "team";

/// An emulated cluster with the namespace of the tests, and its CRDs if asked.
async fn cluster(crds: bool) -> (emulator::Emulator, kube::Client) {
    let emulator = emulator::Emulator::start().expect("emulator");
    let client = crate::common::client(&emulator).await;
    if crds {
        install_crds(&client).await;
    }
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace");
    (emulator, client)
}

async fn install_crds(client: &kube::Client) {
    portfolio_operator::crds::install(client, "ops-test", Duration::from_secs(30))
        .await
        .expect("CRDs");
}

/// An operator in this process, with its ops endpoints served apart from it
/// so that they still answer after it stopped.
struct Operator {
    ops: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), StartError>>,
    ops_task: tokio::task::JoinHandle<()>,
}

impl Operator {
    /// Start it on `emulator`; with an identity, it runs with leader election.
    async fn start(
        emulator: &emulator::Emulator,
        identity: Option<&str>,
        plugin_dir: Option<PathBuf>,
    ) -> Operator {
        let client = crate::common::client(emulator).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let ops = listener.local_addr().expect("address");
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::new());
        let ops_task = operator::serve_ops(listener, Arc::clone(&metrics), Arc::clone(&health));
        let leader_election = match identity {
            Some(identity) => Some(LeaderElection {
                namespace: NAMESPACE.into(),
                lease_name: "portfolio-operator".into(),
                identity: identity.into(),
                lease_seconds: 3,
                grace_seconds: 2,
                config: portfolio_operator::client::config(Some(emulator.kubeconfig_path()))
                    .await
                    .expect("config"),
            }),
            None => None,
        };
        let options = OperatorOptions {
            controller: ControllerConfig {
                namespaces: vec![NAMESPACE.into()],
                ..ControllerConfig::default()
            },
            policy: OutputPolicy::default(),
            plugin_dir,
            plugin_namespace: Some(NAMESPACE.into()),
            ops_addr: None,
            instance: "ops-test".into(),
            leader_election,
            migrations: Default::default(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(operator::run_with_health(
            options,
            client,
            crate::common::runtime(),
            metrics,
            health,
            async move {
                let _ = stopped.await;
            },
        ));
        Operator {
            ops,
            stop: Some(stop),
            task,
            ops_task,
        }
    }

    /// GET `path` of its ops endpoints: the status code and the body.
    async fn get(&self, path: &str) -> (u16, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let uri: hyper::Uri = format!("http://{}{path}", self.ops).parse().expect("uri");
        let response = client.get(uri).await.expect("GET");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Poll `path` until `wanted` holds for its status and body; the last answer.
    async fn wait_for(&self, path: &str, what: &str, wanted: impl Fn(u16, &str) -> bool) -> String {
        let mut last = (0, String::new());
        let found = tokio::time::timeout(PATIENCE, async {
            loop {
                last = self.get(path).await;
                if wanted(last.0, &last.1) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "{what}: {path} last answered {}:\n{}",
            last.0,
            last.1
        );
        last.1
    }

    /// Ask it to stop and wait until it has.
    async fn stop(&mut self) -> Result<(), StartError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("the operator stops")
            .expect("the operator's task")
    }

    /// Wait until it ended by itself.
    async fn ended(&mut self) -> Result<(), StartError> {
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("the operator ends")
            .expect("the operator's task")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
        self.ops_task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_what_is_missing_and_healthz_fails_once_the_controller_stopped() {
    let (emulator, client) = cluster(false).await;
    let mut operator = Operator::start(&emulator, None, None).await;

    let body = operator
        .wait_for("/readyz", "the missing CRDs are named", |status, body| {
            status == 503 && body.contains("[-]crds failed: PortfolioApps are not served")
        })
        .await;
    assert!(
        body.contains("portfolio-operator crd | kubectl apply -f -"),
        "{body}"
    );
    assert!(body.ends_with("readyz check failed\n"), "{body}");

    install_crds(&client).await;
    let body = operator
        .wait_for("/readyz", "ready once the CRDs are served", |status, _| {
            status == 200
        })
        .await;
    for line in [
        "[+]plugins ok: 3 built-in plugins loaded\n",
        "[+]crds ok: PortfolioApps are served\n",
        "[+]leadership ok: acting alone (no leader election)\n",
        "[+]watches ok: every watch has listed\n",
        "readyz check passed\n",
    ] {
        assert!(body.contains(line), "{line:?} in:\n{body}");
    }
    let (status, body) = operator.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("[+]controller ok: running\n"), "{body}");

    operator.stop().await.expect("a clean stop");
    let (status, body) = operator.get("/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("[-]controller failed: the controller has stopped\n"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_while_a_reconcile_is_stuck() {
    let (emulator, client) = cluster(true).await;
    // An API server that takes a whole minute to answer the status write of
    // one app: its reconcile hangs in flight.
    emulator
        .control()
        .add_fault(
            FaultRule::delay(Duration::from_secs(60))
                .resource("portfolioapps")
                .name("stuck")
                .verb("patch"),
        )
        .expect("fault");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let ops = listener.local_addr().expect("address");
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::with_stuck_after(Duration::from_secs(1)));
    let ops_task = operator::serve_ops(listener, Arc::clone(&metrics), Arc::clone(&health));
    let operator = Operator {
        ops,
        stop: None,
        task: tokio::spawn(operator::run_with_health(
            OperatorOptions {
                controller: ControllerConfig {
                    namespaces: vec![NAMESPACE.into()],
                    ..ControllerConfig::default()
                },
                policy: OutputPolicy::default(),
                plugin_dir: None,
                plugin_namespace: None,
                ops_addr: None,
                instance: "ops-test".into(),
                leader_election: None,
                migrations: Default::default(),
            },
            client.clone(),
            crate::common::runtime(),
            metrics,
            health,
            std::future::pending(),
        )),
        ops_task,
    };
    operator
        .wait_for("/readyz", "ready before the app", |status, _| status == 200)
        .await;

    let app: portfolio_api::PortfolioApp = serde_json::from_value(json!({
        "apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioApp",
        "metadata": {"name": "stuck", "namespace": NAMESPACE},
        "spec": {"image": "example/app:1"},
    }))
    .expect("app");
    Api::<portfolio_api::PortfolioApp>::namespaced(client, NAMESPACE)
        .create(&PostParams::default(), &app)
        .await
        .expect("create the app");
    let body = operator
        .wait_for("/healthz", "the stuck reconcile is named", |status, _| {
            status == 503
        })
        .await;
    assert!(
        body.contains("[-]reconciles failed: the reconcile of team/stuck has been in flight for"),
        "{body}"
    );
    assert!(body.contains("the reconcile loop is stuck"), "{body}");
    // Still ready: a stuck loop is for the liveness probe to end.
    let (status, body) = operator.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_is_ready_until_it_cannot_follow_the_lease() {
    let (emulator, _client) = cluster(true).await;
    let mut first = Operator::start(&emulator, Some("replica-a"), None).await;
    first
        .wait_for("/readyz", "the first replica leads", |status, body| {
            status == 200 && body.contains("[+]leadership ok: leading\n")
        })
        .await;
    let second = Operator::start(&emulator, Some("replica-b"), None).await;
    let body = second
        .wait_for("/readyz", "the second replica stands by", |status, _| {
            status == 200
        })
        .await;
    assert!(
        body.contains("[+]leadership ok: standing by while another replica leads\n"),
        "{body}"
    );
    assert!(
        body.contains("[+]watches ok: none while standing by\n"),
        "{body}"
    );
    let (status, body) = second.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("[+]controller ok: not running while standing by\n"),
        "{body}"
    );

    // The Lease cannot be read or renewed by anyone.
    let fault = emulator
        .control()
        .add_fault(FaultRule::fail(503).resource("leases"))
        .expect("fault");
    let body = second
        .wait_for(
            "/readyz",
            "the standby cannot follow the lease",
            |status, _| status == 503,
        )
        .await;
    assert!(
        body.contains("[-]leadership failed: standing by, but cannot follow the lease: "),
        "{body}"
    );
    // The leader stops acting: not ready, not alive, and the process must end.
    assert!(matches!(first.ended().await, Err(StartError::Leader(_))));
    let (status, body) = first.get("/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("[-]controller failed: lost the leadership lease team/portfolio-operator"),
        "{body}"
    );

    emulator.control().remove_fault(fault);
    second
        .wait_for("/readyz", "the standby takes over", |status, body| {
            status == 200 && body.contains("[+]leadership ok: leading\n")
        })
        .await;
}

/// A plugin ConfigMap holding `bytes`, with `data`.
async fn publish(client: &kube::Client, name: &str, bytes: &[u8], data: serde_json::Value) {
    let config_map: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "labels": {"portfolio.dev/plugin": "true"}},
        "data": data,
        "binaryData": {"plugin.wasm": ByteString(bytes.to_vec())},
    }))
    .expect("ConfigMap");
    Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &config_map)
        .await
        .expect("publish the plugin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_refused_uploads_by_source_and_reason() {
    let (emulator, client) = cluster(true).await;
    publish(&client, "broken", b"hello", json!({})).await;
    publish(
        &client,
        "liar",
        &crate::common::component("hostile"),
        json!({"version": "2.0.0"}),
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.wasm"), "hello").expect("write");
    let operator = Operator::start(&emulator, None, Some(dir.path().to_owned())).await;

    let text = operator
        .wait_for(
            "/metrics",
            "both ConfigMap refusals are counted",
            |_, body| {
                body.contains("reason=\"InvalidDescription\"")
                    && body.contains("source=\"configmap\",reason=\"NotAComponent\"")
            },
        )
        .await;
    for line in [
        "portfolio_plugin_rejections_total{source=\"configmap\",reason=\"NotAComponent\"} 1\n",
        "portfolio_plugin_rejections_total{source=\"configmap\",reason=\"InvalidDescription\"} 1\n",
        "portfolio_plugin_rejections_total{source=\"directory\",reason=\"NotAComponent\"} 1\n",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
}

/// Run the operator binary, with a compile cache of its own in cargo's
/// directory for test data; off the async workers, since it may talk to an
/// emulator of this process.
async fn run(args: Vec<String>, kubeconfig_env: Option<&Path>) -> Output {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-plugin-cache");
    let mut command = Command::new(env!("CARGO_BIN_EXE_portfolio-operator"));
    command
        .args(&args)
        .arg("--plugin-cache-dir")
        .arg(cache)
        .env_remove("RUST_LOG")
        .env_remove("PORTFOLIO_PLUGIN_NAMESPACE");
    match kubeconfig_env {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env_remove("KUBECONFIG"),
    };
    tokio::task::spawn_blocking(move || command.output().expect("run portfolio-operator"))
        .await
        .expect("the command's thread")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The line of `output` that mentions `key`.
fn line_of<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .find(|line| line.contains(key))
        .unwrap_or_else(|| panic!("no line names {key} in:\n{output}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_list_shows_configmap_plugins_and_refused_uploads() {
    let (emulator, client) = cluster(false).await;
    publish(
        &client,
        "team-gen",
        &crate::common::component("hostile"),
        json!({}),
    )
    .await;
    publish(&client, "broken", b"hello", json!({})).await;
    publish(
        &client,
        "liar",
        &crate::common::component("hostile"),
        json!({"version": "2.0.0"}),
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.wasm"), "hello").expect("write");
    let kubeconfig = emulator.kubeconfig_path().to_owned();

    let output = run(
        vec![
            "plugin".into(),
            "list".into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--plugin-namespace".into(),
            NAMESPACE.into(),
            "--plugin-dir".into(),
            dir.path().display().to_string(),
        ],
        None,
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let listed = text(&output.stdout);
    let active = line_of(&listed, "team/team-gen");
    assert!(active.starts_with("hostile@0.1.0 "), "{active}");
    assert!(active.contains(" configmap "), "{active}");
    assert!(line_of(&listed, "deployment-generator@0.1.0").contains(" built-in "));
    let (plugins, refused) = listed.split_once("\nREFUSED").expect("a list of refusals");
    assert!(
        !plugins.contains("team/broken") && !plugins.contains("team/liar"),
        "{listed}"
    );
    let broken = line_of(refused, "team/broken");
    assert!(broken.contains(" NotAComponent "), "{broken}");
    assert!(broken.contains(" configmap "), "{broken}");
    assert!(broken.contains("the plugin is not WebAssembly"), "{broken}");
    let liar = line_of(refused, "team/liar");
    assert!(liar.contains(" InvalidDescription "), "{liar}");
    assert!(
        liar.contains("but the ConfigMap says hostile@2.0.0"),
        "{liar}"
    );
    let file = line_of(refused, "bad.wasm");
    assert!(
        file.contains(" NotAComponent ") && file.contains(" directory "),
        "{file}"
    );

    // Without --kubeconfig or --plugin-namespace nothing is read from a
    // cluster, not even the one KUBECONFIG names.
    let output = run(vec!["plugin".into(), "list".into()], Some(&kubeconfig)).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let listed = text(&output.stdout);
    assert!(listed.contains("deployment-generator@0.1.0"), "{listed}");
    assert!(
        !listed.contains("configmap") && !listed.contains("REFUSED"),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_list_says_which_cluster_it_cannot_reach() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    // Nothing listens on port 1.
    std::fs::write(
        &kubeconfig,
        emulator::kubeconfig_yaml("http://127.0.0.1:1", None, None),
    )
    .expect("write");
    let output = run(
        vec![
            "plugin".into(),
            "list".into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
        ],
        None,
    )
    .await;
    let message = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    assert!(
        message.starts_with(
            "error: cannot list the plugin ConfigMaps of namespace portfolio-system at http://127.0.0.1:1"
        ),
        "{message}"
    );

    let output = run(
        vec![
            "plugin".into(),
            "list".into(),
            "--kubeconfig".into(),
            "/no/such/kubeconfig".into(),
        ],
        None,
    )
    .await;
    let message = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.starts_with("error: cannot read kubeconfig /no/such/kubeconfig: "),
        "{message}"
    );
}
