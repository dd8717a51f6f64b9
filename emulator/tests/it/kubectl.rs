//! kubectl cases of the conformance suite: the installed kubectl against the emulator's
//! kubeconfig (or the real cluster of `EMULATOR_CONFORMANCE_KUBECONFIG`).

use serde_json::{Value, json};

use crate::common::{Cluster, real_cluster};

fn crd_yaml(group: &str, short: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget, shortNames: [{short}]}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    additionalPrinterColumns:
    - {{name: Size, type: integer, jsonPath: .spec.size}}
    - {{name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: What the gadget should be.
            properties:
              size: {{type: integer, minimum: 0, description: How big.}}
              color: {{type: string}}
          status:
            type: object
            properties:
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {{type: string}}
                    status: {{type: string}}
"#
    )
}

fn gadget_yaml(group: &str, size: u32) -> String {
    format!(
        "apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: g1\nspec:\n  size: {size}\n  color: red\n"
    )
}

fn must(c: &Cluster, args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out, err) = c.kubectl_stdin(args, stdin);
    assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
    out
}

/// The test's Gadget CRD: a group and a short name of its own (CRDs are cluster-wide, and
/// on a shared cluster a common short name resolves to another test's resource), deleted
/// when the test ends. Answers the group and the short name.
fn setup(c: &Cluster) -> (String, String) {
    let group = format!("{}.kubectl.example.com", c.ns);
    let short = c.unique("gdg");
    c.delete_at_end("customresourcedefinition", &format!("gadgets.{group}"));
    must(c, &["apply", "-f", "-"], Some(&crd_yaml(&group, &short)));
    must(
        c,
        &[
            "wait",
            "--for=condition=Established",
            &format!("crd/gadgets.{group}"),
            "--timeout=60s",
        ],
        None,
    );
    (group, short)
}

#[tokio::test]
async fn kubectl_get_namespaces() {
    let c = Cluster::new().await;
    let out = must(&c, &["get", "ns"], None);
    assert!(out.starts_with("NAME"), "{out}");
    assert!(
        out.contains("default") && out.contains("kube-system") && out.contains("Active"),
        "{out}"
    );
}

#[tokio::test]
async fn kubectl_apply_crd_and_custom_resource_then_get_by_short_name() {
    let c = Cluster::new().await;
    let (group, short) = setup(&c);
    let out = must(
        &c,
        &["-n", &c.ns, "apply", "-f", "-"],
        Some(&gadget_yaml(&group, 2)),
    );
    assert!(out.contains("created"), "{out}");
    let out = must(
        &c,
        &["-n", &c.ns, "apply", "-f", "-"],
        Some(&gadget_yaml(&group, 2)),
    );
    assert!(out.contains("unchanged"), "{out}");
    let out = must(
        &c,
        &["-n", &c.ns, "apply", "-f", "-"],
        Some(&gadget_yaml(&group, 4)),
    );
    assert!(out.contains("configured"), "{out}");
    let out = must(&c, &["-n", &c.ns, "get", &short], None);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        vec!["NAME", "SIZE", "READY"],
        "{out}"
    );
    assert!(
        lines[1].starts_with("g1") && lines[1].contains('4'),
        "{out}"
    );
}

#[tokio::test]
async fn kubectl_apply_server_side() {
    let c = Cluster::new().await;
    let (group, short) = setup(&c);
    let out = must(
        &c,
        &["-n", &c.ns, "apply", "--server-side", "-f", "-"],
        Some(&gadget_yaml(&group, 1)),
    );
    assert!(out.contains("serverside-applied"), "{out}");
    let out = must(
        &c,
        &[
            "-n",
            &c.ns,
            "get",
            &short,
            "g1",
            "-o",
            "json",
            "--show-managed-fields",
        ],
        None,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(v["metadata"]["managedFields"][0]["operation"], "Apply");
    // Another manager's change conflicts until forced.
    let (ok, _, err) = c.kubectl_stdin(
        &[
            "-n",
            &c.ns,
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            "-",
        ],
        Some(&gadget_yaml(&group, 9)),
    );
    assert!(!ok && err.contains("conflict"), "{err}");
    must(
        &c,
        &[
            "-n",
            &c.ns,
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&gadget_yaml(&group, 9)),
    );
    let out = must(
        &c,
        &[
            "-n",
            &c.ns,
            "get",
            &short,
            "g1",
            "-o",
            "jsonpath={.spec.size}",
        ],
        None,
    );
    assert_eq!(out, "9");
}

#[tokio::test]
async fn kubectl_patch_status_and_wait_for_condition() {
    let c = Cluster::new().await;
    let (group, short) = setup(&c);
    must(
        &c,
        &["-n", &c.ns, "apply", "-f", "-"],
        Some(&gadget_yaml(&group, 1)),
    );
    let status =
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}).to_string();
    must(
        &c,
        &[
            "-n",
            &c.ns,
            "patch",
            &short,
            "g1",
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ],
        None,
    );
    let out = must(
        &c,
        &[
            "-n",
            &c.ns,
            "wait",
            "--for=condition=Ready",
            &format!("{short}/g1"),
            "--timeout=60s",
        ],
        None,
    );
    assert!(out.contains("condition met"), "{out}");
    let out = must(&c, &["-n", &c.ns, "get", &short], None);
    assert!(out.contains("True"), "{out}");
}

#[tokio::test]
async fn kubectl_patch_status_of_a_builtin() {
    // An Ingress: no controller of a bare cluster writes its status (a Deployment's would
    // race the Deployment controller).
    let c = Cluster::new().await;
    let ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}});
    must(
        &c,
        &["-n", &c.ns, "apply", "-f", "-"],
        Some(&ing.to_string()),
    );
    must(
        &c,
        &[
            "-n",
            &c.ns,
            "patch",
            "ingress",
            "web",
            "--subresource=status",
            "-p",
            r#"{"status":{"loadBalancer":{"ingress":[{"ip":"10.0.0.9"}]}}}"#,
        ],
        None,
    );
    let out = must(
        &c,
        &[
            "-n",
            &c.ns,
            "get",
            "ingress",
            "web",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ],
        None,
    );
    assert_eq!(out, "10.0.0.9");
}

#[tokio::test]
async fn kubectl_delete_waits_for_deletion() {
    let c = Cluster::new().await;
    let (group, short) = setup(&c);
    must(
        &c,
        &["-n", &c.ns, "apply", "-f", "-"],
        Some(&gadget_yaml(&group, 1)),
    );
    let out = must(
        &c,
        &["-n", &c.ns, "delete", &short, "g1", "--timeout=60s"],
        None,
    );
    assert!(out.contains("deleted"), "{out}");
    let (ok, _, err) = c.kubectl(&["-n", &c.ns, "get", &short, "g1"]);
    assert!(!ok && err.contains("NotFound"), "{err}");
}

#[tokio::test]
async fn kubectl_get_events() {
    let c = Cluster::new().await;
    let ev = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"},
        "involvedObject": {"kind": "ConfigMap", "name": "thing", "namespace": c.ns},
        "reason": "Tested", "message": "it works", "type": "Normal",
        "firstTimestamp": "2025-01-01T00:00:00Z", "lastTimestamp": "2025-01-01T00:00:00Z", "count": 1,
        "source": {"component": "conftest"}});
    must(
        &c,
        &["-n", &c.ns, "create", "-f", "-"],
        Some(&ev.to_string()),
    );
    let out = must(&c, &["-n", &c.ns, "get", "events"], None);
    assert!(
        out.contains("Tested") && out.contains("it works") && out.contains("configmap/thing"),
        "{out}"
    );
}

#[tokio::test]
async fn kubectl_explain_custom_resource() {
    let c = Cluster::new().await;
    // With the group version given apart: kubectl reads `gadgets.<group>.spec` as the
    // resource `gadgets`, whichever group it finds first, and a shared cluster has many.
    let (group, _) = setup(&c);
    let out = must(
        &c,
        &[
            "explain",
            "gadgets.spec",
            &format!("--api-version={group}/v1"),
        ],
        None,
    );
    assert!(
        out.contains("What the gadget should be.") && out.contains("size"),
        "{out}"
    );
}

#[tokio::test]
async fn kubectl_create_from_file_and_label_selectors() {
    let c = Cluster::new().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}, "data": {"a": "b"}});
    must(
        &c,
        &["-n", &c.ns, "create", "-f", "-"],
        Some(&cm.to_string()),
    );
    must(&c, &["-n", &c.ns, "label", "cm", "one", "tier=front"], None);
    let out = must(
        &c,
        &["-n", &c.ns, "get", "cm", "-l", "tier=front", "-o", "name"],
        None,
    );
    assert_eq!(out.trim(), "configmap/one");
    let out = must(
        &c,
        &["-n", &c.ns, "get", "cm", "-l", "tier!=front", "-o", "name"],
        None,
    );
    assert!(!out.contains("configmap/one"), "{out}");
}

#[tokio::test]
async fn kubectl_create_typed_subcommands() {
    let c = Cluster::new().await;
    let extra = format!("{}-typed", c.ns);
    c.delete_at_end("namespace", &extra);
    must(&c, &["create", "namespace", &extra], None);
    must(
        &c,
        &[
            "-n",
            &extra,
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=b",
            "--from-literal=c=d",
        ],
        None,
    );
    must(
        &c,
        &[
            "-n",
            &extra,
            "create",
            "secret",
            "generic",
            "sec",
            "--from-literal=password=hunter2",
        ],
        None,
    );
    must(
        &c,
        &["-n", &extra, "create", "serviceaccount", "robot"],
        None,
    );
    let out = must(
        &c,
        &[
            "-n",
            &extra,
            "get",
            "cm",
            "cfg",
            "-o",
            "jsonpath={.data.a}{.data.c}",
        ],
        None,
    );
    assert_eq!(out, "bd");
    let out = must(
        &c,
        &[
            "-n",
            &extra,
            "get",
            "secret",
            "sec",
            "-o",
            "jsonpath={.data.password}",
        ],
        None,
    );
    assert_eq!(out, "aHVudGVyMg==");
    must(&c, &["-n", &extra, "get", "sa", "robot"], None);
    must(&c, &["delete", "namespace", &extra, "--timeout=60s"], None);
}

#[tokio::test]
async fn kubectl_get_watch_prints_rows() {
    use std::io::BufRead;
    let c = Cluster::new().await;
    let mut child = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args([
            "-n",
            &c.ns,
            "get",
            "configmaps",
            "--watch",
            "--output-watch-events",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Keep creating until the watch (which may start after the first create) reports one.
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = c.api();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut i = 0;
    while !seen
        .iter()
        .any(|l: &String| l.starts_with("ADDED") && l.contains("watched-"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no watch row in {seen:?}"
        );
        let cm =
            serde_json::from_value(json!({"metadata": {"name": format!("watched-{i}")}})).unwrap();
        api.create(&Default::default(), &cm).await.unwrap();
        i += 1;
        while let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter()
            .any(|l| l.contains("EVENT") && l.contains("NAME")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn kubectl_explain_builtin() {
    let c = Cluster::new().await;
    let out = must(&c, &["explain", "deployment.spec.replicas"], None);
    assert!(
        out.contains("replicas") && out.contains("<integer>"),
        "{out}"
    );
}

#[tokio::test]
async fn kube_emulator_binary_serves_kubectl() {
    if real_cluster().is_some() {
        eprintln!("skipped: needs an emulator of its own");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let kc = dir.path().join("kubeconfig");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .args(["--port", "0", "--kubeconfig"])
        .arg(&kc)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kube-emulator starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut out = String::new();
    while std::time::Instant::now() < deadline {
        if kc.exists() {
            let o = std::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kc)
                .args(["get", "ns", "-o", "name"])
                .env("KUBECACHEDIR", dir.path().join("cache"))
                .output()
                .expect("kubectl");
            out = String::from_utf8_lossy(&o.stdout).into_owned();
            if o.status.success() {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.contains("namespace/default"), "{out}");
    assert!(kc.exists(), "the kubeconfig asked for is kept");
}

#[tokio::test]
async fn kubectl_over_tls_with_token() {
    let c = Cluster::with(emulator::Emulator::builder().tls(true).token("s3cret")).await;
    if c.emu.is_none() {
        eprintln!("skipped: needs an emulator of its own");
        return;
    }
    let out = must(&c, &["get", "ns", "default", "-o", "name"], None);
    assert_eq!(out.trim(), "namespace/default");
}

#[tokio::test]
async fn kube_emulator_cluster_mode_runs_workloads() {
    if real_cluster().is_some() {
        eprintln!("skipped: needs an emulator of its own");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let kc = dir.path().join("kubeconfig");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .args([
            "--cluster",
            "--pod-start-delay",
            "50ms",
            "--job-duration",
            "100ms",
            "--kubeconfig",
        ])
        .arg(&kc)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kube-emulator starts");
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut cmd = std::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&kc)
            .args(args)
            .env("KUBECACHEDIR", dir.path().join("cache"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut c = cmd.spawn().expect("kubectl");
        if let (Some(input), Some(mut s)) = (stdin, c.stdin.take()) {
            s.write_all(input.as_bytes()).expect("stdin");
        }
        let o = c.wait_with_output().expect("kubectl output");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(kc.exists() && kubectl(&["get", "ns", "default"], None).0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the emulator never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: m, image: flyway/flyway}]\n";
    let results = [
        kubectl(&["apply", "-f", "-"], Some(manifest)),
        kubectl(&["rollout", "status", "deploy/web", "--timeout=60s"], None),
        kubectl(
            &[
                "wait",
                "--for=condition=Complete",
                "job/migrate",
                "--timeout=60s",
            ],
            None,
        ),
        kubectl(&["get", "pods,nodes", "--no-headers"], None),
    ];
    let _ = child.kill();
    let _ = child.wait();
    for (ok, out) in &results {
        assert!(ok, "{out}");
    }
    let pods = &results[3].1;
    assert_eq!(pods.matches(" Running ").count(), 2, "{pods}");
    assert_eq!(pods.matches(" Completed ").count(), 1, "{pods}");
    assert!(pods.contains(" Ready "), "the node: {pods}");
}
