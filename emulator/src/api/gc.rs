//! Garbage collection: owner references on deletion (Background, Foreground, Orphan),
//! dangling owners, and namespace deletion. Kubernetes runs these in the garbage collector and
//! namespace controllers, asynchronously; here the simulated garbage collector (see
//! [`crate::cluster`]) calls [`Api::gc_event`] for every change in the store, and each step
//! runs under the store lock.

use std::sync::Arc;

use serde_json::{Value, json};

use super::meta::{finalizers, meta, meta_mut, meta_str};
use super::{Api, DeleteOptions};
use crate::registry::{GroupResource, ResourceType};
use crate::store::{Event, EventType, Inner, name_of};

/// Background propagation, what the garbage collector and namespace controller delete with.
fn background() -> DeleteOptions {
    DeleteOptions {
        propagation: Some("Background".into()),
        ..Default::default()
    }
}

fn owner_refs(v: &Value) -> Vec<Value> {
    meta(v)
        .get("ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn ref_uid(r: &Value) -> Option<&str> {
    r.get("uid").and_then(Value::as_str)
}

impl Api {
    pub(super) fn rt_for(&self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        self.registry().preferred_for(gr)
    }

    pub(super) fn set_finalizers(
        &self,
        inner: &mut Inner,
        gr: &GroupResource,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let Some(obj) = inner.get(gr, ns, name) else {
            return;
        };
        let mut new = (*obj).clone();
        f(&mut new);
        if new == *obj {
            return;
        }
        let rv = inner.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let done = meta(&new).get("deletionTimestamp").is_some() && finalizers(&new).is_empty();
        inner.put(gr, ns, name, new, rv);
        if done && let Some(rt) = self.rt_for(gr) {
            self.remove_now(inner, &rt, ns, name);
        }
    }

    /// After an object is marked for deletion: orphan or foreground-delete its dependents,
    /// and empty a namespace.
    pub(super) fn gc_after_mark(&self, inner: &mut Inner, rt: &Arc<ResourceType>, obj: &Value) {
        let uid = meta_str(obj, "uid").unwrap_or_default().to_string();
        let ns = meta_str(obj, "namespace").unwrap_or_default().to_string();
        let name = name_of(obj);
        let fins = finalizers(obj);
        if fins.iter().any(|f| f == "orphan") {
            for (gr, (dns, dname)) in inner.dependents_of(&uid) {
                let u = uid.clone();
                self.set_finalizers(inner, &gr, &dns, &dname, |v| {
                    if let Some(Value::Array(refs)) = meta_mut(v).get_mut("ownerReferences") {
                        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(u.as_str()));
                    }
                    if meta(v)
                        .get("ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(Vec::is_empty)
                    {
                        meta_mut(v).remove("ownerReferences");
                    }
                });
            }
            self.set_finalizers(inner, &rt.storage, &ns, &name, |v| {
                if let Some(Value::Array(f)) = meta_mut(v).get_mut("finalizers") {
                    f.retain(|x| x != "orphan");
                }
            });
            return;
        }
        if fins.iter().any(|f| f == "foregroundDeletion") {
            for (gr, (dns, dname)) in inner.dependents_of(&uid) {
                if let Some(drt) = self.rt_for(&gr) {
                    let _ = self.delete_locked(
                        inner,
                        &drt,
                        &dns,
                        &dname,
                        &DeleteOptions {
                            propagation: Some("Foreground".into()),
                            ..Default::default()
                        },
                    );
                }
            }
            self.finish_foreground(inner, &uid);
        }
        if rt.group.is_empty() && rt.resource == "namespaces" {
            self.empty_namespace(inner, &name);
        }
    }

    pub(super) fn finish_foreground(&self, inner: &mut Inner, uid: &str) {
        let Some((gr, (ns, name))) = inner.by_uid(uid).cloned() else {
            return;
        };
        let Some(owner) = inner.get(&gr, &ns, &name) else {
            return;
        };
        if !finalizers(&owner).iter().any(|f| f == "foregroundDeletion") {
            return;
        }
        let blocking = inner
            .dependents_of(uid)
            .into_iter()
            .any(|(dgr, (dns, dname))| {
                inner.get(&dgr, &dns, &dname).is_some_and(|d| {
                    meta(&d)
                        .get("ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|refs| {
                            refs.iter().any(|r| {
                                r.get("uid").and_then(Value::as_str) == Some(uid)
                                    && r.get("blockOwnerDeletion").and_then(Value::as_bool)
                                        == Some(true)
                            })
                        })
                })
            });
        if !blocking {
            self.set_finalizers(inner, &gr, &ns, &name, |v| {
                if let Some(Value::Array(f)) = meta_mut(v).get_mut("finalizers") {
                    f.retain(|x| x != "foregroundDeletion");
                }
            });
        }
    }

    pub(super) fn empty_namespace(&self, inner: &mut Inner, ns: &str) {
        for gr in inner.storages() {
            let Some(rt) = self.rt_for(&gr) else { continue };
            if !rt.namespaced {
                continue;
            }
            for obj in inner.list_current(&gr, Some(ns)) {
                if meta(&obj).get("deletionTimestamp").is_none() {
                    let _ = self.delete_locked(inner, &rt, ns, &name_of(&obj), &background());
                }
            }
        }
        self.maybe_finish_namespace(inner, ns);
    }

    pub(super) fn maybe_finish_namespace(&self, inner: &mut Inner, ns: &str) {
        let nsgr = GroupResource::new("", "namespaces");
        let Some(nsobj) = inner.get(&nsgr, "", ns) else {
            return;
        };
        if meta(&nsobj).get("deletionTimestamp").is_none() {
            return;
        }
        let empty = inner.storages().iter().all(|gr| {
            self.rt_for(gr).is_none_or(|rt| !rt.namespaced)
                || inner.list_current(gr, Some(ns)).is_empty()
        });
        if !empty {
            return;
        }
        let mut new = (*nsobj).clone();
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("finalizers");
        }
        if new != *nsobj {
            let rv = inner.next_rv();
            meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
            inner.put(&nsgr, "", ns, new.clone(), rv);
        }
        if finalizers(&new).is_empty()
            && let Some(rt) = self.rt_for(&nsgr)
        {
            self.remove_now(inner, &rt, "", ns);
        }
    }

    /// After an object is gone: collect dependents with no remaining owner, release a
    /// foreground owner, finish a terminating namespace.
    pub(super) fn gc_after_remove(&self, inner: &mut Inner, obj: &Value) {
        let uid = meta_str(obj, "uid").unwrap_or_default().to_string();
        for (gr, (dns, dname)) in inner.dependents_of(&uid) {
            self.check_owners(inner, &gr, &dns, &dname);
        }
        for r in owner_refs(obj) {
            if let Some(owner_uid) = ref_uid(&r) {
                self.finish_foreground(inner, owner_uid);
            }
        }
        if let Some(ns) = meta_str(obj, "namespace").filter(|n| !n.is_empty()) {
            self.maybe_finish_namespace(inner, ns);
        }
    }

    /// Whether the owner with this uid exists where a dependent in `ns` may point at it: a
    /// namespaced owner must live in the dependent's namespace, as Kubernetes' garbage
    /// collector requires (it treats other references as absent).
    fn owner_present(&self, inner: &Inner, owner_uid: &str, ns: &str) -> bool {
        let Some((gr, (ons, _))) = inner.by_uid(owner_uid) else {
            return false;
        };
        match self.rt_for(gr) {
            Some(rt) if rt.namespaced => ons == ns,
            Some(_) => true,
            None => false,
        }
    }

    /// A dependent whose owners are all absent is deleted (Background); references to absent
    /// owners are removed from one that still has an owner.
    fn check_owners(&self, inner: &mut Inner, gr: &GroupResource, ns: &str, name: &str) {
        let Some(dep) = inner.get(gr, ns, name) else {
            return;
        };
        let refs = owner_refs(&dep);
        if refs.is_empty() || meta(&dep).get("deletionTimestamp").is_some() {
            return;
        }
        let (solid, dangling): (Vec<&Value>, Vec<&Value>) = refs
            .iter()
            .partition(|r| ref_uid(r).is_some_and(|u| self.owner_present(inner, u, ns)));
        if dangling.is_empty() {
            return;
        }
        if solid.is_empty() {
            if let Some(rt) = self.rt_for(gr) {
                tracing::debug!(resource = %rt.resource, ns, name, "garbage-collecting a dependent whose owners are gone");
                let _ = self.delete_locked(inner, &rt, ns, name, &background());
            }
            return;
        }
        let gone: Vec<String> = dangling
            .iter()
            .filter_map(|r| ref_uid(r).map(str::to_string))
            .collect();
        self.set_finalizers(inner, gr, ns, name, |v| {
            if let Some(Value::Array(refs)) = meta_mut(v).get_mut("ownerReferences") {
                refs.retain(|r| ref_uid(r).is_none_or(|u| !gone.iter().any(|g| g == u)));
            }
        });
    }

    /// The garbage collector's reaction to one change in the store (the simulated garbage
    /// collector controller calls this for every event, in order).
    pub fn gc_event(&self, e: &Event) {
        if !self.opts.garbage_collection {
            return;
        }
        let relevant = match e.kind {
            EventType::Deleted => true,
            _ => {
                meta(&e.object).get("ownerReferences").is_some()
                    || meta(&e.object).get("deletionTimestamp").is_some()
                    || e.prev
                        .as_ref()
                        .is_some_and(|p| meta(p).get("ownerReferences").is_some())
            }
        };
        if !relevant {
            return;
        }
        let mut inner = self.store.lock();
        if e.kind == EventType::Deleted {
            self.gc_after_remove(&mut inner, &e.object);
            return;
        }
        // The event may be stale: act on the object as it is now.
        let name = name_of(&e.object);
        if let Some(cur) = inner.get(&e.storage, &e.namespace, &name) {
            self.gc_object(&mut inner, &e.storage, &cur);
        }
        // A dependent that dropped an owner reference or blockOwnerDeletion may release a
        // foreground owner.
        if let Some(prev) = &e.prev {
            for r in owner_refs(prev) {
                if let Some(u) = ref_uid(&r) {
                    self.finish_foreground(&mut inner, u);
                }
            }
        }
    }

    fn gc_object(&self, inner: &mut Inner, gr: &GroupResource, obj: &Value) {
        let ns = meta_str(obj, "namespace").unwrap_or_default().to_string();
        let name = name_of(obj);
        let deleting = meta(obj).get("deletionTimestamp").is_some();
        if deleting && let Some(rt) = self.rt_for(gr) {
            let fins = finalizers(obj);
            let is_ns = rt.group.is_empty() && rt.resource == "namespaces";
            if is_ns
                || fins
                    .iter()
                    .any(|f| f == "orphan" || f == "foregroundDeletion")
            {
                self.gc_after_mark(inner, &rt, obj);
            }
        }
        if !deleting {
            self.check_owners(inner, gr, &ns, &name);
        }
    }

    /// Examines every stored object, as the garbage collector does when it starts (and after
    /// missing events): pending orphan and foreground deletions, terminating namespaces and
    /// dependents whose owners are gone.
    pub fn gc_resync(&self) {
        if !self.opts.garbage_collection {
            return;
        }
        let mut inner = self.store.lock();
        for gr in inner.storages() {
            for obj in inner.list_current(&gr, None) {
                let relevant = meta(&obj).get("ownerReferences").is_some()
                    || meta(&obj).get("deletionTimestamp").is_some();
                if relevant {
                    // Re-read: an earlier step may have changed or removed it.
                    let ns = meta_str(&obj, "namespace").unwrap_or_default().to_string();
                    if let Some(cur) = inner.get(&gr, &ns, &name_of(&obj)) {
                        self.gc_object(&mut inner, &gr, &cur);
                    }
                }
            }
        }
    }
}
