//! The ReplicaSet controller: creates pods from the template until `spec.replicas` are
//! active, deletes the surplus (unready and newest first), and reports replicas,
//! fullyLabeledReplicas, readyReplicas, availableReplicas and observedGeneration.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::events::Source;
use super::kubelet::{pod_available, pod_ready};
use super::{
    Controller, Ctx, KCM, Key, Reconciler, condition, controller_ref, deleting, gr, int_at, key_of,
    omit_zero, seconds_since, str_at,
};
use crate::api::Sub;
use crate::error::ApiError;
use crate::selector::LabelSelector;
use crate::store::Event;

const SOURCE: Source = Source {
    component: "replicaset-controller",
    manager: KCM,
    host: None,
};

pub(crate) struct ReplicaSets {
    ctx: Arc<Ctx>,
}

impl ReplicaSets {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        ReplicaSets { ctx }
    }
}

/// The owner reference of `kind` that controls `obj`, as (namespace, name).
pub(crate) fn owner_key(obj: &Value, kind: &str) -> Option<Key> {
    let r = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| {
            r.get("controller") == Some(&json!(true)) && r.get("kind") == Some(&json!(kind))
        })?;
    Some((
        str_at(obj, "/metadata/namespace").to_string(),
        str_at(r, "/name").to_string(),
    ))
}

/// Whether a pod still counts: not deleted and not finished.
pub(crate) fn pod_active(p: &Value) -> bool {
    let phase = str_at(p, "/status/phase");
    !deleting(p) && phase != "Succeeded" && phase != "Failed"
}

/// A pod made from a workload's template, owned by `owner`, named after `prefix`.
pub(crate) fn pod_from_template(owner: &Value, template: &Value, prefix: &str) -> Value {
    let mut meta =
        json!({"generateName": format!("{prefix}-"), "ownerReferences": [controller_ref(owner)]});
    for k in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template.pointer(&format!("/metadata/{k}")) {
            meta[k] = v.clone();
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    })
}

impl Reconciler for ReplicaSets {
    fn controller(&self) -> Controller {
        Controller::ReplicaSet
    }

    fn keys(&self, e: &Event, out: &mut Vec<Key>) {
        if e.storage == gr("apps", "replicasets") {
            out.push(key_of(&e.object));
        } else if e.storage == gr("", "pods")
            && let Some(k) = owner_key(&e.object, "ReplicaSet")
        {
            out.push(k);
        }
    }

    fn all_keys(&self) -> Vec<Key> {
        self.ctx
            .list(&gr("apps", "replicasets"), None)
            .iter()
            .map(|r| key_of(r))
            .collect()
    }

    fn reconcile(&self, key: &Key) -> Result<Option<Duration>, ApiError> {
        let Some(rs) = self.ctx.get(&gr("apps", "replicasets"), &key.0, &key.1) else {
            return Ok(None);
        };
        let rs = (*rs).clone();
        if deleting(&rs) {
            return Ok(None);
        }
        let uid = str_at(&rs, "/metadata/uid").to_string();
        let pods_gr = gr("", "pods");
        let mut active: Vec<Arc<Value>> = self
            .ctx
            .controlled_by(&uid, &pods_gr)
            .into_iter()
            .filter(|p| pod_active(p))
            .collect();
        let want = int_at(&rs, "/spec/replicas").unwrap_or(1).max(0) as usize;
        let pods_rt = self.ctx.rt("", "v1", "pods")?;
        if active.len() < want {
            let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
            for _ in active.len()..want {
                let pod = pod_from_template(&rs, &template, &key.1);
                let created = self.ctx.create(&pods_rt, &key.0, pod, KCM)?;
                let name = str_at(&created, "/metadata/name").to_string();
                self.ctx.recorder.normal(
                    SOURCE,
                    &rs,
                    "SuccessfulCreate",
                    &format!("Created pod: {name}"),
                );
            }
        } else if active.len() > want {
            // Kubernetes deletes unscheduled, then pending, then unready, then the newest pods
            // first.
            active.sort_by_key(|p| {
                (
                    !str_at(p, "/spec/nodeName").is_empty(),
                    str_at(p, "/status/phase") == "Running",
                    pod_ready(p),
                    std::cmp::Reverse(str_at(p, "/metadata/creationTimestamp").to_string()),
                )
            });
            for p in active.iter().take(active.len() - want) {
                let name = str_at(p, "/metadata/name").to_string();
                self.ctx.delete(&pods_rt, &key.0, &name, "Background")?;
                self.ctx.recorder.normal(
                    SOURCE,
                    &rs,
                    "SuccessfulDelete",
                    &format!("Deleted pod: {name}"),
                );
            }
        }
        // Status from the pods as they are now.
        let pods: Vec<Arc<Value>> = self
            .ctx
            .controlled_by(&uid, &pods_gr)
            .into_iter()
            .filter(|p| pod_active(p))
            .collect();
        let min_ready = int_at(&rs, "/spec/minReadySeconds").unwrap_or(0);
        let template_labels = rs
            .pointer("/spec/template/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        let fully = LabelSelector::from_object(&json!({"matchLabels": template_labels}))
            .map(|s| pods.iter().filter(|p| s.matches(p)).count())
            .unwrap_or(pods.len());
        let ready = pods.iter().filter(|p| pod_ready(p)).count();
        let available = pods.iter().filter(|p| pod_available(p, min_ready)).count();
        let mut status = json!({
            "replicas": pods.len(),
            "fullyLabeledReplicas": fully,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": int_at(&rs, "/metadata/generation").unwrap_or(1),
        });
        omit_zero(
            &mut status,
            &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
        );
        // Conditions (ReplicaFailure) are kept as they are.
        if let Some(c) = rs.pointer("/status/conditions") {
            status["conditions"] = c.clone();
        }
        if rs.get("status") != Some(&status) {
            let rt = self.ctx.rt("apps", "v1", "replicasets")?;
            let mut r = rs.clone();
            r["status"] = status;
            self.ctx.update(&rt, Sub::Status, r, KCM)?;
        }
        // Look again when a ready pod becomes available.
        if ready > available && min_ready > 0 {
            let soonest = pods
                .iter()
                .filter(|p| pod_ready(p) && !pod_available(p, min_ready))
                .filter_map(|p| {
                    let since = p
                        .pointer("/status/conditions")
                        .and_then(|c| condition(c, "Ready"))
                        .and_then(|c| c.get("lastTransitionTime"))
                        .and_then(Value::as_str)?;
                    Some(min_ready as f64 - seconds_since(since))
                })
                .fold(f64::MAX, f64::min);
            return Ok(Some(Duration::from_secs_f64(soonest.clamp(0.05, 3600.0))));
        }
        Ok(None)
    }
}
