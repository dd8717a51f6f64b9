//! The commands that print objects: `render`, `crd` and `manifests`.

use std::io::Write;

use anyhow::Context;
use portfolio_operator::decorate::DesiredObject;
use portfolio_operator::policy::OutputPolicy;
use portfolio_operator::render::{Renderer, to_json, to_yaml};

use super::{ManifestsArgs, OutputFormat, RenderArgs};

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
    let objects =
        portfolio_operator::manifests::objects(&portfolio_operator::manifests::InstallOptions {
            image: args.image,
            namespace: args.namespace,
            watch_namespace: args.watch_namespace,
            replicas: args.replicas,
            kinds,
        })?;
    let text = match args.output {
        OutputFormat::Yaml => to_yaml(&objects),
        OutputFormat::Json => to_json(&objects),
    }
    .map_err(|e| anyhow::anyhow!("cannot format the manifests: {e}"))?;
    write_stdout(&text)
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
