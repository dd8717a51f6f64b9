//! `kube-emulator`: serves the in-memory Kubernetes API until interrupted.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// An in-memory Kubernetes API server for tests and local runs.
#[derive(Parser, Debug)]
#[command(name = "kube-emulator", version)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write a kubeconfig for this server (kept after exit).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Require this bearer token (also written into the kubeconfig).
    #[arg(long, env = "KUBE_EMULATOR_TOKEN")]
    token: Option<String>,
    /// Serve https with a fresh CA written into the kubeconfig (kubectl sends tokens only
    /// over https).
    #[arg(long)]
    tls: bool,
    /// Events of history kept for watches before 410 Gone.
    #[arg(long, default_value_t = 10_000)]
    history_window: usize,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.token.is_some() && !args.tls {
        tracing::warn!(
            "kubectl does not send bearer tokens over plain http; add --tls to use it with --token"
        );
    }
    let mut b = emulator::Emulator::builder()
        .tls(args.tls)
        .port(args.port)
        .history_window(args.history_window);
    if let Some(t) = &args.token {
        b = b.token(t.clone());
    }
    if let Some(k) = &args.kubeconfig {
        b = b.kubeconfig(k.clone());
    }
    let emu = b.start().context("starting the emulator")?;
    println!("kube-emulator serving on {}", emu.url());
    println!("kubeconfig: {}", emu.kubeconfig_path().display());
    println!(
        "try: kubectl --kubeconfig {} get ns",
        emu.kubeconfig_path().display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    rt.block_on(tokio::signal::ctrl_c())
        .context("waiting for Ctrl-C")?;
    drop(emu);
    Ok(())
}
