//! The plugin authoring commands: `plugin new`, `plugin test` and `plugin pack`
//! (the work is in the library's `kit` module; here are flags and printing).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use portfolio_operator::kit::cases::{Outcome, Tester};
use portfolio_operator::kit::pack::{self, Compression, PackOptions};
use portfolio_operator::kit::scaffold::{self, NewPlugin, SdkSource};
use portfolio_operator::plugin::{LimitsOverride, World};
use portfolio_operator::policy::OutputPolicy;

use super::print::write_stdout;
use super::{CompressArg, NewArgs, PackArgs, TestArgs, WorldArg};

/// `plugin new`: write the crate and say what to do next.
pub(super) fn new(args: NewArgs) -> anyhow::Result<()> {
    let sdk = match (args.sdk_path, args.sdk_git) {
        (Some(path), _) => SdkSource::Path(path),
        (None, Some(url)) => SdkSource::Git {
            url,
            rev: args.sdk_rev,
        },
        (None, None) => match scaffold::build_checkout() {
            Some(root) => SdkSource::Path(root),
            None => bail!(
                "the checkout this binary was built from is not on this machine; pass --sdk-path with a checkout of portfolio-operator, or --sdk-git with its repository URL (and --sdk-rev)"
            ),
        },
    };
    let world = match args.world {
        WorldArg::Generator => World::Generator,
        WorldArg::MigrationStrategy => World::MigrationStrategy,
    };
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let plugin = NewPlugin {
        name: args.name,
        world,
        dir: dir.clone(),
        sdk,
    };
    let files = scaffold::create(&plugin)?;
    let crate_file = plugin.name.replace('-', "_");
    let mut text = format!("created {} ({} plugin):\n", dir.display(), world.as_str());
    for file in &files {
        text.push_str(&format!("  {}\n", file.path.display()));
    }
    text.push_str(&format!(
        "\nnext:\n  cd {dir}\n  cargo test\n  cargo build --release --target wasm32-wasip2\n  portfolio-operator plugin test target/wasm32-wasip2/release/{crate_file}.wasm --cases cases --update\n  portfolio-operator plugin pack target/wasm32-wasip2/release/{crate_file}.wasm | kubectl apply -f -\n",
        dir = dir.display()
    ));
    write_stdout(&text)
}

/// `plugin test`: one line per case, a diff per failing case, a summary;
/// an error (non-zero exit) when any case failed.
pub(super) async fn test(args: TestArgs) -> anyhow::Result<()> {
    let bytes = read(&args.file)?;
    let limits = match &args.limits {
        None => LimitsOverride::default(),
        Some(path) => {
            let text = read_text(path)?;
            serde_saphyr::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: not valid limits: {e}", path.display()))?
        }
    };
    let mut policy = OutputPolicy::default();
    for kind in args.allow_kind {
        policy = policy.allow_kind(kind).context("--allow-kind")?;
    }
    let runtime = args.runtime.runtime()?;
    let tester = Tester::new(runtime, &args.file, bytes, policy, limits).await?;
    let results = tester.run(&args.cases, args.update).await?;
    let plugin = tester.plugin();
    let mut text = format!(
        "{} ({}, {}) on {}\n",
        plugin.id(),
        plugin.world().as_str(),
        plugin.digest(),
        args.cases.display()
    );
    let mut failed = 0;
    for result in &results {
        let name = &result.name;
        match &result.outcome {
            Outcome::Passed => text.push_str(&format!("ok       {name}\n")),
            Outcome::Recorded => text.push_str(&format!("recorded {name}\n")),
            Outcome::Failed { diff } => {
                text.push_str(&format!("FAILED   {name}: the output differs\n{diff}\n"));
            }
            Outcome::Unrecorded { actual } => {
                text.push_str(&format!(
                    "FAILED   {name}: no expectation; the plugin returns the following (record it with --update, then review it):\n{actual}\n"
                ));
            }
            Outcome::Broken(error) => text.push_str(&format!("FAILED   {name}: {error}\n")),
        }
        if result.outcome.is_failure() {
            failed += 1;
        }
    }
    let passed = results.len() - failed;
    text.push_str(&format!("\n{passed} passed, {failed} failed\n"));
    write_stdout(&text)?;
    if failed > 0 {
        bail!("{failed} of {} cases failed", results.len());
    }
    Ok(())
}

/// `plugin pack`: the ConfigMap on standard output, and nothing there unless
/// every check passed.
pub(super) async fn pack(args: PackArgs) -> anyhow::Result<()> {
    let bytes = read(&args.file)?;
    let options = PackOptions {
        namespace: args.namespace,
        name: args.name,
        settings: args.settings.as_deref().map(read_text).transpose()?,
        limits: args.limits.as_deref().map(read_text).transpose()?,
        compression: match args.compress {
            CompressArg::Auto => Compression::Auto,
            CompressArg::Always => Compression::Always,
            CompressArg::Never => Compression::Never,
        },
    };
    let runtime = args.runtime.runtime()?;
    let packed = pack::pack(&runtime, bytes, &options)
        .await
        .with_context(|| format!("{}: cannot be packed", args.file.display()))?;
    let yaml = packed.to_yaml()?;
    if !packed.fits_client_side_apply() {
        eprintln!(
            "warning: this ConfigMap is larger than client-side `kubectl apply` can record in its last-applied annotation; apply it with `kubectl apply --server-side -f -`"
        );
    }
    eprintln!(
        "{} ({}): {} bytes{} in ConfigMap {}/{}",
        packed.plugin.id(),
        packed.plugin.digest(),
        packed.size,
        if packed.compressed { ", gzip" } else { "" },
        packed
            .config_map
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default(),
        packed
            .config_map
            .metadata
            .name
            .as_deref()
            .unwrap_or_default(),
    );
    write_stdout(&yaml)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
