//! Fault injection, through the library and the HTTP control API under `/emulator/v1/`: each
//! fault is observed through HTTP the way a client of a failing API server sees it. These are
//! emulator-only facilities: against a real cluster every test is skipped.

use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent};
use serde_json::{Value, json};

use crate::common::{Cluster, api_err, emulator_only, eventually, stream_ends};

#[tokio::test]
async fn next_requests_fail_with_the_chosen_status() {
    let c = Cluster::new().await;
    emulator_only!(c);
    c.create_cm("x").await;
    let api: Api<ConfigMap> = c.api();
    let rule = emulator::FaultRule::fail(500)
        .verb("get")
        .resource("configmaps")
        .name("x")
        .times(2);
    let id = c.emu().control().add_fault(rule).unwrap();
    // Other requests are untouched.
    api.list(&ListParams::default())
        .await
        .expect("lists still work");
    for _ in 0..2 {
        let (code, reason, _) = api_err(api.get("x").await.unwrap_err());
        assert_eq!((code, reason.as_str()), (500, "InternalError"));
    }
    api.get("x")
        .await
        .expect("the fault expired after two requests");
    let log = c.emu().control().fault_log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].rule, id);
    assert_eq!(
        (log[0].request.verb.as_str(), log[0].request.name.as_str()),
        ("get", "x")
    );
    assert_eq!(log[0].request.namespace, c.ns);
}

#[tokio::test]
async fn conflicts_on_update() {
    let c = Cluster::new().await;
    emulator_only!(c);
    let current = c.create_cm("x").await;
    let api: Api<ConfigMap> = c.api();
    let (code, v) = c
        .control(
            "POST",
            "faults",
            json!({"verb": "update", "resource": "configmaps", "status": 409, "times": 1}),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let e = api
        .replace("x", &PostParams::default(), &current)
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(
                s.message.contains("the object has been modified"),
                "{}",
                s.message
            );
        }
        other => panic!("{other:?}"),
    }
    api.replace("x", &PostParams::default(), &current)
        .await
        .expect("then it works");
}

/// One HTTP/1.1 request on a fresh connection, with no client retrying anything: answers
/// the status code, the headers (lowercase names) and the JSON body.
async fn raw_http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
) -> (u16, Vec<(String, String)>, Value) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    // A blocking socket on a blocking thread: all this needs is write, then read to the end.
    let buf = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
        tcp.write_all(req.as_bytes()).expect("write");
        let mut buf = Vec::new();
        tcp.read_to_end(&mut buf).expect("read");
        buf
    })
    .await
    .expect("request thread");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a full answer");
    let mut lines = head.lines();
    let code = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (
        code,
        headers,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn throttling_and_unavailability_over_raw_http() {
    // kube-rs retries 429, 503 and 504 by itself: a raw request shows the fault.
    let c = Cluster::new().await;
    emulator_only!(c);
    c.create_cm("x").await;
    let addr = c.emu().addr();
    let path = format!("/api/v1/namespaces/{}/configmaps/x", c.ns);
    let (code, _) = c
        .control("POST", "faults", json!({"resource": "configmaps", "name": "x", "status": 429, "retryAfterSeconds": 2, "times": 1}))
        .await;
    assert_eq!(code, 201);
    let (code, headers, body) = raw_http(addr, "GET", &path).await;
    assert_eq!(code, 429);
    assert_eq!(header(&headers, "retry-after"), Some("2"));
    assert_eq!(body["reason"], "TooManyRequests");
    assert_eq!(body["details"]["retryAfterSeconds"], 2);
    c.emu()
        .control()
        .add_fault(
            emulator::FaultRule::fail(503)
                .resource("configmaps")
                .times(1),
        )
        .unwrap();
    let (code, _, body) = raw_http(addr, "GET", &path).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (503, Some("ServiceUnavailable"))
    );
    let (code, _, _) = raw_http(addr, "GET", &path).await;
    assert_eq!(code, 200);
    // Through kube-rs, which retries 503 by itself, the same fault is invisible.
    c.emu()
        .control()
        .add_fault(
            emulator::FaultRule::fail(503)
                .resource("configmaps")
                .times(1),
        )
        .unwrap();
    let api: Api<ConfigMap> = c.api();
    api.get("x").await.expect("kube-rs retried");
    // The log says which request each fault hit.
    let (_, log) = c.control("GET", "faults/log", Value::Null).await;
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["effect"], "status 429");
    assert_eq!(items[0]["request"]["name"], "x");
    assert_eq!(items[1]["effect"], "status 503");
}

#[tokio::test]
async fn faults_are_listed_and_removed_over_http() {
    let c = Cluster::new().await;
    emulator_only!(c);
    let (_, a) = c
        .control(
            "POST",
            "faults",
            json!({"status": 500, "resource": "secrets"}),
        )
        .await;
    let (_, b) = c
        .control("POST", "faults", json!({"delayMs": 1, "verb": "list"}))
        .await;
    let (code, list) = c.control("GET", "faults", Value::Null).await;
    assert_eq!(code, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (code, _) = c
        .control("DELETE", &format!("faults/{}", a["id"]), Value::Null)
        .await;
    assert_eq!(code, 200);
    let (_, list) = c.control("GET", "faults", Value::Null).await;
    assert_eq!(list["items"][0]["id"], b["id"]);
    let (code, _) = c.control("DELETE", "faults", Value::Null).await;
    assert_eq!(code, 200);
    let (_, list) = c.control("GET", "faults", Value::Null).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    // Malformed control requests get a Status, like the rest of the API.
    let (code, v) = c.control("POST", "faults", json!({"status": 200})).await;
    assert_eq!((code, v["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _) = c.control("POST", "faults", json!({"nonsense": true})).await;
    assert_eq!(code, 400);
    let (code, _) = c.control("GET", "nowhere", Value::Null).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn latency_delays_matching_requests() {
    let c = Cluster::new().await;
    emulator_only!(c);
    c.create_cm("x").await;
    let api: Api<ConfigMap> = c.api();
    let (code, _) = c
        .control(
            "POST",
            "faults",
            json!({"verb": "get", "resource": "configmaps", "delayMs": 300, "times": 1}),
        )
        .await;
    assert_eq!(code, 201);
    let t = Instant::now();
    api.get("x").await.expect("a slow get still succeeds");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    let (_, log) = c.control("GET", "faults/log", Value::Null).await;
    assert_eq!(log["items"][0]["effect"], "delay 300ms");
}

#[tokio::test]
async fn cutting_watches_over_http_ends_streams() {
    let c = Cluster::new().await;
    emulator_only!(c);
    let a = c.create_cm("x").await;
    let mut s = c.watch_cms(&a, 290).await;
    let (code, _) = c.control("POST", "watches/cut", Value::Null).await;
    assert_eq!(code, 200);
    assert!(stream_ends(&mut s).await);
}

#[tokio::test]
async fn next_watch_answers_gone_and_watchers_recover() {
    let c = Cluster::new().await;
    emulator_only!(c);
    let a = c.create_cm("x").await;
    let (code, _) = c
        .control(
            "POST",
            "watches/expire",
            json!({"resource": "configmaps", "count": 1}),
        )
        .await;
    assert_eq!(code, 200);
    let mut s = c.watch_cms(&a, 60).await;
    match s.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    // kube-runtime's watcher re-lists after a 410 and carries on.
    c.emu().control().expire_watches(emulator::WatchExpiry {
        resource: Some("configmaps".into()),
        namespace: Some(c.ns.clone()),
        count: Some(2),
    });
    let (reader, _reflecting) = c.cm_reflector();
    c.create_cm("y").await;
    c.reflected(&reader, 2, "the reflector to see both objects")
        .await;
}

#[tokio::test]
async fn compaction_over_http_expires_old_versions() {
    let c = Cluster::new().await;
    emulator_only!(c);
    let a = c.create_cm("x").await;
    c.create_cm("y").await;
    let (code, _) = c.control("POST", "compact", Value::Null).await;
    assert_eq!(code, 200);
    let mut s = c.watch_cms(&a, 60).await;
    match s.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test]
async fn hanging_pause_holds_requests_until_resumed() {
    let c = Cluster::new().await;
    emulator_only!(c);
    c.create_cm("x").await;
    let api: Api<ConfigMap> = c.api();
    let (code, v) = c.control("POST", "pause", json!({"mode": "hang"})).await;
    assert_eq!((code, &v["paused"]), (200, &json!("hang")));
    let pending = tokio::spawn({
        let api = api.clone();
        async move { api.get("x").await }
    });
    // Nothing can answer while paused: the request is still waiting.
    let waited = tokio::time::timeout(Duration::from_millis(300), async {
        while !pending.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_err(), "a paused server answered");
    // The control API still answers, so the test can resume over HTTP.
    let (code, v) = c.control("POST", "resume", Value::Null).await;
    assert_eq!((code, &v["paused"]), (200, &Value::Null));
    let got = tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .expect("answered after resume")
        .unwrap();
    assert_eq!(got.unwrap().metadata.name.as_deref(), Some("x"));
}

#[tokio::test]
async fn refusing_pause_closes_the_port_until_resumed() {
    let c = Cluster::new().await;
    emulator_only!(c);
    c.create_cm("x").await;
    let emu = c.emu();
    let addr = emu.addr();
    emu.control().pause(emulator::PauseMode::Refuse, None);
    eventually("connections to be refused", || async move {
        tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    emu.control().resume();
    let api: Api<ConfigMap> = c.api();
    let got = eventually("the server to answer again on the same port", || {
        let api = api.clone();
        async move { api.get("x").await.ok() }
    })
    .await;
    assert_eq!(got.metadata.name.as_deref(), Some("x"));
}

#[tokio::test]
async fn pause_over_http_resumes_by_itself() {
    let c = Cluster::new().await;
    emulator_only!(c);
    c.create_cm("x").await;
    let (code, _) = c
        .control(
            "POST",
            "pause",
            json!({"mode": "refuse", "durationMs": 1000}),
        )
        .await;
    assert_eq!(code, 200);
    // The port closes right after the answer went out.
    let addr = c.emu().addr();
    eventually("connections to be refused", || async move {
        tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let api: Api<ConfigMap> = c.api();
    eventually("the server to be back", || {
        let api = api.clone();
        async move { api.get("x").await.ok() }
    })
    .await;
    assert_eq!(c.emu().control().paused(), None);
}

#[tokio::test]
async fn watches_hang_while_paused_and_deliver_after() {
    let c = Cluster::new().await;
    emulator_only!(c);
    let a = c.create_cm("x").await;
    let mut s = c.watch_cms(&a, 60).await;
    c.emu().control().pause(emulator::PauseMode::Hang, None);
    // Written in-process: the paused server accepts no HTTP writes.
    let rt = c.emu().api().resolve("", "v1", "configmaps").unwrap();
    c.emu()
        .api()
        .create(
            &rt,
            &c.ns,
            json!({"metadata": {"name": "during"}}),
            &Default::default(),
        )
        .unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), s.try_next()).await;
    assert!(early.is_err(), "a paused server sent a watch event");
    c.emu().control().resume();
    let name = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match s.try_next().await.unwrap() {
                Some(WatchEvent::Bookmark(_)) => continue,
                Some(WatchEvent::Added(o)) => return o.metadata.name,
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .expect("delivered after resume");
    assert_eq!(name.as_deref(), Some("during"));
}
