//! The built-in plugins: each loads with every check, and each stays small
//! enough to ship in a ConfigMap.

use portfolio_operator::builtin::BUILTINS;
use portfolio_operator::plugin::{LoadOptions, Runtime, RuntimeConfig};

/// Ceiling per plugin: a ConfigMap holds 1 MiB, base64 takes a third more,
/// and room must remain for a team's larger plugins.
const MAX_BYTES: usize = 300_000;

#[test]
fn every_builtin_is_small_and_loads() {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    assert!(!BUILTINS.is_empty());
    for builtin in BUILTINS {
        assert!(
            builtin.bytes.len() <= MAX_BYTES,
            "{} is {} bytes, more than {MAX_BYTES}",
            builtin.file,
            builtin.bytes.len()
        );
        let plugin = runtime
            .load(builtin.bytes, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", builtin.file));
        assert!(
            !plugin.info().kinds.is_empty(),
            "{} declares no kinds",
            builtin.file
        );
        let schema = plugin.info().settings_schema.as_ref();
        assert!(
            schema.is_some(),
            "{} publishes no settings schema",
            builtin.file
        );
    }
}

/// The built-in migration strategies, called through the runtime as the
/// operator calls them: plan the examples, and read Job outcomes.
#[test]
fn the_builtin_strategies_plan_and_interpret_through_the_runtime() {
    use portfolio_operator::plugin::{CallContext, GenerateInput, StepOutcome, StepPhase};

    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (file, example, apply_phase) in [
        (
            "flyway.wasm",
            "examples/flyway-migration.yaml",
            StepPhase::Expand,
        ),
        (
            "liquibase.wasm",
            "examples/liquibase-migration.yaml",
            StepPhase::Contract,
        ),
    ] {
        let builtin = BUILTINS.iter().find(|b| b.file == file).expect("built in");
        let plugin = runtime
            .load(builtin.bytes, &LoadOptions::default())
            .expect("load");
        let text = std::fs::read_to_string(repo.join(example)).expect("example");
        let document: serde_json::Value = serde_saphyr::from_str(&text).expect("YAML");
        let input = GenerateInput {
            name: document["metadata"]["name"]
                .as_str()
                .expect("name")
                .to_owned(),
            namespace: "demo".into(),
            uid: document["metadata"]["uid"]
                .as_str()
                .expect("uid")
                .to_owned(),
            spec: document["spec"].clone(),
            ..GenerateInput::default()
        };
        let context = CallContext::default();
        let plan = plugin
            .plan(&input, &context)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let phases: Vec<StepPhase> = plan.steps.iter().map(|s| s.phase).collect();
        assert_eq!(phases, [StepPhase::PlanOnly, apply_phase], "{file}");
        assert_eq!(
            plan,
            plugin.plan(&input, &context).expect("again"),
            "plans are deterministic"
        );

        let step = &plan.steps[1];
        let running = serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": step.job.key().name}, "status": {"active": 1}});
        assert_eq!(
            plugin
                .interpret(&input, step, &running, None, &context)
                .expect("interpret"),
            StepOutcome::Running
        );
        let deadline = serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": step.job.key().name},
            "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]}});
        match plugin
            .interpret(&input, step, &deadline, None, &context)
            .expect("interpret")
        {
            StepOutcome::Failed {
                reason, retryable, ..
            } => {
                assert_eq!(reason, "DeadlineExceeded", "{file}");
                assert!(retryable, "{file}: a timeout may pass on a retry");
            }
            other => panic!("{file}: expected a failure, got {other:?}"),
        }
    }
}
