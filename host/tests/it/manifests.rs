//! `portfolio-operator manifests`: every object it prints is a valid
//! Kubernetes object that an API server accepts (server-side dry run).
//! That the RBAC covers what the operator does is checked by the e2e harness,
//! which records every request the operator makes.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::common::client;

fn manifests(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portfolio-operator"))
        .arg("manifests")
        .args(args)
        .output()
        .expect("run manifests")
}

fn items(args: &[&str]) -> Vec<Value> {
    let output = manifests(args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let list: Value = serde_json::from_slice(&output.stdout).expect("a JSON List");
    list["items"].as_array().expect("items").clone()
}

fn typed<T: serde::de::DeserializeOwned>(items: &[Value], kind: &str) -> Vec<T> {
    items
        .iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| serde_json::from_value(o.clone()).unwrap_or_else(|e| panic!("{kind}: {e}")))
        .collect()
}

#[tokio::test]
async fn every_object_is_accepted_by_an_api_server() {
    for args in [
        &[
            "--image",
            "registry.example/portfolio-operator:0.1.0",
            "-o",
            "json",
        ][..],
        &[
            "--image",
            "registry.example/portfolio-operator:0.1.0",
            "--namespace",
            "ops",
            "--watch-namespace",
            "shop",
            "--replicas",
            "1",
            "-o",
            "json",
        ][..],
    ] {
        let items = items(args);
        assert_eq!(typed::<ClusterRole>(&items, "ClusterRole").len(), 1);
        assert_eq!(typed::<Role>(&items, "Role").len(), 1);
        let bindings = typed::<RoleBinding>(&items, "RoleBinding").len()
            + typed::<ClusterRoleBinding>(&items, "ClusterRoleBinding").len();
        assert_eq!(bindings, 2, "{args:?}");
        let deployment = typed::<Deployment>(&items, "Deployment")
            .pop()
            .expect("a Deployment");
        let pod = deployment.spec.expect("spec").template.spec.expect("pod");
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("portfolio-operator")
        );
        let container = &pod.containers[0];
        let args_text = container.args.clone().unwrap_or_default().join(" ");
        assert!(args_text.starts_with("run --leader-elect"), "{args_text}");

        let emulator = emulator::Emulator::start().expect("emulator");
        let client = client(&emulator).await;
        let discovery = kube::Discovery::new(client.clone())
            .run()
            .await
            .expect("discovery");
        for namespace in items
            .iter()
            .filter(|o| o["kind"] == "Namespace")
            .cloned()
            .chain(
                // The watched namespace is the user's; it exists already.
                args.iter()
                    .position(|a| *a == "--watch-namespace")
                    .map(|i| {
                        serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": args[i + 1]}})
                    }),
            )
        {
            let object: DynamicObject = serde_json::from_value(namespace).expect("namespace");
            Api::<DynamicObject>::all_with(
                client.clone(),
                &kube::discovery::ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
            )
            .create(&PostParams::default(), &object)
            .await
            .expect("create the namespace");
        }
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        for item in &items {
            let api_version = item["apiVersion"].as_str().expect("apiVersion");
            let kind = item["kind"].as_str().expect("kind");
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            let (resource, capabilities) = discovery
                .resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
                .unwrap_or_else(|| panic!("{api_version} {kind} is not served"));
            let object: DynamicObject = serde_json::from_value(item.clone()).expect("object");
            let api: Api<DynamicObject> = match capabilities.scope {
                kube::discovery::Scope::Namespaced => Api::namespaced_with(
                    client.clone(),
                    object.metadata.namespace.as_deref().expect("namespace"),
                    &resource,
                ),
                kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
            };
            if kind == "Namespace" {
                continue;
            }
            tokio::time::timeout(Duration::from_secs(30), api.create(&dry_run, &object))
                .await
                .expect("in time")
                .unwrap_or_else(|e| panic!("{kind} {:?}: {e}", object.metadata.name));
        }
    }
}

#[test]
fn a_missing_image_is_an_error_not_a_manifest() {
    let output = manifests(&["--image", ""]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--image must name"), "{stderr}");
    assert!(output.stdout.is_empty());
}
