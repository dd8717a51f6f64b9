//! Hostile and malformed components: each ends in its typed error within a
//! bounded time, and the host serves a normal call right after.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portfolio_operator::plugin::{
    CallFailure, LimitsOverride, LoadError, LoadOptions, Plugin, Runtime, World,
};
use serde_json::{Value, json};

use crate::common::{component, config_map, context, input, load, load_with, runtime, sample_spec};

/// Generous bound for a call whose budget is `budget`: the machine is noisy.
fn bound(budget: Duration) -> Duration {
    budget * 10
}

/// Call `hostile` with `spec`, check the failure, and check that both a
/// normal call of the same plugin and of the deployment generator still work.
fn expect_failure(
    runtime: &Runtime,
    plugin: &Plugin,
    spec: Value,
    budget: Duration,
) -> CallFailure {
    let started = Instant::now();
    let error = plugin
        .generate(&input(spec.clone()), &context())
        .expect_err("the hostile call must fail");
    let elapsed = started.elapsed();
    assert!(
        elapsed < bound(budget),
        "{spec}: took {elapsed:?}, more than 10 × {budget:?}"
    );
    assert_eq!(error.plugin, "hostile@0.1.0");
    assert_eq!(error.call, "generate");
    serves_normal_calls(runtime, plugin);
    error.failure
}

fn serves_normal_calls(runtime: &Runtime, hostile: &Plugin) {
    let echo = json!({"objects": [config_map("after")]});
    let output = hostile
        .generate(&input(echo), &context())
        .expect("a normal call right after a hostile one");
    assert_eq!(output.objects.len(), 1);
    let generator = load(runtime, "deployment_generator");
    let output = generator
        .generate(&input(sample_spec()), &context())
        .expect("the deployment generator after a hostile call");
    // ConfigMap, Deployment, Service and (two replicas) PodDisruptionBudget.
    assert_eq!(output.objects.len(), 4);
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile");
    let budget = plugin.limits().timeout;
    let failure = expect_failure(&runtime, &plugin, json!({"mode": "loop"}), budget);
    assert_eq!(failure, CallFailure::Deadline { budget });
    assert_eq!(failure.reason(), "PluginDeadlineExceeded");
}

#[test]
fn unbounded_memory_growth_is_out_of_memory() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile");
    let failure = expect_failure(
        &runtime,
        &plugin,
        json!({"mode": "memory"}),
        Duration::from_millis(200),
    );
    assert_eq!(
        failure,
        CallFailure::OutOfMemory {
            limit_bytes: 32 << 20
        }
    );
}

#[test]
fn deep_recursion_traps() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile");
    let failure = expect_failure(
        &runtime,
        &plugin,
        json!({"mode": "recursion"}),
        Duration::from_millis(200),
    );
    let CallFailure::Trap { message } = &failure else {
        panic!("expected a trap, got {failure:?}");
    };
    assert!(
        message.contains("call stack exhausted") || message.contains("out of bounds"),
        "{message}"
    );
}

#[test]
fn the_stack_limit_is_per_plugin() {
    let runtime = runtime();
    let roomy = load(&runtime, "hostile");
    let spec = json!({"mode": "recursion", "depth": 3000});
    let output = roomy
        .generate(&input(spec.clone()), &context())
        .expect("3000 frames fit in the default 512 KiB stack");
    assert_eq!(output.status["depth"], 3000);

    let tight = load_with(
        &runtime,
        "hostile",
        LimitsOverride {
            stack_kib: Some(64),
            ..Default::default()
        },
    );
    assert_eq!(tight.limits().stack_bytes, 64 << 10);
    assert_eq!(
        runtime.stats().engines,
        2,
        "a second engine for the second stack size"
    );
    let failure = expect_failure(&runtime, &tight, spec, Duration::from_millis(200));
    assert!(
        matches!(&failure, CallFailure::Trap { message } if message.contains("call stack exhausted")),
        "{failure:?}"
    );
    // The plugin with the default stack is unaffected.
    roomy
        .generate(
            &input(json!({"mode": "recursion", "depth": 3000})),
            &context(),
        )
        .expect("still fits");
}

#[test]
fn a_panic_traps() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile");
    let failure = expect_failure(
        &runtime,
        &plugin,
        json!({"mode": "panic"}),
        Duration::from_millis(200),
    );
    // A Rust panic reads RUST_BACKTRACE and writes to stderr before it
    // aborts; the sandbox grants neither, so the trap names the first.
    assert!(
        matches!(&failure, CallFailure::Trap { message } if message.contains("which the sandbox does not grant")),
        "{failure:?}"
    );
}

#[test]
fn a_hundred_megabytes_of_output_is_too_large() {
    let runtime = runtime();
    // Enough memory to build the output, so the output cap is what stops it.
    let roomy = load_with(
        &runtime,
        "hostile",
        LimitsOverride {
            memory_mib: Some(256),
            timeout_ms: Some(5_000),
            ..Default::default()
        },
    );
    let failure = expect_failure(
        &runtime,
        &roomy,
        json!({"mode": "huge-output"}),
        Duration::from_secs(5),
    );
    assert_eq!(
        failure,
        CallFailure::OutputTooLarge {
            // The object, plus the `{}` of the status.
            bytes: (100 << 20) + 2,
            limit: 4 << 20
        }
    );

    // With the default cap the plugin cannot even build it.
    let plugin = load(&runtime, "hostile");
    let failure = expect_failure(
        &runtime,
        &plugin,
        json!({"mode": "huge-output"}),
        Duration::from_millis(200),
    );
    assert!(
        matches!(failure, CallFailure::OutOfMemory { .. }),
        "{failure:?}"
    );
}

#[test]
fn malformed_output_names_what_is_wrong() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile");
    let cases = [
        (json!({"raw": ["{not json"]}), "object 0: not JSON"),
        (
            json!({"raw": ["[1, 2, 3]"]}),
            "object 0: is an array, not a Kubernetes object",
        ),
        (
            json!({"raw": ["\"text\""]}),
            "object 0: is a string, not a Kubernetes object",
        ),
        (
            json!({"objects": [config_map("ok"), {"apiVersion": "v1", "metadata": {"name": "x"}}]}),
            "object 1: kind is missing",
        ),
        (
            json!({"objects": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}]}),
            "ConfigMap: metadata.name is missing",
        ),
        (json!({"objects": [], "status": "[]"}), "status is an array"),
        (
            json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Fine"}]}),
            "condition type Ready is reserved",
        ),
    ];
    for (spec, expected) in cases {
        let failure = expect_failure(&runtime, &plugin, spec.clone(), Duration::from_millis(200));
        match failure {
            CallFailure::MalformedOutput { detail } => {
                assert!(detail.contains(expected), "{spec}: {detail}");
            }
            other => panic!("{spec}: expected malformed output, got {other:?}"),
        }
    }
}

#[test]
fn too_many_objects_are_refused() {
    let runtime = runtime();
    let plugin = load_with(
        &runtime,
        "hostile",
        LimitsOverride {
            max_objects: Some(2),
            ..Default::default()
        },
    );
    let spec = json!({"objects": [config_map("a"), config_map("b"), config_map("c")]});
    let failure = expect_failure(&runtime, &plugin, spec, Duration::from_millis(200));
    assert_eq!(failure, CallFailure::TooManyObjects { count: 3, limit: 2 });
}

#[test]
fn plugin_reported_errors_keep_whose_fault_it_is() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile");
    let user = expect_failure(
        &runtime,
        &plugin,
        json!({"mode": "user-error"}),
        Duration::from_millis(200),
    );
    assert!(user.is_user_error());
    assert_eq!(
        user,
        CallFailure::InvalidSpec {
            field: "spec.mode".into(),
            message: "user-error was asked for".into()
        }
    );
    let internal = expect_failure(
        &runtime,
        &plugin,
        json!({"mode": "internal-error"}),
        Duration::from_millis(200),
    );
    assert!(!internal.is_user_error());
    assert_eq!(internal.reason(), "PluginFailed");
}

#[test]
fn log_spam_is_rate_limited_not_fatal() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile");
    let started = Instant::now();
    plugin
        .generate(
            &input(json!({"mode": "log-spam", "lines": 20_000})),
            &context(),
        )
        .expect("logging too much is not an error");
    assert!(started.elapsed() < bound(plugin.limits().timeout));
}

#[test]
fn echo_output_is_validated_and_kept() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile");
    let spec = json!({
        "objects": [config_map("a")],
        "conditions": [{"type": "CacheWarm", "status": "False", "reason": "Cold", "message": "warming"}],
        "status": {"endpoints": 3},
        "requeueAfterSeconds": 30,
    });
    let output = plugin.generate(&input(spec), &context()).expect("echo");
    assert_eq!(output.objects[0].key().name, "a");
    assert_eq!(output.conditions[0].type_, "CacheWarm");
    assert_eq!(output.status["endpoints"], 3);
    assert_eq!(output.requeue_after, Some(Duration::from_secs(30)));
    let finalize = plugin
        .finalize(
            &input(json!({"finalize": [config_map("backup")]})),
            &context(),
        )
        .expect("finalize");
    assert_eq!(finalize[0].key().name, "backup");
}

#[test]
fn generate_then_finalize_answers_both_and_finalize_only_after_a_good_generate() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile");
    let executor = current_thread_executor();
    executor.block_on(async {
        let spec = json!({"objects": [config_map("a")], "finalize": [config_map("backup")]});
        // Both, each as the call on its own answers.
        let (generated, finalized) = plugin
            .generate_then_finalize_async(input(spec.clone()), context(), true)
            .await;
        assert_eq!(generated.expect("generate").objects[0].key().name, "a");
        let finalized = finalized.expect("asked").expect("finalize");
        assert_eq!(finalized[0].key().name, "backup");
        // Not asked: not called.
        let (generated, finalized) = plugin
            .generate_then_finalize_async(input(spec), context(), false)
            .await;
        assert!(generated.is_ok() && finalized.is_none());
        // A generate that fails is not followed by a finalize.
        let (generated, finalized) = plugin
            .generate_then_finalize_async(input(json!({"mode": "panic"})), context(), true)
            .await;
        assert!(matches!(
            generated.map_err(|e| e.failure),
            Err(CallFailure::Trap { .. })
        ));
        assert!(finalized.is_none());
    });
}

#[test]
fn a_looping_call_does_not_stall_the_async_executor() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile");
    let executor = current_thread_executor();
    executor.block_on(async {
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = Arc::clone(&ticks);
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(10));
            loop {
                interval.tick().await;
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let result = plugin
            .generate_async(input(json!({"mode": "loop"})), context())
            .await;
        ticker.abort();
        assert!(matches!(
            result.map_err(|e| e.failure),
            Err(CallFailure::Deadline { .. })
        ));
        // On a single-threaded executor the ticker only advances if the plugin
        // ran elsewhere; 200 ms of budget leaves room for many 10 ms ticks.
        assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) >= 5);
    });
}

#[test]
fn concurrent_calls_are_isolated() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile");
    let executor = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("executor");
    executor.block_on(async {
        let mut calls = Vec::new();
        for index in 0..12 {
            let spec = match index % 3 {
                0 => json!({"mode": "loop"}),
                1 => json!({"mode": "panic"}),
                _ => json!({"objects": [config_map(&format!("cm-{index}"))]}),
            };
            calls.push(plugin.generate_async(input(spec), context()));
        }
        for (index, result) in futures_join(calls).await.into_iter().enumerate() {
            match (index % 3, result) {
                (0, Err(error)) => assert!(matches!(error.failure, CallFailure::Deadline { .. })),
                (1, Err(error)) => assert!(matches!(error.failure, CallFailure::Trap { .. })),
                (2, Ok(output)) => assert_eq!(output.objects[0].key().name, format!("cm-{index}")),
                (_, other) => panic!("call {index}: unexpected {other:?}"),
            }
        }
    });
}

/// Await every future, in order (a tiny `join_all`, to avoid a dependency).
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await);
    }
    out
}

/// A single-threaded async executor: a plugin call that ran on it would stall it.
fn current_thread_executor() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("executor")
}

fn load_error(runtime: &Runtime, bytes: &[u8], world: Option<World>) -> LoadError {
    runtime
        .load(
            bytes,
            &LoadOptions {
                expected_world: world,
                ..Default::default()
            },
        )
        .expect_err("must be refused")
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid WAT")
}

#[test]
fn the_wrong_world_is_refused() {
    let runtime = runtime();
    let error = load_error(
        &runtime,
        &component("deployment_generator"),
        Some(World::MigrationStrategy),
    );
    assert!(matches!(
        error,
        LoadError::WrongWorld {
            expected: World::MigrationStrategy,
            found: World::Generator
        }
    ));
    assert_eq!(
        error.to_string(),
        "is a generator plugin, but a migration-strategy plugin is needed here"
    );
}

#[test]
fn a_component_without_either_world_is_refused() {
    let runtime = runtime();
    let error = load_error(&runtime, &wat("(component)"), None);
    assert!(
        error
            .to_string()
            .contains("does not export portfolio:plugin/generation or portfolio:plugin/migration"),
        "{error}"
    );
}

#[test]
fn a_missing_export_is_refused_before_use() {
    let runtime = runtime();
    let error = load_error(
        &runtime,
        &wat(
            r#"(component (instance $i) (export "portfolio:plugin/generation@0.1.0" (instance $i)))"#,
        ),
        None,
    );
    assert!(
        matches!(
            error,
            LoadError::Signature {
                world: World::Generator,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("does not match the generator world"),
        "{error}"
    );
}

#[test]
fn an_incompatible_contract_version_is_refused() {
    let runtime = runtime();
    for version in ["0.2.0", "1.0.0"] {
        let text = format!(
            r#"(component (instance $i) (export "portfolio:plugin/generation@{version}" (instance $i)))"#
        );
        let error = load_error(&runtime, &wat(&text), None);
        assert!(
            matches!(error, LoadError::IncompatibleVersion { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains(&format!(
                "built against portfolio:plugin/generation@{version}"
            )),
            "{error}"
        );
    }
}

#[test]
fn a_newer_minor_contract_is_accepted() {
    let runtime = runtime();
    let plugin = load(&runtime, "future_minor");
    assert_eq!(plugin.info().wit_version.to_string(), "0.1.1");
    assert_eq!(plugin.world(), World::Generator);
    let output = plugin
        .generate(&input(json!({})), &context())
        .expect("generate");
    assert_eq!(output.objects[0].key().name, "app-future");
}

#[test]
fn imports_beyond_the_contract_are_refused() {
    let runtime = runtime();
    let text = r#"(component
        (import "acme:evil/net@1.0.0" (instance))
        (instance $i)
        (export "portfolio:plugin/generation@0.1.0" (instance $i)))"#;
    let error = load_error(&runtime, &wat(text), None);
    assert!(
        matches!(&error, LoadError::UnsupportedImport { name } if name == "acme:evil/net@1.0.0"),
        "{error}"
    );
}

#[test]
fn bytes_that_are_not_a_component_are_refused_with_what_they_are() {
    let runtime = runtime();
    assert!(matches!(
        load_error(&runtime, b"", None),
        LoadError::NotWasm
    ));
    assert!(matches!(
        load_error(&runtime, b"#!/bin/sh\nrm -rf /\n", None),
        LoadError::NotWasm
    ));
    assert!(matches!(
        load_error(&runtime, &wat("(module)"), None),
        LoadError::CoreModule
    ));
    let mut truncated = component("hostile");
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        load_error(&runtime, &truncated, None),
        LoadError::Compile(_)
    ));
    let precompiled = runtime
        .engine()
        .precompile_component(&component("hostile"))
        .expect("precompile");
    assert!(matches!(
        load_error(&runtime, &precompiled, None),
        LoadError::Precompiled
    ));
}

#[test]
fn invalid_registration_settings_and_limits_are_refused() {
    let runtime = runtime();
    let bytes = component("hostile");
    let not_object = runtime
        .load(
            &bytes,
            &LoadOptions {
                settings: json!([1, 2]),
                ..Default::default()
            },
        )
        .expect_err("settings must be an object");
    assert!(
        not_object
            .to_string()
            .contains("settings must be a JSON object")
    );
    let too_much = runtime
        .load(
            &bytes,
            &LoadOptions {
                limits: LimitsOverride {
                    memory_mib: Some(100_000),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .expect_err("memory above the runtime maximum");
    assert!(too_much.to_string().contains("memoryMib"), "{too_much}");
}

#[test]
fn identical_bytes_compile_once() {
    let runtime = runtime();
    let first = load(&runtime, "hostile");
    let second = load(&runtime, "hostile");
    assert_eq!(first.digest(), second.digest());
    let stats = runtime.stats();
    assert_eq!(stats.compiled, 1);
    assert_eq!(stats.memory_hits, 1);
}

#[test]
fn settings_reach_the_plugin_and_describe_is_checked() {
    let runtime = runtime();
    let plugin = runtime
        .load(
            &component("hostile"),
            &LoadOptions {
                settings: json!({"greeting": "hi"}),
                ..Default::default()
            },
        )
        .expect("hostile");
    assert_eq!(plugin.settings(), r#"{"greeting":"hi"}"#);
    let output = plugin
        .generate(&input(json!({"mode": "settings"})), &context())
        .expect("settings");
    assert_eq!(output.status["greeting"], "hi");
    let schema = plugin.info().settings_schema.as_ref().expect("schema");
    assert_eq!(schema["type"], "object");
    assert!(plugin.declares_kind("v1", "ConfigMap"));
    assert!(!plugin.declares_kind("v1", "Service"));
}
