//! The Kubernetes objects of one app, as JSON text.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use portfolio_api::{PortfolioAppSpec, Probe, Protocol};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::settings::Settings;
use crate::shapes::*;

/// Pod annotation carrying a hash of `spec.config`, so that a config change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "portfolio.dev/config-hash";

/// Container name of the application inside its pods.
const CONTAINER: &str = "app";
/// Name of the storage volume inside pods.
const VOLUME: &str = "data";

/// Names of an app's children.
struct Names {
    config_map: String,
    claim: String,
    backup: String,
}

impl Names {
    fn of(app: &str) -> Self {
        Names {
            config_map: format!("{app}-config"),
            claim: format!("{app}-data"),
            backup: format!("{app}-backup"),
        }
    }
}

/// Every child, in the order they should be applied (what pods need first).
pub fn build(name: &str, spec: &PortfolioAppSpec, settings: &Settings) -> Vec<String> {
    let names = Names::of(name);
    let selector = Selector { name };
    let metadata = |object_name| Metadata {
        name: object_name,
        labels: Labels {
            selector,
            extra: &settings.labels,
        },
        annotations: Annotations {
            extra: &settings.annotations,
            own: None,
        },
    };
    let mut objects = Vec::with_capacity(7);
    if let Some(account) = spec.service_account.as_ref().filter(|a| a.create) {
        objects.push(json(&Object {
            api_version: "v1",
            kind: "ServiceAccount",
            metadata: metadata(account.name.as_deref().unwrap_or(name)),
            body: ServiceAccountBody {
                automount_service_account_token: account.automount_token,
            },
        }));
    }
    if !spec.config.is_empty() {
        objects.push(json(&Object {
            api_version: "v1",
            kind: "ConfigMap",
            metadata: metadata(&names.config_map),
            body: ConfigMapBody { data: &spec.config },
        }));
    }
    if let Some(storage) = &spec.storage {
        objects.push(json(&Object {
            api_version: "v1",
            kind: "PersistentVolumeClaim",
            metadata: metadata(&names.claim),
            body: SpecBody {
                spec: PersistentVolumeClaimSpec {
                    access_modes: storage.access_modes.iter().map(|m| m.as_str()).collect(),
                    storage_class_name: storage.storage_class_name.as_deref(),
                    resources: StorageRequest {
                        requests: StorageAmount {
                            storage: &storage.size,
                        },
                    },
                },
            },
        }));
    }
    let config_hash = config_hash(spec);
    objects.push(json(&Object {
        api_version: "apps/v1",
        kind: "Deployment",
        metadata: metadata(name),
        body: SpecBody {
            spec: DeploymentSpec {
                // With autoscaling the HorizontalPodAutoscaler owns the
                // replica count; setting it here would fight it.
                replicas: spec.autoscaling.is_none().then_some(spec.replicas),
                revision_history_limit: 5,
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
                        labels: Labels {
                            selector,
                            extra: &settings.labels,
                        },
                        annotations: Annotations {
                            extra: &settings.annotations,
                            own: Some((CONFIG_HASH_ANNOTATION, &config_hash)),
                        },
                    },
                    spec: app_pod(name, &names, spec, settings, selector),
                },
            },
        },
    }));
    if !spec.ports.is_empty() {
        objects.push(json(&Object {
            api_version: "v1",
            kind: "Service",
            metadata: metadata(name),
            body: SpecBody {
                spec: ServiceSpec {
                    type_: spec.service_type.as_str(),
                    selector,
                    ports: spec
                        .ports
                        .iter()
                        .map(|port| ServicePort {
                            name: &port.name,
                            port: port.service_port.unwrap_or(port.container_port),
                            target_port: &port.name,
                            protocol: port.protocol.as_str(),
                        })
                        .collect(),
                },
            },
        }));
    }
    if let Some(autoscaling) = &spec.autoscaling {
        let metric = |resource, target| Metric {
            type_: "Resource",
            resource: ResourceMetric {
                name: resource,
                target: MetricTarget {
                    type_: "Utilization",
                    average_utilization: target,
                },
            },
        };
        let metrics = [
            autoscaling
                .target_cpu_utilization_percentage
                .map(|t| metric("cpu", t)),
            autoscaling
                .target_memory_utilization_percentage
                .map(|t| metric("memory", t)),
        ];
        objects.push(json(&Object {
            api_version: "autoscaling/v2",
            kind: "HorizontalPodAutoscaler",
            metadata: metadata(name),
            body: SpecBody {
                spec: HorizontalPodAutoscalerSpec {
                    scale_target_ref: CrossVersionObjectReference {
                        api_version: "apps/v1",
                        kind: "Deployment",
                        name,
                    },
                    min_replicas: autoscaling.min_replicas,
                    max_replicas: autoscaling.max_replicas,
                    metrics: metrics.into_iter().flatten().collect(),
                },
            },
        }));
    }
    let least_replicas = spec
        .autoscaling
        .as_ref()
        .map_or(spec.replicas, |a| a.min_replicas);
    if least_replicas > 1 {
        // Voluntary disruptions (node drains) take one pod at a time.
        objects.push(json(&Object {
            api_version: "policy/v1",
            kind: "PodDisruptionBudget",
            metadata: metadata(name),
            body: SpecBody {
                spec: PodDisruptionBudgetSpec {
                    max_unavailable: 1,
                    selector: LabelSelector {
                        match_labels: selector,
                    },
                },
            },
        }));
    }
    objects
}

/// The pod of the app's Deployment.
fn app_pod<'a>(
    name: &'a str,
    names: &'a Names,
    spec: &'a PortfolioAppSpec,
    settings: &'a Settings,
    selector: Selector<'a>,
) -> PodSpec<'a> {
    let first_port = spec.ports.first().map_or("", |p| p.name.as_str());
    let probe = |probe: &'a Option<Probe>| probe.as_ref().map(|p| probe_shape(p, first_port));
    let probes = spec.probes.as_ref();
    let most_replicas = spec
        .autoscaling
        .as_ref()
        .map_or(spec.replicas, |a| a.max_replicas);
    let scheduling = spec.scheduling.as_ref();
    let user_spread = scheduling.map_or(&[][..], |s| &s.topology_spread_constraints[..]);
    let container = Container {
        name: CONTAINER,
        image: &spec.image,
        command: &[],
        ports: spec
            .ports
            .iter()
            .map(|port| ContainerPort {
                name: &port.name,
                container_port: port.container_port,
                protocol: port.protocol.as_str(),
            })
            .collect(),
        env_from: (!spec.config.is_empty()).then_some([EnvFrom {
            config_map_ref: NameRef {
                name: &names.config_map,
            },
        }]),
        env: &spec.env,
        resources: spec
            .resources
            .as_ref()
            .or(settings.default_resources.as_ref()),
        readiness_probe: probes
            .and_then(|p| probe(&p.readiness))
            .or_else(|| default_readiness(spec)),
        liveness_probe: probes.and_then(|p| probe(&p.liveness)),
        startup_probe: probes.and_then(|p| probe(&p.startup)),
        // Keep serving while endpoints are removed from load balancers.
        lifecycle: (spec.pre_stop_delay_seconds > 0).then_some(Lifecycle {
            pre_stop: PreStop {
                sleep: Sleep {
                    seconds: spec.pre_stop_delay_seconds,
                },
            },
        }),
        volume_mounts: spec
            .storage
            .iter()
            .map(|storage| VolumeMount {
                name: VOLUME,
                mount_path: &storage.mount_path,
                read_only: false,
            })
            .collect(),
        security_context: container_security(),
    };
    let account = spec.service_account.as_ref();
    PodSpec {
        service_account_name: account.map(|a| a.name.as_deref().unwrap_or(name)),
        // No API token unless asked: most apps never call the API server.
        automount_service_account_token: account.is_some_and(|a| a.automount_token),
        image_pull_secrets: spec
            .image_pull_secrets
            .iter()
            .map(|secret| NameRef { name: secret })
            .collect(),
        security_context: pod_security(),
        termination_grace_period_seconds: spec.termination_grace_period_seconds,
        restart_policy: None,
        node_selector: scheduling
            .map(|s| &s.node_selector)
            .filter(|selector| !selector.is_empty()),
        tolerations: scheduling.map_or(&[][..], |s| &s.tolerations[..]),
        affinity: scheduling.and_then(|s| s.affinity.as_ref()),
        topology_spread_constraints: if !user_spread.is_empty() {
            TopologySpread::User(user_spread)
        } else if most_replicas > 1 {
            TopologySpread::Default(selector)
        } else {
            TopologySpread::None
        },
        containers: [container],
        volumes: spec
            .storage
            .iter()
            .map(|_| Volume {
                name: VOLUME,
                persistent_volume_claim: ClaimRef {
                    claim_name: &names.claim,
                    read_only: false,
                },
            })
            .collect(),
    }
}

/// The backup Job run before deletion, with the volume mounted read-only.
pub fn backup_job(name: &str, spec: &PortfolioAppSpec, settings: &Settings) -> Option<String> {
    let storage = spec.storage.as_ref()?;
    let backup = storage.backup.as_ref()?;
    let names = Names::of(name);
    // Its own labels: the app's selector must never match the backup pod.
    let selector = Selector {
        name: &names.backup,
    };
    let labels = Labels {
        selector,
        extra: &settings.labels,
    };
    let annotations = Annotations {
        extra: &settings.annotations,
        own: None,
    };
    Some(json(&Object {
        api_version: "batch/v1",
        kind: "Job",
        metadata: Metadata {
            name: &names.backup,
            labels,
            annotations,
        },
        body: SpecBody {
            spec: JobSpec {
                backoff_limit: 2,
                active_deadline_seconds: backup.active_deadline_seconds,
                template: PodTemplate {
                    metadata: PodMetadata {
                        labels,
                        annotations,
                    },
                    spec: PodSpec {
                        service_account_name: None,
                        automount_service_account_token: false,
                        image_pull_secrets: spec
                            .image_pull_secrets
                            .iter()
                            .map(|secret| NameRef { name: secret })
                            .collect(),
                        security_context: pod_security(),
                        termination_grace_period_seconds: 30,
                        restart_policy: Some("Never"),
                        node_selector: None,
                        tolerations: &[],
                        affinity: None,
                        topology_spread_constraints: TopologySpread::None,
                        containers: [Container {
                            name: "backup",
                            image: &backup.image,
                            command: &backup.command,
                            ports: Vec::new(),
                            env_from: None,
                            env: &[],
                            resources: settings.default_resources.as_ref(),
                            readiness_probe: None,
                            liveness_probe: None,
                            startup_probe: None,
                            lifecycle: None,
                            volume_mounts: vec![VolumeMount {
                                name: VOLUME,
                                mount_path: &storage.mount_path,
                                read_only: true,
                            }],
                            security_context: container_security(),
                        }],
                        volumes: vec![Volume {
                            name: VOLUME,
                            persistent_volume_claim: ClaimRef {
                                claim_name: &names.claim,
                                read_only: true,
                            },
                        }],
                    },
                },
            },
        },
    }))
}

/// The readiness probe of an app that sets none: a TCP connect to its first
/// TCP port, unless `probes.defaultReadiness` is false. Without any, a pod
/// counts as ready as soon as it starts, so the Service sends it traffic
/// before it listens and `maxUnavailable: 0` protects nothing. (A TCP
/// connect to a UDP or SCTP port never succeeds, so those are skipped.)
fn default_readiness(spec: &PortfolioAppSpec) -> Option<ProbeShape<'_>> {
    if spec.probes.as_ref().is_some_and(|p| !p.default_readiness) {
        return None;
    }
    let port = spec.ports.iter().find(|p| p.protocol == Protocol::Tcp)?;
    Some(ProbeShape {
        http_get: None,
        tcp_socket: Some(TcpSocket { port: &port.name }),
        initial_delay_seconds: None,
        period_seconds: None,
        timeout_seconds: None,
        failure_threshold: None,
    })
}

fn probe_shape<'a>(probe: &'a Probe, first_port: &'a str) -> ProbeShape<'a> {
    ProbeShape {
        http_get: probe.http.as_ref().map(|http| HttpGet {
            path: &http.path,
            port: http.port.as_deref().unwrap_or(first_port),
        }),
        tcp_socket: probe.tcp.as_ref().map(|tcp| TcpSocket {
            port: tcp.port.as_deref().unwrap_or(first_port),
        }),
        initial_delay_seconds: probe.initial_delay_seconds,
        period_seconds: probe.period_seconds,
        timeout_seconds: probe.timeout_seconds,
        failure_threshold: probe.failure_threshold,
    }
}

/// The restricted Pod Security Standard, pod level.
fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: true,
        seccomp_profile: SeccompProfile {
            type_: "RuntimeDefault",
        },
    }
}

/// The restricted Pod Security Standard, container level.
fn container_security() -> ContainerSecurityContext {
    ContainerSecurityContext {
        allow_privilege_escalation: false,
        capabilities: Capabilities { drop: ["ALL"] },
        run_as_non_root: true,
        seccomp_profile: SeccompProfile {
            type_: "RuntimeDefault",
        },
    }
}

/// JSON text of a shape. These shapes have only string map keys and no
/// fallible `Serialize`, so serialising cannot fail; if it ever did, the
/// host would reject the empty text as malformed output.
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use portfolio_api::{AppPort, AppProbes, AppStorage, Autoscaling, Backup, HttpProbe, TcpProbe};
    use serde_json::Value;

    fn spec() -> PortfolioAppSpec {
        PortfolioAppSpec {
            image: "nginx:1.27".into(),
            replicas: 2,
            ports: vec![AppPort {
                name: "http".into(),
                container_port: 8080,
                service_port: Some(80),
                ..Default::default()
            }],
            config: [("MODE".to_owned(), "fast".to_owned())].into(),
            termination_grace_period_seconds: 30,
            pre_stop_delay_seconds: 5,
            ..Default::default()
        }
    }

    fn parsed(objects: &[String]) -> Vec<Value> {
        objects
            .iter()
            .map(|text| serde_json::from_str(text).unwrap())
            .collect()
    }

    fn kinds(objects: &[String]) -> Vec<String> {
        parsed(objects)
            .iter()
            .map(|value| value["kind"].as_str().unwrap().to_owned())
            .collect()
    }

    fn of_kind(objects: &[String], kind: &str) -> Value {
        parsed(objects)
            .into_iter()
            .find(|value| value["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    }

    #[test]
    fn a_replicated_app_gets_a_budget_and_spread() {
        let objects = build("shop", &spec(), &Settings::default());
        assert_eq!(
            kinds(&objects),
            ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]
        );
        let deployment = of_kind(&objects, "Deployment");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            pod["topologySpreadConstraints"].as_array().unwrap().len(),
            2
        );
        assert_eq!(
            pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"],
            5
        );
        assert_eq!(pod["automountServiceAccountToken"], false);
    }

    #[test]
    fn a_single_bare_app_gets_only_a_deployment() {
        let mut bare = spec();
        bare.replicas = 1;
        bare.ports.clear();
        bare.config.clear();
        let objects = build("shop", &bare, &Settings::default());
        assert_eq!(kinds(&objects), ["Deployment"]);
        let pod = &of_kind(&objects, "Deployment")["spec"]["template"]["spec"];
        assert!(pod.get("topologySpreadConstraints").is_none());
    }

    fn readiness_probe(spec: &PortfolioAppSpec) -> Value {
        let deployment = of_kind(&build("shop", spec, &Settings::default()), "Deployment");
        deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].clone()
    }

    #[test]
    fn an_app_with_a_port_is_ready_once_it_accepts_connections() {
        // Without a readiness probe a pod counts as ready when it starts, and
        // `maxUnavailable: 0` would let a rollout remove the old pods first.
        assert_eq!(
            readiness_probe(&spec()),
            serde_json::json!({"tcpSocket": {"port": "http"}})
        );
    }

    #[test]
    fn the_default_readiness_probe_connects_to_the_first_tcp_port() {
        let port = |name: &str, protocol| AppPort {
            name: name.into(),
            container_port: 5353,
            protocol,
            ..Default::default()
        };
        let mut app = spec();
        app.ports = vec![port("dns", Protocol::Udp), port("http", Protocol::Tcp)];
        assert_eq!(
            readiness_probe(&app),
            serde_json::json!({"tcpSocket": {"port": "http"}})
        );
        // A TCP connect to a UDP port never succeeds: no default then.
        app.ports = vec![port("dns", Protocol::Udp), port("sctp", Protocol::Sctp)];
        assert!(readiness_probe(&app).is_null());
        app.ports.clear();
        assert!(readiness_probe(&app).is_null());
    }

    #[test]
    fn a_readiness_probe_of_the_app_replaces_the_default() {
        let mut app = spec();
        app.probes = Some(AppProbes {
            readiness: Some(Probe {
                http: Some(HttpProbe {
                    path: "/ready".into(),
                    port: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            readiness_probe(&app),
            serde_json::json!({"httpGet": {"path": "/ready", "port": "http"}})
        );
    }

    #[test]
    fn the_default_readiness_probe_can_be_turned_off() {
        let mut app = spec();
        app.probes = Some(AppProbes {
            liveness: Some(Probe {
                tcp: Some(TcpProbe { port: None }),
                ..Default::default()
            }),
            default_readiness: false,
            ..Default::default()
        });
        assert!(readiness_probe(&app).is_null());
        let deployment = of_kind(&build("shop", &app, &Settings::default()), "Deployment");
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"],
            serde_json::json!({"tcpSocket": {"port": "http"}})
        );
    }

    #[test]
    fn autoscaling_leaves_replicas_to_the_hpa() {
        let mut scaled = spec();
        scaled.autoscaling = Some(Autoscaling {
            min_replicas: 2,
            max_replicas: 5,
            target_cpu_utilization_percentage: Some(70),
            target_memory_utilization_percentage: None,
        });
        let objects = build("shop", &scaled, &Settings::default());
        let deployment = of_kind(&objects, "Deployment");
        assert!(deployment["spec"].get("replicas").is_none());
        let hpa = of_kind(&objects, "HorizontalPodAutoscaler");
        assert_eq!(hpa["spec"]["maxReplicas"], 5);
        assert_eq!(hpa["spec"]["metrics"].as_array().unwrap().len(), 1);
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "shop");
    }

    #[test]
    fn storage_makes_a_claim_a_mount_and_a_backup_job() {
        let mut stored = spec();
        stored.storage = Some(AppStorage {
            size: "5Gi".into(),
            backup: Some(Backup {
                image: "restic/restic:0.17.3".into(),
                command: vec!["restic".into(), "backup".into(), "/data".into()],
                active_deadline_seconds: 600,
            }),
            ..Default::default()
        });
        let objects = build("shop", &stored, &Settings::default());
        let claim = of_kind(&objects, "PersistentVolumeClaim");
        assert_eq!(claim["metadata"]["name"], "shop-data");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "5Gi");
        let pod = &of_kind(&objects, "Deployment")["spec"]["template"]["spec"];
        assert_eq!(
            pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "shop-data"
        );
        let job: Value =
            serde_json::from_str(&backup_job("shop", &stored, &Settings::default()).unwrap())
                .unwrap();
        assert_eq!(job["kind"], "Job");
        let job_pod = &job["spec"]["template"]["spec"];
        assert_eq!(job_pod["restartPolicy"], "Never");
        assert_eq!(
            job_pod["containers"][0]["volumeMounts"][0]["readOnly"],
            true
        );
        assert_ne!(
            job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"], "shop",
            "the app's Service must never select the backup pod"
        );
        assert!(backup_job("shop", &spec(), &Settings::default()).is_none());
    }

    #[test]
    fn settings_add_labels_and_annotations_without_touching_the_selector() {
        let settings = Settings::parse(
            r#"{"labels": {"team": "shop", "app.kubernetes.io/name": "evil"}, "annotations": {"owner": "ops"}}"#,
        )
        .unwrap();
        let objects = build("shop", &spec(), &settings);
        let deployment = of_kind(&objects, "Deployment");
        assert_eq!(deployment["metadata"]["labels"]["team"], "shop");
        assert_eq!(
            deployment["metadata"]["labels"]["app.kubernetes.io/name"],
            "shop"
        );
        assert_eq!(deployment["metadata"]["annotations"]["owner"], "ops");
        let pod_annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(pod_annotations["owner"], "ops");
        assert!(pod_annotations[CONFIG_HASH_ANNOTATION].is_string());
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
            build("shop", &spec(), &Settings::default()),
            build("shop", &spec(), &Settings::default())
        );
    }
}
