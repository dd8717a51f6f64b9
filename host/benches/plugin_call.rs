//! Benchmark: one `generate` of the sample app, three ways.
//!
//! - `wasm`: the built-in deployment generator through the operator's own
//!   runtime — a fresh store and instance from the pre-linked component
//!   (pooling allocator on), the input handed over, `generate` run, and its
//!   output copied out (`Plugin::generate_raw`).
//! - `native`: the same generator logic compiled into this benchmark and
//!   called directly.
//! - `http`: the same native logic behind a minimal HTTP endpoint on
//!   loopback, called with a keep-alive client that reads the whole reply —
//!   how webhook-based systems call their hooks.
//!
//! All three end with the objects as JSON text. What the operator does next
//! with them (validation, policy, decoration) is the same whichever way they
//! came; the cost of validation is printed on its own line for reference.
//!
//! Prints, last, one line per case:
//! `plugin_call case=<wasm|native|http> p50_us=<float> p99_us=<float>`.
//! `PLUGIN_CALL_SAMPLES` sets the number of timed calls per case (default
//! 5000); `PLUGIN_CALL_ONLY=wasm` runs one case (for profiling).

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portfolio_operator::builtin::BUILTINS;
use portfolio_operator::plugin::{CallContext, GenerateInput, LoadOptions, Runtime, RuntimeConfig};
use serde_json::{Value, json};

fn sample_spec() -> Value {
    // The spec of examples/sample-app.yaml, as the operator hands it over.
    json!({
        "image": "ghcr.io/acme/shop:1.4.2",
        "replicas": 2,
        "ports": [{"name": "http", "containerPort": 8080, "servicePort": 80, "protocol": "TCP"}],
        "config": {"LOG_LEVEL": "info", "FEATURE_CHECKOUT": "true"},
        "env": [{"name": "DATABASE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "shop-db", "key": "password"}}}],
    })
}

/// p50 and p99 of `samples` timed runs of `call`, after a warm-up.
fn measure(samples: usize, mut call: impl FnMut()) -> (f64, f64) {
    for _ in 0..samples / 10 + 10 {
        call();
    }
    let mut times: Vec<Duration> = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        call();
        times.push(started.elapsed());
    }
    percentiles(times)
}

/// p50 and p99, in microseconds.
fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let percentile = |p: f64| {
        let index = ((times.len() as f64 - 1.0) * p).round() as usize;
        times[index].as_secs_f64() * 1e6
    };
    (percentile(0.50), percentile(0.99))
}

fn main() {
    let samples = std::env::var("PLUGIN_CALL_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000usize);
    let only = std::env::var("PLUGIN_CALL_ONLY").ok();
    let wanted = |case: &str| only.as_deref().is_none_or(|only| only == case);
    let spec = sample_spec();
    let spec_text = spec.to_string();

    // (a) wasm, through the operator's runtime.
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let builtin = BUILTINS
        .iter()
        .find(|b| b.file == "deployment_generator.wasm")
        .expect("the deployment generator is built in");
    let plugin = runtime
        .load(builtin.bytes, &LoadOptions::default())
        .expect("load the deployment generator");
    let input = GenerateInput {
        name: "shop".into(),
        namespace: "demo".into(),
        spec: spec.clone(),
        ..GenerateInput::default()
    };
    let context = CallContext {
        object: "demo/shop".into(),
    };
    let objects = plugin
        .generate(&input, &context)
        .expect("generate")
        .objects
        .len();
    assert_eq!(objects, 4, "the sample app renders to four objects");
    let wasm = wanted("wasm").then(|| {
        measure(samples, || {
            black_box(
                plugin
                    .generate_raw(black_box(&input), &context)
                    .expect("generate"),
            );
        })
    });
    let raw = plugin.generate_raw(&input, &context).expect("generate");
    let validate = measure(samples, || {
        black_box(plugin.validate(raw.clone()).expect("valid output"));
    });

    // (b) native: the same logic, called directly.
    let native = wanted("native").then(|| {
        measure(samples, || {
            black_box(
                deployment_generator::generate("shop", black_box(&spec_text), "{}")
                    .expect("generate"),
            );
        })
    });

    // (c) http: the same logic behind a loopback endpoint, keep-alive client.
    let executor = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let http = wanted("http").then(|| {
        executor.block_on(async {
            let app = Router::new().route(
                "/generate",
                post(|body: Bytes| async move {
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let name = request["name"].as_str().unwrap_or_default().to_owned();
                    let spec = request["spec"].to_string();
                    match deployment_generator::generate(&name, &spec, "{}") {
                        Ok(objects) => format!("{{\"objects\":[{}]}}", objects.join(",")),
                        Err(invalid) => json!({"error": invalid.message}).to_string(),
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let address = listener.local_addr().expect("address");
            tokio::spawn(async move { axum::serve(listener, app).await });

            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            let uri: hyper::Uri = format!("http://{address}/generate").parse().expect("uri");
            let body =
                Bytes::from(json!({"name": "shop", "namespace": "demo", "spec": spec}).to_string());
            let call = || {
                let request = hyper::Request::post(uri.clone())
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))
                    .expect("request");
                let client = client.clone();
                async move {
                    let response = client.request(request).await.expect("response");
                    let bytes = response
                        .into_body()
                        .collect()
                        .await
                        .expect("body")
                        .to_bytes();
                    black_box(bytes)
                }
            };
            let reply: Value = serde_json::from_slice(&call().await).expect("JSON reply");
            assert_eq!(reply["objects"].as_array().map(Vec::len), Some(4));
            for _ in 0..samples / 10 + 10 {
                call().await;
            }
            let mut times = Vec::with_capacity(samples);
            for _ in 0..samples {
                let started = Instant::now();
                call().await;
                times.push(started.elapsed());
            }
            percentiles(times)
        })
    });

    println!(
        "# samples={samples} per case; validating the wasm output: p50_us={:.1} p99_us={:.1}",
        validate.0, validate.1
    );
    if let (Some(wasm), Some(native), Some(http)) = (wasm, native, http) {
        println!(
            "# wasm/native p50 ratio {:.1}, wasm/http p50 ratio {:.2}",
            wasm.0 / native.0,
            wasm.0 / http.0
        );
    }
    for (case, result) in [("wasm", wasm), ("native", native), ("http", http)] {
        if let Some((p50, p99)) = result {
            println!("plugin_call case={case} p50_us={p50:.1} p99_us={p99:.1}");
        }
    }
}
