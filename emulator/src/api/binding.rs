//! The `pods/binding` semantics the scheduler relies on: assigning a pod to a node writes
//! `spec.nodeName` and the `PodScheduled` condition directly, without field-manager tracking,
//! as Kubernetes' binding storage does.

use serde_json::{Value, json};

use super::Api;
use super::ids::now;
use super::meta::{meta, meta_mut};
use crate::error::ApiError;
use crate::registry::GroupResource;

impl Api {
    /// Assigns a pod to a node, as a `Binding` would: 409 if it is already assigned or being
    /// deleted.
    pub fn bind_pod(&self, ns: &str, name: &str, node: &str) -> Result<Value, ApiError> {
        let gr = GroupResource::new("", "pods");
        let mut inner = self.store.lock();
        let old = inner
            .get(&gr, ns, name)
            .ok_or_else(|| ApiError::not_found("", "pods", name))?;
        if meta(&old).get("deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                "",
                "pods",
                name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        if let Some(current) = old
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict(
                "",
                "pods",
                name,
                &format!("pod {name} is already assigned to node \"{current}\""),
            ));
        }
        let mut new = (*old).clone();
        if !new["spec"].is_object() {
            new["spec"] = json!({});
        }
        new["spec"]["nodeName"] = json!(node);
        if !new["status"].is_object() {
            new["status"] = json!({});
        }
        if !new["status"]["conditions"].is_array() {
            new["status"]["conditions"] = json!([]);
        }
        if let Some(conds) = new["status"]["conditions"].as_array_mut() {
            conds.retain(|c| c.get("type") != Some(&json!("PodScheduled")));
            conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}));
        }
        let rv = inner.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        inner.put(&gr, ns, name, new.clone(), rv);
        Ok(new)
    }
}
