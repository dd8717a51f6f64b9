//! Properties of the built-in deployment generator, run as the operator runs
//! it (the component, through the runtime): any spec the CRD accepts renders,
//! every object is a valid Kubernetes object of its kind, names and labels are
//! valid, and the output is byte-identical when rendered twice.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use portfolio_operator::plugin::{
    CallContext, GenerateInput, LoadOptions, Plugin, Runtime, RuntimeConfig,
};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn generator() -> &'static Arc<Plugin> {
    static PLUGIN: OnceLock<Arc<Plugin>> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
        runtime
            .load(
                &crate::common::component("deployment_generator"),
                &LoadOptions::default(),
            )
            .expect("load")
    })
}

fn port_names() -> impl Strategy<Value = Vec<String>> {
    prop::sample::subsequence(vec!["http", "grpc", "metrics", "admin", "web-1"], 0..=4)
        .prop_map(|names| names.into_iter().map(str::to_owned).collect())
}

fn quantity(suffixes: &'static [&'static str]) -> impl Strategy<Value = String> {
    (1u32..4096, prop::sample::select(suffixes)).prop_map(|(n, s)| format!("{n}{s}"))
}

fn probe(port_names: Vec<String>) -> impl Strategy<Value = Option<Value>> {
    let port = prop::option::of(prop::sample::select(port_names));
    prop::option::of((
        any::<bool>(),
        port,
        prop::option::of(1i32..60),
        "/[a-z]{0,8}",
    ))
    .prop_map(|probe| {
        probe.map(|(http, port, period, path)| {
            let mut target = json!({});
            if let Some(port) = port {
                target["port"] = json!(port);
            }
            let mut probe = json!({});
            if http {
                target["path"] = json!(path);
                probe["http"] = target;
            } else {
                probe["tcp"] = target;
            }
            if let Some(period) = period {
                probe["periodSeconds"] = json!(period);
            }
            probe
        })
    })
}

/// Specs within the CRD's schema and rules.
fn spec() -> impl Strategy<Value = Value> {
    port_names().prop_flat_map(|names| {
        let ports: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(i, name)| json!({"name": name, "containerPort": 8000 + i, "servicePort": 80 + i}))
            .collect();
        let probes = if names.is_empty() {
            Just(None).boxed()
        } else {
            (probe(names.clone()), probe(names.clone()), probe(names.clone()))
                .prop_map(|(r, l, s)| {
                    let mut probes = json!({});
                    for (key, probe) in [("readiness", r), ("liveness", l), ("startup", s)] {
                        if let Some(probe) = probe {
                            probes[key] = probe;
                        }
                    }
                    Some(probes)
                })
                .boxed()
        };
        (
            "[a-z0-9]{1,12}(/[a-z0-9-]{1,8}){0,2}:[0-9a-z.]{1,8}",
            0i32..20,
            Just(ports),
            prop::collection::btree_map("[A-Z][A-Z0-9_]{0,8}", ".{0,20}", 0..4),
            prop::collection::btree_map(
                "[-._a-zA-Z0-9]{1,12}".prop_filter("not . or ..", |k| k != "." && k != ".."),
                "\\PC{0,30}",
                0..4,
            ),
            probes,
            prop::option::of((quantity(&["m", ""]), quantity(&["Mi", "Gi"]))),
            prop::option::of((quantity(&["Gi"]), any::<bool>(), prop::option::of("[a-z]{1,6}:[0-9]"))),
            prop::option::of((1i32..5, 0i32..10, prop::option::of(1i32..100), prop::option::of(1i32..100))),
            (any::<bool>(), prop::option::of("[a-z]{1,10}"), any::<bool>()),
            prop::sample::select(vec!["ClusterIP", "NodePort", "LoadBalancer"]),
            (5i64..120, 0i64..5),
        )
            .prop_map(
                |(image, replicas, ports, env, config, probes, resources, storage, autoscaling, account, service_type, (grace, pre_stop))| {
                    let mut spec = json!({
                        "image": image,
                        "replicas": replicas,
                        "ports": ports,
                        "env": env.into_iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                        "config": config,
                        "serviceType": service_type,
                        "terminationGracePeriodSeconds": grace,
                        "preStopDelaySeconds": pre_stop,
                    });
                    if let Some(probes) = probes {
                        spec["probes"] = probes;
                    }
                    if let Some((cpu, memory)) = resources {
                        spec["resources"] = json!({"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}});
                    }
                    let autoscaled = autoscaling.is_some();
                    if let Some((min, extra, cpu, memory)) = autoscaling {
                        let cpu = if cpu.is_none() && memory.is_none() { Some(70) } else { cpu };
                        spec["autoscaling"] = json!({"minReplicas": min, "maxReplicas": min + extra});
                        if let Some(cpu) = cpu {
                            spec["autoscaling"]["targetCPUUtilizationPercentage"] = json!(cpu);
                        }
                        if let Some(memory) = memory {
                            spec["autoscaling"]["targetMemoryUtilizationPercentage"] = json!(memory);
                        }
                    }
                    if let Some((size, shared, backup)) = storage {
                        let mode = if shared || autoscaled { "ReadWriteMany" } else { "ReadWriteOnce" };
                        spec["storage"] = json!({"size": size, "accessModes": [mode]});
                        if let Some(image) = backup {
                            spec["storage"]["backup"] = json!({"image": image, "command": ["backup", "/data"]});
                        }
                    }
                    let (with_account, name, create) = account;
                    if with_account {
                        spec["serviceAccount"] = json!({"create": create});
                        if let Some(name) = name {
                            spec["serviceAccount"]["name"] = json!(name);
                        }
                    }
                    spec
                },
            )
    })
}

fn input(name: &str, spec: &Value) -> GenerateInput {
    GenerateInput {
        name: name.to_owned(),
        namespace: "demo".to_owned(),
        spec: spec.clone(),
        ..GenerateInput::default()
    }
}

/// `value` parses as `T`, and `T` writes it back unchanged: no unknown
/// field, no wrong type.
fn round_trips<T: DeserializeOwned + Serialize>(value: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if &back == value {
        Ok(())
    } else {
        Err(format!("changed in a round trip:\n{value}\n{back}"))
    }
}

fn check_kind(value: &Value) -> Result<(), String> {
    match value["kind"].as_str().unwrap_or_default() {
        "Deployment" => round_trips::<Deployment>(value),
        "Service" => round_trips::<Service>(value),
        "ConfigMap" => round_trips::<ConfigMap>(value),
        "PersistentVolumeClaim" => round_trips::<PersistentVolumeClaim>(value),
        "HorizontalPodAutoscaler" => round_trips::<HorizontalPodAutoscaler>(value),
        "PodDisruptionBudget" => round_trips::<PodDisruptionBudget>(value),
        "ServiceAccount" => round_trips::<ServiceAccount>(value),
        "Job" => round_trips::<Job>(value),
        other => Err(format!("unexpected kind {other}")),
    }
}

fn is_label_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && value
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .last()
            .is_none_or(|c| c.is_ascii_alphanumeric())
}

fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

proptest! {
    // No regression files: a failure prints its minimal input instead.
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_accepted_spec_renders_valid_stable_objects(name in "[a-z]([a-z0-9-]{0,40}[a-z0-9])?", spec in spec()) {
        let plugin = generator();
        let context = CallContext::default();
        let first = plugin.generate_raw(&input(&name, &spec), &context);
        let first = match first {
            Ok(raw) => raw,
            Err(error) => return Err(TestCaseError::fail(format!("{error}\nspec: {spec}"))),
        };
        let second = plugin.generate_raw(&input(&name, &spec), &context).expect("second call");
        prop_assert_eq!(first.objects(), second.objects(), "rendered twice, differently");
        let validated = plugin.validate(first.clone()).expect("the host accepts the output");
        let finalized = plugin.finalize(&input(&name, &spec), &context).expect("finalize");
        let mut names = BTreeSet::new();
        for object in validated.objects.iter().chain(finalized.iter()) {
            let value = Value::Object(object.object().clone());
            check_kind(&value).map_err(TestCaseError::fail)?;
            let object_name = &object.key().name;
            prop_assert!(is_dns_label(object_name), "name {object_name}");
            prop_assert!(names.insert((object.key().kind.clone(), object_name.clone())), "duplicate {object_name}");
            for path in ["/metadata/labels", "/spec/template/metadata/labels", "/spec/selector/matchLabels"] {
                if let Some(labels) = value.pointer(path).and_then(Value::as_object) {
                    for (key, label) in labels {
                        let label = label.as_str().unwrap_or_default();
                        prop_assert!(is_label_value(label), "label {key}={label}");
                    }
                }
            }
        }
    }
}
