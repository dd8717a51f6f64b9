//! An operator that watches a list of namespaces: each is reconciled as if
//! it were the only one, a namespace outside the list is never touched, and
//! the watches come back from a relist with every namespace's apps.

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use portfolio_api::PortfolioApp;
use portfolio_e2e::Harness;
use serde_json::json;

/// Apply the app `shop` with `replicas` in `namespace`.
async fn apply_shop(h: &Harness, namespace: &str, replicas: i32) {
    let apps: Api<PortfolioApp> = Api::namespaced(h.client.clone(), namespace);
    let app = json!({
        "apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioApp",
        "metadata": {"name": "shop", "namespace": namespace},
        "spec": {"image": "ghcr.io/acme/shop:1.4.2", "replicas": replicas,
                 "ports": [{"name": "http", "containerPort": 8080}]},
    });
    apps.patch(
        "shop",
        &PatchParams::apply("e2e").force(),
        &Patch::Apply(&app),
    )
    .await
    .expect("apply the app");
}

/// Wait until `shop` in `namespace` has a Deployment of `replicas`, owned
/// by that namespace's app, and a status for the app's generation.
async fn await_shop(h: &Harness, namespace: &str, replicas: i32) {
    let apps: Api<PortfolioApp> = Api::namespaced(h.client.clone(), namespace);
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), namespace);
    h.eventually(
        &format!("shop in {namespace} is reconciled with {replicas} replicas"),
        || async {
            let app = apps.get_opt("shop").await.ok()??;
            let observed = app.status.as_ref()?.observed_generation;
            let deployment = deployments.get_opt("shop").await.ok()??;
            let owned = deployment
                .owner_references()
                .iter()
                .any(|owner| Some(&owner.uid) == app.metadata.uid.as_ref());
            (owned
                && observed == app.metadata.generation
                && deployment.spec?.replicas == Some(replicas))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_watching_two_namespaces_reconciles_both_and_touches_no_other() {
    let mut h = Harness::new("watched-namespaces").await;
    let second = h.another_namespace("b", true).await;
    let unwatched = h.another_namespace("c", false).await;
    h.start_operator().await;
    let first = h.namespace.clone();
    // The same name in each: the caches key by namespace too.
    for namespace in [&first, &second, &unwatched] {
        apply_shop(&h, namespace, 2).await;
    }
    await_shop(&h, &first, 2).await;
    await_shop(&h, &second, 2).await;

    if let Some(emulator) = &h.emulator {
        // Every watch relists (410 Gone after the cut): each namespace's
        // relist must keep the other's objects in the shared caches.
        emulator.compact();
        emulator.cut_watches();
    }
    apply_shop(&h, &second, 3).await;
    await_shop(&h, &second, 3).await;
    apply_shop(&h, &first, 4).await;
    await_shop(&h, &first, 4).await;

    let outside: Api<PortfolioApp> = Api::namespaced(h.client.clone(), &unwatched);
    let app = outside.get("shop").await.expect("the unwatched app");
    assert!(app.status.is_none(), "an unwatched app got a status");
    assert!(app.finalizers().is_empty());
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), &unwatched);
    assert!(
        deployments.get_opt("shop").await.expect("get").is_none(),
        "an unwatched app got children"
    );
    if h.emulated() {
        // Not a request outside the two namespaces, not even a cluster-wide
        // list: the operator needs no more than a RoleBinding in each.
        let namespaces = h.operator_request_namespaces();
        assert_eq!(namespaces.into_iter().collect::<Vec<_>>(), {
            let mut both = vec![first.clone(), second.clone()];
            both.sort();
            both
        });
    }
    h.cleanup().await;
}
