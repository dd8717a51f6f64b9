//! Pod templates: Kubernetes' semantic equality of templates, and the pod-template-hash
//! that names a Deployment's ReplicaSets.

use serde_json::Value;

use super::HASH_LABEL;
use crate::cluster::{canonical, fnv32a, safe_encode};

/// The template without the `pod-template-hash` label, for comparing a ReplicaSet's template
/// with its Deployment's.
fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(Value::Object(labels)) = t.pointer_mut("/metadata/labels") {
        labels.remove(HASH_LABEL);
    }
    t
}

/// A template as Kubernetes' semantic equality sees it: nulls, empty lists and empty maps
/// count as absent (Go decodes them to zero values; `kubectl rollout undo` sends
/// `creationTimestamp: null`).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether a ReplicaSet's template is the Deployment's (ignoring the hash label).
pub(super) fn same_template(rs_template: Option<&Value>, template: &Value) -> bool {
    rs_template.is_some_and(|t| normalized(&without_hash(t)) == normalized(template))
}

/// The pod-template-hash of a template (FNV-1a over the template and the collision count,
/// encoded as Kubernetes encodes it).
pub(super) fn template_hash(template: &Value, collisions: Option<i64>) -> String {
    let mut text = canonical(&normalized(template));
    if let Some(c) = collisions {
        text.push_str(&format!("#{c}"));
    }
    safe_encode(fnv32a(text.as_bytes()).to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn template_hashes_are_stable_and_ignore_key_order() {
        let a = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let b: Value = serde_json::from_str(r#"{"spec":{"containers":[{"image":"i","name":"c"}]},"metadata":{"labels":{"app":"x"}}}"#).unwrap();
        assert_eq!(template_hash(&a, None), template_hash(&b, None));
        assert_ne!(template_hash(&a, None), template_hash(&a, Some(1)));
        assert!(template_hash(&a, None).len() <= 10);
    }
}
