//! `plan`: the steps, their Jobs, and the refusals of bad specs and settings.

// The component build is `no_std` with its own panic handler; tests run natively.
#![cfg(not(target_arch = "wasm32"))]

use flyway::Flyway;
use serde_json::Value;
use strategy_kit::Phase;
use strategy_kit::testing::checks::Subject;
use strategy_kit::testing::{container, invalid, jobs, keys, patched, plan};

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

const FLYWAY: Subject = Subject {
    spec: SPEC,
    source_path: "/flyway/sql",
    options_patch: r#"{"flyway": {"target": "5"}}"#,
    hostile_options_patch: r#"{"flyway": {"placeholders": {"owner": "$(id); `id` \"'\n"}, "schemas": ["x$(id)"]}}"#,
    apply_key: flyway::MIGRATE_KEY,
    maintenance_key: flyway::REPAIR_KEY,
    maintenance_setting: "allowRepair",
    default_image: flyway::DEFAULT_IMAGE,
    run_as_user: 10001,
    credentials_env: ["FLYWAY_USER", "FLYWAY_PASSWORD"],
};

strategy_kit::strategy_checks!(Flyway, FLYWAY);

#[test]
fn a_plan_validates_then_migrates() {
    let plan = plan::<Flyway>(SPEC, "{}");
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
        container(job)["args"]
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
fn the_repair_step_runs_flyway_repair() {
    let plan = plan::<Flyway>(SPEC, r#"{"allowRepair": true}"#);
    let repair = &jobs(&plan)[2];
    assert_eq!(
        container(repair)["args"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        "repair"
    );
}

#[test]
fn hostile_flyway_options_are_refused_with_their_field() {
    let cases = [
        (r#"{"tool": "liquibase"}"#, "spec.tool"),
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
    ];
    for (patch, field) in cases {
        let invalid = invalid::<Flyway>(&patched(SPEC, patch), "{}");
        assert_eq!(invalid.field, field, "{patch}: {}", invalid.message);
    }
}

#[test]
fn liquibase_settings_are_refused() {
    let invalid = invalid::<Flyway>(SPEC, r#"{"allowReleaseLocks": true}"#);
    assert_eq!(invalid.field, "settings.allowReleaseLocks");
}
