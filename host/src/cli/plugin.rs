//! The plugin commands: `plugin inspect` and `plugin list`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portfolio_operator::plugin::{LoadOptions, Plugin, Runtime};
use portfolio_operator::registry::{Registry, configmaps, load_directory};

use super::print::write_stdout;
use super::{DEFAULT_PLUGIN_NAMESPACE, InspectArgs, InspectFormat, ListArgs};

/// The built-ins, plus the plugins of `plugin_dir` if given.
pub(super) async fn registry(
    runtime: &Runtime,
    plugin_dir: Option<PathBuf>,
) -> anyhow::Result<Arc<Registry>> {
    let registry = Arc::new(Registry::new());
    let loader = runtime.clone();
    let builtins = Arc::clone(&registry);
    tokio::task::spawn_blocking(move || builtins.load_builtins(&loader))
        .await
        .context("loading the built-in plugins stopped")??;
    if let Some(dir) = plugin_dir {
        load_directory(dir, runtime.clone(), Arc::clone(&registry)).await?;
    }
    Ok(registry)
}

/// `plugin inspect`: what a component is.
pub(super) async fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let runtime = args.runtime.runtime()?;
    let plugin = runtime
        .load_async(bytes, LoadOptions::default())
        .await
        .with_context(|| format!("{}: not a usable plugin", args.file.display()))?;
    let text = match args.output {
        InspectFormat::Text => describe_text(&plugin),
        InspectFormat::Json => {
            let mut text = serde_json::to_string_pretty(&describe_json(&plugin))?;
            text.push('\n');
            text
        }
    };
    write_stdout(&text)
}

/// `plugin list`: the active plugins and where each comes from, then the
/// uploads that were refused and why.
pub(super) async fn list(args: ListArgs) -> anyhow::Result<()> {
    let runtime = args.runtime.runtime()?;
    let registry = registry(&runtime, args.plugin_dir).await?;
    // Reading a cluster is asked for by naming one or a namespace in it;
    // otherwise nothing leaves this machine.
    if args.kubeconfig.is_some() || args.plugin_namespace.is_some() {
        let namespace = args
            .plugin_namespace
            .unwrap_or_else(|| DEFAULT_PLUGIN_NAMESPACE.to_owned());
        load_cluster(args.kubeconfig.as_deref(), &namespace, &runtime, &registry).await?;
    }
    write_stdout(&table(&registry))
}

/// Longest wait for the cluster to connect or to answer: a one-shot command
/// says the cluster is unreachable instead of hanging.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(10);

/// Load the plugin ConfigMaps of `namespace` into `registry`, with the
/// checks the operator makes.
async fn load_cluster(
    kubeconfig: Option<&Path>,
    namespace: &str,
    runtime: &Runtime,
    registry: &Registry,
) -> anyhow::Result<()> {
    let mut config = portfolio_operator::client::config(kubeconfig).await?;
    config.connect_timeout = Some(CLUSTER_TIMEOUT);
    config.read_timeout = Some(CLUSTER_TIMEOUT);
    config.write_timeout = Some(CLUSTER_TIMEOUT);
    // Retries of 429/503 back off for longer than a person waits.
    config.default_retry = false;
    let server = config.cluster_url.clone();
    let client = portfolio_operator::client::client(config, kubeconfig)?;
    configmaps::load_namespace(client, namespace, runtime, registry)
        .await
        .with_context(|| {
            format!("cannot list the plugin ConfigMaps of namespace {namespace} at {server}")
        })
}

/// The active plugins, then the refused uploads (if any).
fn table(registry: &Registry) -> String {
    let mut text = format!(
        "{:<40} {:<18} {:<10} {}\n",
        "PLUGIN", "WORLD", "SOURCE", "FROM"
    );
    for entry in registry.entries() {
        let plugin = &entry.plugin;
        text.push_str(&format!(
            "{:<40} {:<18} {:<10} {}\n",
            plugin.id().to_string(),
            plugin.world().as_str(),
            entry.source.as_str(),
            entry.key
        ));
    }
    let rejections = registry.rejections();
    if !rejections.is_empty() {
        text.push_str(&format!(
            "\n{:<40} {:<20} {:<10} {}\n",
            "REFUSED", "REASON", "SOURCE", "WHY"
        ));
        for rejection in rejections {
            let kept = rejection
                .kept
                .map(|id| format!("; {id} stays active"))
                .unwrap_or_default();
            text.push_str(&format!(
                "{:<40} {:<20} {:<10} the plugin {}{kept}\n",
                rejection.key,
                rejection.reason.as_str(),
                rejection.source.as_str(),
                rejection.message,
            ));
        }
    }
    text
}

fn describe_text(plugin: &Plugin) -> String {
    let info = plugin.info();
    let kinds = if info.kinds.is_empty() {
        "none".to_owned()
    } else {
        info.kinds
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let schema = match &info.settings_schema {
        None => "none".to_owned(),
        Some(schema) => serde_json::to_string_pretty(schema).unwrap_or_default(),
    };
    format!(
        "name:            {}\nversion:         {}\ndescription:     {}\nworld:           {} ({}@{})\ndigest:          {}\nsize:            {} bytes\nkinds:           {}\nsettings schema: {}\n",
        info.id.name,
        info.id.version,
        info.description,
        plugin.world(),
        plugin.world().interface(),
        info.wit_version,
        plugin.digest(),
        plugin.size(),
        kinds,
        schema,
    )
}

fn describe_json(plugin: &Plugin) -> serde_json::Value {
    let info = plugin.info();
    serde_json::json!({
        "name": info.id.name,
        "version": info.id.version.to_string(),
        "description": info.description,
        "world": plugin.world().as_str(),
        "witVersion": info.wit_version.to_string(),
        "digest": plugin.digest().to_string(),
        "size": plugin.size(),
        "kinds": info.kinds.iter().map(|k| serde_json::json!({"apiVersion": k.api_version, "kind": k.kind})).collect::<Vec<_>>(),
        "settingsSchema": info.settings_schema,
    })
}
