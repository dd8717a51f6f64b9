//! The plugin commands: `plugin inspect` and `plugin list`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use portfolio_operator::plugin::{LoadOptions, Plugin, Runtime};
use portfolio_operator::registry::{Registry, load_directory};

use super::print::write_stdout;
use super::{InspectArgs, InspectFormat, ListArgs};

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

/// `plugin list`: the active plugins and where each comes from.
pub(super) async fn list(args: ListArgs) -> anyhow::Result<()> {
    let runtime = args.runtime.runtime()?;
    let registry = registry(&runtime, args.plugin_dir).await?;
    let mut text = String::new();
    for entry in registry.entries() {
        let plugin = &entry.plugin;
        text.push_str(&format!(
            "{:<40} {:<18} {:<10} {}\n",
            plugin.id().to_string(),
            plugin.world().as_str(),
            entry.source.to_string(),
            entry.key
        ));
    }
    write_stdout(&text)
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
