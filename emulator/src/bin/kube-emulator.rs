//! `kube-emulator`: serves the in-memory Kubernetes API until interrupted; with `--cluster`,
//! the simulated controllers run too (dev mode).

use std::path::PathBuf;
use std::time::Duration;

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
    /// Run as a cluster: the simulated controllers (Deployments become available, Jobs
    /// complete, pods run on a node) on top of the API server.
    #[arg(long)]
    cluster: bool,
    /// Which simulated controllers run, in kube-controller-manager's syntax: `*` for all,
    /// `-name` to switch one off (e.g. `*,-job`). Names: garbagecollector, serviceaccount,
    /// root-ca-cert-publisher, scheduler, kubelet, replicaset, deployment, job,
    /// ttl-after-finished, horizontalpodautoscaling, persistentvolume-binder. Default: all with
    /// --cluster, else only garbagecollector.
    #[arg(long, value_name = "LIST", value_parser = controller_list)]
    controllers: Option<ControllerList>,
    /// Time from a pod being scheduled to its containers running and ready.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration)]
    pod_start_delay: Duration,
    /// How long a Job's pod runs before it ends.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    job_duration: Duration,
    /// First delay before a Job replaces a failed pod (doubles per failure).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    job_backoff: Duration,
    /// How often HorizontalPodAutoscalers are reconciled.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = duration)]
    hpa_sync_period: Duration,
    /// Images whose name contains this never become ready (repeatable; `.invalid/` always
    /// counts).
    #[arg(long, value_name = "MARKER")]
    never_ready_marker: Vec<String>,
}

/// The controllers `--controllers` selects.
#[derive(Debug, Clone)]
struct ControllerList(Vec<emulator::Controller>);

fn controller_list(s: &str) -> Result<ControllerList, String> {
    emulator::Controller::parse_list(s).map(ControllerList)
}

/// Parses `500ms`, `2s`, `1m` or a number of seconds.
fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (try 500ms, 2s, 1m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?} (ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(secs))
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
        .history_window(args.history_window)
        .cluster(args.cluster)
        .pod_start_delay(args.pod_start_delay)
        .job_duration(args.job_duration)
        .job_backoff(args.job_backoff)
        .hpa_sync_period(args.hpa_sync_period);
    for m in &args.never_ready_marker {
        b = b.never_ready_marker(m.clone());
    }
    if let Some(ControllerList(on)) = &args.controllers {
        for c in emulator::Controller::ALL {
            b = b.controller(c, on.contains(&c));
        }
    }
    if let Some(t) = &args.token {
        b = b.token(t.clone());
    }
    if let Some(k) = &args.kubeconfig {
        b = b.kubeconfig(k.clone());
    }
    let emu = b.start().context("starting the emulator")?;
    let kc = emu.kubeconfig_path().display().to_string();
    println!("kube-emulator serving on {}", emu.url());
    println!("kubeconfig: {kc}");
    if args.cluster {
        let names: Vec<&str> = emu
            .control()
            .controllers()
            .iter()
            .map(|c| c.name())
            .collect();
        println!("controllers: {}", names.join(", "));
        println!(
            "try: kubectl --kubeconfig {kc} create deployment web --image=nginx --dry-run=client -o yaml | kubectl --kubeconfig {kc} apply -f -"
        );
        println!("     kubectl --kubeconfig {kc} get deploy,rs,pods -w");
        println!(
            "control API: {}/emulator/v1 (faults, pause, job outcomes, knobs)",
            emu.url()
        );
    } else {
        println!("try: kubectl --kubeconfig {kc} get ns");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    rt.block_on(tokio::signal::ctrl_c())
        .context("waiting for Ctrl-C")?;
    drop(emu);
    Ok(())
}
