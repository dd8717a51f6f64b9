//! `--version`: the operator's version, the plugin contract it speaks, and
//! the built-in plugins it embeds, each loaded with every check the operator
//! makes (so a build whose built-ins do not load says so here).

use anyhow::Context;
use portfolio_operator::builtin::BUILTINS;
use portfolio_operator::plugin::{LoadOptions, Runtime, RuntimeConfig, WIT_VERSION};

use super::print::write_stdout;

/// Print what this build is.
pub(super) async fn print() -> anyhow::Result<()> {
    let text = tokio::task::spawn_blocking(describe)
        .await
        .context("loading the built-in plugins stopped")??;
    write_stdout(&text)
}

fn describe() -> anyhow::Result<String> {
    // No compile cache: nothing is written, so this works on a read-only
    // file system and as any user.
    let runtime =
        Runtime::new(RuntimeConfig::default()).context("cannot start the plugin runtime")?;
    let mut text = format!(
        "portfolio-operator {}\nplugin contract: portfolio:plugin@{WIT_VERSION}\nbuilt-in plugins:\n",
        env!("CARGO_PKG_VERSION")
    );
    for builtin in BUILTINS {
        let plugin = runtime
            .load(builtin.bytes, &LoadOptions::default())
            .with_context(|| format!("the built-in plugin {} does not load", builtin.file))?;
        text.push_str(&format!(
            "  {:<28} {:<18} {}\n",
            plugin.id().to_string(),
            plugin.world().as_str(),
            plugin.digest()
        ));
    }
    Ok(text)
}
