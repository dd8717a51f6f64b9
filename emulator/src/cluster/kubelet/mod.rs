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
use super::{Controller, Ctx, Key, NODE_NAME, Reconciler, deleting, gr, str_at};
use crate::api::Sub;
use crate::error::ApiError;
use crate::store::{Event, EventType};

mod image;
mod node;
mod readiness;
mod status;

use image::{container_id, pull_error};
pub(crate) use readiness::{pod_available, pod_ready};
use status::{
    backoff_status, containers, creating_status, finished_status, running_status, stopped_status,
    terminated_state,
};

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
pub(super) struct Run {
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
