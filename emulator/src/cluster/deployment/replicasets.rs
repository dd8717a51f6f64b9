//! The Deployment's ReplicaSets: the new one created (counting hash collisions) and kept in
//! line, each scaled with its annotations and event, and old ones cleaned up past
//! `revisionHistoryLimit`.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::status::{has_progress_deadline, set_condition};
use super::strategy::{replicas, rolling, surge_and_unavailable};
use super::template::{same_template, template_hash};
use super::{
    DESIRED, Deployments, HASH_LABEL, MAX, REVISION, SKIPPED_ANNOTATIONS, SOURCE, revision,
    spec_replicas, status_count,
};
use crate::api::Sub;
use crate::cluster::{
    KCM, condition, controller_ref, controller_uid, deleting, gr, int_at, str_at,
};
use crate::error::ApiError;
use crate::registry::ResourceType;

impl Deployments {
    fn rs_rt(&self) -> Result<Arc<ResourceType>, ApiError> {
        self.ctx.rt("apps", "v1", "replicasets")
    }
    /// Changes a ReplicaSet's replicas (and its desired/max annotations), with an event.
    pub(super) fn scale_rs(&self, d: &Value, rs: &mut Value, to: i64) -> Result<(), ApiError> {
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
    pub(super) fn create_new_rs(
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
                    controller_uid(rs).as_deref() == Some(str_at(d, "/metadata/uid"))
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
    /// Keeps the new ReplicaSet in line with its Deployment: the highest revision, the
    /// Deployment's annotations and minReadySeconds; reports it found.
    pub(super) fn sync_new_rs(
        &self,
        d: &Value,
        rs: &mut Value,
        olds: &[Value],
        conds: &mut Vec<Value>,
    ) -> Result<(), ApiError> {
        // The new ReplicaSet's revision is the highest, its annotations and
        // minReadySeconds follow the Deployment.
        let max_old = olds.iter().map(revision).max().unwrap_or(0);
        let mut r = rs.clone();
        let mut ann = r
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in rs_annotations(d) {
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
        if condition(&json!(conds), "Progressing").is_none() && has_progress_deadline(d) {
            let msg = format!("Found new replica set \"{}\"", str_at(rs, "/metadata/name"));
            set_condition(conds, "Progressing", "True", "FoundNewReplicaSet", &msg);
        }
        Ok(())
    }

    /// Deletes the oldest idle ReplicaSets beyond `revisionHistoryLimit`.
    pub(super) fn cleanup(&self, d: &Value, olds: &[Value]) -> Result<(), ApiError> {
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

/// Sets one annotation of an object.
pub(super) fn set_annotation(obj: &mut Value, k: &str, v: &str) {
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
