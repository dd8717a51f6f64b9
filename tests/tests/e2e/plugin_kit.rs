//! The plugin authoring kit as a team uses it: `plugin new` in a temporary
//! directory → `cargo build --release --target wasm32-wasip2` → `plugin test`
//! → `plugin pack | kubectl apply -f -` → an app that names the plugin is
//! reconciled by it.
//!
//! The crate is built with a target directory under this workspace's
//! (`target/custom-plugin`, shared with `scripts/check-custom-plugin`), so
//! only the first run compiles the plugin's dependencies.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use portfolio_e2e::Harness;
use portfolio_operator::kit::cases::{Outcome, Tester};
use portfolio_operator::kit::pack::{self, PackOptions};
use portfolio_operator::kit::scaffold::{self, NewPlugin, SdkSource};
use portfolio_operator::plugin::{LimitsOverride, Runtime, RuntimeConfig, World};
use portfolio_operator::policy::OutputPolicy;

const NAME: &str = "team-web";

/// `<target>/custom-plugin`: kept between runs, shared with the CI script.
fn shared_target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("custom-plugin")
}

/// Run `cargo` in `dir` as a team would, with the shared target directory;
/// what cargo set for this test binary stays out of it.
fn cargo(dir: &Path, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", shared_target_dir());
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let leaked = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
            || [
                "RUSTFLAGS",
                "CARGO_ENCODED_RUSTFLAGS",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&key);
        if leaked {
            command.env_remove(key);
        }
    }
    let output = command.output().expect("run cargo");
    assert!(
        output.status.success(),
        "cargo {} in {} failed:\n{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plugin_is_built_tested_packed_applied_and_reconciles_an_app() {
    let root = scaffold::build_checkout().expect("the checkout this test was built from");
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join(NAME);

    // plugin new
    scaffold::create(&NewPlugin {
        name: NAME.to_owned(),
        world: World::Generator,
        dir: dir.clone(),
        sdk: SdkSource::Path(root.clone()),
    })
    .expect("plugin new");
    // The example's lock: the same dependency versions as CI builds, offline.
    std::fs::copy(
        root.join("examples/custom-plugin/Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .expect("seed Cargo.lock");

    // cargo build --release --target wasm32-wasip2
    cargo(&dir, &["build", "--release", "--target", "wasm32-wasip2"]);
    let component = shared_target_dir().join("wasm32-wasip2/release/team_web.wasm");
    let bytes = std::fs::read(&component).expect("the component");

    // plugin test: record the generated case, then check it.
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let tester = Tester::new(
        runtime.clone(),
        &component,
        bytes.clone(),
        OutputPolicy::default(),
        LimitsOverride::default(),
    )
    .await
    .expect("a usable plugin");
    let cases = dir.join("cases");
    let recorded = tester
        .run(&cases, true)
        .await
        .expect("plugin test --update");
    assert!(
        recorded
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Recorded)),
        "{recorded:?}"
    );
    let expected =
        std::fs::read_to_string(cases.join("example/expected.yaml")).expect("expectation");
    assert!(expected.contains("kind: NetworkPolicy"), "{expected}");
    let checked = tester.run(&cases, false).await.expect("plugin test");
    assert!(
        checked.iter().all(|r| matches!(r.outcome, Outcome::Passed)),
        "{checked:?}"
    );

    // plugin pack | kubectl apply -f -
    let mut h = Harness::new("plugin-kit").await;
    h.start_operator().await;
    let packed = pack::pack(
        &runtime,
        bytes,
        &PackOptions {
            namespace: h.namespace.clone(),
            ..PackOptions::default()
        },
    )
    .await
    .expect("plugin pack");
    let yaml = packed.to_yaml().expect("yaml");
    let mut kubectl = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(h.kubeconfig())
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    kubectl
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write to kubectl");
    let applied = kubectl.wait_with_output().expect("kubectl");
    assert!(
        applied.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&applied.stderr)
    );

    // An app that names the plugin is reconciled by it.
    h.apply_yaml(&format!(
        "apiVersion: portfolio.dev/v1alpha1\nkind: PortfolioApp\nmetadata:\n  name: shop\nspec:\n  image: ghcr.io/acme/shop:1.4.2\n  ports:\n    - name: http\n      containerPort: 8080\n  generator:\n    plugin: {NAME}\n"
    ))
    .await;
    h.await_condition("shop", "Ready", "True", None).await;
    let app = h.apps().get("shop").await.expect("app");
    let plugin = app
        .status
        .and_then(|status| status.plugin)
        .expect("status.plugin");
    assert_eq!(plugin.id, format!("{NAME}@0.1.0"));
    assert_eq!(plugin.digest, packed.plugin.digest().to_string());
    let policy = h
        .api::<NetworkPolicy>()
        .get("shop")
        .await
        .expect("the plugin's NetworkPolicy");
    let ports = policy
        .spec
        .and_then(|spec| spec.ingress)
        .and_then(|mut rules| rules.pop())
        .and_then(|rule| rule.ports)
        .expect("an ingress rule with ports");
    assert_eq!(
        serde_json::to_value(&ports).expect("json"),
        serde_json::json!([{"port": 8080, "protocol": "TCP"}])
    );
    h.cleanup().await;
}
