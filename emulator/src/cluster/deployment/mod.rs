//! The Deployment controller, after Kubernetes' `pkg/controller/deployment`: a ReplicaSet per
//! pod template (named `<deployment>-<pod-template-hash>`), rolling updates within
//! maxSurge/maxUnavailable (or Recreate), revision annotations, old ReplicaSets kept up to
//! `revisionHistoryLimit`, pausing, and the status Kubernetes reports: observedGeneration,
//! replica counts, and the `Available` and `Progressing` conditions with Kubernetes' reasons
//! and messages, including `ProgressDeadlineExceeded`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::events::Source;
use super::replicaset::owner_key;
use super::{Controller, Ctx, KCM, Key, Reconciler, deleting, gr, int_at, key_of, str_at};
use crate::api::Sub;
use crate::error::ApiError;
use crate::store::Event;

mod replicasets;
mod status;
mod strategy;
mod template;

use replicasets::set_annotation;
use status::{check_paused, rollout_status};
use strategy::{replicas, rolling};
use template::same_template;

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

/// A ReplicaSet's `spec.replicas`.
pub(super) fn spec_replicas(rs: &Value) -> i64 {
    int_at(rs, "/spec/replicas").unwrap_or(0)
}

/// A count of a ReplicaSet's status (0 when omitted).
pub(super) fn status_count(rs: &Value, field: &str) -> i64 {
    int_at(rs, &format!("/status/{field}")).unwrap_or(0)
}

/// The revision annotation of a ReplicaSet (0 without one).
pub(super) fn revision(rs: &Value) -> i64 {
    rs.pointer(&format!(
        "/metadata/annotations/{}",
        REVISION.replace('/', "~1")
    ))
    .and_then(Value::as_str)
    .and_then(|s| s.parse().ok())
    .unwrap_or(0)
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
        check_paused(&d, paused, &mut conds);
        if !paused {
            if new_rs.is_none() {
                match self.create_new_rs(&d, &olds, &mut conds)? {
                    Some(rs) => new_rs = Some(rs),
                    // A collision was counted; the status write requeues this Deployment.
                    None => return Ok(None),
                }
            }
            if let Some(rs) = new_rs.as_mut() {
                self.sync_new_rs(&d, rs, &olds, &mut conds)?;
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
        let (status, requeue) = rollout_status(
            &d,
            &key.1,
            new_rs.as_ref(),
            &olds,
            &old_status,
            conds,
            paused,
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
