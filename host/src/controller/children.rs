//! The children of apps: which kinds, where they are watched, and applying,
//! comparing and pruning them.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use kube::runtime::reflector::Store;
use serde_json::Value;

use crate::decorate::{DesiredObject, FIELD_MANAGER, LABEL_INSTANCE, LABEL_MANAGED_BY};
use crate::plugin::ObjectKey;

/// Kinds the operator watches as children: the default allow-list.
pub const CHILD_KINDS: &[(&str, &str, &str)] = &[
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "Secret", "secrets"),
    ("v1", "Service", "services"),
    ("v1", "ServiceAccount", "serviceaccounts"),
    ("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("apps/v1", "Deployment", "deployments"),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    ("batch/v1", "Job", "jobs"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
];

/// The API group of an `apiVersion` (`""` for the core group).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// The API resource of a child kind.
pub fn resource(api_version: &str, kind: &str) -> Option<ApiResource> {
    let (_, _, plural) = CHILD_KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Some(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

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
    /// Its kind.
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

/// Whether every field of `desired` is already in `observed` with the same
/// value: then applying would change nothing, and is not sent. Lists match
/// element by element (the API server adds defaults inside elements, never
/// new elements), maps field by field.
pub fn is_subset(desired: &Value, observed: &Value) -> bool {
    match (desired, observed) {
        (Value::Object(want), Value::Object(have)) => want
            .iter()
            .all(|(key, value)| have.get(key).is_some_and(|other| is_subset(value, other))),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(a, b)| is_subset(a, b))
        }
        // The API server normalises numbers (1.0 and 1 are the same quantity).
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => desired == observed,
    }
}

/// Why applying or pruning failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The kind is on the allow-list but not one the operator can address.
    #[error("{0}: the operator does not know where this kind lives")]
    UnknownKind(ObjectKey),
    /// The API server refused the object.
    #[error("{key}: {source}")]
    Api {
        /// The object.
        key: ObjectKey,
        /// What the API server said.
        #[source]
        source: kube::Error,
    },
}

impl ApplyError {
    /// Whether the API server found the object itself invalid (it will stay invalid).
    pub fn is_invalid(&self) -> bool {
        matches!(self, ApplyError::Api { source: kube::Error::Api(status), .. } if status.code == 422)
    }
}

/// Server-side apply `desired` (forcing: the operator owns these fields, and
/// forcing is what restores them after someone else changed them). Returns
/// the object as stored, or `None` when it was already as desired.
pub async fn apply(
    client: &kube::Client,
    namespace: &str,
    desired: &DesiredObject,
    observed: Option<&DynamicObject>,
) -> Result<Option<DynamicObject>, ApplyError> {
    let key = desired.key().clone();
    if let Some(observed) = observed
        && let Ok(observed) = serde_json::to_value(observed)
        && is_subset(&strip_type(desired.object()), &observed)
    {
        return Ok(None);
    }
    let resource = resource(&key.api_version, &key.kind)
        .ok_or_else(|| ApplyError::UnknownKind(key.clone()))?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&key.name, &params, &Patch::Apply(desired.object()))
        .await
        .map(Some)
        .map_err(|source| ApplyError::Api { key, source })
}

/// `object` without apiVersion and kind, which a DynamicObject does not carry.
fn strip_type(object: &Value) -> Value {
    let mut object = object.clone();
    if let Value::Object(map) = &mut object {
        map.remove("apiVersion");
        map.remove("kind");
    }
    object
}

/// Delete the observed children whose keys are not in `keep`. Only objects
/// that passed [`is_ours`] are ever observed, so nothing else is deleted.
pub async fn prune(
    client: &kube::Client,
    namespace: &str,
    observed: &[Observed],
    keep: &BTreeSet<ObjectKey>,
) -> Result<Vec<ObjectKey>, ApplyError> {
    let mut pruned = Vec::new();
    for child in observed {
        let key = child.key();
        if keep.contains(&key) {
            continue;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &child.resource);
        match api.delete(&key.name, &DeleteParams::background()).await {
            Ok(_) => pruned.push(key),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(ApplyError::Api { key, source }),
        }
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn every_concurrent_waiter_wakes_when_the_stores_have_listed() {
        let mut writers = Vec::new();
        let mut stores = Vec::new();
        for kind in ["ConfigMap", "Service"] {
            let resource = resource("v1", kind).expect("child kind");
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

    #[test]
    fn subsets_ignore_what_the_server_adds() {
        let desired = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x:1"}]}}}});
        let observed = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "uid": "u"}, "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "x:1", "imagePullPolicy": "IfNotPresent"}]}}}});
        assert!(is_subset(&desired, &observed));
    }

    #[test]
    fn any_change_we_own_is_not_a_subset() {
        let desired = json!({"spec": {"replicas": 3, "ports": [{"port": 80}]}});
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"ports": [{"port": 80}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 81}]}})
        ));
        assert!(is_subset(&json!({"a": 1}), &json!({"a": 1.0})));
    }

    #[test]
    fn child_kinds_resolve() {
        let deployment = resource("apps/v1", "Deployment").unwrap();
        assert_eq!(deployment.plural, "deployments");
        assert_eq!(deployment.group, "apps");
        let config_map = resource("v1", "ConfigMap").unwrap();
        assert_eq!(config_map.group, "");
        assert!(resource("rbac.authorization.k8s.io/v1", "Role").is_none());
    }
}
