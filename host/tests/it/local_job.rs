//! Runs a rendered Job's pod as local processes: the init containers, then
//! the container, with their command, args and environment, the pod's
//! volumes as directories, and the termination message written to a file;
//! then reports the Job as the Job controller would (Complete, or Failed by
//! exit code or deadline), for a strategy's `interpret`.
//!
//! # Why a mount namespace and a chroot, not rewritten paths
//!
//! A container sees absolute paths that do not exist here (`/tmp` as its own
//! `emptyDir`, the source at `/liquibase/changelog`, `/dev/termination-log`,
//! the tool at `/liquibase`). Rewriting them in the command, args and
//! environment would mean editing the step's shell program, which is the very
//! thing under test, and would guess at which strings are paths. Instead each
//! container runs in a private mount namespace (`unshare --mount`, so nothing
//! it mounts is seen outside, and everything goes away with its last process)
//! whose new root is a tmpfs: the host's top-level directories bound read-only
//! (the "image": shell, awk, Java, libraries), the image's own directories and
//! the pod's volumes bound at their mount paths, and the termination-message
//! file at its path; then `chroot` and `setpriv` to the pod's `runAsUser`. So
//! the Job runs unmodified, with a read-only root file system and a non-root
//! user as in the cluster, and the host's file system is never written to
//! outside the pod's temporary directory. Where a directory on the way to a
//! mount point exists on the host (`/dev` for `/dev/termination-log`), it is
//! rebuilt as a tmpfs whose entries are bound one by one, rather than
//! creating the mount point on the host. This needs root (we are) and
//! `unshare`, `mount`, `chroot` and `setpriv` from util-linux and coreutils.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// What an image brings besides the host's root file system.
#[derive(Clone, Debug, Default)]
pub struct Image {
    /// Directories of the image: (path in the container, directory here).
    /// Their contents must be readable by the pod's user.
    pub dirs: Vec<(String, PathBuf)>,
    /// The image's environment (`ENV`), before the container's own.
    pub env: Vec<(String, String)>,
}

/// What the cluster would supply to the pod.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// Secret values: (Secret name, key) → value, for `secretKeyRef`.
    pub secrets: BTreeMap<(String, String), String>,
    /// ConfigMaps: name → file name → content, for `configMap` volumes.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Images by reference; an image not listed is the host's root alone.
    pub images: BTreeMap<String, Image>,
    /// How long the pod may run, replacing the Job's `activeDeadlineSeconds`
    /// when shorter (tests should not wait for a 20-minute deadline).
    pub deadline: Option<Duration>,
}

/// What one container did.
#[derive(Clone, Debug)]
pub struct ContainerRun {
    /// The container's name.
    pub name: String,
    /// Its exit code (137 when killed at the deadline).
    pub exit_code: i32,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// The file at its `terminationMessagePath`, if it wrote one.
    pub termination_message: Option<String>,
}

/// What the pod did, and the Job as the Job controller reports it after.
pub struct PodRun {
    /// Each container that ran: the init containers, then the main one.
    pub containers: Vec<ContainerRun>,
    /// The Job with its final `status`.
    pub job: Value,
    /// Whether the deadline stopped it.
    pub deadline_exceeded: bool,
    /// How long the pod ran.
    pub elapsed: Duration,
    /// The pod's volumes (name → directory), kept until this is dropped.
    pub volumes: BTreeMap<String, PathBuf>,
    _dir: tempfile::TempDir,
}

impl PodRun {
    /// The last container that ran (the main one, unless an init container failed).
    pub fn last(&self) -> &ContainerRun {
        self.containers.last().expect("a pod runs a container")
    }

    /// The termination message of the last container, as the kubelet
    /// reports it: the file, or with `FallbackToLogsOnError` and a failure,
    /// the end of the log when the file is empty.
    pub fn termination_message(&self) -> Option<String> {
        let last = self.last();
        match &last.termination_message {
            Some(message) if !message.is_empty() => Some(message.clone()),
            _ if last.exit_code != 0 => {
                let log = format!("{}{}", last.stdout, last.stderr);
                let start = log.len().saturating_sub(2048);
                let start = (start..log.len())
                    .find(|i| log.is_char_boundary(*i))
                    .unwrap_or(log.len());
                Some(log[start..].to_owned())
            }
            _ => None,
        }
    }
}

/// Run `job`'s pod with what `cluster` supplies.
pub fn run(job: &Value, cluster: &Cluster) -> PodRun {
    let started = Instant::now();
    let pod = &job["spec"]["template"]["spec"];
    let dir = tempfile::Builder::new()
        .prefix("local-job-")
        .tempdir()
        .expect("pod directory");
    let volumes = volumes(pod, cluster, dir.path());
    let job_deadline = job["spec"]["activeDeadlineSeconds"]
        .as_u64()
        .map(Duration::from_secs);
    let deadline = match (job_deadline, cluster.deadline) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(Duration::from_secs(600)),
    };
    let user = pod["securityContext"]["runAsUser"].as_u64().unwrap_or(0);
    let group = pod["securityContext"]["runAsGroup"]
        .as_u64()
        .unwrap_or(user);
    let mut containers = Vec::new();
    let mut deadline_exceeded = false;
    let init = pod["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let main = pod["containers"].as_array().cloned().unwrap_or_default();
    assert_eq!(main.len(), 1, "one container per Job pod");
    for container in init.iter().chain(&main) {
        let left = deadline.saturating_sub(started.elapsed());
        let run = run_container(
            container,
            cluster,
            &volumes,
            dir.path(),
            (user, group),
            left,
        );
        deadline_exceeded = run.exit_code == 137 && started.elapsed() >= deadline;
        let failed = run.exit_code != 0;
        containers.push(run);
        if failed {
            break;
        }
    }
    let job = with_status(job, &containers, deadline_exceeded);
    PodRun {
        containers,
        job,
        deadline_exceeded,
        elapsed: started.elapsed(),
        volumes,
        _dir: dir,
    }
}

/// The pod's volumes as directories: `emptyDir` empty and writable by anyone
/// (as the kubelet makes it), `configMap` filled with the ConfigMap's keys.
fn volumes(pod: &Value, cluster: &Cluster, dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut volumes = BTreeMap::new();
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        let name = volume["name"].as_str().expect("a volume has a name");
        let path = dir.join("volumes").join(name);
        std::fs::create_dir_all(&path).expect("volume directory");
        if volume.get("emptyDir").is_some() {
            set_mode(&path, 0o1777);
        } else if let Some(config_map) = volume["configMap"]["name"].as_str() {
            let files = cluster
                .config_maps
                .get(config_map)
                .unwrap_or_else(|| panic!("the test supplies no ConfigMap {config_map}"));
            for (file, content) in files {
                std::fs::write(path.join(file), content).expect("ConfigMap file");
                set_mode(&path.join(file), 0o644);
            }
            set_mode(&path, 0o755);
        } else {
            panic!("volume {name}: only emptyDir and configMap volumes are supported: {volume}");
        }
        volumes.insert(name.to_owned(), path);
    }
    volumes
}

/// Give `path` the permission bits `mode`.
fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A mount of the container's file system.
struct Mount {
    /// Where the container sees it.
    target: String,
    /// What is there.
    source: PathBuf,
    /// Mounted read-only.
    read_only: bool,
}

/// Run one container in its own mount namespace and root.
fn run_container(
    container: &Value,
    cluster: &Cluster,
    volumes: &BTreeMap<String, PathBuf>,
    pod_dir: &Path,
    (user, group): (u64, u64),
    deadline: Duration,
) -> ContainerRun {
    let name = container["name"].as_str().expect("a container has a name");
    let image_ref = container["image"].as_str().unwrap_or_default();
    let image = cluster.images.get(image_ref).cloned().unwrap_or_default();

    let mut mounts = vec![Mount {
        target: "/".into(),
        source: "/".into(),
        read_only: true,
    }];
    for (target, source) in &image.dirs {
        mounts.push(Mount {
            target: target.clone(),
            source: source.clone(),
            read_only: true,
        });
    }
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let volume = mount["name"]
            .as_str()
            .expect("a volume mount names a volume");
        mounts.push(Mount {
            target: mount["mountPath"].as_str().expect("mountPath").to_owned(),
            source: volumes
                .get(volume)
                .unwrap_or_else(|| panic!("no volume {volume}"))
                .clone(),
            read_only: mount["readOnly"].as_bool().unwrap_or(false),
        });
    }
    let termination_path = container["terminationMessagePath"]
        .as_str()
        .unwrap_or("/dev/termination-log");
    let termination_file = pod_dir.join(format!("termination-{name}"));
    std::fs::write(&termination_file, "").expect("termination file");
    set_mode(&termination_file, 0o666);
    mounts.push(Mount {
        target: termination_path.to_owned(),
        source: termination_file.clone(),
        read_only: false,
    });
    mounts.sort_by(|a, b| a.target.cmp(&b.target));

    let root = pod_dir.join(format!("root-{name}"));
    std::fs::create_dir_all(&root).expect("root directory");
    let setup = setup_script(&mounts);

    // Environment: the image's, then the container's (which wins), as the kubelet does.
    let mut env: Vec<(String, String)> = image.env.clone();
    for variable in container["env"].as_array().into_iter().flatten() {
        let key = variable["name"].as_str().expect("env name").to_owned();
        let value = if let Some(value) = variable["value"].as_str() {
            value.to_owned()
        } else if let Some(reference) = variable["valueFrom"]["secretKeyRef"].as_object() {
            let secret = reference["name"].as_str().expect("secret name").to_owned();
            let secret_key = reference["key"].as_str().expect("secret key").to_owned();
            cluster
                .secrets
                .get(&(secret.clone(), secret_key.clone()))
                .unwrap_or_else(|| {
                    panic!("the test supplies no value for Secret {secret} key {secret_key}")
                })
                .clone()
        } else {
            panic!("env {key}: only value and secretKeyRef are supported: {variable}");
        };
        env.retain(|(name, _)| *name != key);
        env.push((key, value));
    }
    if !env.iter().any(|(name, _)| name == "PATH") {
        env.push((
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ));
    }

    let mut argv: Vec<String> = Vec::new();
    argv.extend(
        container["command"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|arg| arg.as_str().expect("command is strings").to_owned()),
    );
    argv.extend(
        container["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|arg| arg.as_str().expect("args are strings").to_owned()),
    );
    assert!(
        !argv.is_empty() && !argv[0].contains('='),
        "container {name}: no command, or one env(1) would take for a variable (the image's entrypoint is not modelled)"
    );

    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            &setup,
            "setup",
        ])
        .arg(&root)
        .arg(user.to_string())
        .arg(group.to_string())
        .arg("env")
        .arg("-i")
        .args(env.iter().map(|(key, value)| format!("{key}={value}")))
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so the deadline stops the tool too.
        .process_group(0);
    let mut child = command.spawn().expect("unshare (util-linux) runs");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let started = Instant::now();
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if !killed && started.elapsed() >= deadline {
            // What the kubelet does at the deadline: SIGTERM, then SIGKILL.
            signal_group(child.id(), "TERM");
            std::thread::sleep(Duration::from_secs(2));
            signal_group(child.id(), "KILL");
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&out.join().expect("stdout reader")).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().expect("stderr reader")).into_owned();
    let exit_code = if killed {
        137
    } else {
        status.code().unwrap_or(128 + 9)
    };
    let termination_message = std::fs::read(&termination_file)
        .ok()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    ContainerRun {
        name: name.to_owned(),
        exit_code,
        stdout,
        stderr,
        termination_message,
    }
}

/// Send `signal` to the process group led by `pid` (the container and everything it started).
fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pid}")])
        .status();
}

/// The shell program that builds the container's root in the new mount
/// namespace and starts the container in it. Its arguments: the root, the
/// user and group, then the command (`env -i VAR=… program args…`).
fn setup_script(mounts: &[Mount]) -> String {
    let mut script = String::from(
        "set -eu\nroot=$1; user=$2; group=$3; shift 3\nmount -t tmpfs -o mode=0755 portfolio-root \"$root\"\n",
    );
    let targets: Vec<&str> = mounts.iter().map(|m| m.target.as_str()).collect();
    let mut read_only_skeletons = vec![String::new()];
    for mount in mounts {
        let below = targets.iter().any(|t| is_below(t, &mount.target));
        let at = shell_quote(&mount.target);
        if mount.target != "/" {
            if mount.source.is_dir() {
                let _ = writeln!(script, "mkdir -p \"$root\"{at}");
            } else {
                let _ = writeln!(
                    script,
                    "mkdir -p \"$(dirname \"$root\"{at})\"; : >\"$root\"{at}"
                );
            }
        }
        if below && mount.source.is_dir() {
            // Mounts lie inside: a tmpfs with the source's entries bound one by one.
            if mount.target != "/" {
                let _ = writeln!(
                    script,
                    "mount -t tmpfs -o mode=0755 portfolio-dir \"$root\"{at}"
                );
            }
            fill(
                &mut script,
                &mount.target,
                &mount.source,
                &targets,
                &mut read_only_skeletons,
            );
            if mount.read_only && mount.target != "/" {
                read_only_skeletons.push(mount.target.clone());
            }
        } else {
            bind(&mut script, &mount.source, &mount.target, mount.read_only);
        }
    }
    // The root file system is read-only once everything is mounted on it.
    for skeleton in read_only_skeletons.iter().rev() {
        let _ = writeln!(
            script,
            "mount -o remount,ro \"$root\"{}",
            shell_quote(skeleton)
        );
    }
    script.push_str(
        "exec chroot \"$root\" setpriv --reuid=\"$user\" --regid=\"$group\" --clear-groups \"$@\"\n",
    );
    script
}

/// What a container runtime puts in a container's `/dev` (the OCI defaults).
const CONTAINER_DEVICES: &[&str] = &[
    "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "fd", "stdin",
    "stdout", "stderr",
];

/// Whether `path` lies strictly below `dir`.
fn is_below(path: &str, dir: &str) -> bool {
    if dir == "/" {
        return path != "/";
    }
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// Bind the entries of `source` into the skeleton at `target`, recursing
/// into directories that have mount points below them.
fn fill(
    script: &mut String,
    target: &str,
    source: &Path,
    targets: &[&str],
    read_only_skeletons: &mut Vec<String>,
) {
    let mut entries: Vec<_> = std::fs::read_dir(source)
        .unwrap_or_else(|e| panic!("{}: {e}", source.display()))
        .map(|entry| entry.expect("directory entry"))
        .collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if target == "/" {
            format!("/{name}")
        } else {
            format!("{target}/{name}")
        };
        if targets.contains(&child.as_str()) {
            continue; // mounted in its own turn
        }
        if target == "/dev" && !CONTAINER_DEVICES.contains(&name.as_str()) {
            continue; // the host's disks and consoles are not a container's
        }
        let file_type = entry.file_type().expect("file type");
        let at = shell_quote(&child);
        if file_type.is_symlink() {
            let link = std::fs::read_link(entry.path()).expect("read link");
            let _ = writeln!(
                script,
                "ln -s {} \"$root\"{at}",
                shell_quote(&link.to_string_lossy())
            );
        } else if file_type.is_dir() && targets.iter().any(|t| is_below(t, &child)) {
            let _ = writeln!(
                script,
                "mkdir \"$root\"{at}; mount -t tmpfs -o mode=0755 portfolio-dir \"$root\"{at}"
            );
            fill(script, &child, &entry.path(), targets, read_only_skeletons);
            // /dev stays writable: the devices and shared memory are written to.
            if !child.starts_with("/dev") {
                read_only_skeletons.push(child);
            }
        } else {
            if file_type.is_dir() {
                let _ = writeln!(script, "mkdir \"$root\"{at}");
            } else {
                let _ = writeln!(script, ": >\"$root\"{at}");
            }
            // Kernel file systems and devices keep their own mode.
            let special = ["/proc", "/sys", "/dev"]
                .iter()
                .any(|dir| child == *dir || is_below(&child, dir));
            bind(script, &entry.path(), &child, !special);
        }
    }
}

/// Bind `source` at `target` in the new root, read-only if asked.
fn bind(script: &mut String, source: &Path, target: &str, read_only: bool) {
    let from = shell_quote(&source.to_string_lossy());
    let at = shell_quote(target);
    let _ = writeln!(script, "mount --rbind {from} \"$root\"{at}");
    if read_only {
        let _ = writeln!(script, "mount -o remount,bind,ro \"$root\"{at}");
    }
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// `job` with the status the Job controller gives it after `containers` ran:
/// `Complete`, or `Failed` with the reason its pod failure policy or deadline
/// gives.
fn with_status(job: &Value, containers: &[ContainerRun], deadline_exceeded: bool) -> Value {
    let mut job = job.clone();
    let name = job["metadata"]["name"].as_str().unwrap_or("job").to_owned();
    let namespace = job["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let now = "2026-12-01T00:00:00Z";
    let last = containers.last().expect("a container ran");
    let condition = |type_: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": "True", "lastProbeTime": now,
            "lastTransitionTime": now, "reason": reason, "message": message})
    };
    let status = if deadline_exceeded {
        let message = "Job was active longer than specified deadline";
        json!({"startTime": now, "failed": 1, "ready": 0, "terminating": 0,
            "conditions": [condition("FailureTarget", "DeadlineExceeded", message),
                condition("Failed", "DeadlineExceeded", message)]})
    } else if last.exit_code == 0 {
        let message = "Reached expected number of succeeded pods";
        json!({"startTime": now, "completionTime": now, "succeeded": 1, "ready": 0,
            "terminating": 0,
            "conditions": [condition("SuccessCriteriaMet", "CompletionsReached", message),
                condition("Complete", "CompletionsReached", message)]})
    } else {
        // The Jobs' pod failure policy fails the Job at the first non-zero exit (rule 1).
        let message = format!(
            "Container {} for pod {namespace}/{name}-local failed with exit code {} matching FailJob rule at index 1",
            last.name, last.exit_code
        );
        json!({"startTime": now, "failed": 1, "ready": 0, "terminating": 0,
            "conditions": [condition("FailureTarget", "PodFailurePolicy", &message),
                condition("Failed", "PodFailurePolicy", &message)]})
    };
    job["status"] = status;
    job
}
