//! The single write pipeline every create, update, patch and apply ends in: subresource
//! resets, defaults, validation, generation, managed fields, resourceVersion, storage.

use std::sync::Arc;

use serde_json::{Value, json};

use super::crds::is_crd;
use super::ids::{new_uid, now};
use super::managed::{self, Op};
use super::meta::{finalizers, meta, meta_mut, meta_str};
use super::validate::{check_finalizers, check_name_and_meta, check_schema};
use super::{Api, Sub, WriteOptions, WriteResult};
use crate::convert::to_storage;
use crate::error::{ApiError, Cause};
use crate::registry::{Conversion, ResourceType};
use crate::store::Inner;

impl Api {
    /// The single write pipeline: resets by subresource, defaults, validation, generation,
    /// managed fields, resourceVersion, storage and events. A write that changes nothing keeps
    /// the resourceVersion and sends no event.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn commit(
        &self,
        inner: &mut Inner,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        mut old: Option<Value>,
        mut new: Value,
        sub: Sub,
        op: Op,
        manager: &str,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        let mut warnings = Vec::new();
        let ts = now();
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        let other_uid = old.as_ref().and_then(|old| changed_uid(old, &new));
        match &old {
            Some(old) => carry_over(rt, sub, old, &mut new),
            None => initialize(rt, ns, name, &ts, &mut new),
        }
        self.type_defaults(rt, old.as_ref(), &mut new, inner.rv());
        let mut errs = check_schema(
            rt,
            old.as_ref(),
            &mut new,
            opts.field_validation,
            matches!(op, Op::Patch),
            &mut warnings,
        )?;
        if let Some(uid) = other_uid {
            errs.push(Cause::invalid(
                "metadata.uid",
                &json!(uid),
                "field is immutable",
            ));
        }
        check_name_and_meta(rt, name, &new, &mut errs);
        self.type_validation(rt, old.as_ref(), &new, &mut errs);
        check_finalizers(old.as_ref(), &new, &mut errs);
        let crd_types = if is_crd(rt) {
            self.prepare_crd(old.as_ref(), &mut new, sub, &ts, &mut errs)
        } else {
            None
        };
        if !errs.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, name, errs));
        }
        if rt.generation {
            set_generation(rt, old.as_ref(), &mut new);
        }
        managed::track(rt, old.as_ref(), &mut new, sub, op, manager, &ts);
        // A write that changes nothing is not a write: same resourceVersion, no event.
        if let Some(o) = old.take_if(|o| equal_but_resource_version(o, &new)) {
            return Ok(WriteResult {
                object: Arc::new(o),
                created: false,
                warnings,
            });
        }
        let created = old.is_none();
        if opts.dry_run {
            meta_mut(&mut new).insert(
                "resourceVersion".into(),
                json!(
                    meta_str(old.as_ref().unwrap_or(&Value::Null), "resourceVersion")
                        .unwrap_or_default()
                ),
            );
            if created {
                meta_mut(&mut new).remove("resourceVersion");
            }
            return Ok(WriteResult {
                object: Arc::new(new),
                created,
                warnings,
            });
        }
        let rv = inner.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        // Stored as the client sees it unless the stored form differs: then the answer
        // and the store each have their own.
        let object = if rt.conversion == Conversion::None {
            inner.put(&rt.storage, ns, name, new, rv)
        } else {
            inner.put(&rt.storage, ns, name, to_storage(rt, new.clone()), rv);
            Arc::new(new)
        };
        if let Some(types) = crd_types {
            self.register_crd(inner, &object, types);
        }
        // The last finalizer removed from a deleting object completes the deletion.
        if meta(&object).get("deletionTimestamp").is_some() && finalizers(&object).is_empty() {
            self.remove_now(inner, rt, ns, name);
        }
        Ok(WriteResult {
            object,
            created,
            warnings,
        })
    }
}

/// Whether two objects are equal but for `metadata.resourceVersion` (compared in place:
/// a copy of each would cost more than the write's own work).
fn equal_but_resource_version(a: &Value, b: &Value) -> bool {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return a == b;
    };
    let metadata_equal = |x: &Value, y: Option<&Value>| match (x, y) {
        (Value::Object(x), Some(Value::Object(y))) => {
            let kept = |(k, _): &(&String, &Value)| k.as_str() != "resourceVersion";
            x.iter().filter(kept).eq(y.iter().filter(kept))
        }
        (x, y) => Some(x) == y,
    };
    a.len() == b.len()
        && a.iter().all(|(k, v)| match k.as_str() {
            "metadata" => metadata_equal(v, b.get(k)),
            _ => b.get(k) == Some(v),
        })
}

/// The uid a patched or applied object carries when it is not the stored one's.
/// Kubernetes' `BeforeUpdate` keeps a uid the request sets (it fills in only a
/// missing one) and `ValidateObjectMetaUpdate` refuses a changed one as
/// immutable (422). A PUT's uid is a precondition instead (409), checked before.
fn changed_uid(old: &Value, new: &Value) -> Option<String> {
    let uid = meta_str(new, "uid").filter(|uid| !uid.is_empty())?;
    (Some(uid) != meta_str(old, "uid")).then(|| uid.to_owned())
}

/// An update keeps what the endpoint does not write and what the system owns: the main
/// resource never writes status, `/status` writes only status (and, for built-ins, what
/// their status strategies let through); identity, timestamps and generation stay. (The
/// request's managed fields are `managed::track`'s to judge.)
fn carry_over(rt: &ResourceType, sub: Sub, old: &Value, new: &mut Value) {
    if rt.status && sub == Sub::Main {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Value::Object(m) = new {
                    m.remove("status");
                }
            }
        }
    }
    if sub == Sub::Status {
        let status = new.get("status").cloned();
        // Built-in status strategies reset the spec, not the metadata: annotations
        // written through /status stick (the deployment controller records its
        // revision annotation that way), and so do labels except on apps workloads,
        // whose status strategies reset them too. Custom resources keep only status.
        let mut carried = Vec::new();
        if !rt.custom {
            carried.push("annotations");
            if rt.group != "apps" {
                carried.push("labels");
            }
        }
        let carried: Vec<(&str, Option<Value>)> = carried
            .into_iter()
            .map(|k| (k, meta(new).get(k).cloned()))
            .collect();
        *new = old.clone();
        for (k, v) in carried {
            match v {
                Some(v) => meta_mut(new).insert(k.to_string(), v),
                None => meta_mut(new).remove(k),
            };
        }
        if let Value::Object(m) = new {
            match status {
                Some(s) => m.insert("status".into(), s),
                None => m.remove("status"),
            };
        }
    }
    // Immutable and system-owned metadata.
    let om = meta(old).clone();
    let m = meta_mut(new);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "name",
        "namespace",
    ] {
        match om.get(k) {
            Some(v) => m.insert(k.to_string(), v.clone()),
            None => m.remove(k),
        };
    }
}

/// A created object gets its identity: uid, creationTimestamp, name and namespace; status
/// only through `/status`.
fn initialize(rt: &ResourceType, ns: &str, name: &str, ts: &str, new: &mut Value) {
    if rt.status
        && let Value::Object(m) = new
    {
        m.remove("status");
    }
    let m = meta_mut(new);
    m.insert("uid".into(), json!(new_uid()));
    m.insert("creationTimestamp".into(), json!(ts));
    for k in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "selfLink",
    ] {
        m.remove(k);
    }
    if rt.namespaced {
        m.insert("namespace".into(), json!(ns));
    } else {
        m.remove("namespace");
    }
    m.insert("name".into(), json!(name));
}

/// `metadata.generation`: 1 on create, bumped on any change outside metadata (and status,
/// when a status subresource splits it off).
fn set_generation(rt: &ResourceType, old: Option<&Value>, new: &mut Value) {
    let generation = match old {
        None => 1,
        Some(o) => {
            let g = meta(o)
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if !same_spec(o, new, rt.status) {
                g + 1
            } else {
                g
            }
        }
    };
    meta_mut(new).insert("generation".into(), json!(generation));
}

/// Whether `a` and `b` have the same spec: equal but for `metadata` (and
/// `status`, where it is a subresource). Compared in place: a copy of each
/// object, `managedFields` and all, to drop two keys from was about a tenth of
/// an apply's instructions.
fn same_spec(a: &Value, b: &Value, status_split: bool) -> bool {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return a == b;
    };
    let spec = |(k, _): &(&String, &Value)| {
        k.as_str() != "metadata" && !(status_split && k.as_str() == "status")
    };
    a.iter().filter(spec).eq(b.iter().filter(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_is_all_but_metadata_and_a_split_status() {
        let a = json!({"metadata": {"name": "a", "generation": 1}, "spec": {"n": 1}, "status": {"s": 1}});
        let relabelled = json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"n": 1}, "status": {"s": 1}});
        let restatused = json!({"metadata": {"name": "a"}, "spec": {"n": 1}, "status": {"s": 2}});
        let unstatused = json!({"metadata": {"name": "a"}, "spec": {"n": 1}});
        let respecced = json!({"metadata": {"name": "a"}, "spec": {"n": 2}, "status": {"s": 1}});
        let extra =
            json!({"metadata": {"name": "a"}, "spec": {"n": 1}, "status": {"s": 1}, "data": {}});
        assert!(same_spec(&a, &relabelled, true) && same_spec(&a, &relabelled, false));
        assert!(same_spec(&a, &restatused, true) && !same_spec(&a, &restatused, false));
        assert!(same_spec(&a, &unstatused, true) && !same_spec(&a, &unstatused, false));
        assert!(!same_spec(&a, &respecced, true));
        assert!(!same_spec(&a, &extra, true) && !same_spec(&extra, &a, true));
        assert!(same_spec(&json!(1), &json!(1), true) && !same_spec(&a, &json!(1), true));
    }

    #[test]
    fn objects_equal_but_for_the_resource_version() {
        let a = json!({"metadata": {"name": "a", "resourceVersion": "1"}, "data": {"k": "v"}});
        let b = json!({"metadata": {"name": "a", "resourceVersion": "2"}, "data": {"k": "v"}});
        let unversioned = json!({"metadata": {"name": "a"}, "data": {"k": "v"}});
        assert!(equal_but_resource_version(&a, &b));
        assert!(equal_but_resource_version(&a, &unversioned));
        assert!(equal_but_resource_version(&unversioned, &b));
        for other in [
            json!({"metadata": {"name": "b", "resourceVersion": "1"}, "data": {"k": "v"}}),
            json!({"metadata": {"name": "a", "resourceVersion": "1"}, "data": {"k": "w"}}),
            json!({"metadata": {"name": "a", "resourceVersion": "1", "labels": {}}, "data": {"k": "v"}}),
            json!({"metadata": {"name": "a", "resourceVersion": "1"}}),
            json!({"metadata": "a", "data": {"k": "v"}}),
        ] {
            assert!(!equal_but_resource_version(&a, &other), "{other}");
            assert!(!equal_but_resource_version(&other, &a), "{other}");
        }
    }
}
