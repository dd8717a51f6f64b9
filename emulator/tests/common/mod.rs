//! Shared harness of the conformance suite: an emulator per test, or the real cluster named by
//! `EMULATOR_CONFORMANCE_KUBECONFIG`, with a fresh namespace per test.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

/// Skips the rest of a test when it runs against a real cluster.
#[macro_export]
macro_rules! emulator_only {
    ($c:expr) => {
        if $c.emu.is_none() {
            eprintln!("skipped: needs the emulator");
            return;
        }
    };
}

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
    /// kubectl's discovery cache, private to the test and removed with it.
    cache: tempfile::TempDir,
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

/// Whether the suite runs against a real cluster.
pub fn real_cluster() -> Option<PathBuf> {
    std::env::var_os("EMULATOR_CONFORMANCE_KUBECONFIG").map(PathBuf::from)
}

impl Cluster {
    /// An emulator (or the real cluster) with a fresh namespace.
    pub async fn new() -> Cluster {
        Self::with(emulator::Emulator::builder()).await
    }

    /// Like [`Cluster::new`] with a customised emulator.
    pub async fn with(b: emulator::Builder) -> Cluster {
        let (emu, kubeconfig) = match real_cluster() {
            Some(p) => (None, p),
            None => {
                let e = b.start().expect("emulator starts");
                let p = e.kubeconfig_path().to_path_buf();
                (Some(e), p)
            }
        };
        let client = client_for(&kubeconfig).await;
        let ns = format!("conf-{}", suffix());
        let nsapi: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(client.clone());
        let obj =
            serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).expect("ns");
        nsapi
            .create(&Default::default(), &obj)
            .await
            .expect("create test namespace");
        Cluster {
            emu,
            client,
            kubeconfig,
            ns,
            cache: tempfile::tempdir().expect("kubectl cache dir"),
        }
    }

    /// A raw request; answers (status code, JSON body or Null).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("Content-Type", content_type)
            .header("Accept", "application/json")
            .body(kube::client::Body::from(body))
            .expect("request");
        let resp = self.client.send(req).await.expect("response");
        let code = resp.status().as_u16();
        let bytes = http_body_util_collect(resp.into_body()).await;
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
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
        if self.emu.is_none() {
            // Best effort: a real cluster keeps no test namespaces behind.
            let _ = std::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["delete", "namespace", &self.ns, "--wait=false"])
                .output();
        }
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
