//! The long-running commands: `run` against a cluster, and `dev` on an
//! emulated one.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portfolio_operator::policy::OutputPolicy;

use super::runtime::shutdown_signal;
use super::{DevArgs, RunArgs};

/// `run`: the operator against the cluster of the kubeconfig (or in-cluster).
pub(super) async fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.leader_elect {
        // Refuse impossible settings before connecting to anything.
        portfolio_operator::leader::check_timing(
            args.leader_elect_lease_seconds,
            args.leader_elect_grace_seconds,
        )?;
    }
    let runtime = args.runtime.runtime()?;
    let kubeconfig = args.kubeconfig.as_deref();
    let config = portfolio_operator::client::config(kubeconfig).await?;
    let client = portfolio_operator::client::client(config.clone(), kubeconfig)?;
    let leader_election = args
        .leader_elect
        .then(|| portfolio_operator::leader::LeaderElection {
            namespace: args
                .leader_elect_namespace
                .clone()
                .unwrap_or_else(|| args.plugin_namespace.clone()),
            lease_name: args.leader_elect_lease.clone(),
            identity: portfolio_operator::leader::default_identity(),
            lease_seconds: args.leader_elect_lease_seconds,
            grace_seconds: args.leader_elect_grace_seconds,
            config,
        });
    let mut policy = OutputPolicy::default();
    for kind in args.allow_kind {
        policy = policy.allow_kind(kind).context("--allow-kind")?;
    }
    policy
        .kinds_mut()
        .discover(&client)
        .await
        .context("--allow-kind")?;
    // The locks are where the leadership Lease is: the operator's namespace.
    let migration_lock_namespace = args
        .migration_lock_namespace
        .clone()
        .or_else(|| args.leader_elect_namespace.clone())
        .unwrap_or_else(|| args.plugin_namespace.clone());
    let options = portfolio_operator::operator::OperatorOptions {
        controller: portfolio_operator::controller::ControllerConfig {
            namespaces: watched_namespaces(&args.namespace),
            max_concurrent_reconciles: args.max_concurrent_reconciles.max(1),
            cleanup_timeout: Duration::from_secs(args.cleanup_timeout_seconds),
            ..Default::default()
        },
        policy,
        plugin_dir: args.plugin_dir,
        plugin_namespace: (!args.no_plugin_configmaps).then_some(args.plugin_namespace),
        ops_addr: Some(args.ops_addr),
        instance: std::env::var("POD_NAME").unwrap_or_else(|_| "portfolio-operator".into()),
        leader_election,
        migrations: portfolio_operator::controller::migration::MigrationConfig {
            lock_namespace: migration_lock_namespace,
            retry_backoff: Duration::from_secs(args.migration_retry_backoff_seconds.max(1)),
            max_concurrent_reconciles: args.max_concurrent_reconciles.max(1),
            namespaces: watched_namespaces(&args.namespace),
            ..Default::default()
        },
    };
    let metrics = Arc::new(portfolio_operator::controller::metrics::Metrics::new());
    portfolio_operator::operator::run(options, client, runtime, metrics, shutdown_signal())
        .await
        .context("the operator failed")
}

/// `dev`: the emulator, the CRDs, the operator and the live view.
pub(super) async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let runtime = args.runtime.runtime()?;
    let options = portfolio_operator::dev::DevOptions {
        port: args.port,
        kubeconfig: args.kubeconfig,
        apply: args.apply,
        plugin_dir: args.plugin_dir,
        plugin_namespace: args.plugin_namespace,
        ops_addr: args.ops_addr,
        ..Default::default()
    };
    portfolio_operator::dev::run(options, runtime, shutdown_signal(), std::io::stdout())
        .await
        .context("dev stopped")
}

/// The namespaces of `--namespace`, each once, in order: the watches and
/// the log name each once.
fn watched_namespaces(given: &[String]) -> Vec<String> {
    let mut namespaces = given.to_vec();
    namespaces.sort();
    namespaces.dedup();
    namespaces
}
