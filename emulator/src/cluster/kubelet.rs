//! The scheduler and the kubelet of the emulator's single node: pending pods are bound to the
//! node, their containers are "pulled" and started after the `podStartDelay` knob, become
//! ready, and — for pods of Jobs and bare pods that do not restart always — end after their
//! run time with the outcome the control API chose, with a termination message. Images
//! containing a never-ready marker fail to pull (`ImagePullBackOff`) forever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::events::Source;
use super::{Controller, Ctx, Key, NODE_NAME, Reconciler, condition, deleting, gr, int_at, str_at};
use crate::api::{Sub, now};
use crate::error::ApiError;
use crate::store::{Event, EventType};

const KUBELET: &str = "kubelet";
const HOST_IP: &str = "172.18.0.2";

fn kubelet_source() -> Source {
    Source {
        component: "kubelet",
        manager: KUBELET,
        host: Some(NODE_NAME),
    }
}

/// Where one pod's containers are in their life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the start delay (`ContainerCreating`).
    Creating,
    /// Image pull failing forever.
    BackOff,
    /// Containers running since this instant; the attempt ends at `ends`, if ever.
    Running { ends: Option<Instant> },
    /// Ended (Succeeded or Failed).
    Done,
}

/// The kubelet's memory of a pod.
#[derive(Debug, Clone)]
struct Run {
    uid: String,
    created: Instant,
    stage: Stage,
    ip: String,
    container_ids: Vec<String>,
    /// Whether the attempt that is ending fails, decided once (a status write that conflicts
    /// is retried with the same outcome).
    ending: Option<bool>,
}

pub(crate) struct Kubelet {
    ctx: Arc<Ctx>,
    schedule: bool,
    run: bool,
    runs: Mutex<HashMap<Key, Run>>,
    /// Attempts ended so far per workload (a Job's uid, or a bare pod's), which decides whether
    /// the next one fails.
    attempts: Mutex<HashMap<String, u32>>,
    next_ip: AtomicU32,
}

/// The key standing for the node object itself.
fn node_key() -> Key {
    (String::new(), String::new())
}

impl Kubelet {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Kubelet {
            schedule: ctx.control.runs(Controller::Scheduler),
            run: ctx.control.runs(Controller::Kubelet),
            ctx,
            runs: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
            next_ip: AtomicU32::new(2),
        }
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Run>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn allocate_ip(&self) -> String {
        let n = self.next_ip.fetch_add(1, Ordering::Relaxed) % 65_000 + 2;
        format!("10.244.{}.{}", n / 256, n % 256)
    }

    fn ensure_node(&self) -> Result<(), ApiError> {
        if !self.run {
            return Ok(());
        }
        let rt = self.ctx.rt("", "v1", "nodes")?;
        let node = match self.ctx.get(&gr("", "nodes"), "", NODE_NAME) {
            Some(n) => (*n).clone(),
            None => {
                let obj = json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": NODE_NAME, "labels": {
                        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": NODE_NAME,
                        "kubernetes.io/os": "linux"},
                        "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
                    "spec": {"podCIDR": "10.244.0.0/16", "podCIDRs": ["10.244.0.0/16"]},
                });
                match self.ctx.create(&rt, "", obj, KUBELET) {
                    Ok(n) => n,
                    Err(e) if e.code == 409 => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        };
        if node.get("status").and_then(|s| s.get("nodeInfo")).is_some() {
            return Ok(());
        }
        let ts = now();
        let cond = |t: &str, s: &str, reason: &str, msg: &str| {
            json!({"type": t, "status": s, "reason": reason, "message": msg,
                "lastHeartbeatTime": ts, "lastTransitionTime": ts})
        };
        let resources = json!({"cpu": "8", "ephemeral-storage": "100Gi", "hugepages-1Gi": "0",
            "hugepages-2Mi": "0", "memory": "32Gi", "pods": "110"});
        let mut n = node;
        n["status"] = json!({
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": NODE_NAME}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "emulator://0.1.0",
                "kernelVersion": "emulated", "kubeProxyVersion": "", "kubeletVersion": "v1.33.0-emulator",
                "machineID": "", "operatingSystem": "linux", "osImage": "kube-emulator", "systemUUID": "",
            },
        });
        self.ctx.update(&rt, Sub::Status, n, KUBELET).map(|_| ())
    }

    /// How attempts of this pod end: decided per Job (its name and labels) or, for a bare pod,
    /// per pod.
    fn workload(&self, pod: &Value) -> Option<(String, Value)> {
        let owner = pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|refs| {
                refs.iter()
                    .find(|r| r.get("controller") == Some(&json!(true)))
            });
        match owner {
            Some(r) if r.get("kind") == Some(&json!("Job")) => {
                let ns = str_at(pod, "/metadata/namespace");
                let job = self
                    .ctx
                    .get(&gr("batch", "jobs"), ns, str_at(r, "/name"))
                    .map(|j| (*j).clone())
                    .unwrap_or_else(|| json!({"metadata": {"name": str_at(r, "/name")}}));
                Some((str_at(r, "/uid").to_string(), job))
            }
            Some(_) => None,
            None => {
                let restart = str_at(pod, "/spec/restartPolicy");
                (restart == "Never" || restart == "OnFailure")
                    .then(|| (str_at(pod, "/metadata/uid").to_string(), pod.clone()))
            }
        }
    }

    fn write_status(&self, pod: &Value, status: Value) -> Result<(), ApiError> {
        if pod.get("status") == Some(&status) {
            return Ok(());
        }
        let rt = self.ctx.rt("", "v1", "pods")?;
        let mut p = pod.clone();
        p["status"] = status;
        self.ctx.update(&rt, Sub::Status, p, KUBELET).map(|_| ())
    }

    fn pod_event(&self, pod: &Value, type_: &str, reason: &str, message: &str) {
        self.ctx
            .recorder
            .record(kubelet_source(), pod, type_, reason, message);
    }
}

impl Reconciler for Kubelet {
    fn controller(&self) -> Controller {
        Controller::Kubelet
    }

    fn keys(&self, e: &Event, out: &mut Vec<Key>) {
        if e.storage == gr("", "pods") {
            let key = super::key_of(&e.object);
            if e.kind == EventType::Deleted {
                self.runs().remove(&key);
            } else {
                out.push(key);
            }
        } else if e.storage == gr("", "nodes") && e.kind == EventType::Deleted {
            // The kubelet registers its node again.
            out.push(node_key());
        }
    }

    fn all_keys(&self) -> Vec<Key> {
        let mut keys = vec![node_key()];
        keys.extend(
            self.ctx
                .list(&gr("", "pods"), None)
                .iter()
                .map(|p| super::key_of(p)),
        );
        keys
    }

    fn reconcile(&self, key: &Key) -> Result<Option<Duration>, ApiError> {
        if *key == node_key() {
            self.ensure_node()?;
            return Ok(None);
        }
        let Some(pod) = self.ctx.get(&gr("", "pods"), &key.0, &key.1) else {
            self.runs().remove(key);
            return Ok(None);
        };
        let pod = (*pod).clone();
        let node = str_at(&pod, "/spec/nodeName");
        if node.is_empty() {
            if self.schedule && !deleting(&pod) {
                let bound = self.ctx.api.bind_pod(&key.0, &key.1, NODE_NAME)?;
                self.ctx.recorder.scheduled(&bound, NODE_NAME);
            }
            return Ok(None);
        }
        if node != NODE_NAME || !self.run {
            return Ok(None);
        }
        let phase = str_at(&pod, "/status/phase");
        let terminal = phase == "Succeeded" || phase == "Failed";
        if deleting(&pod) {
            // Only pods kept by finalizers are still here: their containers are stopped.
            if !terminal && pod.pointer("/status/startTime").is_some() {
                let status = stopped_status(&pod);
                self.write_status(&pod, status)?;
            }
            self.runs().remove(key);
            return Ok(None);
        }
        if terminal {
            return Ok(None);
        }
        let uid = str_at(&pod, "/metadata/uid").to_string();
        let knobs = self.ctx.control.knobs();
        let mut run = {
            let mut runs = self.runs();
            let fresh = runs.get(key).is_none_or(|r| r.uid != uid);
            if fresh {
                let ids = containers(&pod)
                    .iter()
                    .map(|_| container_id(&uid))
                    .collect();
                runs.insert(
                    key.clone(),
                    Run {
                        uid: uid.clone(),
                        created: Instant::now(),
                        stage: Stage::Creating,
                        ip: self.allocate_ip(),
                        container_ids: ids,
                        ending: None,
                    },
                );
            }
            runs.get(key)
                .cloned()
                .ok_or_else(|| ApiError::internal("run vanished"))?
        };
        match run.stage {
            Stage::Creating => {
                if pod.pointer("/status/startTime").is_none() {
                    let status = creating_status(&pod);
                    self.write_status(&pod, status)?;
                    for c in containers(&pod) {
                        let image = str_at(&c, "/image");
                        self.pod_event(
                            &pod,
                            "Normal",
                            "Pulling",
                            &format!("Pulling image \"{image}\""),
                        );
                    }
                }
                let waited = run.created.elapsed();
                if waited < knobs.pod_start_delay {
                    return Ok(Some(knobs.pod_start_delay - waited));
                }
                let bad: Vec<String> = containers(&pod)
                    .iter()
                    .map(|c| str_at(c, "/image").to_string())
                    .filter(|i| self.ctx.control.never_ready(i))
                    .collect();
                if !bad.is_empty() {
                    let status = backoff_status(&pod, &run, &self.ctx.control);
                    self.write_status(&pod, status)?;
                    for image in &bad {
                        self.pod_event(
                            &pod,
                            "Warning",
                            "Failed",
                            &format!("Failed to pull image \"{image}\": {}", pull_error(image)),
                        );
                        self.pod_event(&pod, "Warning", "Failed", "Error: ErrImagePull");
                        self.pod_event(
                            &pod,
                            "Normal",
                            "BackOff",
                            &format!("Back-off pulling image \"{image}\""),
                        );
                        self.pod_event(&pod, "Warning", "Failed", "Error: ImagePullBackOff");
                    }
                    run.stage = Stage::BackOff;
                    self.runs().insert(key.clone(), run);
                    return Ok(None);
                }
                let status = running_status(&pod, &run, 0, &json!({}));
                self.write_status(&pod, status)?;
                for c in containers(&pod) {
                    let (name, image) = (str_at(&c, "/name"), str_at(&c, "/image"));
                    self.pod_event(
                        &pod,
                        "Normal",
                        "Pulled",
                        &format!(
                            "Successfully pulled image \"{image}\" in {}ms",
                            knobs.pod_start_delay.as_millis()
                        ),
                    );
                    self.pod_event(
                        &pod,
                        "Normal",
                        "Created",
                        &format!("Created container: {name}"),
                    );
                    self.pod_event(
                        &pod,
                        "Normal",
                        "Started",
                        &format!("Started container {name}"),
                    );
                }
                let ends = self.workload(&pod).map(|(_, w)| {
                    let ns = str_at(&w, "/metadata/namespace");
                    let d = self
                        .ctx
                        .control
                        .resolve_outcome(
                            if ns.is_empty() { &key.0 } else { ns },
                            str_at(&w, "/metadata/name"),
                            &w,
                        )
                        .duration;
                    Instant::now() + d
                });
                run.stage = Stage::Running { ends };
                self.runs().insert(key.clone(), run);
                Ok(ends.map(|e| e.saturating_duration_since(Instant::now())))
            }
            Stage::BackOff | Stage::Done => Ok(None),
            Stage::Running { ends: None } => Ok(None),
            Stage::Running { ends: Some(at) } => {
                let left = at.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    return Ok(Some(left));
                }
                let Some((wuid, w)) = self.workload(&pod) else {
                    return Ok(None);
                };
                let ns = match str_at(&w, "/metadata/namespace") {
                    "" => key.0.as_str(),
                    n => n,
                };
                let outcome =
                    self.ctx
                        .control
                        .resolve_outcome(ns, str_at(&w, "/metadata/name"), &w);
                let fails = match run.ending {
                    Some(f) => f,
                    None => {
                        let attempt = {
                            let mut a = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
                            let n = a.entry(wuid).or_insert(0);
                            let this = *n;
                            *n += 1;
                            this
                        };
                        let f = attempt < outcome.failing;
                        run.ending = Some(f);
                        self.runs().insert(key.clone(), run.clone());
                        f
                    }
                };
                let on_failure = str_at(&pod, "/spec/restartPolicy") == "OnFailure";
                if fails && on_failure {
                    // The container restarts in place; the Job counts restarts.
                    let restarts = pod
                        .pointer("/status/containerStatuses/0/restartCount")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                        + 1;
                    let last = terminated_state(
                        outcome.exit_code,
                        "Error",
                        outcome.message.as_deref(),
                        &pod,
                        &run,
                    );
                    run.container_ids = containers(&pod)
                        .iter()
                        .map(|_| container_id(&uid))
                        .collect();
                    let status = running_status(&pod, &run, restarts, &json!({"terminated": last}));
                    self.write_status(&pod, status)?;
                    self.pod_event(
                        &pod,
                        "Warning",
                        "BackOff",
                        "Back-off restarting failed container",
                    );
                    let ends = Instant::now() + outcome.duration;
                    run.stage = Stage::Running { ends: Some(ends) };
                    // The next attempt's outcome is decided when it ends.
                    run.ending = None;
                    self.runs().insert(key.clone(), run);
                    return Ok(Some(outcome.duration));
                }
                let status = finished_status(
                    &pod,
                    &run,
                    fails,
                    outcome.exit_code,
                    outcome.message.as_deref(),
                );
                self.write_status(&pod, status)?;
                run.stage = Stage::Done;
                self.runs().insert(key.clone(), run);
                Ok(None)
            }
        }
    }
}

/// Every container of the pod spec.
fn containers(pod: &Value) -> Vec<Value> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn init_containers(pod: &Value) -> Vec<Value> {
    pod.pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn container_id(seed: &str) -> String {
    let mut h = String::new();
    let mut x = super::fnv32a(format!("{seed}{:?}", Instant::now()).as_bytes());
    for i in 0..8 {
        x = super::fnv32a(format!("{x}{i}{seed}").as_bytes());
        h.push_str(&format!("{x:08x}"));
    }
    format!("containerd://{h}")
}

/// The image reference as the container runtime reports it: registry and tag made explicit.
fn normalize_image(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    match digest {
        Some(d) => format!("{full}@{d}"),
        None => full,
    }
}

/// A stable fake digest of an image, as `imageID` reports the pulled image.
fn image_id(image: &str) -> String {
    let full = normalize_image(image);
    if full.contains("@sha256:") {
        return full;
    }
    let repo = match full.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r.to_string(),
        _ => full.clone(),
    };
    let mut hex = String::new();
    let mut x = super::fnv32a(full.as_bytes());
    for i in 0..8 {
        x = super::fnv32a(format!("{x}:{i}:{full}").as_bytes());
        hex.push_str(&format!("{x:08x}"));
    }
    format!("{repo}@sha256:{hex}")
}

fn pull_error(image: &str) -> String {
    let full = normalize_image(image);
    let host = full.split('/').next().unwrap_or_default().to_string();
    format!(
        "failed to pull and unpack image \"{full}\": failed to resolve reference \"{full}\": failed to do request: dial tcp: lookup {host}: no such host"
    )
}

/// The volume mounts a container status lists.
fn mounts(c: &Value) -> Option<Value> {
    let list: Vec<Value> = c
        .get("volumeMounts")
        .and_then(Value::as_array)?
        .iter()
        .map(|m| {
            let mut v = json!({"name": str_at(m, "/name"), "mountPath": str_at(m, "/mountPath")});
            if m.get("readOnly") == Some(&json!(true)) {
                v["readOnly"] = json!(true);
                v["recursiveReadOnly"] = json!("Disabled");
            }
            v
        })
        .collect();
    (!list.is_empty()).then_some(Value::Array(list))
}

fn status_of(
    c: &Value,
    state: Value,
    ready: bool,
    started: bool,
    restarts: i64,
    last: &Value,
    id: Option<&str>,
) -> Value {
    let image = str_at(c, "/image");
    let running = state.get("waiting").is_none();
    let mut s = json!({
        "name": str_at(c, "/name"),
        "image": if running { normalize_image(image) } else { image.to_string() },
        "imageID": if running { image_id(image) } else { String::new() },
        "lastState": last,
        "ready": ready,
        "restartCount": restarts,
        "started": started,
        "state": state,
    });
    if running && let Some(id) = id {
        s["containerID"] = json!(id);
    }
    if let Some(m) = mounts(c) {
        s["volumeMounts"] = m;
    }
    s
}

/// Pod conditions in the kubelet's order, keeping transition times of unchanged ones.
fn conditions(pod: &Value, list: &[(&str, bool, Option<&str>, Option<String>)]) -> Value {
    let old = pod
        .pointer("/status/conditions")
        .cloned()
        .unwrap_or(json!([]));
    let ts = now();
    let mut out = Vec::new();
    for (t, ok, reason, message) in list {
        let status = if *ok { "True" } else { "False" };
        let since = condition(&old, t)
            .filter(|c| c.get("status") == Some(&json!(status)))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or(json!(ts));
        let mut c = json!({"type": t, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        if let Some(m) = message {
            c["message"] = json!(m);
        }
        out.push(c);
    }
    Value::Array(out)
}

fn unready_message(names: &[String]) -> String {
    format!("containers with unready status: [{}]", names.join(" "))
}

fn base_status(pod: &Value) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("hostIP".into(), json!(HOST_IP));
    m.insert("hostIPs".into(), json!([{"ip": HOST_IP}]));
    m.insert(
        "qosClass".into(),
        pod.pointer("/status/qosClass")
            .cloned()
            .unwrap_or(json!("BestEffort")),
    );
    m.insert(
        "startTime".into(),
        pod.pointer("/status/startTime")
            .cloned()
            .unwrap_or(json!(now())),
    );
    m
}

fn names(pod: &Value) -> Vec<String> {
    containers(pod)
        .iter()
        .map(|c| str_at(c, "/name").to_string())
        .collect()
}

fn creating_status(pod: &Value) -> Value {
    let mut m = base_status(pod);
    let inits = init_containers(pod);
    let msg = unready_message(&names(pod));
    let init_msg = (!inits.is_empty()).then(|| {
        format!(
            "containers with incomplete status: [{}]",
            inits
                .iter()
                .map(|c| str_at(c, "/name").to_string())
                .collect::<Vec<_>>()
                .join(" ")
        )
    });
    m.insert("phase".into(), json!("Pending"));
    m.insert(
        "conditions".into(),
        conditions(
            pod,
            &[
                ("PodReadyToStartContainers", false, None, None),
                (
                    "Initialized",
                    init_msg.is_none(),
                    init_msg.as_ref().map(|_| "ContainersNotInitialized"),
                    init_msg.clone(),
                ),
                (
                    "Ready",
                    false,
                    Some("ContainersNotReady"),
                    Some(msg.clone()),
                ),
                (
                    "ContainersReady",
                    false,
                    Some("ContainersNotReady"),
                    Some(msg),
                ),
                ("PodScheduled", true, None, None),
            ],
        ),
    );
    let reason = if inits.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<Value> = containers(pod)
        .iter()
        .map(|c| {
            status_of(
                c,
                json!({"waiting": {"reason": reason}}),
                false,
                false,
                0,
                &json!({}),
                None,
            )
        })
        .collect();
    m.insert("containerStatuses".into(), Value::Array(statuses));
    if !inits.is_empty() {
        let statuses: Vec<Value> = inits
            .iter()
            .map(|c| {
                status_of(
                    c,
                    json!({"waiting": {"reason": "PodInitializing"}}),
                    false,
                    false,
                    0,
                    &json!({}),
                    None,
                )
            })
            .collect();
        m.insert("initContainerStatuses".into(), Value::Array(statuses));
    }
    Value::Object(m)
}

fn with_ip(m: &mut serde_json::Map<String, Value>, run: &Run) {
    m.insert("podIP".into(), json!(run.ip));
    m.insert("podIPs".into(), json!([{"ip": run.ip}]));
}

fn init_done(pod: &Value, run: &Run) -> Option<Value> {
    let inits = init_containers(pod);
    if inits.is_empty() {
        return None;
    }
    let ts = now();
    Some(Value::Array(
        inits
            .iter()
            .map(|c| {
                let state = json!({"terminated": {"exitCode": 0, "reason": "Completed",
                    "startedAt": ts, "finishedAt": ts, "containerID": container_id(&run.uid)}});
                status_of(
                    c,
                    state,
                    true,
                    false,
                    0,
                    &json!({}),
                    Some(&container_id(&run.uid)),
                )
            })
            .collect(),
    ))
}

fn running_status(pod: &Value, run: &Run, restarts: i64, last: &Value) -> Value {
    let mut m = base_status(pod);
    with_ip(&mut m, run);
    m.insert("phase".into(), json!("Running"));
    m.insert(
        "conditions".into(),
        conditions(
            pod,
            &[
                ("PodReadyToStartContainers", true, None, None),
                ("Initialized", true, None, None),
                ("Ready", true, None, None),
                ("ContainersReady", true, None, None),
                ("PodScheduled", true, None, None),
            ],
        ),
    );
    let ts = now();
    let statuses: Vec<Value> = containers(pod)
        .iter()
        .enumerate()
        .map(|(i, c)| {
            status_of(
                c,
                json!({"running": {"startedAt": ts}}),
                true,
                true,
                restarts,
                last,
                run.container_ids.get(i).map(String::as_str),
            )
        })
        .collect();
    m.insert("containerStatuses".into(), Value::Array(statuses));
    if let Some(i) = init_done(pod, run) {
        m.insert("initContainerStatuses".into(), i);
    }
    Value::Object(m)
}

fn backoff_status(pod: &Value, run: &Run, control: &crate::control::Control) -> Value {
    let mut m = base_status(pod);
    with_ip(&mut m, run);
    m.insert("phase".into(), json!("Pending"));
    let bad: Vec<String> = containers(pod)
        .iter()
        .filter(|c| control.never_ready(str_at(c, "/image")))
        .map(|c| str_at(c, "/name").to_string())
        .collect();
    let msg = unready_message(&bad);
    m.insert(
        "conditions".into(),
        conditions(
            pod,
            &[
                ("PodReadyToStartContainers", true, None, None),
                ("Initialized", true, None, None),
                (
                    "Ready",
                    false,
                    Some("ContainersNotReady"),
                    Some(msg.clone()),
                ),
                (
                    "ContainersReady",
                    false,
                    Some("ContainersNotReady"),
                    Some(msg),
                ),
                ("PodScheduled", true, None, None),
            ],
        ),
    );
    let ts = now();
    let statuses: Vec<Value> = containers(pod)
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let image = str_at(c, "/image");
            if control.never_ready(image) {
                let message = format!(
                    "Back-off pulling image \"{image}\": ErrImagePull: {}",
                    pull_error(image)
                );
                status_of(
                    c,
                    json!({"waiting": {"reason": "ImagePullBackOff", "message": message}}),
                    false,
                    false,
                    0,
                    &json!({}),
                    None,
                )
            } else {
                status_of(
                    c,
                    json!({"running": {"startedAt": ts}}),
                    true,
                    true,
                    0,
                    &json!({}),
                    run.container_ids.get(i).map(String::as_str),
                )
            }
        })
        .collect();
    m.insert("containerStatuses".into(), Value::Array(statuses));
    if let Some(i) = init_done(pod, run) {
        m.insert("initContainerStatuses".into(), i);
    }
    Value::Object(m)
}

fn started_at(pod: &Value, i: usize) -> Value {
    pod.pointer(&format!(
        "/status/containerStatuses/{i}/state/running/startedAt"
    ))
    .cloned()
    .unwrap_or(json!(now()))
}

fn terminated_state(
    code: i32,
    reason: &str,
    message: Option<&str>,
    pod: &Value,
    run: &Run,
) -> Value {
    let mut t = json!({"exitCode": code, "reason": reason, "startedAt": started_at(pod, 0),
        "finishedAt": now()});
    if let Some(id) = run.container_ids.first() {
        t["containerID"] = json!(id);
    }
    if let Some(m) = message {
        t["message"] = json!(m);
    }
    t
}

/// The status of a pod whose containers ended: exit 0 (`Completed`) or the failing exit code
/// (`Error`), with the termination message on the first container.
fn finished_status(
    pod: &Value,
    run: &Run,
    failed: bool,
    exit_code: i32,
    message: Option<&str>,
) -> Value {
    let mut m = base_status(pod);
    with_ip(&mut m, run);
    let (phase, reason) = if failed {
        ("Failed", "PodFailed")
    } else {
        ("Succeeded", "PodCompleted")
    };
    m.insert("phase".into(), json!(phase));
    m.insert(
        "conditions".into(),
        conditions(
            pod,
            &[
                ("PodReadyToStartContainers", false, None, None),
                (
                    "Initialized",
                    true,
                    (!failed).then_some("PodCompleted"),
                    None,
                ),
                ("Ready", false, Some(reason), None),
                ("ContainersReady", false, Some(reason), None),
                ("PodScheduled", true, None, None),
            ],
        ),
    );
    let restarts = int_at(pod, "/status/containerStatuses/0/restartCount").unwrap_or(0);
    let last = pod
        .pointer("/status/containerStatuses/0/lastState")
        .cloned()
        .unwrap_or(json!({}));
    let statuses: Vec<Value> = containers(pod)
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (code, why) = if failed && i == 0 { (exit_code, "Error") } else { (0, "Completed") };
            let mut t = json!({"exitCode": code, "reason": why, "startedAt": started_at(pod, i), "finishedAt": now()});
            if let Some(id) = run.container_ids.get(i) {
                t["containerID"] = json!(id);
            }
            if i == 0 && let Some(msg) = message {
                t["message"] = json!(msg);
            }
            let last = if i == 0 { last.clone() } else { json!({}) };
            status_of(c, json!({"terminated": t}), false, false, if i == 0 { restarts } else { 0 }, &last, run.container_ids.get(i).map(String::as_str))
        })
        .collect();
    m.insert("containerStatuses".into(), Value::Array(statuses));
    if let Some(i) = init_done(pod, run) {
        m.insert("initContainerStatuses".into(), i);
    }
    Value::Object(m)
}

/// A deleted pod kept by finalizers: its containers were stopped (SIGTERM, exit 143).
fn stopped_status(pod: &Value) -> Value {
    let mut status = pod.get("status").cloned().unwrap_or(json!({}));
    status["phase"] = json!("Failed");
    let ts = now();
    if let Some(cs) = status
        .get_mut("containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for c in cs.iter_mut() {
            let started = c
                .pointer("/state/running/startedAt")
                .cloned()
                .unwrap_or(json!(ts));
            let mut t =
                json!({"exitCode": 143, "reason": "Error", "startedAt": started, "finishedAt": ts});
            if let Some(id) = c.get("containerID").cloned() {
                t["containerID"] = id;
            }
            c["state"] = json!({"terminated": t});
            c["ready"] = json!(false);
            c["started"] = json!(false);
        }
    }
    status["conditions"] = conditions(
        pod,
        &[
            ("PodReadyToStartContainers", false, None, None),
            ("Initialized", true, None, None),
            ("Ready", false, Some("PodFailed"), None),
            ("ContainersReady", false, Some("PodFailed"), None),
            ("PodScheduled", true, None, None),
        ],
    );
    status
}

/// Whether the pod's `Ready` condition is true.
pub(crate) fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .is_some_and(|c| super::is_true(c, "Ready"))
}

/// Whether a pod counts as available: ready for at least `min_ready` seconds.
pub(crate) fn pod_available(pod: &Value, min_ready: i64) -> bool {
    if !pod_ready(pod) {
        return false;
    }
    if min_ready <= 0 {
        return true;
    }
    let since = pod
        .pointer("/status/conditions")
        .and_then(|c| condition(c, "Ready"))
        .and_then(|c| c.get("lastTransitionTime"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    super::seconds_since(since) >= min_ready as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_normalized_like_containerd() {
        assert_eq!(normalize_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            normalize_image("nginx:1.27"),
            "docker.io/library/nginx:1.27"
        );
        assert_eq!(
            normalize_image("bitnami/redis:7"),
            "docker.io/bitnami/redis:7"
        );
        assert_eq!(normalize_image("ghcr.io/o/app"), "ghcr.io/o/app:latest");
        assert_eq!(
            normalize_image("localhost:5000/app:1"),
            "localhost:5000/app:1"
        );
        assert!(image_id("nginx:1").starts_with("docker.io/library/nginx@sha256:"));
        assert_eq!(image_id("nginx:1"), image_id("nginx:1"));
    }
}
