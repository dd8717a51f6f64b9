//! Kubernetes' Go-side validation of built-in kinds beyond their schemas, and their
//! immutable fields.

use serde_json::{Value, json};

use super::Api;
use crate::error::Cause;
use crate::registry::{ResourceType, get_path};
use crate::selector::LabelSelector;

impl Api {
    /// Kubernetes' validation of built-in kinds beyond the schema, into `errs`.
    pub(super) fn type_validation(
        &self,
        rt: &ResourceType,
        old: Option<&Value>,
        obj: &Value,
        errs: &mut Vec<Cause>,
    ) {
        if let Some(old) = old {
            immutable_fields(rt, old, obj, errs);
        }
        let string_map = |field: &str, errs: &mut Vec<Cause>| {
            if let Some(v) = obj.get(field) {
                match v {
                    Value::Object(m) => {
                        for (k, val) in m {
                            if !val.is_string() {
                                errs.push(Cause::invalid(
                                    format!("{field}[{k}]"),
                                    val,
                                    "must be a string",
                                ));
                            }
                        }
                    }
                    Value::Null => {}
                    other => errs.push(Cause::invalid(field, other, "must be a map of strings")),
                }
            }
        };
        match (rt.group.as_str(), rt.resource.as_str()) {
            ("", "configmaps") => {
                string_map("data", errs);
                string_map("binaryData", errs);
                let size =
                    map_bytes(obj.get("data"), false) + map_bytes(obj.get("binaryData"), true);
                if size > MAX_DATA_BYTES {
                    errs.push(Cause::too_long("", "must have at most 1048576 bytes"));
                }
            }
            ("", "secrets") => {
                string_map("data", errs);
                string_map("stringData", errs);
                if map_bytes(obj.get("data"), true) > MAX_DATA_BYTES {
                    errs.push(Cause::too_long("data", "must have at most 1048576 bytes"));
                }
            }
            ("apps", "deployments")
            | ("apps", "replicasets")
            | ("apps", "statefulsets")
            | ("apps", "daemonsets") => {
                let Some(sel) = get_path(obj, ".spec.selector") else {
                    errs.push(Cause::required("spec.selector", ""));
                    return;
                };
                match LabelSelector::from_object(sel) {
                    Ok(s) if s.is_empty() => errs.push(Cause::invalid(
                        "spec.selector",
                        sel,
                        "empty selector is invalid for deployment",
                    )),
                    Ok(s) => {
                        let tmpl = json!({"metadata": {"labels": get_path(obj, ".spec.template.metadata.labels").cloned().unwrap_or(json!({}))}});
                        if !s.matches(&tmpl) {
                            errs.push(Cause::invalid(
                                "spec.template.metadata.labels",
                                get_path(obj, ".spec.template.metadata.labels")
                                    .unwrap_or(&Value::Null),
                                "`selector` does not match template `labels`",
                            ));
                        }
                    }
                    Err(e) => errs.push(Cause::invalid("spec.selector", sel, &e)),
                }
                if let Some(r) = get_path(obj, ".spec.replicas")
                    && r.as_i64().is_none_or(|r| r < 0)
                {
                    errs.push(Cause::invalid(
                        "spec.replicas",
                        r,
                        "must be greater than or equal to 0",
                    ));
                }
                validate_pod_spec(obj, ".spec.template.spec", "spec.template.spec", errs);
            }
            ("batch", "jobs") => {
                validate_pod_spec(obj, ".spec.template.spec", "spec.template.spec", errs);
                let rp = get_path(obj, ".spec.template.spec.restartPolicy");
                if !matches!(rp.and_then(Value::as_str), Some("Never" | "OnFailure")) {
                    errs.push(Cause::not_supported(
                        "spec.template.spec.restartPolicy",
                        rp.unwrap_or(&json!("Always")),
                        &[json!("OnFailure"), json!("Never")],
                    ));
                }
            }
            ("", "pods") => validate_pod_spec(obj, ".spec", "spec", errs),
            _ => {}
        }
    }
}

/// Kubernetes' limit on the data of one ConfigMap or Secret.
const MAX_DATA_BYTES: usize = 1024 * 1024;

/// Bytes of a string map's values (decoded when they are base64), as Kubernetes counts them.
fn map_bytes(v: Option<&Value>, base64: bool) -> usize {
    let Some(Value::Object(m)) = v else { return 0 };
    m.iter()
        .map(|(_, v)| {
            v.as_str().map_or(0, |s| {
                if base64 {
                    (s.len() / 4 * 3)
                        .saturating_sub(s.bytes().rev().take_while(|b| *b == b'=').count())
                } else {
                    s.len()
                }
            })
        })
        .sum()
}

/// Fields Kubernetes refuses to change after creation.
fn immutable_fields(rt: &ResourceType, old: &Value, new: &Value, errs: &mut Vec<Cause>) {
    let mut frozen = |path: &str, field: &str| {
        let (a, b) = (get_path(old, path), get_path(new, path));
        if a.is_some() && a != b {
            errs.push(Cause::invalid(
                field,
                b.unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    };
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => {
            frozen(".spec.selector", "spec.selector")
        }
        ("batch", "jobs") => {
            frozen(".spec.selector", "spec.selector");
            frozen(".spec.completions", "spec.completions");
            if get_path(old, ".spec.suspend") != Some(&json!(true)) {
                frozen(".spec.template", "spec.template");
            }
        }
        ("", "services") => frozen(".spec.clusterIP", "spec.clusterIP"),
        ("", "configmaps" | "secrets") if old.get("immutable") == Some(&json!(true)) => {
            for f in ["data", "binaryData", "stringData"] {
                if old.get(f) != new.get(f) {
                    errs.push(Cause::forbidden(
                        f,
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
            if new.get("immutable") != Some(&json!(true)) {
                errs.push(Cause::forbidden(
                    "immutable",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        _ => {}
    }
}

fn validate_pod_spec(obj: &Value, path: &str, field: &str, errs: &mut Vec<Cause>) {
    let Some(spec) = get_path(obj, path) else {
        errs.push(Cause::required(field, ""));
        return;
    };
    match spec.get("containers").and_then(Value::as_array) {
        Some(cs) if !cs.is_empty() => {
            let mut names = Vec::new();
            for (i, c) in cs.iter().enumerate() {
                let n = c.get("name").and_then(Value::as_str).unwrap_or_default();
                if n.is_empty() {
                    errs.push(Cause::required(format!("{field}.containers[{i}].name"), ""));
                } else if names.contains(&n) {
                    errs.push(Cause::new(
                        "FieldValueDuplicate",
                        format!("{field}.containers[{i}].name"),
                        format!("Duplicate value: \"{n}\""),
                    ));
                }
                names.push(n);
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    errs.push(Cause::required(
                        format!("{field}.containers[{i}].image"),
                        "",
                    ));
                }
            }
        }
        _ => errs.push(Cause::required(format!("{field}.containers"), "")),
    }
}
