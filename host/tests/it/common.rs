//! Helpers shared by the modules of this binary: fixtures, runtimes, a client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portfolio_operator::plugin::{
    CallContext, GenerateInput, Limits, LimitsOverride, LoadOptions, Plugin, Runtime, RuntimeConfig,
};
use serde_json::{Value, json};

/// The repository's root directory (examples, crds, plugins).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_owned()
}

/// Where the build script left the components of the plugins workspace.
pub fn build_dir() -> PathBuf {
    PathBuf::from(env!("PORTFOLIO_PLUGIN_BUILD_DIR"))
}

/// The bytes of a component built from `plugins/` (e.g. `hostile`).
pub fn component(name: &str) -> Vec<u8> {
    let path = build_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A runtime with tight default limits, so hostile calls end quickly.
pub fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        default_limits: Limits {
            timeout: Duration::from_millis(200),
            memory_bytes: 32 << 20,
            ..Limits::default()
        },
        instance_slots: 16,
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

/// Load a fixture with default options.
pub fn load(runtime: &Runtime, name: &str) -> Arc<Plugin> {
    runtime
        .load(&component(name), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// Load a fixture whose registration overrides `limits`.
pub fn load_with(runtime: &Runtime, name: &str, limits: LimitsOverride) -> Arc<Plugin> {
    runtime
        .load(
            &component(name),
            &LoadOptions {
                limits,
                ..LoadOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// An input for app `demo/app` with `spec`.
pub fn input(spec: Value) -> GenerateInput {
    GenerateInput {
        name: "app".into(),
        namespace: "demo".into(),
        spec,
        ..GenerateInput::default()
    }
}

/// The call context of app `demo/app`.
pub fn context() -> CallContext {
    CallContext {
        object: "demo/app".into(),
    }
}

/// A ConfigMap the echo mode of `hostile` can return.
pub fn config_map(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

/// The sample app's spec, as the deployment generator expects it.
pub fn sample_spec() -> Value {
    json!({
        "image": "ghcr.io/acme/shop:1.4.2",
        "replicas": 2,
        "ports": [{"name": "http", "containerPort": 8080, "servicePort": 80, "protocol": "TCP"}],
        "config": {"LOG_LEVEL": "info"},
    })
}

/// A client for `emulator`, through its kubeconfig as for any cluster.
pub async fn client(emulator: &emulator::Emulator) -> kube::Client {
    portfolio_operator::client::connect(Some(emulator.kubeconfig_path()))
        .await
        .expect("client")
}

/// A bare emulator with the CRDs installed (as `manager`) and the namespace
/// `namespace`, and a client for it.
pub async fn cluster_with_namespace(
    manager: &str,
    namespace: &str,
) -> (emulator::Emulator, kube::Client) {
    let emulator = emulator::Emulator::start().expect("emulator");
    let client = client(&emulator).await;
    portfolio_operator::crds::install(&client, manager, Duration::from_secs(30))
        .await
        .expect("CRDs");
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("namespace");
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&kube::api::PostParams::default(), &namespace)
        .await
        .expect("create namespace");
    (emulator, client)
}

/// Run kubectl against the emulator with `input` on stdin.
pub fn kubectl(emulator: &emulator::Emulator, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(emulator.kubeconfig_path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl is installed (scripts/install-helm installs it when missing)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("kubectl")
}
