//! CustomResourceDefinitions as writes see them: a CRD's status and served types are computed
//! when it is written, its types served once it is stored, and its objects and types removed
//! with it.

use std::sync::Arc;

use serde_json::{Value, json};

use super::meta::{meta_mut, meta_str};
use super::{Api, Sub};
use crate::crd::{established_status, types_from_crd};
use crate::error::Cause;
use crate::registry::{GroupResource, Registry, ResourceType};
use crate::store::{Inner, name_of};

/// Whether the type is apiextensions.k8s.io's CustomResourceDefinition.
pub(super) fn is_crd(rt: &ResourceType) -> bool {
    rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions"
}

/// The group/resource a CRD serves.
fn served_by(crd: &Value) -> GroupResource {
    let spec = crd.get("spec");
    let group = spec
        .and_then(|s| s.get("group"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let plural = spec
        .and_then(|s| s.get("names"))
        .and_then(|n| n.get("plural"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    GroupResource::new(group, plural)
}

impl Api {
    /// For a CRD being written: the types it will serve (or its errors into `errs`), and on the
    /// main resource its status (conditions kept, accepted names and stored versions fresh).
    pub(super) fn prepare_crd(
        &self,
        old: Option<&Value>,
        new: &mut Value,
        sub: Sub,
        ts: &str,
        errs: &mut Vec<Cause>,
    ) -> Option<Vec<ResourceType>> {
        let types = match types_from_crd(new, &self.builtin) {
            Ok(types) => Some(types),
            Err(e) => {
                errs.extend(e);
                None
            }
        };
        if sub == Sub::Main {
            let status = match old.and_then(|o| o.get("status")) {
                Some(s) if s.get("conditions").is_some() => {
                    let mut s = s.clone();
                    let fresh = established_status(new, ts);
                    s["acceptedNames"] = fresh["acceptedNames"].clone();
                    s["storedVersions"] = fresh["storedVersions"].clone();
                    s
                }
                _ => established_status(new, ts),
            };
            new["status"] = status;
        }
        types
    }

    /// Serves a stored CRD's types in place of its previous ones. Called under the store lock
    /// (`_inner`), so no request sees the CRD without its types.
    pub(super) fn register_crd(&self, _inner: &mut Inner, crd: &Value, types: Vec<ResourceType>) {
        self.change_registry(|reg| {
            reg.remove_storage(&served_by(crd));
            for t in types {
                reg.insert(t);
            }
        });
    }

    /// Deletes a removed CRD's objects and stops serving its types.
    pub(super) fn unregister_crd(&self, inner: &mut Inner, crd: &Value) {
        let gr = served_by(crd);
        for obj in inner.list_current(&gr, None) {
            let rv = inner.next_rv();
            let mut last = (*obj).clone();
            meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
            let ns = meta_str(&obj, "namespace").unwrap_or_default().to_string();
            inner.remove(&gr, &ns, &name_of(&obj), last, rv);
        }
        self.change_registry(|reg| reg.remove_storage(&gr));
    }

    /// Serves a changed copy of the registry (readers keep the one they hold).
    fn change_registry(&self, change: impl FnOnce(&mut Registry)) {
        let mut reg = (*self.registry()).clone();
        change(&mut reg);
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(reg);
    }
}
