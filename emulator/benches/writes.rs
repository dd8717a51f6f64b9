//! Throughput of the emulator: simple writes per second over HTTP, watch fan-out to 50
//! watchers, and lists of 1 000 objects (a controller's start). Prints figures; it asserts
//! nothing about speed (`cargo bench -p emulator`).

use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde_json::json;

const WRITES: usize = 20_000;
const CONCURRENCY: usize = 32;
const WATCHERS: usize = 50;
const FANOUT_WRITES: usize = 2_000;

async fn client(emu: &emulator::Emulator) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(emu.kubeconfig_path()).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

fn cm(name: String) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"bench": "true"}}, "data": {"key": "value"}}),
    )
    .expect("configmap")
}

async fn writes(emu: &emulator::Emulator) -> f64 {
    let api: Api<ConfigMap> = Api::namespaced(client(emu).await, "default");
    let start = Instant::now();
    futures_util::stream::iter(0..WRITES)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &cm(format!("w-{i}")))
                    .await
                    .expect("create")
            }
        })
        .buffer_unordered(CONCURRENCY)
        .for_each(|_| async {})
        .await;
    WRITES as f64 / start.elapsed().as_secs_f64()
}

fn in_process_writes(emu: &emulator::Emulator) -> f64 {
    let api = emu.api();
    let rt = api.resolve("", "v1", "configmaps").expect("configmaps");
    let opts = emulator::api::WriteOptions {
        field_manager: Some("bench".into()),
        ..Default::default()
    };
    let start = Instant::now();
    for i in 0..WRITES {
        let body = json!({"metadata": {"name": format!("p-{i}")}, "data": {"key": "value"}});
        api.create(&rt, "default", body, &opts).expect("create");
    }
    WRITES as f64 / start.elapsed().as_secs_f64()
}

async fn fanout(emu: &emulator::Emulator) -> (f64, Duration) {
    let c = client(emu).await;
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "fanout"}})).expect("ns"),
    )
    .await
    .expect("namespace");
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "fanout");
    let rv = api
        .list(&Default::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut tasks = Vec::new();
    for _ in 0..WATCHERS {
        let stream = api
            .watch(&WatchParams::default().timeout(290), &rv)
            .await
            .expect("watch");
        tasks.push(tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut n = 0;
            while n < FANOUT_WRITES {
                match stream.try_next().await {
                    Ok(Some(WatchEvent::Added(_))) => n += 1,
                    Ok(Some(_)) => {}
                    other => panic!("watch ended early: {other:?}"),
                }
            }
        }));
    }
    let start = Instant::now();
    futures_util::stream::iter(0..FANOUT_WRITES)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &cm(format!("f-{i}")))
                    .await
                    .expect("create")
            }
        })
        .buffer_unordered(CONCURRENCY)
        .for_each(|_| async {})
        .await;
    for t in tasks {
        t.await.expect("watcher");
    }
    let took = start.elapsed();
    ((WATCHERS * FANOUT_WRITES) as f64 / took.as_secs_f64(), took)
}

/// Create namespace `name` through the in-process API.
fn create_namespace(api: &emulator::Api, name: &str) {
    let namespaces = api.resolve("", "v1", "namespaces").expect("namespaces");
    let opts = emulator::api::WriteOptions {
        field_manager: Some("bench".into()),
        ..Default::default()
    };
    api.create(&namespaces, "", json!({"metadata": {"name": name}}), &opts)
        .expect("namespace");
}

/// Objects in a list: as many as the operator's restart lists per kind.
const LISTED: usize = 1_000;

/// The best of three lists of [`LISTED`] ConfigMaps of about 2 KiB each (a
/// Deployment's size), over HTTP and in process: (bytes, HTTP, in process).
async fn lists(emu: &emulator::Emulator) -> (usize, Duration, Duration) {
    let api = emu.api();
    let rt = api.resolve("", "v1", "configmaps").expect("configmaps");
    let opts = emulator::api::WriteOptions {
        field_manager: Some("bench".into()),
        ..Default::default()
    };
    create_namespace(api, "lists");
    let filler = "x".repeat(64);
    for i in 0..LISTED {
        let data: serde_json::Map<String, serde_json::Value> = (0..24)
            .map(|k| (format!("key-{k:02}"), json!(filler)))
            .collect();
        let body = json!({
            "metadata": {"name": format!("l-{i:04}"), "labels": {"app": format!("l-{i:04}"), "bench": "true"}},
            "data": data,
        });
        api.create(&rt, "lists", body, &opts).expect("create");
    }
    let c = client(emu).await;
    let (mut bytes, mut http, mut in_process) = (0, Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let start = Instant::now();
        let request = http::Request::get("/api/v1/namespaces/lists/configmaps")
            .body(Vec::new())
            .expect("request");
        bytes = c.request_text(request).await.expect("list").len();
        http = http.min(start.elapsed());
        let start = Instant::now();
        let list = api
            .list_json(&rt, Some("lists"), &Default::default())
            .expect("list");
        std::hint::black_box(list);
        in_process = in_process.min(start.elapsed());
    }
    (bytes, http, in_process)
}

/// A Deployment as an operator applies it: labels, an owner, a pod template.
fn deployment(name: &str, version: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "bench", "bench/version": version},
            "annotations": {"bench/digest": format!("sha256:{version}")},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name}},
                "spec": {"containers": [{
                    "name": "app", "image": "ghcr.io/acme/shop:1.4.2",
                    "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
                    "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "FEATURE", "value": "true"}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                }]},
            },
        },
    })
}

/// Server-side applies of [`APPLIED`] Deployments in process, forced, as an
/// operator makes them: first each creates its object, then each changes a
/// label and an annotation. Microseconds per apply: (create, update).
fn in_process_applies(emu: &emulator::Emulator) -> (f64, f64) {
    const APPLIED: usize = 500;
    let api = emu.api();
    let rt = api
        .resolve("apps", "v1", "deployments")
        .expect("deployments");
    let opts = emulator::api::WriteOptions {
        field_manager: Some("bench".into()),
        force: true,
        ..Default::default()
    };
    create_namespace(api, "applies");
    // The first Deployment of a process builds the kind's schema (tens of
    // milliseconds, once): not an apply's cost.
    api.patch(
        &rt,
        "applies",
        "warm-up",
        emulator::api::Sub::Main,
        emulator::patch::PatchType::Apply,
        deployment("warm-up", "1"),
        &opts,
    )
    .expect("apply");
    let each = |version: &str| {
        let start = Instant::now();
        for i in 0..APPLIED {
            let name = format!("a-{i:04}");
            api.patch(
                &rt,
                "applies",
                &name,
                emulator::api::Sub::Main,
                emulator::patch::PatchType::Apply,
                deployment(&name, version),
                &opts,
            )
            .expect("apply");
        }
        start.elapsed().as_secs_f64() * 1e6 / APPLIED as f64
    };
    (each("1"), each("2"))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let emu = emulator::Emulator::builder()
        .history_window(100_000)
        .start()
        .expect("emulator");
    println!(
        "emulator start_ms={:.2}",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let started = Instant::now();
    let cluster = emulator::Emulator::cluster().expect("cluster");
    println!(
        "emulator cluster_start_ms={:.2}",
        started.elapsed().as_secs_f64() * 1000.0
    );
    drop(cluster);
    let w = rt.block_on(writes(&emu));
    println!("emulator writes_per_s={w:.0}");
    println!(
        "emulator in_process_writes_per_s={:.0}",
        in_process_writes(&emu)
    );
    let (create, update) = in_process_applies(&emu);
    println!("emulator in_process_apply create_us={create:.0} update_us={update:.0}");
    let (bytes, http, in_process) = rt.block_on(lists(&emu));
    println!(
        "emulator list objects={LISTED} bytes={bytes} http_ms={:.1} in_process_ms={:.1}",
        http.as_secs_f64() * 1000.0,
        in_process.as_secs_f64() * 1000.0
    );
    let (d, took) = rt.block_on(fanout(&emu));
    println!(
        "emulator watch_fanout watchers={WATCHERS} writes={FANOUT_WRITES} deliveries_per_s={d:.0} all_delivered_ms={}",
        took.as_millis()
    );
}
