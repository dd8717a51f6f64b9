//! The children the watches hold: found by owner or by name, and which of
//! them are the operator's own.

use std::sync::Arc;

use kube::core::DynamicObject;
use kube::discovery::ApiResource;
use kube::runtime::reflector::Store;
use serde_json::Value;

use crate::decorate::{FIELD_MANAGER, LABEL_INSTANCE, LABEL_MANAGED_BY};
use crate::plugin::ObjectKey;

/// The label selector of every child watch: only what the operator manages.
pub fn managed_selector() -> String {
    format!("{LABEL_MANAGED_BY}={FIELD_MANAGER}")
}

/// The reflector stores of every child kind.
#[derive(Clone)]
pub struct ChildStores {
    stores: Vec<(ApiResource, Store<DynamicObject>)>,
    /// Which stores have had their first list, in `stores` order.
    listed: tokio::sync::watch::Receiver<Vec<bool>>,
}

/// An observed child: its kind and the object.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The API resource of its kind, for calls about it.
    pub resource: ApiResource,
    /// The object as the watch last saw it.
    pub object: Arc<DynamicObject>,
}

impl Observed {
    /// apiVersion, kind and name.
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            api_version: self.resource.api_version.clone(),
            kind: self.resource.kind.clone(),
            name: self.object.metadata.name.clone().unwrap_or_default(),
        }
    }

    /// The object as JSON.
    pub fn to_json(&self) -> Value {
        let mut value = serde_json::to_value(&*self.object).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert(
                "apiVersion".into(),
                Value::from(self.resource.api_version.clone()),
            );
            map.insert("kind".into(), Value::from(self.resource.kind.clone()));
        }
        value
    }
}

impl ChildStores {
    /// Stores for `resources`, in the same order. Must be called within a
    /// Tokio runtime: one task per store waits for its first list.
    pub fn new(stores: Vec<(ApiResource, Store<DynamicObject>)>) -> Self {
        let (tell, listed) = tokio::sync::watch::channel(vec![false; stores.len()]);
        // Exactly one waiter per store: kube's `Store::wait_until_ready`
        // wakes only the last of several concurrent waiters (it keeps one
        // waker), so concurrent reconciles waiting on it directly could
        // sleep until their timeout. A watch channel wakes every waiter.
        for (index, (_, store)) in stores.iter().enumerate() {
            let store = store.clone();
            let tell = tell.clone();
            tokio::spawn(async move {
                if store.wait_until_ready().await.is_ok() {
                    tell.send_modify(|listed| listed[index] = true);
                }
            });
        }
        ChildStores { stores, listed }
    }

    /// Every child of the owner with `uid`: our labels, and a controller
    /// owner reference to it. Nothing else is ever touched.
    pub fn of(&self, namespace: &str, owner_name: &str, uid: &str) -> Vec<Observed> {
        let mut found = Vec::new();
        for (resource, store) in &self.stores {
            for object in store.state() {
                if object.metadata.namespace.as_deref() == Some(namespace)
                    && is_ours(&object, owner_name, uid)
                {
                    found.push(Observed {
                        resource: resource.clone(),
                        object,
                    });
                }
            }
        }
        found.sort_by_key(|observed| observed.key());
        found
    }

    /// Wait (at most `timeout`) until every store has its first list.
    pub async fn wait_until_ready(&self, timeout: std::time::Duration) {
        let mut listed = self.listed.clone();
        let all = tokio::time::timeout(timeout, listed.wait_for(|l| l.iter().all(|done| *done)));
        if !matches!(all.await, Ok(Ok(_))) {
            let waiting: Vec<String> = self
                .stores
                .iter()
                .zip(self.listed.borrow().iter())
                .filter(|(_, done)| !**done)
                .map(|((resource, _), _)| resource.kind.clone())
                .collect();
            tracing::warn!(kinds = ?waiting, "the watches of these kinds have not listed yet; reconciling without them");
        }
    }

    /// The observed child with `key`, if any.
    pub fn find(&self, namespace: &str, key: &ObjectKey) -> Option<Arc<DynamicObject>> {
        let (_, store) = self
            .stores
            .iter()
            .find(|(r, _)| r.api_version == key.api_version && r.kind == key.kind)?;
        store.state().into_iter().find(|object| {
            object.metadata.namespace.as_deref() == Some(namespace)
                && object.metadata.name.as_deref() == Some(key.name.as_str())
        })
    }
}

/// Whether `object` carries our labels and a controller reference to `uid`.
pub fn is_ours(object: &DynamicObject, owner_name: &str, uid: &str) -> bool {
    let labels = object.metadata.labels.as_ref();
    let labelled = labels.is_some_and(|labels| {
        labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(FIELD_MANAGER)
            && labels.get(LABEL_INSTANCE).map(String::as_str) == Some(owner_name)
    });
    let owned = object
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|owner| owner.uid == uid && owner.controller == Some(true));
    labelled && owned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_concurrent_waiter_wakes_when_the_stores_have_listed() {
        let mut writers = Vec::new();
        let mut stores = Vec::new();
        let kinds = crate::kinds::ChildKinds::default();
        for kind in ["ConfigMap", "Service"] {
            let resource = kinds.get("v1", kind).expect("child kind").resource();
            let writer = kube::runtime::reflector::store::Writer::new(resource.clone());
            stores.push((resource, writer.as_reader()));
            writers.push(writer);
        }
        let children = ChildStores::new(stores);
        // Several reconciles wait at once, as on a start with many apps.
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let children = children.clone();
                tokio::spawn(async move {
                    children
                        .wait_until_ready(std::time::Duration::from_secs(600))
                        .await
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        for writer in &mut writers {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Init);
            writer.apply_watcher_event(&kube::runtime::watcher::Event::InitDone);
        }
        for waiter in waiters {
            // Far below the 600 s timeout: every waiter was woken.
            tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
                .await
                .expect("a waiter was never woken")
                .expect("waiter");
        }
    }
}
