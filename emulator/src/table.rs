//! `meta.k8s.io/v1` Table responses (what `kubectl get` asks for), with printer columns.

use serde_json::{Value, json};

use crate::registry::{PrinterColumn, ResourceType};

/// Evaluates the simple JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*].b`,
/// `.a[?(@.k=="v")].b`.
pub fn json_path(obj: &Value, path: &str) -> Vec<Value> {
    let mut cur = vec![obj.clone()];
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            rest = &r[end..];
            if key.is_empty() {
                continue;
            }
            cur = cur.iter().filter_map(|v| v.get(key).cloned()).collect();
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return Vec::new();
            };
            let inner = &r[..end];
            rest = &r[end + 1..];
            cur = if inner == "*" {
                cur.iter()
                    .flat_map(|v| match v {
                        Value::Array(a) => a.clone(),
                        Value::Object(m) => m.values().cloned().collect(),
                        _ => Vec::new(),
                    })
                    .collect()
            } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, want) = match f.split_once("==") {
                    Some((a, b)) => (
                        a.trim(),
                        Some(b.trim().trim_matches(|c| c == '"' || c == '\'').to_string()),
                    ),
                    None => (f.trim(), None),
                };
                cur.iter()
                    .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                    .filter(|item| {
                        let got = item.get(field);
                        match (&want, got) {
                            (Some(w), Some(Value::String(s))) => s == w,
                            (Some(w), Some(other)) => {
                                *other == serde_json::from_str::<Value>(w).unwrap_or(Value::Null)
                            }
                            (None, Some(_)) => true,
                            _ => false,
                        }
                    })
                    .collect()
            } else if let Ok(i) = inner.parse::<i64>() {
                cur.iter()
                    .filter_map(|v| {
                        let a = v.as_array()?;
                        let idx = if i < 0 { a.len() as i64 + i } else { i };
                        a.get(usize::try_from(idx).ok()?).cloned()
                    })
                    .collect()
            } else {
                let key = inner.trim_matches(|c| c == '\'' || c == '"');
                cur.iter().filter_map(|v| v.get(key).cloned()).collect()
            };
        } else {
            return Vec::new();
        }
    }
    cur
}

/// Kubernetes' human-readable duration (`5s`, `3m`, `2d`), as `kubectl get` shows ages.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rem = s % 60;
        return if rem == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rem}s")
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 8 {
        let rem = m % 60;
        return if rem == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rem}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if d < 8 {
        let rem = h % 24;
        return if rem == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rem}h")
        };
    }
    if d < 365 * 2 {
        return format!("{d}d");
    }
    format!("{}y", d / 365)
}

fn age(ts: Option<&Value>) -> String {
    let Some(s) = ts.and_then(Value::as_str) else {
        return "<unknown>".into();
    };
    match s.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        Err(_) => "<invalid>".into(),
    }
}

fn col(name: &str, type_: &str, format: &str, priority: i64, description: &str) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

fn s(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "<none>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn n(v: Option<&Value>) -> Value {
    v.cloned().filter(|x| x.is_number()).unwrap_or(json!(0))
}

fn count(v: Option<&Value>) -> usize {
    match v {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

/// Columns and a cell function for a built-in type (Kubernetes' printers, abridged).
/// The pod status kubectl prints: the phase, or the reason of a waiting or terminated
/// container (`ContainerCreating`, `ImagePullBackOff`, `Completed`, `Error`), `Init:` states,
/// and `Terminating` for a deleted pod.
fn pod_status(o: &Value) -> String {
    let mut reason = s(o.pointer("/status/phase"));
    if let Some(r) = o.pointer("/status/reason").and_then(Value::as_str) {
        reason = r.to_string();
    }
    let list = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let inits = list("/status/initContainerStatuses");
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        let term = c.pointer("/state/terminated");
        let waiting = c.pointer("/state/waiting/reason").and_then(Value::as_str);
        match (term, waiting) {
            (Some(t), _) if t.get("exitCode") == Some(&json!(0)) => continue,
            (Some(t), _) => {
                reason = match t.get("reason").and_then(Value::as_str) {
                    Some(r) if !r.is_empty() => format!("Init:{r}"),
                    _ => format!("Init:ExitCode:{}", s(t.get("exitCode"))),
                };
            }
            (None, Some(w)) if !w.is_empty() && w != "PodInitializing" => {
                reason = format!("Init:{w}");
            }
            _ => reason = format!("Init:{i}/{}", inits.len()),
        }
        initializing = true;
        break;
    }
    if !initializing {
        let mut running = false;
        for c in list("/status/containerStatuses").iter().rev() {
            let waiting = c.pointer("/state/waiting/reason").and_then(Value::as_str);
            let term = c.pointer("/state/terminated");
            if let Some(w) = waiting.filter(|w| !w.is_empty()) {
                reason = w.to_string();
            } else if let Some(t) = term {
                reason = match t.get("reason").and_then(Value::as_str) {
                    Some(r) if !r.is_empty() => r.to_string(),
                    _ => format!("ExitCode:{}", s(t.get("exitCode"))),
                };
            } else if c.get("ready") == Some(&json!(true)) && c.pointer("/state/running").is_some()
            {
                running = true;
            }
        }
        if reason == "Completed" && running {
            reason = "Running".into();
        }
    }
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    reason
}

/// The phase, or `Terminating` once deletion started, as kubectl prints volumes and claims.
fn phase_or_terminating(o: &Value) -> String {
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    s(o.pointer("/status/phase"))
}

/// Access modes as kubectl abbreviates them.
fn access_modes(v: Option<&Value>) -> String {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|m| match m {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// kubectl's TARGETS column of an autoscaler: `<current>/<target>` per metric.
fn hpa_targets(o: &Value) -> String {
    let specs = o
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let current = o
        .pointer("/status/currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let parts: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
            let key = match kind {
                "Resource" => "resource",
                "ContainerResource" => "containerResource",
                "Pods" => "pods",
                "Object" => "object",
                _ => "external",
            };
            let src = m.get(key).cloned().unwrap_or(Value::Null);
            let target = src.get("target").cloned().unwrap_or(Value::Null);
            let cur = current
                .get(i)
                .and_then(|c| c.get(key))
                .and_then(|c| c.get("current"))
                .cloned()
                .unwrap_or(Value::Null);
            let (now, want) = match target.get("averageUtilization") {
                Some(u) => (
                    cur.get("averageUtilization")
                        .map(|c| format!("{}%", s(Some(c))))
                        .unwrap_or_else(|| "<unknown>".into()),
                    format!("{}%", s(Some(u))),
                ),
                None => {
                    let field = if target.get("averageValue").is_some() {
                        "averageValue"
                    } else {
                        "value"
                    };
                    (
                        cur.get(field)
                            .map(|c| s(Some(c)))
                            .unwrap_or_else(|| "<unknown>".into()),
                        s(target.get(field)),
                    )
                }
            };
            let name = src.get("name").and_then(Value::as_str).unwrap_or_default();
            if kind == "Resource" || kind == "ContainerResource" {
                format!("{name}: {now}/{want}")
            } else {
                format!("{now}/{want}")
            }
        })
        .collect();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(", ")
    }
}

/// Computes a row's cells from an object.
type CellFn = Box<dyn Fn(&Value) -> Vec<Value>>;

fn builtin_columns(rt: &ResourceType) -> (Vec<Value>, CellFn) {
    let name_col = col(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace.",
    );
    let age_col = col(
        "Age",
        "string",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    let name = |o: &Value| json!(s(o.pointer("/metadata/name")));
    let created = |o: &Value| json!(age(o.pointer("/metadata/creationTimestamp")));
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "namespaces") => (
            vec![
                name_col,
                col("Status", "string", "", 0, "The status of the namespace"),
                age_col,
            ],
            Box::new(move |o| vec![name(o), json!(s(o.pointer("/status/phase"))), created(o)]),
        ),
        ("", "configmaps") => (
            vec![
                name_col,
                col("Data", "string", "", 0, "Number of data entries"),
                age_col,
            ],
            Box::new(move |o| {
                vec![
                    name(o),
                    json!(count(o.get("data")) + count(o.get("binaryData"))),
                    created(o),
                ]
            }),
        ),
        ("", "secrets") => (
            vec![
                name_col,
                col("Type", "string", "", 0, "The type of the secret"),
                col("Data", "string", "", 0, "Number of data entries"),
                age_col,
            ],
            Box::new(move |o| {
                vec![
                    name(o),
                    json!(s(o.get("type"))),
                    json!(count(o.get("data"))),
                    created(o),
                ]
            }),
        ),
        ("", "pods") => (
            vec![
                name_col,
                col(
                    "Ready",
                    "string",
                    "",
                    0,
                    "The aggregate readiness state of this pod for accepting traffic.",
                ),
                col(
                    "Status",
                    "string",
                    "",
                    0,
                    "The aggregate status of the containers in this pod.",
                ),
                col(
                    "Restarts",
                    "string",
                    "",
                    0,
                    "The number of times the containers in this pod have been restarted.",
                ),
                age_col,
            ],
            Box::new(move |o| {
                let total = count(o.pointer("/spec/containers"));
                let statuses = o
                    .pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let ready = statuses
                    .iter()
                    .filter(|c| c.get("ready") == Some(&json!(true)))
                    .count();
                let restarts: i64 = statuses
                    .iter()
                    .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                    .sum();
                vec![
                    name(o),
                    json!(format!("{ready}/{total}")),
                    json!(pod_status(o)),
                    json!(restarts),
                    created(o),
                ]
            }),
        ),
        ("autoscaling", "horizontalpodautoscalers") => (
            vec![
                name_col,
                col("Reference", "string", "", 0, "The target of the autoscaler"),
                col("Targets", "string", "", 0, "Current and target metrics"),
                col("MinPods", "string", "", 0, "Minimum replicas"),
                col("MaxPods", "string", "", 0, "Maximum replicas"),
                col("Replicas", "string", "", 0, "Current replicas"),
                age_col,
            ],
            Box::new(move |o| {
                let reference = format!(
                    "{}/{}",
                    s(o.pointer("/spec/scaleTargetRef/kind")),
                    s(o.pointer("/spec/scaleTargetRef/name"))
                );
                vec![
                    name(o),
                    json!(reference),
                    json!(hpa_targets(o)),
                    json!(
                        o.pointer("/spec/minReplicas")
                            .map(|v| s(Some(v)))
                            .unwrap_or_else(|| "<unset>".into())
                    ),
                    json!(s(o.pointer("/spec/maxReplicas"))),
                    json!(
                        o.pointer("/status/currentReplicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    ),
                    created(o),
                ]
            }),
        ),
        ("batch", "cronjobs") => (
            vec![
                name_col,
                col("Schedule", "string", "", 0, "The schedule"),
                col("Timezone", "string", "", 0, "The time zone"),
                col("Suspend", "boolean", "", 0, "Whether it is suspended"),
                col("Active", "integer", "", 0, "Active jobs"),
                col(
                    "Last Schedule",
                    "date",
                    "",
                    0,
                    "When a job was last scheduled",
                ),
                age_col,
            ],
            Box::new(move |o| {
                let last = o.pointer("/status/lastScheduleTime");
                vec![
                    name(o),
                    json!(s(o.pointer("/spec/schedule"))),
                    json!(
                        o.pointer("/spec/timeZone")
                            .and_then(Value::as_str)
                            .unwrap_or("<none>")
                    ),
                    json!(o.pointer("/spec/suspend") == Some(&json!(true))),
                    json!(count(o.pointer("/status/active"))),
                    json!(if last.is_some() {
                        age(last)
                    } else {
                        "<none>".into()
                    }),
                    created(o),
                ]
            }),
        ),
        ("", "persistentvolumeclaims") => (
            vec![
                name_col,
                col("Status", "string", "", 0, "The phase of the claim"),
                col("Volume", "string", "", 0, "The bound volume"),
                col(
                    "Capacity",
                    "string",
                    "",
                    0,
                    "The capacity of the bound volume",
                ),
                col("Access Modes", "string", "", 0, "The access modes"),
                col("StorageClass", "string", "", 0, "The storage class"),
                col(
                    "VolumeAttributesClass",
                    "string",
                    "",
                    0,
                    "The volume attributes class",
                ),
                age_col,
            ],
            Box::new(move |o| {
                vec![
                    name(o),
                    json!(phase_or_terminating(o)),
                    json!(s(o.pointer("/spec/volumeName"))),
                    json!(s(o.pointer("/status/capacity/storage"))),
                    json!(access_modes(o.pointer("/status/accessModes"))),
                    json!(s(o.pointer("/spec/storageClassName"))),
                    json!("<unset>"),
                    created(o),
                ]
            }),
        ),
        ("", "persistentvolumes") => (
            vec![
                name_col,
                col("Capacity", "string", "", 0, "The capacity"),
                col("Access Modes", "string", "", 0, "The access modes"),
                col("Reclaim Policy", "string", "", 0, "The reclaim policy"),
                col("Status", "string", "", 0, "The phase"),
                col("Claim", "string", "", 0, "The bound claim"),
                col("StorageClass", "string", "", 0, "The storage class"),
                col(
                    "VolumeAttributesClass",
                    "string",
                    "",
                    0,
                    "The volume attributes class",
                ),
                col("Reason", "string", "", 0, "Why the volume is in its phase"),
                age_col,
            ],
            Box::new(move |o| {
                let claim = match o.pointer("/spec/claimRef/name").and_then(Value::as_str) {
                    Some(n) => format!("{}/{n}", s(o.pointer("/spec/claimRef/namespace"))),
                    None => String::new(),
                };
                vec![
                    name(o),
                    json!(s(o.pointer("/spec/capacity/storage"))),
                    json!(access_modes(o.pointer("/spec/accessModes"))),
                    json!(s(o.pointer("/spec/persistentVolumeReclaimPolicy"))),
                    json!(phase_or_terminating(o)),
                    json!(claim),
                    json!(s(o.pointer("/spec/storageClassName"))),
                    json!("<unset>"),
                    json!(
                        o.pointer("/status/reason")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                    ),
                    created(o),
                ]
            }),
        ),
        ("storage.k8s.io", "storageclasses") => (
            vec![
                name_col,
                col("Provisioner", "string", "", 0, "The provisioner"),
                col("ReclaimPolicy", "string", "", 0, "The reclaim policy"),
                col(
                    "VolumeBindingMode",
                    "string",
                    "",
                    0,
                    "When volumes are bound",
                ),
                col(
                    "AllowVolumeExpansion",
                    "string",
                    "",
                    0,
                    "Whether volumes can grow",
                ),
                age_col,
            ],
            Box::new(move |o| {
                let default = o
                    .pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
                    .and_then(Value::as_str)
                    == Some("true");
                let mut n = s(o.pointer("/metadata/name"));
                if default {
                    n.push_str(" (default)");
                }
                vec![
                    json!(n),
                    json!(s(o.get("provisioner"))),
                    json!(s(o.get("reclaimPolicy"))),
                    json!(s(o.get("volumeBindingMode"))),
                    json!(o.get("allowVolumeExpansion") == Some(&json!(true))),
                    created(o),
                ]
            }),
        ),
        ("", "nodes") => (
            vec![
                name_col,
                col("Status", "string", "", 0, "The status of the node"),
                col("Roles", "string", "", 0, "The roles of the node"),
                age_col,
                col(
                    "Version",
                    "string",
                    "",
                    0,
                    "Kubelet Version reported by the node.",
                ),
            ],
            Box::new(move |o| {
                let ready = o
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|c| c.get("type") == Some(&json!("Ready"))))
                    .map(|c| c.get("status") == Some(&json!("True")));
                let mut status = match ready {
                    Some(true) => "Ready".to_string(),
                    Some(false) => "NotReady".to_string(),
                    None => "Unknown".to_string(),
                };
                if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
                    status.push_str(",SchedulingDisabled");
                }
                let roles: Vec<String> = o
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.keys()
                            .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                            .filter(|r| !r.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                vec![
                    name(o),
                    json!(status),
                    json!(if roles.is_empty() {
                        "<none>".to_string()
                    } else {
                        roles.join(",")
                    }),
                    created(o),
                    json!(s(o.pointer("/status/nodeInfo/kubeletVersion"))),
                ]
            }),
        ),
        ("apps", "deployments") => (
            vec![
                name_col,
                col(
                    "Ready",
                    "string",
                    "",
                    0,
                    "Number of the pod with ready state",
                ),
                col(
                    "Up-to-date",
                    "string",
                    "",
                    0,
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                ),
                col(
                    "Available",
                    "string",
                    "",
                    0,
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                ),
                age_col,
            ],
            Box::new(move |o| {
                let ready = o
                    .pointer("/status/readyReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let want = o
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                vec![
                    name(o),
                    json!(format!("{ready}/{want}")),
                    n(o.pointer("/status/updatedReplicas")),
                    n(o.pointer("/status/availableReplicas")),
                    created(o),
                ]
            }),
        ),
        ("apps", "replicasets") => (
            vec![
                name_col,
                col("Desired", "integer", "", 0, "Number of desired pods."),
                col("Current", "integer", "", 0, "Number of actual replicas."),
                col(
                    "Ready",
                    "integer",
                    "",
                    0,
                    "The number of ready replicas for this replica set.",
                ),
                age_col,
            ],
            Box::new(move |o| {
                vec![
                    name(o),
                    n(o.pointer("/spec/replicas")),
                    n(o.pointer("/status/replicas")),
                    n(o.pointer("/status/readyReplicas")),
                    created(o),
                ]
            }),
        ),
        ("batch", "jobs") => (
            vec![
                name_col,
                col("Status", "string", "", 0, "Status of the job."),
                col(
                    "Completions",
                    "string",
                    "",
                    0,
                    "The completion status of the job.",
                ),
                col(
                    "Duration",
                    "string",
                    "",
                    0,
                    "Time required to complete the job.",
                ),
                age_col,
            ],
            Box::new(move |o| {
                let conds = o
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let has = |t: &str| {
                    conds.iter().any(|c| {
                        c.get("type") == Some(&json!(t)) && c.get("status") == Some(&json!("True"))
                    })
                };
                let status = if has("Complete") {
                    "Complete"
                } else if has("Failed") {
                    "Failed"
                } else if o.pointer("/spec/suspend") == Some(&json!(true)) {
                    "Suspended"
                } else {
                    "Running"
                };
                let want = o
                    .pointer("/spec/completions")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                let done = o
                    .pointer("/status/succeeded")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let dur = match (
                    o.pointer("/status/startTime").and_then(Value::as_str),
                    o.pointer("/status/completionTime").and_then(Value::as_str),
                ) {
                    (Some(a), Some(b)) => {
                        match (a.parse::<jiff::Timestamp>(), b.parse::<jiff::Timestamp>()) {
                            (Ok(a), Ok(b)) => human_duration(b.as_second() - a.as_second()),
                            _ => String::new(),
                        }
                    }
                    (Some(a), None) => age(Some(&json!(a))),
                    _ => String::new(),
                };
                vec![
                    name(o),
                    json!(status),
                    json!(format!("{done}/{want}")),
                    json!(dur),
                    created(o),
                ]
            }),
        ),
        ("", "services") => (
            vec![
                name_col,
                col("Type", "string", "", 0, "The type of service."),
                col("Cluster-IP", "string", "", 0, "The cluster IP."),
                col("External-IP", "string", "", 0, "External IPs."),
                col("Port(s)", "string", "", 0, "Ports."),
                age_col,
            ],
            Box::new(move |o| {
                let ports: Vec<String> = o
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|p| {
                        format!(
                            "{}/{}",
                            s(p.get("port")),
                            p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                        )
                    })
                    .collect();
                vec![
                    name(o),
                    json!(
                        o.pointer("/spec/type")
                            .and_then(Value::as_str)
                            .unwrap_or("ClusterIP")
                    ),
                    json!(s(o.pointer("/spec/clusterIP"))),
                    json!("<none>"),
                    json!(if ports.is_empty() {
                        "<none>".to_string()
                    } else {
                        ports.join(",")
                    }),
                    created(o),
                ]
            }),
        ),
        ("", "events") => (
            vec![
                col(
                    "Last Seen",
                    "string",
                    "",
                    0,
                    "Time since the event was last seen",
                ),
                col("Type", "string", "", 0, "Type of this event"),
                col("Reason", "string", "", 0, "Why the action was taken"),
                col("Object", "string", "", 0, "The object this event is about"),
                col("Message", "string", "", 0, "A human-readable description"),
            ],
            Box::new(move |o| {
                let last = o
                    .get("lastTimestamp")
                    .filter(|v| !v.is_null())
                    .or_else(|| o.pointer("/series/lastObservedTime"))
                    .or_else(|| o.get("eventTime"))
                    .or_else(|| o.pointer("/metadata/creationTimestamp"));
                let obj = format!(
                    "{}/{}",
                    o.pointer("/involvedObject/kind")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_lowercase(),
                    o.pointer("/involvedObject/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                );
                vec![
                    json!(age(last)),
                    json!(s(o.get("type"))),
                    json!(s(o.get("reason"))),
                    json!(obj),
                    json!(o.get("message").and_then(Value::as_str).unwrap_or_default()),
                ]
            }),
        ),
        ("coordination.k8s.io", "leases") => (
            vec![
                name_col,
                col("Holder", "string", "", 0, "The holder of the lease"),
                age_col,
            ],
            Box::new(move |o| {
                vec![
                    name(o),
                    json!(
                        o.pointer("/spec/holderIdentity")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                    ),
                    created(o),
                ]
            }),
        ),
        ("apiextensions.k8s.io", "customresourcedefinitions") => (
            vec![
                name_col,
                col("Created At", "date", "", 0, "When the CRD was created"),
            ],
            Box::new(move |o| vec![name(o), json!(s(o.pointer("/metadata/creationTimestamp")))]),
        ),
        _ => (
            vec![name_col, age_col],
            Box::new(move |o| vec![name(o), created(o)]),
        ),
    }
}

fn custom_cell(c: &PrinterColumn, obj: &Value) -> Value {
    let vals = json_path(obj, &c.json_path);
    let Some(first) = vals.into_iter().next() else {
        return Value::Null;
    };
    match c.type_.as_str() {
        "date" => json!(age(Some(&first))),
        "integer" | "number" | "boolean" => first,
        _ => match first {
            Value::String(s) => json!(s),
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
    }
}

fn row(obj: &Value, cells: Vec<Value>) -> Value {
    let mut meta = json!({});
    if let Some(m) = obj.get("metadata").and_then(Value::as_object) {
        for (k, v) in m {
            if k != "managedFields" {
                meta[k] = v.clone();
            }
        }
    }
    json!({
        "cells": cells,
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta},
    })
}

/// A Table for a list (or a single object) of one type.
pub fn table(rt: &ResourceType, objects: &[Value], list_meta: Value) -> Value {
    let (defs, rows): (Vec<Value>, Vec<Value>) = if rt.custom {
        let mut defs = vec![col(
            "Name",
            "string",
            "name",
            0,
            "Name must be unique within a namespace.",
        )];
        defs.extend(
            rt.printer_columns
                .iter()
                .map(|c| col(&c.name, &c.type_, &c.format, c.priority, &c.description)),
        );
        let rows = objects
            .iter()
            .map(|o| {
                let mut cells = vec![json!(s(o.pointer("/metadata/name")))];
                cells.extend(rt.printer_columns.iter().map(|c| custom_cell(c, o)));
                row(o, cells)
            })
            .collect();
        (defs, rows)
    } else {
        let (defs, f) = builtin_columns(rt);
        (defs, objects.iter().map(|o| row(o, f(o))).collect())
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        let o = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]}, "spec": {"a": [1, 2]}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(json_path(&o, ".spec.a[1]"), vec![json!(2)]);
        assert_eq!(json_path(&o, ".spec.a[*]").len(), 2);
        assert!(json_path(&o, ".nope.x").is_empty());
        assert!(json_path(&o, "[[[").is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 5), "5h");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
