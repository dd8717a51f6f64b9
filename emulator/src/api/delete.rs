//! Deletion: preconditions, finalizers and the propagation policy decide whether an object
//! goes now or is marked with a `deletionTimestamp`; deletecollection; and what a delete
//! answers.

use std::sync::Arc;

use serde_json::{Value, json};

use super::crds::is_crd;
use super::ids::now;
use super::meta::{finalizers, meta, meta_mut, meta_str};
use super::read::stored;
use super::write::check_uid;
use super::{Api, DeleteOptions, DeleteResult, ListOptions};
use crate::convert::to_version;
use crate::error::{ApiError, Cause};
use crate::registry::ResourceType;
use crate::store::{Inner, name_of};

impl Api {
    /// Deletes an object: finalizers and propagation policy decide whether it goes now.
    pub fn delete(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteResult, ApiError> {
        let mut inner = self.store.lock();
        self.delete_locked(&mut inner, rt, ns, name, opts)
    }

    /// [`Api::delete`] under the store lock (also for deletecollection and the garbage
    /// collector).
    pub(super) fn delete_locked(
        &self,
        inner: &mut Inner,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteResult, ApiError> {
        let old = stored(inner, rt, ns, name)?;
        check_uid(rt, name, opts.uid.as_deref(), &old)?;
        if let Some(rv) = &opts.resource_version
            && Some(rv.as_str()) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.resource,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion").unwrap_or_default()
                ),
            ));
        }
        // batch/v1 Jobs orphan their pods unless told otherwise, for backward compatibility,
        // as Kubernetes' job strategy does (every other type deletes dependents).
        let default_policy = if rt.group == "batch" && rt.version == "v1" && rt.resource == "jobs" {
            "Orphan"
        } else {
            "Background"
        };
        let policy = opts.propagation.as_deref().unwrap_or(default_policy);
        if !matches!(policy, "Background" | "Foreground" | "Orphan") {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                vec![Cause::not_supported(
                    "propagationPolicy",
                    &json!(policy),
                    &[
                        json!("Foreground"),
                        json!("Background"),
                        json!("Orphan"),
                        json!("nil"),
                    ],
                )],
            ));
        }
        let mut fins = finalizers(&old);
        let gc = self.opts.garbage_collection;
        let is_ns = rt.group.is_empty() && rt.resource == "namespaces";
        // Kubernetes adds these finalizers whatever the dependents; the garbage collector
        // removes them once it has dealt with the dependents (at once when there are none).
        let extra = match policy {
            "Foreground" if gc => Some("foregroundDeletion"),
            "Orphan" if gc => Some("orphan"),
            _ => None,
        };
        if let Some(f) = extra
            && !fins.iter().any(|x| x == f)
        {
            fins.push(f.to_string());
        }
        let ns_finalizing = is_ns
            && old
                .get("spec")
                .and_then(|s| s.get("finalizers"))
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
        let out_v = to_version(rt, &old);
        if fins.is_empty() && !ns_finalizing {
            if opts.dry_run {
                return Ok(DeleteResult::Deleted(deleted_answer(rt, &out_v)));
            }
            self.remove_now(inner, rt, ns, name);
            return Ok(DeleteResult::Deleted(deleted_answer(rt, &out_v)));
        }
        let mut new = (*old).clone();
        let already = meta(&new).get("deletionTimestamp").is_some();
        {
            let m = meta_mut(&mut new);
            m.insert("finalizers".into(), json!(fins));
            if !already {
                m.insert("deletionTimestamp".into(), json!(now()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
        }
        if !already && rt.generation {
            let g = meta(&new)
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if is_ns {
            if !new["status"].is_object() {
                new["status"] = json!({});
            }
            new["status"]["phase"] = json!("Terminating");
        }
        if meta_mut(&mut new)
            .get("finalizers")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            meta_mut(&mut new).remove("finalizers");
        }
        if opts.dry_run {
            return Ok(DeleteResult::Pending(to_version(rt, &new)));
        }
        if new != *old {
            let rv = inner.next_rv();
            meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
            inner.put(&rt.storage, ns, name, new.clone(), rv);
        }
        // Garbage collection (orphaning, foreground deletion, emptying a namespace) follows
        // asynchronously, as in Kubernetes: the garbage collector controller reacts to this
        // change.
        let current = inner.get(&rt.storage, ns, name);
        Ok(match current {
            Some(c) => DeleteResult::Pending(to_version(rt, &c)),
            None => DeleteResult::Deleted(deleted_answer(rt, &out_v)),
        })
    }

    /// Removes an object now, and a CRD's objects with it; garbage collection of dependents
    /// follows asynchronously (the garbage collector controller sees the deletion).
    pub(super) fn remove_now(&self, inner: &mut Inner, rt: &ResourceType, ns: &str, name: &str) {
        let Some(old) = inner.get(&rt.storage, ns, name) else {
            return;
        };
        let rv = inner.next_rv();
        let mut last = (*old).clone();
        meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
        inner.remove(&rt.storage, ns, name, last, rv);
        if is_crd(rt) {
            self.unregister_crd(inner, &old);
        }
    }

    /// Deletes every object a list selects (deletecollection).
    pub fn delete_collection(
        &self,
        rt: &Arc<ResourceType>,
        ns: Option<&str>,
        lo: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let list = self.list(
            rt,
            ns,
            &ListOptions {
                limit: None,
                continue_token: None,
                ..lo.clone()
            },
        )?;
        let mut inner = self.store.lock();
        let mut items = Vec::new();
        for obj in list["items"].as_array().cloned().unwrap_or_default() {
            let ons = meta_str(&obj, "namespace").unwrap_or_default().to_string();
            match self.delete_locked(&mut inner, rt, &ons, &name_of(&obj), opts) {
                Ok(DeleteResult::Pending(o)) => items.push(o),
                Ok(DeleteResult::Deleted(_)) => items.push(obj),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({
            "apiVersion": rt.api_version(),
            "kind": rt.list_kind,
            "metadata": {"resourceVersion": inner.rv().to_string()},
            "items": Value::Array(items),
        }))
    }
}

/// What a completed delete answers: the object for the types whose Kubernetes registry sets
/// `ReturnDeletedObject` (pods, service accounts), a success Status for the rest.
fn deleted_answer(rt: &ResourceType, obj: &Value) -> Value {
    if rt.group.is_empty() && matches!(rt.resource.as_str(), "pods" | "serviceaccounts") {
        return obj.clone();
    }
    success_status(rt, obj)
}

fn success_status(rt: &ResourceType, obj: &Value) -> Value {
    let mut details = json!({"name": name_of(obj), "kind": rt.resource});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    if let Some(uid) = meta_str(obj, "uid") {
        details["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}
