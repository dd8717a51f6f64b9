//! Simulated controllers: what kube-controller-manager, the scheduler and the kubelet do for
//! the kinds the emulator serves, so a whole story (a Deployment becoming available, a Job
//! completing, children collected when their owner goes) can be tested without a cluster.
//!
//! Each controller is a level-based loop over a work queue, fed by the store's change stream
//! and by timers, and writes only through the in-process [`Api`] with Kubernetes' field
//! managers, so its writes carry the same managed fields, validation and watch events as
//! those of the real components.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

pub(crate) use crate::api::safe_encode;
use crate::api::{Api, DeleteOptions, Sub, WriteOptions};
use crate::control::Control;
use crate::error::ApiError;
use crate::registry::{GroupResource, ResourceType};
use crate::store::Event;

mod deployment;
mod events;
mod hpa;
mod job;
mod kubelet;
mod namespace;
mod replicaset;
pub(crate) mod storage;

pub(crate) use events::Recorder;

/// One simulated controller; each can be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Controller {
    /// Owner references on deletion (Background, Foreground, Orphan), dangling owners, and
    /// namespace deletion (the namespace controller's job too).
    GarbageCollector,
    /// A `default` ServiceAccount in every namespace.
    ServiceAccount,
    /// The `kube-root-ca.crt` ConfigMap in every namespace.
    RootCaPublisher,
    /// Binds pending pods to the emulator's node.
    Scheduler,
    /// Runs pods on the emulator's node: the Node object, pod status, containers starting,
    /// becoming ready, and ending for pods that run to completion.
    Kubelet,
    /// ReplicaSets create and delete pods to match their replicas.
    ReplicaSet,
    /// Deployments roll out ReplicaSets and report status and conditions.
    Deployment,
    /// Jobs run pods to completion or failure.
    Job,
    /// Finished Jobs with `ttlSecondsAfterFinished` are deleted.
    TtlAfterFinished,
    /// HorizontalPodAutoscalers scale their targets within min/max.
    HorizontalPodAutoscaler,
    /// PersistentVolumeClaims get the default StorageClass and a provisioned, bound
    /// PersistentVolume; claims and volumes are protected while in use, and released volumes
    /// reclaimed.
    PersistentVolume,
}

impl Controller {
    /// Every controller.
    pub const ALL: [Controller; 11] = [
        Controller::GarbageCollector,
        Controller::ServiceAccount,
        Controller::RootCaPublisher,
        Controller::Scheduler,
        Controller::Kubelet,
        Controller::ReplicaSet,
        Controller::Deployment,
        Controller::Job,
        Controller::TtlAfterFinished,
        Controller::HorizontalPodAutoscaler,
        Controller::PersistentVolume,
    ];

    /// The name used by `kube-emulator --controllers` (kube-controller-manager's where it has
    /// one).
    pub fn name(self) -> &'static str {
        match self {
            Controller::GarbageCollector => "garbagecollector",
            Controller::ServiceAccount => "serviceaccount",
            Controller::RootCaPublisher => "root-ca-cert-publisher",
            Controller::Scheduler => "scheduler",
            Controller::Kubelet => "kubelet",
            Controller::ReplicaSet => "replicaset",
            Controller::Deployment => "deployment",
            Controller::Job => "job",
            Controller::TtlAfterFinished => "ttl-after-finished",
            Controller::HorizontalPodAutoscaler => "horizontalpodautoscaling",
            Controller::PersistentVolume => "persistentvolume-binder",
        }
    }

    /// The controller with this name (or kube-controller-manager's newer `-controller` name).
    pub fn from_name(name: &str) -> Option<Controller> {
        let n = name.trim();
        let n = n.strip_suffix("-controller").unwrap_or(n);
        let alias = match n {
            "garbage-collector" | "namespace" => "garbagecollector",
            "service-account" => "serviceaccount",
            "root-ca-certificate-publisher" => "root-ca-cert-publisher",
            "replicaset" | "replica-set" => "replicaset",
            "horizontal-pod-autoscaler" | "hpa" => "horizontalpodautoscaling",
            "persistentvolume"
            | "persistent-volume-binder"
            | "pv-protection"
            | "pvc-protection"
            | "persistentvolume-expander" => "persistentvolume-binder",
            "ttl-after-finished" => "ttl-after-finished",
            other => other,
        };
        Controller::ALL.into_iter().find(|c| c.name() == alias)
    }

    /// Parses kube-controller-manager's `--controllers` syntax: a comma-separated list where
    /// `*` means every controller and `-name` switches one off.
    pub fn parse_list(spec: &str) -> Result<Vec<Controller>, String> {
        let mut on: Vec<Controller> = Vec::new();
        let mut off: Vec<Controller> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                on.extend(Controller::ALL);
            } else if let Some(n) = item.strip_prefix('-') {
                off.push(Controller::from_name(n).ok_or_else(|| unknown(n))?);
            } else {
                on.push(Controller::from_name(item).ok_or_else(|| unknown(item))?);
            }
        }
        let mut out: Vec<Controller> = Controller::ALL
            .into_iter()
            .filter(|c| on.contains(c) && !off.contains(c))
            .collect();
        out.dedup();
        Ok(out)
    }
}

fn unknown(n: &str) -> String {
    let names: Vec<&str> = Controller::ALL.iter().map(|c| c.name()).collect();
    format!("unknown controller {n:?}; known: {}", names.join(", "))
}

/// The field manager of kube-controller-manager's writes.
pub(crate) const KCM: &str = "kube-controller-manager";

/// The node every pod runs on.
pub const NODE_NAME: &str = "emulator";

/// A work-queue key: namespace and name of the object a controller reconciles.
pub(crate) type Key = (String, String);

/// A controller's reconciliation, run for one key at a time.
pub(crate) trait Reconciler: Send + Sync + 'static {
    /// The controller, for logs.
    fn controller(&self) -> Controller;
    /// Keys an event in the store makes stale.
    fn keys(&self, e: &Event, out: &mut Vec<Key>);
    /// Every key, on start and after missed events.
    fn all_keys(&self) -> Vec<Key>;
    /// Brings one object towards its desired state; answers when to look again.
    fn reconcile(&self, key: &Key) -> Result<Option<Duration>, ApiError>;
}

/// A deduplicating work queue with delayed additions.
pub(crate) struct Queue {
    tx: mpsc::UnboundedSender<Key>,
    queued: Mutex<HashSet<Key>>,
}

impl Queue {
    fn new() -> (Arc<Queue>, mpsc::UnboundedReceiver<Key>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Queue {
                tx,
                queued: Mutex::new(HashSet::new()),
            }),
            rx,
        )
    }

    fn add(&self, k: Key) {
        let fresh = self
            .queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(k.clone());
        if fresh {
            let _ = self.tx.send(k);
        }
    }

    fn add_after(self: &Arc<Self>, k: Key, d: Duration) {
        if d.is_zero() {
            self.add(k);
            return;
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            q.add(k);
        });
    }

    fn done(&self, k: &Key) {
        self.queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(k);
    }
}

async fn work(rec: Arc<dyn Reconciler>, queue: Arc<Queue>, mut rx: mpsc::UnboundedReceiver<Key>) {
    let mut failures: HashMap<Key, u32> = HashMap::new();
    while let Some(k) = rx.recv().await {
        queue.done(&k);
        match rec.reconcile(&k) {
            Ok(next) => {
                failures.remove(&k);
                if let Some(d) = next {
                    queue.add_after(k, d);
                }
            }
            Err(e) => {
                // Conflicts are routine (someone wrote in between): retry soon, backing off.
                let n = failures.entry(k.clone()).or_insert(0);
                *n = (*n + 1).min(10);
                let backoff = Duration::from_millis(5u64 << *n).min(Duration::from_secs(2));
                tracing::debug!(controller = rec.controller().name(), ns = %k.0, name = %k.1, code = e.code, error = %e.message, "reconcile failed; retrying");
                queue.add_after(k, backoff);
            }
        }
        // Let the server and the other controllers run between reconciles.
        tokio::task::yield_now().await;
    }
}

/// Starts the enabled controllers on the current runtime.
pub(crate) fn start(
    api: Arc<Api>,
    control: Arc<Control>,
    recorder: Arc<Recorder>,
    root_ca: String,
) {
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        control: control.clone(),
        recorder,
        root_ca,
    });
    if control.runs(Controller::GarbageCollector) {
        tokio::spawn(garbage_collector(api.clone()));
    }
    let mut recs: Vec<Arc<dyn Reconciler>> = Vec::new();
    if control.runs(Controller::ServiceAccount) || control.runs(Controller::RootCaPublisher) {
        recs.push(Arc::new(namespace::Namespaces::new(ctx.clone())));
    }
    if control.runs(Controller::Scheduler) || control.runs(Controller::Kubelet) {
        recs.push(Arc::new(kubelet::Kubelet::new(ctx.clone())));
    }
    if control.runs(Controller::ReplicaSet) {
        recs.push(Arc::new(replicaset::ReplicaSets::new(ctx.clone())));
    }
    if control.runs(Controller::Deployment) {
        recs.push(Arc::new(deployment::Deployments::new(ctx.clone())));
    }
    if control.runs(Controller::Job) || control.runs(Controller::TtlAfterFinished) {
        recs.push(Arc::new(job::Jobs::new(ctx.clone())));
    }
    if control.runs(Controller::HorizontalPodAutoscaler) {
        recs.push(Arc::new(hpa::Autoscalers::new(ctx.clone())));
    }
    if control.runs(Controller::PersistentVolume) {
        recs.push(Arc::new(storage::Storage::new(ctx.clone())));
    }
    if recs.is_empty() {
        return;
    }
    let mut workers = Vec::new();
    for rec in recs {
        let (queue, rx) = Queue::new();
        tokio::spawn(work(rec.clone(), queue.clone(), rx));
        workers.push((rec, queue));
    }
    tokio::spawn(dispatch(api, workers));
}

/// Feeds every store event to each controller's queue; after missed events (a lagging
/// subscriber), every controller resyncs.
async fn dispatch(api: Arc<Api>, workers: Vec<(Arc<dyn Reconciler>, Arc<Queue>)>) {
    // Subscribe before listing, so nothing between the two is missed.
    let mut rx = api.store().subscribe();
    let resync = |workers: &[(Arc<dyn Reconciler>, Arc<Queue>)]| {
        for (rec, q) in workers {
            for k in rec.all_keys() {
                q.add(k);
            }
        }
    };
    resync(&workers);
    let mut keys = Vec::new();
    loop {
        match rx.recv().await {
            Ok(e) => {
                for (rec, q) in &workers {
                    keys.clear();
                    rec.keys(&e, &mut keys);
                    for k in keys.drain(..) {
                        q.add(k);
                    }
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::debug!(missed = n, "controllers missed events; resyncing");
                resync(&workers);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// The garbage collector: every change in the store, in order, through the API's collection
/// logic; a full pass on start and after missed events.
async fn garbage_collector(api: Arc<Api>) {
    let mut rx = api.store().subscribe();
    api.gc_resync();
    loop {
        match rx.recv().await {
            Ok(e) => api.gc_event(&e),
            Err(RecvError::Lagged(_)) => api.gc_resync(),
            Err(RecvError::Closed) => return,
        }
        tokio::task::yield_now().await;
    }
}

/// What every controller shares: the API, the control plane, the event recorder and the
/// cluster's CA certificate (PEM).
pub(crate) struct Ctx {
    pub api: Arc<Api>,
    pub control: Arc<Control>,
    pub recorder: Arc<Recorder>,
    pub root_ca: String,
}

/// Well-known storages.
pub(crate) fn gr(group: &str, resource: &str) -> GroupResource {
    GroupResource::new(group, resource)
}

impl Ctx {
    pub fn rt(
        &self,
        group: &str,
        version: &str,
        resource: &str,
    ) -> Result<Arc<ResourceType>, ApiError> {
        self.api.resolve(group, version, resource)
    }

    /// One stored object.
    pub fn get(&self, g: &GroupResource, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.api.store().lock().get(g, ns, name)
    }

    /// Stored objects of a storage, in one namespace or all.
    pub fn list(&self, g: &GroupResource, ns: Option<&str>) -> Vec<Arc<Value>> {
        self.api.store().lock().list_current(g, ns)
    }

    /// Objects of storage `g` whose controller owner reference names `owner_uid`.
    pub fn controlled_by(&self, owner_uid: &str, g: &GroupResource) -> Vec<Arc<Value>> {
        let inner = self.api.store().lock();
        inner
            .dependents_of(owner_uid)
            .into_iter()
            .filter(|(dg, _)| dg == g)
            .filter_map(|(dg, (ns, name))| inner.get(&dg, &ns, &name))
            .filter(|o| controller_uid(o).as_deref() == Some(owner_uid))
            .collect()
    }

    fn opts(manager: &str) -> WriteOptions {
        WriteOptions {
            field_manager: Some(manager.to_string()),
            ..Default::default()
        }
    }

    /// Creates an object as `manager`.
    pub fn create(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        obj: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        Ok(self.api.create(rt, ns, obj, &Self::opts(manager))?.object)
    }

    /// Replaces an object (or its status) as `manager`, with optimistic concurrency on the
    /// resourceVersion `obj` carries.
    pub fn update(
        &self,
        rt: &Arc<ResourceType>,
        sub: Sub,
        obj: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let ns = str_at(&obj, "/metadata/namespace").to_string();
        let name = str_at(&obj, "/metadata/name").to_string();
        Ok(self
            .api
            .update(rt, &ns, &name, sub, obj, &Self::opts(manager))?
            .object)
    }

    /// Deletes an object with a propagation policy; a missing object is not an error.
    pub fn delete(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        propagation: &str,
    ) -> Result<(), ApiError> {
        let opts = DeleteOptions {
            propagation: Some(propagation.to_string()),
            ..Default::default()
        };
        match self.api.delete(rt, ns, name, &opts) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A string at a JSON pointer, or "".
pub(crate) fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// An integer at a JSON pointer.
pub(crate) fn int_at(v: &Value, ptr: &str) -> Option<i64> {
    v.pointer(ptr).and_then(Value::as_i64)
}

/// The uid of an object's controller owner reference.
pub(crate) fn controller_uid(v: &Value) -> Option<String> {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller") == Some(&json!(true)))
        .and_then(|r| r.get("uid").and_then(Value::as_str))
        .map(str::to_string)
}

/// A controller owner reference to `owner`, as controllers set it.
pub(crate) fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": str_at(owner, "/apiVersion"),
        "kind": str_at(owner, "/kind"),
        "name": str_at(owner, "/metadata/name"),
        "uid": str_at(owner, "/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The namespace and name of an object as a queue key.
pub(crate) fn key_of(v: &Value) -> Key {
    (
        str_at(v, "/metadata/namespace").to_string(),
        str_at(v, "/metadata/name").to_string(),
    )
}

/// Whether the object is being deleted.
pub(crate) fn deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp").is_some()
}

/// Parses an RFC 3339 timestamp.
pub(crate) fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// Seconds since an RFC 3339 timestamp (0 if it does not parse or lies ahead).
pub(crate) fn seconds_since(ts: &str) -> f64 {
    parse_time(ts)
        .map(|t| {
            let d = jiff::Timestamp::now().duration_since(t);
            d.as_secs_f64().max(0.0)
        })
        .unwrap_or(0.0)
}

/// The condition of `type_` in a conditions list.
pub(crate) fn condition<'a>(conds: &'a Value, type_: &str) -> Option<&'a Value> {
    conds
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// Whether the condition `type_` is `True`.
pub(crate) fn is_true(conds: &Value, type_: &str) -> bool {
    condition(conds, type_).is_some_and(|c| c.get("status") == Some(&json!("True")))
}

/// Removes members whose value is zero, as Go's `omitempty` does for the integer fields of
/// Kubernetes' status types.
pub(crate) fn omit_zero(v: &mut Value, keys: &[&str]) {
    if let Value::Object(m) = v {
        for k in keys {
            if m.get(*k) == Some(&json!(0)) {
                m.remove(*k);
            }
        }
    }
}

/// A 32-bit FNV-1a hash, what Kubernetes hashes pod templates with.
pub(crate) fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// JSON with object keys sorted, so equal values hash equally whatever their key order.
pub(crate) fn canonical(v: &Value) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push(':');
                    walk(&m[*k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    walk(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    walk(v, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_lists_parse_like_kube_controller_manager() {
        assert_eq!(
            Controller::parse_list("*").unwrap(),
            Controller::ALL.to_vec()
        );
        let l = Controller::parse_list("*,-job,-hpa").unwrap();
        assert!(!l.contains(&Controller::Job));
        assert!(!l.contains(&Controller::HorizontalPodAutoscaler));
        assert!(l.contains(&Controller::Deployment));
        assert_eq!(
            Controller::parse_list("deployment-controller,replicaset").unwrap(),
            vec![Controller::ReplicaSet, Controller::Deployment]
        );
        assert!(Controller::parse_list("nope").is_err());
        for c in Controller::ALL {
            assert_eq!(Controller::from_name(c.name()), Some(c));
        }
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"z":1,"y":2}],"c":"x"}}"#).unwrap();
        assert_eq!(
            canonical(&a),
            r#"{"a":{"c":"x","d":[1,{"y":2,"z":1}]},"b":1}"#
        );
    }

    #[test]
    fn safe_encoding_uses_kubernetes_alphabet() {
        // '0' is byte 48, and 48 % 27 = 21: the 22nd character of the alphabet.
        assert_eq!(safe_encode(b"0"), "4");
        assert!(
            safe_encode(fnv32a(b"x").to_string().as_bytes())
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
    }
}
