//! The CRDs and everything `render` produces, checked by an API server: the
//! CRDs register and reject invalid objects with the offending field, and
//! every rendered object passes `kubectl apply --dry-run=server`.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use portfolio_operator::crds;
use serde_json::json;

use crate::common::{client, kubectl, repo};

/// Register both CRDs and wait until they are served.
async fn install(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds::all() {
        api.create(&PostParams::default(), &crd)
            .await
            .expect("create CRD");
    }
    for crd in crds::all() {
        let name = crd.metadata.name.clone().expect("name");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let current = api.get(&name).await.expect("get CRD");
            let established = current
                .status
                .and_then(|status| status.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never established"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let demo: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "demo"}})).expect("ns");
    namespaces
        .create(&PostParams::default(), &demo)
        .await
        .expect("namespace");
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("portfolio.dev", "v1alpha1", kind))
}

/// Create `object` and expect a 422 naming `field`.
async fn expect_invalid(client: &kube::Client, kind: &str, object: serde_json::Value, field: &str) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "demo", &resource(kind));
    let object: DynamicObject = serde_json::from_value(object).expect("object");
    match api.create(&PostParams::default(), &object).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains(field),
                "{field} not in {}",
                status.message
            );
        }
        other => panic!("expected a 422 naming {field}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crds_register_and_reject_invalid_objects_by_field() {
    let emulator = emulator::Emulator::start().expect("emulator");
    let client = client(&emulator).await;
    install(&client).await;

    let app = |spec: serde_json::Value| {
        json!({"apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioApp",
               "metadata": {"name": "shop", "namespace": "demo"}, "spec": spec})
    };
    expect_invalid(
        &client,
        "PortfolioApp",
        app(json!({"replicas": 1})),
        "spec.image",
    )
    .await;
    expect_invalid(
        &client,
        "PortfolioApp",
        app(json!({"image": "a:1", "replicas": -1})),
        "spec.replicas",
    )
    .await;
    expect_invalid(
        &client,
        "PortfolioApp",
        app(json!({"image": "a:1", "ports": [{"name": "http", "containerPort": 8080, "protocol": "HTTP"}]})),
        "spec.ports[0].protocol",
    )
    .await;
    expect_invalid(
        &client,
        "PortfolioApp",
        app(json!({"image": "a:1", "ports": [{"name": "Not_A_Name", "containerPort": 8080}]})),
        "spec.ports[0].name",
    )
    .await;

    let migration = |spec: serde_json::Value| {
        json!({"apiVersion": "portfolio.dev/v1alpha1", "kind": "DatabaseMigration",
               "metadata": {"name": "schema", "namespace": "demo"}, "spec": spec})
    };
    let database =
        json!({"url": "jdbc:postgresql://db:5432/shop", "credentialsSecretRef": {"name": "db"}});
    expect_invalid(
        &client,
        "DatabaseMigration",
        migration(json!({"tool": "mongo", "database": database, "source": {"image": "sql:1"}})),
        "spec.tool",
    )
    .await;
    expect_invalid(
        &client,
        "DatabaseMigration",
        migration(json!({"tool": "flyway", "database": {"url": "postgres://db", "credentialsSecretRef": {"name": "db"}}, "source": {"image": "sql:1"}})),
        "spec.database.url",
    )
    .await;

    // A valid app is stored with the schema's defaults filled in.
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "demo", &resource("PortfolioApp"));
    let valid: DynamicObject =
        serde_json::from_value(app(json!({"image": "a:1"}))).expect("object");
    let stored = api
        .create(&PostParams::default(), &valid)
        .await
        .expect("valid app");
    assert_eq!(stored.data["spec"]["replicas"], 1);
    assert_eq!(stored.data["spec"]["serviceType"], "ClusterIP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_and_everything_rendered_from_it_passes_server_side_dry_run() {
    let emulator = emulator::Emulator::start().expect("emulator");
    let client = client(&emulator).await;
    install(&client).await;

    let rendered = Command::new(env!("CARGO_BIN_EXE_portfolio-operator"))
        .current_dir(repo())
        .args(["render", "-f", "examples/", "--no-plugin-cache"])
        .output()
        .expect("render");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let rendered = String::from_utf8(rendered.stdout).expect("UTF-8");
    assert!(rendered.contains("kind: Deployment"));

    let mut examples = String::new();
    for entry in std::fs::read_dir(repo().join("examples")).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            examples.push_str("---\n");
            examples.push_str(&std::fs::read_to_string(&path).expect("read"));
        }
    }

    for (what, input) in [
        ("the examples", &examples),
        ("the rendered objects", &rendered),
    ] {
        let output = kubectl(&emulator, &["apply", "--dry-run=server", "-f", "-"], input);
        assert!(
            output.status.success(),
            "{what} fail server-side dry run:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let lines = String::from_utf8_lossy(&output.stdout).lines().count();
        assert!(lines > 0, "kubectl applied nothing for {what}");
    }
}
