//! Kubernetes' printers of built-in kinds (abridged): the columns `kubectl get` shows and how
//! each object fills them.

use serde_json::{Value, json};

use super::cells::{age, col, count, human_duration, n, s, text};
use crate::registry::ResourceType;

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
pub(super) type CellFn = Box<dyn Fn(&Value) -> Vec<Value>>;

/// Columns and a cell function for a built-in type (Kubernetes' printers, abridged).
pub(super) fn builtin_columns(rt: &ResourceType) -> (Vec<Value>, CellFn) {
    let name_col = col(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace.",
    );
    let age_col = text(
        "Age",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    let name = |o: &Value| json!(s(o.pointer("/metadata/name")));
    let created = |o: &Value| json!(age(o.pointer("/metadata/creationTimestamp")));
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "namespaces") => (
            vec![
                name_col,
                text("Status", "The status of the namespace"),
                age_col,
            ],
            Box::new(move |o| vec![name(o), json!(s(o.pointer("/status/phase"))), created(o)]),
        ),
        ("", "configmaps") => (
            vec![name_col, text("Data", "Number of data entries"), age_col],
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
                text("Type", "The type of the secret"),
                text("Data", "Number of data entries"),
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
                text(
                    "Ready",
                    "The aggregate readiness state of this pod for accepting traffic.",
                ),
                text(
                    "Status",
                    "The aggregate status of the containers in this pod.",
                ),
                text(
                    "Restarts",
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
                text("Reference", "The target of the autoscaler"),
                text("Targets", "Current and target metrics"),
                text("MinPods", "Minimum replicas"),
                text("MaxPods", "Maximum replicas"),
                text("Replicas", "Current replicas"),
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
                text("Schedule", "The schedule"),
                text("Timezone", "The time zone"),
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
                text("Status", "The phase of the claim"),
                text("Volume", "The bound volume"),
                text("Capacity", "The capacity of the bound volume"),
                text("Access Modes", "The access modes"),
                text("StorageClass", "The storage class"),
                text("VolumeAttributesClass", "The volume attributes class"),
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
                text("Capacity", "The capacity"),
                text("Access Modes", "The access modes"),
                text("Reclaim Policy", "The reclaim policy"),
                text("Status", "The phase"),
                text("Claim", "The bound claim"),
                text("StorageClass", "The storage class"),
                text("VolumeAttributesClass", "The volume attributes class"),
                text("Reason", "Why the volume is in its phase"),
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
                text("Provisioner", "The provisioner"),
                text("ReclaimPolicy", "The reclaim policy"),
                text("VolumeBindingMode", "When volumes are bound"),
                text("AllowVolumeExpansion", "Whether volumes can grow"),
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
                text("Status", "The status of the node"),
                text("Roles", "The roles of the node"),
                age_col,
                text("Version", "Kubelet Version reported by the node."),
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
                text("Ready", "Number of the pod with ready state"),
                text(
                    "Up-to-date",
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                ),
                text(
                    "Available",
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
                text("Status", "Status of the job."),
                text("Completions", "The completion status of the job."),
                text("Duration", "Time required to complete the job."),
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
                text("Type", "The type of service."),
                text("Cluster-IP", "The cluster IP."),
                text("External-IP", "External IPs."),
                text("Port(s)", "Ports."),
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
                text("Last Seen", "Time since the event was last seen"),
                text("Type", "Type of this event"),
                text("Reason", "Why the action was taken"),
                text("Object", "The object this event is about"),
                text("Message", "A human-readable description"),
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
            vec![name_col, text("Holder", "The holder of the lease"), age_col],
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
