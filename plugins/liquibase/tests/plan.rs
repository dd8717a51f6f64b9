//! `plan`: the steps, their Jobs, and the refusals of bad specs and settings.

// The component build is `no_std` with its own panic handler; tests run natively.
#![cfg(not(target_arch = "wasm32"))]

use liquibase::Liquibase;
use serde_json::Value;
use strategy_kit::testing::checks::Subject;
use strategy_kit::testing::{container, invalid, jobs, keys, patched, plan};
use strategy_kit::{Phase, Strategy};

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

const LIQUIBASE: Subject = Subject {
    spec: SPEC,
    source_path: "/liquibase/changelog",
    options_patch: r#"{"liquibase": {"contexts": ["test"]}}"#,
    hostile_options_patch: r#"{"liquibase": {"parameters": {"owner": "$(id); `id` \"'\n"}}}"#,
    apply_key: liquibase::UPDATE_KEY,
    maintenance_key: liquibase::RELEASE_LOCKS_KEY,
    maintenance_setting: "allowReleaseLocks",
    default_image: liquibase::DEFAULT_IMAGE,
    run_as_user: 1001,
    credentials_env: ["LIQUIBASE_COMMAND_USERNAME", "LIQUIBASE_COMMAND_PASSWORD"],
};

strategy_kit::strategy_checks!(Liquibase, LIQUIBASE);

#[test]
fn a_plan_renders_sql_then_updates() {
    let plan = plan::<Liquibase>(SPEC, "{}");
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
    let program = |job: &Value| container(job)["command"][2].as_str().unwrap().to_owned();
    assert!(program(&jobs[0]).contains("update-sql"));
    assert!(program(&jobs[0]).contains("status --verbose"));
    assert!(program(&jobs[1]).contains("liquibase update --show-summary=summary"));
    for job in &jobs {
        let container = container(job);
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
        let job = &jobs(&plan::<Liquibase>(spec, settings))[1];
        container(job)["env"]
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
            &patched(SPEC, r#"{"timeout": "10m"}"#),
            r#"{"lockWaitMinutes": 20}"#
        ),
        "5"
    );
    assert_eq!(
        lock_wait(&patched(SPEC, r#"{"timeout": "90s"}"#), "{}"),
        "0"
    );
}

#[test]
fn the_release_locks_step_takes_neither_changelog_nor_parameters() {
    let plan = plan::<Liquibase>(SPEC, r#"{"allowReleaseLocks": true}"#);
    let release = &jobs(&plan)[2];
    let container = container(release);
    assert!(
        container["command"][2]
            .as_str()
            .unwrap()
            .contains("run liquibase release-locks\n")
    );
    assert!(container.get("args").is_none());
    assert!(!container["env"].to_string().contains("CHANGELOG_FILE"));
}

#[test]
fn hostile_liquibase_options_are_refused_with_their_field() {
    let cases = [
        (r#"{"tool": "flyway"}"#, "spec.tool"),
        (r#"{"liquibase": null}"#, "spec.liquibase"),
        (r#"{"flyway": {}}"#, "spec.flyway"),
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
    ];
    for (patch, field) in cases {
        let invalid = invalid::<Liquibase>(&patched(SPEC, patch), "{}");
        assert_eq!(invalid.field, field, "{patch}: {}", invalid.message);
    }
}

#[test]
fn bad_liquibase_settings_are_refused_with_their_field() {
    for (settings, field) in [
        (r#"{"allowRepair": true}"#, "settings.allowRepair"),
        (r#"{"lockWaitMinutes": -1}"#, "settings.lockWaitMinutes"),
    ] {
        assert_eq!(
            invalid::<Liquibase>(SPEC, settings).field,
            field,
            "{settings}"
        );
    }
    let schema: Value = serde_json::from_str(&Liquibase::settings_schema()).unwrap();
    assert!(schema["properties"]["lockWaitMinutes"].is_object());
}
