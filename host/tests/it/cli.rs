//! The command line: `render` against checked-in expected output, `plugin
//! inspect`, and clear errors (no panic, no backtrace) for bad input.

use std::path::Path;
use std::process::{Command, Output};

use portfolio_operator::plugin::Digest;

use crate::common::{build_dir, component, repo};

/// Run the operator binary from the repository root, with a compile cache
/// of its own in cargo's directory for test data (not the user's cache).
fn run(args: &[&str]) -> Output {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-plugin-cache");
    Command::new(env!("CARGO_BIN_EXE_portfolio-operator"))
        .current_dir(repo())
        .args(args)
        .arg("--plugin-cache-dir")
        .arg(cache)
        // A backtrace must never reach the user, even when asked for.
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("run portfolio-operator")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The digests of the built-in plugins depend on the Rust toolchain that
/// built them; expected output names them by placeholder, e.g.
/// `${FLYWAY_DIGEST}`.
fn placeholders() -> Vec<(String, String)> {
    portfolio_operator::builtin::BUILTINS
        .iter()
        .map(|builtin| {
            let stem = builtin.file.trim_end_matches(".wasm").to_uppercase();
            (
                Digest::of(builtin.bytes).to_string(),
                format!("${{{stem}_DIGEST}}"),
            )
        })
        .collect()
}

/// Compare `render -f examples/NAME.yaml` with `examples/expected/NAME.yaml`;
/// `UPDATE_GOLDEN=1` rewrites the expected file instead.
fn golden(name: &str) {
    let output = run(&["render", "-f", &format!("examples/{name}.yaml")]);
    assert!(
        output.status.success(),
        "render {name} failed: {}",
        stderr(&output)
    );
    let actual = stdout(&output);
    let mut normalised = actual.clone();
    for (digest, placeholder) in placeholders() {
        normalised = normalised.replace(&digest, &placeholder);
    }
    assert!(
        !normalised.contains("plugin-digest: sha256:"),
        "every digest annotation names an embedded plugin"
    );
    let path = repo()
        .join("examples/expected")
        .join(format!("{name}.yaml"));
    let header = format!(
        "# Expected output of `portfolio-operator render -f examples/{name}.yaml`.\n# Rewrite with UPDATE_GOLDEN=1 cargo test -p portfolio-operator --test it cli::\n# ${{…_DIGEST}} stands for a built-in plugin's digest (it depends on the toolchain).\n"
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, format!("{header}{normalised}")).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    let expected: String = expected
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(
        normalised,
        expected,
        "render output differs from {}",
        path.display()
    );
}

#[test]
fn every_example_renders_to_its_expected_output() {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("examples"))
        .expect("examples")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            path.file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert!(names.contains(&"sample-app".to_owned()));
    for name in names {
        golden(&name);
    }
}

#[test]
fn render_prints_a_deployment_a_service_and_a_config_map() {
    let output = run(&["render", "-f", "examples/sample-app.yaml", "-o", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(list["kind"], "List");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]
    );
    for item in list["items"].as_array().expect("items") {
        let labels = &item["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "portfolio-operator");
        assert_eq!(labels["app.kubernetes.io/instance"], "shop");
        assert_eq!(labels["portfolio.dev/plugin"], "deployment-generator");
        assert_eq!(item["metadata"]["namespace"], "demo");
        // Rendered offline the app has no uid, so there is no owner reference.
        assert!(item["metadata"].get("ownerReferences").is_none());
    }
}

#[test]
fn render_adds_an_owner_reference_when_the_app_has_a_uid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        "apiVersion: portfolio.dev/v1alpha1\nkind: PortfolioApp\nmetadata:\n  name: shop\n  uid: 0b6f1a2e-4c7d-4e4b-9a55-3f1d2c3b4a5e\nspec:\n  image: nginx:1.27\n",
    )
    .expect("write");
    let output = run(&["render", "-f", file.to_str().expect("utf-8"), "-o", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let owner = &list["items"][0]["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "PortfolioApp");
    assert_eq!(owner["uid"], "0b6f1a2e-4c7d-4e4b-9a55-3f1d2c3b4a5e");
    assert_eq!(owner["controller"], true);
    assert_eq!(list["items"][0]["metadata"]["namespace"], "default");
}

/// Run a failing command: exit code 1, one clear line, no panic, no backtrace.
fn expect_error(args: &[&str], expected: &[&str]) -> String {
    let output = run(args);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {message}");
    assert!(output.stdout.is_empty(), "nothing on stdout for {args:?}");
    assert!(message.starts_with("error: "), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    assert!(!message.contains("stack backtrace"), "{message}");
    for part in expected {
        assert!(
            message.contains(part),
            "{args:?}: expected {part:?} in {message}"
        );
    }
    message
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_str().expect("utf-8").to_owned()
}

const APP: &str = "apiVersion: portfolio.dev/v1alpha1\nkind: PortfolioApp\nmetadata:\n  name: shop\n  namespace: demo\nspec:\n";

#[test]
fn bad_input_gets_one_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    expect_error(
        &["render", "-f", "/no/such/file.yaml"],
        &["/no/such/file.yaml: cannot read it"],
    );
    let bad_yaml = write(d, "bad.yaml", "apiVersion: [\n");
    expect_error(&["render", "-f", &bad_yaml], &["bad.yaml: not valid YAML"]);
    let deployment = write(
        d,
        "deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n",
    );
    expect_error(
        &["render", "-f", &deployment],
        &[
            "deploy.yaml, document 1: this is a apps/v1 Deployment, not a portfolio.dev/v1alpha1 PortfolioApp",
        ],
    );
    let second = write(d, "second.yaml", &format!("{APP}  image: a:1\n---\n42\n"));
    expect_error(
        &["render", "-f", &second],
        &["second.yaml, document 2: expected a portfolio.dev/v1alpha1 object, found 42"],
    );
    let wrong_type = write(
        d,
        "type.yaml",
        &format!("{APP}  image: a:1\n  replicas: many\n"),
    );
    expect_error(
        &["render", "-f", &wrong_type],
        &["type.yaml, document 1: invalid PortfolioApp: spec.replicas: invalid type"],
    );
    let negative = write(
        d,
        "neg.yaml",
        &format!("{APP}  image: a:1\n  replicas: -1\n"),
    );
    expect_error(
        &["render", "-f", &negative],
        &[
            "neg.yaml, document 1 (PortfolioApp demo/shop): plugin deployment-generator@0.1.0: generate: invalid spec: spec.replicas: must be between 0 and 1000, not -1",
        ],
    );
    let unknown = write(
        d,
        "unknown.yaml",
        &format!("{APP}  image: a:1\n  generator:\n    plugin: nope@^2\n"),
    );
    expect_error(
        &["render", "-f", &unknown],
        &["spec.generator.plugin: no generator plugin matches nope@^2"],
    );
    let bad_ref = write(
        d,
        "ref.yaml",
        &format!("{APP}  image: a:1\n  generator:\n    plugin: Nope\n"),
    );
    expect_error(
        &["render", "-f", &bad_ref],
        &["invalid plugin reference \"Nope\""],
    );
    let empty = write(d, "empty.yaml", "# nothing\n");
    expect_error(
        &["render", "-f", &empty],
        &["no portfolio.dev/v1alpha1 PortfolioApp or DatabaseMigration found"],
    );
}

#[test]
fn a_team_plugin_from_a_directory_is_used_and_policed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).expect("mkdir");
    std::fs::write(plugins.join("hostile.wasm"), component("hostile")).expect("write");
    let plugin_dir = plugins.to_str().expect("utf-8");

    let app = |settings: &str| {
        format!(
            "{APP}  image: a:1\n  generator:\n    plugin: hostile@0.1.0\n    settings: {settings}\n"
        )
    };
    let echo = write(
        dir.path(),
        "echo.yaml",
        &app(
            r#"{"objects": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "team"}}]}"#,
        ),
    );
    let output = run(&[
        "render",
        "-f",
        &echo,
        "--plugin-dir",
        plugin_dir,
        "-o",
        "json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(list["items"][0]["metadata"]["name"], "team");
    assert_eq!(
        list["items"][0]["metadata"]["labels"]["portfolio.dev/plugin"],
        "hostile"
    );

    let rbac = write(
        dir.path(),
        "rbac.yaml",
        &app(
            r#"{"objects": [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "admin"}}]}"#,
        ),
    );
    expect_error(
        &["render", "-f", &rbac, "--plugin-dir", plugin_dir],
        &[
            "plugin hostile@0.1.0 broke the output policy: rbac.authorization.k8s.io/v1 ClusterRole \"admin\": plugins may not create RBAC objects",
        ],
    );
    let elsewhere = write(
        dir.path(),
        "elsewhere.yaml",
        &app(
            r#"{"objects": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "kube-system"}}]}"#,
        ),
    );
    expect_error(
        &["render", "-f", &elsewhere, "--plugin-dir", plugin_dir],
        &["namespace \"kube-system\" is not the app's namespace \"demo\""],
    );
    let looping = write(dir.path(), "loop.yaml", &app(r#"{"mode": "loop"}"#));
    expect_error(
        &[
            "render",
            "-f",
            &looping,
            "--plugin-dir",
            plugin_dir,
            "--plugin-timeout-ms",
            "100",
        ],
        &["plugin hostile@0.1.0: generate: exceeded its time budget of 100 ms and was stopped"],
    );

    // Without the directory, the reference cannot be met.
    expect_error(
        &["render", "-f", &echo],
        &["no generator plugin matches hostile@0.1.0"],
    );
}

#[test]
fn plugin_inspect_describes_a_built_plugin() {
    let path = build_dir().join("deployment_generator.wasm");
    let output = run(&["plugin", "inspect", path.to_str().expect("utf-8")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let digest = Digest::of(&component("deployment_generator"));
    for expected in [
        "name:            deployment-generator",
        "version:         0.1.0",
        "world:           generator (portfolio:plugin/generation@0.1.0)",
        &format!("digest:          {digest}"),
        "apps/v1 Deployment",
        "v1 Service",
        "v1 ConfigMap",
        "autoscaling/v2 HorizontalPodAutoscaler",
        "batch/v1 Job",
        "\"allowedRegistries\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }

    let json = run(&[
        "plugin",
        "inspect",
        path.to_str().expect("utf-8"),
        "-o",
        "json",
    ]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(value["world"], "generator");
    assert_eq!(value["digest"], digest.to_string());
}

#[test]
fn plugin_inspect_refuses_what_is_not_a_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = write(dir.path(), "x.wasm", "hello");
    expect_error(
        &["plugin", "inspect", &text],
        &["x.wasm: not a usable plugin: is not WebAssembly"],
    );
    expect_error(
        &["plugin", "inspect", "/no/such.wasm"],
        &["cannot read /no/such.wasm"],
    );
}

#[test]
fn plugin_list_shows_the_built_ins() {
    let output = run(&["plugin", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("deployment-generator@0.1.0"));
    assert!(stdout(&output).contains("built-in"));
}

#[test]
fn a_watched_namespace_that_is_no_namespace_name_is_refused_before_anything_starts() {
    for (flag, value) in [
        ("run", "shop,Bad_NS"),
        ("run", "shop,,cart"),
        ("manifests", "-shop"),
    ] {
        let mut args = vec![flag];
        let flag_name = if flag == "run" {
            "--namespace"
        } else {
            "--watch-namespace"
        };
        if flag == "manifests" {
            args.extend(["--image", "example/operator:1"]);
        } else {
            // Nothing is reached: the value is refused first.
            args.extend(["--kubeconfig", "/nonexistent/kubeconfig"]);
        }
        let joined = format!("{flag_name}={value}");
        args.push(&joined);
        let output = run(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        let message = stderr(&output);
        assert!(
            message.contains("is not a namespace name"),
            "{args:?}: {message}"
        );
        assert!(!message.contains("panicked"), "{message}");
    }
}

#[test]
fn run_refuses_a_worker_thread_count_that_is_no_count() {
    for value in ["0", "-1", "many", "1025"] {
        let joined = format!("--worker-threads={value}");
        let args = ["run", "--kubeconfig", "/nonexistent/kubeconfig", &joined];
        let output = run(&args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
        assert!(message.contains("--worker-threads"), "{args:?}: {message}");
        assert!(!message.contains("panicked"), "{args:?}: {message}");
    }
    // manifests passes the flag on to run, checked as run checks it.
    let manifests = |threads: &str| {
        Command::new(env!("CARGO_BIN_EXE_portfolio-operator"))
            .args([
                "manifests",
                "--image",
                "example/operator:1",
                "--worker-threads",
            ])
            .arg(threads)
            .output()
            .expect("run portfolio-operator")
    };
    let output = manifests("0");
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(
        message.contains("invalid value '0' for '--worker-threads"),
        "{message}"
    );
    let output = manifests("2");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = printed.lines().map(str::trim).collect();
    assert!(
        lines
            .windows(2)
            .any(|pair| pair == ["- --worker-threads", "- \"2\""]),
        "{printed}"
    );
    // A valid count gets past the parse: what fails then is the kubeconfig.
    let output = run(&[
        "run",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
        "--worker-threads",
        "3",
    ]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("/nonexistent/kubeconfig"), "{message}");
}
