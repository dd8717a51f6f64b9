//! Garbage collection: owner references on deletion (Background, Foreground, Orphan) and
//! namespace deletion. Runs synchronously under the store lock, switchable per emulator.

use super::*;

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
                    let _ = self.delete_locked(
                        inner,
                        &rt,
                        ns,
                        &name_of(&obj),
                        &DeleteOptions::default(),
                    );
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
            let Some(dep) = inner.get(&gr, &dns, &dname) else {
                continue;
            };
            let owners_left = meta(&dep)
                .get("ownerReferences")
                .and_then(Value::as_array)
                .map(|refs| {
                    refs.iter().any(|r| {
                        r.get("uid")
                            .and_then(Value::as_str)
                            .is_some_and(|u| u != uid && inner.by_uid(u).is_some())
                    })
                })
                .unwrap_or(false);
            if !owners_left
                && meta(&dep).get("deletionTimestamp").is_none()
                && let Some(rt) = self.rt_for(&gr)
            {
                let _ = self.delete_locked(inner, &rt, &dns, &dname, &DeleteOptions::default());
            }
        }
        if let Some(Value::Array(refs)) = meta(obj).get("ownerReferences") {
            for r in refs {
                if let Some(owner_uid) = r.get("uid").and_then(Value::as_str) {
                    self.finish_foreground(inner, owner_uid);
                }
            }
        }
        if let Some(ns) = meta_str(obj, "namespace").filter(|n| !n.is_empty()) {
            self.maybe_finish_namespace(inner, ns);
        }
    }
}
