//! The simulated cluster: one test per simulated controller behaviour, driven only through
//! HTTP with kube-rs. Workloads use real images and commands, so that the same tests pass
//! against a real cluster (`EMULATOR_CONFORMANCE_KUBECONFIG`). Where the emulator needs to be
//! told an outcome a real container would produce by itself (a failing command), the test
//! tells it through the control API, in a rule scoped to its namespace (an emulator behind
//! the kubeconfig may serve other tests at once). Tests whose pods must run are skipped
//! where none run (a real cluster not declared with `EMULATOR_CONFORMANCE_WORKLOADS=1`), and
//! tests that change the emulator's own settings need an emulator of their own.

use std::collections::BTreeSet;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use crate::common::{Cluster, emulator_only, eventually, needs_control_api, needs_workloads};

/// An image that runs forever everywhere.
const PAUSE: &str = "registry.k8s.io/pause:3.10";

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]}}
        }
    }))
    .expect("deployment")
}

fn job(name: &str, script: &str, extra: Value) -> Job {
    let mut spec = json!({
        "backoffLimit": 1,
        "template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox:1.36",
                "command": ["sh", "-c", script]}]}}
    });
    if let (Value::Object(s), Value::Object(e)) = (&mut spec, extra) {
        s.extend(e);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("job")
}

fn cond<'a>(conds: &'a Option<Vec<Value>>, t: &str) -> Option<&'a Value> {
    conds.as_ref()?.iter().find(|c| c["type"] == t)
}

fn conditions<T: serde::Serialize>(o: &T) -> Option<Vec<Value>> {
    serde_json::to_value(o)
        .ok()?
        .pointer("/status/conditions")?
        .as_array()
        .cloned()
}

async fn available(api: &Api<Deployment>, name: &str, replicas: i32) -> Deployment {
    eventually(&format!("deployment {name} to be available"), || {
        let api = api.clone();
        let name = name.to_string();
        async move {
            let d = api.get(&name).await.ok()?;
            let s = d.status.clone()?;
            let conds = conditions(&d);
            let progressed = cond(&conds, "Progressing")
                .is_some_and(|c| c["reason"] == "NewReplicaSetAvailable");
            (s.observed_generation == d.metadata.generation
                && s.updated_replicas.unwrap_or(0) == replicas
                && s.available_replicas.unwrap_or(0) == replicas
                && s.replicas.unwrap_or(0) == replicas
                && progressed)
                .then_some(d)
        }
    })
    .await
}

async fn finished(api: &Api<Job>, name: &str) -> Job {
    eventually(&format!("job {name} to finish"), || {
        let api = api.clone();
        let name = name.to_string();
        async move {
            let j = api.get(&name).await.ok()?;
            let conds = conditions(&j);
            let done = ["Complete", "Failed"]
                .iter()
                .any(|t| cond(&conds, t).is_some_and(|c| c["status"] == "True"));
            done.then_some(j)
        }
    })
    .await
}

/// Waits until `n` pods with `labels` exist in the test's namespace (running or not).
async fn pods_exist(c: &Cluster, labels: &str, n: usize) {
    let pods = c.api::<Pod>();
    eventually(&format!("{n} pods {labels}"), || {
        let pods = pods.clone();
        async move {
            let l = pods
                .list(&ListParams::default().labels(labels))
                .await
                .ok()?;
            (l.items.len() == n).then_some(())
        }
    })
    .await;
}

/// The pods of Job `job`, by the label the Job controller gives them.
async fn job_pods(c: &Cluster, job: &str) -> kube::Result<Vec<Pod>> {
    let labels = format!("batch.kubernetes.io/job-name={job}");
    Ok(c.api::<Pod>()
        .list(&ListParams::default().labels(&labels))
        .await?
        .items)
}

/// Waits until Job `job` and its pods are gone.
async fn job_and_pods_gone(c: &Cluster, job: &str, what: &str) {
    let jobs: Api<Job> = c.api();
    eventually(what, || {
        let jobs = jobs.clone();
        async move {
            let pods = job_pods(c, job).await.ok()?;
            (pods.is_empty() && jobs.get_opt(job).await.ok()?.is_none()).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn deployment_becomes_available_with_kubernetes_status() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let api: Api<Deployment> = c.api();
    api.create(&PostParams::default(), &deployment("web", 2, PAUSE))
        .await
        .unwrap();
    let d = available(&api, "web", 2).await;
    let s = d.status.clone().unwrap();
    assert_eq!(s.ready_replicas, Some(2));
    assert_eq!(s.unavailable_replicas, None, "zero counts are omitted");
    let conds = conditions(&d);
    let av = cond(&conds, "Available").unwrap();
    assert_eq!(
        (&av["status"], &av["reason"], &av["message"]),
        (
            &json!("True"),
            &json!("MinimumReplicasAvailable"),
            &json!("Deployment has minimum availability.")
        )
    );
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );
    // One ReplicaSet named after the pod-template-hash, owned by the Deployment.
    let rss: Api<ReplicaSet> = c.api();
    let rs = rss
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(rs.len(), 1);
    let rs = &rs[0];
    let hash = rs.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Deployment", Some(true))
    );
    assert_eq!(
        rs.spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()["pod-template-hash"],
        hash
    );
    let progressing = cond(&conds, "Progressing").unwrap();
    assert_eq!(
        progressing["message"],
        format!("ReplicaSet \"web-{hash}\" has successfully progressed.")
    );
    // Its pods run on a node and are ready.
    let pods = c
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("pod-template-hash={hash}")))
        .await
        .unwrap()
        .items;
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let st = p.status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert!(p.spec.as_ref().unwrap().node_name.is_some());
        assert!(st.pod_ip.is_some());
        let cs = &st.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready && cs.state.as_ref().unwrap().running.is_some());
    }
    // The controller writes status as kube-controller-manager through /status.
    let mf = d.metadata.managed_fields.unwrap();
    assert!(
        mf.iter()
            .any(|m| m.manager.as_deref() == Some("kube-controller-manager")
                && m.subresource.as_deref() == Some("status")),
        "{mf:?}"
    );
}

#[tokio::test]
async fn new_pod_template_rolls_out_a_new_replicaset() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let api: Api<Deployment> = c.api();
    api.create(&PostParams::default(), &deployment("web", 2, PAUSE))
        .await
        .unwrap();
    available(&api, "web", 2).await;
    // Watch the rollout's Progressing reasons as they happen.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen_w = seen.clone();
    let stream = watcher(
        api.clone(),
        watcher::Config::default().fields("metadata.name=web"),
    )
    .applied_objects();
    let task = tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(Ok(d)) = stream.next().await {
            if let Some(c) = cond(&conditions(&d), "Progressing") {
                let r = c["reason"].as_str().unwrap_or_default().to_string();
                let mut s = seen_w.lock().unwrap();
                if s.last() != Some(&r) {
                    s.push(r);
                }
            }
        }
    });
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}})),
    )
    .await
    .unwrap();
    let d = eventually("the second revision to roll out", || {
        let api = api.clone();
        async move {
            let d = api.get("web").await.ok()?;
            let rev = d
                .metadata
                .annotations
                .as_ref()?
                .get("deployment.kubernetes.io/revision")?
                .clone();
            let done = cond(&conditions(&d), "Progressing")
                .is_some_and(|c| c["reason"] == "NewReplicaSetAvailable");
            let s = d.status.clone()?;
            (rev == "2"
                && done
                && s.updated_replicas == Some(2)
                && s.replicas == Some(2)
                && s.available_replicas == Some(2))
            .then_some(d)
        }
    })
    .await;
    task.abort();
    let reasons = seen.lock().unwrap().clone();
    assert!(
        reasons.iter().any(|r| r == "ReplicaSetUpdated"),
        "the rollout showed progress: {reasons:?}"
    );
    let rss: Api<ReplicaSet> = c.api();
    let all = rss
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 2, "the old ReplicaSet is kept for history");
    let revs: BTreeSet<(String, i32)> = all
        .iter()
        .map(|r| {
            (
                r.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"]
                    .clone(),
                r.spec.as_ref().unwrap().replicas.unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(revs, BTreeSet::from([("1".into(), 0), ("2".into(), 2)]));
    assert_eq!(d.status.unwrap().observed_generation, Some(2));
}

#[tokio::test]
async fn scale_subresource_scales_pods() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let api: Api<Deployment> = c.api();
    api.create(&PostParams::default(), &deployment("web", 1, PAUSE))
        .await
        .unwrap();
    available(&api, "web", 1).await;
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    available(&api, "web", 3).await;
    let running = |n: usize| {
        let pods = c.api::<Pod>();
        async move {
            let l = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            let active = l
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .count();
            (active == n).then_some(())
        }
    };
    eventually("three pods", || running(3)).await;
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await
    .unwrap();
    eventually("no pods", || running(0)).await;
    let d = eventually("status to show zero replicas", || {
        let api = api.clone();
        async move {
            let d = api.get("web").await.ok()?;
            let s = d.status.clone()?;
            (s.replicas.is_none() && s.observed_generation == d.metadata.generation).then_some(d)
        }
    })
    .await;
    assert_eq!(d.status.unwrap().available_replicas, None);
}

#[tokio::test]
async fn never_ready_image_exceeds_the_progress_deadline() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let api: Api<Deployment> = c.api();
    // `.invalid` is reserved: the image never pulls, in the emulator as in a real cluster.
    let mut d = deployment("stuck", 1, "registry.invalid/app:1");
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(1);
    api.create(&PostParams::default(), &d).await.unwrap();
    let d = eventually("the progress deadline to pass", || {
        let api = api.clone();
        async move {
            let d = api.get("stuck").await.ok()?;
            cond(&conditions(&d), "Progressing")
                .is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded")
                .then_some(d)
        }
    })
    .await;
    let conds = conditions(&d);
    let p = cond(&conds, "Progressing").unwrap();
    assert_eq!(p["status"], "False");
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .ends_with("has timed out progressing."),
        "{p}"
    );
    let a = cond(&conds, "Available").unwrap();
    assert_eq!(
        (&a["status"], &a["reason"]),
        (&json!("False"), &json!("MinimumReplicasUnavailable"))
    );
    let pod = eventually("the pod to back off pulling", || {
        let pods = c.api::<Pod>();
        async move {
            let l = pods
                .list(&ListParams::default().labels("app=stuck"))
                .await
                .ok()?;
            l.items.into_iter().find(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|cs| cs[0].state.as_ref()?.waiting.as_ref()?.reason.clone())
                    .is_some_and(|r| r == "ImagePullBackOff" || r == "ErrImagePull")
            })
        }
    })
    .await;
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Pending"));
}

#[tokio::test]
async fn never_ready_marker_chosen_by_the_test() {
    let c = Cluster::new().await;
    emulator_only!(c);
    let (code, v) = c
        .control(
            "PATCH",
            "cluster",
            json!({"neverReadyMarkers": ["-broken"]}),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["knobs"]["neverReadyMarkers"], json!(["-broken"]));
    let api: Api<Deployment> = c.api();
    let mut d = deployment("web", 1, "nginx-broken:1");
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(1);
    api.create(&PostParams::default(), &d).await.unwrap();
    eventually("the deadline to pass", || {
        let api = api.clone();
        async move {
            let d = api.get("web").await.ok()?;
            cond(&conditions(&d), "Progressing")
                .is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded")
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn paused_deployment_reports_it() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let api: Api<Deployment> = c.api();
    api.create(&PostParams::default(), &deployment("web", 1, PAUSE))
        .await
        .unwrap();
    available(&api, "web", 1).await;
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": true}})),
    )
    .await
    .unwrap();
    eventually("the paused condition", || {
        let api = api.clone();
        async move {
            let d = api.get("web").await.ok()?;
            cond(&conditions(&d), "Progressing")
                .is_some_and(|c| c["reason"] == "DeploymentPaused" && c["status"] == "Unknown")
                .then_some(())
        }
    })
    .await;
    // A new template does not roll out while paused.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"x": "1"}}}}})),
    )
    .await
    .unwrap();
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": false}})),
    )
    .await
    .unwrap();
    let d = eventually("the rollout after resuming", || {
        let api = api.clone();
        async move {
            let d = api.get("web").await.ok()?;
            let rev = d
                .metadata
                .annotations
                .as_ref()?
                .get("deployment.kubernetes.io/revision")?
                .clone();
            (rev == "2").then_some(d)
        }
    })
    .await;
    assert_eq!(d.metadata.generation, Some(4));
    available(&api, "web", 1).await;
}

#[tokio::test]
async fn recreate_strategy_replaces_all_pods() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let api: Api<Deployment> = c.api();
    let mut d = deployment("web", 2, PAUSE);
    d.spec.as_mut().unwrap().strategy =
        serde_json::from_value(json!({"type": "Recreate"})).unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    available(&api, "web", 2).await;
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"x": "1"}}}}})),
    )
    .await
    .unwrap();
    eventually("revision 2", || {
        let api = api.clone();
        async move {
            let d = api.get("web").await.ok()?;
            (d.metadata
                .annotations
                .as_ref()?
                .get("deployment.kubernetes.io/revision")?
                == "2")
                .then_some(())
        }
    })
    .await;
    available(&api, "web", 2).await;
}

#[tokio::test]
async fn job_completes_with_a_succeeded_pod() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let api: Api<Job> = c.api();
    api.create(
        &PostParams::default(),
        &job("migrate", "echo done > /dev/termination-log", json!({})),
    )
    .await
    .unwrap();
    let j = finished(&api, "migrate").await;
    let s = j.status.clone().unwrap();
    assert_eq!((s.succeeded, s.failed, s.active), (Some(1), None, None));
    assert_eq!((s.ready, s.terminating), (Some(0), Some(0)));
    assert!(s.start_time.is_some() && s.completion_time.is_some());
    let conds = conditions(&j);
    for t in ["SuccessCriteriaMet", "Complete"] {
        let c = cond(&conds, t).unwrap_or_else(|| panic!("{t} in {conds:?}"));
        assert_eq!(
            (&c["status"], &c["reason"], &c["message"]),
            (
                &json!("True"),
                &json!("CompletionsReached"),
                &json!("Reached expected number of succeeded pods")
            )
        );
    }
    let pods = job_pods(&c, "migrate").await.unwrap();
    assert_eq!(pods.len(), 1);
    let p = &pods[0];
    assert_eq!(
        p.status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded")
    );
    let t = p
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    eventually("the tracking finalizer to go", || {
        let pods = c.api::<Pod>();
        let name = p.metadata.name.clone().unwrap();
        async move {
            let p = pods.get(&name).await.ok()?;
            p.metadata
                .finalizers
                .is_none_or(|f| !f.iter().any(|x| x == "batch.kubernetes.io/job-tracking"))
                .then_some(())
        }
    })
    .await;
}

/// Tells the emulator what a failing command does by itself in a real cluster.
async fn emulate_failure(c: &Cluster, name: &str, message: &str) {
    if c.control_api {
        let (code, v) = c
            .control(
                "POST",
                "outcomes",
                json!({"namespace": c.ns, "name": name, "outcome": "Failed", "message": message, "exitCode": 3}),
            )
            .await;
        assert_eq!(code, 201, "{v}");
    }
}

#[tokio::test]
async fn job_fails_after_its_backoff_limit_with_a_termination_message() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    emulate_failure(&c, "migrate-*", "relation users already exists").await;
    let api: Api<Job> = c.api();
    api.create(
        &PostParams::default(),
        &job(
            "migrate-v2",
            "echo relation users already exists > /dev/termination-log; exit 3",
            json!({}),
        ),
    )
    .await
    .unwrap();
    let j = finished(&api, "migrate-v2").await;
    let s = j.status.clone().unwrap();
    assert_eq!(
        (s.failed, s.succeeded),
        (Some(2), None),
        "backoffLimit 1: two attempts"
    );
    assert!(
        s.completion_time.is_none(),
        "only successful Jobs get a completionTime"
    );
    let conds = conditions(&j);
    for t in ["FailureTarget", "Failed"] {
        let c = cond(&conds, t).unwrap_or_else(|| panic!("{t} in {conds:?}"));
        assert_eq!(
            (&c["reason"], &c["message"]),
            (
                &json!("BackoffLimitExceeded"),
                &json!("Job has reached the specified backoff limit")
            )
        );
    }
    let pods = job_pods(&c, "migrate-v2").await.unwrap();
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let st = p.status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        let t = st.container_statuses.as_ref().unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .clone()
            .unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
        assert_eq!(
            t.message.as_deref().map(str::trim),
            Some("relation users already exists")
        );
    }
}

#[tokio::test]
async fn job_outcome_by_label_retries_then_succeeds() {
    let c = Cluster::new().await;
    needs_control_api!(c);
    needs_workloads!(c);
    let (code, v) = c
        .control(
            "POST",
            "outcomes",
            json!({"namespace": c.ns, "labels": "team=db", "failedAttempts": 1, "message": "flaky"}),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let api: Api<Job> = c.api();
    let mut j = job("flaky", "true", json!({"backoffLimit": 3}));
    j.metadata.labels = Some([("team".to_string(), "db".to_string())].into());
    api.create(&PostParams::default(), &j).await.unwrap();
    let j = finished(&api, "flaky").await;
    let s = j.status.unwrap();
    assert_eq!((s.failed, s.succeeded), (Some(1), Some(1)));
}

#[tokio::test]
async fn job_active_deadline_fails_it() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    if c.control_api {
        // A long run, as `sleep 60` is in a real cluster.
        let (code, _) = c
            .control(
                "POST",
                "outcomes",
                json!({"namespace": c.ns, "name": "slow", "durationMs": 60000}),
            )
            .await;
        assert_eq!(code, 201);
    }
    let api: Api<Job> = c.api();
    api.create(
        &PostParams::default(),
        &job("slow", "sleep 60", json!({"activeDeadlineSeconds": 1})),
    )
    .await
    .unwrap();
    let j = finished(&api, "slow").await;
    let conds = conditions(&j);
    let f = cond(&conds, "Failed").expect("failed");
    assert_eq!(
        (&f["reason"], &f["message"]),
        (
            &json!("DeadlineExceeded"),
            &json!("Job was active longer than specified deadline")
        )
    );
    assert_eq!(j.status.unwrap().failed, Some(1));
}

#[tokio::test]
async fn suspended_job_runs_when_resumed() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let api: Api<Job> = c.api();
    api.create(
        &PostParams::default(),
        &job("later", "true", json!({"suspend": true})),
    )
    .await
    .unwrap();
    let j = eventually("the suspended condition", || {
        let api = api.clone();
        async move {
            let j = api.get("later").await.ok()?;
            cond(&conditions(&j), "Suspended")
                .is_some_and(|c| c["status"] == "True" && c["reason"] == "JobSuspended")
                .then_some(j)
        }
    })
    .await;
    assert!(j.status.as_ref().unwrap().start_time.is_none());
    let pods = c
        .api::<Pod>()
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=later"))
        .await
        .unwrap();
    assert!(pods.items.is_empty());
    api.patch(
        "later",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .unwrap();
    let j = finished(&api, "later").await;
    let conds = conditions(&j);
    let s = cond(&conds, "Suspended").unwrap();
    assert_eq!(
        (&s["status"], &s["reason"]),
        (&json!("False"), &json!("JobResumed"))
    );
    assert!(cond(&conds, "Complete").is_some());
}

#[tokio::test]
async fn running_job_deleted_takes_its_pods() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    if c.control_api {
        let (code, _) = c
            .control(
                "POST",
                "outcomes",
                json!({"namespace": c.ns, "name": "long*", "durationMs": 60000}),
            )
            .await;
        assert_eq!(code, 201);
    }
    let api: Api<Job> = c.api();
    api.create(&PostParams::default(), &job("long", "sleep 60", json!({})))
        .await
        .unwrap();
    eventually("a running pod", || {
        let c = &c;
        async move {
            job_pods(c, "long")
                .await
                .ok()?
                .iter()
                .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .then_some(())
        }
    })
    .await;
    api.delete("long", &DeleteParams::background())
        .await
        .unwrap();
    job_and_pods_gone(&c, "long", "the job and its pods to go").await;
}

#[tokio::test]
async fn job_deleted_without_a_policy_orphans_its_pods_with_a_warning() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let api: Api<Job> = c.api();
    api.create(&PostParams::default(), &job("once", "true", json!({})))
        .await
        .unwrap();
    finished(&api, "once").await;
    let (code, headers, _) = c
        .raw_with_headers(
            "DELETE",
            &format!("/apis/batch/v1/namespaces/{}/jobs/once", c.ns),
            "application/json",
            vec![],
        )
        .await;
    assert_eq!(code, 200);
    let warning = headers
        .get("warning")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    assert!(
        warning.contains("child pods are preserved by default"),
        "{warning:?}"
    );
    let pod = eventually("the orphaned pod", || {
        let (c, api) = (&c, api.clone());
        async move {
            if api.get_opt("once").await.ok()?.is_some() {
                return None;
            }
            job_pods(c, "once").await.ok()?.into_iter().find(|p| {
                p.metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(Vec::is_empty)
            })
        }
    })
    .await;
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Succeeded"));
}

#[tokio::test]
async fn finished_job_is_deleted_after_its_ttl() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let api: Api<Job> = c.api();
    api.create(
        &PostParams::default(),
        &job("brief", "true", json!({"ttlSecondsAfterFinished": 0})),
    )
    .await
    .unwrap();
    job_and_pods_gone(&c, "brief", "the job and its pod to go").await;
}

fn hpa(name: &str, target: &str, min: i32, max: i32) -> HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": min, "maxReplicas": max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}]}
    }))
    .expect("hpa")
}

/// The operator's apply of a Deployment, with or without replicas.
fn applied(replicas: Option<i32>) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": PAUSE,
                "resources": {"requests": {"cpu": "10m"}}}]}}
    });
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec})
}

#[tokio::test]
async fn autoscaler_takes_ownership_of_replicas() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let api: Api<Deployment> = c.api();
    let pp = PatchParams::apply("test-operator");
    api.patch("web", &pp, &Patch::Apply(applied(Some(1))))
        .await
        .unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = c.api();
    hpas.create(&PostParams::default(), &hpa("web", "web", 2, 5))
        .await
        .unwrap();
    let d = eventually("the autoscaler to raise replicas to its minimum", || {
        let api = api.clone();
        async move {
            let d = api.get("web").await.ok()?;
            (d.spec.as_ref()?.replicas == Some(2)).then_some(d)
        }
    })
    .await;
    let mf = d.metadata.managed_fields.clone().unwrap();
    let owner = mf
        .iter()
        .find(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        })
        .expect("an owner of spec.replicas");
    assert_eq!(
        (
            owner.manager.as_deref(),
            owner.operation.as_deref(),
            owner.subresource.as_deref()
        ),
        (
            Some("kube-controller-manager"),
            Some("Update"),
            Some("scale")
        )
    );
    // The operator, no longer applying replicas, leaves them to the autoscaler.
    api.patch("web", &pp, &Patch::Apply(applied(None)))
        .await
        .unwrap();
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(2)
    );
    // Applying replicas again conflicts with the autoscaler.
    let e = api
        .patch("web", &pp, &Patch::Apply(applied(Some(1))))
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => assert_eq!(s.code, 409, "{s:?}"),
        other => panic!("{other:?}"),
    }
    let h = eventually("the autoscaler's status", || {
        let hpas = hpas.clone();
        async move {
            let h = hpas.get("web").await.ok()?;
            let s = h.status.clone()?;
            (s.desired_replicas == 2 && s.current_replicas == Some(2)).then_some(h)
        }
    })
    .await;
    let conds = conditions(&h);
    assert_eq!(cond(&conds, "AbleToScale").unwrap()["status"], "True");
    available(&api, "web", 2).await;
}

#[tokio::test]
async fn autoscaler_follows_simulated_utilization_within_bounds() {
    let c = Cluster::new().await;
    needs_control_api!(c);
    needs_workloads!(c);
    let api: Api<Deployment> = c.api();
    api.patch(
        "web",
        &PatchParams::apply("test-operator"),
        &Patch::Apply(applied(None)),
    )
    .await
    .unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = c.api();
    hpas.create(&PostParams::default(), &hpa("web", "web", 1, 3))
        .await
        .unwrap();
    let (code, _) = c
        .control(
            "POST",
            "metrics",
            json!({"namespace": c.ns, "name": "web", "utilization": 100}),
        )
        .await;
    assert_eq!(code, 201);
    let replicas = |n: i32| {
        let api = api.clone();
        async move { (api.get("web").await.ok()?.spec?.replicas == Some(n)).then_some(()) }
    };
    eventually("capped at maxReplicas", || replicas(3)).await;
    // On the way: twice the replicas at twice the target, then the cap.
    let events: Api<k8s_openapi::api::core::v1::Event> = c.api();
    let sizes: Vec<String> = events
        .list(&ListParams::default().fields("reason=SuccessfulRescale"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.message)
        .collect();
    assert!(
        sizes.iter().any(|m| m.starts_with(
            "New size: 2; reason: cpu resource utilization (percentage of request) above target"
        )),
        "{sizes:?}"
    );
    assert!(
        sizes.iter().any(|m| m.starts_with("New size: 3;")),
        "{sizes:?}"
    );
    let h = eventually("the limited condition", || {
        let hpas = hpas.clone();
        async move {
            let h = hpas.get("web").await.ok()?;
            cond(&conditions(&h), "ScalingLimited")
                .is_some_and(|c| c["status"] == "True" && c["reason"] == "TooManyReplicas")
                .then_some(h)
        }
    })
    .await;
    let conds = conditions(&h);
    assert_eq!(
        cond(&conds, "ScalingActive").unwrap()["reason"],
        "ValidMetricFound"
    );
    let s = h.status.unwrap();
    assert_eq!(s.desired_replicas, 3);
    let m = serde_json::to_value(&s.current_metrics.unwrap()[0]).unwrap();
    assert_eq!(m["resource"]["current"]["averageUtilization"], 100);
}

#[tokio::test]
async fn namespaces_get_a_default_service_account_and_the_root_ca() {
    let c = Cluster::new().await;
    let sas: Api<ServiceAccount> = c.api();
    let cms: Api<ConfigMap> = c.api();
    let ca = cms.get("kube-root-ca.crt").await.unwrap();
    assert!(ca.data.unwrap()["ca.crt"].starts_with("-----BEGIN CERTIFICATE-----"));
    sas.delete("default", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the default service account to come back", || {
        let sas = sas.clone();
        async move { sas.get_opt("default").await.ok().flatten() }
    })
    .await;
}

#[tokio::test]
async fn bare_pods_run_and_complete_on_the_node() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let nodes: Api<Node> = Api::all(c.client.clone());
    let node = nodes.list(&ListParams::default()).await.unwrap().items;
    assert!(!node.is_empty());
    let pods = c.api::<Pod>();
    let pod = |name: &str, restart: &str, cmd: &str| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"restartPolicy": restart,
            "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", cmd]}]}}))
        .unwrap()
    };
    pods.create(
        &PostParams::default(),
        &pod("server", "Always", "sleep 3600"),
    )
    .await
    .unwrap();
    pods.create(&PostParams::default(), &pod("task", "Never", "true"))
        .await
        .unwrap();
    let phase = |name: &'static str, want: &'static str| {
        let pods = pods.clone();
        async move {
            let p = pods.get(name).await.ok()?;
            (p.status.as_ref()?.phase.as_deref() == Some(want)).then_some(p)
        }
    };
    let server = eventually("the server pod to run", || phase("server", "Running")).await;
    let conds = conditions(&server);
    for t in ["Initialized", "Ready", "ContainersReady", "PodScheduled"] {
        assert_eq!(cond(&conds, t).unwrap()["status"], "True", "{t}");
    }
    let task = eventually("the task pod to succeed", || phase("task", "Succeeded")).await;
    let nodes: Vec<String> = node
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    for p in [&server, &task] {
        let on = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        assert!(nodes.contains(&on), "{on} is a node: {nodes:?}");
    }
}

#[tokio::test]
async fn garbage_collector_removes_dependents_of_a_deleted_deployment() {
    let c = Cluster::new().await;
    let api: Api<Deployment> = c.api();
    api.create(&PostParams::default(), &deployment("web", 2, PAUSE))
        .await
        .unwrap();
    // The controllers make the dependents whether or not the pods ever run.
    pods_exist(&c, "app=web", 2).await;
    api.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("replica sets and pods to go", || {
        let rss: Api<ReplicaSet> = c.api();
        let pods = c.api::<Pod>();
        async move {
            let r = rss
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            let p = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            (r.items.is_empty() && p.items.is_empty()).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn dangling_owner_references_are_collected() {
    let c = Cluster::new().await;
    let cms: Api<ConfigMap> = c.api();
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let uid = owner.metadata.uid.unwrap();
    let child = |name: &str, refs: Value| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": refs}}))
            .unwrap()
    };
    let gone = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "00000000-0000-4000-8000-000000000000"});
    let real = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid});
    cms.create(&PostParams::default(), &child("orphan", json!([gone])))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &child("half", json!([gone, real])))
        .await
        .unwrap();
    eventually("the child of a missing owner to be collected", || {
        let cms = cms.clone();
        async move { cms.get_opt("orphan").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let half = eventually("the reference to the missing owner to be removed", || {
        let cms = cms.clone();
        async move {
            let h = cms.get("half").await.ok()?;
            (h.metadata.owner_references.as_ref()?.len() == 1).then_some(h)
        }
    })
    .await;
    assert_eq!(half.metadata.owner_references.unwrap()[0].name, "owner");
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let c = Cluster::new().await;
    let cms: Api<ConfigMap> = c.api();
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let child: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "child",
        "finalizers": ["example.com/hold"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner.metadata.uid.unwrap(), "blockOwnerDeletion": true}]}}))
    .unwrap();
    cms.create(&PostParams::default(), &child).await.unwrap();
    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    let held = eventually("the child to be deleting", || {
        let cms = cms.clone();
        async move {
            let ch = cms.get("child").await.ok()?;
            ch.metadata.deletion_timestamp.is_some().then_some(())
        }
    });
    held.await;
    let o = cms
        .get("owner")
        .await
        .expect("the owner waits for its blocking dependent");
    assert!(
        o.metadata
            .finalizers
            .unwrap()
            .contains(&"foregroundDeletion".to_string())
    );
    cms.patch(
        "child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("owner and child to go", || {
        let cms = cms.clone();
        async move {
            (cms.get_opt("owner").await.ok()?.is_none()
                && cms.get_opt("child").await.ok()?.is_none())
            .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn controllers_can_be_switched_off() {
    let c = Cluster::with(
        emulator::Emulator::builder().controller(emulator::Controller::Deployment, false),
    )
    .await;
    emulator_only!(c);
    let api: Api<Deployment> = c.api();
    api.create(&PostParams::default(), &deployment("web", 1, PAUSE))
        .await
        .unwrap();
    // A Job completing proves the other controllers ran meanwhile.
    let jobs: Api<Job> = c.api();
    jobs.create(&PostParams::default(), &job("probe", "true", json!({})))
        .await
        .unwrap();
    finished(&jobs, "probe").await;
    let rss: Api<ReplicaSet> = c.api();
    assert!(
        rss.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(api.get("web").await.unwrap().status.is_none());
    let (_, v) = c.control("GET", "cluster", Value::Null).await;
    let names: Vec<&str> = v["controllers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !names.contains(&"deployment") && names.contains(&"job"),
        "{names:?}"
    );
}

#[tokio::test]
async fn namespace_deletion_empties_workloads() {
    let c = Cluster::new().await;
    let nss: Api<Namespace> = Api::all(c.client.clone());
    let name = format!("{}-w", c.ns);
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
    c.delete_at_end("namespace", &name);
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), &name);
    api.create(&PostParams::default(), &deployment("web", 1, PAUSE))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &name);
    eventually("the deployment's pod", || {
        let pods = pods.clone();
        async move {
            let l = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            (!l.items.is_empty()).then_some(())
        }
    })
    .await;
    nss.delete(&name, &DeleteParams::default()).await.unwrap();
    eventually("the namespace to go", || {
        let nss = nss.clone();
        let name = name.clone();
        async move { nss.get_opt(&name).await.ok()?.is_none().then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn kubectl_waits_for_rollouts_and_jobs() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: main, image: \"{PAUSE}\"}}]}}\n---\napiVersion: batch/v1\nkind: Job\nmetadata: {{name: task}}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: main, image: \"busybox:1.36\", command: [\"true\"]}}]\n"
    );
    let (ok, out, err) = c.kubectl_stdin(&["-n", &c.ns, "apply", "-f", "-"], Some(&manifest));
    assert!(ok, "{out}{err}");
    let (ok, out, err) = c.kubectl(&[
        "-n",
        &c.ns,
        "rollout",
        "status",
        "deploy/web",
        "--timeout=60s",
    ]);
    assert!(ok && out.contains("successfully rolled out"), "{out}{err}");
    let (ok, out, err) = c.kubectl(&[
        "-n",
        &c.ns,
        "wait",
        "--for=condition=Complete",
        "job/task",
        "--timeout=60s",
    ]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = c.kubectl(&["-n", &c.ns, "get", "pods", "--no-headers"]);
    assert!(ok, "{err}");
    assert_eq!(out.matches("Running").count(), 2, "{out}");
    assert_eq!(out.matches("Completed").count(), 1, "{out}");
}

#[tokio::test]
async fn kubectl_typed_commands_create_workloads() {
    // kubectl's typed subcommands send protobuf bodies.
    let c = Cluster::new().await;
    needs_workloads!(c);
    let ns = c.ns.as_str();
    let run = |args: &[&str]| {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        let (ok, out, err) = c.kubectl(&all);
        assert!(ok, "kubectl {args:?}: {out}{err}");
        out
    };
    run(&[
        "create",
        "deployment",
        "web",
        "--image",
        PAUSE,
        "--replicas=2",
        "--port=80",
    ]);
    run(&[
        "expose",
        "deployment",
        "web",
        "--port=8080",
        "--target-port=80",
    ]);
    run(&[
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=4",
        "--cpu-percent=60",
    ]);
    run(&[
        "create",
        "job",
        "once",
        "--image=busybox:1.36",
        "--",
        "true",
    ]);
    run(&[
        "run",
        "solo",
        "--image=busybox:1.36",
        "--restart=Never",
        "--",
        "true",
    ]);
    run(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    run(&[
        "wait",
        "--for=condition=Complete",
        "job/once",
        "--timeout=60s",
    ]);
    run(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/solo",
        "--timeout=60s",
    ]);
    let svc = run(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.ports[0].targetPort}",
    ]);
    assert_eq!(svc, "80");
    let hpa = run(&["get", "hpa", "web", "--no-headers"]);
    assert!(hpa.contains("Deployment/web"), "{hpa}");
}

#[tokio::test]
async fn kubectl_logs_and_rollout_undo() {
    let c = Cluster::new().await;
    needs_workloads!(c);
    let ns = c.ns.as_str();
    let run = |args: &[&str]| {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        let (ok, out, err) = c.kubectl(&all);
        assert!(ok, "kubectl {args:?}: {out}{err}");
        out
    };
    // The emulator's log of a finished container is its termination message, which the test
    // chooses through the control API; the script writes the same to both places, so the
    // test holds on a real cluster too.
    if c.control_api {
        let (code, _) = c
            .control(
                "POST",
                "outcomes",
                json!({"namespace": c.ns, "name": "report", "message": "migrated 3 scripts"}),
            )
            .await;
        assert_eq!(code, 201);
    }
    run(&[
        "create",
        "job",
        "report",
        "--image=busybox:1.36",
        "--",
        "sh",
        "-c",
        "echo migrated 3 scripts; echo migrated 3 scripts > /dev/termination-log",
    ]);
    run(&[
        "wait",
        "--for=condition=Complete",
        "job/report",
        "--timeout=60s",
    ]);
    let logs = run(&["logs", "job/report"]);
    assert_eq!(logs.trim(), "migrated 3 scripts");
    run(&["create", "deployment", "web", "--image", PAUSE]);
    run(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    run(&[
        "set",
        "image",
        "deploy/web",
        "pause=registry.k8s.io/pause:3.9",
    ]);
    run(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    run(&["rollout", "undo", "deploy/web"]);
    run(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    // Undoing reuses the first ReplicaSet (its revision moves to 3): two ReplicaSets in all.
    let rss: Api<ReplicaSet> = c.api();
    let all = rss
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    let revs: BTreeSet<String> = all
        .iter()
        .map(|r| {
            r.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"].clone()
        })
        .collect();
    assert_eq!(revs, BTreeSet::from(["2".to_string(), "3".to_string()]));
    let image = run(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, PAUSE);
}

#[tokio::test]
async fn autoscaler_of_a_missing_target_cannot_scale() {
    let c = Cluster::new().await;
    let hpas: Api<HorizontalPodAutoscaler> = c.api();
    hpas.create(&PostParams::default(), &hpa("lost", "nowhere", 1, 3))
        .await
        .unwrap();
    let h = eventually("the FailedGetScale condition", || {
        let hpas = hpas.clone();
        async move {
            let h = hpas.get("lost").await.ok()?;
            cond(&conditions(&h), "AbleToScale")
                .is_some_and(|c| c["status"] == "False" && c["reason"] == "FailedGetScale")
                .then_some(h)
        }
    })
    .await;
    let conds = conditions(&h);
    let msg = cond(&conds, "AbleToScale").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with("the HPA controller was unable to get the target's current scale"),
        "{msg}"
    );
}

#[tokio::test]
async fn claims_are_provisioned_bound_and_protected_while_used() {
    // Needs a default StorageClass (kind and most clusters have one; the emulator's is
    // `standard`). A pod uses the claim first, so `WaitForFirstConsumer` classes bind too.
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let c = Cluster::new().await;
    needs_workloads!(c);
    let pvcs: Api<PersistentVolumeClaim> = c.api();
    let pvs: Api<PersistentVolume> = Api::all(c.client.clone());
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
    .unwrap();
    pvcs.create(&PostParams::default(), &claim).await.unwrap();
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "user"}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
            "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}))
    .unwrap();
    c.api::<Pod>()
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let bound = eventually("the claim to be bound", || {
        let pvcs = pvcs.clone();
        async move {
            let p = pvcs.get("data").await.ok()?;
            (p.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(p)
        }
    })
    .await;
    let spec = bound.spec.clone().unwrap();
    assert!(
        spec.storage_class_name.is_some(),
        "the default class was assigned"
    );
    let volume = spec.volume_name.clone().expect("a bound volume");
    let pv = pvs.get(&volume).await.unwrap();
    let claim_ref = pv.spec.as_ref().unwrap().claim_ref.clone().unwrap();
    assert_eq!(
        (claim_ref.name.as_deref(), claim_ref.namespace.as_deref()),
        (Some("data"), Some(c.ns.as_str()))
    );
    assert!(
        bound
            .metadata
            .finalizers
            .unwrap()
            .contains(&"kubernetes.io/pvc-protection".to_string())
    );
    // In use: deleting it only marks it.
    pvcs.delete("data", &DeleteParams::default()).await.unwrap();
    let held = pvcs.get("data").await.expect("kept while the pod uses it");
    assert!(held.metadata.deletion_timestamp.is_some());
    c.api::<Pod>()
        .delete("user", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the claim and its volume to go", || {
        let pvcs = pvcs.clone();
        let pvs = pvs.clone();
        let volume = volume.clone();
        async move {
            (pvcs.get_opt("data").await.ok()?.is_none()
                && pvs.get_opt(&volume).await.ok()?.is_none())
            .then_some(())
        }
    })
    .await;
}
