//! Commands and flags, and what each command does.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use portfolio_operator::decorate::DesiredObject;
use portfolio_operator::plugin::{Limits, LoadOptions, Plugin, Runtime, RuntimeConfig};
use portfolio_operator::policy::OutputPolicy;
use portfolio_operator::registry::{Registry, load_directory};
use portfolio_operator::render::{Renderer, to_json, to_yaml};

/// A Kubernetes operator whose reconcile logic lives in sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "portfolio-operator", version, about)]
pub struct Cli {
    /// Log line format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator against a cluster (a kubeconfig, or in-cluster config).
    Run(RunArgs),
    /// Try it all on this machine: an emulated cluster in memory, the CRDs,
    /// the operator, and a live view of each app's conditions.
    Dev(DevArgs),
    /// Print the objects the plugins produce for each PortfolioApp in the files,
    /// exactly as the operator would apply them (no cluster needed).
    Render(RenderArgs),
    /// Print the CustomResourceDefinitions of PortfolioApp and DatabaseMigration.
    Crd,
    /// Print what installs the operator in a cluster: namespace, service
    /// account, RBAC, and a Deployment of replicas with leader election.
    Manifests(ManifestsArgs),
    /// Work with plugin components.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Kubeconfig to use; otherwise KUBECONFIG, ~/.kube/config, or the in-cluster config.
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Watch PortfolioApps in this namespace only [default: all namespaces].
    #[arg(long, short = 'n', value_name = "NS")]
    namespace: Option<String>,
    /// Load plugins from ConfigMaps labelled portfolio.dev/plugin=true in this namespace.
    #[arg(
        long,
        value_name = "NS",
        env = "PORTFOLIO_PLUGIN_NAMESPACE",
        default_value = "portfolio-system"
    )]
    plugin_namespace: String,
    /// Do not watch plugin ConfigMaps at all.
    #[arg(long, conflicts_with = "plugin_namespace")]
    no_plugin_configmaps: bool,
    /// Load plugins from this directory too (watched).
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
    /// Apps reconciled at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    max_concurrent_reconciles: u16,
    /// Seconds a deletion's cleanup may take before it is reported stuck.
    #[arg(long, value_name = "S", default_value_t = 900)]
    cleanup_timeout_seconds: u64,
    /// Also let plugins create (and the operator watch, apply and prune) this
    /// namespaced kind, as `apiVersion/Kind[/plural]`, e.g.
    /// `monitoring.coreos.com/v1/ServiceMonitor`; checked against the API server at start.
    #[arg(long, value_name = "APIVERSION/KIND")]
    allow_kind: Vec<portfolio_operator::kinds::ChildKind>,
    /// Serve /metrics, /healthz and /readyz on this address.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    ops_addr: std::net::SocketAddr,
    /// Act only while holding a Lease, so that several replicas may run: one
    /// acts, the others stand by.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the leadership Lease [default: the plugin namespace].
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    leader_elect_namespace: Option<String>,
    /// Name of the leadership Lease.
    #[arg(long, value_name = "NAME", default_value = "portfolio-operator")]
    leader_elect_lease: String,
    /// Seconds a lease stays valid after the leader last renewed it.
    #[arg(long, value_name = "S", default_value_t = 15)]
    leader_elect_lease_seconds: u64,
    /// Seconds before expiry at which the leader renews; also the clock skew
    /// between nodes that the election tolerates.
    #[arg(long, value_name = "S", default_value_t = 5)]
    leader_elect_grace_seconds: u64,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
struct ManifestsArgs {
    /// The operator's image (its entry point is the `portfolio-operator` binary).
    #[arg(long, value_name = "IMAGE")]
    image: String,
    /// The operator's namespace: its pods, its Lease and the plugin ConfigMaps.
    #[arg(long, value_name = "NS", default_value = "portfolio-system")]
    namespace: String,
    /// Watch PortfolioApps in this namespace only [default: all namespaces].
    #[arg(long, value_name = "NS")]
    watch_namespace: Option<String>,
    /// Replicas: one leads, the others stand by.
    #[arg(long, value_name = "N", default_value_t = 2)]
    replicas: u16,
    /// Also grant (and pass to the operator) this child kind, as `run --allow-kind` takes it.
    #[arg(long, value_name = "APIVERSION/KIND")]
    allow_kind: Vec<portfolio_operator::kinds::ChildKind>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Yaml)]
    output: OutputFormat,
}

#[derive(Debug, Args)]
struct DevArgs {
    /// Apply these manifests once the operator runs: files, or directories
    /// of `*.yaml`, `*.yml` and `*.json` (not their subdirectories).
    #[arg(long, value_name = "PATH")]
    apply: Vec<PathBuf>,
    /// Port of the emulated API server on 127.0.0.1 [default: a free one].
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    port: u16,
    /// Write the kubeconfig here and keep it [default: a temporary file, removed on exit].
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the plugin ConfigMaps (created).
    #[arg(long, value_name = "NS", default_value = "portfolio-system")]
    plugin_namespace: String,
    /// Load plugins from this directory too (watched).
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
    /// Serve /metrics, /healthz and /readyz on this address.
    #[arg(long, value_name = "ADDR")]
    ops_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Show a component's world, name, version, digest, kinds and settings schema.
    Inspect(InspectArgs),
    /// List the active plugins: the built-ins, and those of --plugin-dir.
    List(ListArgs),
}

#[derive(Debug, Args)]
struct RenderArgs {
    /// A YAML or JSON file, or a directory of them (repeatable).
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Load plugins from this directory too (`*.wasm`, each with an optional `NAME.yaml`).
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Yaml)]
    output: OutputFormat,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// Multi-document YAML.
    Yaml,
    /// A JSON `v1 List`.
    Json,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = InspectFormat::Text)]
    output: InspectFormat,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum InspectFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Load plugins from this directory too.
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// Plugin limits and the compile cache.
#[derive(Debug, Args)]
struct RuntimeArgs {
    /// Default time budget of one plugin call, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    plugin_timeout_ms: u64,
    /// Default memory cap of one plugin call, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    plugin_memory_mib: usize,
    /// Largest memory cap any plugin registration may ask for, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    plugin_max_memory_mib: usize,
    /// Default cap on the output of one call, in KiB.
    #[arg(long, value_name = "KIB", default_value_t = 4096)]
    plugin_max_output_kib: usize,
    /// Default cap on the objects one call may return.
    #[arg(long, value_name = "N", default_value_t = 256)]
    plugin_max_objects: usize,
    /// Default WebAssembly stack of a plugin call, in KiB.
    #[arg(long, value_name = "KIB", default_value_t = 512)]
    plugin_stack_kib: usize,
    /// Largest stack any plugin registration may ask for, in KiB (at most 4096).
    #[arg(long, value_name = "KIB", default_value_t = 1024)]
    plugin_max_stack_kib: usize,
    /// Where to keep compiled plugins across runs [default: $XDG_CACHE_HOME/portfolio-operator]
    #[arg(long, value_name = "DIR")]
    plugin_cache_dir: Option<PathBuf>,
    /// Compile plugins every time; keep nothing on disk.
    #[arg(long, conflicts_with = "plugin_cache_dir")]
    no_plugin_cache: bool,
}

impl RuntimeArgs {
    fn runtime(&self) -> anyhow::Result<Runtime> {
        if !(1..=60_000).contains(&self.plugin_timeout_ms) {
            bail!("--plugin-timeout-ms must be between 1 and 60000");
        }
        if self.plugin_memory_mib == 0 || self.plugin_memory_mib > self.plugin_max_memory_mib {
            bail!("--plugin-memory-mib must be between 1 and --plugin-max-memory-mib");
        }
        // Calls run on threads with an 8 MiB stack (see main); the wasm stack
        // must leave room below it for the host's own frames.
        if !(64..=4096).contains(&self.plugin_max_stack_kib) {
            bail!("--plugin-max-stack-kib must be between 64 and 4096");
        }
        if !(64..=self.plugin_max_stack_kib).contains(&self.plugin_stack_kib) {
            bail!("--plugin-stack-kib must be between 64 and --plugin-max-stack-kib");
        }
        if self.plugin_max_output_kib == 0 || self.plugin_max_objects == 0 {
            bail!("--plugin-max-output-kib and --plugin-max-objects must be at least 1");
        }
        let default_limits = Limits {
            timeout: Duration::from_millis(self.plugin_timeout_ms),
            memory_bytes: self.plugin_memory_mib << 20,
            max_output_bytes: self.plugin_max_output_kib << 10,
            max_objects: self.plugin_max_objects,
            stack_bytes: self.plugin_stack_kib << 10,
            ..Limits::default()
        };
        let cache_dir = if self.no_plugin_cache {
            None
        } else {
            self.plugin_cache_dir.clone().or_else(default_cache_dir)
        };
        let config = RuntimeConfig {
            default_limits,
            max_memory_bytes: self.plugin_max_memory_mib << 20,
            max_stack_bytes: self.plugin_max_stack_kib << 10,
            cache_dir: cache_dir.clone(),
            ..RuntimeConfig::default()
        };
        match Runtime::new(config.clone()) {
            Ok(runtime) => Ok(runtime),
            // An unusable default cache should not stop a one-shot command; an
            // explicit one should.
            Err(error) if self.plugin_cache_dir.is_none() && cache_dir.is_some() => {
                tracing::warn!(error = %error, "compiling plugins without a cache");
                Runtime::new(RuntimeConfig {
                    cache_dir: None,
                    ..config
                })
                .context("cannot start the plugin runtime")
            }
            Err(error) => Err(error).context("cannot start the plugin runtime"),
        }
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("portfolio-operator"))
}

/// Log to standard error; `RUST_LOG` overrides the default level (info for
/// the long-running commands, warn for the others).
pub fn init_logging(cli: &Cli) {
    let default = match cli.command {
        Command::Run(_) => "info,kube=warn",
        // The live view is on standard output; only trouble goes to the log.
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Run the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run_operator(args).await,
        Command::Dev(args) => dev(args).await,
        Command::Render(args) => render(args).await,
        Command::Crd => crd(),
        Command::Manifests(args) => manifests(args),
        Command::Plugin {
            command: PluginCommand::Inspect(args),
        } => inspect(args).await,
        Command::Plugin {
            command: PluginCommand::List(args),
        } => list(args).await,
    }
}

async fn run_operator(args: RunArgs) -> anyhow::Result<()> {
    if args.leader_elect {
        // Refuse impossible settings before connecting to anything.
        portfolio_operator::leader::check_timing(
            args.leader_elect_lease_seconds,
            args.leader_elect_grace_seconds,
        )?;
    }
    let runtime = args.runtime.runtime()?;
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and no in-cluster config; pass --kubeconfig")?,
    };
    let client = kube::Client::try_from(config.clone()).context("cannot create the API client")?;
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
    let options = portfolio_operator::operator::OperatorOptions {
        controller: portfolio_operator::controller::ControllerConfig {
            namespace: args.namespace,
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
    };
    let metrics = Arc::new(portfolio_operator::controller::metrics::Metrics::new());
    portfolio_operator::operator::run(options, client, runtime, metrics, shutdown_signal())
        .await
        .context("the operator failed")
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
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

/// Completes on SIGINT or SIGTERM (how Kubernetes stops a pod).
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("stopping");
}

/// The built-ins, plus the plugins of `plugin_dir` if given.
async fn registry(runtime: &Runtime, plugin_dir: Option<PathBuf>) -> anyhow::Result<Arc<Registry>> {
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

async fn render(args: RenderArgs) -> anyhow::Result<()> {
    let runtime = args.runtime.runtime()?;
    let registry = registry(&runtime, args.plugin_dir).await?;
    let renderer = Renderer::new(registry, OutputPolicy::default());
    let objects = renderer.render_paths(&args.files).await?;
    let text = match args.output {
        OutputFormat::Yaml => to_yaml(objects.iter().map(DesiredObject::object)),
        OutputFormat::Json => to_json(objects.iter().map(DesiredObject::object)),
    }
    .map_err(|e| anyhow::anyhow!("cannot format the objects: {e}"))?;
    write_stdout(&text)
}

fn crd() -> anyhow::Result<()> {
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

fn manifests(args: ManifestsArgs) -> anyhow::Result<()> {
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

async fn inspect(args: InspectArgs) -> anyhow::Result<()> {
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

async fn list(args: ListArgs) -> anyhow::Result<()> {
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

/// Write to standard output; a closed pipe (`| head`) is not an error worth a message.
fn write_stdout(text: &str) -> anyhow::Result<()> {
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
