//! How the Jobs of a test end. On the emulator's simulated cluster its Job
//! controller and kubelet run them, ending as outcome rules say. On an API
//! server without controllers (a real kube-apiserver as envtest runs it, or
//! the emulator with `PORTFOLIO_E2E_WORKLOADS=off`) nothing would run them,
//! so the test plays the Job controller and the kubelet itself, as envtest
//! tests do: it writes each Job's status, and creates its pod with the
//! termination message, in the order and shape Kubernetes 1.31+ writes them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// How the pods of matching Jobs end.
#[derive(Clone, Debug)]
pub struct JobRule {
    /// Job names it applies to (`*` matches anything).
    pub pattern: String,
    /// Exit code 0, or 1.
    pub succeed: bool,
    /// The container's termination message.
    pub message: String,
    /// How long the pod runs.
    pub duration: Duration,
}

/// The Jobs of one namespace, run by the test (see the module's doc).
pub struct JobDriver {
    rules: Arc<Mutex<Vec<JobRule>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JobDriver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `name` matches `pattern`, in which `*` matches any run of characters.
pub fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl JobDriver {
    /// Start running the Jobs of `namespace`.
    pub fn start(client: kube::Client, namespace: &str) -> Self {
        let rules: Arc<Mutex<Vec<JobRule>>> = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(drive(client, namespace.to_owned(), Arc::clone(&rules)));
        JobDriver { rules, task }
    }

    /// Add a rule; the latest one that matches a Job wins (without one, pods succeed).
    pub fn add(&self, rule: JobRule) {
        self.rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(rule);
    }
}

async fn drive(client: kube::Client, namespace: String, rules: Arc<Mutex<Vec<JobRule>>>) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let mut started = std::collections::HashSet::new();
    loop {
        if let Ok(list) = jobs.list(&ListParams::default()).await {
            for job in list.items {
                let uid = job.uid().unwrap_or_default();
                if job
                    .status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .is_some()
                    || !started.insert(uid)
                {
                    continue;
                }
                let rule = rules
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .rev()
                    .find(|r| matches(&r.pattern, &job.name_any()))
                    .cloned();
                tokio::spawn(run(client.clone(), namespace.clone(), job, rule));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Run one Job as its controller and kubelet would; a step that fails
/// (the Job was deleted meanwhile) ends the run.
async fn run(client: kube::Client, namespace: String, job: Job, rule: Option<JobRule>) {
    let rule = rule.unwrap_or(JobRule {
        pattern: String::new(),
        succeed: true,
        message: String::new(),
        duration: Duration::from_millis(200),
    });
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let name = job.name_any();
    let uid = job.uid().unwrap_or_default();
    let started = now();
    let status = |extra: Value| {
        let mut status = json!({"startTime": started, "uncountedTerminatedPods": {}});
        if let (Some(status), Some(extra)) = (status.as_object_mut(), extra.as_object()) {
            status.extend(extra.clone());
        }
        json!({"status": status})
    };
    let params = PatchParams::default();
    if jobs
        .patch_status(
            &name,
            &params,
            &Patch::Merge(status(json!({"active": 1, "ready": 0}))),
        )
        .await
        .is_err()
    {
        return;
    }
    let template = job
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_value(&s.template).ok())
        .unwrap_or_default();
    let container = template
        .pointer("/spec/containers/0")
        .cloned()
        .unwrap_or_default();
    let container_name = container["name"].as_str().unwrap_or("main").to_owned();
    let pod: Pod = match serde_json::from_value(json!({
        "metadata": {
            "name": format!("{name}-run"),
            "labels": {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            },
            "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": container_name, "image": container["image"]}],
        },
    })) {
        Ok(pod) => pod,
        Err(_) => return,
    };
    if pods.create(&PostParams::default(), &pod).await.is_err() {
        return;
    }
    tokio::time::sleep(rule.duration).await;
    let finished = now();
    let exit_code = if rule.succeed { 0 } else { 1 };
    let terminated = json!({
        "exitCode": exit_code,
        "reason": if rule.succeed { "Completed" } else { "Error" },
        "message": rule.message,
        "startedAt": started,
        "finishedAt": finished,
    });
    let pod_status = json!({"status": {
        "phase": if rule.succeed { "Succeeded" } else { "Failed" },
        "containerStatuses": [{
            "name": container_name, "image": container["image"], "imageID": "",
            "ready": false, "restartCount": 0, "started": false,
            "state": {"terminated": terminated},
        }],
    }});
    if pods
        .patch_status(&format!("{name}-run"), &params, &Patch::Merge(pod_status))
        .await
        .is_err()
    {
        return;
    }
    let condition = |type_: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": "True", "reason": reason, "message": message,
               "lastProbeTime": finished, "lastTransitionTime": finished})
    };
    let end = if rule.succeed {
        let message = "Reached expected number of succeeded pods";
        status(json!({
            "active": 0, "ready": 0, "terminating": 0, "succeeded": 1,
            "completionTime": finished,
            "conditions": [
                condition("SuccessCriteriaMet", "CompletionsReached", message),
                condition("Complete", "CompletionsReached", message),
            ],
        }))
    } else {
        let message = "Job has reached the specified backoff limit";
        status(json!({
            "active": 0, "ready": 0, "terminating": 0, "failed": 1,
            "conditions": [
                condition("FailureTarget", "BackoffLimitExceeded", message),
                condition("Failed", "BackoffLimitExceeded", message),
            ],
        }))
    };
    let _ = jobs.patch_status(&name, &params, &Patch::Merge(end)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_runs_of_characters() {
        assert!(matches("shop-migrate-*", "shop-migrate-0a1b"));
        assert!(matches("shop-migrate-*-2", "shop-migrate-0a1b-2"));
        assert!(!matches("shop-migrate-*-2", "shop-migrate-0a1b"));
        assert!(matches("*", "anything"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXc"));
    }
}
