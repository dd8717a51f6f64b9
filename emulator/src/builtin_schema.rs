//! Schemas of built-in kinds, generated from k8s-openapi's types, so built-ins get the same
//! pruning of unknown fields, type checks and OpenAPI documents as custom resources.
//!
//! They are built lazily, once per process and kind, to keep `Emulator::start()` fast.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::api;
use serde_json::Value;

use crate::registry::ResourceType;
use crate::schema::Schema;

fn generate<T: schemars::JsonSchema>() -> Value {
    let mut settings = schemars::generate::SchemaSettings::openapi3();
    settings.inline_subschemas = true;
    let mut v = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    if let Value::Object(m) = &mut v {
        m.remove("$schema");
        m.remove("components");
        m.remove("title");
    }
    adapt(&mut v);
    v
}

/// Makes a generated schema fit the structural rules the validator applies.
fn adapt(v: &mut Value) {
    let Value::Object(m) = v else { return };
    let is_quantity = m.get("x-kubernetes-int-or-string").is_some()
        && m.get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| d.starts_with("Quantity is"));
    if is_quantity {
        // Kubernetes accepts any JSON number for a quantity, not only integers.
        m.remove("x-kubernetes-int-or-string");
        m.insert("x-emulator-quantity".into(), Value::Bool(true));
    }
    let described = ["type", "properties", "items", "additionalProperties"]
        .iter()
        .any(|k| m.contains_key(*k))
        || m.contains_key("x-kubernetes-int-or-string")
        || m.contains_key("x-emulator-quantity");
    if !described {
        // A reference left for a recursive type, or a free-form value: accept what comes.
        m.retain(|k, _| k == "description");
        m.insert(
            "x-kubernetes-preserve-unknown-fields".into(),
            Value::Bool(true),
        );
        return;
    }
    if let Some(Value::Array(types)) = m.get("type").cloned() {
        let first = types.into_iter().find(|t| t != "null");
        match first {
            Some(t) => m.insert("type".into(), t),
            None => m.remove("type"),
        };
        m.insert("nullable".into(), Value::Bool(true));
    }
    for key in ["properties"] {
        if let Some(Value::Object(props)) = m.get_mut(key) {
            for p in props.values_mut() {
                adapt(p);
            }
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub @ Value::Object(_)) = m.get_mut(key) {
            adapt(sub);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        m.remove(key);
    }
}

fn raw_for(group: &str, kind: &str) -> Option<Value> {
    Some(match (group, kind) {
        ("", "Namespace") => generate::<api::core::v1::Namespace>(),
        ("", "ConfigMap") => generate::<api::core::v1::ConfigMap>(),
        ("", "Secret") => generate::<api::core::v1::Secret>(),
        ("", "Service") => generate::<api::core::v1::Service>(),
        ("", "ServiceAccount") => generate::<api::core::v1::ServiceAccount>(),
        ("", "PersistentVolumeClaim") => generate::<api::core::v1::PersistentVolumeClaim>(),
        ("", "Pod") => generate::<api::core::v1::Pod>(),
        ("", "Event") => generate::<api::core::v1::Event>(),
        ("", "Endpoints") => generate::<api::core::v1::Endpoints>(),
        ("", "Node") => generate::<api::core::v1::Node>(),
        ("", "PersistentVolume") => generate::<api::core::v1::PersistentVolume>(),
        ("storage.k8s.io", "StorageClass") => generate::<api::storage::v1::StorageClass>(),
        ("events.k8s.io", "Event") => generate::<api::events::v1::Event>(),
        ("apps", "Deployment") => generate::<api::apps::v1::Deployment>(),
        ("apps", "ReplicaSet") => generate::<api::apps::v1::ReplicaSet>(),
        ("apps", "StatefulSet") => generate::<api::apps::v1::StatefulSet>(),
        ("apps", "DaemonSet") => generate::<api::apps::v1::DaemonSet>(),
        ("batch", "Job") => generate::<api::batch::v1::Job>(),
        ("batch", "CronJob") => generate::<api::batch::v1::CronJob>(),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            generate::<api::autoscaling::v2::HorizontalPodAutoscaler>()
        }
        ("policy", "PodDisruptionBudget") => generate::<api::policy::v1::PodDisruptionBudget>(),
        ("coordination.k8s.io", "Lease") => generate::<api::coordination::v1::Lease>(),
        ("networking.k8s.io", "NetworkPolicy") => generate::<api::networking::v1::NetworkPolicy>(),
        ("networking.k8s.io", "Ingress") => generate::<api::networking::v1::Ingress>(),
        ("networking.k8s.io", "IngressClass") => generate::<api::networking::v1::IngressClass>(),
        ("rbac.authorization.k8s.io", "Role") => generate::<api::rbac::v1::Role>(),
        ("rbac.authorization.k8s.io", "RoleBinding") => generate::<api::rbac::v1::RoleBinding>(),
        ("rbac.authorization.k8s.io", "ClusterRole") => generate::<api::rbac::v1::ClusterRole>(),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            generate::<api::rbac::v1::ClusterRoleBinding>()
        }
        _ => return None,
    })
}

/// Schemas by (group, kind); `None` once a kind is known to have none.
type Cache = Mutex<HashMap<(String, String), Option<Arc<Schema>>>>;

/// The schema a type's objects are checked against: the CRD's, or the built-in kind's.
pub fn schema_of(rt: &ResourceType) -> Option<Arc<Schema>> {
    rt.schema
        .clone()
        .or_else(|| schema_for(&rt.group, &rt.kind))
}

/// The schema of a built-in kind, if the emulator has one (not for CRDs themselves).
pub fn schema_for(group: &str, kind: &str) -> Option<Arc<Schema>> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (group.to_string(), kind.to_string());
    if let Some(s) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return s.clone();
    }
    // Generated outside the lock: a few milliseconds for the largest kinds.
    let schema = raw_for(group, kind).and_then(|raw| match Schema::parse(&raw, "") {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            tracing::warn!(group, kind, error = ?e, "built-in schema not usable");
            None
        }
    });
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, schema.clone());
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_builtin_kind_has_a_usable_schema() {
        for t in crate::registry::Registry::builtin().all() {
            if t.group == "apiextensions.k8s.io" {
                continue;
            }
            let schema = schema_for(&t.group, &t.kind);
            assert!(schema.is_some(), "{}/{}", t.group, t.kind);
            // Built-ins are defaulted by their own code (`api::defaults`), as Kubernetes'
            // are; a patched built-in's decoding error shows it undefaulted because of it
            // (`check_schema`).
            assert!(
                schema.is_some_and(|s| !s.defaults_within),
                "{}/{}: a default in a built-in schema",
                t.group,
                t.kind
            );
        }
    }

    #[test]
    fn deployment_schema_prunes_and_checks_types() {
        let s = schema_for("apps", "Deployment").unwrap();
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"replicas": 1, "bogus": true, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
                    {"name": "c", "image": "i", "resources": {"limits": {"cpu": 0.5, "memory": "64Mi"}}, "ports": [{"containerPort": 80}]}]}}}});
        s.prune(&mut d, true);
        assert!(d["spec"].get("bogus").is_none());
        let mut errs = Vec::new();
        s.validate(&d, "", &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        d["spec"]["replicas"] = json!("three");
        let mut errs = Vec::new();
        s.validate(&d, "", &mut errs);
        assert_eq!(errs.len(), 1, "{errs:?}");
        d["spec"]["replicas"] = json!(1);
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] =
            json!("lots");
        let mut errs = Vec::new();
        s.validate(&d, "", &mut errs);
        assert_eq!(errs.len(), 1, "{errs:?}");
    }
}
