//! The Kubernetes objects of one app, as JSON.

use portfolio_api::{AppEnvVar, PortfolioAppSpec};
use portfolio_plugin_sdk::{PluginError, output};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Pod annotation carrying a hash of `spec.config`, so that a config change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "portfolio.dev/config-hash";

/// Container name of the application inside its pods.
const CONTAINER: &str = "app";

/// Deployment, Service (when the app has ports) and ConfigMap (when it has config), as JSON text.
pub fn build(name: &str, spec: &PortfolioAppSpec) -> Result<Vec<String>, PluginError> {
    let mut objects = Vec::with_capacity(3);
    if !spec.config.is_empty() {
        objects.push(output::object(&config_map(name, spec))?);
    }
    objects.push(output::object(&deployment(name, spec))?);
    if !spec.ports.is_empty() {
        objects.push(output::object(&service(name, spec))?);
    }
    Ok(objects)
}

/// Labels that select the app's pods; they never change for the app's lifetime.
fn selector(name: &str) -> Value {
    json!({
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": name,
    })
}

fn config_map_name(name: &str) -> String {
    format!("{name}-config")
}

fn config_map(name: &str, spec: &PortfolioAppSpec) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": config_map_name(name), "labels": selector(name) },
        "data": spec.config,
    })
}

fn config_hash(spec: &PortfolioAppSpec) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in &spec.config {
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        hasher.update((key.len() as u64).to_le_bytes());
        hasher.update(key.as_bytes());
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(value.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn deployment(name: &str, spec: &PortfolioAppSpec) -> Value {
    let mut container = Map::new();
    container.insert("name".into(), json!(CONTAINER));
    container.insert("image".into(), json!(spec.image));
    if !spec.ports.is_empty() {
        let ports: Vec<Value> = spec
            .ports
            .iter()
            .map(|port| {
                json!({
                    "name": port.name,
                    "containerPort": port.container_port,
                    "protocol": port.protocol,
                })
            })
            .collect();
        container.insert("ports".into(), Value::Array(ports));
    }
    if !spec.config.is_empty() {
        container.insert(
            "envFrom".into(),
            json!([{ "configMapRef": { "name": config_map_name(name) } }]),
        );
    }
    if !spec.env.is_empty() {
        container.insert(
            "env".into(),
            Value::Array(spec.env.iter().map(env_var).collect()),
        );
    }
    container.insert(
        "securityContext".into(),
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": { "drop": ["ALL"] },
            "runAsNonRoot": true,
            "seccompProfile": { "type": "RuntimeDefault" },
        }),
    );

    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": selector(name) },
        "spec": {
            "replicas": spec.replicas,
            "selector": { "matchLabels": selector(name) },
            // Never take a serving pod away before its replacement is ready.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": { "maxUnavailable": 0, "maxSurge": "25%" },
            },
            "template": {
                "metadata": {
                    "labels": selector(name),
                    "annotations": { CONFIG_HASH_ANNOTATION: config_hash(spec) },
                },
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": true,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "containers": [Value::Object(container)],
                },
            },
        },
    })
}

fn env_var(var: &AppEnvVar) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(var.name));
    if let Some(value) = &var.value {
        out.insert("value".into(), json!(value));
    }
    if let Some(from) = &var.value_from {
        let mut source = Map::new();
        if let Some(key) = &from.secret_key_ref {
            source.insert("secretKeyRef".into(), json!(key));
        }
        if let Some(key) = &from.config_map_key_ref {
            source.insert("configMapKeyRef".into(), json!(key));
        }
        out.insert("valueFrom".into(), Value::Object(source));
    }
    Value::Object(out)
}

fn service(name: &str, spec: &PortfolioAppSpec) -> Value {
    let ports: Vec<Value> = spec
        .ports
        .iter()
        .map(|port| {
            json!({
                "name": port.name,
                "port": port.service_port.unwrap_or(port.container_port),
                "targetPort": port.name,
                "protocol": port.protocol,
            })
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name, "labels": selector(name) },
        "spec": {
            "type": "ClusterIP",
            "selector": selector(name),
            "ports": ports,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use portfolio_api::AppPort;

    fn spec() -> PortfolioAppSpec {
        PortfolioAppSpec {
            image: "nginx:1.27".into(),
            replicas: 2,
            ports: vec![AppPort {
                name: "http".into(),
                container_port: 8080,
                service_port: Some(80),
                protocol: "TCP".into(),
            }],
            config: [("MODE".to_owned(), "fast".to_owned())].into(),
            ..Default::default()
        }
    }

    fn kinds(objects: &[String]) -> Vec<String> {
        objects
            .iter()
            .map(|text| {
                let value: Value = serde_json::from_str(text).unwrap();
                value["kind"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn full_app_gets_three_objects() {
        let objects = build("shop", &spec()).unwrap();
        assert_eq!(kinds(&objects), ["ConfigMap", "Deployment", "Service"]);
    }

    #[test]
    fn no_ports_means_no_service_and_no_config_means_no_config_map() {
        let mut bare = spec();
        bare.ports.clear();
        bare.config.clear();
        assert_eq!(kinds(&build("shop", &bare).unwrap()), ["Deployment"]);
    }

    #[test]
    fn config_changes_change_the_hash() {
        let before = config_hash(&spec());
        let mut changed = spec();
        changed.config.insert("MODE".into(), "slow".into());
        assert_ne!(before, config_hash(&changed));
        let mut shifted = spec();
        shifted.config = [("MODEf".to_owned(), "ast".to_owned())].into();
        assert_ne!(before, config_hash(&shifted));
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(
            build("shop", &spec()).unwrap(),
            build("shop", &spec()).unwrap()
        );
    }
}
