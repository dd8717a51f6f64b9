//! `plan`: the steps, their Jobs, and the refusals of bad specs and settings.

// The component build is `no_std` with its own panic handler; tests run natively.
#![cfg(not(target_arch = "wasm32"))]

use serde_json::Value;
use strategy_kit::{Error, Input, Phase, Plan};

const SPEC: &str = r#"{
  "tool": "liquibase",
  "database": {
    "url": "jdbc:postgresql://db.shop.svc:5432/shop",
    "credentialsSecretRef": {"name": "shop-db", "usernameKey": "user", "passwordKey": "pass"}
  },
  "source": {"configMapRef": {"name": "shop-sql"}, "path": "/liquibase/changelog"},
  "liquibase": {"changelogFile": "db/changelog.yaml", "contexts": ["prod"], "labels": "!experimental", "parameters": {"schema": "shop"}},
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
    liquibase::plan(&input(spec, settings, &[])).unwrap()
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
fn a_plan_renders_sql_then_updates() {
    let plan = plan(SPEC, "{}");
    assert_eq!(
        keys(&plan),
        [("plan", Phase::PlanOnly), ("update", Phase::Expand)]
    );
    assert!(
        plan.summary
            .contains("update (expand) of db/changelog.yaml"),
        "{}",
        plan.summary
    );
    assert!(
        plan.summary.contains("liquibase/liquibase:4.33.0"),
        "{}",
        plan.summary
    );
    assert!(
        plan.summary.contains("contexts prod; labels !experimental"),
        "{}",
        plan.summary
    );
    for step in &plan.steps {
        assert!(!step.description.is_empty() && !step.description.contains('\n'));
    }
    let jobs = jobs(&plan);
    let program = |job: &Value| {
        job["spec"]["template"]["spec"]["containers"][0]["command"][2]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(program(&jobs[0]).contains("update-sql"));
    assert!(program(&jobs[0]).contains("status --verbose"));
    assert!(program(&jobs[1]).contains("liquibase update --show-summary=summary"));
    for job in &jobs {
        let container = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["args"], serde_json::json!(["-Dschema=shop"]));
        let env: Vec<(String, Value)> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|var| {
                (
                    var["name"].as_str().unwrap().to_owned(),
                    var["value"].clone(),
                )
            })
            .collect();
        for (name, value) in [
            (
                "LIQUIBASE_COMMAND_URL",
                "jdbc:postgresql://db.shop.svc:5432/shop",
            ),
            ("LIQUIBASE_COMMAND_CHANGELOG_FILE", "db/changelog.yaml"),
            ("LIQUIBASE_SEARCH_PATH", "/liquibase/changelog"),
            ("LIQUIBASE_COMMAND_CONTEXT_FILTER", "prod"),
            ("LIQUIBASE_COMMAND_LABEL_FILTER", "!experimental"),
            ("LIQUIBASE_CHANGELOG_LOCK_WAIT_TIME_IN_MINUTES", "5"),
            ("LIQUIBASE_ANALYTICS_ENABLED", "false"),
        ] {
            assert!(
                env.iter().any(|(n, v)| n == name && v == value),
                "{name}={value} missing: {env:?}"
            );
        }
    }
}

#[test]
fn the_lock_wait_stays_within_half_the_timeout() {
    let lock_wait = |spec: &str, settings: &str| {
        let job = &jobs(&plan(spec, settings))[1];
        job["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|var| var["name"] == "LIQUIBASE_CHANGELOG_LOCK_WAIT_TIME_IN_MINUTES")
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(lock_wait(SPEC, r#"{"lockWaitMinutes": 20}"#), "20");
    assert_eq!(
        lock_wait(
            &patched(r#"{"timeout": "10m"}"#),
            r#"{"lockWaitMinutes": 20}"#
        ),
        "5"
    );
    assert_eq!(lock_wait(&patched(r#"{"timeout": "90s"}"#), "{}"), "0");
}

#[test]
fn a_contract_migration_updates_in_the_contract_phase() {
    let plan = plan(&patched(r#"{"phase": "contract"}"#), "{}");
    assert_eq!(
        keys(&plan),
        [("plan", Phase::PlanOnly), ("update", Phase::Contract)]
    );
    assert_eq!(
        jobs(&plan)[1]["metadata"]["labels"]["portfolio.dev/phase"],
        "contract"
    );
}

#[test]
fn a_dry_run_only_plans() {
    let plan = plan(
        &patched(r#"{"dryRun": true}"#),
        r#"{"allowReleaseLocks": true}"#,
    );
    assert_eq!(keys(&plan), [("plan", Phase::PlanOnly)]);
    assert!(plan.summary.contains("dry run"), "{}", plan.summary);
}

#[test]
fn release_locks_is_planned_only_when_allowed() {
    let allowed = plan(SPEC, r#"{"allowReleaseLocks": true}"#);
    assert_eq!(
        keys(&allowed).last(),
        Some(&("release-locks", Phase::Maintenance))
    );
    assert!(allowed.summary.contains("release-locks allowed"));
    let release: Value = serde_json::from_str(&allowed.steps[2].job).unwrap();
    let container = &release["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["command"][2]
            .as_str()
            .unwrap()
            .contains("run liquibase release-locks\n")
    );
    // release-locks takes neither the changelog nor its parameters.
    assert!(container.get("args").is_none());
    assert!(!container["env"].to_string().contains("CHANGELOG_FILE"));
    assert_eq!(
        keys(&plan(SPEC, r#"{"allowReleaseLocks": false}"#)).len(),
        2
    );
    let annotations = [(
        "portfolio.dev/allow-maintenance".to_owned(),
        "release-locks".to_owned(),
    )];
    let requested = liquibase::plan(&input(SPEC, "{}", &annotations)).unwrap();
    assert_eq!(
        keys(&requested).last(),
        Some(&("release-locks", Phase::Maintenance))
    );
}

#[test]
fn plans_are_byte_identical_across_calls() {
    let annotations = [(
        "portfolio.dev/allow-maintenance".to_owned(),
        "release-locks".to_owned(),
    )];
    let a = liquibase::plan(&input(
        SPEC,
        r#"{"resources": {"limits": {"memory": "1Gi"}}}"#,
        &annotations,
    ))
    .unwrap();
    let b = liquibase::plan(&input(
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
        (patched(r#"{"liquibase": {"contexts": ["test"]}}"#), "{}"),
        (
            SPEC.to_owned(),
            r#"{"image": "mirror.example/liquibase:4.33.0"}"#,
        ),
    ] {
        let other = plan(&spec, settings);
        for (a, b) in jobs(&first).iter().zip(jobs(&other).iter()) {
            assert_ne!(a["metadata"]["name"], b["metadata"]["name"]);
        }
    }
    // And another migration object (same name, new uid) gets new Jobs.
    let recreated = liquibase::plan(&Input {
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
    let plan = liquibase::plan(&Input {
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
    let plan = plan(SPEC, r#"{"allowReleaseLocks": true}"#);
    for (job, step) in jobs(&plan).iter().zip(&plan.steps) {
        assert_eq!(job["apiVersion"], "batch/v1");
        assert_eq!(job["kind"], "Job");
        let labels = &job["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "liquibase");
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
        assert_eq!(pod["securityContext"]["runAsUser"], 1001);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1);
        let container = &containers[0];
        assert_eq!(container["name"], "liquibase");
        assert_eq!(container["image"], "liquibase/liquibase:4.33.0");
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
                .any(|m| m["mountPath"] == "/liquibase/changelog" && m["readOnly"] == true)
        );
        assert_eq!(pod["volumes"][1]["configMap"]["name"], "shop-sql");
    }
}

#[test]
fn credentials_only_come_from_the_secret() {
    for job in jobs(&plan(SPEC, r#"{"allowReleaseLocks": true}"#)) {
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
        for (name, key) in [
            ("LIQUIBASE_COMMAND_USERNAME", "user"),
            ("LIQUIBASE_COMMAND_PASSWORD", "pass"),
        ] {
            let var = secret(name);
            assert!(var.get("value").is_none(), "{name} is inline");
            assert_eq!(var["valueFrom"]["secretKeyRef"]["name"], "shop-db");
            assert_eq!(var["valueFrom"]["secretKeyRef"]["key"], key);
        }
        // Nothing else names a user or password.
        let text = job.to_string().to_ascii_lowercase();
        assert!(!text.contains("--username"), "{text}");
        assert!(!text.contains("--password"), "{text}");
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
            container["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|var| var["name"] == "LIQUIBASE_SEARCH_PATH" && var["value"] == "/sql")
        );
    }
}

#[test]
fn settings_reach_the_jobs() {
    let settings = r#"{"image": "mirror.example/liquibase:4.33.0", "serviceAccountName": "migrator", "ttlSecondsAfterFinished": 3600, "runAsUser": 4242, "imagePullPolicy": "Always", "resources": {"requests": {"cpu": "1"}}}"#;
    for job in jobs(&plan(SPEC, settings)) {
        assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 3600);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "migrator");
        assert_eq!(pod["securityContext"]["runAsUser"], 4242);
        assert_eq!(pod["securityContext"]["runAsGroup"], 4242);
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "mirror.example/liquibase:4.33.0");
        assert_eq!(container["imagePullPolicy"], "Always");
        assert_eq!(
            container["resources"],
            serde_json::json!({"requests": {"cpu": "1"}})
        );
    }
    // The spec's image wins over the settings'.
    let spec = patched(r#"{"image": "team.example/liquibase:5.0.4"}"#);
    for job in jobs(&plan(&spec, settings)) {
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["image"],
            "team.example/liquibase:5.0.4"
        );
    }
}

#[test]
fn hostile_or_malformed_specs_are_refused_with_their_field() {
    let cases = [
        (r#"{"tool": "flyway"}"#, "spec.tool"),
        (r#"{"liquibase": null}"#, "spec.liquibase"),
        (r#"{"flyway": {}}"#, "spec.flyway"),
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
            r#"{"liquibase": {"changelogFile": "../../etc/passwd"}}"#,
            "spec.liquibase.changelogFile",
        ),
        (
            r#"{"liquibase": {"contexts": ["$(id)"]}}"#,
            "spec.liquibase.contexts[0]",
        ),
        (
            r#"{"liquibase": {"labels": "a`id`"}}"#,
            "spec.liquibase.labels",
        ),
        (
            r#"{"liquibase": {"parameters": {"x=y": "z"}}}"#,
            "spec.liquibase.parameters.x=y",
        ),
        (r#"{"image": "image with spaces"}"#, "spec.image"),
        (
            r#"{"strategy": {"plugin": "liquibase", "settings": {"allowReleaseLocks": true}}}"#,
            "spec.strategy.settings.allowReleaseLocks",
        ),
        (
            r#"{"strategy": {"plugin": "liquibase", "settings": {"serviceAccountName": "admin"}}}"#,
            "spec.strategy.settings.serviceAccountName",
        ),
        (r#"{"dryRun": "yes"}"#, "spec.dryRun"),
    ];
    for (patch, field) in cases {
        match liquibase::plan(&input(&patched(patch), "{}", &[])) {
            Err(Error::Invalid(invalid)) => {
                assert_eq!(invalid.field, field, "{patch}: {}", invalid.message);
                assert!(!invalid.message.is_empty());
            }
            other => panic!("{patch}: {other:?}"),
        }
    }
    for garbage in [
        "",
        "null",
        "[]",
        "{",
        "\"spec\"",
        "{\"tool\": \"liquibase\"}",
    ] {
        match liquibase::plan(&input(garbage, "{}", &[])) {
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
        (
            r#"{"allowReleaseLocks": "sometimes"}"#,
            "settings.allowReleaseLocks",
        ),
        (r#"{"allowRepair": true}"#, "settings.allowRepair"),
        (r#"{"lockWaitMinutes": -1}"#, "settings.lockWaitMinutes"),
        (r#"{"image": ""}"#, "settings.image"),
        (r#"{"runAsUser": 0}"#, "settings.runAsUser"),
        (
            r#"{"resources": {"limits": {"memory": "a lot"}}}"#,
            "settings.resources.limits.memory",
        ),
        (r#"{"unknown": 1}"#, "settings.unknown"),
        ("[]", "settings"),
    ] {
        match liquibase::plan(&input(SPEC, settings, &[])) {
            Err(Error::Invalid(invalid)) => assert_eq!(invalid.field, field, "{settings}"),
            other => panic!("{settings}: {other:?}"),
        }
    }
}

#[test]
fn the_settings_schema_is_json() {
    let schema: Value = serde_json::from_str(&liquibase::settings_schema()).unwrap();
    assert_eq!(
        schema["properties"]["image"]["default"],
        liquibase::DEFAULT_IMAGE
    );
    assert!(schema["properties"]["allowReleaseLocks"].is_object());
    assert!(schema["properties"]["lockWaitMinutes"].is_object());
    assert_eq!(liquibase::KINDS, &[("batch/v1", "Job")]);
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
            r#"{"liquibase": {"parameters": {"owner": "$(id); `id` \"'\n"}}, "database": {"url": "jdbc:postgresql://db/$(id)'`"}}"#,
        ),
        "{}",
    );
    assert_eq!(program(&hostile), program(&plan(SPEC, "{}")));
    assert!(hostile.steps[1].job.contains("$(id)"));
}
