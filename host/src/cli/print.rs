//! The commands that print objects: `render`, `crd` and `manifests`.

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use portfolio_operator::decorate::DesiredObject;
use portfolio_operator::manifests::InstallOptions;
use portfolio_operator::policy::OutputPolicy;
use portfolio_operator::render::{Renderer, to_json, to_yaml};

use super::{Cli, Command, ManifestsArgs, OutputFormat, RenderArgs};

/// `render`: the objects the plugins produce for the files.
pub(super) async fn render(args: RenderArgs) -> anyhow::Result<()> {
    let runtime = args.runtime.runtime()?;
    let registry = super::plugin::registry(&runtime, args.plugin_dir).await?;
    let renderer = Renderer::new(registry, OutputPolicy::default());
    let objects = renderer.render_paths(&args.files).await?;
    let text = match args.output {
        OutputFormat::Yaml => to_yaml(objects.iter().map(DesiredObject::object)),
        OutputFormat::Json => to_json(objects.iter().map(DesiredObject::object)),
    }
    .map_err(|e| anyhow::anyhow!("cannot format the objects: {e}"))?;
    write_stdout(&text)
}

/// `crd`: the CustomResourceDefinitions.
pub(super) fn crd() -> anyhow::Result<()> {
    let mut text = String::new();
    for crd in portfolio_operator::crds::all() {
        text.push_str("---\n");
        text.push_str(
            &portfolio_operator::crds::to_yaml(&crd)
                .map_err(|e| anyhow::anyhow!("cannot format the CRDs: {e}"))?,
        );
    }
    write_stdout(&text)
}

/// `manifests`: what installs the operator.
pub(super) fn manifests(args: ManifestsArgs) -> anyhow::Result<()> {
    let mut kinds = portfolio_operator::kinds::ChildKinds::default();
    for kind in args.allow_kind {
        kinds.add(kind).context("--allow-kind")?;
    }
    let objects = portfolio_operator::manifests::objects(&InstallOptions {
        namespace: args.namespace,
        watch_namespaces: args.watch_namespace,
        replicas: args.replicas,
        kinds,
        plugin_namespace: args.plugin_namespace,
        leader_election: !args.no_leader_elect,
        run_flags: args.run.pairs(),
        ..InstallOptions::new(args.image)
    })?;
    check_run_args(&objects)?;
    let text = match args.output {
        OutputFormat::Yaml => to_yaml(&objects),
        OutputFormat::Json => to_json(&objects),
    }
    .map_err(|e| anyhow::anyhow!("cannot format the manifests: {e}"))?;
    write_stdout(&text)
}

/// Parse the Deployment's arguments as `run` will and make its checks, so
/// that flags `run` would refuse at start are refused here instead.
fn check_run_args(objects: &[serde_json::Value]) -> anyhow::Result<()> {
    let args = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .and_then(|d| d["spec"]["template"]["spec"]["containers"][0]["args"].as_array())
        .context("the manifests have no operator Deployment")?;
    let args = args.iter().filter_map(serde_json::Value::as_str);
    let cli = Cli::try_parse_from(std::iter::once("portfolio-operator").chain(args))
        .map_err(|e| anyhow::anyhow!("the operator would refuse its arguments: {e}"))?;
    let Some(Command::Run(run)) = cli.command else {
        anyhow::bail!("the operator's arguments do not start with `run`");
    };
    if run.leader_elect {
        portfolio_operator::leader::check_timing(
            run.leader_elect_lease_seconds,
            run.leader_elect_grace_seconds,
        )?;
    }
    run.runtime.check()
}

/// Write to standard output; a closed pipe (`| head`) is not an error worth a message.
pub(super) fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(error).context("cannot write to standard output"),
    }
}
