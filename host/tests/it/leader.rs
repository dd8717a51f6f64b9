//! `portfolio-operator run --leader-elect` with several replicas: only the
//! holder of the Lease acts, a standby takes over when the leader stops, and a
//! leader that cannot renew its lease stops acting and exits.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emulator::control::FaultRule;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde_json::json;

/// Longest wait for anything to happen; a bound, not a performance check.
const PATIENCE: Duration = Duration::from_secs(60);
const NAMESPACE: &str = "team";
const LEASE: &str = "portfolio-operator";

async fn cluster() -> (emulator::Emulator, kube::Client) {
    crate::common::cluster_with_namespace("leader-test", NAMESPACE).await
}

/// One replica of the operator, as a process; killed if the test fails half-way.
struct Replica {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    fn start(emulator: &emulator::Emulator, pod: &str) -> Replica {
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-plugin-cache");
        let mut child = Command::new(env!("CARGO_BIN_EXE_portfolio-operator"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(emulator.kubeconfig_path())
            .args(["--namespace", NAMESPACE, "--plugin-namespace", NAMESPACE])
            .args(["--ops-addr", "127.0.0.1:0", "--leader-elect"])
            .args(["--leader-elect-lease-seconds", "3"])
            .args(["--leader-elect-grace-seconds", "2"])
            .arg("--plugin-cache-dir")
            .arg(cache)
            .env("POD_NAME", pod)
            .env_remove("POD_NAMESPACE")
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the operator");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().expect("log").push(line);
            }
        });
        Replica { child, log }
    }

    fn logged(&self, text: &str) -> bool {
        self.log
            .lock()
            .expect("log")
            .iter()
            .any(|line| line.contains(text))
    }

    fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    async fn wait_logged(&self, text: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !self.logged(text) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never logged {text:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The exit status, once it has exited on its own.
    async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the replica did not exit:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, as the kubelet sends; the exit status.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        self.wait_exit().await
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn holder(client: &kube::Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    leases
        .get_opt(LEASE)
        .await
        .expect("read the lease")
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

async fn wait_holder(client: &kube::Client, pod: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let current = holder(client).await;
        if current
            .as_deref()
            .is_some_and(|h| h.starts_with(&format!("{pod}_")))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pod} never held the lease; the holder is {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn apps(client: &kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("portfolio.dev", "v1alpha1", "PortfolioApp"),
        "portfolioapps",
    );
    Api::namespaced_with(client.clone(), NAMESPACE, &resource)
}

async fn wait_replicas(client: &kube::Client, name: &str, replicas: i32) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let current = deployments
            .get_opt(name)
            .await
            .expect("read the deployment")
            .and_then(|d| d.spec)
            .and_then(|s| s.replicas);
        if current == Some(replicas) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deployment {name} never had {replicas} replicas; it has {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_acts_and_a_standby_takes_over_when_it_stops() {
    let (emulator, client) = cluster().await;
    let mut first = Replica::start(&emulator, "op-a");
    wait_holder(&client, "op-a").await;
    first.wait_logged("operator started").await;

    let mut second = Replica::start(&emulator, "op-b");
    second.wait_logged("waiting to lead").await;

    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "portfolio.dev/v1alpha1",
        "kind": "PortfolioApp",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {"image": "ghcr.io/acme/web:1.0.0", "replicas": 2,
                 "ports": [{"name": "http", "containerPort": 8080}]}
    }))
    .expect("app");
    apps(&client)
        .create(&PostParams::default(), &app)
        .await
        .expect("create the app");
    wait_replicas(&client, "web", 2).await;
    // Several lease periods pass while the first replica leads.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !second.logged("operator started"),
        "the standby acted beside the leader:\n{}",
        second.log_text()
    );
    wait_holder(&client, "op-a").await;

    let status = first.terminate().await;
    assert!(status.success(), "{status}:\n{}", first.log_text());
    assert!(
        first.logged("released the leadership lease"),
        "{}",
        first.log_text()
    );
    wait_holder(&client, "op-b").await;
    second.wait_logged("operator started").await;

    apps(&client)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale the app");
    wait_replicas(&client, "web", 3).await;

    let status = second.terminate().await;
    assert!(status.success(), "{status}:\n{}", second.log_text());
    assert_eq!(
        holder(&client).await,
        None,
        "the last leader released the lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_its_lease_stops_and_exits_with_an_error() {
    let (emulator, client) = cluster().await;
    let mut leader = Replica::start(&emulator, "op-a");
    wait_holder(&client, "op-a").await;
    leader.wait_logged("operator started").await;

    let rule = FaultRule::fail(503).verb("patch").resource("leases");
    emulator.control().add_fault(rule).expect("fault");

    let status = leader.wait_exit().await;
    assert_eq!(status.code(), Some(1), "{}", leader.log_text());
    let log = leader.log_text();
    assert!(
        log.contains("lost the leadership lease team/portfolio-operator: cannot renew it"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn impossible_lease_settings_are_refused_before_anything_starts() {
    let output = Command::new(env!("CARGO_BIN_EXE_portfolio-operator"))
        .args(["run", "--kubeconfig", "/nonexistent", "--leader-elect"])
        .args(["--leader-elect-lease-seconds", "5"])
        .args(["--leader-elect-grace-seconds", "5"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("must be at least 1 s and shorter than the lease"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_lease_ends_the_leader_and_a_standby_recreates_it() {
    let (emulator, client) = cluster().await;
    let mut first = Replica::start(&emulator, "op-a");
    wait_holder(&client, "op-a").await;
    first.wait_logged("operator started").await;
    let second = Replica::start(&emulator, "op-b");
    second.wait_logged("waiting to lead").await;

    Api::<Lease>::namespaced(client.clone(), NAMESPACE)
        .delete(LEASE, &Default::default())
        .await
        .expect("delete the lease");

    let status = first.wait_exit().await;
    assert_eq!(status.code(), Some(1), "{}", first.log_text());
    assert!(
        first.log_text().contains("lost the leadership lease"),
        "{}",
        first.log_text()
    );
    wait_holder(&client, "op-b").await;
    second.wait_logged("operator started").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_rides_out_single_failed_renewals() {
    let (emulator, client) = cluster().await;
    let mut leader = Replica::start(&emulator, "op-a");
    wait_holder(&client, "op-a").await;
    leader.wait_logged("operator started").await;

    // One failed renewal now and another well after: each is retried, and
    // neither ends the leadership (renewals come every second here).
    for _ in 0..2 {
        let rule = FaultRule::fail(503)
            .verb("patch")
            .resource("leases")
            .times(1);
        emulator.control().add_fault(rule).expect("fault");
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    assert!(
        leader.child.try_wait().expect("wait").is_none(),
        "the leader exited:\n{}",
        leader.log_text()
    );
    assert!(
        leader.logged("cannot renew the leadership lease; retrying"),
        "the faults were hit:\n{}",
        leader.log_text()
    );
    wait_holder(&client, "op-a").await;
    let status = leader.terminate().await;
    assert!(status.success(), "{status}:\n{}", leader.log_text());
}
