//! A throw-away PostgreSQL server for tests: a fresh cluster in a temporary
//! directory, on a free loopback port, run as an unprivileged user (the
//! server refuses to run as root, and the tests run as root), stopped and
//! deleted when dropped, also when a test panics.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};

/// The user the server runs as: exists on every Debian-like system and owns nothing.
const USER: &str = "nobody";
/// Its group.
const GROUP: &str = "nogroup";
/// The superuser the tests connect as, with a password (scram-sha-256), so
/// that the Jobs' credentials are really checked.
pub const SUPERUSER: &str = "postgres";

/// A running server.
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    password: String,
    bin: PathBuf,
}

/// Where `postgres`, `initdb` and `pg_ctl` are: `PG_BIN`, else `PATH`, else
/// Debian's versioned directories; `Err` says how to get them.
fn server_bin() -> Result<PathBuf, String> {
    let has_server = |dir: &Path| {
        ["postgres", "initdb", "pg_ctl"]
            .iter()
            .all(|tool| dir.join(tool).is_file())
    };
    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from) {
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "PG_BIN={} has no postgres, initdb and pg_ctl",
                dir.display()
            ))
        };
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut candidates = on_path;
    if let Ok(versions) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = versions
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev());
    }
    candidates
        .into_iter()
        .find(|dir| has_server(dir))
        .ok_or_else(|| {
            "the PostgreSQL server binaries (postgres, initdb, pg_ctl) are not on PATH: install them (Debian: apt-get install postgresql; or set PG_BIN to their directory)".to_owned()
        })
}

/// `command` run as the server's user.
fn as_server_user(program: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args([
            &format!("--reuid={USER}"),
            &format!("--regid={GROUP}"),
            "--clear-groups",
        ])
        .arg(program)
        // The server's user cannot read the test's working directory.
        .current_dir("/");
    command
}

/// `output` if it succeeded, else an error with what it printed.
fn checked(output: Output, what: &str) -> Result<Output, String> {
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

impl Postgres {
    /// Start a server; `Err` says what is missing or what went wrong.
    pub fn start() -> Result<Postgres, String> {
        let bin = server_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("postgres-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let status = Command::new("chown")
            .arg(format!("{USER}:{GROUP}"))
            .arg(dir.path())
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !status.success() {
            return Err(format!("chown {USER} {}: {status}", dir.path().display()));
        }
        // The temporary directory's random name: enough for a server on
        // loopback that lives as long as a test run.
        let password = format!(
            "pw{}",
            dir.path()
                .file_name()
                .map(|name| name.to_string_lossy().replace(['-', '.'], ""))
                .unwrap_or_default()
        );
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, &password).map_err(|e| e.to_string())?;
        Command::new("chown")
            .arg(format!("{USER}:{GROUP}"))
            .arg(&password_file)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        checked(
            as_server_user(&bin.join("initdb"))
                .arg("--pgdata")
                .arg(dir.path().join("data"))
                .args([
                    "--username",
                    SUPERUSER,
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--no-sync",
                    "--no-instructions",
                ])
                .arg("--pwfile")
                .arg(&password_file)
                .output()
                .map_err(|e| format!("initdb: {e}"))?,
            "initdb",
        )?;
        // A free port can be taken between finding and using it: try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port();
            let options = format!(
                "-p {port} -h 127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                dir.path().display()
            );
            let started = as_server_user(&bin.join("pg_ctl"))
                .arg("--pgdata")
                .arg(dir.path().join("data"))
                .arg("--log")
                .arg(dir.path().join("server.log"))
                .args(["--options", &options, "--wait", "--timeout", "60", "start"])
                .output()
                .map_err(|e| format!("pg_ctl: {e}"))?;
            if started.status.success() {
                return Ok(Postgres {
                    dir,
                    port,
                    password,
                    bin,
                });
            }
            last_error = format!(
                "pg_ctl start: {}{}\n{}",
                String::from_utf8_lossy(&started.stdout),
                String::from_utf8_lossy(&started.stderr),
                std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
            );
        }
        Err(last_error)
    }

    /// A server shared by the tests that run at the same time: started by the
    /// first, stopped when the last lets go of it.
    pub fn shared() -> Result<Arc<Postgres>, String> {
        static SHARED: Mutex<Weak<Postgres>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = shared.upgrade() {
            return Ok(server);
        }
        let server = Arc::new(Postgres::start()?);
        *shared = Arc::downgrade(&server);
        Ok(server)
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The JDBC URL of `database`.
    pub fn jdbc_url(&self, database: &str) -> String {
        format!("jdbc:postgresql://127.0.0.1:{}/{database}", self.port)
    }

    /// Run `sql` in `database` with `psql`; its output (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let psql = if self.bin.join("psql").is_file() {
            self.bin.join("psql")
        } else {
            PathBuf::from("psql")
        };
        let output = Command::new(psql)
            .args([
                "--no-psqlrc",
                "--quiet",
                "--tuples-only",
                "--no-align",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--username",
                SUPERUSER,
                "--dbname",
                database,
                "--command",
                sql,
            ])
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .map_err(|e| {
                format!(
                    "psql (the PostgreSQL client; Debian: apt-get install postgresql-client): {e}"
                )
            })?;
        let output = checked(output, &format!("psql {sql:?}"))?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Create an empty database named `name`.
    pub fn create_database(&self, name: &str) -> Result<(), String> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .map(|_| ())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate: nothing here is worth a checkpoint, and the directory goes next.
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("--pgdata")
            .arg(self.dir.path().join("data"))
            .args(["--mode", "immediate", "--wait", "stop"])
            .output();
    }
}
