//! Test support for the strategies (feature `testing`, native only).
//!
//! The helpers every strategy's tests use ([`input`], [`plan`], [`patched`],
//! [`interpret`], the Job fixtures of [`job`]), running a step's wrapper
//! against a fake tool ([`termination_message`], [`run()`]), and the checks
//! every strategy must pass ([`checks`], turned into tests by
//! [`strategy_checks!`](crate::strategy_checks)).

pub mod checks;
mod run;

pub use run::{Run, run};

use serde_json::Value;

use crate::{Error, Failure, Input, Invalid, Outcome, Phase, Plan, Strategy};

/// `metadata.uid` of the migration in every test input.
pub const UID: &str = "0b6f3c1e-7d4a-4f9e-9c55-2a1e8d6b4f10";

/// Where the Job fixtures shared by the strategies are: a Job as the Job
/// controller reports it in each state, with `{tool}` for the container name.
const JOB_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

/// The input of migration `shop` (uid [`UID`]).
pub fn input<'a>(
    spec: &'a str,
    settings: &'a str,
    annotations: &'a [(String, String)],
) -> Input<'a> {
    Input {
        name: "shop",
        uid: UID,
        annotations,
        spec,
        settings,
    }
}

/// The plan of `spec` with `settings`; panics on an error.
pub fn plan<S: Strategy>(spec: &str, settings: &str) -> Plan {
    S::plan(&input(spec, settings, &[]))
        .unwrap_or_else(|error| panic!("{} refused {spec} with {settings}: {error}", S::NAME))
}

/// Why `spec` with `settings` is refused; panics unless it is refused as invalid.
pub fn invalid<S: Strategy>(spec: &str, settings: &str) -> Invalid {
    match S::plan(&input(spec, settings, &[])) {
        Err(Error::Invalid(invalid)) => {
            assert!(!invalid.message.is_empty(), "{invalid:?}");
            invalid
        }
        other => panic!("{spec} with {settings}: expected an invalid input, got {other:?}"),
    }
}

/// `spec` with `patch` merged in (JSON merge patch: null removes a member).
pub fn patched(spec: &str, patch: &str) -> String {
    let mut spec: Value = serde_json::from_str(spec).expect("the spec is JSON");
    merge(
        &mut spec,
        serde_json::from_str(patch).expect("the patch is JSON"),
    );
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

/// The plan's Jobs, parsed.
pub fn jobs(plan: &Plan) -> Vec<Value> {
    plan.steps
        .iter()
        .map(|step| serde_json::from_str(&step.job).expect("a step's Job is JSON"))
        .collect()
}

/// The plan's steps as (key, phase).
pub fn keys(plan: &Plan) -> Vec<(&str, Phase)> {
    plan.steps
        .iter()
        .map(|step| (step.key, step.phase))
        .collect()
}

/// The (only) container of a Job.
pub fn container(job: &Value) -> &Value {
    &job["spec"]["template"]["spec"]["containers"][0]
}

/// The text of the file `name` in `dir`; panics, naming the path, when it
/// cannot be read. An empty `name` is an empty text.
pub fn fixture(dir: &str, name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    let path = format!("{dir}/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The shared Job fixture `name` (e.g. `job-failed.json`) for strategy `S`.
pub fn job<S: Strategy>(name: &str) -> String {
    fixture(JOB_FIXTURES, name).replace("{tool}", S::NAME)
}

/// The outcome of step `key` whose Job is the shared fixture `job`;
/// panics on an error, and checks what the operator checks of every outcome.
pub fn interpret<S: Strategy>(
    input: &Input<'_>,
    key: &str,
    job: &str,
    message: Option<&str>,
) -> Outcome {
    let outcome = S::interpret(input, key, &self::job::<S>(job), message)
        .unwrap_or_else(|error| panic!("{key} on {job}: {error}"));
    within_the_operators_bounds(&outcome);
    outcome
}

/// What the operator checks of every outcome (host/src/plugin/strategy.rs):
/// CamelCase reasons, texts of at most 2048 bytes, versions of at most 256.
pub fn within_the_operators_bounds(outcome: &Outcome) {
    match outcome {
        Outcome::Running => {}
        Outcome::Succeeded {
            applied_version,
            summary,
        } => {
            assert!(
                applied_version
                    .as_ref()
                    .is_none_or(|version| version.len() <= 256)
            );
            assert!(!summary.is_empty() && summary.len() <= 2048, "{summary}");
        }
        Outcome::Failed(failure) => {
            assert!(failure.reason.starts_with(|c: char| c.is_ascii_uppercase()));
            assert!(failure.reason.chars().all(|c| c.is_ascii_alphanumeric()));
            assert!(!failure.message.is_empty() && failure.message.len() <= 2048);
        }
        Outcome::LockHeld(holder) => assert!(!holder.is_empty() && holder.len() <= 2048),
    }
}

/// The failure of a failed outcome; panics on any other.
pub fn failed(outcome: Outcome) -> Failure {
    match outcome {
        Outcome::Failed(failure) => failure,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// The termination message step `key` of the plan of `spec` with
/// `settings` leaves when the tool on its PATH is the shell script `fake`:
/// the step's own container program runs, so the wrapper, its awk program
/// and the strategy's reader are tested together. Set
/// `SHOW_TERMINATION_MESSAGES` to print them.
pub fn termination_message<S: Strategy>(
    spec: &str,
    settings: &str,
    key: &str,
    fake: &str,
) -> String {
    let plan = plan::<S>(spec, settings);
    let step = plan
        .steps
        .iter()
        .find(|step| step.key == key)
        .unwrap_or_else(|| panic!("the plan has no step {key}"));
    let job: Value = serde_json::from_str(&step.job).expect("a step's Job is JSON");
    let container = container(&job);
    let program = container["command"][2]
        .as_str()
        .expect("the container runs /bin/sh -c PROGRAM");
    let args: Vec<String> = container["args"]
        .as_array()
        .map(|args| {
            args.iter()
                .map(|arg| arg.as_str().expect("arguments are strings").to_owned())
                .collect()
        })
        .unwrap_or_default();
    let run = run(program, key, &args, S::NAME, fake);
    assert!(run.termination_message.len() <= crate::summary::MAX_BYTES);
    if std::env::var_os("SHOW_TERMINATION_MESSAGES").is_some() {
        eprintln!("--- {key}:\n{}", run.termination_message);
    }
    run.termination_message
}
