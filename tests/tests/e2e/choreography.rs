//! Zero-downtime choreography of a PortfolioApp and its DatabaseMigrations:
//! a new pod template waits for the app's expand migrations, and a contract
//! migration waits for the rollout.
//!
//! The first tests run the PortfolioApp controller alone and write the
//! migrations' status by hand (as envtest tests do), so that they prove the
//! app's side whatever the migration controller does; one of them asks
//! `contract_may_start` what the migration controller would ask, against the
//! live app. The last two tell the whole story with the operator as
//! shipped: its migration controller runs the emulator's simulated Jobs.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::Reporter;
use portfolio_api::{DatabaseMigration, MigrationGate, PortfolioApp};
use portfolio_e2e::Harness;
use portfolio_operator::controller::metrics::Metrics;
use portfolio_operator::controller::{self, ControllerConfig, Setup, gates};
use portfolio_operator::health::Health;
use portfolio_operator::plugin::{Runtime, RuntimeConfig};
use portfolio_operator::policy::OutputPolicy;
use portfolio_operator::registry::Registry;
use serde_json::json;

/// The app at `image` with `LOG_LEVEL: log_level`, and `extra` spec lines.
fn shop(image: &str, log_level: &str, extra: &str) -> String {
    format!(
        "apiVersion: portfolio.dev/v1alpha1\nkind: PortfolioApp\nmetadata:\n  name: shop\nspec:\n  image: {image}\n  replicas: 2\n  ports:\n    - name: http\n      containerPort: 8080\n  config:\n    LOG_LEVEL: {log_level}\n{extra}"
    )
}

/// A Flyway migration of the shop's database in `phase`, with `extra` spec lines.
fn migration(name: &str, phase: &str, extra: &str) -> String {
    format!(
        "apiVersion: portfolio.dev/v1alpha1\nkind: DatabaseMigration\nmetadata:\n  name: {name}\nspec:\n  tool: flyway\n  phase: {phase}\n  database:\n    url: jdbc:postgresql://shop-db:5432/shop\n    credentialsSecretRef:\n      name: shop-db\n  source:\n    image: example/shop-migrations:2\n{extra}"
    )
}

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: shop-db\nstringData:\n  username: shop\n  password: secret\n";

/// The PortfolioApp controller alone, without the migration controller.
struct AppController {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _runtime: Runtime,
}

impl AppController {
    async fn start(h: &Harness) -> Self {
        let runtime = Runtime::new(RuntimeConfig {
            instance_slots: 8,
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let registry = Arc::new(Registry::new());
        let (loader, builtins) = (runtime.clone(), Arc::clone(&registry));
        tokio::task::spawn_blocking(move || builtins.load_builtins(&loader))
            .await
            .expect("join")
            .expect("the built-in plugins");
        let setup = Setup {
            client: h.client.clone(),
            registry,
            policy: OutputPolicy::default(),
            config: ControllerConfig {
                namespaces: vec![h.namespace.clone()],
                max_backoff: Duration::from_secs(4),
                ..ControllerConfig::default()
            },
            metrics: Arc::new(Metrics::new()),
            reporter: Reporter {
                controller: "portfolio-operator".into(),
                instance: Some(format!("e2e-{}", h.namespace)),
            },
            health: Arc::new(Health::new()),
            apps: None,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(setup, async move {
            let _ = stopped.await;
        }));
        AppController {
            stop: Some(stop),
            task,
            _runtime: runtime,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(portfolio_e2e::PATIENCE, &mut self.task).await;
    }
}

/// Write a migration's status as its controller would, for its current spec.
async fn set_phase(h: &Harness, name: &str, phase: &str, last_error: Option<&str>) {
    let migrations = h.api::<DatabaseMigration>();
    let current = migrations.get(name).await.expect("migration");
    let status = json!({"status": {
        "phase": phase,
        "observedGeneration": current.metadata.generation,
        "lastError": last_error,
    }});
    migrations
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
}

async fn image(h: &Harness) -> Option<String> {
    let deployment = h.api::<Deployment>().get_opt("shop").await.ok()??;
    deployment
        .spec?
        .template
        .spec?
        .containers
        .first()?
        .image
        .clone()
}

async fn log_level(h: &Harness) -> Option<String> {
    let config: ConfigMap = h.api().get_opt("shop-config").await.ok()??;
    config.data?.get("LOG_LEVEL").cloned()
}

async fn gates(h: &Harness) -> Vec<MigrationGate> {
    let app: Option<PortfolioApp> = h.apps().get_opt("shop").await.ok().flatten();
    app.and_then(|a| a.status)
        .map(|s| s.migrations)
        .unwrap_or_default()
}

fn gate(name: &str, phase: &str, ready: bool) -> MigrationGate {
    MigrationGate {
        name: name.into(),
        phase: phase.into(),
        ready,
    }
}

/// Wait until the app's `status.migrations` is `want`.
async fn await_gates(h: &Harness, want: &[MigrationGate]) {
    h.eventually(&format!("status.migrations is {want:?}"), || async {
        (gates(h).await == want).then_some(())
    })
    .await;
}

/// Nothing of the new spec reaches the cluster for a while.
async fn assert_still_v1(h: &Harness) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(image(h).await.as_deref(), Some("example/shop:1"));
    assert_eq!(
        log_level(h).await.as_deref(),
        Some("info"),
        "the ConfigMap is held too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expand_migration_holds_a_new_template_until_it_succeeds() {
    let h = Harness::new("gate-expand").await;
    let operator = AppController::start(&h).await;
    h.apply_yaml(&shop("example/shop:1", "info", "")).await;
    h.await_condition("shop", "Ready", "True", Some("Available"))
        .await;

    // A pending migration alone holds nothing: it is reported.
    h.apply_yaml(&migration(
        "shop-v2-expand",
        "expand",
        "  appRef:\n    name: shop\n",
    ))
    .await;
    await_gates(&h, &[gate("shop-v2-expand", "Pending", false)]).await;
    let (ready, reason, _) = h.condition("shop", "Ready").await.expect("Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "Available"));

    // A new image and config: held, the old template and config stay.
    h.apply_yaml(&shop("example/shop:2", "debug", "")).await;
    let message = h
        .await_condition("shop", "Progressing", "True", Some("MigrationsPending"))
        .await;
    assert_eq!(
        message,
        "the new pod template waits for expand migration shop-v2-expand (Pending)"
    );
    let app = h.apps().get("shop").await.expect("app");
    let status = app.status.clone().expect("status");
    assert_eq!(
        status.observed_generation, app.metadata.generation,
        "the held spec is the observed one"
    );
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    assert_eq!(
        ready.map(|c| (c.status.as_str(), c.reason.as_str())),
        Some(("False", "MigrationsPending"))
    );
    assert_still_v1(&h).await;

    set_phase(&h, "shop-v2-expand", "Running", None).await;
    h.eventually("the message follows the migration's phase", || async {
        let (_, reason, message) = h.condition("shop", "Progressing").await?;
        (reason == "MigrationsPending" && message.contains("shop-v2-expand (Running)"))
            .then_some(())
    })
    .await;
    await_gates(&h, &[gate("shop-v2-expand", "Running", false)]).await;
    assert_still_v1(&h).await;

    // Expand succeeded: the new template and config go out.
    set_phase(&h, "shop-v2-expand", "Succeeded", None).await;
    h.eventually("v2 is applied", || async {
        (image(&h).await? == "example/shop:2" && log_level(&h).await? == "debug").then_some(())
    })
    .await;
    h.eventually("v2 is available", || async {
        let app = h.apps().get("shop").await.ok()?;
        let status = app.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (status.observed_generation == app.metadata.generation
            && ready.status == "True"
            && ready.reason == "Available")
            .then_some(())
    })
    .await;
    await_gates(&h, &[gate("shop-v2-expand", "Succeeded", true)]).await;
    operator.stop().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_expand_degrades_the_app_and_keeps_the_old_template() {
    let h = Harness::new("gate-failed").await;
    let operator = AppController::start(&h).await;
    h.apply_yaml(&shop("example/shop:1", "info", "")).await;
    h.await_condition("shop", "Ready", "True", Some("Available"))
        .await;
    h.apply_yaml(&migration(
        "shop-v2-expand",
        "expand",
        "  appRef:\n    name: shop\n",
    ))
    .await;
    let error = "V2__orders.sql: ERROR: column \"total\" of relation \"orders\" already exists";
    set_phase(&h, "shop-v2-expand", "Failed", Some(error)).await;

    h.apply_yaml(&shop("example/shop:2", "debug", "")).await;
    let message = h
        .await_condition("shop", "Degraded", "True", Some("MigrationFailed"))
        .await;
    assert!(
        message.starts_with(&format!("expand migration shop-v2-expand failed: {error}")),
        "{message}"
    );
    let (ready, reason, _) = h.condition("shop", "Ready").await.expect("Ready");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "MigrationFailed")
    );
    await_gates(&h, &[gate("shop-v2-expand", "Failed", false)]).await;
    assert_still_v1(&h).await;

    // A fixed migration (a new spec) is pending until it has run again.
    h.apply_yaml(&migration(
        "shop-v2-expand",
        "expand",
        "  appRef:\n    name: shop\n  image: example/flyway-fixed:1\n",
    ))
    .await;
    h.await_condition("shop", "Progressing", "True", Some("MigrationsPending"))
        .await;
    h.await_condition("shop", "Degraded", "False", None).await;
    assert_still_v1(&h).await;
    set_phase(&h, "shop-v2-expand", "Succeeded", None).await;
    h.eventually("v2 is applied", || async {
        (image(&h).await? == "example/shop:2").then_some(())
    })
    .await;
    h.await_condition("shop", "Ready", "True", Some("Available"))
        .await;
    operator.stop().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_app_gets_no_children_until_its_listed_expand_succeeded() {
    let h = Harness::new("gate-new").await;
    let operator = AppController::start(&h).await;
    // A dry run naming the app is shown, and never holds anything.
    h.apply_yaml(&migration(
        "shop-check",
        "expand",
        "  appRef:\n    name: shop\n  dryRun: true\n",
    ))
    .await;
    // The app lists a migration that does not exist yet: it may be an expand one.
    h.apply_yaml(&shop(
        "example/shop:1",
        "info",
        "  migrations: [shop-v1-expand]\n",
    ))
    .await;
    let message = h
        .await_condition("shop", "Progressing", "True", Some("MigrationsPending"))
        .await;
    assert_eq!(
        message,
        "the new pod template waits for expand migration shop-v1-expand (Missing)"
    );
    await_gates(
        &h,
        &[
            gate("shop-check", "Pending", true),
            gate("shop-v1-expand", "Missing", false),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(image(&h).await, None, "no Deployment");
    assert_eq!(log_level(&h).await, None, "no ConfigMap");

    h.apply_yaml(&migration("shop-v1-expand", "expand", ""))
        .await;
    await_gates(
        &h,
        &[
            gate("shop-check", "Pending", true),
            gate("shop-v1-expand", "Pending", false),
        ],
    )
    .await;
    assert_eq!(image(&h).await, None, "still no Deployment");
    set_phase(&h, "shop-v1-expand", "Succeeded", None).await;
    h.await_condition("shop", "Ready", "True", Some("Available"))
        .await;
    assert_eq!(image(&h).await.as_deref(), Some("example/shop:1"));
    operator.stop().await;
    h.cleanup().await;
}

/// What `contract_may_start` says now, as the migration controller would ask it.
async fn may_contract_start(h: &Harness) -> Result<(), String> {
    let app = h.apps().get_opt("shop").await.expect("app");
    let migrations = h
        .api::<DatabaseMigration>()
        .list(&Default::default())
        .await
        .expect("migrations");
    let migrations: Vec<Arc<DatabaseMigration>> =
        migrations.items.into_iter().map(Arc::new).collect();
    gates::contract_may_start(app.as_ref(), &migrations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_may_start_only_after_a_completed_rollout() {
    let h = Harness::new("gate-contract").await;
    if !h.simulates_workloads() {
        eprintln!("skipped: needs the emulator's never-ready images");
        h.cleanup().await;
        return;
    }
    let operator = AppController::start(&h).await;
    h.apply_yaml(&migration(
        "shop-contract",
        "contract",
        "  appRef:\n    name: shop\n",
    ))
    .await;
    assert_eq!(
        may_contract_start(&h).await,
        Err("waiting for its PortfolioApp, which does not exist".to_owned())
    );
    h.apply_yaml(&shop("example/shop:1", "info", "")).await;
    h.await_condition("shop", "Ready", "True", Some("Available"))
        .await;
    h.eventually("contract may start under v1", || async {
        may_contract_start(&h).await.ok()
    })
    .await;

    // v2 with its expand migration: held, then rolled out, and only then
    // may contract start. Checks read contract_may_start first, so a Yes
    // followed by an incomplete rollout is a real violation.
    h.apply_yaml(&migration(
        "shop-v2-expand",
        "expand",
        "  appRef:\n    name: shop\n",
    ))
    .await;
    h.apply_yaml(&shop("example/shop:2", "debug", "")).await;
    let held = h
        .eventually("contract waits for the held rollout", || async {
            may_contract_start(&h)
                .await
                .err()
                .filter(|e| e.contains("held"))
        })
        .await;
    assert!(held.contains("shop-v2-expand (Pending)"), "{held}");
    set_phase(&h, "shop-v2-expand", "Succeeded", None).await;
    let deployments = h.api::<Deployment>();
    h.eventually("contract may start under v2", || async {
        let answer = may_contract_start(&h).await;
        let deployment = deployments.get("shop").await.ok()?;
        if answer.is_ok() {
            assert!(
                rolled_out(&deployment, "example/shop:2"),
                "contract may start before the rollout completed: {:?}",
                deployment.status
            );
        }
        answer.ok()
    })
    .await;

    // v3 never becomes ready and its rollout fails: contract may not start.
    deployments
        .patch(
            "shop",
            &PatchParams::apply("e2e-deadline"),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "shop"},
                "spec": {"progressDeadlineSeconds": 1},
            })),
        )
        .await
        .expect("progress deadline");
    h.apply_yaml(&shop("example/never-ready:3", "debug", ""))
        .await;
    let failed = h
        .eventually("contract waits for a fixed rollout", || async {
            may_contract_start(&h)
                .await
                .err()
                .filter(|e| e.contains("failed"))
        })
        .await;
    assert!(
        failed.starts_with("the rollout of PortfolioApp shop failed: "),
        "{failed}"
    );
    assert!(
        failed.ends_with("; contract will not start until it is fixed"),
        "{failed}"
    );
    operator.stop().await;
    h.cleanup().await;
}

/// Whether the Deployment has rolled out `image` completely: its controller
/// saw the current generation, every replica is updated and available, no old pod is left.
fn rolled_out(deployment: &Deployment, image: &str) -> bool {
    let (Some(spec), Some(status)) = (&deployment.spec, &deployment.status) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    let current_image = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref());
    current_image == Some(image)
        && status.observed_generation == deployment.metadata.generation
        && status.updated_replicas == Some(want)
        && status.ready_replicas == Some(want)
        && status.available_replicas == Some(want)
        && status.replicas == Some(want)
}

/// Whether the migration reached `phase` for its current spec.
fn reached(migration: &DatabaseMigration, phase: &str) -> bool {
    let Some(status) = &migration.status else {
        return false;
    };
    let current = serde_json::to_value(status.phase).ok();
    current == Some(json!(phase)) && status.observed_generation == migration.metadata.generation
}

/// Whether the migration started changing the schema: it runs or has run
/// (planning changes nothing).
fn started(migration: &DatabaseMigration) -> bool {
    let phase = migration
        .status
        .as_ref()
        .and_then(|s| serde_json::to_value(s.phase).ok());
    matches!(phase, Some(p) if p == json!("Running") || p == json!("Succeeded"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expand_then_rollout_then_contract() {
    let mut h = Harness::new("choreography").await;
    if !h.simulates_workloads() {
        eprintln!("skipped: needs the emulator's simulated Jobs and Deployments");
        h.cleanup().await;
        return;
    }
    h.start_operator().await;
    h.apply_yaml(SECRET).await;
    h.apply_yaml(&shop("example/shop:1", "info", "")).await;
    h.await_condition("shop", "Ready", "True", Some("Available"))
        .await;

    h.apply_yaml(&migration(
        "shop-v2-expand",
        "expand",
        "  appRef:\n    name: shop\n",
    ))
    .await;
    h.apply_yaml(&migration(
        "shop-v2-contract",
        "contract",
        "  appRef:\n    name: shop\n",
    ))
    .await;
    h.apply_yaml(&shop("example/shop:2", "debug", "")).await;

    // Watch the order while the story runs. Each check reads the later
    // event first, so it can miss a violation but never invent one: v2 on
    // the Deployment means expand had succeeded; a started contract means
    // the rollout had completed.
    let migrations = h.api::<DatabaseMigration>();
    let deployments = h.api::<Deployment>();
    let mut violations = Vec::new();
    let deadline = tokio::time::Instant::now() + portfolio_e2e::PATIENCE;
    loop {
        if image(&h).await.as_deref() == Some("example/shop:2") {
            let expand = migrations.get("shop-v2-expand").await.expect("expand");
            if !reached(&expand, "Succeeded") {
                violations.push(format!(
                    "v2 was applied while expand was {:?}",
                    expand.status
                ));
            }
        }
        let contract = migrations.get("shop-v2-contract").await.expect("contract");
        if started(&contract) {
            let deployment = deployments.get("shop").await.expect("deployment");
            if !rolled_out(&deployment, "example/shop:2") {
                violations.push(format!(
                    "contract started before the rollout completed: {:?}",
                    deployment.status
                ));
            }
        }
        if reached(&contract, "Succeeded") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the contract migration to succeed: {:?}",
            contract.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(violations.is_empty(), "{violations:#?}");
    h.await_condition("shop", "Ready", "True", Some("Available"))
        .await;
    await_gates(
        &h,
        &[
            gate("shop-v2-contract", "Succeeded", true),
            gate("shop-v2-expand", "Succeeded", true),
        ],
    )
    .await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollout_never_starts_contract() {
    let mut h = Harness::new("choreography-fail").await;
    if !h.simulates_workloads() {
        eprintln!("skipped: needs the emulator's never-ready images");
        h.cleanup().await;
        return;
    }
    h.start_operator().await;
    h.apply_yaml(SECRET).await;
    h.apply_yaml(&shop("example/shop:1", "info", "")).await;
    h.await_condition("shop", "Ready", "True", Some("Available"))
        .await;
    // A short progress deadline, set by someone other than the operator
    // (its apply leaves fields it does not set alone).
    h.api::<Deployment>()
        .patch(
            "shop",
            &PatchParams::apply("e2e-deadline"),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "shop"},
                "spec": {"progressDeadlineSeconds": 2},
            })),
        )
        .await
        .expect("progress deadline");

    h.apply_yaml(&migration(
        "shop-v2-expand",
        "expand",
        "  appRef:\n    name: shop\n",
    ))
    .await;
    h.apply_yaml(&migration(
        "shop-v2-contract",
        "contract",
        "  appRef:\n    name: shop\n",
    ))
    .await;
    // The emulator never makes this image ready.
    h.apply_yaml(&shop("example/never-ready:2", "debug", ""))
        .await;

    let migrations = h.api::<DatabaseMigration>();
    h.eventually("expand succeeded", || async {
        reached(&migrations.get("shop-v2-expand").await.ok()?, "Succeeded").then_some(())
    })
    .await;
    h.await_condition("shop", "Degraded", "True", Some("RolloutFailed"))
        .await;
    // However long one waits, contract does not start, and says why.
    for _ in 0..30 {
        let contract = migrations.get("shop-v2-contract").await.expect("contract");
        assert!(
            !started(&contract),
            "contract started after a failed rollout: {:?}",
            contract.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.eventually("the contract migration says why it waits", || async {
        let status = migrations.get("shop-v2-contract").await.ok()?.status?;
        let mut said: Vec<String> = status
            .conditions
            .iter()
            .map(|c| c.message.clone())
            .collect();
        said.extend(status.last_error.clone());
        said.iter()
            .any(|m| m.contains("the rollout of PortfolioApp shop failed"))
            .then_some(())
    })
    .await;
    h.cleanup().await;
}
