//! The object store: generic JSON objects, one monotonic resourceVersion, and the event history
//! that list-at-a-version and watch are served from.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::registry::GroupResource;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch event type string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change in the store, as kept in the history and sent to watchers.
#[derive(Debug)]
pub struct Event {
    /// The resourceVersion of this change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// The storage the object lives in.
    pub storage: GroupResource,
    /// The object's namespace (empty for cluster-scoped).
    pub namespace: String,
    /// The object after the change (for deletions: the last state, with the deletion's rv).
    pub object: Arc<Value>,
    /// The object before the change, if any.
    pub prev: Option<Arc<Value>>,
    /// The object serialized once, shared by every watcher of the stored version.
    pub(crate) json: OnceLock<String>,
}

/// Key of an object inside one storage: (namespace, name).
pub type ObjectKey = (String, String);

/// A list at one resourceVersion.
pub struct Snapshot {
    /// The resourceVersion the list is consistent at.
    pub rv: u64,
    /// Objects, sorted by namespace then name.
    pub objects: Vec<Arc<Value>>,
}

/// The mutable state, behind one lock so every write is atomic with its event.
pub struct Inner {
    rv: u64,
    objects: HashMap<GroupResource, BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<Arc<Event>>,
    /// Every event with rv > `oldest` is in `history`.
    oldest: u64,
    window: usize,
    uids: HashMap<String, (GroupResource, ObjectKey)>,
    dependents: HashMap<String, HashSet<(GroupResource, ObjectKey)>>,
    tx: broadcast::Sender<Arc<Event>>,
}

/// The store of all objects.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
}

fn uid_of(v: &Value) -> Option<&str> {
    v.get("metadata")?.get("uid")?.as_str()
}

fn owner_uids(v: &Value) -> Vec<String> {
    v.get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Store {
    /// A store keeping `window` events of history for watches and consistent lists.
    pub fn new(window: usize) -> Self {
        // A slow watcher that falls this far behind is closed and re-lists, as in Kubernetes.
        let (tx, _) = broadcast::channel(16 * 1024);
        Store {
            inner: Mutex::new(Inner {
                rv: 0,
                objects: HashMap::new(),
                history: VecDeque::new(),
                oldest: 0,
                window: window.max(1),
                uids: HashMap::new(),
                dependents: HashMap::new(),
                tx: tx.clone(),
            }),
            tx,
        }
    }

    /// Locks the store for a read-modify-write.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (writes are single inserts).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver of every future event.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}

impl Inner {
    /// The latest resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch can start from.
    pub fn oldest(&self) -> u64 {
        self.oldest
    }

    /// Allocates the next resourceVersion.
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// One object.
    pub fn get(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(gr)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Where the object with this uid lives.
    pub fn by_uid(&self, uid: &str) -> Option<&(GroupResource, ObjectKey)> {
        self.uids.get(uid)
    }

    /// Objects whose ownerReferences name this uid.
    pub fn dependents_of(&self, uid: &str) -> Vec<(GroupResource, ObjectKey)> {
        self.dependents
            .get(uid)
            .map(|s| {
                let mut v: Vec<_> = s.iter().cloned().collect();
                v.sort();
                v
            })
            .unwrap_or_default()
    }

    /// Current objects of a storage, optionally in one namespace.
    pub fn list_current(&self, gr: &GroupResource, ns: Option<&str>) -> Vec<Arc<Value>> {
        let Some(map) = self.objects.get(gr) else {
            return Vec::new();
        };
        match ns {
            Some(ns) => map
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            None => map.values().cloned().collect(),
        }
    }

    /// Every storage with at least one object in namespace `ns`.
    pub fn storages(&self) -> Vec<GroupResource> {
        let mut v: Vec<_> = self.objects.keys().cloned().collect();
        v.sort();
        v
    }

    /// Objects of a storage as they were at `rv`, if the history still covers it.
    pub fn list_at(&self, gr: &GroupResource, ns: Option<&str>, rv: u64) -> Option<Snapshot> {
        if rv >= self.rv {
            return Some(Snapshot {
                rv: self.rv,
                objects: self.list_current(gr, ns),
            });
        }
        if rv < self.oldest {
            return None;
        }
        let mut map: BTreeMap<ObjectKey, Arc<Value>> = self
            .objects
            .get(gr)
            .map(|m| {
                m.iter()
                    .filter(|((n, _), _)| ns.is_none_or(|ns| ns == n))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for e in self.history.iter().rev() {
            if e.rv <= rv {
                break;
            }
            if &e.storage != gr || ns.is_some_and(|ns| ns != e.namespace) {
                continue;
            }
            let key = (e.namespace.clone(), name_of(&e.object));
            match (&e.kind, &e.prev) {
                (EventType::Added, _) => {
                    map.remove(&key);
                }
                (_, Some(prev)) => {
                    map.insert(key, prev.clone());
                }
                (_, None) => {
                    map.insert(key, e.object.clone());
                }
            }
        }
        Some(Snapshot {
            rv,
            objects: map.into_values().collect(),
        })
    }

    /// Events after `rv` (exclusive), if the history still covers it.
    pub fn events_since(&self, rv: u64) -> Option<Vec<Arc<Event>>> {
        if rv < self.oldest {
            return None;
        }
        let start = self.history.partition_point(|e| e.rv <= rv);
        Some(self.history.iter().skip(start).cloned().collect())
    }

    /// Stores an object (create or update) at the given rv and records the event.
    pub fn put(
        &mut self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
        obj: Value,
        rv: u64,
    ) -> Arc<Value> {
        let obj = Arc::new(obj);
        let key = (ns.to_string(), name.to_string());
        let prev = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key.clone(), obj.clone());
        if let Some(p) = &prev {
            self.unindex(gr, &key, p);
        }
        self.index(gr, &key, &obj);
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Event {
            rv,
            kind,
            storage: gr.clone(),
            namespace: ns.to_string(),
            object: obj.clone(),
            prev,
            json: OnceLock::new(),
        });
        obj
    }

    /// Removes an object; `last` is its final state (carrying the deletion's rv).
    pub fn remove(&mut self, gr: &GroupResource, ns: &str, name: &str, last: Value, rv: u64) {
        let key = (ns.to_string(), name.to_string());
        let prev = self.objects.get_mut(gr).and_then(|m| m.remove(&key));
        if let Some(p) = &prev {
            self.unindex(gr, &key, p);
        }
        self.record(Event {
            rv,
            kind: EventType::Deleted,
            storage: gr.clone(),
            namespace: ns.to_string(),
            object: Arc::new(last),
            prev,
            json: OnceLock::new(),
        });
    }

    fn index(&mut self, gr: &GroupResource, key: &ObjectKey, obj: &Value) {
        if let Some(uid) = uid_of(obj) {
            self.uids.insert(uid.to_string(), (gr.clone(), key.clone()));
        }
        for owner in owner_uids(obj) {
            self.dependents
                .entry(owner)
                .or_default()
                .insert((gr.clone(), key.clone()));
        }
    }

    fn unindex(&mut self, gr: &GroupResource, key: &ObjectKey, obj: &Value) {
        if let Some(uid) = uid_of(obj) {
            self.uids.remove(uid);
        }
        for owner in owner_uids(obj) {
            if let Some(set) = self.dependents.get_mut(&owner) {
                set.remove(&(gr.clone(), key.clone()));
                if set.is_empty() {
                    self.dependents.remove(&owner);
                }
            }
        }
    }

    fn record(&mut self, e: Event) {
        let e = Arc::new(e);
        self.history.push_back(e.clone());
        while self.history.len() > self.window {
            if let Some(old) = self.history.pop_front() {
                self.oldest = old.rv;
            }
        }
        // No receivers is fine: nobody watches.
        let _ = self.tx.send(e);
    }

    /// Forgets all history: every older resourceVersion now answers 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest = self.rv;
    }

    /// Changes how many events of history are kept.
    pub fn set_window(&mut self, window: usize) {
        self.window = window.max(1);
        while self.history.len() > self.window {
            if let Some(old) = self.history.pop_front() {
                self.oldest = old.rv;
            }
        }
    }

    /// Number of stored objects (for tests and metrics).
    pub fn len(&self) -> usize {
        self.objects.values().map(BTreeMap::len).sum()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `metadata.name` of an object.
pub fn name_of(v: &Value) -> String {
    v.get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str, v: i64) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}")}, "v": v})
    }

    #[test]
    fn list_at_past_versions_and_expiry() {
        let s = Store::new(3);
        let gr = GroupResource::new("", "configmaps");
        let mut i = s.lock();
        let r1 = i.next_rv();
        i.put(&gr, "ns", "a", obj("a", 1), r1);
        let r2 = i.next_rv();
        i.put(&gr, "ns", "a", obj("a", 2), r2);
        let r3 = i.next_rv();
        i.put(&gr, "ns", "b", obj("b", 1), r3);
        let snap = i.list_at(&gr, Some("ns"), r1).unwrap();
        assert_eq!(snap.objects.len(), 1);
        assert_eq!(snap.objects[0]["v"], 1);
        assert_eq!(i.events_since(r1).unwrap().len(), 2);
        let r4 = i.next_rv();
        i.remove(&gr, "ns", "a", obj("a", 2), r4);
        assert!(
            i.list_at(&gr, None, r1).is_some(),
            "events after {r1} are all kept"
        );
        assert!(
            i.list_at(&gr, None, r1 - 1).is_none(),
            "the event at {r1} fell out of the window"
        );
        assert_eq!(i.list_at(&gr, None, r3).unwrap().objects.len(), 2);
        i.compact();
        assert!(i.events_since(r3).is_none());
    }

    #[test]
    fn owner_index() {
        let s = Store::new(10);
        let gr = GroupResource::new("", "configmaps");
        let mut i = s.lock();
        let child =
            json!({"metadata": {"name": "c", "uid": "c1", "ownerReferences": [{"uid": "p1"}]}});
        let rv = i.next_rv();
        i.put(&gr, "ns", "c", child.clone(), rv);
        assert_eq!(i.dependents_of("p1").len(), 1);
        let rv = i.next_rv();
        i.remove(&gr, "ns", "c", child, rv);
        assert!(i.dependents_of("p1").is_empty());
        assert!(i.by_uid("c1").is_none());
    }
}
