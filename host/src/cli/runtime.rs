//! Setting the process up: logging, the plugin runtime from its flags, and
//! the signals that stop a long-running command.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use portfolio_operator::plugin::{Limits, Runtime, RuntimeConfig};

use super::{Cli, Command, LogFormat, RuntimeArgs};

impl RuntimeArgs {
    /// Refuse limits that cannot work, before anything starts.
    pub(super) fn check(&self) -> anyhow::Result<()> {
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
        Ok(())
    }

    /// The plugin runtime these flags describe.
    pub(super) fn runtime(&self) -> anyhow::Result<Runtime> {
        self.check()?;
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
/// `run`, warn for the others).
pub fn init_logging(cli: &Cli) {
    let default = match cli.command {
        Some(Command::Run(_)) => "info,kube=warn",
        // The live view is on standard output; only trouble goes to the log.
        Some(Command::Dev(_)) => "warn",
        // A one-shot command ends with one line saying what failed; the
        // client's own log of the same failure would come before it.
        _ => "warn,kube_client=off",
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

/// Completes on SIGINT or SIGTERM (how Kubernetes stops a pod).
pub(super) async fn shutdown_signal() {
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
