//! The pod status the kubelet writes at each stage of a pod's life: creating, image pull
//! back-off, running, finished, and stopped by deletion.

use serde_json::{Value, json};

use super::image::{container_id, image_id, normalize_image, pull_error};
use super::{HOST_IP, Run};
use crate::api::now;
use crate::cluster::{condition, int_at, str_at};
use crate::control::Control;

/// Every container of the pod spec.
pub(super) fn containers(pod: &Value) -> Vec<Value> {
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

/// A pod condition to write: type, whether true, reason and message.
type Cond<'a> = (&'a str, bool, Option<&'a str>, Option<String>);

/// A false `Ready` or `ContainersReady` condition for the containers `msg` names.
fn unready<'a>(type_: &'a str, msg: &str) -> Cond<'a> {
    (
        type_,
        false,
        Some("ContainersNotReady"),
        Some(msg.to_string()),
    )
}

/// The status of a container that has not started: `state` is its `waiting` state.
fn waiting(c: &Value, state: Value) -> Value {
    status_of(c, state, false, false, 0, &json!({}), None)
}

/// The status of a running, ready container started at `ts`.
fn running(c: &Value, ts: &str, restarts: i64, last: &Value, id: Option<&str>) -> Value {
    status_of(
        c,
        json!({"running": {"startedAt": ts}}),
        true,
        true,
        restarts,
        last,
        id,
    )
}

/// Pod conditions in the kubelet's order, keeping transition times of unchanged ones.
fn conditions(pod: &Value, list: &[Cond]) -> Value {
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

pub(super) fn creating_status(pod: &Value) -> Value {
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
                unready("Ready", &msg),
                unready("ContainersReady", &msg),
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
        .map(|c| waiting(c, json!({"waiting": {"reason": reason}})))
        .collect();
    m.insert("containerStatuses".into(), Value::Array(statuses));
    if !inits.is_empty() {
        let statuses: Vec<Value> = inits
            .iter()
            .map(|c| waiting(c, json!({"waiting": {"reason": "PodInitializing"}})))
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

pub(super) fn running_status(pod: &Value, run: &Run, restarts: i64, last: &Value) -> Value {
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
            running(
                c,
                &ts,
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

pub(super) fn backoff_status(pod: &Value, run: &Run, control: &Control) -> Value {
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
                unready("Ready", &msg),
                unready("ContainersReady", &msg),
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
                waiting(
                    c,
                    json!({"waiting": {"reason": "ImagePullBackOff", "message": message}}),
                )
            } else {
                running(
                    c,
                    &ts,
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

pub(super) fn terminated_state(
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
pub(super) fn finished_status(
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
pub(super) fn stopped_status(pod: &Value) -> Value {
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
