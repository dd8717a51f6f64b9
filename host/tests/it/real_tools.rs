//! The Jobs `render` makes for `examples/liquibase-migration.yaml`, run for
//! real: the Liquibase 4.28 CLI against a throw-away PostgreSQL, each Job's
//! pod as local processes ([`crate::local_job`]), and what the pod leaves
//! read by the built-in strategy's `interpret` through the plugin runtime.
//! The same for `examples/flyway-migration.yaml` when `FLYWAY_HOME` points
//! at a Flyway CLI (no Flyway distribution is reachable from CI).
//!
//! The example is changed only where the test must supply something: the
//! JDBC URL (the local server), the credentials (the Secret's values), the
//! source image's files (a directory), and for the stale lock the
//! annotation that allows `release-locks` and the plugin setting
//! `lockWaitMinutes: 0` (Liquibase would otherwise wait five minutes).
//!
//! Needs: Java 11+, the PostgreSQL server binaries, `psql`, and Liquibase
//! (`scripts/install-liquibase`; found through `LIQUIBASE_HOME`, else where
//! that script installs it). A missing one fails the tests with how to get
//! it. `UPDATE_FIXTURES=1` saves the real outputs under
//! `plugins/liquibase/tests/fixtures/liquibase-4.28/`, which the plugin's
//! unit tests replay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use portfolio_operator::builtin::BUILTINS;
use portfolio_operator::plugin::{
    CallContext, GenerateInput, LoadOptions, Plan, Plugin, Runtime, RuntimeConfig, StepOutcome,
};
use portfolio_operator::policy::OutputPolicy;
use portfolio_operator::registry::{Registry, SourceKind};
use portfolio_operator::render::Renderer;
use serde_json::{Value, json};

use crate::common::repo;
use crate::local_job::{self, Cluster, Image, PodRun};
use crate::postgres::{Postgres, SUPERUSER};

/// Where the Liquibase distribution is, or how to get it.
fn liquibase_home() -> PathBuf {
    let home = std::env::var_os("LIQUIBASE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME").map_or_else(
                || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"),
                PathBuf::from,
            );
            cache.join("portfolio-operator-ci/liquibase-4.28.1")
        });
    assert!(
        home.join("liquibase").is_file() && home.join("internal/lib/liquibase-core.jar").is_file(),
        "no Liquibase CLI at {}: run scripts/install-liquibase (it installs Liquibase 4.28 from npm into ~/.cache) and set LIQUIBASE_HOME to the directory it prints",
        home.display()
    );
    home
}

/// The pods run in mount namespaces and PostgreSQL as another user: root only.
fn require_root() {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|meta| meta.uid());
    assert_eq!(
        uid.ok(),
        Some(0),
        "the real-tool tests need root: each Job's pod runs in a mount namespace of its own (unshare, mount, chroot), and PostgreSQL is started as nobody"
    );
}

/// Java must be on PATH for the tools' launchers.
fn require_java() {
    require_root();
    let found = std::process::Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "no java on PATH: Liquibase and Flyway need Java 11 or newer (Debian: apt-get install openjdk-17-jre-headless)"
    );
}

/// The shared server, or a failure that says what is missing.
fn server() -> Arc<Postgres> {
    Postgres::shared().unwrap_or_else(|problem| panic!("cannot start PostgreSQL: {problem}"))
}

/// One JVM at a time: the machine has two cores, and parallel runs would
/// only make each one slower and the timings meaningless.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static RUNNING: Mutex<()> = Mutex::new(());
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// A directory of `files`, readable by the pods' users (an image's files are).
fn source_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("migrations-")
        .tempdir()
        .expect("temporary directory");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write a source file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// A free loopback port with nothing listening on it.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A migration example rendered with the built-in plugins, ready to run.
struct Rendered {
    plugin: Arc<Plugin>,
    input: GenerateInput,
    plan: Plan,
    /// The Jobs `render` makes, in plan order.
    jobs: Vec<Value>,
}

impl Rendered {
    /// Render `document` (a DatabaseMigration) as `portfolio-operator render`
    /// does, with the built-in strategy registered with `settings`.
    fn new(document: &Value, settings: Value) -> Rendered {
        let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
        let registry = Arc::new(Registry::new());
        for builtin in BUILTINS {
            let plugin = runtime
                .load(
                    builtin.bytes,
                    &LoadOptions {
                        settings: settings.clone(),
                        ..LoadOptions::default()
                    },
                )
                .unwrap_or_else(|e| panic!("{}: {e}", builtin.file));
            registry.activate(SourceKind::Builtin, builtin.file, plugin);
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("migration.yaml");
        // JSON is YAML.
        std::fs::write(&path, document.to_string()).expect("write the migration");
        let renderer = Renderer::new(Arc::clone(&registry), OutputPolicy::default());
        let objects = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio")
            .block_on(renderer.render_paths(&[path]))
            .unwrap_or_else(|e| panic!("render: {e}"));
        let jobs: Vec<Value> = objects
            .iter()
            .map(|object| object.object().clone())
            .collect();

        let tool = document["spec"]["tool"].as_str().expect("spec.tool");
        let plugin = registry
            .entries()
            .into_iter()
            .map(|entry| entry.plugin)
            .find(|plugin| plugin.id().name == tool)
            .expect("the built-in strategy");
        let metadata = &document["metadata"];
        let input = GenerateInput {
            name: metadata["name"].as_str().expect("name").to_owned(),
            namespace: metadata["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned(),
            uid: metadata["uid"].as_str().unwrap_or_default().to_owned(),
            annotations: serde_json::from_value(metadata["annotations"].clone())
                .unwrap_or_default(),
            spec: document["spec"].clone(),
            ..GenerateInput::default()
        };
        let plan = plugin.plan(&input, &context(&input)).expect("plan");
        // What runs is what render shows: the same Jobs, decorated.
        assert_eq!(plan.steps.len(), jobs.len());
        for (step, job) in plan.steps.iter().zip(&jobs) {
            let planned = step.job.object();
            assert_eq!(Some(&planned["spec"]), job.get("spec"), "{}", step.key);
            assert_eq!(planned["metadata"]["name"], job["metadata"]["name"]);
        }
        Rendered {
            plugin,
            input,
            plan,
            jobs,
        }
    }

    /// The Job of step `key`.
    fn job(&self, key: &str) -> &Value {
        let index = self
            .plan
            .steps
            .iter()
            .position(|step| step.key == key)
            .unwrap_or_else(|| panic!("the plan has no step {key}"));
        &self.jobs[index]
    }

    /// Run step `key`'s Job with `cluster`, its tool's image being `tool`,
    /// then `interpret` what it left.
    fn run(&self, key: &str, cluster: &Cluster, tool: &Image) -> Ran {
        let step = self
            .plan
            .steps
            .iter()
            .find(|step| step.key == key)
            .unwrap_or_else(|| panic!("the plan has no step {key}"));
        let job = self.job(key);
        let image = job["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .expect("the tool's image");
        let mut cluster = cluster.clone();
        cluster.images.insert(image.to_owned(), tool.clone());
        let pod = local_job::run(job, &cluster);
        let message = pod.termination_message();
        let outcome = self
            .plugin
            .interpret(
                &self.input,
                step,
                &pod.job,
                message.as_deref(),
                &context(&self.input),
            )
            .unwrap_or_else(|e| panic!("interpret {key}: {e}"));
        if std::env::var_os("SHOW_TERMINATION_MESSAGES").is_some() {
            eprintln!(
                "--- {key} ({:.1} s):\n{}\n=> {outcome:?}",
                pod.elapsed.as_secs_f64(),
                message.as_deref().unwrap_or("(none)")
            );
        }
        Ran {
            key: key.to_owned(),
            pod,
            message: message.unwrap_or_default(),
            outcome,
        }
    }
}

/// The call context of the migration in `input`, as the pipeline gives it.
fn context(input: &GenerateInput) -> CallContext {
    CallContext {
        object: format!("{}/{}", input.namespace, input.name),
    }
}

/// One step run and read.
struct Ran {
    key: String,
    pod: PodRun,
    message: String,
    outcome: StepOutcome,
}

impl Ran {
    /// The facts of the termination message: (key, value) per line after the header.
    fn facts(&self) -> Vec<(String, Value)> {
        let mut lines = self.message.lines();
        let header: Value = serde_json::from_str(lines.next().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{}: no summary header ({e}):\n{}", self.key, self.message));
        assert_eq!(header["format"], "portfolio.dev/migration-summary/v1");
        lines
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let fact: serde_json::Map<String, Value> = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: not a fact ({e}): {line}", self.key));
                fact.into_iter().next().expect("one member")
            })
            .collect()
    }

    /// The string values of fact `key`.
    fn strings(&self, key: &str) -> Vec<String> {
        self.facts()
            .into_iter()
            .filter(|(name, _)| name == key)
            .filter_map(|(_, value)| value.as_str().map(str::to_owned))
            .collect()
    }

    /// The value of fact `key`.
    fn fact(&self, key: &str) -> Option<Value> {
        self.facts()
            .into_iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
    }

    /// What every Liquibase summary must be: within Kubernetes' 4 KB, and
    /// with none of Liquibase's informational lines taken for errors.
    fn assert_clean_summary(&self) {
        assert!(
            self.message.len() <= 4000,
            "{}: {} bytes",
            self.key,
            self.message.len()
        );
        for error in self.strings("error") {
            for noise in [
                "Starting Liquibase",
                "Liquibase Version",
                "Liquibase Open Source",
                "executed successfully",
                "Picked up JAVA_TOOL_OPTIONS",
                "environment variables",
                "LIQUIBASE_",
                "\tat ",
            ] {
                assert!(
                    !error.contains(noise),
                    "{}: noise recorded as an error: {error}\n{}",
                    self.key,
                    self.message
                );
            }
        }
    }

    /// Save the real outputs for the plugin's unit tests (`UPDATE_FIXTURES=1`).
    fn save(&self, tool: &str, case: &str) {
        if std::env::var_os("UPDATE_FIXTURES").is_none() {
            return;
        }
        let dir = fixtures_dir(tool);
        std::fs::create_dir_all(&dir).expect("fixtures directory");
        let stem = format!("{case}.{}", self.key);
        let last = self.pod.last();
        let write = |suffix: &str, text: &str| {
            std::fs::write(dir.join(format!("{stem}.{suffix}")), text).expect("write a fixture");
        };
        write("termination-log", &self.message);
        write("stdout", &last.stdout);
        write("stderr", &last.stderr);
        // What the tool was asked to write (update-sql's SQL), from the pod's /tmp.
        if let Some(work) = self.pod.volumes.get("work") {
            let sql = std::fs::read_to_string(work.join("portfolio/sql")).unwrap_or_default();
            if !sql.is_empty() {
                write("sql", &sql);
            }
        }
    }
}

/// Where the real outputs of `tool` are kept.
fn fixtures_dir(tool: &str) -> PathBuf {
    let version = if tool == "liquibase" { "4.28" } else { "real" };
    repo()
        .join("plugins")
        .join(tool)
        .join("tests/fixtures")
        .join(format!("{tool}-{version}"))
}

/// Version and summary of a success; panics on any other outcome.
fn succeeded(outcome: &StepOutcome) -> (Option<&str>, &str) {
    match outcome {
        StepOutcome::Succeeded {
            applied_version,
            summary,
        } => (applied_version.as_deref(), summary),
        other => panic!("expected a success, got {other:?}"),
    }
}

/// Reason, message and retryable of a failure; panics on any other outcome.
fn failed(outcome: &StepOutcome) -> (&str, &str, bool) {
    match outcome {
        StepOutcome::Failed {
            reason,
            message,
            retryable,
        } => (reason, message, *retryable),
        other => panic!("expected a failure, got {other:?}"),
    }
}

// ---------------------------------------------------------------- Liquibase

/// The changelog of the clean and repeated updates: a schema, a table, an index.
const CHANGELOG: &str = r"databaseChangeLog:
  - changeSet:
      id: 1
      author: alice
      changes:
        - sql:
            sql: CREATE SCHEMA IF NOT EXISTS ${schema}
  - changeSet:
      id: 2
      author: alice
      changes:
        - createTable:
            schemaName: ${schema}
            tableName: orders
            columns:
              - column: {name: id, type: BIGINT, constraints: {primaryKey: true, nullable: false}}
  - changeSet:
      id: 3
      author: alice
      changes:
        - createIndex:
            schemaName: ${schema}
            tableName: orders
            indexName: orders_id_idx
            columns: [{column: {name: id}}]
";

/// [`CHANGELOG`] plus changesets the example's filters leave out: one for
/// context `test` (the example runs `production`) and one labelled
/// `experimental` (the example excludes it), which would drop the table.
fn filtered_changelog() -> String {
    format!(
        "{CHANGELOG}  - changeSet:
      id: 4
      author: bob
      context: production
      changes:
        - sql: {{sql: \"CREATE TABLE ${{schema}}.audit (id BIGINT)\"}}
  - changeSet:
      id: 5
      author: bob
      context: test
      changes:
        - sql: {{sql: \"INSERT INTO ${{schema}}.orders (id) VALUES (42)\"}}
  - changeSet:
      id: 6
      author: bob
      labels: experimental
      changes:
        - sql: {{sql: \"DROP TABLE ${{schema}}.orders\"}}
"
    )
}

/// [`CHANGELOG`]'s first changeset, then one with a typo in its SQL.
const BAD_CHANGELOG: &str = r"databaseChangeLog:
  - changeSet:
      id: 1
      author: alice
      changes:
        - sql:
            sql: CREATE SCHEMA IF NOT EXISTS ${schema}
  - changeSet:
      id: 2
      author: carol
      changes:
        - sql:
            sql: CREATE TABL ${schema}.broken (id BIGINT)
";

/// A Liquibase case: its own database on the shared server, its changelog
/// as the source image's files, and the cluster the pods see.
struct Liquibase {
    server: Arc<Postgres>,
    database: String,
    /// The source image's files (kept until the case ends).
    _source: tempfile::TempDir,
    document: Value,
    cluster: Cluster,
    /// The tool's image: the official one keeps Liquibase in /liquibase, on PATH.
    tool: Image,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Liquibase {
    /// Case `name` (also its database) with `changelog` as `changelog.yaml`.
    fn new(name: &str, changelog: &str) -> Liquibase {
        require_java();
        let home = liquibase_home();
        let server = server();
        let guard = one_at_a_time();
        server.create_database(name).expect("create the database");
        let source = source_dir(&[("changelog.yaml", changelog)]);
        let text = std::fs::read_to_string(repo().join("examples/liquibase-migration.yaml"))
            .expect("the example");
        let mut document: Value = serde_saphyr::from_str(&text).expect("YAML");
        document["spec"]["database"]["url"] = json!(server.jdbc_url(name));
        let spec = &document["spec"];
        let secret = spec["database"]["credentialsSecretRef"]["name"]
            .as_str()
            .expect("a Secret")
            .to_owned();
        let source_image = spec["source"]["image"].as_str().expect("an image source");
        let source_path = spec["source"]["path"].as_str().expect("a source path");
        let mut cluster = Cluster {
            deadline: Some(Duration::from_secs(180)),
            ..Cluster::default()
        };
        cluster
            .secrets
            .insert((secret.clone(), "username".into()), SUPERUSER.into());
        cluster
            .secrets
            .insert((secret, "password".into()), server.password().into());
        cluster.images.insert(
            source_image.to_owned(),
            Image {
                dirs: vec![(source_path.to_owned(), source.path().to_owned())],
                env: Vec::new(),
            },
        );
        let tool = Image {
            dirs: vec![("/liquibase".into(), home)],
            env: vec![
                (
                    "PATH".into(),
                    "/liquibase:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                        .into(),
                ),
                ("LIQUIBASE_HOME".into(), "/liquibase".into()),
            ],
        };
        Liquibase {
            server,
            database: name.to_owned(),
            _source: source,
            document,
            cluster,
            tool,
            _one_at_a_time: guard,
        }
    }

    /// The example as this case renders it.
    fn render(&self) -> Rendered {
        Rendered::new(&self.document, json!({}))
    }

    /// Run step `key` of `rendered`.
    fn run(&self, rendered: &Rendered, key: &str) -> Ran {
        rendered.run(key, &self.cluster, &self.tool)
    }

    /// `sql` in this case's database.
    fn psql(&self, sql: &str) -> String {
        self.server
            .psql(&self.database, sql)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The changesets recorded as applied, in order.
    fn applied(&self) -> Vec<String> {
        if !self.has_table("public.databasechangelog") {
            return Vec::new();
        }
        let rows = self.psql(
            "SELECT filename || '::' || id || '::' || author FROM public.databasechangelog ORDER BY orderexecuted",
        );
        rows.lines().map(str::to_owned).collect()
    }

    /// Whether `schema.table` exists.
    fn has_table(&self, table: &str) -> bool {
        self.psql(&format!("SELECT to_regclass('{table}') IS NOT NULL")) == "t"
    }
}

/// A Liquibase step must run through in a few JVM starts, not minutes.
fn assert_quick(ran: &Ran) {
    assert!(
        !ran.pod.deadline_exceeded && ran.pod.elapsed < Duration::from_secs(120),
        "{} took {:?}",
        ran.key,
        ran.pod.elapsed
    );
}

#[test]
fn liquibase_clean_update_applies_every_changeset() {
    let case = Liquibase::new("clean_update", CHANGELOG);
    let rendered = case.render();
    let update = case.run(&rendered, "update");
    update.save("liquibase", "clean");
    assert_quick(&update);
    assert_eq!(
        update.pod.last().exit_code,
        0,
        "{}",
        update.pod.last().stderr
    );
    assert_eq!(
        succeeded(&update.outcome),
        (
            Some("changelog.yaml::3::alice"),
            "applied 3 changeset(s), the last changelog.yaml::3::alice; 0 ran before"
        )
    );
    update.assert_clean_summary();
    assert!(update.strings("error").is_empty(), "{}", update.message);
    assert_eq!(update.fact("ran"), Some(json!(3)));
    assert_eq!(update.fact("run"), Some(json!(3)));
    assert_eq!(update.fact("previouslyRun"), Some(json!(0)));
    assert_eq!(
        case.applied(),
        [
            "changelog.yaml::1::alice",
            "changelog.yaml::2::alice",
            "changelog.yaml::3::alice"
        ]
    );
    assert!(case.has_table("shop.orders"));
    // The copy-source init container ran first, as the cluster would run it.
    assert_eq!(update.pod.containers[0].name, "copy-source");
    assert_eq!(update.pod.containers[0].exit_code, 0);
}

#[test]
fn liquibase_already_applied_changelog_runs_nothing_and_succeeds() {
    let case = Liquibase::new("already_applied", CHANGELOG);
    let rendered = case.render();
    let first = case.run(&rendered, "update");
    succeeded(&first.outcome);
    let again = case.run(&rendered, "update");
    again.save("liquibase", "already-applied");
    assert_quick(&again);
    assert_eq!(
        succeeded(&again.outcome),
        (None, "nothing to apply; 3 changeset(s) ran before")
    );
    again.assert_clean_summary();
    assert!(again.strings("error").is_empty(), "{}", again.message);
    assert_eq!(again.fact("ran"), None);
    assert_eq!(again.fact("run"), Some(json!(0)));
    assert_eq!(again.fact("previouslyRun"), Some(json!(3)));
    assert_eq!(case.applied().len(), 3);
}

#[test]
fn liquibase_contexts_and_labels_filter_changesets() {
    let case = Liquibase::new("filters", &filtered_changelog());
    // The example's filters are what this case is about.
    assert_eq!(
        case.document["spec"]["liquibase"]["contexts"],
        json!(["production"])
    );
    assert_eq!(
        case.document["spec"]["liquibase"]["labels"],
        json!("!experimental")
    );
    let rendered = case.render();
    let update = case.run(&rendered, "update");
    update.save("liquibase", "filters");
    assert_quick(&update);
    assert_eq!(
        succeeded(&update.outcome),
        (
            Some("changelog.yaml::4::bob"),
            "applied 4 changeset(s), the last changelog.yaml::4::bob; 0 ran before"
        )
    );
    update.assert_clean_summary();
    assert!(update.strings("error").is_empty(), "{}", update.message);
    assert_eq!(update.fact("filteredOut"), Some(json!(2)));
    assert_eq!(update.fact("totalChangesets"), Some(json!(6)));
    assert_eq!(
        case.applied(),
        [
            "changelog.yaml::1::alice",
            "changelog.yaml::2::alice",
            "changelog.yaml::3::alice",
            "changelog.yaml::4::bob"
        ]
    );
    // Context test's insert and the experimental drop did not run.
    assert!(case.has_table("shop.orders"));
    assert_eq!(case.psql("SELECT count(*) FROM shop.orders"), "0");
}

#[test]
fn liquibase_bad_sql_fails_for_good_with_the_databases_words() {
    let case = Liquibase::new("bad_sql", BAD_CHANGELOG);
    let rendered = case.render();
    let update = case.run(&rendered, "update");
    update.save("liquibase", "bad-sql");
    assert_quick(&update);
    assert_eq!(update.pod.last().exit_code, 1);
    let (reason, message, retryable) = failed(&update.outcome);
    assert_eq!((reason, retryable), ("SqlError", false), "{message}");
    for words in [
        // Liquibase's
        "Migration failed for changeset changelog.yaml::2::carol",
        // PostgreSQL's
        "syntax error at or near \"TABL\"",
        "CREATE TABL shop.broken",
    ] {
        assert!(message.contains(words), "{words}: {message}");
    }
    update.assert_clean_summary();
    let errors = update.strings("error");
    assert!(
        errors[0].starts_with("Unexpected error running Liquibase: Migration failed for changeset"),
        "{}",
        update.message
    );
    // The changeset before the bad one went in; the bad one did not.
    assert_eq!(case.applied(), ["changelog.yaml::1::alice"]);
}

#[test]
fn liquibase_connection_refused_is_retryable() {
    let mut case = Liquibase::new("refused", CHANGELOG);
    let port = closed_port();
    case.document["spec"]["database"]["url"] =
        json!(format!("jdbc:postgresql://127.0.0.1:{port}/refused"));
    let rendered = case.render();
    let update = case.run(&rendered, "update");
    update.save("liquibase", "connection-refused");
    assert_quick(&update);
    let (reason, message, retryable) = failed(&update.outcome);
    assert_eq!(
        (reason, retryable),
        ("ConnectionRefused", true),
        "{message}"
    );
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    update.assert_clean_summary();
    assert!(
        update.strings("error")[0]
            .starts_with("Unexpected error running Liquibase: Connection could not be created"),
        "{}",
        update.message
    );
}

#[test]
fn liquibase_stale_lock_is_released_then_the_update_succeeds() {
    let mut case = Liquibase::new("stale_lock", CHANGELOG);
    case.document["metadata"]["annotations"] =
        json!({"portfolio.dev/allow-maintenance": "release-locks"});
    // A crashed run's lock: the table as Liquibase creates it, the row left held.
    case.psql(
        "CREATE TABLE public.databasechangeloglock (ID INTEGER NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED TIMESTAMP WITHOUT TIME ZONE, LOCKEDBY VARCHAR(255), CONSTRAINT databasechangeloglock_pkey PRIMARY KEY (ID)); \
         INSERT INTO public.databasechangeloglock (ID, LOCKED, LOCKGRANTED, LOCKEDBY) VALUES (1, TRUE, NOW() - INTERVAL '1 hour', 'shop-cleanup-update-crashed (10.42.0.17)')",
    );
    // Liquibase waits five minutes for a lock by default; the platform setting shortens it.
    let rendered = Rendered::new(&case.document, json!({"lockWaitMinutes": 0}));
    assert!(
        rendered
            .plan
            .steps
            .iter()
            .any(|step| step.key == "release-locks")
    );

    let blocked = case.run(&rendered, "update");
    blocked.save("liquibase", "stale-lock");
    assert_quick(&blocked);
    match &blocked.outcome {
        StepOutcome::LockHeld { holder } => assert!(
            holder.contains("shop-cleanup-update-crashed (10.42.0.17)"),
            "{holder}"
        ),
        other => panic!("expected LockHeld, got {other:?}\n{}", blocked.message),
    }
    blocked.assert_clean_summary();
    assert!(case.applied().is_empty());

    let released = case.run(&rendered, "release-locks");
    released.save("liquibase", "stale-lock");
    assert_eq!(
        succeeded(&released.outcome),
        (None, "released the changelog lock (DATABASECHANGELOGLOCK)")
    );
    released.assert_clean_summary();
    assert_eq!(released.fact("locksReleased"), Some(json!(true)));
    assert_eq!(
        case.psql("SELECT locked FROM public.databasechangeloglock WHERE id = 1"),
        "f"
    );

    let retried = case.run(&rendered, "update");
    retried.save("liquibase", "stale-lock-retried");
    assert_eq!(
        succeeded(&retried.outcome).0,
        Some("changelog.yaml::3::alice")
    );
    assert_eq!(case.applied().len(), 3);
}

#[test]
fn liquibase_plan_step_lists_the_pending_changesets_and_changes_nothing() {
    let case = Liquibase::new("plan_only", CHANGELOG);
    let rendered = case.render();
    let plan = case.run(&rendered, "plan");
    plan.save("liquibase", "plan");
    assert_quick(&plan);
    let (version, summary) = succeeded(&plan.outcome);
    assert_eq!(version, None);
    assert_eq!(
        summary,
        "3 changeset(s) pending (changelog.yaml::1::alice, changelog.yaml::2::alice, changelog.yaml::3::alice); update-sql rendered 3 statement(s)"
    );
    plan.assert_clean_summary();
    assert!(plan.strings("error").is_empty(), "{}", plan.message);
    assert_eq!(plan.fact("pendingCount"), Some(json!(3)));
    assert_eq!(
        plan.strings("pendingChangeset"),
        [
            "changelog.yaml::1::alice",
            "changelog.yaml::2::alice",
            "changelog.yaml::3::alice"
        ]
    );
    // The SQL quoted is the change, not Liquibase's bookkeeping.
    let sql = plan.strings("sql");
    assert!(
        sql.iter()
            .any(|line| line.starts_with("CREATE TABLE shop.orders")),
        "{sql:?}"
    );
    assert!(
        sql.iter()
            .all(|line| !line.to_lowercase().contains("databasechangelog")),
        "{sql:?}"
    );
    // A plan changes nothing.
    assert_eq!(case.psql("SELECT to_regnamespace('shop') IS NULL"), "t");
    assert!(case.applied().is_empty());
}

// ------------------------------------------------------------------ Flyway

/// Where a Flyway CLI is, or `None` with the reason printed (the one
/// allowed skip: no Flyway distribution is reachable from CI).
fn flyway_home() -> Option<PathBuf> {
    let Some(home) = std::env::var_os("FLYWAY_HOME").map(PathBuf::from) else {
        eprintln!(
            "skipped: FLYWAY_HOME is not set (no Flyway distribution is reachable from CI; the Flyway strategy is tested on fixtures from Flyway's documented output). Point it at an unpacked Flyway CLI to run this."
        );
        return None;
    };
    assert!(
        home.join("flyway").is_file(),
        "FLYWAY_HOME={} has no flyway launcher",
        home.display()
    );
    Some(home)
}

/// A Flyway case: as [`Liquibase`], with the example's ConfigMap source.
struct Flyway {
    server: Arc<Postgres>,
    database: String,
    document: Value,
    cluster: Cluster,
    /// The tool's image: the official one keeps Flyway in /flyway, on PATH.
    tool: Image,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Flyway {
    /// Case `name` (also its database) with `migrations` in the example's ConfigMap.
    fn new(name: &str, home: &Path, migrations: &[(&str, &str)]) -> Flyway {
        require_java();
        let server = server();
        let guard = one_at_a_time();
        server.create_database(name).expect("create the database");
        let text = std::fs::read_to_string(repo().join("examples/flyway-migration.yaml"))
            .expect("the example");
        let mut document: Value = serde_saphyr::from_str(&text).expect("YAML");
        document["spec"]["database"]["url"] = json!(server.jdbc_url(name));
        let spec = &document["spec"];
        let credentials = &spec["database"]["credentialsSecretRef"];
        let secret = credentials["name"].as_str().expect("a Secret").to_owned();
        let config_map = spec["source"]["configMapRef"]["name"]
            .as_str()
            .expect("a ConfigMap source")
            .to_owned();
        let mut cluster = Cluster {
            deadline: Some(Duration::from_secs(180)),
            ..Cluster::default()
        };
        cluster.secrets.insert(
            (
                secret.clone(),
                credentials["usernameKey"]
                    .as_str()
                    .unwrap_or("username")
                    .into(),
            ),
            SUPERUSER.into(),
        );
        cluster.secrets.insert(
            (
                secret,
                credentials["passwordKey"]
                    .as_str()
                    .unwrap_or("password")
                    .into(),
            ),
            server.password().into(),
        );
        cluster.config_maps.insert(
            config_map,
            migrations
                .iter()
                .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        );
        let tool = Image {
            dirs: vec![("/flyway".into(), home.to_owned())],
            env: vec![(
                "PATH".into(),
                "/flyway:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            )],
        };
        Flyway {
            server,
            database: name.to_owned(),
            document,
            cluster,
            tool,
            _one_at_a_time: guard,
        }
    }

    /// Run step `key` of `rendered`.
    fn run(&self, rendered: &Rendered, key: &str) -> Ran {
        rendered.run(key, &self.cluster, &self.tool)
    }
}

/// The example's migrations: the schema's table, then its index (uses the
/// example's placeholder `owner`).
const FLYWAY_MIGRATIONS: &[(&str, &str)] = &[
    (
        "V1__create_items.sql",
        "CREATE TABLE catalog.items (id BIGINT PRIMARY KEY);\nCOMMENT ON TABLE catalog.items IS 'owned by ${owner}';\n",
    ),
    (
        "V2__index_items.sql",
        "CREATE INDEX items_id ON catalog.items (id);\n",
    ),
];

#[test]
fn flyway_plan_migrate_and_migrate_again() {
    let Some(home) = flyway_home() else {
        return;
    };
    let case = Flyway::new("flyway_clean", &home, FLYWAY_MIGRATIONS);
    let rendered = Rendered::new(&case.document, json!({}));
    let plan = case.run(&rendered, "plan");
    plan.save("flyway", "clean");
    succeeded(&plan.outcome);
    assert!(plan.message.len() <= 4000);
    let migrate = case.run(&rendered, "migrate");
    migrate.save("flyway", "clean");
    assert!(
        succeeded(&migrate.outcome).0.is_some(),
        "{:?}",
        migrate.outcome
    );
    let again = case.run(&rendered, "migrate");
    again.save("flyway", "already-applied");
    succeeded(&again.outcome);
    assert_eq!(
        case.server
            .psql(
                &case.database,
                "SELECT to_regclass('catalog.items') IS NOT NULL"
            )
            .expect("psql"),
        "t"
    );
}

#[test]
fn flyway_bad_sql_fails_for_good() {
    let Some(home) = flyway_home() else {
        return;
    };
    let case = Flyway::new(
        "flyway_bad_sql",
        &home,
        &[(
            "V1__broken.sql",
            "CREATE TABL catalog.broken (id BIGINT);\n",
        )],
    );
    let rendered = Rendered::new(&case.document, json!({}));
    let migrate = case.run(&rendered, "migrate");
    migrate.save("flyway", "bad-sql");
    let (_, message, retryable) = failed(&migrate.outcome);
    assert!(!retryable, "{message}");
    assert!(message.contains("syntax error"), "{message}");
}

#[test]
fn flyway_connection_refused_is_retryable() {
    let Some(home) = flyway_home() else {
        return;
    };
    let mut case = Flyway::new("flyway_refused", &home, FLYWAY_MIGRATIONS);
    case.document["spec"]["database"]["url"] = json!(format!(
        "jdbc:postgresql://127.0.0.1:{}/refused",
        closed_port()
    ));
    let rendered = Rendered::new(&case.document, json!({}));
    let migrate = case.run(&rendered, "migrate");
    migrate.save("flyway", "connection-refused");
    let (_, message, retryable) = failed(&migrate.outcome);
    assert!(retryable, "{message}");
}
