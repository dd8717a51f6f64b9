//! Hostile and malformed input: arbitrary bodies, selectors, paths and query strings must get a
//! 2xx or 4xx answer (a `metav1.Status` for errors, or the plain-text 404 Kubernetes gives
//! paths no API serves), never a 5xx, a panic or a dropped connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

/// Sends one raw HTTP/1.1 request; answers the status code and body.
fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: emulator\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("the server answers instead of dropping the connection");
    let text = String::from_utf8_lossy(&out);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = match text.find("\r\n\r\n") {
        Some(i) => out[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (code, body)
}

fn check(code: u16, body: &[u8], what: &str) {
    let text = String::from_utf8_lossy(body);
    // Kubernetes itself answers 504 to a list at a resourceVersion from the future, and 500
    // to server-side apply of undeclared fields (kubernetes#139253).
    let future_rv = code == 504 && text.contains("Too large resource version");
    let undeclared = code == 500 && text.contains("failed to create typed patch object");
    assert!(
        code < 500 || future_rv || undeclared,
        "{what}: got {code}: {text}"
    );
    // Paths no API handler claims end in Go's `http.NotFound`, as in Kubernetes.
    if code == 404 && text == "404 page not found\n" {
        return;
    }
    if code >= 400 {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        assert_eq!(
            v["kind"],
            "Status",
            "{what}: error is not a Status: {}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(v["code"], code, "{what}");
    }
}

struct Fixture {
    emu: emulator::Emulator,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        // A static fixture is never dropped, so its kubeconfig goes to cargo's scratch
        // directory for integration tests (overwritten each run) rather than a temp file.
        let kubeconfig = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile.kubeconfig");
        let emu = emulator::Emulator::builder()
            .kubeconfig(kubeconfig)
            .start()
            .expect("emulator");
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "things.fuzz.example.com"},
            "spec": {"group": "fuzz.example.com", "scope": "Namespaced",
                "names": {"plural": "things", "kind": "Thing"},
                "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "n": {"type": "integer", "minimum": 0},
                            "s": {"type": "string", "pattern": "^[a-z]+$"},
                            "l": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                            "m": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}}]}
        });
        let (code, body) = send(emu.addr(), "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "application/json", crd.to_string().as_bytes());
        assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
        for (path, obj) in [
            ("/api/v1/namespaces/default/configmaps", json!({"metadata": {"name": "target"}, "data": {"a": "b"}})),
            ("/apis/fuzz.example.com/v1/namespaces/default/things", json!({"apiVersion": "fuzz.example.com/v1", "kind": "Thing", "metadata": {"name": "target"}, "spec": {"n": 1}})),
            ("/api/v1/namespaces/default/services", json!({"metadata": {"name": "target"}, "spec": {"ports": [{"port": 80}]}})),
            ("/apis/batch/v1/namespaces/default/jobs", json!({"metadata": {"name": "target"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}})),
            ("/api/v1/namespaces/default/secrets", json!({"metadata": {"name": "target"}, "stringData": {"a": "b"}})),
            ("/apis/apps/v1/namespaces/default/deployments", json!({"metadata": {"name": "target"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})),
        ] {
            let (code, body) = send(emu.addr(), "POST", path, "application/json", obj.to_string().as_bytes());
            assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
        }
        Fixture { emu }
    })
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z$/.:~0-9-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("metadata".to_string()),
                    Just("spec".to_string()),
                    Just("status".to_string()),
                    Just("data".to_string()),
                    Just("name".to_string()),
                    Just("labels".to_string()),
                    Just("finalizers".to_string()),
                    Just("$patch".to_string()),
                    Just("op".to_string()),
                    Just("path".to_string()),
                    Just("value".to_string()),
                    Just("apiVersion".to_string()),
                    Just("kind".to_string()),
                    Just("containers".to_string()),
                    Just("managedFields".to_string()),
                    "[a-z$]{1,6}",
                ],
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const TYPES: &[&str] = &[
    "application/json",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "text/plain",
];

const TARGETS: &[&str] = &[
    "/api/v1/namespaces/default/configmaps",
    "/api/v1/namespaces/default/services",
    "/apis/batch/v1/namespaces/default/jobs",
    "/api/v1/namespaces/default/secrets",
    "/apis/fuzz.example.com/v1/namespaces/default/things",
    "/apis/apps/v1/namespaces/default/deployments",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_bodies(body in arb_json(), t in 0..TYPES.len(), target in 0..TARGETS.len(), verb in 0..4usize) {
        let f = fixture();
        let base = TARGETS[target];
        let (method, path) = match verb {
            0 => ("POST", base.to_string()),
            1 => ("PUT", format!("{base}/target")),
            2 => ("PATCH", format!("{base}/target?fieldManager=fuzz")),
            _ => ("PATCH", format!("{base}/target/status?fieldManager=fuzz&force=true")),
        };
        let bytes = body.to_string();
        let (code, resp) = send(f.emu.addr(), method, &path, TYPES[t], bytes.as_bytes());
        check(code, &resp, &format!("{method} {path} {} {bytes}", TYPES[t]));
    }

    #[test]
    fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..256), t in 0..TYPES.len(), target in 0..TARGETS.len()) {
        let f = fixture();
        let path = format!("{}/target?fieldManager=fuzz", TARGETS[target]);
        let (code, resp) = send(f.emu.addr(), "PATCH", &path, TYPES[t], &body);
        check(code, &resp, &format!("PATCH {path} {:?}", String::from_utf8_lossy(&body)));
    }

    #[test]
    fn arbitrary_protobuf(body in prop::collection::vec(any::<u8>(), 0..200), kind in prop_oneof![
        Just(&b"\x0a\x0f\x0a\x02v1\x12\x09ConfigMap"[..]), Just(&b"\x0a\x0f\x0a\x02v1\x12\x09Namespace"[..]), Just(&b""[..]),
        Just(&b"\x0a\x15\x0a\x07apps/v1\x12\x0aDeployment"[..]), Just(&b"\x0a\x0f\x0a\x08batch/v1\x12\x03Job"[..]),
        Just(&b"\x0a\x09\x0a\x02v1\x12\x03Pod"[..]),
    ]) {
        let f = fixture();
        let mut payload = b"k8s\x00".to_vec();
        payload.extend_from_slice(kind);
        payload.extend_from_slice(&body);
        let (code, resp) = send(f.emu.addr(), "POST", TARGETS[0], "application/vnd.kubernetes.protobuf", &payload);
        check(code, &resp, &format!("protobuf {payload:?}"));
    }

    #[test]
    fn arbitrary_selectors_and_queries(sel in "[a-z=!,() .in/<>0-9-]{0,40}", key in prop_oneof![
        Just("labelSelector"), Just("fieldSelector"), Just("limit"), Just("continue"),
        Just("resourceVersion"), Just("resourceVersionMatch"), Just("timeoutSeconds"), Just("watch"),
    ]) {
        let f = fixture();
        let q: String = form_urlencoded::Serializer::new(String::new()).append_pair(key, &sel).finish();
        // A watch that starts would stream; bound it so the request ends.
        let path = format!("{}?{q}&timeoutSeconds=1", TARGETS[0]);
        let (code, resp) = send(f.emu.addr(), "GET", &path, "application/json", b"");
        check(code, &resp, &path);
    }

    #[test]
    fn arbitrary_paths(segs in prop::collection::vec("[a-z0-9%.{}-]{0,10}", 0..7), method in prop_oneof![
        Just("GET"), Just("POST"), Just("PUT"), Just("PATCH"), Just("DELETE"), Just("OPTIONS"),
    ]) {
        let f = fixture();
        for prefix in ["/api/v1", "/apis/apps/v1", "/apis"] {
            let path = format!("{prefix}/{}?timeoutSeconds=1", segs.join("/"));
            let (code, resp) = send(f.emu.addr(), method, &path, "application/json", b"{}");
            check(code, &resp, &format!("{method} {path}"));
        }
    }
}

/// An emulator of its own for the control API, whose requests may change how it behaves.
fn control_fixture() -> &'static emulator::Emulator {
    static F: std::sync::OnceLock<emulator::Emulator> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let kubeconfig =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-control.kubeconfig");
        emulator::Emulator::builder()
            .kubeconfig(kubeconfig)
            .cluster(true)
            .start()
            .expect("emulator")
    })
}

const CONTROL_PATHS: &[&str] = &[
    "",
    "/cluster",
    "/faults",
    "/faults/1",
    "/faults/x",
    "/faults/log",
    "/watches/cut",
    "/watches/expire",
    "/pause",
    "/resume",
    "/compact",
    "/outcomes",
    "/metrics",
    "/nowhere",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_control_requests(body in arb_json(), raw in prop::collection::vec(any::<u8>(), 0..64),
        path in 0..CONTROL_PATHS.len(), method in prop_oneof![Just("GET"), Just("POST"), Just("PATCH"), Just("PUT"), Just("DELETE")],
        as_json in any::<bool>()) {
        let emu = control_fixture();
        let bytes = if as_json { body.to_string().into_bytes() } else { raw };
        let p = format!("/emulator/v1{}", CONTROL_PATHS[path]);
        let (code, resp) = send(emu.addr(), method, &p, "application/json", &bytes);
        check(code, &resp, &format!("{method} {p}"));
        // Whatever the request did, the next case starts from a served, fault-free emulator.
        emu.control().resume();
        emu.control().clear_faults();
    }
}

#[test]
fn oversized_bodies_are_refused() {
    let f = fixture();
    let big = vec![b' '; 4 * 1024 * 1024];
    let (code, body) = send(f.emu.addr(), "POST", TARGETS[0], "application/json", &big);
    assert_eq!(code, 413, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn yaml_bombs_are_refused() {
    let f = fixture();
    let mut doc = String::from("a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
    for i in 0..12 {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            format!("l{}", i - 1)
        };
        doc.push_str(&format!("l{i}: &l{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    let (code, body) = send(
        f.emu.addr(),
        "PATCH",
        &format!("{}/target?fieldManager=fuzz", TARGETS[0]),
        "application/apply-patch+yaml",
        doc.as_bytes(),
    );
    check(code, &body, "yaml bomb");
    assert!(code >= 400);
}

#[test]
fn deeply_nested_bodies_are_refused() {
    let f = fixture();
    let path = format!("{}/target?fieldManager=fuzz", TARGETS[0]);
    for (ct, body) in [
        (
            "application/apply-patch+yaml",
            format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)),
        ),
        (
            "application/apply-patch+yaml",
            "a:\n".to_string()
                + &(1..2000)
                    .map(|i| format!("{}b:\n", " ".repeat(i)))
                    .collect::<String>(),
        ),
        (
            "application/merge-patch+json",
            format!("{}{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)),
        ),
        (
            "application/json",
            format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)),
        ),
    ] {
        let (code, resp) = send(
            f.emu.addr(),
            if ct == "application/json" {
                "PUT"
            } else {
                "PATCH"
            },
            &path,
            ct,
            body.as_bytes(),
        );
        check(code, &resp, &format!("deep {ct}"));
        assert!(code >= 400, "{ct}: {code}");
    }
}
