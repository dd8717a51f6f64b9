//! The command line: commands and flags (here), and what each command does
//! (`operate` runs the operator, `print` prints objects, `plugin` works with
//! plugins, `kit` is the plugin authoring kit (`plugin new`, `test`, `pack`),
//! `runtime` sets the process and the plugin runtime up, `version` says what
//! this build is).

mod kit;
mod operate;
mod plugin;
mod print;
mod runtime;
mod version;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use runtime::init_logging;

/// The operator's namespace, where plugin ConfigMaps are read from unless told otherwise.
const DEFAULT_PLUGIN_NAMESPACE: &str = portfolio_operator::manifests::DEFAULT_NAMESPACE;

/// A Kubernetes operator whose reconcile logic lives in sandboxed WebAssembly plugins.
// clap's own `--version` prints a fixed string; ours loads the built-in
// plugins to name their versions and digests, so it is a flag of its own
// and the subcommand is optional (required unless `--version` is given).
#[derive(Debug, Parser)]
#[command(
    name = "portfolio-operator",
    about,
    disable_version_flag = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Print the version, the plugin contract version and the built-in
    /// plugins' versions and digests.
    #[arg(short = 'V', long)]
    version: bool,
    /// Log line format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
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
    /// Watch PortfolioApps and DatabaseMigrations in these namespaces only
    /// (repeat it, or separate them with commas) [default: all namespaces].
    #[arg(long, short = 'n', value_name = "NS", value_delimiter = ',', value_parser = namespace_name)]
    namespace: Vec<String>,
    /// Load plugins from ConfigMaps labelled portfolio.dev/plugin=true in this namespace.
    #[arg(
        long,
        value_name = "NS",
        env = "PORTFOLIO_PLUGIN_NAMESPACE",
        default_value = DEFAULT_PLUGIN_NAMESPACE
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
    /// Threads of the async runtime: watches, requests and the reconcile
    /// logic. Plugin calls run on threads of their own besides, as many as
    /// are in flight. One is enough for thousands of apps, and a second
    /// costs more in hand-overs between the two than it adds (README,
    /// Performance); more help only where one thread is saturated.
    #[arg(
        long,
        value_name = "N",
        env = "PORTFOLIO_WORKER_THREADS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    worker_threads: u16,
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
    /// Namespace of the per-database migration lock Leases; every operator
    /// that may migrate the same databases must use the same one
    /// [default: the leadership Lease's namespace].
    #[arg(long, value_name = "NS")]
    migration_lock_namespace: Option<String>,
    /// Seconds before the second attempt of a failed migration step; doubled
    /// for each further attempt, up to five minutes.
    #[arg(long, value_name = "S", default_value_t = 10)]
    migration_retry_backoff_seconds: u64,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
struct ManifestsArgs {
    /// The operator's image (its entry point is the `portfolio-operator` binary).
    #[arg(long, value_name = "IMAGE")]
    image: String,
    /// The operator's namespace: its pods, its Lease and the plugin ConfigMaps.
    #[arg(long, value_name = "NS", default_value = DEFAULT_PLUGIN_NAMESPACE)]
    namespace: String,
    /// Watch PortfolioApps in these namespaces only, each granted by a
    /// RoleBinding there (repeat it, or separate them with commas)
    /// [default: all namespaces, granted by a ClusterRoleBinding].
    #[arg(long, value_name = "NS", value_delimiter = ',', value_parser = namespace_name)]
    watch_namespace: Vec<String>,
    /// Read plugin ConfigMaps from this namespace (it must exist) [default: --namespace].
    #[arg(long, value_name = "NS")]
    plugin_namespace: Option<String>,
    /// Replicas: one leads, the others stand by.
    #[arg(long, value_name = "N", default_value_t = 2)]
    replicas: u16,
    /// Run without leader election: exactly one replica, replaced (not
    /// rolled) on update so that two never act at once.
    #[arg(long)]
    no_leader_elect: bool,
    /// Also grant (and pass to the operator) this child kind, as `run --allow-kind` takes it.
    #[arg(long, value_name = "APIVERSION/KIND")]
    allow_kind: Vec<portfolio_operator::kinds::ChildKind>,
    /// Flags passed to `run` as they are; each is checked as `run` checks it.
    #[command(flatten)]
    run: RunFlags,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Yaml)]
    output: OutputFormat,
}

/// The flags of `run` that `manifests` passes on when given: the lease
/// timing, the plugin limits and the runtime's threads (see `run --help`).
#[derive(Debug, Args)]
struct RunFlags {
    /// Seconds a lease stays valid after the leader last renewed it [run's default: 15].
    #[arg(long, value_name = "S", conflicts_with = "no_leader_elect")]
    leader_elect_lease_seconds: Option<u64>,
    /// Seconds before expiry at which the leader renews [run's default: 5].
    #[arg(long, value_name = "S", conflicts_with = "no_leader_elect")]
    leader_elect_grace_seconds: Option<u64>,
    /// Default time budget of one plugin call, in milliseconds [run's default: 1000].
    #[arg(long, value_name = "MS")]
    plugin_timeout_ms: Option<u64>,
    /// Default memory cap of one plugin call, in MiB [run's default: 64].
    #[arg(long, value_name = "MIB")]
    plugin_memory_mib: Option<usize>,
    /// Largest memory cap any plugin registration may ask for, in MiB [run's default: 256].
    #[arg(long, value_name = "MIB")]
    plugin_max_memory_mib: Option<usize>,
    /// Default cap on the output of one call, in KiB [run's default: 4096].
    #[arg(long, value_name = "KIB")]
    plugin_max_output_kib: Option<usize>,
    /// Default cap on the objects one call may return [run's default: 256].
    #[arg(long, value_name = "N")]
    plugin_max_objects: Option<usize>,
    /// Default WebAssembly stack of a plugin call, in KiB [run's default: 512].
    #[arg(long, value_name = "KIB")]
    plugin_stack_kib: Option<usize>,
    /// Largest stack any plugin registration may ask for, in KiB [run's default: 1024].
    #[arg(long, value_name = "KIB")]
    plugin_max_stack_kib: Option<usize>,
    /// Threads of the async runtime [run's default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
}

impl RunFlags {
    /// The given flags, as (`--flag`, value) pairs in a fixed order.
    fn pairs(&self) -> Vec<(String, String)> {
        let flags: [(&str, Option<String>); 10] = [
            (
                "--leader-elect-lease-seconds",
                self.leader_elect_lease_seconds.map(|v| v.to_string()),
            ),
            (
                "--leader-elect-grace-seconds",
                self.leader_elect_grace_seconds.map(|v| v.to_string()),
            ),
            (
                "--plugin-timeout-ms",
                self.plugin_timeout_ms.map(|v| v.to_string()),
            ),
            (
                "--plugin-memory-mib",
                self.plugin_memory_mib.map(|v| v.to_string()),
            ),
            (
                "--plugin-max-memory-mib",
                self.plugin_max_memory_mib.map(|v| v.to_string()),
            ),
            (
                "--plugin-max-output-kib",
                self.plugin_max_output_kib.map(|v| v.to_string()),
            ),
            (
                "--plugin-max-objects",
                self.plugin_max_objects.map(|v| v.to_string()),
            ),
            (
                "--plugin-stack-kib",
                self.plugin_stack_kib.map(|v| v.to_string()),
            ),
            (
                "--plugin-max-stack-kib",
                self.plugin_max_stack_kib.map(|v| v.to_string()),
            ),
            (
                "--worker-threads",
                self.worker_threads.map(|v| v.to_string()),
            ),
        ];
        flags
            .into_iter()
            .filter_map(|(flag, value)| value.map(|value| (flag.to_owned(), value)))
            .collect()
    }
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
    #[arg(long, value_name = "NS", default_value = DEFAULT_PLUGIN_NAMESPACE)]
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
    /// List the active plugins and where each comes from: the built-ins, those
    /// of --plugin-dir and, with --kubeconfig or --plugin-namespace, the
    /// cluster's plugin ConfigMaps, with the uploads that were refused.
    List(ListArgs),
    /// Make a plugin crate from a template, ready to build and test.
    New(NewArgs),
    /// Run a component on test cases and compare what it returns with what
    /// each case expects; exits non-zero when any case fails.
    Test(TestArgs),
    /// Print the ConfigMap that publishes a component, after checking it as
    /// the operator will (`... | kubectl apply -f -`).
    Pack(PackArgs),
}

#[derive(Debug, Args)]
struct NewArgs {
    /// The plugin's name (also the crate's): lower case letters, digits and '-'.
    name: String,
    /// Which world the plugin exports.
    #[arg(long, value_enum)]
    world: WorldArg,
    /// Where to make the crate (it must not exist, or be empty) [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Take the SDK from this checkout of portfolio-operator, by path
    /// [default: the checkout this binary was built from, when it is still there].
    #[arg(long, value_name = "CHECKOUT", conflicts_with = "sdk_git")]
    sdk_path: Option<PathBuf>,
    /// Take the SDK from this git repository of portfolio-operator instead.
    #[arg(long, value_name = "URL")]
    sdk_git: Option<String>,
    /// The commit or tag of --sdk-git to use [default: its default branch].
    #[arg(long, value_name = "REV", requires = "sdk_git")]
    sdk_rev: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum WorldArg {
    /// Turns a PortfolioApp into Kubernetes objects.
    Generator,
    /// Turns a DatabaseMigration into Jobs and reads their outcome.
    MigrationStrategy,
}

#[derive(Debug, Args)]
struct TestArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// A directory of cases (each a directory with input.yaml and
    /// expected.yaml, or a NAME.yaml file), or one case.
    #[arg(long, value_name = "DIR")]
    cases: PathBuf,
    /// Record what the plugin returns as each case's expectation.
    #[arg(long)]
    update: bool,
    /// Limits of the plugin's registration (a YAML mapping, as a plugin
    /// ConfigMap's data.limits).
    #[arg(long, value_name = "FILE")]
    limits: Option<PathBuf>,
    /// Also allow this child kind, as the operator's `run --allow-kind`.
    #[arg(long, value_name = "APIVERSION/KIND")]
    allow_kind: Vec<portfolio_operator::kinds::ChildKind>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
struct PackArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// The plugin's settings (a YAML or JSON mapping), stored as data.settings.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// The plugin's limits (a YAML mapping: timeoutMs, memoryMib, maxOutputKib,
    /// maxObjects, maxLogLines, stackKib), stored as data.limits.
    #[arg(long, value_name = "FILE")]
    limits: Option<PathBuf>,
    /// The plugin namespace of the operator.
    #[arg(short = 'n', long, value_name = "NS", default_value = DEFAULT_PLUGIN_NAMESPACE)]
    namespace: String,
    /// The ConfigMap's name [default: the plugin's name].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Whether to gzip the component (`auto`: when that makes it smaller).
    #[arg(long, value_enum, default_value_t = CompressArg::Auto)]
    compress: CompressArg,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CompressArg {
    /// As `plugin.wasm.gz` when gzip makes it smaller, else as `plugin.wasm`.
    Auto,
    /// Always as `plugin.wasm.gz`.
    Always,
    /// Always as `plugin.wasm`.
    Never,
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
    /// Read the plugin ConfigMaps of the cluster of this kubeconfig. Without
    /// it and without --plugin-namespace, nothing is read from a cluster.
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Read the plugin ConfigMaps of this namespace, from the cluster of
    /// --kubeconfig, else of KUBECONFIG, ~/.kube/config or the in-cluster
    /// config [default with --kubeconfig: portfolio-system].
    #[arg(long, value_name = "NS")]
    plugin_namespace: Option<String>,
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

impl Cli {
    /// The async runtime's threads the command asks for, if it asks (tokio's
    /// default, one per core, otherwise).
    pub fn worker_threads(&self) -> Option<usize> {
        match &self.command {
            Some(Command::Run(args)) => Some(usize::from(args.worker_threads)),
            _ => None,
        }
    }
}

/// Run the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.version {
        return version::print().await;
    }
    let Some(command) = cli.command else {
        // What clap says of a missing subcommand: usage, and exit code 2.
        <Cli as clap::CommandFactory>::command()
            .error(
                clap::error::ErrorKind::MissingSubcommand,
                "a command is required (or --version)",
            )
            .exit()
    };
    match command {
        Command::Run(args) => operate::run(args).await,
        Command::Dev(args) => operate::dev(args).await,
        Command::Render(args) => print::render(args).await,
        Command::Crd => print::crd(),
        Command::Manifests(args) => print::manifests(args),
        Command::Plugin {
            command: PluginCommand::Inspect(args),
        } => plugin::inspect(args).await,
        Command::Plugin {
            command: PluginCommand::List(args),
        } => plugin::list(args).await,
        Command::Plugin {
            command: PluginCommand::New(args),
        } => kit::new(args),
        Command::Plugin {
            command: PluginCommand::Test(args),
        } => kit::test(args).await,
        Command::Plugin {
            command: PluginCommand::Pack(args),
        } => kit::pack(args).await,
    }
}

/// A namespace name as Kubernetes allows it: a DNS-1123 label.
fn namespace_name(text: &str) -> Result<String, String> {
    if portfolio_operator::plugin::is_dns_label(text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a namespace name: lower case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit"
        ))
    }
}
