//! `plan`: the steps, their Jobs, and the refusals of bad specs and settings.

// The component build is `no_std` with its own panic handler; tests run natively.
#![cfg(not(target_arch = "wasm32"))]

use serde_json::Value;
use strategy_kit::{Error, Input, Phase, Plan};

const SPEC: &str = r#"{
  "tool": "flyway",
  "database": {
    "url": "jdbc:postgresql://db.shop.svc:5432/shop",
    "credentialsSecretRef": {"name": "shop-db", "usernameKey": "user", "passwordKey": "pass"}
  },
  "source": {"configMapRef": {"name": "shop-sql"}, "path": "/flyway/sql"},
  "flyway": {"schemas": ["shop"], "placeholders": {"owner": "shop_owner"}},
  "phase": "expand",
  "timeout": "1h30m"
}"#;

const UID: &str = "0b6f3c1e-7d4a-4f9e-9c55-2a1e8d6b4f10";

fn input<'a>(spec: &'a str, settings: &'a str, annotations: &'a [(String, String)]) -> Input<'a> {
    Input {
        name: "shop",
        uid: UID,
        annotations,
        spec,
        settings,
    }
}

fn plan(spec: &str, settings: &str) -> Plan {
    flyway::plan(&input(spec, settings, &[])).unwrap()
}

/// `SPEC` with `patch` merged in (null removes a member).
fn patched(patch: &str) -> String {
    let mut spec: Value = serde_json::from_str(SPEC).unwrap();
    merge(&mut spec, serde_json::from_str(patch).unwrap());
    spec.to_string()
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    base.remove(&key);
                } else {
                    merge(base.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

fn jobs(plan: &Plan) -> Vec<Value> {
    plan.steps
        .iter()
        .map(|step| serde_json::from_str(&step.job).unwrap())
        .collect()
}

fn keys(plan: &Plan) -> Vec<(&str, Phase)> {
    plan.steps
        .iter()
        .map(|step| (step.key, step.phase))
        .collect()
}

#[test]
fn a_plan_validates_then_migrates() {
    let plan = plan(SPEC, "{}");
    assert_eq!(
        keys(&plan),
        [("plan", Phase::PlanOnly), ("migrate", Phase::Expand)]
    );
    assert!(
        plan.summary.contains("migrate (expand)"),
        "{}",
        plan.summary
    );
    assert!(
        plan.summary.contains("flyway/flyway:13.0.0"),
        "{}",
        plan.summary
    );
    for step in &plan.steps {
        assert!(!step.description.is_empty() && !step.description.contains('\n'));
    }
    let args = |job: &Value| -> Vec<String> {
        job["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|arg| arg.as_str().unwrap().to_owned())
            .collect()
    };
    let jobs = jobs(&plan);
    let plan_args = args(&jobs[0]);
    assert_eq!(
        &plan_args[plan_args.len() - 3..],
        [
            "-ignoreMigrationPatterns=*:pending,*:future",
            "info",
            "validate"
        ]
    );
    assert_eq!(args(&jobs[1]).last().map(String::as_str), Some("migrate"));
    for job in &jobs {
        let args = args(job);
        for expected in [
            "-outputType=json",
            "-cleanDisabled=true",
            "-url=jdbc:postgresql://db.shop.svc:5432/shop",
            "-locations=filesystem:/flyway/sql",
            "-schemas=shop",
            "-placeholders.owner=shop_owner",
        ] {
            assert!(
                args.iter().any(|arg| arg == expected),
                "{expected} missing: {args:?}"
            );
        }
    }
}

#[test]
fn a_contract_migration_migrates_in_the_contract_phase() {
    let plan = plan(&patched(r#"{"phase": "contract"}"#), "{}");
    assert_eq!(
        keys(&plan),
        [("plan", Phase::PlanOnly), ("migrate", Phase::Contract)]
    );
    assert_eq!(
        jobs(&plan)[1]["metadata"]["labels"]["portfolio.dev/phase"],
        "contract"
    );
}

#[test]
fn a_dry_run_only_plans() {
    let plan = plan(&patched(r#"{"dryRun": true}"#), r#"{"allowRepair": true}"#);
    assert_eq!(keys(&plan), [("plan", Phase::PlanOnly)]);
    assert!(plan.summary.contains("dry run"), "{}", plan.summary);
}

#[test]
fn repair_is_planned_only_when_allowed() {
    let allowed = plan(SPEC, r#"{"allowRepair": true}"#);
    assert_eq!(keys(&allowed).last(), Some(&("repair", Phase::Maintenance)));
    assert!(allowed.summary.contains("repair allowed"));
    let repair: Value = serde_json::from_str(&allowed.steps[2].job).unwrap();
    assert_eq!(
        repair["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        "repair"
    );
    assert_eq!(keys(&plan(SPEC, r#"{"allowRepair": false}"#)).len(), 2);
    let annotations = [(
        "portfolio.dev/allow-maintenance".to_owned(),
        "repair".to_owned(),
    )];
    let requested = flyway::plan(&input(SPEC, "{}", &annotations)).unwrap();
    assert_eq!(
        keys(&requested).last(),
        Some(&("repair", Phase::Maintenance))
    );
}

#[test]
fn plans_are_byte_identical_across_calls() {
    let annotations = [(
        "portfolio.dev/allow-maintenance".to_owned(),
        "repair".to_owned(),
    )];
    let a = flyway::plan(&input(
        SPEC,
        r#"{"resources": {"limits": {"memory": "1Gi"}}}"#,
        &annotations,
    ))
    .unwrap();
    let b = flyway::plan(&input(
        SPEC,
        r#"{"resources": {"limits": {"memory": "1Gi"}}}"#,
        &annotations,
    ))
    .unwrap();
    assert_eq!(a, b);
    // The same spec written differently is the same plan.
    let reordered = patched("{}");
    assert_eq!(plan(&reordered, "{}"), plan(SPEC, "{}"));
}

#[test]
fn job_names_are_stable_valid_and_follow_the_content() {
    let first = plan(SPEC, "{}");
    let names: Vec<String> = jobs(&first)
        .iter()
        .map(|job| job["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    for (name, step) in names.iter().zip(&first.steps) {
        assert!(name.len() <= 63, "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name}"
        );
        assert!(name.starts_with(&format!("shop-{}-", step.key)), "{name}");
    }
    assert_ne!(names[0], names[1]);
    // What the operator alone reads does not change the Jobs, so approving a
    // plan (or changing retries, or the app it is ordered with) keeps it.
    for patch in [
        r#"{"approval": "Manual", "approvedPlanHash": "sha256:0000000000000000000000000000000000000000000000000000000000000000"}"#,
        r#"{"backoffLimit": 7}"#,
        r#"{"appRef": {"name": "shop"}}"#,
    ] {
        assert_eq!(plan(&patched(patch), "{}"), first, "{patch}");
    }
    // Turning a dry run off keeps the plan step (it already ran).
    assert_eq!(
        plan(&patched(r#"{"dryRun": true}"#), "{}").steps[0],
        first.steps[0]
    );
    // What changes the Jobs changes their names.
    for (spec, settings) in [
        (patched(r#"{"timeout": "2h"}"#), "{}"),
        (patched(r#"{"flyway": {"target": "5"}}"#), "{}"),
        (
            SPEC.to_owned(),
            r#"{"image": "mirror.example/flyway:13.0.0"}"#,
        ),
    ] {
        let other = plan(&spec, settings);
        for (a, b) in jobs(&first).iter().zip(jobs(&other).iter()) {
            assert_ne!(a["metadata"]["name"], b["metadata"]["name"]);
        }
    }
    // And another migration object (same name, new uid) gets new Jobs.
    let recreated = flyway::plan(&Input {
        uid: "another-uid",
        ..input(SPEC, "{}", &[])
    })
    .unwrap();
    assert_ne!(jobs(&recreated)[1]["metadata"]["name"], names[1].as_str());
}

#[test]
fn long_names_still_give_valid_job_names() {
    let name = format!(
        "{}x.{}.db.example",
        "long-migration-name-".repeat(3),
        "y".repeat(63)
    );
    let plan = flyway::plan(&Input {
        name: &name,
        ..input(SPEC, "{}", &[])
    })
    .unwrap();
    for job in jobs(&plan) {
        let job_name = job["metadata"]["name"].as_str().unwrap();
        assert!(job_name.len() <= 63, "{job_name}");
        assert!(!job_name.contains('.'));
        let label = job["metadata"]["labels"]["portfolio.dev/migration"]
            .as_str()
            .unwrap();
        assert!(label.len() <= 63, "{label}");
    }
}

#[test]
fn every_job_has_the_whole_skeleton() {
    let plan = plan(SPEC, r#"{"allowRepair": true}"#);
    for (job, step) in jobs(&plan).iter().zip(&plan.steps) {
        assert_eq!(job["apiVersion"], "batch/v1");
        assert_eq!(job["kind"], "Job");
        let labels = &job["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "flyway");
        assert_eq!(labels["portfolio.dev/migration"], "shop");
        assert_eq!(labels["portfolio.dev/step"], step.key);
        assert_eq!(job["spec"]["template"]["metadata"]["labels"], *labels);
        let spec = &job["spec"];
        assert_eq!(spec["backoffLimit"], 0);
        assert_eq!(spec["activeDeadlineSeconds"], 5400);
        assert_eq!(spec["podReplacementPolicy"], "Failed");
        assert_eq!(spec["podFailurePolicy"]["rules"][0]["action"], "Ignore");
        assert_eq!(spec["podFailurePolicy"]["rules"][1]["action"], "FailJob");
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["runAsUser"], 10001);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1);
        let container = &containers[0];
        assert_eq!(container["name"], "flyway");
        assert_eq!(container["image"], "flyway/flyway:13.0.0");
        assert_eq!(container["imagePullPolicy"], "IfNotPresent");
        assert_eq!(container["command"][0], "/bin/sh");
        assert_eq!(container["command"][3], step.key);
        assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(
            container["terminationMessagePolicy"],
            "FallbackToLogsOnError"
        );
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_eq!(security["runAsNonRoot"], true);
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
        assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
        let mounts = container["volumeMounts"].as_array().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m["mountPath"] == "/tmp" && m["name"] == "work")
        );
        assert!(
            mounts
                .iter()
                .any(|m| m["mountPath"] == "/flyway/sql" && m["readOnly"] == true)
        );
        assert_eq!(pod["volumes"][1]["configMap"]["name"], "shop-sql");
    }
}

#[test]
fn credentials_only_come_from_the_secret() {
    for job in jobs(&plan(SPEC, r#"{"allowRepair": true}"#)) {
        let env = job["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .clone();
        let secret = |name: &str| {
            env.iter()
                .find(|var| var["name"] == name)
                .unwrap_or_else(|| panic!("{name} missing"))
                .clone()
        };
        for (name, key) in [("FLYWAY_USER", "user"), ("FLYWAY_PASSWORD", "pass")] {
            let var = secret(name);
            assert!(var.get("value").is_none(), "{name} is inline");
            assert_eq!(var["valueFrom"]["secretKeyRef"]["name"], "shop-db");
            assert_eq!(var["valueFrom"]["secretKeyRef"]["key"], key);
        }
        // Nothing else names a user or password.
        let text = job.to_string().to_ascii_lowercase();
        assert!(!text.contains("-user="), "{text}");
        assert!(!text.contains("-password="), "{text}");
        assert!(!text.contains("password="), "{text}");
    }
}

#[test]
fn an_image_source_is_copied_in_by_an_init_container() {
    let spec = patched(
        r#"{"source": {"configMapRef": null, "image": "registry.example/shop-sql:42", "path": "/sql"}}"#,
    );
    for job in jobs(&plan(&spec, r#"{"imagePullSecrets": ["registry"]}"#)) {
        let pod = &job["spec"]["template"]["spec"];
        let init = &pod["initContainers"][0];
        assert_eq!(init["image"], "registry.example/shop-sql:42");
        assert_eq!(
            init["command"],
            serde_json::json!(["cp", "-R", "/sql/.", "/portfolio/source/"])
        );
        assert_eq!(init["securityContext"]["allowPrivilegeEscalation"], false);
        assert!(pod["volumes"][1]["emptyDir"].is_object());
        assert_eq!(pod["imagePullSecrets"][0]["name"], "registry");
        let container = &pod["containers"][0];
        assert!(
            container["args"]
                .as_array()
                .unwrap()
                .iter()
                .any(|arg| arg == "-locations=filesystem:/sql")
        );
    }
}

#[test]
fn settings_reach_the_jobs() {
    let settings = r#"{"image": "mirror.example/flyway:13.0.0", "serviceAccountName": "migrator", "ttlSecondsAfterFinished": 3600, "runAsUser": 4242, "imagePullPolicy": "Always", "resources": {"requests": {"cpu": "1"}}}"#;
    for job in jobs(&plan(SPEC, settings)) {
        assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 3600);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "migrator");
        assert_eq!(pod["securityContext"]["runAsUser"], 4242);
        assert_eq!(pod["securityContext"]["runAsGroup"], 4242);
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "mirror.example/flyway:13.0.0");
        assert_eq!(container["imagePullPolicy"], "Always");
        assert_eq!(
            container["resources"],
            serde_json::json!({"requests": {"cpu": "1"}})
        );
    }
    // The spec's image wins over the settings'.
    let spec = patched(r#"{"image": "team.example/flyway:12"}"#);
    for job in jobs(&plan(&spec, settings)) {
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["image"],
            "team.example/flyway:12"
        );
    }
}

#[test]
fn hostile_or_malformed_specs_are_refused_with_their_field() {
    let cases = [
        (r#"{"tool": "liquibase"}"#, "spec.tool"),
        (r#"{"timeout": "1d"}"#, "spec.timeout"),
        (r#"{"timeout": "9999h"}"#, "spec.timeout"),
        (
            r#"{"database": {"url": "jdbc:postgresql://admin:secret@db/shop"}}"#,
            "spec.database.url",
        ),
        (
            r#"{"database": {"url": "jdbc:postgresql://db/shop?password=secret"}}"#,
            "spec.database.url",
        ),
        (
            r#"{"database": {"url": "$(rm -rf /)"}}"#,
            "spec.database.url",
        ),
        (
            r#"{"database": {"credentialsSecretRef": {"name": "../../etc"}}}"#,
            "spec.database.credentialsSecretRef.name",
        ),
        (r#"{"source": {"path": "/etc"}}"#, "spec.source.path"),
        (
            r#"{"source": {"path": "/sql/../../proc"}}"#,
            "spec.source.path",
        ),
        (
            r#"{"source": {"path": "/sql; rm -rf /"}}"#,
            "spec.source.path",
        ),
        (r#"{"source": {"image": "evil/image:1"}}"#, "spec.source"),
        (
            r#"{"flyway": {"locations": ["../../etc"]}}"#,
            "spec.flyway.locations[0]",
        ),
        (r#"{"flyway": {"target": "$(id)"}}"#, "spec.flyway.target"),
        (
            r#"{"flyway": {"schemas": ["a,b"]}}"#,
            "spec.flyway.schemas[0]",
        ),
        (
            r#"{"flyway": {"placeholders": {"x=y": "z"}}}"#,
            "spec.flyway.placeholders.x=y",
        ),
        (r#"{"image": "image with spaces"}"#, "spec.image"),
        (
            r#"{"strategy": {"plugin": "flyway", "settings": {"allowRepair": true}}}"#,
            "spec.strategy.settings.allowRepair",
        ),
        (
            r#"{"strategy": {"plugin": "flyway", "settings": {"serviceAccountName": "admin"}}}"#,
            "spec.strategy.settings.serviceAccountName",
        ),
        (r#"{"dryRun": "yes"}"#, "spec.dryRun"),
    ];
    for (patch, field) in cases {
        match flyway::plan(&input(&patched(patch), "{}", &[])) {
            Err(Error::Invalid(invalid)) => {
                assert_eq!(invalid.field, field, "{patch}: {}", invalid.message);
                assert!(!invalid.message.is_empty());
            }
            other => panic!("{patch}: {other:?}"),
        }
    }
    for garbage in ["", "null", "[]", "{", "\"spec\"", "{\"tool\": \"flyway\"}"] {
        match flyway::plan(&input(garbage, "{}", &[])) {
            Err(Error::Invalid(invalid)) => {
                assert!(invalid.field.starts_with("spec"), "{garbage}: {invalid:?}")
            }
            other => panic!("{garbage}: {other:?}"),
        }
    }
}

#[test]
fn bad_settings_are_refused_with_their_field() {
    for (settings, field) in [
        (r#"{"allowRepair": "sometimes"}"#, "settings.allowRepair"),
        (
            r#"{"allowReleaseLocks": true}"#,
            "settings.allowReleaseLocks",
        ),
        (r#"{"image": ""}"#, "settings.image"),
        (r#"{"runAsUser": 0}"#, "settings.runAsUser"),
        (
            r#"{"resources": {"limits": {"memory": "a lot"}}}"#,
            "settings.resources.limits.memory",
        ),
        (r#"{"unknown": 1}"#, "settings.unknown"),
        ("[]", "settings"),
    ] {
        match flyway::plan(&input(SPEC, settings, &[])) {
            Err(Error::Invalid(invalid)) => assert_eq!(invalid.field, field, "{settings}"),
            other => panic!("{settings}: {other:?}"),
        }
    }
}

#[test]
fn the_settings_schema_is_json() {
    let schema: Value = serde_json::from_str(&flyway::settings_schema()).unwrap();
    assert_eq!(
        schema["properties"]["image"]["default"],
        flyway::DEFAULT_IMAGE
    );
    assert!(schema["properties"]["allowRepair"].is_object());
    assert_eq!(flyway::KINDS, &[("batch/v1", "Job")]);
}

#[test]
fn user_input_never_reaches_the_shell_program() {
    // Values travel as arguments and environment; the program stays the same.
    let program = |plan: &Plan| -> Vec<String> {
        jobs(plan)
            .iter()
            .map(|job| {
                job["spec"]["template"]["spec"]["containers"][0]["command"][2]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let hostile = plan(
        &patched(
            r#"{"flyway": {"placeholders": {"owner": "$(id); `id` \"'\n"}, "schemas": ["x$(id)"]}, "database": {"url": "jdbc:postgresql://db/$(id)'`"}}"#,
        ),
        "{}",
    );
    assert_eq!(program(&hostile), program(&plan(SPEC, "{}")));
    assert!(hostile.steps[1].job.contains("$(id)"));
}
