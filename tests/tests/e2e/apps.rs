//! Stories of a PortfolioApp under the operator, end to end.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use portfolio_e2e::Harness;
use serde_json::json;

const SHOP: &str = r#"
apiVersion: portfolio.dev/v1alpha1
kind: PortfolioApp
metadata:
  name: shop
spec:
  image: ghcr.io/acme/shop:1.4.2
  replicas: 2
  ports:
    - name: http
      containerPort: 8080
      servicePort: 80
  config:
    LOG_LEVEL: info
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_gets_its_children_and_becomes_ready() {
    let mut h = Harness::new("create").await;
    h.start_operator().await;
    h.apply_yaml(SHOP).await;

    let message = h
        .await_condition("shop", "Ready", "True", Some("Available"))
        .await;
    assert_eq!(message, "2 pods ready");
    let app = h.apps().get("shop").await.expect("app");
    let uid = app.uid().expect("uid");
    // No volume, no backup: deleting it needs no finalizer.
    assert!(
        !app.finalizers()
            .contains(&"portfolio.dev/cleanup".to_owned())
    );
    let status = app.status.expect("status");
    assert_eq!(status.observed_generation, app.metadata.generation);
    assert_eq!(status.ready_replicas, Some(2));
    assert_eq!(
        status.plugin.expect("plugin").id,
        "deployment-generator@0.1.0"
    );
    let kinds: Vec<&str> = status.resources.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]
    );

    let deployment = h.api::<Deployment>().get("shop").await.expect("deployment");
    let owner = &deployment.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("PortfolioApp", uid.as_str(), Some(true))
    );
    let labels = deployment.labels();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "portfolio-operator");
    assert_eq!(labels["app.kubernetes.io/instance"], "shop");
    assert_eq!(labels["portfolio.dev/plugin"], "deployment-generator");
    h.api::<Service>().get("shop").await.expect("service");
    h.api::<ConfigMap>()
        .get("shop-config")
        .await
        .expect("config map");
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_and_config_changes_converge_and_roll_the_pods() {
    let mut h = Harness::new("change").await;
    h.start_operator().await;
    h.apply_yaml(SHOP).await;
    h.await_condition("shop", "Ready", "True", None).await;
    let hash = |d: &Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get("portfolio.dev/config-hash").cloned())
    };
    let before = hash(&h.api::<Deployment>().get("shop").await.expect("deployment"));

    h.apply_yaml(
        &SHOP
            .replace("replicas: 2", "replicas: 3")
            .replace("LOG_LEVEL: info", "LOG_LEVEL: debug"),
    )
    .await;
    let deployments = h.api::<Deployment>();
    let after = h
        .eventually(
            "the Deployment has 3 replicas and a new config hash",
            || async {
                let deployment = deployments.get("shop").await.ok()?;
                let replicas = deployment.spec.as_ref()?.replicas?;
                (replicas == 3 && hash(&deployment) != before).then(|| hash(&deployment))
            },
        )
        .await;
    assert!(after.is_some());
    let config: ConfigMap = h.api().get("shop-config").await.expect("config map");
    assert_eq!(config.data.expect("data")["LOG_LEVEL"], "debug");
    h.eventually("the app reports 3 ready pods", || async {
        let status = h.apps().get("shop").await.ok()?.status?;
        (status.ready_replicas == Some(3)).then_some(())
    })
    .await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_restored_and_a_deleted_child_recreated() {
    let mut h = Harness::new("drift").await;
    h.start_operator().await;
    h.apply_yaml(SHOP).await;
    h.await_condition("shop", "Ready", "True", None).await;

    // Someone else takes over a field the operator owns...
    let services = h.api::<Service>();
    let drifted = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop"},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 9999}]}});
    services
        .patch(
            "shop",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(&drifted),
        )
        .await
        .expect("drift");
    // ...and edits another one by hand.
    let deployments = h.api::<Deployment>();
    deployments
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 7}})),
        )
        .await
        .expect("scale by hand");
    h.eventually("the Service targets the named port again", || async {
        let service = services.get("shop").await.ok()?;
        let ports = service.spec?.ports?;
        let target = ports.first()?.target_port.clone()?;
        (target == k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into()))
            .then_some(())
    })
    .await;
    h.eventually("the Deployment is back to 2 replicas", || async {
        let replicas = deployments.get("shop").await.ok()?.spec?.replicas?;
        (replicas == 2).then_some(())
    })
    .await;

    let config_maps = h.api::<ConfigMap>();
    config_maps
        .delete("shop-config", &DeleteParams::default())
        .await
        .expect("delete");
    h.eventually("the ConfigMap is back", || async {
        config_maps.get_opt("shop-config").await.ok()?.map(|_| ())
    })
    .await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_app_is_reported_and_never_stops_the_others() {
    let mut h = Harness::new("malformed").await;
    if !h.emulated() {
        // Loosening a CRD of a shared cluster would disturb every other test.
        eprintln!("skipped: needs a cluster of its own");
        h.cleanup().await;
        return;
    }
    h.start_operator().await;
    // An object stored under a looser schema (as after a CRD downgrade, or
    // before a schema change), which the operator's type no longer accepts.
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(h.client.clone());
    let mut crd = crds.get("portfolioapps.portfolio.dev").await.expect("crd");
    for version in &mut crd.spec.versions {
        version.schema = Some(
            serde_json::from_value(json!({"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": true
            }}))
            .expect("schema"),
        );
    }
    crd.metadata.managed_fields = None;
    crds.replace("portfolioapps.portfolio.dev", &Default::default(), &crd)
        .await
        .expect("loosen the CRD");
    h.apply_yaml(
        "apiVersion: portfolio.dev/v1alpha1\nkind: PortfolioApp\nmetadata:\n  name: broken\nspec:\n  image: example/app:1\n  replicas: many\n",
    )
    .await;
    portfolio_e2e::install_crds(&h.client).await;

    h.apply_yaml(SHOP).await;
    h.await_condition("shop", "Ready", "True", None).await;
    let resource =
        portfolio_e2e::resource("portfolio.dev", "v1alpha1", "PortfolioApp", "portfolioapps");
    let raw: kube::Api<kube::core::DynamicObject> =
        kube::Api::namespaced_with(h.client.clone(), &h.namespace, &resource);
    let message = h
        .eventually("broken is Degraded with InvalidSpec", || async {
            let app = raw.get("broken").await.ok()?;
            let conditions = app.data.pointer("/status/conditions")?.as_array()?.clone();
            conditions.into_iter().find_map(|c| {
                (c["type"] == "Degraded" && c["status"] == "True" && c["reason"] == "InvalidSpec")
                    .then(|| c["message"].as_str().unwrap_or_default().to_owned())
            })
        })
        .await;
    assert!(message.contains("spec.replicas"), "{message}");
    assert!(message.contains("kubectl edit"), "{message}");
    assert!(
        h.api::<Deployment>()
            .get_opt("broken")
            .await
            .expect("get")
            .is_none(),
        "nothing applied for it"
    );

    // Fixed, it converges like any other.
    h.apply_yaml(
        "apiVersion: portfolio.dev/v1alpha1\nkind: PortfolioApp\nmetadata:\n  name: broken\nspec:\n  image: example/app:1\n  replicas: 1\n",
    )
    .await;
    h.await_condition("broken", "Ready", "True", None).await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_of_others_are_reported_never_taken_over() {
    let mut h = Harness::new("conflict").await;
    h.start_operator().await;
    // Another team's objects, under the names the app's children would have.
    h.apply_yaml(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-config\ndata:\n  THEIRS: \"1\"\n",
    )
    .await;
    h.apply_yaml(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: shop\nspec:\n  selector:\n    team: other\n  ports:\n    - port: 80\n      targetPort: 9000\n",
    )
    .await;
    h.apply_yaml(SHOP).await;

    let message = h
        .await_condition("shop", "Degraded", "True", Some("Conflict"))
        .await;
    assert!(message.contains("ConfigMap \"shop-config\""), "{message}");
    assert!(message.contains("Service \"shop\""), "{message}");
    assert!(
        message.contains("portfolio.dev/adopt=PortfolioApp/shop"),
        "says how to hand it over: {message}"
    );
    assert!(!message.contains("Status {"), "{message}");
    let (ready, reason, _) = h.condition("shop", "Ready").await.expect("Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "Conflict"));
    // Left exactly as they were: no keys merged, no selector changed, no
    // owner, not a field the operator's.
    let config: ConfigMap = h.api().get("shop-config").await.expect("config map");
    assert!(config.owner_references().is_empty());
    let managers: Vec<_> = config
        .managed_fields()
        .iter()
        .filter_map(|entry| entry.manager.clone())
        .collect();
    assert!(
        !managers.iter().any(|m| m.starts_with("portfolio-operator")),
        "{managers:?}"
    );
    assert_eq!(
        config
            .data
            .clone()
            .expect("data")
            .keys()
            .collect::<Vec<_>>(),
        ["THEIRS"]
    );
    let service: Service = h.api().get("shop").await.expect("service");
    assert!(service.owner_references().is_empty());
    assert_eq!(
        service.spec.expect("spec").selector.expect("selector")["team"],
        "other"
    );
    // What is not in conflict is applied.
    h.api::<Deployment>()
        .get("shop")
        .await
        .expect("the Deployment is applied");
    let events = h
        .eventually("a Conflict warning Event", || async {
            let events: kube::Api<k8s_openapi::api::events::v1::Event> = h.api();
            let list = events.list(&Default::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("Conflict"))
        })
        .await;
    assert_eq!(events.type_.as_deref(), Some("Warning"));

    // Their owner hands them over: the operator adopts them.
    let opt_in = Patch::Merge(
        json!({"metadata": {"annotations": {"portfolio.dev/adopt": "PortfolioApp/shop"}}}),
    );
    h.api::<ConfigMap>()
        .patch("shop-config", &PatchParams::default(), &opt_in)
        .await
        .expect("opt in");
    h.api::<Service>()
        .patch("shop", &PatchParams::default(), &opt_in)
        .await
        .expect("opt in");
    h.await_condition("shop", "Ready", "True", Some("Available"))
        .await;
    let config: ConfigMap = h.api().get("shop-config").await.expect("config map");
    assert_eq!(config.owner_references()[0].kind, "PortfolioApp");
    assert_eq!(config.data.expect("data")["LOG_LEVEL"], "info");
    h.cleanup().await;
}

/// Apply `spec` (YAML, indented two spaces) as app `name`; the API server's answer.
async fn create(h: &Harness, name: &str, spec: &str) -> Result<(), kube::Error> {
    let value: serde_json::Value = serde_saphyr::from_str(&format!(
        "apiVersion: portfolio.dev/v1alpha1\nkind: PortfolioApp\nmetadata:\n  name: {name}\nspec:\n{spec}"
    ))
    .expect("YAML");
    h.apps()
        .patch(name, &PatchParams::apply("e2e"), &Patch::Apply(&value))
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_optional_field_may_be_left_out_and_the_rules_still_hold() {
    // No operator: this is about what the API server accepts.
    let h = Harness::new("schema").await;
    let image = "  image: example/app:1\n";
    let ports = "  ports:\n    - name: http\n      containerPort: 8080\n";
    // Each optional list and object alone, so that a validation rule that
    // reads a missing field (as `self.ports` did) fails here.
    let accepted = [
        ("bare", String::new()),
        ("ports", ports.to_owned()),
        ("env", "  env:\n    - name: A\n      value: b\n".to_owned()),
        ("config", "  config:\n    A: b\n".to_owned()),
        (
            "resources",
            "  resources:\n    requests:\n      cpu: 100m\n".to_owned(),
        ),
        (
            "probes-tcp",
            format!("{ports}  probes:\n    readiness:\n      tcp:\n        port: http\n"),
        ),
        (
            "probes-liveness",
            format!("{ports}  probes:\n    liveness:\n      http:\n        path: /healthz\n"),
        ),
        (
            "probes-off",
            "  probes:\n    defaultReadiness: false\n".to_owned(),
        ),
        (
            "storage",
            "  storage:\n    size: 1Gi\n    mountPath: /data\n".to_owned(),
        ),
        (
            "autoscaling",
            "  autoscaling:\n    maxReplicas: 3\n    targetCPUUtilizationPercentage: 50\n"
                .to_owned(),
        ),
        (
            "service-account",
            "  serviceAccount:\n    create: true\n".to_owned(),
        ),
        ("pull-secrets", "  imagePullSecrets: [pull]\n".to_owned()),
        (
            "scheduling",
            "  scheduling:\n    nodeSelector:\n      kubernetes.io/os: linux\n".to_owned(),
        ),
        ("migrations", "  migrations: [schema]\n".to_owned()),
        (
            "generator",
            "  generator:\n    plugin: deployment-generator\n".to_owned(),
        ),
        ("paused", "  paused: true\n".to_owned()),
    ];
    for (name, extra) in &accepted {
        if let Err(error) = create(&h, name, &format!("{image}{extra}")).await {
            panic!("{name} was refused: {error}");
        }
    }

    // And the rules still refuse what they are for, with their message.
    let refused = [
        (
            "same-port",
            format!("{ports}    - name: other\n      containerPort: 8080\n"),
            "each servicePort (or containerPort) and protocol may be used once",
        ),
        (
            "probe-without-port",
            "  probes:\n    readiness:\n      http:\n        path: /ready\n".to_owned(),
            "a probe's port must name one of spec.ports",
        ),
        (
            "probe-unknown-port",
            format!("{ports}  probes:\n    liveness:\n      tcp:\n        port: admin\n"),
            "a probe's port must name one of spec.ports",
        ),
        (
            "min-above-max",
            "  autoscaling:\n    minReplicas: 5\n    maxReplicas: 3\n    targetCPUUtilizationPercentage: 50\n"
                .to_owned(),
            "minReplicas must not exceed maxReplicas",
        ),
        (
            "shared-volume",
            "  storage:\n    size: 1Gi\n    mountPath: /data\n  autoscaling:\n    maxReplicas: 3\n    targetCPUUtilizationPercentage: 50\n"
                .to_owned(),
            "with autoscaling, storage must allow several pods",
        ),
    ];
    for (name, extra, message) in &refused {
        match create(&h, name, &format!("{image}{extra}")).await {
            Ok(()) => panic!("{name} was accepted"),
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{name}: {status:?}");
                assert_eq!(status.reason, "Invalid", "{name}: {status:?}");
                assert!(
                    status.message.contains(message),
                    "{name}: {}",
                    status.message
                );
            }
            Err(other) => panic!("{name}: {other}"),
        }
    }
    h.cleanup().await;
}
