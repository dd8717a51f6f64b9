//! Test fixture: a generator that does what its spec tells it to, however hostile.
//!
//! `spec.mode` (or, when the spec is a `PortfolioApp`'s, `spec.generator.settings.mode`)
//! picks the behaviour; `echo` (the default) returns `spec.objects`
//! (serialised) and `spec.raw` (verbatim strings), `spec.conditions`,
//! `spec.status` and `spec.requeueAfterSeconds`, so tests can feed the host
//! any output they like. The other modes misbehave: `loop`, `memory`,
//! `recursion` (to `spec.depth`, or forever), `panic`, `huge-output`, `log-spam`, `user-error`,
//! `internal-error`; `settings` returns its settings as status.
// A component only: natively there is nothing to build.
#![cfg(target_arch = "wasm32")]

use std::hint::black_box;

use portfolio_plugin_sdk::{
    Condition, ConditionStatus, GenerateOutput, Generator, KindRef, PluginError, PluginInfo,
    ReconcileInput, log,
};
use serde_json::Value;

struct Hostile;

/// The directives: `spec.generator.settings` when present, else the spec itself.
fn spec(input: &ReconcileInput) -> Result<Value, PluginError> {
    let spec: Value = serde_json::from_str(&input.spec)
        .map_err(|e| PluginError::invalid("spec", e.to_string()))?;
    match spec.pointer("/generator/settings") {
        Some(settings) if settings.is_object() => Ok(settings.clone()),
        _ => Ok(spec),
    }
}

fn strings(spec: &Value, field: &str, serialise: bool) -> Vec<String> {
    spec[field]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| match (serialise, item) {
                    (false, Value::String(text)) => text.clone(),
                    _ => item.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Recurse `limit` levels deep (forever with `u64::MAX`), with real frames.
#[inline(never)]
fn recurse(depth: u64, limit: u64) -> u64 {
    if depth >= limit {
        return depth;
    }
    let mut frame = [0u8; 128];
    frame[0] = depth as u8;
    black_box(&mut frame);
    recurse(depth + 1, limit).wrapping_add(u64::from(frame[1]))
}

fn conditions(spec: &Value) -> Vec<Condition> {
    spec["conditions"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|c| Condition {
                    type_: c["type"].as_str().unwrap_or_default().to_owned(),
                    status: match c["status"].as_str() {
                        Some("True") => ConditionStatus::True,
                        Some("False") => ConditionStatus::False,
                        _ => ConditionStatus::Unknown,
                    },
                    reason: c["reason"].as_str().unwrap_or_default().to_owned(),
                    message: c["message"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Generator for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: "0.1.0".into(),
            description: "Misbehaves on request; for tests only.".into(),
            kinds: vec![
                KindRef::new("v1", "ConfigMap"),
                KindRef::new("v1", "Secret"),
                KindRef::new("apps/v1", "Deployment"),
                KindRef::new("rbac.authorization.k8s.io/v1", "ClusterRole"),
                KindRef::new("v1", "Namespace"),
                // Not on the operator's default allow-list: tests add it with --allow-kind.
                KindRef::new("coordination.k8s.io/v1", "Lease"),
                // The operator manages autoscalers as autoscaling/v2.
                KindRef::new("autoscaling/v1", "HorizontalPodAutoscaler"),
            ],
            settings_schema: Some(
                r#"{"type":"object","properties":{"greeting":{"type":"string"}}}"#.into(),
            ),
        }
    }

    fn generate(input: ReconcileInput) -> Result<GenerateOutput, PluginError> {
        let spec = spec(&input)?;
        match spec["mode"].as_str().unwrap_or("echo") {
            "loop" => {
                let mut counter = 0u64;
                loop {
                    counter = black_box(counter.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    chunk[0] = 1;
                    hoard.push(black_box(chunk));
                }
            }
            "recursion" => {
                let limit = spec["depth"].as_u64().unwrap_or(u64::MAX);
                let depth = recurse(0, limit);
                Ok(GenerateOutput {
                    status: format!(r#"{{"depth":{depth}}}"#),
                    ..empty()
                })
            }
            "panic" => panic!("the hostile plugin panics on purpose"),
            "huge-output" => {
                let bytes = spec["bytes"].as_u64().unwrap_or(100 << 20) as usize;
                Ok(GenerateOutput {
                    objects: vec!["x".repeat(bytes)],
                    conditions: Vec::new(),
                    status: "{}".into(),
                    requeue_after_seconds: None,
                })
            }
            "log-spam" => {
                let lines = spec["lines"].as_u64().unwrap_or(10_000);
                for line in 0..lines {
                    log::info(&format!("line {line}"));
                }
                Ok(empty())
            }
            "settings" => Ok(GenerateOutput {
                status: input.settings.clone(),
                ..empty()
            }),
            "user-error" => Err(PluginError::invalid(
                "spec.mode",
                "user-error was asked for",
            )),
            "internal-error" => Err(PluginError::internal("internal-error was asked for")),
            _ => {
                let mut objects = strings(&spec, "objects", true);
                objects.extend(strings(&spec, "raw", false));
                let status = match &spec["status"] {
                    Value::Null => "{}".to_owned(),
                    Value::String(raw) => raw.clone(),
                    other => other.to_string(),
                };
                Ok(GenerateOutput {
                    objects,
                    conditions: conditions(&spec),
                    status,
                    requeue_after_seconds: spec["requeueAfterSeconds"].as_u64().map(|s| s as u32),
                })
            }
        }
    }

    fn finalize(input: ReconcileInput) -> Result<Vec<String>, PluginError> {
        Ok(strings(&spec(&input)?, "finalize", true))
    }
}

fn empty() -> GenerateOutput {
    GenerateOutput {
        objects: Vec::new(),
        conditions: Vec::new(),
        status: "{}".into(),
        requeue_after_seconds: None,
    }
}

portfolio_plugin_sdk::export_generator!(Hostile);
