//! `portfolio-operator dev`, as the README's quick start uses it: the sample
//! app and its migrations go through expand → rollout → contract, kubectl
//! sees them from outside, Ctrl-C stops everything; bad manifests stop it
//! before anything starts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::repo;

/// Longest wait for anything to show; a bound, not a performance check.
const PATIENCE: Duration = Duration::from_secs(120);

fn command(args: &[&str]) -> Command {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-plugin-cache");
    let mut command = Command::new(env!("CARGO_BIN_EXE_portfolio-operator"));
    command
        .current_dir(repo())
        .arg("dev")
        .args(args)
        .arg("--plugin-cache-dir")
        .arg(cache)
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG");
    command
}

/// The `dev` process; killed if the test fails half-way.
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Dev {
    fn start(args: &[&str]) -> Dev {
        let mut child = command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dev");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Dev {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) that satisfies `wanted`.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "dev never printed {what}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// SIGINT, as Ctrl-C sends; the exit status.
    fn interrupt(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "dev did not stop on Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn dev_applies_the_examples_and_the_sample_app_goes_through_expand_rollout_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let kubeconfig_arg = kubeconfig.to_str().expect("utf-8 path").to_owned();
    let mut dev = Dev::start(&["--apply", "examples/", "--kubeconfig", &kubeconfig_arg]);

    let usage = dev.wait_for("how to use kubectl", |l| l.contains("kubectl --kubeconfig"));
    assert!(usage.contains(&kubeconfig_arg), "{usage}");
    dev.wait_for("the sample app applied", |l| {
        l.starts_with("applied PortfolioApp demo/shop")
    });
    // Expand → rollout → contract, in this order (each wait reads on from the last).
    let shop = |l: &str| l.contains(" demo/shop ");
    dev.wait_for("the rollout held for the expand migration", |l| {
        shop(l) && l.contains("MigrationsPending") && l.contains("shop-schema")
    });
    dev.wait_for("the expand migration Succeeded", |l| {
        l.contains("dbm demo/shop-schema") && l.contains("Succeeded")
    });
    dev.wait_for("the new template rolling out", |l| {
        shop(l) && l.contains("RollingOut")
    });
    let ready = dev.wait_for("the sample app Ready", |l| {
        shop(l) && l.contains("Ready=True")
    });
    assert!(ready.contains("pods 2/2"), "{ready}");
    let awaiting = dev.wait_for("the contract migration planned, awaiting approval", |l| {
        l.contains("dbm demo/shop-cleanup") && l.contains("AwaitingApproval")
    });
    let contract_before_rollout = dev
        .seen
        .iter()
        .take_while(|l| !(shop(l) && l.contains("Ready=True")))
        .any(|l| {
            // `<time> dbm demo/shop-cleanup <phase> …`
            let words: Vec<&str> = l.split_whitespace().collect();
            words.get(2) == Some(&"demo/shop-cleanup")
                && matches!(words.get(3), Some(&"Planning" | &"Running"))
        });
    assert!(
        !contract_before_rollout,
        "contract started before the rollout completed:\n{}",
        dev.seen.join("\n")
    );
    let hash = awaiting
        .split_whitespace()
        .find(|word| word.starts_with("sha256:"))
        .expect("the plan hash to approve")
        .to_owned();

    if kubectl_available() {
        let output = Command::new("kubectl")
            .args(["--kubeconfig", &kubeconfig_arg])
            .args(["get", "papp,deploy,svc,cm", "-n", "demo", "-o", "name"])
            .output()
            .expect("kubectl");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        for expected in [
            "portfolioapp.portfolio.dev/shop",
            "deployment.apps/shop",
            "service/shop",
            "configmap/shop-config",
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "{expected} in:\n{text}"
            );
        }

        // A person approves the contract plan; it runs.
        let approved = Command::new("kubectl")
            .args(["--kubeconfig", &kubeconfig_arg, "-n", "demo"])
            .args(["patch", "dbm", "shop-cleanup", "--type", "merge", "-p"])
            .arg(format!("{{\"spec\":{{\"approvedPlanHash\":\"{hash}\"}}}}"))
            .output()
            .expect("kubectl patch");
        assert!(
            approved.status.success(),
            "{}",
            String::from_utf8_lossy(&approved.stderr)
        );
        dev.wait_for("the contract migration Succeeded", |l| {
            l.contains("dbm demo/shop-cleanup") && l.contains("Succeeded")
        });
        let output = Command::new("kubectl")
            .args(["--kubeconfig", &kubeconfig_arg, "get", "dbm", "-A"])
            .output()
            .expect("kubectl");
        let table = String::from_utf8_lossy(&output.stdout);
        let header = table.lines().next().unwrap_or_default();
        for column in ["PHASE", "TOOL", "VERSION", "APP"] {
            assert!(header.contains(column), "{column} in:\n{table}");
        }
        for (name, phase) in [
            ("shop-schema", "Succeeded"),
            ("shop-cleanup", "Succeeded"),
            ("catalog-schema", "Succeeded"),
        ] {
            assert!(
                table.lines().any(|l| l.contains(name) && l.contains(phase)),
                "{name} {phase} in:\n{table}"
            );
        }
    } else {
        eprintln!("kubectl is not installed: the kubectl check is skipped");
    }

    let status = dev.interrupt();
    assert!(status.success(), "dev exits cleanly on Ctrl-C: {status}");
    assert!(kubeconfig.exists(), "an explicit --kubeconfig is kept");
}

#[test]
fn dev_refuses_bad_manifests_before_starting_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nmetadata:\n  name: x\n").expect("write");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "kind: [unclosed\n").expect("write");
    let missing = dir.path().join("missing.yaml");
    for (path, expected) in [
        (&bad, "bad.yaml, document 1: kind: missing"),
        (&broken, "not valid YAML"),
        (&missing, "cannot read it"),
    ] {
        let output = command(&["--apply", path.to_str().expect("utf-8")])
            .stdin(Stdio::null())
            .output()
            .expect("run dev");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            output.stdout.is_empty(),
            "nothing started: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}
