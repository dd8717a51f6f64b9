//! custom-plugin: a portfolio-operator generator that extends the built-in one.
//!
//! For every PortfolioApp it returns exactly what the built-in
//! `deployment-generator` returns (Deployment, Service, ConfigMap, and as the
//! spec asks a PersistentVolumeClaim, HorizontalPodAutoscaler,
//! PodDisruptionBudget, ServiceAccount), plus one object of its own: a
//! NetworkPolicy that admits traffic to the app's pods on the app's ports
//! only. Change [`extend`] to make the plugin yours; the built-in's part stays
//! the operator's tested logic, and a new version of it is a dependency update.
//!
//! The logic is plain Rust: `cargo test` runs it natively, and
//! `export_generator!` (at the bottom) makes it a component only when built
//! for WebAssembly (`cargo build --release --target wasm32-wasip2`).

use portfolio_plugin_sdk::{
    GenerateOutput, Generator, KindRef, PluginError, PluginInfo, ReconcileInput, output,
};
use serde_json::{Value, json};

/// The name apps select this plugin by: `spec.generator.plugin: custom-plugin`.
pub const NAME: &str = "custom-plugin";

/// The kind this plugin adds to the built-in's, as (apiVersion, kind).
pub const NETWORK_POLICY: (&str, &str) = ("networking.k8s.io/v1", "NetworkPolicy");

/// The generator: the built-in's objects, then [`extend`]'s.
pub struct Plugin;

impl Generator for Plugin {
    fn describe() -> PluginInfo {
        // Every kind the plugin may return: the operator refuses any other.
        let kinds = deployment_generator::KINDS
            .iter()
            .chain([&NETWORK_POLICY])
            .map(|(api_version, kind)| KindRef::new(api_version, kind))
            .collect();
        PluginInfo {
            name: NAME.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "The built-in deployment generator's objects, plus a NetworkPolicy admitting traffic to the app's ports only.".to_owned(),
            kinds,
            // The settings are the built-in's, handed on unchanged.
            settings_schema: Some(deployment_generator::SETTINGS_SCHEMA.to_owned()),
        }
    }

    fn generate(input: ReconcileInput) -> Result<GenerateOutput, PluginError> {
        let mut objects =
            deployment_generator::generate(&input.meta.name, &input.spec, &input.settings)
                .map_err(invalid)?;
        for object in extend(&input.meta.name, &objects)? {
            objects.push(output::object(&object)?);
        }
        Ok(GenerateOutput {
            objects,
            conditions: Vec::new(),
            status: "{}".to_owned(),
            requeue_after_seconds: None,
        })
    }

    fn finalize(input: ReconcileInput) -> Result<Vec<String>, PluginError> {
        deployment_generator::finalize(&input.meta.name, &input.spec, &input.settings)
            .map_err(invalid)
    }
}

/// What this plugin adds to the built-in's objects (`builtin`, JSON text) for
/// the app `name`: a NetworkPolicy that admits ingress to the Deployment's
/// pods on its container ports, and nothing else.
pub fn extend(name: &str, builtin: &[String]) -> Result<Vec<Value>, PluginError> {
    // Read the Deployment the built-in made rather than the spec: the policy
    // then selects exactly its pods and admits exactly its ports.
    let deployment = builtin
        .iter()
        .filter_map(|text| serde_json::from_str::<Value>(text).ok())
        .find(|object| object["kind"] == "Deployment")
        .ok_or_else(|| PluginError::internal("the built-in generator returned no Deployment"))?;
    let ports: Vec<Value> = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|container| container["ports"].as_array().into_iter().flatten())
        .map(|port| {
            json!({
                "port": port["containerPort"],
                "protocol": port.get("protocol").cloned().unwrap_or_else(|| json!("TCP")),
            })
        })
        .collect();
    // Without ports there is no rule, and so the policy admits nothing.
    let ingress = if ports.is_empty() {
        json!([])
    } else {
        json!([{ "ports": ports }])
    };
    Ok(vec![json!({
        "apiVersion": NETWORK_POLICY.0,
        "kind": NETWORK_POLICY.1,
        "metadata": { "name": name, "labels": deployment["metadata"]["labels"] },
        "spec": {
            "podSelector": { "matchLabels": deployment["spec"]["selector"]["matchLabels"] },
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    })])
}

/// The built-in's verdict on a spec is the user's fault, field and all.
fn invalid(error: deployment_generator::Invalid) -> PluginError {
    PluginError::invalid(error.field, error.message)
}

portfolio_plugin_sdk::export_generator!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use portfolio_plugin_sdk::ObjectMeta;

    fn input(spec: &Value) -> ReconcileInput {
        ReconcileInput {
            meta: ObjectMeta {
                name: "shop".into(),
                namespace: "demo".into(),
                uid: String::new(),
                generation: 1,
                labels: vec![],
                annotations: vec![],
            },
            spec: spec.to_string(),
            settings: "{}".into(),
            observed: vec![],
        }
    }

    fn objects(spec: &Value) -> Vec<Value> {
        Plugin::generate(input(spec))
            .expect("generate")
            .objects
            .iter()
            .map(|text| serde_json::from_str(text).expect("JSON"))
            .collect()
    }

    fn web_app() -> Value {
        json!({
            "image": "ghcr.io/acme/shop:1.4.2",
            "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "metrics", "containerPort": 9090}
            ]
        })
    }

    #[test]
    fn the_builtin_objects_come_first_and_unchanged() {
        let spec = web_app();
        let output = Plugin::generate(input(&spec)).expect("generate");
        let builtin =
            deployment_generator::generate("shop", &spec.to_string(), "{}").expect("built-in");
        assert_eq!(output.objects[..builtin.len()], builtin[..]);
        assert_eq!(output.objects.len(), builtin.len() + 1);
    }

    #[test]
    fn the_network_policy_admits_the_app_ports_to_its_pods() {
        let objects = objects(&web_app());
        let deployment = objects
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("Deployment");
        let policy = objects
            .iter()
            .find(|o| o["kind"] == "NetworkPolicy")
            .expect("NetworkPolicy");
        assert_eq!(policy["metadata"]["name"], "shop");
        assert_eq!(
            policy["spec"]["podSelector"]["matchLabels"],
            deployment["spec"]["selector"]["matchLabels"]
        );
        assert_eq!(
            policy["spec"]["ingress"],
            json!([{"ports": [
                {"port": 8080, "protocol": "TCP"},
                {"port": 9090, "protocol": "TCP"}
            ]}])
        );
    }

    #[test]
    fn an_app_without_ports_admits_nothing() {
        let objects = objects(&json!({"image": "ghcr.io/acme/worker:2"}));
        let policy = objects
            .iter()
            .find(|o| o["kind"] == "NetworkPolicy")
            .expect("NetworkPolicy");
        assert_eq!(policy["spec"]["ingress"], json!([]));
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    }

    #[test]
    fn a_bad_spec_is_the_users_fault_and_names_the_field() {
        match Plugin::generate(input(&json!({"image": "a:1", "replicas": "two"}))) {
            Err(PluginError::InvalidSpec(invalid)) => assert_eq!(invalid.field, "spec.replicas"),
            other => panic!("expected an invalid spec, got {other:?}"),
        }
    }

    #[test]
    fn every_kind_returned_is_declared() {
        let declared = Plugin::describe().kinds;
        let spec = json!({
            "image": "ghcr.io/acme/shop:1.4.2",
            "replicas": 3,
            "ports": [{"name": "http", "containerPort": 8080}],
            "config": {"MODE": "production"},
        });
        for object in objects(&spec) {
            assert!(
                declared
                    .iter()
                    .any(|k| object["apiVersion"] == k.api_version && object["kind"] == k.kind),
                "{} {} is not declared",
                object["apiVersion"],
                object["kind"]
            );
        }
    }
}
