//! The Job controller, after Kubernetes' `pkg/controller/job` (the TTL-after-finished
//! controller shares its work queue and is in `ttl`): pods created up to `parallelism` with the
//! `batch.kubernetes.io/job-tracking` finalizer, succeeded/failed counted from finished pods,
//! failed pods replaced after an exponential backoff until `backoffLimit`, `suspend`,
//! `activeDeadlineSeconds`, and the conditions Kubernetes 1.31+ writes: `SuccessCriteriaMet`
//! then `Complete`, or `FailureTarget` then `Failed`, with `startTime` and `completionTime`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::events::Source;
use super::kubelet::pod_ready;
use super::replicaset::{owner_key, pod_active, pod_from_template};
use super::{
    Controller, Ctx, KCM, Key, Reconciler, condition, deleting, gr, int_at, is_true, key_of,
    omit_zero, seconds_since, str_at,
};
use crate::api::{Sub, now};
use crate::error::ApiError;
use crate::store::{Event, EventType};

mod ttl;

const SOURCE: Source = Source {
    component: "job-controller",
    manager: KCM,
    host: None,
};

/// The finalizer that keeps a Job's pods until they are counted.
pub(crate) const TRACKING: &str = "batch.kubernetes.io/job-tracking";

pub(crate) struct Jobs {
    ctx: Arc<Ctx>,
    run_jobs: bool,
    ttl: bool,
    kubelet: bool,
    /// Pods already counted (or deliberately not counted), per Job uid.
    counted: Mutex<HashMap<String, HashSet<String>>>,
    /// When each Job last saw a pod fail, for the replacement backoff.
    last_failure: Mutex<HashMap<String, Instant>>,
}

impl Jobs {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Jobs {
            run_jobs: ctx.control.runs(Controller::Job),
            ttl: ctx.control.runs(Controller::TtlAfterFinished),
            kubelet: ctx.control.runs(Controller::Kubelet),
            ctx,
            counted: Mutex::new(HashMap::new()),
            last_failure: Mutex::new(HashMap::new()),
        }
    }

    fn pods_rt(&self) -> Result<Arc<crate::registry::ResourceType>, ApiError> {
        self.ctx.rt("", "v1", "pods")
    }

    /// Drops the tracking finalizer from pods.
    fn release(&self, pods: &[Arc<Value>]) -> Result<(), ApiError> {
        let rt = self.pods_rt()?;
        for p in pods {
            let fins = p
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !fins.iter().any(|f| f == TRACKING) {
                continue;
            }
            let mut np = (**p).clone();
            let left: Vec<Value> = fins.into_iter().filter(|f| f != TRACKING).collect();
            if left.is_empty() {
                if let Some(m) = np["metadata"].as_object_mut() {
                    m.remove("finalizers");
                }
            } else {
                np["metadata"]["finalizers"] = Value::Array(left);
            }
            match self.ctx.update(&rt, Sub::Main, np, KCM) {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Pods in the namespace that name a Job of this name as their controller but whose Job is
    /// gone: their finalizers are removed so they can go.
    fn release_orphans(&self, ns: &str, name: &str) -> Result<(), ApiError> {
        let pods: Vec<Arc<Value>> = self
            .ctx
            .list(&gr("", "pods"), Some(ns))
            .into_iter()
            .filter(|p| owner_key(p, "Job").is_some_and(|k| k.1 == name))
            .filter(|p| {
                super::controller_uid(p)
                    .is_none_or(|u| self.ctx.api.store().lock().by_uid(&u).is_none())
            })
            .collect();
        self.release(&pods)
    }
}

/// Sets a job condition (probe and transition times now, unless status is unchanged).
fn set_job_condition(
    conds: &mut Vec<Value>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> bool {
    let ts = now();
    if let Some(c) = conds
        .iter_mut()
        .find(|c| c.get("type") == Some(&json!(type_)))
    {
        if c.get("status") == Some(&json!(status)) {
            return false;
        }
        *c = json!({"type": type_, "status": status, "lastProbeTime": ts, "lastTransitionTime": ts,
            "reason": reason, "message": message});
        return true;
    }
    conds.push(
        json!({"type": type_, "status": status, "lastProbeTime": ts, "lastTransitionTime": ts,
        "reason": reason, "message": message}),
    );
    true
}

fn has(conds: &[Value], type_: &str) -> bool {
    is_true(&Value::Array(conds.to_vec()), type_)
}

/// The delay before replacing a pod after `failures` failures: `base` doubling, capped.
fn backoff(base: Duration, failures: i64) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).clamp(0, 16) as u32;
    (base * factor).min(base * 36)
}

impl Reconciler for Jobs {
    fn controller(&self) -> Controller {
        Controller::Job
    }

    fn keys(&self, e: &Event, out: &mut Vec<Key>) {
        if e.storage == gr("batch", "jobs") {
            if e.kind == EventType::Deleted {
                let uid = str_at(&e.object, "/metadata/uid");
                self.counted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(uid);
                self.last_failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(uid);
            }
            out.push(key_of(&e.object));
        } else if e.storage == gr("", "pods")
            && let Some(k) = owner_key(&e.object, "Job")
        {
            out.push(k);
        }
    }

    fn all_keys(&self) -> Vec<Key> {
        self.ctx
            .list(&gr("batch", "jobs"), None)
            .iter()
            .map(|j| key_of(j))
            .collect()
    }

    fn reconcile(&self, key: &Key) -> Result<Option<Duration>, ApiError> {
        let Some(job) = self.ctx.get(&gr("batch", "jobs"), &key.0, &key.1) else {
            if self.run_jobs {
                self.release_orphans(&key.0, &key.1)?;
            }
            return Ok(None);
        };
        let job = (*job).clone();
        let uid = str_at(&job, "/metadata/uid").to_string();
        let pods = self.ctx.controlled_by(&uid, &gr("", "pods"));
        let mut conds: Vec<Value> = job
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let finished = has(&conds, "Complete") || has(&conds, "Failed");
        if !self.run_jobs {
            return if finished { self.ttl(&job) } else { Ok(None) };
        }
        if finished || deleting(&job) {
            self.release(&pods)?;
            return if finished && !deleting(&job) {
                self.ttl(&job)
            } else {
                Ok(None)
            };
        }
        let knobs = self.ctx.control.knobs();
        let pods_rt = self.pods_rt()?;
        let jobs_rt = self.ctx.rt("batch", "v1", "jobs")?;
        let old_status = job.get("status").cloned().unwrap_or(json!({}));
        let mut succeeded = int_at(&old_status, "/succeeded").unwrap_or(0);
        let mut failed = int_at(&old_status, "/failed").unwrap_or(0);
        // Count finished pods once.
        let mut newly_counted = Vec::new();
        {
            let counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
            let seen = counted.get(&uid);
            for p in &pods {
                let puid = str_at(p, "/metadata/uid").to_string();
                if seen.is_some_and(|s| s.contains(&puid)) {
                    continue;
                }
                // Without a kubelet nobody stops a deleted pod's containers: it counts as
                // failed at once.
                let phase = match str_at(p, "/status/phase") {
                    "Succeeded" | "Failed" => str_at(p, "/status/phase"),
                    _ if deleting(p) && !self.kubelet => "Failed",
                    other => other,
                };
                match phase {
                    "Succeeded" => {
                        succeeded += 1;
                        newly_counted.push(puid);
                    }
                    "Failed" => {
                        failed += 1;
                        newly_counted.push(puid);
                        self.last_failure
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(uid.clone(), Instant::now());
                    }
                    _ => {}
                }
            }
        }
        let mut active: Vec<Arc<Value>> = pods.iter().filter(|p| pod_active(p)).cloned().collect();
        let terminating = pods
            .iter()
            .filter(|p| {
                deleting(p) && !matches!(str_at(p, "/status/phase"), "Succeeded" | "Failed")
            })
            .count();
        let mut ignored = Vec::new();
        let mut start_time = old_status.get("startTime").cloned();
        let mut completion_time = old_status.get("completionTime").cloned();
        let suspended = job.pointer("/spec/suspend") == Some(&json!(true));
        let mut requeue: Option<Duration> = None;
        let delete_active = |active: &mut Vec<Arc<Value>>,
                             ignore: bool,
                             ignored: &mut Vec<String>|
         -> Result<(), ApiError> {
            for p in active.drain(..) {
                let name = str_at(&p, "/metadata/name").to_string();
                self.ctx.delete(&pods_rt, &key.0, &name, "Background")?;
                if ignore {
                    ignored.push(str_at(&p, "/metadata/uid").to_string());
                }
                self.ctx.recorder.normal(
                    SOURCE,
                    &job,
                    "SuccessfulDelete",
                    &format!("Deleted pod: {name}"),
                );
            }
            Ok(())
        };
        let completions = int_at(&job, "/spec/completions");
        let parallelism = int_at(&job, "/spec/parallelism").unwrap_or(1).max(0);
        let backoff_limit = int_at(&job, "/spec/backoffLimit").unwrap_or(6);
        let failing_target = has(&conds, "FailureTarget");
        let success_target = has(&conds, "SuccessCriteriaMet");
        if suspended && !failing_target && !success_target {
            // Pods of a suspended Job are removed and not counted as failures.
            delete_active(&mut active, true, &mut ignored)?;
            if set_job_condition(
                &mut conds,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
            ) {
                self.ctx
                    .recorder
                    .normal(SOURCE, &job, "Suspended", "Job suspended");
            }
        } else {
            if condition(&json!(conds), "Suspended").is_some()
                && set_job_condition(
                    &mut conds,
                    "Suspended",
                    "False",
                    "JobResumed",
                    "Job resumed",
                )
            {
                self.ctx
                    .recorder
                    .normal(SOURCE, &job, "Resumed", "Job resumed");
                // A resumed Job's active deadline starts again.
                start_time = Some(json!(now()));
            }
            if start_time.is_none() {
                start_time = Some(json!(now()));
            }
            let restarts: i64 = active
                .iter()
                .filter_map(|p| {
                    p.pointer("/status/containerStatuses")
                        .and_then(Value::as_array)
                })
                .flatten()
                .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                .sum();
            let on_failure = str_at(&job, "/spec/template/spec/restartPolicy") == "OnFailure";
            let deadline = int_at(&job, "/spec/activeDeadlineSeconds");
            let elapsed = start_time
                .as_ref()
                .and_then(Value::as_str)
                .map(seconds_since)
                .unwrap_or(0.0);
            let complete_now = match completions {
                Some(c) => succeeded >= c,
                None => succeeded > 0 && active.is_empty(),
            };
            if !failing_target && !success_target {
                if complete_now {
                    set_job_condition(
                        &mut conds,
                        "SuccessCriteriaMet",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                    );
                } else if failed > backoff_limit || (on_failure && restarts > backoff_limit) {
                    set_job_condition(
                        &mut conds,
                        "FailureTarget",
                        "True",
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    );
                    self.ctx.recorder.warning(
                        SOURCE,
                        &job,
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    );
                } else if let Some(ads) = deadline
                    && elapsed >= ads as f64
                {
                    set_job_condition(
                        &mut conds,
                        "FailureTarget",
                        "True",
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    );
                    self.ctx.recorder.warning(
                        SOURCE,
                        &job,
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    );
                } else if let Some(ads) = deadline {
                    requeue = Some(Duration::from_secs_f64(
                        (ads as f64 - elapsed).max(0.0) + 0.05,
                    ));
                }
            }
            let failing_target = has(&conds, "FailureTarget");
            let success_target = has(&conds, "SuccessCriteriaMet");
            if failing_target || success_target {
                // Remaining pods are terminated; a failing Job's count their failure.
                delete_active(&mut active, success_target, &mut ignored)?;
                let remaining = pods
                    .iter()
                    .filter(|p| {
                        let puid = str_at(p, "/metadata/uid");
                        !matches!(str_at(p, "/status/phase"), "Succeeded" | "Failed")
                            && !ignored.iter().any(|i| i == puid)
                            && !active.iter().any(|a| str_at(a, "/metadata/uid") == puid)
                    })
                    .count();
                let done = remaining == 0 || success_target;
                if done {
                    if success_target {
                        if set_job_condition(
                            &mut conds,
                            "Complete",
                            "True",
                            "CompletionsReached",
                            "Reached expected number of succeeded pods",
                        ) {
                            completion_time = Some(json!(now()));
                            self.ctx
                                .recorder
                                .normal(SOURCE, &job, "Completed", "Job completed");
                        }
                    } else if let Some(t) = condition(&json!(conds), "FailureTarget").cloned() {
                        set_job_condition(
                            &mut conds,
                            "Failed",
                            "True",
                            str_at(&t, "/reason"),
                            str_at(&t, "/message"),
                        );
                    }
                }
            } else {
                // Create pods up to parallelism (and the completions still missing), after the
                // backoff that follows a failure.
                let want = match completions {
                    Some(c) => parallelism.min(c - succeeded).max(0),
                    None if succeeded > 0 => active.len() as i64,
                    None => parallelism,
                } as usize;
                if active.len() < want {
                    let wait = self
                        .last_failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&uid)
                        .map(|at| backoff(knobs.job_backoff, failed).saturating_sub(at.elapsed()))
                        .unwrap_or_default();
                    if wait.is_zero() {
                        let mut template =
                            job.pointer("/spec/template").cloned().unwrap_or(json!({}));
                        if !template["metadata"].is_object() {
                            template["metadata"] = json!({});
                        }
                        template["metadata"]["finalizers"] = json!([TRACKING]);
                        for _ in active.len()..want {
                            let pod = pod_from_template(&job, &template, &key.1);
                            let created = self.ctx.create(&pods_rt, &key.0, pod, KCM)?;
                            let name = str_at(&created, "/metadata/name").to_string();
                            self.ctx.recorder.normal(
                                SOURCE,
                                &job,
                                "SuccessfulCreate",
                                &format!("Created pod: {name}"),
                            );
                            active.push(Arc::new(created));
                        }
                    } else {
                        requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
                    }
                }
            }
        }
        let ready = active.iter().filter(|p| pod_ready(p)).count();
        let mut status = json!({
            "active": active.len(),
            "ready": ready,
            "terminating": terminating,
            "succeeded": succeeded,
            "failed": failed,
            "uncountedTerminatedPods": {},
        });
        omit_zero(&mut status, &["active", "succeeded", "failed"]);
        if !conds.is_empty() {
            status["conditions"] = Value::Array(conds);
        }
        if let Some(t) = start_time {
            status["startTime"] = t;
        }
        if let Some(t) = completion_time {
            status["completionTime"] = t;
        }
        // Pods removed on purpose are never counted, even if the status write below fails
        // and this runs again after they ended.
        self.counted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(uid.clone())
            .or_default()
            .extend(ignored);
        if job.get("status") != Some(&status) {
            let mut j = job.clone();
            j["status"] = status;
            self.ctx.update(&jobs_rt, Sub::Status, j, KCM)?;
        }
        // Counted only once the counts are stored.
        self.counted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(uid.clone())
            .or_default()
            .extend(newly_counted);
        // Counted pods no longer need their finalizer.
        let done_pods: Vec<Arc<Value>> = {
            let counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
            pods.iter()
                .filter(|p| {
                    counted
                        .get(&uid)
                        .is_some_and(|s| s.contains(str_at(p, "/metadata/uid")))
                })
                .cloned()
                .collect()
        };
        self.release(&done_pods)?;
        Ok(requeue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_secs(10);
        assert_eq!(backoff(b, 0), Duration::ZERO);
        assert_eq!(backoff(b, 1), Duration::from_secs(10));
        assert_eq!(backoff(b, 3), Duration::from_secs(40));
        assert_eq!(backoff(b, 12), Duration::from_secs(360));
    }
}
