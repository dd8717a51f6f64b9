//! The Deployment controller, after Kubernetes' `pkg/controller/deployment`: a ReplicaSet per
//! pod template (named `<deployment>-<pod-template-hash>`), rolling updates within
//! maxSurge/maxUnavailable (or Recreate), revision annotations, old ReplicaSets kept up to
//! `revisionHistoryLimit`, pausing, and the status Kubernetes reports: observedGeneration,
//! replica counts, and the `Available` and `Progressing` conditions with Kubernetes' reasons
//! and messages, including `ProgressDeadlineExceeded`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::events::Source;
use super::replicaset::owner_key;
use super::{
    Controller, Ctx, KCM, Key, Reconciler, canonical, condition, controller_ref, deleting, fnv32a,
    gr, int_at, key_of, omit_zero, safe_encode, seconds_since, str_at,
};
use crate::api::{Sub, now};
use crate::error::ApiError;
use crate::store::Event;

const SOURCE: Source = Source {
    component: "deployment-controller",
    manager: KCM,
    host: None,
};

const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX: &str = "deployment.kubernetes.io/max-replicas";

/// Annotations of a Deployment that are not copied to its ReplicaSets.
const SKIPPED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED,
    MAX,
    "deprecated.deployment.rollback.to",
];

pub(crate) struct Deployments {
    ctx: Arc<Ctx>,
}

impl Deployments {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Deployments { ctx }
    }
}

/// A percentage or an absolute number, resolved against `total` as Kubernetes'
/// `intstr.GetScaledValueFromIntOrPercent` does.
fn scaled(v: Option<&Value>, total: i64, round_up: bool, default: &str) -> i64 {
    let v = v.cloned().unwrap_or(json!(default));
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%') {
            Some(p) => {
                let x = p.parse::<f64>().unwrap_or(0.0) * total as f64 / 100.0;
                (if round_up { x.ceil() } else { x.floor() }) as i64
            }
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

fn replicas(d: &Value) -> i64 {
    int_at(d, "/spec/replicas").unwrap_or(1).max(0)
}

fn rolling(d: &Value) -> bool {
    str_at(d, "/spec/strategy/type") != "Recreate"
}

/// (maxSurge, maxUnavailable) as numbers; both 0 for Recreate.
fn surge_and_unavailable(d: &Value) -> (i64, i64) {
    if !rolling(d) {
        return (0, 0);
    }
    let n = replicas(d);
    let surge = scaled(
        d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
        n,
        true,
        "25%",
    );
    let mut unavailable = scaled(
        d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
        n,
        false,
        "25%",
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge.max(0), unavailable.clamp(0, n))
}

fn spec_replicas(rs: &Value) -> i64 {
    int_at(rs, "/spec/replicas").unwrap_or(0)
}

fn status_count(rs: &Value, field: &str) -> i64 {
    int_at(rs, &format!("/status/{field}")).unwrap_or(0)
}

fn revision(rs: &Value) -> i64 {
    rs.pointer(&format!(
        "/metadata/annotations/{}",
        REVISION.replace('/', "~1")
    ))
    .and_then(Value::as_str)
    .and_then(|s| s.parse().ok())
    .unwrap_or(0)
}

/// The template without the `pod-template-hash` label, for comparing a ReplicaSet's template
/// with its Deployment's.
fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(Value::Object(labels)) = t.pointer_mut("/metadata/labels") {
        labels.remove(HASH_LABEL);
    }
    t
}

/// A template as Kubernetes' semantic equality sees it: nulls, empty lists and empty maps
/// count as absent (Go decodes them to zero values; `kubectl rollout undo` sends
/// `creationTimestamp: null`).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether a ReplicaSet's template is the Deployment's (ignoring the hash label).
fn same_template(rs_template: Option<&Value>, template: &Value) -> bool {
    rs_template.is_some_and(|t| normalized(&without_hash(t)) == normalized(template))
}

/// The pod-template-hash of a template (FNV-1a over the template and the collision count,
/// encoded as Kubernetes encodes it).
pub(crate) fn template_hash(template: &Value, collisions: Option<i64>) -> String {
    let mut text = canonical(&normalized(template));
    if let Some(c) = collisions {
        text.push_str(&format!("#{c}"));
    }
    safe_encode(fnv32a(text.as_bytes()).to_string().as_bytes())
}

/// Sets a deployment condition as Kubernetes' `SetDeploymentCondition` does: no change when
/// status and reason are the same; the transition time survives a same-status change; the
/// condition moves to the end.
fn set_condition(conds: &mut Vec<Value>, type_: &str, status: &str, reason: &str, message: &str) {
    let ts = now();
    let current = conds
        .iter()
        .find(|c| c.get("type") == Some(&json!(type_)))
        .cloned();
    if let Some(c) = &current
        && c.get("status") == Some(&json!(status))
        && c.get("reason") == Some(&json!(reason))
    {
        return;
    }
    let since = current
        .as_ref()
        .filter(|c| c.get("status") == Some(&json!(status)))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or(json!(ts));
    conds.retain(|c| c.get("type") != Some(&json!(type_)));
    conds.push(
        json!({"type": type_, "status": status, "lastUpdateTime": ts,
        "lastTransitionTime": since, "reason": reason, "message": message}),
    );
}

fn remove_condition(conds: &mut Vec<Value>, type_: &str) {
    conds.retain(|c| c.get("type") != Some(&json!(type_)));
}

fn has_progress_deadline(d: &Value) -> bool {
    int_at(d, "/spec/progressDeadlineSeconds").is_some_and(|s| s != i64::from(i32::MAX))
}

impl Deployments {
    fn rs_rt(&self) -> Result<Arc<crate::registry::ResourceType>, ApiError> {
        self.ctx.rt("apps", "v1", "replicasets")
    }

    /// Changes a ReplicaSet's replicas (and its desired/max annotations), with an event.
    fn scale_rs(&self, d: &Value, rs: &mut Value, to: i64) -> Result<(), ApiError> {
        let from = spec_replicas(rs);
        let (surge, _) = surge_and_unavailable(d);
        let mut r = rs.clone();
        r["spec"]["replicas"] = json!(to);
        set_annotation(&mut r, DESIRED, &replicas(d).to_string());
        set_annotation(&mut r, MAX, &(replicas(d) + surge).to_string());
        if r == *rs {
            return Ok(());
        }
        *rs = self.ctx.update(&self.rs_rt()?, Sub::Main, r, KCM)?;
        if from != to {
            let op = if to > from { "up" } else { "down" };
            let msg = format!(
                "Scaled {op} replica set {} from {from} to {to}",
                str_at(rs, "/metadata/name")
            );
            self.ctx
                .recorder
                .normal(SOURCE, d, "ScalingReplicaSet", &msg);
        }
        Ok(())
    }

    /// Creates the ReplicaSet of the current template; on a name taken by another template,
    /// counts a collision (the next hash differs).
    fn create_new_rs(
        &self,
        d: &Value,
        olds: &[Value],
        conds: &mut Vec<Value>,
    ) -> Result<Option<Value>, ApiError> {
        let name = str_at(d, "/metadata/name");
        let ns = str_at(d, "/metadata/namespace");
        let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let collisions = int_at(d, "/status/collisionCount");
        let hash = template_hash(&template, collisions);
        let rs_name = format!("{name}-{hash}");
        let mut t = template.clone();
        if !t["metadata"].is_object() {
            t["metadata"] = json!({});
        }
        if !t["metadata"]["labels"].is_object() {
            t["metadata"]["labels"] = json!({});
        }
        t["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
        if !selector["matchLabels"].is_object() {
            selector["matchLabels"] = json!({});
        }
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let max_old = olds.iter().map(revision).max().unwrap_or(0);
        let (surge, _) = surge_and_unavailable(d);
        let want = replicas(d);
        // How many pods the new ReplicaSet starts with: all at once without old pods (or for
        // Recreate once they are gone), else within the surge.
        let old_total: i64 = olds.iter().map(spec_replicas).sum();
        let start = if !rolling(d) {
            if old_total == 0 { want } else { 0 }
        } else {
            (want + surge - old_total).clamp(0, want)
        };
        let mut annotations = rs_annotations(d);
        annotations.insert(REVISION.into(), json!((max_old + 1).to_string()));
        annotations.insert(DESIRED.into(), json!(want.to_string()));
        annotations.insert(MAX.into(), json!((want + surge).to_string()));
        let mut spec = json!({"replicas": start, "selector": selector, "template": t});
        if let Some(m) = d.pointer("/spec/minReadySeconds") {
            spec["minReadySeconds"] = m.clone();
        }
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "labels": t["metadata"]["labels"].clone(),
                "annotations": annotations, "ownerReferences": [controller_ref(d)]},
            "spec": spec,
        });
        match self.ctx.create(&self.rs_rt()?, ns, rs, KCM) {
            Ok(created) => {
                if start > 0 {
                    let msg = format!("Scaled up replica set {rs_name} from 0 to {start}");
                    self.ctx
                        .recorder
                        .normal(SOURCE, d, "ScalingReplicaSet", &msg);
                }
                if has_progress_deadline(d) {
                    set_condition(
                        conds,
                        "Progressing",
                        "True",
                        "NewReplicaSetCreated",
                        &format!("Created new replica set \"{rs_name}\""),
                    );
                }
                Ok(Some(created))
            }
            Err(e) if e.code == 409 => {
                let existing = self.ctx.get(&gr("apps", "replicasets"), ns, &rs_name);
                let ours = existing.as_ref().is_some_and(|rs| {
                    super::controller_uid(rs).as_deref() == Some(str_at(d, "/metadata/uid"))
                        && same_template(rs.pointer("/spec/template"), &template)
                });
                if ours {
                    return Ok(existing.map(|r| (*r).clone()));
                }
                // A hash collision: count it, and the next attempt hashes differently.
                let rt = self.ctx.rt("apps", "v1", "deployments")?;
                let mut dd = d.clone();
                if !dd["status"].is_object() {
                    dd["status"] = json!({});
                }
                dd["status"]["collisionCount"] = json!(collisions.unwrap_or(0) + 1);
                self.ctx.update(&rt, Sub::Status, dd, KCM)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// A rolling update step: scale the new ReplicaSet up within the surge, old ones down
    /// within the unavailability budget.
    fn roll(&self, d: &Value, new_rs: &mut Value, olds: &mut [Value]) -> Result<(), ApiError> {
        let want = replicas(d);
        let (surge, unavailable) = surge_and_unavailable(d);
        // reconcileNewReplicaSet
        let new_spec = spec_replicas(new_rs);
        if new_spec > want {
            self.scale_rs(d, new_rs, want)?;
        } else if new_spec < want {
            let total: i64 = olds.iter().map(spec_replicas).sum::<i64>() + new_spec;
            let max_total = want + surge;
            if total < max_total {
                let up = (max_total - total).min(want - new_spec);
                self.scale_rs(d, new_rs, new_spec + up)?;
            }
        }
        // reconcileOldReplicaSets
        let old_total: i64 = olds.iter().map(spec_replicas).sum();
        if old_total == 0 {
            return Ok(());
        }
        olds.sort_by_key(|r| str_at(r, "/metadata/creationTimestamp").to_string());
        let all: i64 = old_total + spec_replicas(new_rs);
        let min_available = want - unavailable;
        let new_unavailable = spec_replicas(new_rs) - status_count(new_rs, "availableReplicas");
        let mut budget = all - min_available - new_unavailable;
        if budget <= 0 {
            return Ok(());
        }
        // Unhealthy old pods go first.
        for rs in olds.iter_mut() {
            if budget <= 0 {
                break;
            }
            let unhealthy = spec_replicas(rs) - status_count(rs, "availableReplicas");
            if unhealthy <= 0 {
                continue;
            }
            let down = budget.min(unhealthy);
            let to = spec_replicas(rs) - down;
            self.scale_rs(d, rs, to)?;
            budget -= down;
        }
        // Then healthy ones, as long as enough pods stay available.
        let available: i64 = olds
            .iter()
            .map(|r| status_count(r, "availableReplicas").min(spec_replicas(r)))
            .sum::<i64>()
            + status_count(new_rs, "availableReplicas");
        let mut down_total = available - min_available;
        for rs in olds.iter_mut() {
            if down_total <= 0 {
                break;
            }
            let n = spec_replicas(rs);
            if n == 0 {
                continue;
            }
            let down = n.min(down_total);
            self.scale_rs(d, rs, n - down)?;
            down_total -= down;
        }
        Ok(())
    }

    /// A Recreate step: old ReplicaSets to zero, and the new one up once their pods are gone.
    fn recreate(&self, d: &Value, new_rs: &mut Value, olds: &mut [Value]) -> Result<(), ApiError> {
        for rs in olds.iter_mut() {
            if spec_replicas(rs) > 0 {
                self.scale_rs(d, rs, 0)?;
            }
        }
        if olds.iter().any(|r| status_count(r, "replicas") > 0) {
            return Ok(());
        }
        self.scale_rs(d, new_rs, replicas(d))
    }

    fn cleanup(&self, d: &Value, olds: &[Value]) -> Result<(), ApiError> {
        let limit = int_at(d, "/spec/revisionHistoryLimit").unwrap_or(10).max(0) as usize;
        let mut alive: Vec<&Value> = olds.iter().filter(|r| !deleting(r)).collect();
        if alive.len() <= limit {
            return Ok(());
        }
        alive.sort_by_key(|r| revision(r));
        let mut extra = alive.len() - limit;
        let rt = self.rs_rt()?;
        for rs in alive {
            if extra == 0 {
                break;
            }
            let idle = spec_replicas(rs) == 0
                && status_count(rs, "replicas") == 0
                && int_at(rs, "/metadata/generation") <= int_at(rs, "/status/observedGeneration");
            if !idle {
                continue;
            }
            self.ctx.delete(
                &rt,
                str_at(rs, "/metadata/namespace"),
                str_at(rs, "/metadata/name"),
                "Background",
            )?;
            extra -= 1;
        }
        Ok(())
    }
}

fn set_annotation(obj: &mut Value, k: &str, v: &str) {
    if !obj["metadata"]["annotations"].is_object() {
        obj["metadata"]["annotations"] = json!({});
    }
    obj["metadata"]["annotations"][k] = json!(v);
}

/// The annotations a Deployment passes on to its ReplicaSets.
fn rs_annotations(d: &Value) -> Map<String, Value> {
    d.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !SKIPPED_ANNOTATIONS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

impl Reconciler for Deployments {
    fn controller(&self) -> Controller {
        Controller::Deployment
    }

    fn keys(&self, e: &Event, out: &mut Vec<Key>) {
        if e.storage == gr("apps", "deployments") {
            out.push(key_of(&e.object));
        } else if e.storage == gr("apps", "replicasets")
            && let Some(k) = owner_key(&e.object, "Deployment")
        {
            out.push(k);
        }
    }

    fn all_keys(&self) -> Vec<Key> {
        self.ctx
            .list(&gr("apps", "deployments"), None)
            .iter()
            .map(|d| key_of(d))
            .collect()
    }

    fn reconcile(&self, key: &Key) -> Result<Option<Duration>, ApiError> {
        let Some(d) = self.ctx.get(&gr("apps", "deployments"), &key.0, &key.1) else {
            return Ok(None);
        };
        let mut d = (*d).clone();
        if deleting(&d) {
            return Ok(None);
        }
        let uid = str_at(&d, "/metadata/uid").to_string();
        let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let all: Vec<Value> = self
            .ctx
            .controlled_by(&uid, &gr("apps", "replicasets"))
            .into_iter()
            .filter(|r| !deleting(r))
            .map(|r| (*r).clone())
            .collect();
        let (news, mut olds): (Vec<Value>, Vec<Value>) = all
            .into_iter()
            .partition(|rs| same_template(rs.pointer("/spec/template"), &template));
        let mut new_rs = news.into_iter().next();
        let old_status = d.get("status").cloned().unwrap_or(json!({}));
        let mut conds: Vec<Value> = old_status
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let paused = d.pointer("/spec/paused") == Some(&json!(true));
        // checkPausedConditions
        if has_progress_deadline(&d) {
            let reason = condition(&json!(conds), "Progressing")
                .map(|c| str_at(c, "/reason").to_string())
                .unwrap_or_default();
            if reason != "ProgressDeadlineExceeded" {
                if paused && reason != "DeploymentPaused" {
                    set_condition(
                        &mut conds,
                        "Progressing",
                        "Unknown",
                        "DeploymentPaused",
                        "Deployment is paused",
                    );
                } else if !paused && reason == "DeploymentPaused" {
                    set_condition(
                        &mut conds,
                        "Progressing",
                        "Unknown",
                        "DeploymentResumed",
                        "Deployment is resumed",
                    );
                }
            }
        }
        if !paused {
            if new_rs.is_none() {
                match self.create_new_rs(&d, &olds, &mut conds)? {
                    Some(rs) => new_rs = Some(rs),
                    // A collision was counted; the status write requeues this Deployment.
                    None => return Ok(None),
                }
            }
            if let Some(rs) = new_rs.as_mut() {
                // The new ReplicaSet's revision is the highest, its annotations and
                // minReadySeconds follow the Deployment.
                let max_old = olds.iter().map(revision).max().unwrap_or(0);
                let mut r = rs.clone();
                let mut ann = r
                    .pointer("/metadata/annotations")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for (k, v) in rs_annotations(&d) {
                    ann.insert(k, v);
                }
                if revision(rs) <= max_old {
                    ann.insert(REVISION.into(), json!((max_old + 1).to_string()));
                }
                r["metadata"]["annotations"] = Value::Object(ann);
                match d.pointer("/spec/minReadySeconds") {
                    Some(m) => r["spec"]["minReadySeconds"] = m.clone(),
                    None => {
                        if let Some(s) = r["spec"].as_object_mut() {
                            s.remove("minReadySeconds");
                        }
                    }
                }
                if r != *rs {
                    *rs = self.ctx.update(&self.rs_rt()?, Sub::Main, r, KCM)?;
                }
                if condition(&json!(conds), "Progressing").is_none() && has_progress_deadline(&d) {
                    let msg = format!("Found new replica set \"{}\"", str_at(rs, "/metadata/name"));
                    set_condition(
                        &mut conds,
                        "Progressing",
                        "True",
                        "FoundNewReplicaSet",
                        &msg,
                    );
                }
            }
        }
        // Scaling and rolling.
        if let Some(rs) = new_rs.as_mut() {
            if paused {
                // Only scaling while paused: the newest active ReplicaSet follows the replicas.
                if olds.iter().all(|o| spec_replicas(o) == 0) {
                    self.scale_rs(&d, rs, replicas(&d))?;
                }
            } else if rolling(&d) {
                self.roll(&d, rs, &mut olds)?;
            } else {
                self.recreate(&d, rs, &mut olds)?;
            }
        }
        if !paused {
            self.cleanup(&d, &olds)?;
        }
        // Revision annotation on the Deployment (written with the status, as Kubernetes does).
        if let Some(rs) = &new_rs {
            let rev = revision(rs).to_string();
            if d.pointer(&format!(
                "/metadata/annotations/{}",
                REVISION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
                != Some(rev.as_str())
            {
                set_annotation(&mut d, REVISION, &rev);
            }
        }
        // calculateStatus
        let mut all: Vec<&Value> = olds.iter().collect();
        if let Some(rs) = &new_rs {
            all.push(rs);
        }
        let available: i64 = all
            .iter()
            .map(|r| status_count(r, "availableReplicas"))
            .sum();
        let total_spec: i64 = all.iter().map(|r| spec_replicas(r)).sum();
        let want = replicas(&d);
        let (_, max_unavailable) = surge_and_unavailable(&d);
        let mut status = json!({
            "observedGeneration": int_at(&d, "/metadata/generation").unwrap_or(1),
            "replicas": all.iter().map(|r| status_count(r, "replicas")).sum::<i64>(),
            "updatedReplicas": new_rs.as_ref().map(|r| status_count(r, "replicas")).unwrap_or(0),
            "readyReplicas": all.iter().map(|r| status_count(r, "readyReplicas")).sum::<i64>(),
            "availableReplicas": available,
            "unavailableReplicas": (total_spec - available).max(0),
        });
        if let Some(c) = old_status.get("collisionCount") {
            status["collisionCount"] = c.clone();
        }
        let max_unavailable = if want == 0 { 0 } else { max_unavailable };
        if available >= want - max_unavailable {
            set_condition(
                &mut conds,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            );
        } else {
            set_condition(
                &mut conds,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            );
        }
        // syncRolloutStatus (not while paused: the paused condition stands)
        let mut requeue = None;
        if !paused {
            if !has_progress_deadline(&d) {
                remove_condition(&mut conds, "Progressing");
            } else {
                let current = condition(
                    &json!(old_status.get("conditions").cloned().unwrap_or(json!([]))),
                    "Progressing",
                )
                .cloned();
                let current_reason = current
                    .as_ref()
                    .map(|c| str_at(c, "/reason").to_string())
                    .unwrap_or_default();
                let replicas_now = int_at(&status, "/replicas").unwrap_or(0);
                let updated = int_at(&status, "/updatedReplicas").unwrap_or(0);
                let complete_before =
                    replicas_now == updated && current_reason == "NewReplicaSetAvailable";
                let rs_name = new_rs
                    .as_ref()
                    .map(|r| str_at(r, "/metadata/name").to_string());
                let what = |verb: &str| match &rs_name {
                    Some(n) => format!("ReplicaSet \"{n}\" {verb}"),
                    None => format!("Deployment \"{}\" {verb}", key.1),
                };
                let complete = updated == want
                    && replicas_now == want
                    && available == want
                    && int_at(&status, "/observedGeneration") >= int_at(&d, "/metadata/generation");
                let old = |f: &str| int_at(&old_status, &format!("/{f}")).unwrap_or(0);
                let progressing = updated > old("updatedReplicas")
                    || (replicas_now - updated) < (old("replicas") - old("updatedReplicas"))
                    || int_at(&status, "/readyReplicas").unwrap_or(0) > old("readyReplicas")
                    || available > old("availableReplicas");
                let deadline = int_at(&d, "/spec/progressDeadlineSeconds").unwrap_or(600);
                let progress_cond = condition(&json!(conds), "Progressing").cloned();
                let last_update = progress_cond
                    .as_ref()
                    .map(|c| str_at(c, "/lastUpdateTime").to_string())
                    .unwrap_or_default();
                let reason_now = progress_cond
                    .as_ref()
                    .map(|c| str_at(c, "/reason").to_string())
                    .unwrap_or_default();
                if !complete_before {
                    if complete {
                        set_condition(
                            &mut conds,
                            "Progressing",
                            "True",
                            "NewReplicaSetAvailable",
                            &what("has successfully progressed."),
                        );
                    } else if progressing {
                        let since = progress_cond
                            .as_ref()
                            .filter(|c| c.get("status") == Some(&json!("True")))
                            .and_then(|c| c.get("lastTransitionTime").cloned());
                        remove_condition(&mut conds, "Progressing");
                        set_condition(
                            &mut conds,
                            "Progressing",
                            "True",
                            "ReplicaSetUpdated",
                            &what("is progressing."),
                        );
                        if let (Some(since), Some(c)) = (since, conds.last_mut()) {
                            c["lastTransitionTime"] = since;
                        }
                    } else if reason_now != "NewReplicaSetAvailable"
                        && progress_cond.is_some()
                        && (reason_now == "ProgressDeadlineExceeded"
                            || seconds_since(&last_update) > deadline as f64)
                    {
                        set_condition(
                            &mut conds,
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            &what("has timed out progressing."),
                        );
                    } else if progress_cond.is_some() && reason_now != "ProgressDeadlineExceeded" {
                        // requeueStuckDeployment: look again when the deadline passes.
                        let left = deadline as f64 - seconds_since(&last_update);
                        requeue = Some(Duration::from_secs_f64(left.max(0.0) + 0.6));
                    }
                }
            }
            // ReplicaFailure conditions of the ReplicaSets move up.
            let failure = new_rs.iter().chain(olds.iter()).find_map(|r| {
                r.pointer("/status/conditions")
                    .and_then(|c| condition(c, "ReplicaFailure"))
                    .cloned()
            });
            match failure {
                Some(f) => set_condition(
                    &mut conds,
                    "ReplicaFailure",
                    str_at(&f, "/status"),
                    str_at(&f, "/reason"),
                    str_at(&f, "/message"),
                ),
                None => remove_condition(&mut conds, "ReplicaFailure"),
            }
        }
        status["conditions"] = Value::Array(conds);
        omit_zero(
            &mut status,
            &[
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
                "unavailableReplicas",
            ],
        );
        let before = self.ctx.get(&gr("apps", "deployments"), &key.0, &key.1);
        let annotations_changed = before
            .as_ref()
            .map(|b| b.pointer("/metadata/annotations").cloned())
            != Some(d.pointer("/metadata/annotations").cloned());
        if d.get("status") != Some(&status) || annotations_changed {
            d["status"] = status;
            let rt = self.ctx.rt("apps", "v1", "deployments")?;
            self.ctx.update(&rt, Sub::Status, d, KCM)?;
        }
        Ok(requeue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surge_and_unavailability_resolve_like_kubernetes() {
        let d = |r: i64, s: Value, u: Value| {
            json!({"spec": {"replicas": r, "strategy": {"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": s, "maxUnavailable": u}}}})
        };
        assert_eq!(
            surge_and_unavailable(&d(1, json!("25%"), json!("25%"))),
            (1, 0)
        );
        assert_eq!(
            surge_and_unavailable(&d(10, json!("25%"), json!("25%"))),
            (3, 2)
        );
        assert_eq!(surge_and_unavailable(&d(3, json!(0), json!(0))), (0, 1));
        assert_eq!(
            surge_and_unavailable(
                &json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}})
            ),
            (0, 0)
        );
    }

    #[test]
    fn template_hashes_are_stable_and_ignore_key_order() {
        let a = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let b: Value = serde_json::from_str(r#"{"spec":{"containers":[{"image":"i","name":"c"}]},"metadata":{"labels":{"app":"x"}}}"#).unwrap();
        assert_eq!(template_hash(&a, None), template_hash(&b, None));
        assert_ne!(template_hash(&a, None), template_hash(&a, Some(1)));
        assert!(template_hash(&a, None).len() <= 10);
    }

    #[test]
    fn conditions_keep_transition_time_and_skip_no_ops() {
        let mut c = Vec::new();
        set_condition(
            &mut c,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "m",
        );
        let before = c.clone();
        set_condition(
            &mut c,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "m",
        );
        assert_eq!(c, before);
        set_condition(&mut c, "Progressing", "True", "NewReplicaSetCreated", "x");
        set_condition(
            &mut c,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "ok",
        );
        assert_eq!(c[1]["type"], "Available");
    }
}
