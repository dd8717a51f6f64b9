//! Plugins at work in the cluster: failures, the output policy, and hot
//! reload through ConfigMaps.

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{ListParams, Patch, PatchParams};
use portfolio_e2e::Harness;
use serde_json::json;

fn component(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(portfolio_operator::builtin::PLUGIN_BUILD_DIR)
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Publish `bytes` as the plugin ConfigMap `name`, with `settings` (YAML).
async fn publish(h: &Harness, name: &str, bytes: Vec<u8>, settings: &str) {
    let config_map = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"portfolio.dev/plugin": "true"}},
        "data": {"settings": settings},
        "binaryData": {"plugin.wasm": ByteString(bytes)},
    });
    h.api::<ConfigMap>()
        .patch(
            name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&config_map),
        )
        .await
        .expect("publish the plugin");
}

/// An app whose generator is the hostile fixture, told what to do by `settings` (JSON).
fn hostile_app(name: &str, settings: serde_json::Value) -> String {
    format!(
        "apiVersion: portfolio.dev/v1alpha1\nkind: PortfolioApp\nmetadata:\n  name: {name}\nspec:\n  image: example/app:1\n  generator:\n    plugin: hostile\n    settings: {settings}\n"
    )
}

fn config_map(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_degrade_the_app_and_it_recovers_when_fixed() {
    let mut h = Harness::new("failures").await;
    h.start_operator().await;

    // No such plugin.
    h.apply_yaml(&hostile_app(
        "app",
        json!({"objects": [config_map("made")]}),
    ))
    .await;
    let message = h
        .await_condition("app", "Degraded", "True", Some("PluginNotFound"))
        .await;
    assert!(
        message.contains("no generator plugin matches hostile"),
        "{message}"
    );

    // Published: the app is reconciled with it, without being touched.
    publish(&h, "hostile", component("hostile"), "{}").await;
    h.await_condition("app", "Ready", "True", Some("Applied"))
        .await;
    h.api::<ConfigMap>()
        .get("made")
        .await
        .expect("the plugin's ConfigMap");

    // The plugin crashes: PluginFailed, and what was applied stays.
    h.apply_yaml(&hostile_app("app", json!({"mode": "panic"})))
        .await;
    let message = h
        .await_condition("app", "Degraded", "True", Some("PluginFailed"))
        .await;
    assert!(message.contains("crashed"), "{message}");
    h.api::<ConfigMap>()
        .get("made")
        .await
        .expect("kept while the plugin fails");

    // The plugin blames the spec: InvalidSpec.
    h.apply_yaml(&hostile_app("app", json!({"mode": "user-error"})))
        .await;
    h.await_condition("app", "Degraded", "True", Some("InvalidSpec"))
        .await;

    // The API server refuses an object: the condition says which, and what
    // the server said, in a sentence (no debug dump of the response).
    let invalid = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "made", "labels": {"tier": "not a valid label value!"}}});
    h.apply_yaml(&hostile_app("app", json!({"objects": [invalid]})))
        .await;
    let message = h
        .await_condition("app", "Degraded", "True", Some("ApplyFailed"))
        .await;
    assert!(
        message.starts_with(
            "applying v1 ConfigMap \"made\": the API server refused it (422 Invalid): "
        ),
        "{message}"
    );
    assert!(!message.contains("Status {"), "{message}");
    assert!(!message.contains("ApiError"), "{message}");

    // Fixed.
    h.apply_yaml(&hostile_app(
        "app",
        json!({"objects": [config_map("made")]}),
    ))
    .await;
    h.await_condition("app", "Degraded", "False", None).await;
    h.await_condition("app", "Ready", "True", None).await;

    let events = h.api::<Event>();
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for reason in ["PluginNotFound", "PluginFailed", "InvalidSpec", "Recovered"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "no {reason} event in {reasons:?}"
        );
    }
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_violation_applies_nothing() {
    let mut h = Harness::new("policy").await;
    h.start_operator().await;
    publish(&h, "hostile", component("hostile"), "{}").await;

    let cluster_role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "escalate"}});
    h.apply_yaml(&hostile_app(
        "rbac",
        json!({"objects": [config_map("innocent"), cluster_role]}),
    ))
    .await;
    let message = h
        .await_condition("rbac", "Degraded", "True", Some("PolicyViolation"))
        .await;
    assert!(message.contains("may not create RBAC objects"), "{message}");

    let mut elsewhere = config_map("elsewhere");
    elsewhere["metadata"]["namespace"] = json!("kube-system");
    h.apply_yaml(&hostile_app(
        "other-ns",
        json!({"objects": [config_map("innocent-too"), elsewhere]}),
    ))
    .await;
    let message = h
        .await_condition("other-ns", "Degraded", "True", Some("PolicyViolation"))
        .await;
    assert!(message.contains("is not the app's namespace"), "{message}");

    let config_maps = h.api::<ConfigMap>();
    for name in ["innocent", "innocent-too"] {
        assert!(
            config_maps.get_opt(name).await.expect("get").is_none(),
            "{name} was applied"
        );
    }
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plugin_version_reaches_exactly_its_apps_and_a_bad_upload_changes_nothing() {
    let mut h = Harness::new("reload").await;
    h.start_operator().await;
    publish(&h, "hostile", component("hostile"), "greeting: one").await;
    h.apply_yaml(&hostile_app("user", json!({"mode": "settings"})))
        .await;
    h.apply_yaml(
        "apiVersion: portfolio.dev/v1alpha1\nkind: PortfolioApp\nmetadata:\n  name: bystander\nspec:\n  image: example/app:1\n",
    )
    .await;
    h.await_condition("user", "Ready", "True", None).await;
    h.await_condition("bystander", "Ready", "True", None).await;
    let greeting = |h: &Harness| {
        let apps = h.apps();
        async move {
            let status = apps.get("user").await.ok()?.status?;
            let raw = status.plugin_status?;
            let value: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
            value["greeting"].as_str().map(str::to_owned)
        }
    };
    assert_eq!(greeting(&h).await.as_deref(), Some("one"));
    // Let everything settle, then count writes from here on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bystander_version = h
        .apps()
        .get("bystander")
        .await
        .expect("bystander")
        .metadata
        .resource_version;

    publish(&h, "hostile", component("hostile"), "greeting: two").await;
    h.eventually("the app using the plugin sees its new settings", || async {
        (greeting(&h).await.as_deref() == Some("two")).then_some(())
    })
    .await;
    assert_eq!(
        h.apps()
            .get("bystander")
            .await
            .expect("bystander")
            .metadata
            .resource_version,
        bystander_version,
        "an app that does not use the plugin is not touched"
    );

    // A broken upload: rejected, reported on the ConfigMap, and the good version keeps working.
    publish(
        &h,
        "hostile",
        b"\0asm not really".to_vec(),
        "greeting: three",
    )
    .await;
    let events = h.api::<Event>();
    h.eventually("a PluginRejected event on the ConfigMap", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("PluginRejected")
                    && e.involved_object.name.as_deref() == Some("hostile")
            })
            .map(|_| ())
    })
    .await;
    h.apply_yaml(&hostile_app(
        "user",
        json!({"mode": "settings", "touch": 1}),
    ))
    .await;
    h.await_condition("user", "Ready", "True", None).await;
    assert_eq!(
        greeting(&h).await.as_deref(),
        Some("two"),
        "the last good version still runs"
    );
    assert!(h.metrics.encode().contains(
        "portfolio_plugin_rejections_total{source=\"configmap\",reason=\"NotAComponent\"} 1"
    ));
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_kind_is_applied_watched_pruned_and_granted() {
    let mut h = Harness::new("allow-kind").await;
    // The harness checks every request of the operator against the RBAC
    // `manifests` derives from the same kinds.
    let policy = portfolio_operator::policy::OutputPolicy::default()
        .allow_kind("coordination.k8s.io/v1/Lease".parse().expect("kind"))
        .expect("allowed");
    h.start_operator_with(policy).await;
    publish(&h, "hostile", component("hostile"), "{}").await;
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "leased-lock"}, "spec": {"holderIdentity": "nobody"}});
    h.apply_yaml(&hostile_app(
        "leased",
        json!({"objects": [config_map("leased-config"), lease]}),
    ))
    .await;
    h.await_condition("leased", "Ready", "True", Some("Applied"))
        .await;
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = h.api();
    let applied = leases
        .get("leased-lock")
        .await
        .expect("the Lease is applied");
    assert_eq!(
        applied.metadata.owner_references.expect("owned")[0].kind,
        "PortfolioApp"
    );

    // Watched: deleted by hand, it comes back.
    leases
        .delete("leased-lock", &Default::default())
        .await
        .expect("delete");
    h.eventually("the Lease is recreated", || async {
        leases.get_opt("leased-lock").await.ok()?.map(|_| ())
    })
    .await;

    // Pruned: no longer returned, it goes.
    h.apply_yaml(&hostile_app(
        "leased",
        json!({"objects": [config_map("leased-config")]}),
    ))
    .await;
    h.eventually("the Lease is pruned", || async {
        leases
            .get_opt("leased-lock")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;

    // A kind the operator manages at another version is refused with the
    // version to use, instead of failing to apply forever.
    let v1_hpa = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "old-style"},
        "spec": {"maxReplicas": 3, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}}});
    h.apply_yaml(&hostile_app("old-hpa", json!({"objects": [v1_hpa]})))
        .await;
    let message = h
        .await_condition("old-hpa", "Degraded", "True", Some("PolicyViolation"))
        .await;
    assert!(message.contains("as autoscaling/v2"), "{message}");
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_announces_no_plugin_again_and_writes_nothing() {
    let mut h = Harness::new("restart-plugins").await;
    if !h.emulated() {
        eprintln!("skipped: counts requests as the emulator sees them");
        return h.cleanup().await;
    }
    // Published before the operator starts: found by its first list, as
    // after any restart.
    publish(&h, "hostile", component("hostile"), "greeting: one").await;
    h.apply_yaml(&hostile_app("user", json!({"mode": "settings"})))
        .await;
    h.start_operator().await;
    h.await_condition("user", "Ready", "True", None).await;
    // Let the last status writes land.
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.stop_operator().await;

    h.forget_operator_requests();
    h.start_operator().await;
    h.await_reconciles_ok(1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes: Vec<(String, usize)> = h
        .operator_requests()
        .into_iter()
        .filter(|(request, _)| {
            ["create ", "update ", "patch ", "delete "]
                .iter()
                .any(|verb| request.starts_with(verb))
        })
        // Leadership is renewed whatever the apps do.
        .filter(|(request, _)| !request.ends_with(" coordination.k8s.io/leases"))
        .collect();
    assert!(
        writes.is_empty(),
        "a restart against a converged app and an unchanged plugin writes nothing: {writes:?}"
    );
    let events = h
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("list Events");
    let announced: Vec<_> = events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("PluginActivated"))
        .collect();
    assert!(
        announced.is_empty(),
        "a plugin found at start is logged, not announced: {announced:?}"
    );
    h.cleanup().await;
}
