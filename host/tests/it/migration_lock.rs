//! The per-database migration lock at a real API server (the emulator): two
//! writers racing for it (two replicas, or two operators) never both win, a
//! holder that is gone is no holder, and only the holder lets go.

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, PostParams};
use portfolio_api::{DatabaseMigration, DatabaseMigrationSpec};
use portfolio_operator::controller::migration::lock::{Database, Holder, Locks, Taken};
use serde_json::json;

const NAMESPACE: &str = "locks";

async fn cluster() -> (emulator::Emulator, kube::Client) {
    crate::common::cluster_with_namespace("lock-test", NAMESPACE).await
}

/// A migration stored in the cluster, as a lock holder.
async fn migration(client: &kube::Client, name: &str) -> Holder {
    let spec: DatabaseMigrationSpec = serde_json::from_value(json!({
        "tool": "flyway",
        "database": {"url": "jdbc:postgresql://db/shop", "credentialsSecretRef": {"name": "s"}},
        "source": {"configMapRef": {"name": "sql"}},
    }))
    .expect("spec");
    let created = Api::<DatabaseMigration>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &DatabaseMigration::new(name, spec))
        .await
        .expect("create the migration");
    Holder::of(&created)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_never_both_take_the_lock() {
    let (emulator, client) = cluster().await;
    let client_two = crate::common::client(&emulator).await;
    let database = Database::of("jdbc:postgresql://db:5432/shop");
    for round in 0..10 {
        let a = migration(&client, &format!("a-{round}")).await;
        let b = migration(&client, &format!("b-{round}")).await;
        // Two clients, as two operator replicas would have.
        let (one, two) = (
            Locks::new(client.clone(), NAMESPACE.into()),
            Locks::new(client_two.clone(), NAMESPACE.into()),
        );
        let (first, second) = tokio::join!(one.take(&database, &a), two.take(&database, &b));
        let (first, second) = (first.expect("take"), second.expect("take"));
        let winners = [&first, &second]
            .iter()
            .filter(|taken| ***taken == Taken::Ours)
            .count();
        assert_eq!(winners, 1, "round {round}: {first:?} {second:?}");
        let (winner, loser, lost) = if first == Taken::Ours {
            (&a, &b, second)
        } else {
            (&b, &a, first)
        };
        assert_eq!(
            lost,
            Taken::HeldBy(winner.clone()),
            "the loser learns the holder"
        );
        // Only the holder lets go; then the Lease is gone and the other may take it.
        assert!(!one.release(&database, loser).await.expect("release"));
        assert!(one.release(&database, winner).await.expect("release"));
        let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
        assert!(
            leases
                .get_opt(&database.lease)
                .await
                .expect("get")
                .is_none()
        );
        assert_eq!(one.take(&database, loser).await.expect("take"), Taken::Ours);
        assert!(one.release(&database, loser).await.expect("release"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_is_gone_is_no_holder() {
    let (_emulator, client) = cluster().await;
    let locks = Locks::new(client.clone(), NAMESPACE.into());
    let database = Database::of("jdbc:postgresql://db:5432/shop");
    let old = migration(&client, "old").await;
    let new = migration(&client, "new").await;
    assert_eq!(
        locks.take(&database, &old).await.expect("take"),
        Taken::Ours
    );
    assert_eq!(
        locks.take(&database, &old).await.expect("take"),
        Taken::Ours,
        "taking again is a no-op"
    );
    assert_eq!(
        locks.take(&database, &new).await.expect("take"),
        Taken::HeldBy(old.clone())
    );
    // Deleted without its finalizer having run (the operator was away).
    Api::<DatabaseMigration>::namespaced(client.clone(), NAMESPACE)
        .delete("old", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(
        locks.take(&database, &new).await.expect("take"),
        Taken::Ours
    );

    // A migration deleted and created again under the same name is another holder.
    let again = migration(&client, "old").await;
    assert_ne!(again.uid, old.uid);
    assert_eq!(
        locks.take(&database, &again).await.expect("take"),
        Taken::HeldBy(new.clone())
    );
    let lease = Api::<Lease>::namespaced(client.clone(), NAMESPACE)
        .get(&database.lease)
        .await
        .expect("the lock's Lease");
    assert_eq!(
        lease
            .metadata
            .annotations
            .unwrap_or_default()
            .get("portfolio.dev/database"),
        Some(&"jdbc:postgresql://db:5432/shop".to_owned()),
        "the Lease says which database it locks"
    );
}
