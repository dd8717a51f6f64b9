//! What Kubernetes' defaulting and admission add to built-in kinds beyond their schemas.

use serde_json::{Map, Value, json};

use super::Api;
use super::ids::random_suffix;
use super::meta::{meta, meta_mut, meta_str};
use crate::registry::{ResourceType, get_path, set_path};
use crate::store::name_of;

impl Api {
    /// Defaults and admission of built-in kinds (`rv` picks a new Service's cluster IP).
    pub(super) fn type_defaults(
        &self,
        rt: &ResourceType,
        old: Option<&Value>,
        new: &mut Value,
        rv: u64,
    ) {
        let key = (rt.group.as_str(), rt.resource.as_str());
        if key == ("", "namespaces") {
            if old.is_none() {
                new["status"] = json!({"phase": "Active"});
                if new.get("spec").and_then(|s| s.get("finalizers")).is_none() {
                    new["spec"] = json!({"finalizers": ["kubernetes"]});
                }
            }
            // Kubernetes always keeps this label equal to the name.
            let name = name_of(new);
            let labels = meta_mut(new).entry("labels").or_insert_with(|| json!({}));
            if labels.is_object() {
                labels["kubernetes.io/metadata.name"] = json!(name);
            }
        } else if key == ("", "pods") && old.is_none() {
            if new.get("spec").is_some_and(Value::is_object) {
                pod_admission(&mut new["spec"]);
            }
            let qos = new.get("spec").map(qos_class).unwrap_or("BestEffort");
            new["status"] = json!({"phase": "Pending", "qosClass": qos});
        } else if matches!(
            key,
            ("apps", "deployments" | "replicasets" | "statefulsets")
        ) && new.get("spec").is_some_and(Value::is_object)
            && get_path(new, ".spec.replicas").is_none()
        {
            set_path(new, ".spec.replicas", json!(1));
        } else if key == ("", "secrets") {
            if new.get("type").is_none() {
                new["type"] = json!("Opaque");
            }
            // stringData is write-only: Kubernetes merges it into data, base64-encoded.
            let string_data = new.get("stringData").is_some_and(Value::is_object);
            if string_data
                && let Some(Value::Object(sd)) =
                    new.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                if !new["data"].is_object() {
                    new["data"] = json!({});
                }
                for (k, v) in sd {
                    let text = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    new["data"][k] = json!(crate::base64::encode(text.as_bytes()));
                }
            }
        } else if key == ("", "services") && new.get("spec").is_some_and(Value::is_object) {
            service_defaults(old, new, rv);
        } else if key == ("batch", "jobs")
            && old.is_none()
            && new.get("spec").is_some_and(Value::is_object)
        {
            job_defaults(new);
        } else if key == ("", "persistentvolumeclaims")
            && let Some(Value::Object(spec)) = new.get_mut("spec")
        {
            set_default(spec, "volumeMode", json!("Filesystem"));
        } else if key == ("", "persistentvolumes")
            && let Some(Value::Object(spec)) = new.get_mut("spec")
        {
            set_default(spec, "volumeMode", json!("Filesystem"));
            set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        } else if key == ("storage.k8s.io", "storageclasses") && new.is_object() {
            if new.get("reclaimPolicy").is_none() {
                new["reclaimPolicy"] = json!("Delete");
            }
            if new.get("volumeBindingMode").is_none() {
                new["volumeBindingMode"] = json!("Immediate");
            }
        } else if key == ("autoscaling", "horizontalpodautoscalers")
            && new.get("spec").is_some_and(Value::is_object)
        {
            hpa_defaults(&mut new["spec"]);
        }
        let pod_spec = match key {
            ("", "pods") => Some(("/spec", true)),
            ("apps", _) => Some(("/spec/template/spec", true)),
            ("batch", "jobs") => Some(("/spec/template/spec", false)),
            ("batch", "cronjobs") => Some(("/spec/jobTemplate/spec/template/spec", false)),
            _ => None,
        };
        if let Some((path, restart_always)) = pod_spec
            && let Some(spec) = new.pointer_mut(path)
        {
            pod_spec_defaults(spec, restart_always);
        }
        if key == ("apps", "deployments") && new.get("spec").is_some_and(Value::is_object) {
            deployment_defaults(&mut new["spec"]);
        }
    }
}

/// Service defaults Kubernetes applies: type, session affinity, a cluster IP, port protocol
/// and target port.
fn service_defaults(old: Option<&Value>, new: &mut Value, rv: u64) {
    let spec = &mut new["spec"];
    if spec.get("type").is_none() {
        spec["type"] = json!("ClusterIP");
    }
    if spec.get("sessionAffinity").is_none() {
        spec["sessionAffinity"] = json!("None");
    }
    if spec.get("type") != Some(&json!("ExternalName")) {
        if spec.get("ipFamilies").is_none() {
            spec["ipFamilies"] = json!(["IPv4"]);
        }
        if spec.get("ipFamilyPolicy").is_none() {
            spec["ipFamilyPolicy"] = json!("SingleStack");
        }
        if spec.get("internalTrafficPolicy").is_none() {
            spec["internalTrafficPolicy"] = json!("Cluster");
        }
    }
    let external = spec.get("type") == Some(&json!("ExternalName"));
    if !external
        && spec
            .get("clusterIP")
            .is_none_or(|ip| ip.as_str() == Some(""))
    {
        match old.and_then(|o| get_path(o, ".spec.clusterIP")) {
            Some(ip) => spec["clusterIP"] = ip.clone(),
            None => {
                // A deterministic address, unique per service, from the resourceVersion counter.
                let n = rv;
                let ip = format!("10.96.{}.{}", (n / 250) % 256, n % 250 + 2);
                spec["clusterIP"] = json!(ip);
            }
        }
    }
    if let Some(ip) = spec.get("clusterIP").cloned()
        && spec.get("clusterIPs").is_none()
        && ip.as_str().is_some_and(|s| !s.is_empty())
    {
        spec["clusterIPs"] = json!([ip]);
    }
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut().filter(|p| p.is_object()) {
            if p.get("protocol").is_none() {
                p["protocol"] = json!("TCP");
            }
            if p.get("targetPort").is_none()
                && let Some(port) = p.get("port").cloned()
            {
                p["targetPort"] = port;
            }
        }
    }
}

/// Inserts `v` at `key` unless the key is present.
fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    if !m.contains_key(key) {
        m.insert(key.to_string(), v);
    }
}

/// Pod spec defaults Kubernetes applies to pods and pod templates.
fn pod_spec_defaults(spec: &mut Value, restart_always: bool) {
    let Value::Object(m) = spec else { return };
    if restart_always {
        set_default(m, "restartPolicy", json!("Always"));
    }
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "securityContext", json!({}));
    set_default(m, "schedulerName", json!("default-scheduler"));
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(cs)) = m.get_mut(list) else {
            continue;
        };
        for c in cs {
            let Value::Object(c) = c else { continue };
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let last = image.rsplit('/').next().unwrap_or_default();
            let policy = if image.contains('@') {
                "IfNotPresent"
            } else {
                match last.rsplit_once(':') {
                    Some((_, "latest")) | None => "Always",
                    Some(_) => "IfNotPresent",
                }
            };
            set_default(c, "imagePullPolicy", json!(policy));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
            if let Some(Value::Array(ports)) = c.get_mut("ports") {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    set_default(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// What Kubernetes' defaulting and admission add to a new Pod (not to pod templates):
/// requests from limits, the `default` service account with its projected API token volume
/// (ServiceAccount admission), the not-ready/unreachable tolerations (DefaultTolerationSeconds
/// admission), priority (Priority admission) and service links.
fn pod_admission(spec: &mut Value) {
    let Value::Object(m) = spec else { return };
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(cs)) = m.get_mut(list) else {
            continue;
        };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            let Some(Value::Object(res)) = c.get_mut("resources") else {
                continue;
            };
            let Some(Value::Object(limits)) = res.get("limits").cloned() else {
                continue;
            };
            let requests = res.entry("requests").or_insert_with(|| json!({}));
            if let Value::Object(req) = requests {
                for (k, v) in limits {
                    req.entry(k).or_insert(v);
                }
            }
        }
    }
    let sa = m
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| m.get("serviceAccount").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    m.insert("serviceAccountName".into(), json!(sa));
    m.insert("serviceAccount".into(), json!(sa));
    set_default(m, "enableServiceLinks", json!(true));
    set_default(m, "priority", json!(0));
    set_default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
    let tolerations = m.entry("tolerations").or_insert_with(|| json!([]));
    if let Value::Array(ts) = tolerations {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let has = ts.iter().any(|t| {
                t.get("key").and_then(Value::as_str) == Some(key)
                    && t.get("effect")
                        .and_then(Value::as_str)
                        .is_none_or(|e| e == "NoExecute")
            });
            if !has {
                ts.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    // The projected service account token, unless the pod opts out or already mounts one.
    if m.get("automountServiceAccountToken") == Some(&json!(false)) {
        return;
    }
    const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let mounted = |m: &Map<String, Value>| {
        ["initContainers", "containers"].iter().any(|l| {
            m.get(*l).and_then(Value::as_array).is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("volumeMounts")
                        .and_then(Value::as_array)
                        .is_some_and(|vm| {
                            vm.iter().any(|v| v.get("mountPath") == Some(&json!(MOUNT)))
                        })
                })
            })
        })
    };
    if mounted(m) {
        return;
    }
    let volume = format!("kube-api-access-{}", random_suffix());
    let vols = m.entry("volumes").or_insert_with(|| json!([]));
    if let Value::Array(vs) = vols {
        vs.push(json!({"name": volume, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}}
        ]}}));
    }
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(cs)) = m.get_mut(list) else {
            continue;
        };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            if let Value::Array(vm) = mounts {
                vm.push(json!({"name": volume, "mountPath": MOUNT, "readOnly": true}));
            }
        }
    }
}

/// The pod's quality-of-service class, as Kubernetes computes it from cpu and memory
/// requests and limits (quantities compared as written).
pub(crate) fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten()
        .collect();
    let get = |c: &Value, kind: &str, res: &str| {
        c.get("resources")
            .and_then(|r| r.get(kind))
            .and_then(|k| k.get(res))
            .cloned()
    };
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        for res in ["cpu", "memory"] {
            let (req, lim) = (get(c, "requests", res), get(c, "limits", res));
            any |= req.is_some() || lim.is_some();
            match (&req, &lim) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if r != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Deployment defaults: rolling update of 25 %, ten old ReplicaSets, a 600 s deadline.
fn deployment_defaults(spec: &mut Value) {
    let Value::Object(m) = spec else { return };
    set_default(m, "revisionHistoryLimit", json!(10));
    set_default(m, "progressDeadlineSeconds", json!(600));
    set_default(m, "strategy", json!({"type": "RollingUpdate"}));
    if let Some(Value::Object(st)) = m.get_mut("strategy") {
        set_default(st, "type", json!("RollingUpdate"));
        if st.get("type") == Some(&json!("RollingUpdate")) {
            set_default(st, "rollingUpdate", json!({}));
            if let Some(Value::Object(ru)) = st.get_mut("rollingUpdate") {
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
        }
    }
}

/// autoscaling/v2 defaults: one replica at least, 80 % CPU utilization when no metric is
/// given, and the scaling policies of a `behavior` that leaves them out.
fn hpa_defaults(spec: &mut Value) {
    let Value::Object(m) = spec else { return };
    set_default(m, "minReplicas", json!(1));
    let no_metrics = m
        .get("metrics")
        .is_none_or(|v| v.as_array().is_none_or(Vec::is_empty));
    if no_metrics {
        m.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    let Some(Value::Object(b)) = m.get_mut("behavior") else {
        return;
    };
    let up = b.entry("scaleUp").or_insert_with(|| json!({}));
    if let Value::Object(up) = up {
        set_default(up, "stabilizationWindowSeconds", json!(0));
        set_default(up, "selectPolicy", json!("Max"));
        set_default(
            up,
            "policies",
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
    let down = b.entry("scaleDown").or_insert_with(|| json!({}));
    if let Value::Object(down) = down {
        set_default(down, "selectPolicy", json!("Max"));
        set_default(
            down,
            "policies",
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
}

/// Job defaults Kubernetes applies at creation: counts, and the selector and labels that tie
/// the Job to its pods.
fn job_defaults(new: &mut Value) {
    let uid = meta_str(new, "uid").unwrap_or_default().to_string();
    let name = name_of(new);
    let spec = &mut new["spec"];
    for (k, v) in [
        ("parallelism", json!(1)),
        ("backoffLimit", json!(6)),
        ("completionMode", json!("NonIndexed")),
        ("suspend", json!(false)),
    ] {
        if spec.get(k).is_none() {
            spec[k] = v;
        }
    }
    if spec.get("completions").is_none() && spec.get("parallelism") == Some(&json!(1)) {
        spec["completions"] = json!(1);
    }
    if spec.get("podReplacementPolicy").is_none() {
        // JobPodReplacementPolicy (on since 1.29): Failed when a pod failure policy is set.
        let policy = if spec.get("podFailurePolicy").is_some_and(|p| !p.is_null()) {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        spec["podReplacementPolicy"] = json!(policy);
    }
    if spec.get("manualSelector") != Some(&json!(true)) && spec.get("selector").is_none() {
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        let labels = json!({
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        });
        let tmpl = &mut spec["template"];
        if tmpl.is_object() {
            if !tmpl["metadata"].is_object() {
                tmpl["metadata"] = json!({});
            }
            if !tmpl["metadata"]["labels"].is_object() {
                tmpl["metadata"]["labels"] = json!({});
            }
            if let (Some(m), Value::Object(add)) =
                (tmpl["metadata"]["labels"].as_object_mut(), labels)
            {
                m.extend(add);
            }
        }
    }
    // A Job without labels takes its pod template's (Kubernetes' job defaulting).
    let tmpl_labels = new
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    let empty = meta(new)
        .get("labels")
        .is_none_or(|l| l.as_object().is_none_or(|m| m.is_empty()));
    if empty && let Some(l) = tmpl_labels {
        meta_mut(new).insert("labels".into(), l);
    }
}
