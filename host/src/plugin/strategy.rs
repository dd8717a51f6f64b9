//! Calls of the `migration-strategy` world: `plan` and `interpret`, with
//! their output checked like a generator's.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use super::bindings::migration::exports::portfolio::plugin::migration as wit;
use super::call::{self, GenerateInput};
use super::error::{CallFailure, PluginError};
use super::limits::Limits;
use super::load::{Plugin, is_dns_label};
use super::output::{ChildObject, checked_objects};
use super::sandbox::{CallContext, WorldPre};

/// Longest plan summary kept (it is shown in status).
const MAX_SUMMARY: usize = 4096;
/// Longest step description, failure message or lock holder.
const MAX_TEXT: usize = 2048;

/// When a step runs relative to the app's rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StepPhase {
    /// Before the new version rolls out.
    Expand,
    /// After the new version is available.
    Contract,
    /// Reads and validates only.
    PlanOnly,
    /// Repairs the tool's bookkeeping (e.g. releases a lock).
    Maintenance,
}

impl StepPhase {
    /// As the contract spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            StepPhase::Expand => "expand",
            StepPhase::Contract => "contract",
            StepPhase::PlanOnly => "plan-only",
            StepPhase::Maintenance => "maintenance",
        }
    }

    fn from_wit(phase: wit::StepPhase) -> Self {
        match phase {
            wit::StepPhase::Expand => StepPhase::Expand,
            wit::StepPhase::Contract => StepPhase::Contract,
            wit::StepPhase::PlanOnly => StepPhase::PlanOnly,
            wit::StepPhase::Maintenance => StepPhase::Maintenance,
        }
    }

    fn to_wit(self) -> wit::StepPhase {
        match self {
            StepPhase::Expand => wit::StepPhase::Expand,
            StepPhase::Contract => wit::StepPhase::Contract,
            StepPhase::PlanOnly => wit::StepPhase::PlanOnly,
            StepPhase::Maintenance => wit::StepPhase::Maintenance,
        }
    }
}

/// One checked step: its key, phase, Job and description.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanStep {
    /// Idempotency key, unique within the plan.
    pub key: String,
    /// Whether it runs before or after the rollout, or for planning or repair.
    pub phase: StepPhase,
    /// The `batch/v1` Job to run.
    pub job: ChildObject,
    /// What it does, shown in the migration's status (at most 2 KiB).
    pub description: String,
}

/// What `plan` returned, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Steps, in the order they run.
    pub steps: Vec<PlanStep>,
    /// A short summary for status.
    pub summary: String,
}

/// What `interpret` concluded about one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// The Job has not finished; ask again when it has.
    Running,
    /// The step did what it was meant to.
    Succeeded {
        /// The schema version now applied, if the tool said.
        applied_version: Option<String>,
        /// One line for the migration's status and history.
        summary: String,
    },
    /// The step failed; `retryable` says whether to run it again.
    Failed {
        /// CamelCase, for the condition's reason, e.g. `ChecksumMismatch`.
        reason: String,
        /// What happened and what to do.
        message: String,
        /// Whether running it again may succeed.
        retryable: bool,
    },
    /// The tool's lock is held; a maintenance step may release it.
    LockHeld {
        /// Who holds it, as the tool says.
        holder: String,
    },
}

fn malformed(detail: impl Into<String>) -> CallFailure {
    CallFailure::MalformedOutput {
        detail: detail.into(),
    }
}

fn bounded(what: &str, text: String, max: usize) -> Result<String, CallFailure> {
    if text.len() > max {
        Err(malformed(format!("{what} is longer than {max} bytes")))
    } else {
        Ok(text)
    }
}

/// Check what `plan` returned.
fn checked_plan(raw: wit::PlanOutput, limits: &Limits) -> Result<Plan, CallFailure> {
    let jobs: Vec<String> = raw.steps.iter().map(|step| step.job.clone()).collect();
    let objects = checked_objects(&jobs, limits)?;
    let mut keys = BTreeSet::new();
    let mut steps = Vec::with_capacity(raw.steps.len());
    for (index, (step, job)) in raw.steps.into_iter().zip(objects).enumerate() {
        if !is_dns_label(&step.key) {
            return Err(malformed(format!(
                "step {index}: key {:?} is not a DNS-1123 label",
                step.key
            )));
        }
        if !keys.insert(step.key.clone()) {
            return Err(malformed(format!(
                "step {index}: key {:?} is used twice",
                step.key
            )));
        }
        if job.key().api_version != "batch/v1" || job.key().kind != "Job" {
            return Err(malformed(format!(
                "step {index} ({}): is a {}, not a batch/v1 Job",
                step.key,
                job.key()
            )));
        }
        steps.push(PlanStep {
            key: step.key,
            phase: StepPhase::from_wit(step.phase),
            job,
            description: bounded("a step description", step.description, MAX_TEXT)?,
        });
    }
    Ok(Plan {
        steps,
        summary: bounded("the plan summary", raw.summary, MAX_SUMMARY)?,
    })
}

/// Check what `interpret` returned.
fn checked_outcome(raw: wit::StepOutcome) -> Result<StepOutcome, CallFailure> {
    Ok(match raw {
        wit::StepOutcome::Running => StepOutcome::Running,
        wit::StepOutcome::Succeeded(success) => StepOutcome::Succeeded {
            applied_version: match success.applied_version {
                Some(version) => Some(bounded("the applied version", version, 256)?),
                None => None,
            },
            summary: bounded("the step summary", success.summary, MAX_TEXT)?,
        },
        wit::StepOutcome::Failed(failure) => {
            let camel = failure.reason.starts_with(|c: char| c.is_ascii_uppercase())
                && failure.reason.len() <= 128
                && failure.reason.chars().all(|c| c.is_ascii_alphanumeric());
            if !camel {
                return Err(malformed(format!(
                    "failure reason {:?} is not CamelCase",
                    failure.reason
                )));
            }
            StepOutcome::Failed {
                reason: failure.reason,
                message: bounded("the failure message", failure.message, MAX_TEXT)?,
                retryable: failure.retryable,
            }
        }
        wit::StepOutcome::LockHeld(holder) => StepOutcome::LockHeld {
            holder: bounded("the lock holder", holder, MAX_TEXT)?,
        },
    })
}

impl Plugin {
    /// Ask a migration strategy for the steps of the migration in `input` (blocking).
    pub fn plan(&self, input: &GenerateInput, context: &CallContext) -> Result<Plan, PluginError> {
        let wit_input = input.to_wit(&self.settings);
        let raw = self.call("plan", context, |store, pre| match pre {
            WorldPre::MigrationStrategy(pre) => {
                let bindings = pre.instantiate(&mut *store)?;
                bindings
                    .portfolio_plugin_migration()
                    .call_plan(&mut *store, &wit_input)
            }
            WorldPre::Generator(_) => Err(wasmtime::format_err!(
                "plan belongs to the migration-strategy world"
            )),
        })?;
        let raw = raw.map_err(|error| self.error("plan", call::plugin_failure(error)))?;
        checked_plan(raw, &self.limits).map_err(|failure| self.error("plan", failure))
    }

    /// Ask a migration strategy what became of `step`, from its Job and the
    /// termination message of its pod (blocking).
    pub fn interpret(
        &self,
        input: &GenerateInput,
        step: &PlanStep,
        job: &Value,
        termination_message: Option<&str>,
        context: &CallContext,
    ) -> Result<StepOutcome, PluginError> {
        let wit_input = wit::InterpretInput {
            reconcile: input.to_wit(&self.settings),
            step: wit::PlanStep {
                key: step.key.clone(),
                phase: step.phase.to_wit(),
                job: Value::Object(step.job.object().clone()).to_string(),
                description: step.description.clone(),
            },
            job: job.to_string(),
            termination_message: termination_message.map(str::to_owned),
        };
        let raw = self.call("interpret", context, |store, pre| match pre {
            WorldPre::MigrationStrategy(pre) => {
                let bindings = pre.instantiate(&mut *store)?;
                bindings
                    .portfolio_plugin_migration()
                    .call_interpret(&mut *store, &wit_input)
            }
            WorldPre::Generator(_) => Err(wasmtime::format_err!(
                "interpret belongs to the migration-strategy world"
            )),
        })?;
        let raw = raw.map_err(|error| self.error("interpret", call::plugin_failure(error)))?;
        checked_outcome(raw).map_err(|failure| self.error("interpret", failure))
    }

    /// [`Plugin::plan`] on the blocking pool.
    pub async fn plan_async(
        self: &Arc<Self>,
        input: GenerateInput,
        context: CallContext,
    ) -> Result<Plan, PluginError> {
        let plugin = Arc::clone(self);
        let label = self.label.to_string();
        tokio::task::spawn_blocking(move || plugin.plan(&input, &context))
            .await
            .unwrap_or_else(|join| Err(call::worker_died(label, "plan", join)))
    }
}

impl Plugin {
    /// [`Plugin::interpret`] on the blocking pool.
    pub async fn interpret_async(
        self: &Arc<Self>,
        input: GenerateInput,
        step: PlanStep,
        job: Value,
        termination_message: Option<String>,
        context: CallContext,
    ) -> Result<StepOutcome, PluginError> {
        let plugin = Arc::clone(self);
        let label = self.label.to_string();
        tokio::task::spawn_blocking(move || {
            plugin.interpret(
                &input,
                &step,
                &job,
                termination_message.as_deref(),
                &context,
            )
        })
        .await
        .unwrap_or_else(|join| Err(call::worker_died(label, "interpret", join)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str) -> String {
        format!(r#"{{"apiVersion":"batch/v1","kind":"Job","metadata":{{"name":"{name}"}}}}"#)
    }

    fn step(key: &str, job: String) -> wit::PlanStep {
        wit::PlanStep {
            key: key.into(),
            phase: wit::StepPhase::PlanOnly,
            job,
            description: "d".into(),
        }
    }

    fn detail(result: Result<Plan, CallFailure>) -> String {
        match result {
            Err(CallFailure::MalformedOutput { detail }) => detail,
            other => panic!("expected malformed output, got {other:?}"),
        }
    }

    #[test]
    fn plans_keep_order_and_phases() {
        let raw = wit::PlanOutput {
            steps: vec![
                step("plan", job("a-plan")),
                step("migrate", job("a-migrate")),
            ],
            summary: "two steps".into(),
        };
        let plan = checked_plan(raw, &Limits::default()).unwrap();
        assert_eq!(plan.steps[1].key, "migrate");
        assert_eq!(plan.steps[0].phase.as_str(), "plan-only");
    }

    #[test]
    fn plans_are_checked() {
        let plan = |steps| wit::PlanOutput {
            steps,
            summary: String::new(),
        };
        assert!(
            detail(checked_plan(
                plan(vec![step("Bad Key", job("a"))]),
                &Limits::default()
            ))
            .contains("not a DNS-1123 label")
        );
        assert!(
            detail(checked_plan(
                plan(vec![step("a", job("x")), step("a", job("y"))]),
                &Limits::default()
            ))
            .contains("used twice")
        );
        let config_map = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#;
        assert!(
            detail(checked_plan(
                plan(vec![step("a", config_map.into())]),
                &Limits::default()
            ))
            .contains("not a batch/v1 Job")
        );
        assert!(
            detail(checked_plan(
                plan(vec![step("a", "{".into())]),
                &Limits::default()
            ))
            .contains("not JSON")
        );
    }

    #[test]
    fn outcomes_are_checked() {
        let failed = |reason: &str| {
            wit::StepOutcome::Failed(wit::StepFailure {
                reason: reason.into(),
                message: "m".into(),
                retryable: true,
            })
        };
        assert!(checked_outcome(failed("SqlError")).is_ok());
        assert!(checked_outcome(failed("sql error")).is_err());
        assert!(checked_outcome(wit::StepOutcome::LockHeld("x".repeat(MAX_TEXT + 1))).is_err());
    }
}
