//! Scaling, pausing, deleting and restarting, end to end.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
use kube::ResourceExt;
use kube::api::DeleteParams;
use portfolio_e2e::Harness;

fn app(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: portfolio.dev/v1alpha1\nkind: PortfolioApp\nmetadata:\n  name: {name}\nspec:\n  image: example/app:1\n  ports:\n    - name: http\n      containerPort: 8080\n  config:\n    A: b\n{extra}"
    )
}

/// Whether `manager` owns `spec.replicas` of the Deployment, by its managedFields.
fn owns_replicas(deployment: &Deployment, manager: &str) -> bool {
    deployment.managed_fields().iter().any(|entry| {
        entry.manager.as_deref() == Some(manager)
            && entry
                .fields_v1
                .as_ref()
                .and_then(|f| f.0.pointer("/f:spec/f:replicas"))
                .is_some()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_and_autoscaling_never_fight() {
    let mut h = Harness::new("scaling").await;
    h.start_operator().await;
    h.apply_yaml(&app("web", "  replicas: 2\n")).await;
    h.await_condition("web", "Ready", "True", None).await;
    let deployments = h.api::<Deployment>();
    assert!(owns_replicas(
        &deployments.get("web").await.expect("deployment"),
        "portfolio-operator"
    ));

    h.apply_yaml(&app("web", "  replicas: 4\n")).await;
    h.eventually("4 replicas", || async {
        (deployments.get("web").await.ok()?.spec?.replicas? == 4).then_some(())
    })
    .await;

    // Autoscaling on: an HPA, and the operator lets go of spec.replicas.
    h.apply_yaml(&app(
        "web",
        "  replicas: 4\n  autoscaling:\n    minReplicas: 2\n    maxReplicas: 6\n    targetCPUUtilizationPercentage: 60\n",
    ))
    .await;
    let hpas = h.api::<HorizontalPodAutoscaler>();
    h.eventually("an HPA", || async { hpas.get_opt("web").await.ok()? })
        .await;
    h.eventually("the operator no longer owns spec.replicas", || async {
        let deployment = deployments.get("web").await.ok()?;
        (!owns_replicas(&deployment, "portfolio-operator")).then_some(())
    })
    .await;
    if h.emulated() {
        // The emulated HPA takes spec.replicas over, as in a cluster, and the
        // operator leaves it alone from then on.
        h.eventually("the HPA owns spec.replicas", || async {
            let deployment = deployments.get("web").await.ok()?;
            deployment
                .managed_fields()
                .iter()
                .any(|e| {
                    e.manager.as_deref() != Some("portfolio-operator")
                        && e.fields_v1
                            .as_ref()
                            .and_then(|f| f.0.pointer("/f:spec/f:replicas"))
                            .is_some()
                })
                .then_some(())
        })
        .await;
        // Status follows the replica count; the Deployment itself is not re-applied.
        let applies = h.metrics.applies();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let deployment = deployments.get("web").await.expect("deployment");
        assert!(!owns_replicas(&deployment, "portfolio-operator"));
        assert_eq!(
            h.metrics.applies(),
            applies,
            "the operator re-applies while the HPA scales"
        );
    }

    // Autoscaling off: the HPA goes, and replicas are the operator's again.
    h.apply_yaml(&app("web", "  replicas: 3\n")).await;
    h.eventually("no HPA", || async {
        hpas.get_opt("web").await.ok()?.is_none().then_some(())
    })
    .await;
    h.eventually("3 replicas owned by the operator", || async {
        let deployment = deployments.get("web").await.ok()?;
        (deployment.spec.as_ref()?.replicas? == 3
            && owns_replicas(&deployment, "portfolio-operator"))
        .then_some(())
    })
    .await;
    h.cleanup().await;
}

/// Replica counts seen, each with whether the operator's apply owned the field then.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(i32, bool)>>>;

/// Every replica count the Deployment `name` has from now on.
fn record_replicas(h: &Harness, name: &str) -> (Seen, tokio::task::JoinHandle<()>) {
    use futures::StreamExt;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    let stream = kube::runtime::watcher(
        h.api::<Deployment>(),
        kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}")),
    );
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Ok(
                kube::runtime::watcher::Event::Apply(d)
                | kube::runtime::watcher::Event::InitApply(d),
            ) = event
                && let Some(replicas) = d.spec.as_ref().and_then(|s| s.replicas)
            {
                let ours = owns_replicas(&d, "portfolio-operator");
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((replicas, ours));
            }
        }
    });
    (seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_to_autoscaling_keeps_every_pod() {
    let mut h = Harness::new("handover").await;
    h.start_operator().await;
    h.apply_yaml(&app("web", "  replicas: 4\n")).await;
    h.await_condition("web", "Ready", "True", Some("Available"))
        .await;
    let (seen, recorder) = record_replicas(&h, "web");

    h.apply_yaml(&app(
        "web",
        "  replicas: 4\n  autoscaling:\n    minReplicas: 2\n    maxReplicas: 6\n    targetCPUUtilizationPercentage: 60\n",
    ))
    .await;
    let deployments = h.api::<Deployment>();
    let hpas = h.api::<HorizontalPodAutoscaler>();
    h.eventually(
        "an HPA, and the operator no longer owns spec.replicas",
        || async {
            hpas.get_opt("web").await.ok()??;
            let deployment = deployments.get("web").await.ok()?;
            (!owns_replicas(&deployment, "portfolio-operator")).then_some(())
        },
    )
    .await;
    if h.emulated() {
        // The autoscaler scales up (load at twice its target); the operator
        // never puts its old count back.
        let emulator = h.emulator.as_ref().expect("emulated");
        emulator.control().add_metric(emulator::MetricRule {
            namespace: Some(h.namespace.clone()),
            name: Some("web".into()),
            utilization: 120,
        });
        h.eventually("the autoscaler scaled to 6", || async {
            (deployments.get("web").await.ok()?.spec?.replicas? == 6).then_some(())
        })
        .await;
        let applies = h.metrics.applies();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            deployments
                .get("web")
                .await
                .expect("deployment")
                .spec
                .and_then(|s| s.replicas),
            Some(6)
        );
        assert_eq!(
            h.metrics.applies(),
            applies,
            "the operator fought the autoscaler"
        );
    } else {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    recorder.abort();
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(!seen.is_empty(), "the watch saw the Deployment");
    for (replicas, _) in &seen {
        assert!(
            *replicas >= 4,
            "the replica count dropped to {replicas} during the switch: {seen:?}"
        );
    }
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_app_is_left_alone() {
    let mut h = Harness::new("paused").await;
    h.start_operator().await;
    h.apply_yaml(&app("web", "  replicas: 1\n")).await;
    h.await_condition("web", "Ready", "True", None).await;
    h.apply_yaml(&app("web", "  replicas: 5\n  paused: true\n"))
        .await;
    let message = h
        .await_condition("web", "Ready", "False", Some("Paused"))
        .await;
    assert!(message.contains("paused"), "{message}");
    let deployment = h.api::<Deployment>().get("web").await.expect("deployment");
    assert_eq!(
        deployment.spec.and_then(|s| s.replicas),
        Some(1),
        "nothing applied while paused"
    );
    h.apply_yaml(&app("web", "  replicas: 5\n")).await;
    let deployments = h.api::<Deployment>();
    h.eventually("unpaused, 5 replicas", || async {
        (deployments.get("web").await.ok()?.spec?.replicas? == 5).then_some(())
    })
    .await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_backs_up_keeps_the_volume_and_lets_go() {
    let mut h = Harness::new("deletion").await;
    if !h.emulated() {
        // The backup Job needs an image that exists; the emulator runs any.
        eprintln!("skipped: needs the emulator's simulated Jobs");
        h.cleanup().await;
        return;
    }
    h.start_operator().await;
    h.apply_yaml(&app(
        "db",
        "  replicas: 1\n  storage:\n    size: 1Gi\n    reclaimPolicy: Retain\n    backup:\n      image: example/backup:1\n      command: [backup, /data]\n",
    ))
    .await;
    h.await_condition("db", "Ready", "True", None).await;
    let claims = h.api::<PersistentVolumeClaim>();
    claims.get("db-data").await.expect("claim");

    h.apps()
        .delete("db", &DeleteParams::default())
        .await
        .expect("delete");
    let jobs = h.api::<Job>();
    h.eventually("the backup Job ran", || async {
        jobs.get_opt("db-backup").await.ok()?
    })
    .await;
    let apps = h.apps();
    h.eventually("the app is gone", || async {
        apps.get_opt("db").await.ok()?.is_none().then_some(())
    })
    .await;

    let claim = claims.get("db-data").await.expect("the claim is retained");
    assert!(claim.owner_references().is_empty(), "released from the app");
    let deployments = h.api::<Deployment>();
    let services = h.api::<Service>();
    let config_maps = h.api::<ConfigMap>();
    h.eventually("everything else is garbage-collected", || async {
        let gone = deployments.get_opt("db").await.ok()?.is_none()
            && services.get_opt("db").await.ok()?.is_none()
            && config_maps.get_opt("db-config").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_writes_nothing_for_converged_apps() {
    let mut h = Harness::new("restart").await;
    h.start_operator().await;
    for name in ["one", "two", "three"] {
        h.apply_yaml(&app(name, "  replicas: 2\n")).await;
    }
    for name in ["one", "two", "three"] {
        h.await_condition(name, "Ready", "True", None).await;
    }
    // Let the rollout's last status updates land.
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.stop_operator().await;

    h.start_operator().await;
    h.await_reconciles_ok(3).await;
    assert_eq!(
        h.metrics.writes(),
        0,
        "a restart must not rewrite converged apps"
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_app_costs_three_applies_and_one_status_write() {
    // On an API server alone (nothing runs the Deployments) a simple app's
    // status is written once: no rollout progress follows to report.
    let mut h = Harness::with_workloads("writes-per-app", false).await;
    if !h.emulated() {
        eprintln!("skipped: counts requests as the emulator sees them");
        return h.cleanup().await;
    }
    h.start_operator().await;
    const APPS: usize = 20;
    for n in 0..APPS {
        h.apply_yaml(&app(&format!("app-{n}"), "")).await;
    }
    let apps = h.apps();
    h.eventually("every app has its status", || async {
        let list = apps.list(&Default::default()).await.ok()?;
        let done = list
            .items
            .iter()
            .filter(|app| {
                app.status
                    .as_ref()
                    .is_some_and(|s| s.observed_generation == app.metadata.generation)
            })
            .count();
        (done == APPS).then_some(())
    })
    .await;
    // Let any further (needless) writes land before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = h.operator_requests();
    let count = |verb_resource: &str| requests.get(verb_resource).copied().unwrap_or(0);
    let applies =
        count("patch /configmaps") + count("patch apps/deployments") + count("patch /services");
    let status = count("patch portfolio.dev/portfolioapps/status");
    let metadata = count("patch portfolio.dev/portfolioapps");
    eprintln!(
        "writes per app: applies {:.2}, status {:.2}, metadata {:.2}; {requests:?}",
        applies as f64 / APPS as f64,
        status as f64 / APPS as f64,
        metadata as f64 / APPS as f64
    );
    assert_eq!(applies, 3 * APPS, "{requests:?}");
    assert_eq!(status, APPS, "one status write per app: {requests:?}");
    assert_eq!(
        metadata, 0,
        "no finalizer on an app with nothing to clean up: {requests:?}"
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_finalizer_is_there_only_while_deletion_has_work() {
    let mut h = Harness::new("finalizer").await;
    h.start_operator().await;
    let apps = h.apps();
    let finalized = |app: &portfolio_api::PortfolioApp| {
        app.finalizers()
            .contains(&"portfolio.dev/cleanup".to_owned())
    };
    // Nothing to clean up: garbage collection and the kubelet do it all.
    h.apply_yaml(&app("web", "")).await;
    h.await_condition("web", "Progressing", "True", None).await;
    assert!(!finalized(&apps.get("web").await.expect("app")));

    // A volume appears, with a backup: from now on deletion has work.
    h.apply_yaml(&app(
        "web",
        "  storage:\n    size: 1Gi\n    backup:\n      image: example/backup:1\n      command: [backup, /data]\n",
    ))
    .await;
    h.eventually("the finalizer is put on", || async {
        apps.get("web").await.ok().filter(finalized).map(|_| ())
    })
    .await;
    h.api::<PersistentVolumeClaim>()
        .get("web-data")
        .await
        .expect("the claim, created after the finalizer");

    // Cleanup skipped by annotation: no work left, no finalizer.
    h.apply_yaml(&app(
            "web",
            "  storage:\n    size: 1Gi\n    backup:\n      image: example/backup:1\n      command: [backup, /data]\n",
        )
        .replace(
            "metadata:\n  name: web\n",
            "metadata:\n  name: web\n  annotations:\n    portfolio.dev/skip-cleanup: \"true\"\n",
        ))
    .await;
    h.eventually("the finalizer is taken off", || async {
        let app = apps.get("web").await.ok()?;
        (!finalized(&app)).then_some(())
    })
    .await;

    // A simple app is deleted at once; its children go with it.
    h.apps()
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    h.eventually("the app is gone", || async {
        apps.get_opt("web").await.ok()?.is_none().then_some(())
    })
    .await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_writes_what_changed_and_a_resync_nothing() {
    let mut h = Harness::with_workloads("writes-on-change", false).await;
    if !h.emulated() {
        eprintln!("skipped: counts requests as the emulator sees them");
        return h.cleanup().await;
    }
    h.start_operator().await;
    const APPS: usize = 10;
    let apps = h.apps();
    let converged = |generation: i64| {
        let apps = apps.clone();
        async move {
            let list = apps.list(&Default::default()).await.ok()?;
            let done = list
                .items
                .iter()
                .filter(|app| {
                    app.metadata.generation == Some(generation)
                        && app.status.as_ref().is_some_and(|s| {
                            s.observed_generation == Some(generation)
                                && s.conditions
                                    .iter()
                                    .all(|c| c.observed_generation == Some(generation))
                        })
                })
                .count();
            (done == APPS).then_some(())
        }
    };
    for n in 0..APPS {
        h.apply_yaml(&app(&format!("app-{n}"), "")).await;
    }
    h.eventually("every app has its status", || converged(1))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes = |requests: &std::collections::BTreeMap<String, usize>| -> Vec<(String, usize)> {
        requests
            .iter()
            .filter(|(r, _)| {
                ["patch ", "create ", "update ", "delete "]
                    .iter()
                    .any(|verb| r.starts_with(verb))
                    && !r.contains("coordination.k8s.io/leases")
            })
            .map(|(r, n)| (r.clone(), *n))
            .collect()
    };

    // A touch that changes nothing the app is made of (as a resync, or a
    // label added by someone) reconciles every app and writes nothing.
    h.forget_operator_requests();
    for n in 0..APPS {
        apps.patch(
            &format!("app-{n}"),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"metadata": {"labels": {"touched": "yes"}}}),
            ),
        )
        .await
        .expect("touch");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = h.operator_requests();
    assert_eq!(writes(&requests), [], "{requests:?}");

    // A new config: its ConfigMap and the Deployment (whose pods must
    // restart to read it) are applied, once each, and the status once.
    h.forget_operator_requests();
    for n in 0..APPS {
        h.apply_yaml(&app(&format!("app-{n}"), "").replace("A: b", "A: c"))
            .await;
    }
    h.eventually("every app has its new status", || converged(2))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = h.operator_requests();
    assert_eq!(
        writes(&requests),
        [
            ("patch /configmaps".to_owned(), APPS),
            ("patch apps/deployments".to_owned(), APPS),
            ("patch portfolio.dev/portfolioapps/status".to_owned(), APPS),
        ],
        "{requests:?}"
    );
    h.cleanup().await;
}
