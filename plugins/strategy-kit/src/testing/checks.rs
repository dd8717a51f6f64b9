//! The checks every strategy must pass, whatever its tool: the plan's
//! shape, the Jobs' skeleton, names and credentials, the refusal of hostile
//! input, and `interpret` on Jobs whose container left no useful summary.
//!
//! A strategy's tests run them all with one line,
//! `strategy_kit::strategy_checks!(flyway::Flyway, FLYWAY);` where `FLYWAY`
//! is its [`Subject`].

use serde_json::{Value, json};

use super::{container, failed, input, interpret, invalid, jobs, keys, patched, plan};
use crate::{Error, Input, Outcome, Phase, Strategy};

/// What the checks need to know of a strategy beyond [`Strategy`].
#[derive(Clone, Copy, Debug)]
pub struct Subject {
    /// A valid spec of the tool's: migration `shop` of the database
    /// `jdbc:postgresql://db.shop.svc:5432/shop`, its credentials in the
    /// Secret `shop-db` under the keys `user` and `pass`, its source the
    /// ConfigMap `shop-sql` mounted at [`Subject::source_path`], phase
    /// `expand` and timeout `1h30m`.
    pub spec: &'static str,
    /// Where the spec mounts its source.
    pub source_path: &'static str,
    /// A patch of the tool's own options in the spec that changes the Jobs.
    pub options_patch: &'static str,
    /// A patch of the tool's own options that smuggles shell syntax in.
    pub hostile_options_patch: &'static str,
    /// Key of the apply step, e.g. `migrate`.
    pub apply_key: &'static str,
    /// Key of the maintenance step, e.g. `repair`.
    pub maintenance_key: &'static str,
    /// The setting that allows the maintenance step, e.g. `allowRepair`.
    pub maintenance_setting: &'static str,
    /// The image the Jobs run by default.
    pub default_image: &'static str,
    /// The user the Jobs run as by default.
    pub run_as_user: i64,
    /// The environment variables that carry the user name and the password.
    pub credentials_env: [&'static str; 2],
}

impl Subject {
    /// Settings that put the maintenance step in the plan.
    fn maintenance_allowed(&self) -> String {
        json!({ self.maintenance_setting: true }).to_string()
    }

    /// The annotation that asks for the maintenance step.
    fn maintenance_annotation(&self) -> [(String, String); 1] {
        [(
            "portfolio.dev/allow-maintenance".to_owned(),
            self.maintenance_key.to_owned(),
        )]
    }
}

/// Define one `#[test]` per check of [`checks`](crate::testing::checks), in
/// a module `shared_checks`, for the strategy `$strategy` described by the
/// [`Subject`](crate::testing::checks::Subject) `$subject`.
#[macro_export]
macro_rules! strategy_checks {
    ($strategy:ty, $subject:ident) => {
        $crate::strategy_checks!(@tests $strategy, $subject;
            a_contract_migration_applies_in_the_contract_phase,
            a_dry_run_only_plans,
            maintenance_is_planned_only_when_allowed,
            plans_are_byte_identical_across_calls,
            job_names_are_stable_valid_and_follow_the_content,
            long_names_still_give_valid_job_names,
            every_job_has_the_whole_skeleton,
            credentials_only_come_from_the_secret,
            an_image_source_is_copied_in_by_an_init_container,
            settings_reach_the_jobs,
            hostile_or_malformed_specs_are_refused_with_their_field,
            bad_settings_are_refused_with_their_field,
            the_settings_schema_is_json,
            user_input_never_reaches_the_shell_program,
            running_and_terminating_jobs_are_running,
            a_killed_container_is_retryable,
            a_source_image_without_the_migrations_is_not_retryable,
            garbage_messages_fall_back_on_the_jobs_word,
            what_the_host_got_wrong_is_an_internal_error,
        );
    };
    (@tests $strategy:ty, $subject:ident; $($check:ident),* $(,)?) => {
        mod shared_checks {
            use super::*;

            $(
                #[test]
                fn $check() {
                    $crate::testing::checks::$check::<$strategy>(&$subject);
                }
            )*
        }
    };
}

/// A contract migration applies in the contract phase.
pub fn a_contract_migration_applies_in_the_contract_phase<S: Strategy>(subject: &Subject) {
    let plan = plan::<S>(&patched(subject.spec, r#"{"phase": "contract"}"#), "{}");
    assert_eq!(
        keys(&plan),
        [
            ("plan", Phase::PlanOnly),
            (subject.apply_key, Phase::Contract)
        ]
    );
    assert_eq!(
        jobs(&plan)[1]["metadata"]["labels"]["portfolio.dev/phase"],
        "contract"
    );
}

/// A dry run has the plan step alone, even where maintenance is allowed.
pub fn a_dry_run_only_plans<S: Strategy>(subject: &Subject) {
    let plan = plan::<S>(
        &patched(subject.spec, r#"{"dryRun": true}"#),
        &subject.maintenance_allowed(),
    );
    assert_eq!(keys(&plan), [("plan", Phase::PlanOnly)]);
    assert!(plan.summary.contains("dry run"), "{}", plan.summary);
}

/// The maintenance step is planned, last, when the setting or the
/// annotation allows it, and only then.
pub fn maintenance_is_planned_only_when_allowed<S: Strategy>(subject: &Subject) {
    let last = Some((subject.maintenance_key, Phase::Maintenance));
    let allowed = plan::<S>(subject.spec, &subject.maintenance_allowed());
    assert_eq!(keys(&allowed).last().copied(), last);
    let allowed_note = format!("{} allowed", subject.maintenance_key);
    assert!(
        allowed.summary.contains(&allowed_note),
        "{}",
        allowed.summary
    );
    let denied = json!({ subject.maintenance_setting: false }).to_string();
    assert_eq!(keys(&plan::<S>(subject.spec, &denied)).len(), 2);
    let annotations = subject.maintenance_annotation();
    let requested = S::plan(&input(subject.spec, "{}", &annotations)).unwrap();
    assert_eq!(keys(&requested).last().copied(), last);
}

/// The same input gives the same bytes, however the spec is written.
pub fn plans_are_byte_identical_across_calls<S: Strategy>(subject: &Subject) {
    let annotations = subject.maintenance_annotation();
    let settings = r#"{"resources": {"limits": {"memory": "1Gi"}}}"#;
    let a = S::plan(&input(subject.spec, settings, &annotations)).unwrap();
    let b = S::plan(&input(subject.spec, settings, &annotations)).unwrap();
    assert_eq!(a, b);
    // The same spec written differently is the same plan.
    let reordered = patched(subject.spec, "{}");
    assert_eq!(plan::<S>(&reordered, "{}"), plan::<S>(subject.spec, "{}"));
}

/// Job names are DNS labels that change exactly when the Job does.
pub fn job_names_are_stable_valid_and_follow_the_content<S: Strategy>(subject: &Subject) {
    let first = plan::<S>(subject.spec, "{}");
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
        assert_eq!(
            plan::<S>(&patched(subject.spec, patch), "{}"),
            first,
            "{patch}"
        );
    }
    // Turning a dry run off keeps the plan step (it already ran).
    assert_eq!(
        plan::<S>(&patched(subject.spec, r#"{"dryRun": true}"#), "{}").steps[0],
        first.steps[0]
    );
    // What changes the Jobs changes their names.
    let mirror = json!({ "image": format!("mirror.example/{}:1", S::NAME) }).to_string();
    for (spec, settings) in [
        (patched(subject.spec, r#"{"timeout": "2h"}"#), "{}"),
        (patched(subject.spec, subject.options_patch), "{}"),
        (subject.spec.to_owned(), mirror.as_str()),
    ] {
        let other = plan::<S>(&spec, settings);
        for (a, b) in jobs(&first).iter().zip(jobs(&other).iter()) {
            assert_ne!(a["metadata"]["name"], b["metadata"]["name"], "{spec}");
        }
    }
    // And another migration object (same name, new uid) gets new Jobs.
    let recreated = S::plan(&Input {
        uid: "another-uid",
        ..input(subject.spec, "{}", &[])
    })
    .unwrap();
    assert_ne!(jobs(&recreated)[1]["metadata"]["name"], names[1].as_str());
}

/// A migration name too long for a Job name or a label still gives valid ones.
pub fn long_names_still_give_valid_job_names<S: Strategy>(subject: &Subject) {
    let name = format!(
        "{}x.{}.db.example",
        "long-migration-name-".repeat(3),
        "y".repeat(63)
    );
    let plan = S::plan(&Input {
        name: &name,
        ..input(subject.spec, "{}", &[])
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

/// Every Job of a plan has the whole skeleton of [`crate::job`].
pub fn every_job_has_the_whole_skeleton<S: Strategy>(subject: &Subject) {
    let plan = plan::<S>(subject.spec, &subject.maintenance_allowed());
    assert_eq!(plan.steps.len(), 3);
    for (job, step) in jobs(&plan).iter().zip(&plan.steps) {
        assert_eq!(job["apiVersion"], "batch/v1");
        assert_eq!(job["kind"], "Job");
        let labels = &job["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], S::NAME);
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
        assert_eq!(pod["securityContext"]["runAsUser"], subject.run_as_user);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1);
        let container = &containers[0];
        assert_eq!(container["name"], S::NAME);
        assert_eq!(container["image"], subject.default_image);
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
        assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
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
                .any(|m| m["mountPath"] == subject.source_path && m["readOnly"] == true)
        );
        assert_eq!(pod["volumes"][1]["configMap"]["name"], "shop-sql");
    }
}

/// The user name and password come from the Secret, and nothing else names them.
pub fn credentials_only_come_from_the_secret<S: Strategy>(subject: &Subject) {
    for job in jobs(&plan::<S>(subject.spec, &subject.maintenance_allowed())) {
        let env = container(&job)["env"].as_array().unwrap().clone();
        for (name, key) in subject.credentials_env.into_iter().zip(["user", "pass"]) {
            let var = env
                .iter()
                .find(|var| var["name"] == name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert!(var.get("value").is_none(), "{name} is inline");
            assert_eq!(var["valueFrom"]["secretKeyRef"]["name"], "shop-db");
            assert_eq!(var["valueFrom"]["secretKeyRef"]["key"], key);
        }
        // No argument or value names a user or password.
        let text = job.to_string().to_ascii_lowercase();
        for passed in ["-user=", "--username", "password=", "--password"] {
            assert!(!text.contains(passed), "{passed}: {text}");
        }
    }
}

/// A source image is copied into an `emptyDir` by an init container, and
/// the tool reads it from there.
pub fn an_image_source_is_copied_in_by_an_init_container<S: Strategy>(subject: &Subject) {
    let spec = patched(
        subject.spec,
        r#"{"source": {"configMapRef": null, "image": "registry.example/shop-sql:42", "path": "/sql"}}"#,
    );
    for job in jobs(&plan::<S>(&spec, r#"{"imagePullSecrets": ["registry"]}"#)) {
        let pod = &job["spec"]["template"]["spec"];
        let init = &pod["initContainers"][0];
        assert_eq!(init["image"], "registry.example/shop-sql:42");
        assert_eq!(
            init["command"],
            json!(["cp", "-R", "/sql/.", "/portfolio/source/"])
        );
        assert_eq!(init["securityContext"]["allowPrivilegeEscalation"], false);
        assert!(pod["volumes"][1]["emptyDir"].is_object());
        assert_eq!(pod["imagePullSecrets"][0]["name"], "registry");
        // The tool is pointed at the copy, by an argument or a variable.
        let container = &pod["containers"][0];
        let args = container["args"].as_array().into_iter().flatten();
        let values = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|var| &var["value"]);
        assert!(
            args.chain(values)
                .filter_map(Value::as_str)
                .any(|value| value == "/sql" || value.ends_with(":/sql")),
            "{container}"
        );
    }
}

/// The settings reach every Job; the spec's image wins over the settings'.
pub fn settings_reach_the_jobs<S: Strategy>(subject: &Subject) {
    let mirror = format!("mirror.example/{}:1", S::NAME);
    let settings = json!({
        "image": mirror,
        "serviceAccountName": "migrator",
        "ttlSecondsAfterFinished": 3600,
        "runAsUser": 4242,
        "imagePullPolicy": "Always",
        "resources": {"requests": {"cpu": "1"}},
    })
    .to_string();
    for job in jobs(&plan::<S>(subject.spec, &settings)) {
        assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 3600);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "migrator");
        assert_eq!(pod["securityContext"]["runAsUser"], 4242);
        assert_eq!(pod["securityContext"]["runAsGroup"], 4242);
        let container = &pod["containers"][0];
        assert_eq!(container["image"], mirror.as_str());
        assert_eq!(container["imagePullPolicy"], "Always");
        assert_eq!(container["resources"], json!({"requests": {"cpu": "1"}}));
    }
    let team = format!("team.example/{}:2", S::NAME);
    let spec = patched(subject.spec, &json!({ "image": team }).to_string());
    for job in jobs(&plan::<S>(&spec, &settings)) {
        assert_eq!(container(&job)["image"], team.as_str());
    }
}

/// Specs that would reach a shell, the file system or another Secret, and
/// specs that are not specs, are refused, naming the field.
pub fn hostile_or_malformed_specs_are_refused_with_their_field<S: Strategy>(subject: &Subject) {
    let strategy_settings = |settings: Value| {
        json!({"strategy": {"plugin": S::NAME, "settings": settings}}).to_string()
    };
    let cases = [
        (r#"{"timeout": "1d"}"#.to_owned(), "spec.timeout".to_owned()),
        (
            r#"{"timeout": "9999h"}"#.to_owned(),
            "spec.timeout".to_owned(),
        ),
        (
            r#"{"database": {"url": "jdbc:postgresql://admin:secret@db/shop"}}"#.to_owned(),
            "spec.database.url".to_owned(),
        ),
        (
            r#"{"database": {"url": "jdbc:postgresql://db/shop?password=secret"}}"#.to_owned(),
            "spec.database.url".to_owned(),
        ),
        (
            r#"{"database": {"url": "$(rm -rf /)"}}"#.to_owned(),
            "spec.database.url".to_owned(),
        ),
        (
            r#"{"database": {"credentialsSecretRef": {"name": "../../etc"}}}"#.to_owned(),
            "spec.database.credentialsSecretRef.name".to_owned(),
        ),
        (
            r#"{"source": {"path": "/etc"}}"#.to_owned(),
            "spec.source.path".to_owned(),
        ),
        (
            r#"{"source": {"path": "/sql/../../proc"}}"#.to_owned(),
            "spec.source.path".to_owned(),
        ),
        (
            r#"{"source": {"path": "/sql; rm -rf /"}}"#.to_owned(),
            "spec.source.path".to_owned(),
        ),
        (
            r#"{"source": {"image": "evil/image:1"}}"#.to_owned(),
            "spec.source".to_owned(),
        ),
        (
            r#"{"image": "image with spaces"}"#.to_owned(),
            "spec.image".to_owned(),
        ),
        (
            strategy_settings(json!({ subject.maintenance_setting: true })),
            format!("spec.strategy.settings.{}", subject.maintenance_setting),
        ),
        (
            strategy_settings(json!({"serviceAccountName": "admin"})),
            "spec.strategy.settings.serviceAccountName".to_owned(),
        ),
        (r#"{"dryRun": "yes"}"#.to_owned(), "spec.dryRun".to_owned()),
    ];
    for (patch, field) in cases {
        let invalid = invalid::<S>(&patched(subject.spec, &patch), "{}");
        assert_eq!(invalid.field, field, "{patch}: {}", invalid.message);
    }
    let bare = json!({ "tool": S::NAME }).to_string();
    for garbage in ["", "null", "[]", "{", "\"spec\"", bare.as_str()] {
        let invalid = invalid::<S>(garbage, "{}");
        assert!(invalid.field.starts_with("spec"), "{garbage}: {invalid:?}");
    }
}

/// Settings that are wrong or unknown are refused, naming the field.
pub fn bad_settings_are_refused_with_their_field<S: Strategy>(subject: &Subject) {
    let maintenance = format!("settings.{}", subject.maintenance_setting);
    for (settings, field) in [
        (
            json!({ subject.maintenance_setting: "sometimes" }).to_string(),
            maintenance.as_str(),
        ),
        (r#"{"image": ""}"#.to_owned(), "settings.image"),
        (r#"{"runAsUser": 0}"#.to_owned(), "settings.runAsUser"),
        (
            r#"{"resources": {"limits": {"memory": "a lot"}}}"#.to_owned(),
            "settings.resources.limits.memory",
        ),
        (r#"{"unknown": 1}"#.to_owned(), "settings.unknown"),
        ("[]".to_owned(), "settings"),
    ] {
        assert_eq!(
            invalid::<S>(subject.spec, &settings).field,
            field,
            "{settings}"
        );
    }
}

/// `describe`'s settings schema is JSON with the defaults; the kinds are Jobs.
pub fn the_settings_schema_is_json<S: Strategy>(subject: &Subject) {
    let schema: Value = serde_json::from_str(&S::settings_schema()).unwrap();
    assert_eq!(
        schema["properties"]["image"]["default"],
        subject.default_image
    );
    assert!(schema["properties"][subject.maintenance_setting].is_object());
    assert_eq!(S::KINDS, &[("batch/v1", "Job")]);
}

/// Values travel as arguments and environment; the program stays the same.
pub fn user_input_never_reaches_the_shell_program<S: Strategy>(subject: &Subject) {
    let programs = |spec: &str| -> Vec<String> {
        jobs(&plan::<S>(spec, "{}"))
            .iter()
            .map(|job| container(job)["command"][2].as_str().unwrap().to_owned())
            .collect()
    };
    let hostile = patched(
        &patched(subject.spec, subject.hostile_options_patch),
        r#"{"database": {"url": "jdbc:postgresql://db/$(id)'`"}}"#,
    );
    assert_eq!(programs(&hostile), programs(subject.spec));
    assert!(plan::<S>(&hostile, "{}").steps[1].job.contains("$(id)"));
}

/// A Job that is still running (or whose pods are terminating) is running,
/// whatever its container said so far.
pub fn running_and_terminating_jobs_are_running<S: Strategy>(subject: &Subject) {
    let key = subject.apply_key;
    let summary = format!(
        "{}\n",
        json!({"format": crate::summary::FORMAT, "tool": S::NAME, "step": key, "exitCode": 0})
    );
    let input = input(subject.spec, "{}", &[]);
    for job in ["job-running.json", "job-terminating.json"] {
        for message in [None, Some("anything"), Some(summary.as_str())] {
            assert_eq!(
                interpret::<S>(&input, key, job, message),
                Outcome::Running,
                "{job} {message:?}"
            );
        }
    }
}

/// A container killed before its summary is a retryable failure; a log
/// tail that shows the JVM ran out of memory says so.
pub fn a_killed_container_is_retryable<S: Strategy>(subject: &Subject) {
    let input = input(subject.spec, "{}", &[]);
    let key = subject.apply_key;
    let failure = failed(interpret::<S>(&input, key, "job-oom-killed.json", None));
    assert_eq!((failure.reason, failure.retryable), ("Killed", true));
    assert!(failure.message.contains("memory"), "{}", failure.message);
    // The kubelet's fallback: the log's tail instead of a summary.
    let log = "WARNING: sun.misc.Unsafe::objectFieldOffset\nException in thread \"main\" java.lang.OutOfMemoryError: Java heap space\n";
    let failure = failed(interpret::<S>(
        &input,
        key,
        "job-oom-killed.json",
        Some(log),
    ));
    assert_eq!((failure.reason, failure.retryable), ("OutOfMemory", true));
}

/// A source image whose copy failed will not do better next time.
pub fn a_source_image_without_the_migrations_is_not_retryable<S: Strategy>(subject: &Subject) {
    let input = input(subject.spec, "{}", &[]);
    let failure = failed(interpret::<S>(
        &input,
        subject.apply_key,
        "job-source-copy-failed.json",
        None,
    ));
    assert_eq!(
        (failure.reason, failure.retryable),
        ("SourceCopyFailed", false)
    );
}

/// A message that is no summary leaves the Job's own word: complete is a
/// success without a version, failed a retryable `JobFailed`.
pub fn garbage_messages_fall_back_on_the_jobs_word<S: Strategy>(subject: &Subject) {
    let input = input(subject.spec, "{}", &[]);
    let key = subject.apply_key;
    for garbage in [
        "",
        "\0\0\u{fffd}",
        "{{{{",
        "}}}}",
        "null",
        "[1,2",
        "{\"format\":",
        "{\"format\":\"portfolio.dev/migration-summary/v1\"",
        "Picked up JAVA_TOOL_OPTIONS: -Xmx1g",
    ] {
        assert!(
            matches!(
                interpret::<S>(&input, key, "job-complete.json", Some(garbage)),
                Outcome::Succeeded {
                    applied_version: None,
                    ..
                }
            ),
            "{garbage:?}"
        );
        let failure = failed(interpret::<S>(
            &input,
            key,
            "job-failed.json",
            Some(garbage),
        ));
        assert_eq!(
            (failure.reason, failure.retryable),
            ("JobFailed", true),
            "{garbage:?}"
        );
    }
}

/// A step the strategy never plans, or a Job that is not JSON, is the
/// host's mistake (retried); a spec that no longer parses is the user's.
pub fn what_the_host_got_wrong_is_an_internal_error<S: Strategy>(subject: &Subject) {
    let input = input(subject.spec, "{}", &[]);
    let complete = super::job::<S>("job-complete.json");
    let internal = |key: &str, job: &str| {
        assert!(
            matches!(
                S::interpret(&input, key, job, None),
                Err(Error::Internal(_))
            ),
            "{key} on {job}"
        );
    };
    internal("no-such-step", &complete);
    internal(subject.apply_key, "{not a job");
    internal(subject.apply_key, "[]");
    let bare = json!({ "tool": S::NAME }).to_string();
    assert!(matches!(
        S::interpret(
            &super::input(&bare, "{}", &[]),
            subject.apply_key,
            &complete,
            None
        ),
        Err(Error::Invalid(_))
    ));
}
