//! Running a step's wrapper natively against a fake tool, for tests.
//!
//! The strategies' tests use this to check that the shell wrapper and its
//! awk program turn real tool output into a summary `interpret` reads
//! correctly. It needs `/bin/sh` and `awk` on the test machine.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a wrapper run left behind.
#[derive(Clone, Debug)]
pub struct Run {
    /// The wrapper's exit status.
    pub status: i32,
    /// The termination message it wrote.
    pub termination_message: String,
    /// What it wrote to stdout (the container's log).
    pub stdout: String,
}

/// Run `script` as step `key` with `args`, with `tool` on the PATH being a
/// shell script whose body is `fake`.
pub fn run(script: &str, key: &str, args: &[String], tool: &str, fake: &str) -> Run {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "strategy-kit-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("temp dir");
    let tool_path = bin.join(tool);
    std::fs::write(&tool_path, format!("#!/bin/sh\n{fake}\n")).expect("fake tool");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool_path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let log = dir.join("termination-log");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg(key)
        .args(args)
        .env("PATH", path)
        .env("PORTFOLIO_WORK", dir.join("work"))
        .env("PORTFOLIO_TERMINATION_LOG", &log)
        .output()
        .expect("run /bin/sh");
    let termination_message = std::fs::read(&log)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        status: output.status.code().unwrap_or(-1),
        termination_message,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}
