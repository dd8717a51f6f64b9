//! The children the watches hold, indexed by controller owner and by name
//! so that a reconcile finds its own in time independent of how many apps
//! there are, and which of them are the operator's own.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::DynamicObject;
use kube::discovery::ApiResource;
use kube::runtime::watcher;
use serde_json::Value;

use super::wire::WireChild;
use crate::decorate::{FIELD_MANAGER, LABEL_INSTANCE, LABEL_MANAGED_BY};
use crate::plugin::ObjectKey;

/// The label selector of every child watch: only what the operator manages.
pub fn managed_selector() -> String {
    format!("{LABEL_MANAGED_BY}={FIELD_MANAGER}")
}

/// Namespace and name of a cached object.
type NameKey = (String, String);

/// A cached object: the few fields the index and the checks of
/// [`super::settled`] read, and the whole object as JSON text. Parsed, an
/// object costs several times its text (every JSON object of a
/// `serde_json::Value` or a map of `ObjectMeta` is a B-tree node of eleven
/// slots, ~600 bytes, however few keys it has), and these trees were most of
/// the operator's memory at scale; a reconcile that needs an object parses
/// it (microseconds), and deciding whether one is needed parses nothing.
#[derive(Debug)]
pub struct Cached {
    namespace: String,
    name: String,
    resource_version: Option<String>,
    /// The uid of its controller owner reference.
    controller_uid: Option<String>,
    /// Its instance label, when it carries the operator's managed-by label.
    instance: Option<String>,
    /// The object as the watch read it ([`WireChild::text`]), shared with it.
    text: Arc<str>,
}

impl Cached {
    fn new(child: &WireChild) -> Self {
        let metadata = &child.metadata;
        let labels = metadata.labels.as_ref();
        let managed = labels
            .and_then(|l| l.get(LABEL_MANAGED_BY))
            .map(String::as_str)
            == Some(FIELD_MANAGER);
        Cached {
            namespace: metadata.namespace.clone().unwrap_or_default(),
            name: metadata.name.clone().unwrap_or_default(),
            resource_version: metadata.resource_version.clone(),
            controller_uid: controller_uid(metadata).map(str::to_owned),
            instance: labels
                .filter(|_| managed)
                .and_then(|l| l.get(LABEL_INSTANCE))
                .cloned(),
            text: Arc::clone(&child.text),
        }
    }

    /// The whole object.
    pub fn object(&self) -> DynamicObject {
        // The text is what the watch's reader wrote, so it parses; were it
        // not to, an object with only its name is what a reconcile would see.
        serde_json::from_str(&self.text)
            .map(|object: super::wire::WireObject| object.0)
            .unwrap_or_else(|_| {
                let mut object = DynamicObject {
                    types: None,
                    metadata: ObjectMeta::default(),
                    data: Value::Null,
                };
                object.metadata.name = Some(self.name.clone());
                object.metadata.namespace = Some(self.namespace.clone());
                object
            })
    }

    /// It as its watch event carried it.
    fn watched(&self) -> WireChild {
        let object = self.object();
        WireChild {
            types: object.types,
            metadata: object.metadata,
            text: Arc::clone(&self.text),
        }
    }

    fn key(&self) -> NameKey {
        (self.namespace.clone(), self.name.clone())
    }

    /// [`is_ours`], from the fields kept.
    fn is_ours(&self, owner_name: &str, uid: &str) -> bool {
        self.instance.as_deref() == Some(owner_name) && self.controller_uid.as_deref() == Some(uid)
    }
}

/// The cached objects of one child kind: by namespace and name, and the
/// names each controller owner (by uid) holds.
#[derive(Debug, Default)]
pub struct KindIndex {
    by_name: HashMap<NameKey, Arc<Cached>>,
    /// Names per owner uid: a short list (an owner has one or a few objects
    /// of a kind), cheaper than a set.
    by_owner: HashMap<String, Vec<NameKey>>,
    by_namespace: HashMap<String, BTreeSet<String>>,
    /// The objects of a (re)list in progress; they replace the cache when it ends.
    relisting: Option<HashMap<NameKey, Arc<Cached>>>,
}

fn name_key(metadata: &ObjectMeta) -> NameKey {
    (
        metadata.namespace.clone().unwrap_or_default(),
        metadata.name.clone().unwrap_or_default(),
    )
}

/// The uid of the controller owner reference, if any: only a controller
/// reference makes an object a child (see [`is_ours`]).
pub(crate) fn controller_uid(metadata: &ObjectMeta) -> Option<&str> {
    metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|owner| owner.controller == Some(true))
        .map(|owner| owner.uid.as_str())
}

impl KindIndex {
    /// Follow one watch event. Returns whether it ended a (re)list.
    pub fn apply(&mut self, event: &watcher::Event<WireChild>) -> bool {
        match event {
            watcher::Event::Apply(object) => {
                self.insert(Arc::new(Cached::new(object)));
                false
            }
            watcher::Event::Delete(object) => {
                self.remove(&name_key(&object.metadata));
                false
            }
            watcher::Event::Init => {
                self.relisting = Some(HashMap::new());
                false
            }
            watcher::Event::InitApply(object) => {
                self.relisting
                    .get_or_insert_with(HashMap::new)
                    .insert(name_key(&object.metadata), Arc::new(Cached::new(object)));
                false
            }
            watcher::Event::InitDone => {
                // A relist replaces everything: what it did not return is gone.
                let listed = self.relisting.take().unwrap_or_default();
                self.by_owner.clear();
                self.by_namespace.clear();
                for (key, object) in &listed {
                    self.by_namespace
                        .entry(key.0.clone())
                        .or_default()
                        .insert(key.1.clone());
                    if let Some(uid) = &object.controller_uid {
                        self.by_owner
                            .entry(uid.clone())
                            .or_default()
                            .push(key.clone());
                    }
                }
                self.by_name = listed;
                true
            }
        }
    }

    fn insert(&mut self, object: Arc<Cached>) {
        let key = object.key();
        // Its owner may have changed: the old entry goes first.
        self.remove(&key);
        if let Some(uid) = &object.controller_uid {
            self.by_owner
                .entry(uid.clone())
                .or_default()
                .push(key.clone());
        }
        self.by_namespace
            .entry(key.0.clone())
            .or_default()
            .insert(key.1.clone());
        self.by_name.insert(key, object);
    }

    fn remove(&mut self, key: &NameKey) {
        let Some(old) = self.by_name.remove(key) else {
            return;
        };
        if let Some(names) = self.by_namespace.get_mut(&key.0) {
            names.remove(&key.1);
            if names.is_empty() {
                self.by_namespace.remove(&key.0);
            }
        }
        if let Some(uid) = &old.controller_uid
            && let Some(names) = self.by_owner.get_mut(uid)
        {
            names.retain(|name| name != key);
            if names.is_empty() {
                self.by_owner.remove(uid);
            }
        }
    }

    /// The objects whose controller owner has `uid`, by name.
    fn owned_by(&self, uid: &str) -> impl Iterator<Item = &Arc<Cached>> {
        self.by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|key| self.by_name.get(key))
    }

    /// The objects of `namespace`, by name.
    fn in_namespace<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a Arc<Cached>> {
        self.by_namespace
            .get(namespace)
            .into_iter()
            .flatten()
            .filter_map(move |name| self.by_name.get(&(namespace.to_owned(), name.clone())))
    }

    /// The object `namespace/name`, if cached.
    fn get(&self, namespace: &str, name: &str) -> Option<&Arc<Cached>> {
        self.by_name.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The indexes of every child kind, read by reconciles.
#[derive(Clone)]
pub struct ChildStores {
    kinds: Vec<(ApiResource, Arc<RwLock<KindIndex>>)>,
    /// Which kinds have had their first list, in `kinds` order.
    listed: tokio::sync::watch::Receiver<Vec<bool>>,
}

/// Keeps the index of one child kind in step with its watch.
pub struct ChildWriter {
    index: Arc<RwLock<KindIndex>>,
    position: usize,
    listed: tokio::sync::watch::Sender<Vec<bool>>,
}

impl ChildWriter {
    /// Follow one event of the kind's watch: call it for every event, before
    /// the controller sees the object (so that its reconcile reads it).
    pub fn apply(&self, event: &watcher::Event<WireChild>) {
        let listed = self
            .index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .apply(event);
        if listed {
            // One channel wakes every waiter (kube's `Store::wait_until_ready`
            // keeps one waker, so of several concurrent waiters only the last
            // would wake).
            self.listed.send_if_modified(|done| {
                let first = done.get(self.position).is_some_and(|d| !*d);
                if let Some(slot) = done.get_mut(self.position) {
                    *slot = true;
                }
                first
            });
        }
    }
}

impl super::scope::Cache<WireChild> for ChildWriter {
    fn apply(&mut self, event: &watcher::Event<WireChild>) {
        ChildWriter::apply(self, event);
    }

    fn held(&self, namespace: Option<&str>) -> Vec<Arc<WireChild>> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let held: Vec<&Arc<Cached>> = match namespace {
            Some(namespace) => index.in_namespace(namespace).collect(),
            None => index.by_name.values().collect(),
        };
        held.into_iter().map(|c| Arc::new(c.watched())).collect()
    }
}

/// An observed child: its kind and the object.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The API resource of its kind, for calls about it.
    pub resource: ApiResource,
    /// The object as the watch last saw it.
    pub object: Arc<DynamicObject>,
}

/// What the checks of [`super::settled`] read of an observed child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// apiVersion, kind and name.
    pub key: ObjectKey,
    /// Its resourceVersion.
    pub version: Option<String>,
}

impl Observed {
    /// Its key and version.
    pub fn seen(&self) -> Seen {
        Seen {
            key: self.key(),
            version: self.object.metadata.resource_version.clone(),
        }
    }

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
    /// Indexes for `resources`, in the same order, and the writer of each.
    pub fn new(resources: Vec<ApiResource>) -> (Self, Vec<ChildWriter>) {
        let (tell, listed) = tokio::sync::watch::channel(vec![false; resources.len()]);
        let mut kinds = Vec::new();
        let mut writers = Vec::new();
        for (position, resource) in resources.into_iter().enumerate() {
            let index = Arc::new(RwLock::new(KindIndex::default()));
            writers.push(ChildWriter {
                index: Arc::clone(&index),
                position,
                listed: tell.clone(),
            });
            kinds.push((resource, index));
        }
        (ChildStores { kinds, listed }, writers)
    }

    /// Every child of the owner with `uid`: our labels, and a controller
    /// owner reference to it. Nothing else is ever touched.
    pub fn of(&self, namespace: &str, owner_name: &str, uid: &str) -> Vec<Observed> {
        let mut found = Vec::new();
        self.each_of(namespace, owner_name, uid, |resource, cached| {
            found.push(Observed {
                resource: resource.clone(),
                object: Arc::new(cached.object()),
            });
        });
        found.sort_by_key(|observed| observed.key());
        found
    }

    /// The key and version of every child [`ChildStores::of`] would return,
    /// without parsing any.
    pub fn seen_of(&self, namespace: &str, owner_name: &str, uid: &str) -> Vec<Seen> {
        let mut found = Vec::new();
        self.each_of(namespace, owner_name, uid, |resource, cached| {
            found.push(Seen {
                key: ObjectKey {
                    api_version: resource.api_version.clone(),
                    kind: resource.kind.clone(),
                    name: cached.name.clone(),
                },
                version: cached.resource_version.clone(),
            });
        });
        found.sort_by(|a, b| a.key.cmp(&b.key));
        found
    }

    fn each_of(
        &self,
        namespace: &str,
        owner_name: &str,
        uid: &str,
        mut found: impl FnMut(&ApiResource, &Arc<Cached>),
    ) {
        for (resource, index) in &self.kinds {
            let index = index.read().unwrap_or_else(|e| e.into_inner());
            for cached in index.owned_by(uid) {
                if cached.namespace == namespace && cached.is_ours(owner_name, uid) {
                    found(resource, cached);
                }
            }
        }
    }

    /// Wait (at most `timeout`) until every kind has its first list.
    pub async fn wait_until_ready(&self, timeout: std::time::Duration) {
        let mut listed = self.listed.clone();
        let all = tokio::time::timeout(timeout, listed.wait_for(|l| l.iter().all(|done| *done)));
        if !matches!(all.await, Ok(Ok(_))) {
            let waiting: Vec<String> = self
                .kinds
                .iter()
                .zip(self.listed.borrow().iter())
                .filter(|(_, done)| !**done)
                .map(|((resource, _), _)| resource.kind.clone())
                .collect();
            tracing::warn!(kinds = ?waiting, "the watches of these kinds have not listed yet; reconciling without them");
        }
    }

    /// Every cached object of `namespace`, of every kind.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        let mut found = Vec::new();
        for (_, index) in &self.kinds {
            let index = index.read().unwrap_or_else(|e| e.into_inner());
            found.extend(index.in_namespace(namespace).map(|c| Arc::new(c.object())));
        }
        found
    }

    /// Whether every kind has had its first list.
    pub fn listed(&self) -> bool {
        self.listed.borrow().iter().all(|done| *done)
    }

    /// Wait until every kind has had its first list (for ever, if none comes).
    pub async fn wait_listed(&self) {
        let mut listed = self.listed.clone();
        if listed
            .wait_for(|l| l.iter().all(|done| *done))
            .await
            .is_err()
        {
            // Every writer is gone: no list will come.
            std::future::pending::<()>().await;
        }
    }

    /// The observed child with `key`, if any.
    pub fn find(&self, namespace: &str, key: &ObjectKey) -> Option<Arc<DynamicObject>> {
        let (_, index) = self
            .kinds
            .iter()
            .find(|(r, _)| r.api_version == key.api_version && r.kind == key.kind)?;
        let index = index.read().unwrap_or_else(|e| e.into_inner());
        index
            .get(namespace, &key.name)
            .map(|c| Arc::new(c.object()))
    }
}

/// Whether an object (its metadata) carries our labels and a controller
/// reference to `uid`.
pub fn is_ours(metadata: &ObjectMeta, owner_name: &str, uid: &str) -> bool {
    let labels = metadata.labels.as_ref();
    let labelled = labels.is_some_and(|labels| {
        labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(FIELD_MANAGER)
            && labels.get(LABEL_INSTANCE).map(String::as_str) == Some(owner_name)
    });
    let owned = metadata
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
    use serde_json::json;
    use watcher::Event;

    fn child_object(name: &str, owner: Option<(&str, &str)>, data: &str) -> DynamicObject {
        let mut object = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "demo",
                "labels": {LABEL_MANAGED_BY: FIELD_MANAGER}},
            "data": {"v": data},
        });
        if let Some((app, uid)) = owner {
            object["metadata"]["labels"][LABEL_INSTANCE] = json!(app);
            object["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioApp",
                "name": app, "uid": uid, "controller": true}]);
        }
        serde_json::from_value(object).expect("a child")
    }

    /// `object` as its watch event carries it.
    fn watched(object: &DynamicObject) -> WireChild {
        let text = serde_json::to_string(object).expect("an object");
        serde_json::from_str(&text).expect("the watch reads it")
    }

    fn child(name: &str, owner: Option<(&str, &str)>, data: &str) -> WireChild {
        watched(&child_object(name, owner, data))
    }

    fn config_maps() -> (ChildStores, ChildWriter) {
        let kinds = crate::kinds::ChildKinds::default();
        let resource = kinds.get("v1", "ConfigMap").expect("child kind").resource();
        let (stores, mut writers) = ChildStores::new(vec![resource]);
        let writer = writers.pop().expect("one writer");
        (stores, writer)
    }

    fn names(observed: &[Observed]) -> Vec<String> {
        observed.iter().map(|o| o.key().name).collect()
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: name.into(),
        }
    }

    fn data(object: &DynamicObject) -> &str {
        object.data["data"]["v"].as_str().unwrap_or_default()
    }

    #[test]
    fn children_are_found_by_owner_and_by_name_as_the_watch_changes() {
        let (stores, writer) = config_maps();
        writer.apply(&Event::Apply(child("a-config", Some(("a", "uid-a")), "1")));
        writer.apply(&Event::Apply(child("a-extra", Some(("a", "uid-a")), "1")));
        writer.apply(&Event::Apply(child("b-config", Some(("b", "uid-b")), "1")));
        assert_eq!(
            names(&stores.of("demo", "a", "uid-a")),
            ["a-config", "a-extra"]
        );
        assert_eq!(names(&stores.of("demo", "b", "uid-b")), ["b-config"]);
        // Another namespace, or an owner of the same uid under another name, is not it.
        assert!(stores.of("other", "a", "uid-a").is_empty());
        assert!(stores.of("demo", "b", "uid-a").is_empty());

        // Updated: the new object, once.
        writer.apply(&Event::Apply(child("a-config", Some(("a", "uid-a")), "2")));
        let of_a = stores.of("demo", "a", "uid-a");
        assert_eq!(names(&of_a), ["a-config", "a-extra"]);
        assert_eq!(data(&of_a[0].object), "2");
        let found = stores.find("demo", &key("a-config")).expect("by name");
        assert_eq!(data(&found), "2");
        assert!(stores.find("other", &key("a-config")).is_none());

        // Deleted.
        writer.apply(&Event::Delete(child("a-extra", Some(("a", "uid-a")), "1")));
        assert_eq!(names(&stores.of("demo", "a", "uid-a")), ["a-config"]);
        assert_eq!(stores.in_namespace("demo").len(), 2);
        assert!(stores.find("demo", &key("a-extra")).is_none());

        // Its owner changes (a new app of the same name adopted it): it
        // moves to the new owner and leaves the old one.
        writer.apply(&Event::Apply(child("a-config", Some(("a", "uid-a2")), "3")));
        assert!(stores.of("demo", "a", "uid-a").is_empty());
        assert_eq!(names(&stores.of("demo", "a", "uid-a2")), ["a-config"]);
        // Released (no controller reference): found by name, owned by none.
        writer.apply(&Event::Apply(child("a-config", None, "4")));
        assert!(stores.of("demo", "a", "uid-a2").is_empty());
        assert_eq!(
            data(&stores.find("demo", &key("a-config")).expect("by name")),
            "4"
        );
    }

    #[test]
    fn a_relist_replaces_what_the_index_holds() {
        let (stores, writer) = config_maps();
        writer.apply(&Event::Init);
        writer.apply(&Event::InitApply(child(
            "a-config",
            Some(("a", "uid-a")),
            "1",
        )));
        writer.apply(&Event::InitApply(child("gone", Some(("a", "uid-a")), "1")));
        // Nothing shows before the list ends.
        assert!(stores.of("demo", "a", "uid-a").is_empty());
        writer.apply(&Event::InitDone);
        assert_eq!(
            names(&stores.of("demo", "a", "uid-a")),
            ["a-config", "gone"]
        );
        assert!(*stores.listed.borrow().first().expect("one kind"));

        // The watch lost its place and lists again: until the new list
        // ends the old one holds; then only what it returned is there.
        writer.apply(&Event::Init);
        writer.apply(&Event::InitApply(child(
            "a-config",
            Some(("a", "uid-a")),
            "2",
        )));
        writer.apply(&Event::InitApply(child(
            "b-config",
            Some(("b", "uid-b")),
            "1",
        )));
        assert_eq!(
            names(&stores.of("demo", "a", "uid-a")),
            ["a-config", "gone"]
        );
        writer.apply(&Event::InitDone);
        let of_a = stores.of("demo", "a", "uid-a");
        assert_eq!(names(&of_a), ["a-config"]);
        assert_eq!(data(&of_a[0].object), "2");
        assert!(stores.find("demo", &key("gone")).is_none());
        assert_eq!(names(&stores.of("demo", "b", "uid-b")), ["b-config"]);
        let in_demo: Vec<_> = stores
            .in_namespace("demo")
            .iter()
            .map(|o| o.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(in_demo, ["a-config", "b-config"]);
        assert!(stores.in_namespace("other").is_empty());
        let index = stores.kinds[0].1.read().unwrap_or_else(|e| e.into_inner());
        assert_eq!(index.len(), 2);
        // No owner keeps a name the relist dropped.
        assert_eq!(index.by_owner.values().map(Vec::len).sum::<usize>(), 2);
    }

    /// `object` as the child watches read it off the wire, and a reconcile
    /// reads it from the cache.
    fn as_watched(object: DynamicObject) -> DynamicObject {
        Cached::new(&watched(&object)).object()
    }

    #[test]
    fn cached_children_keep_of_managed_fields_only_who_owns_the_replica_count() {
        let entry = |manager: &str, operation: &str, fields: Value| {
            json!({"manager": manager, "operation": operation, "apiVersion": "apps/v1",
                   "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields})
        };
        let deployment = |replicas_owner: &str| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "shop", "namespace": "demo", "managedFields": [
                    entry(FIELD_MANAGER, "Apply", json!({"f:metadata": {"f:labels": {}},
                        "f:spec": {"f:template": {"f:spec": {}}}})),
                    entry(replicas_owner, if replicas_owner == FIELD_MANAGER {"Apply"} else {"Update"},
                        json!({"f:spec": {"f:replicas": {}}})),
                    entry("kube-controller-manager", "Update", json!({"f:status": {"f:replicas": {}}})),
                ]},
                "spec": {"replicas": 3},
            }))
            .expect("a deployment")
        };
        // The operator's apply owns the count: that bit, and nothing else, is kept.
        let ours = as_watched(deployment(FIELD_MANAGER));
        let kept = ours.metadata.managed_fields.as_deref().unwrap_or_default();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].manager.as_deref(), Some(FIELD_MANAGER));
        assert_eq!(
            kept[0].fields_v1.as_ref().map(|f| &f.0),
            Some(&json!({"f:spec": {"f:replicas": {}}}))
        );
        assert!(super::super::decide::owns_replicas(&ours));
        // The autoscaler took it: nothing is kept, and the handover knows it.
        let handed_over = as_watched(deployment("kube-controller-manager"));
        assert!(handed_over.metadata.managed_fields.is_none());
        assert!(!super::super::decide::owns_replicas(&handed_over));
        assert_eq!(handed_over.data["spec"]["replicas"], 3);
        // Any other child: none at all.
        let mut config = child_object("a-config", Some(("a", "uid-a")), "1");
        config.metadata.managed_fields = deployment(FIELD_MANAGER).metadata.managed_fields;
        config
            .metadata
            .managed_fields
            .as_mut()
            .expect("entries")
            .remove(1);
        let config = as_watched(config);
        assert!(config.metadata.managed_fields.is_none());
        assert_eq!(data(&config), "1");
    }

    #[tokio::test]
    async fn every_concurrent_waiter_wakes_when_the_stores_have_listed() {
        let kinds = crate::kinds::ChildKinds::default();
        let resources = ["ConfigMap", "Service"]
            .into_iter()
            .map(|kind| kinds.get("v1", kind).expect("child kind").resource())
            .collect();
        let (children, writers) = ChildStores::new(resources);
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
        for writer in &writers {
            writer.apply(&Event::Init);
            writer.apply(&Event::InitDone);
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
    fn a_cached_child_is_the_watched_object_whole_and_ours_only_when_labelled_and_owned() {
        let mut object = child_object("a-config", Some(("a", "uid-a")), "1");
        object.metadata.resource_version = Some("7".into());
        object.metadata.annotations =
            Some([("note".to_owned(), "ünïcode \"quoted\"".to_owned())].into());
        let cached = Cached::new(&watched(&object));
        assert_eq!(
            serde_json::to_value(cached.object()).expect("json"),
            serde_json::to_value(&object).expect("json")
        );
        assert!(cached.is_ours("a", "uid-a"));
        assert!(!cached.is_ours("b", "uid-a"), "another instance label");
        assert!(!cached.is_ours("a", "uid-b"), "another owner");
        assert!(is_ours(&object.metadata, "a", "uid-a"));

        // Owned but not labelled as the operator's, or labelled with an
        // owner reference that is not a controller's: not a child.
        let mut unlabelled = object.clone();
        if let Some(labels) = unlabelled.metadata.labels.as_mut() {
            labels.remove(LABEL_MANAGED_BY);
        }
        assert!(!Cached::new(&watched(&unlabelled)).is_ours("a", "uid-a"));
        assert!(!is_ours(&unlabelled.metadata, "a", "uid-a"));
        let mut not_controlled = object.clone();
        if let Some(owners) = not_controlled.metadata.owner_references.as_mut() {
            owners[0].controller = Some(false);
        }
        assert!(!Cached::new(&watched(&not_controlled)).is_ours("a", "uid-a"));
        assert!(!is_ours(&not_controlled.metadata, "a", "uid-a"));

        // What the settled check reads, without parsing.
        let (stores, writer) = config_maps();
        writer.apply(&Event::Apply(watched(&object)));
        let seen = stores.seen_of("demo", "a", "uid-a");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].key, key("a-config"));
        assert_eq!(seen[0].version.as_deref(), Some("7"));
        assert_eq!(
            seen,
            stores
                .of("demo", "a", "uid-a")
                .iter()
                .map(Observed::seen)
                .collect::<Vec<_>>()
        );
    }
}
