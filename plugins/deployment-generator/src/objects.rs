//! The Kubernetes objects of one app, as JSON.

use portfolio_api::PortfolioAppSpec;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::shapes::*;

/// Pod annotation carrying a hash of `spec.config`, so that a config change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "portfolio.dev/config-hash";

/// Container name of the application inside its pods.
const CONTAINER: &str = "app";

/// Deployment, Service (when the app has ports) and ConfigMap (when it has config), as JSON text.
pub fn build(name: &str, spec: &PortfolioAppSpec) -> Vec<String> {
    let selector = Selector {
        name,
        instance: name,
    };
    let config_map_name = format!("{name}-config");
    let mut objects = Vec::with_capacity(3);
    if !spec.config.is_empty() {
        objects.push(json(&Object {
            api_version: "v1",
            kind: "ConfigMap",
            metadata: Metadata {
                name: &config_map_name,
                labels: selector,
            },
            body: ConfigMapBody { data: &spec.config },
        }));
    }
    objects.push(json(&deployment(name, &config_map_name, selector, spec)));
    if !spec.ports.is_empty() {
        objects.push(json(&service(name, selector, spec)));
    }
    objects
}

/// JSON text of a shape; these shapes always serialise (no maps with non-string keys).
fn json<T: Serialize>(value: &T) -> String {
    let mut out = Vec::with_capacity(2048);
    match serde_json::to_writer(&mut out, value) {
        // serde_json writes UTF-8 only.
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn config_hash(spec: &PortfolioAppSpec) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hasher = Sha256::new();
    for (key, value) in &spec.config {
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        hasher.update((key.len() as u64).to_le_bytes());
        hasher.update(key.as_bytes());
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(value.as_bytes());
    }
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(16);
    for byte in &digest[..8] {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

fn deployment<'a>(
    name: &'a str,
    config_map_name: &'a str,
    selector: Selector<'a>,
    spec: &'a PortfolioAppSpec,
) -> Object<'a, DeploymentBody<'a>> {
    let seccomp = || SeccompProfile {
        type_: "RuntimeDefault",
    };
    let container = Container {
        name: CONTAINER,
        image: &spec.image,
        ports: spec
            .ports
            .iter()
            .map(|port| ContainerPort {
                name: &port.name,
                container_port: port.container_port,
                protocol: &port.protocol,
            })
            .collect(),
        env_from: (!spec.config.is_empty()).then_some([EnvFrom {
            config_map_ref: NameRef {
                name: config_map_name,
            },
        }]),
        env: &spec.env,
        security_context: ContainerSecurityContext {
            allow_privilege_escalation: false,
            capabilities: Capabilities { drop: ["ALL"] },
            run_as_non_root: true,
            seccomp_profile: seccomp(),
        },
    };
    Object {
        api_version: "apps/v1",
        kind: "Deployment",
        metadata: Metadata {
            name,
            labels: selector,
        },
        body: DeploymentBody {
            spec: DeploymentSpec {
                replicas: spec.replicas,
                selector: LabelSelector {
                    match_labels: selector,
                },
                // Never take a serving pod away before its replacement is ready.
                strategy: Strategy {
                    type_: "RollingUpdate",
                    rolling_update: RollingUpdate {
                        max_unavailable: 0,
                        max_surge: "25%",
                    },
                },
                template: PodTemplate {
                    metadata: PodMetadata {
                        labels: selector,
                        annotations: PodAnnotations {
                            config_hash: config_hash(spec),
                        },
                    },
                    spec: PodSpec {
                        security_context: PodSecurityContext {
                            run_as_non_root: true,
                            seccomp_profile: seccomp(),
                        },
                        containers: [container],
                    },
                },
            },
        },
    }
}

fn service<'a>(
    name: &'a str,
    selector: Selector<'a>,
    spec: &'a PortfolioAppSpec,
) -> Object<'a, ServiceBody<'a>> {
    Object {
        api_version: "v1",
        kind: "Service",
        metadata: Metadata {
            name,
            labels: selector,
        },
        body: ServiceBody {
            spec: ServiceSpec {
                type_: "ClusterIP",
                selector,
                ports: spec
                    .ports
                    .iter()
                    .map(|port| ServicePort {
                        name: &port.name,
                        port: port.service_port.unwrap_or(port.container_port),
                        target_port: &port.name,
                        protocol: &port.protocol,
                    })
                    .collect(),
            },
        },
    }
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

    use serde_json::Value;

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
        let objects = build("shop", &spec());
        assert_eq!(kinds(&objects), ["ConfigMap", "Deployment", "Service"]);
    }

    #[test]
    fn no_ports_means_no_service_and_no_config_means_no_config_map() {
        let mut bare = spec();
        bare.ports.clear();
        bare.config.clear();
        assert_eq!(kinds(&build("shop", &bare)), ["Deployment"]);
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
        assert_eq!(build("shop", &spec()), build("shop", &spec()));
    }
}
