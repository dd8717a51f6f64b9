//! The plugin authoring kit on the command line: `plugin new`, `plugin test`
//! and `plugin pack` with good and hostile input (bad names, occupied
//! directories, bad components, the wrong world, malformed and failing
//! cases, components a ConfigMap cannot hold), exit codes and messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::core::v1::ConfigMap;
use portfolio_operator::registry::configmaps;

use crate::common::{build_dir, repo};

/// Run the operator binary in `dir`, with a compile cache in cargo's
/// directory for test data.
fn run_in(dir: &Path, args: &[&str]) -> Output {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kit-plugin-cache");
    let mut command = Command::new(env!("CARGO_BIN_EXE_portfolio-operator"));
    command
        .current_dir(dir)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG");
    // `plugin new` has no runtime flags.
    if args.get(1) != Some(&"new") {
        command.arg("--plugin-cache-dir").arg(cache);
    }
    command.output().expect("run portfolio-operator")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn wasm(name: &str) -> String {
    build_dir()
        .join(format!("{name}.wasm"))
        .to_string_lossy()
        .into_owned()
}

fn failed_with(output: &Output, needle: &str) {
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "expected a failure: {stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}

const APP: &str = "apiVersion: portfolio.dev/v1alpha1\nkind: PortfolioApp\nmetadata:\n  name: shop\n  namespace: demo\nspec:\n  image: ghcr.io/acme/shop:1.4.2\n  ports:\n    - name: http\n      containerPort: 8080\n";

fn case(dir: &Path, name: &str, input: &str) -> PathBuf {
    let case = dir.join(name);
    std::fs::create_dir_all(&case).expect("mkdir");
    std::fs::write(case.join("input.yaml"), input).expect("write");
    case
}

#[test]
fn plugin_new_refuses_bad_names_and_occupied_directories_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in ["Team_Web", "serde", "1st", "a/b"] {
        let output = run_in(dir.path(), &["plugin", "new", bad, "--world", "generator"]);
        failed_with(&output, "cannot be a plugin name");
    }
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);

    let occupied = dir.path().join("occupied");
    std::fs::create_dir(&occupied).expect("mkdir");
    std::fs::write(occupied.join("Cargo.toml"), "mine").expect("write");
    let output = run_in(
        dir.path(),
        &[
            "plugin",
            "new",
            "team-web",
            "--world",
            "generator",
            "--dir",
            "occupied",
        ],
    );
    failed_with(&output, "already exists and is not empty");
    assert_eq!(
        std::fs::read_to_string(occupied.join("Cargo.toml")).expect("kept"),
        "mine"
    );

    let output = run_in(
        dir.path(),
        &[
            "plugin",
            "new",
            "team-web",
            "--world",
            "generator",
            "--sdk-path",
            "/nonexistent",
        ],
    );
    failed_with(&output, "is not a portfolio-operator checkout");
    assert!(!dir.path().join("team-web").exists());

    let output = run_in(
        dir.path(),
        &["plugin", "new", "team-web", "--world", "generator"],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("cargo build --release --target wasm32-wasip2"));
    let manifest =
        std::fs::read_to_string(dir.path().join("team-web/Cargo.toml")).expect("manifest");
    let sdk = repo().join("plugins/sdk");
    assert!(
        manifest.contains(&format!("path = {:?}", sdk.to_string_lossy())),
        "{manifest}"
    );
}

#[test]
fn plugin_test_records_passes_and_shows_a_diff_when_the_output_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = dir.path().join("cases");
    case(&cases, "web", APP);
    let cases_arg = cases.to_string_lossy().into_owned();
    let generator = wasm("deployment_generator");
    let test = |extra: &[&str]| {
        let mut args = vec!["plugin", "test", &generator, "--cases", &cases_arg];
        args.extend_from_slice(extra);
        run_in(dir.path(), &args)
    };

    // No expectation yet: a failure that shows what the plugin returns.
    let output = test(&[]);
    assert!(!output.status.success());
    let stdout = text(&output.stdout);
    assert!(stdout.contains("FAILED   web: no expectation"), "{stdout}");
    assert!(stdout.contains("kind: Deployment"), "{stdout}");

    let output = test(&["--update"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("recorded web"));
    let expected_path = cases.join("web/expected.yaml");
    let expected = std::fs::read_to_string(&expected_path).expect("recorded");
    assert!(
        expected.contains("portfolio.dev/plugin: deployment-generator"),
        "{expected}"
    );
    assert!(!expected.contains("plugin-digest"), "{expected}");

    let output = test(&[]);
    assert!(output.status.success(), "{}", text(&output.stdout));
    assert!(text(&output.stdout).contains("ok       web"));
    assert!(text(&output.stdout).contains("1 passed, 0 failed"));

    // A changed expectation: a diff, and a non-zero exit.
    std::fs::write(
        &expected_path,
        expected.replace("replicas: 1", "replicas: 3"),
    )
    .expect("edit");
    let output = test(&[]);
    failed_with(&output, "1 of 1 cases failed");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("FAILED   web: the output differs"),
        "{stdout}"
    );
    let changed = |sign: char, line: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with(sign) && l.trim_start_matches(sign).trim() == line)
    };
    assert!(changed('-', "replicas: 3"), "{stdout}");
    assert!(changed('+', "replicas: 1"), "{stdout}");

    // An invalid spec: the expected error, recorded and checked.
    case(
        &cases,
        "bad",
        &APP.replace("image: ghcr.io/acme/shop:1.4.2", "image: ''"),
    );
    std::fs::remove_dir_all(cases.join("web")).expect("rm");
    let output = test(&["--update"]);
    assert!(output.status.success(), "{}", text(&output.stdout));
    let expected = std::fs::read_to_string(cases.join("bad/expected.yaml")).expect("recorded");
    assert!(expected.contains("reason: InvalidSpec"), "{expected}");
    assert!(test(&[]).status.success());
}

#[test]
fn plugin_test_names_the_file_of_a_malformed_case_and_refuses_bad_components() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = dir.path().join("cases");
    case(&cases, "not-yaml", "kind: [");
    case(
        &cases,
        "not-ours",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    );
    case(
        &cases,
        "other-plugin",
        &format!("{APP}  generator:\n    plugin: team-web\n"),
    );
    let cases_arg = cases.to_string_lossy().into_owned();
    let output = run_in(
        dir.path(),
        &[
            "plugin",
            "test",
            &wasm("deployment_generator"),
            "--cases",
            &cases_arg,
        ],
    );
    failed_with(&output, "3 of 3 cases failed");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("not-yaml/input.yaml: not valid YAML"),
        "{stdout}"
    );
    assert!(
        stdout.contains("not-ours/input.yaml: this is a v1 ConfigMap"),
        "{stdout}"
    );
    assert!(
        stdout.contains("spec.generator.plugin is \"team-web\", which deployment-generator@"),
        "{stdout}"
    );

    // The wrong world, for every case.
    std::fs::remove_dir_all(&cases).expect("rm");
    case(&cases, "web", APP);
    let output = run_in(
        dir.path(),
        &["plugin", "test", &wasm("flyway"), "--cases", &cases_arg],
    );
    failed_with(&output, "1 of 1 cases failed");
    assert!(
        text(&output.stdout)
            .contains("is a migration-strategy plugin, but a generator plugin is needed here"),
        "{}",
        text(&output.stdout)
    );

    // Not a component at all.
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, "not wasm").expect("write");
    let output = run_in(
        dir.path(),
        &[
            "plugin",
            "test",
            &bogus.to_string_lossy(),
            "--cases",
            &cases_arg,
        ],
    );
    failed_with(&output, "not a usable plugin");

    // No cases.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let output = run_in(
        dir.path(),
        &[
            "plugin",
            "test",
            &wasm("deployment_generator"),
            "--cases",
            &empty.to_string_lossy(),
        ],
    );
    failed_with(&output, "no cases");
}

#[test]
fn plugin_pack_prints_a_config_map_the_operator_reads_back_and_nothing_on_refusal() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("settings.yaml"), "labels:\n  team: web\n").expect("write");
    std::fs::write(dir.path().join("limits.yaml"), "timeoutMs: 300\n").expect("write");
    let generator = wasm("deployment_generator");
    let output = run_in(
        dir.path(),
        &[
            "plugin",
            "pack",
            &generator,
            "-n",
            "team-plugins",
            "--settings",
            "settings.yaml",
            "--limits",
            "limits.yaml",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains(", gzip in ConfigMap team-plugins/deployment-generator"));
    let value: serde_json::Value = serde_saphyr::from_str(&text(&output.stdout)).expect("YAML");
    let config_map: ConfigMap = serde_json::from_value(value).expect("a ConfigMap");
    let read = configmaps::read(&config_map, 32 << 20).expect("the operator reads it");
    assert_eq!(read.bytes, std::fs::read(&generator).expect("component"));
    assert_eq!(read.options.settings["labels"]["team"], "web");
    assert_eq!(read.options.limits.timeout_ms, Some(300));

    // Refused: nothing on standard output.
    std::fs::write(dir.path().join("bad-limits.yaml"), "timeoutMs: 0\n").expect("write");
    for args in [
        vec!["plugin", "pack", "missing.wasm"],
        vec!["plugin", "pack", "settings.yaml"],
        vec!["plugin", "pack", &generator, "--limits", "bad-limits.yaml"],
        vec!["plugin", "pack", &generator, "-n", "Bad_Namespace"],
    ] {
        let output = run_in(dir.path(), &args);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            output.stdout.is_empty(),
            "{args:?} printed {}",
            text(&output.stdout)
        );
        assert!(
            !text(&output.stderr).contains("panicked"),
            "{}",
            text(&output.stderr)
        );
    }
}
