//! The component glue of every strategy: [`Component`] exports a
//! [`Strategy`] as the `migration-strategy` world (WebAssembly only).

use alloc::borrow::ToOwned;
use alloc::string::String;
use core::marker::PhantomData;

use portfolio_plugin_sdk::{
    InterpretInput, KindRef, MigrationStrategy, PlanOutput, PlanStep, PluginError, PluginInfo,
    ReconcileInput, StepFailure, StepOutcome, StepPhase, StepSuccess,
};

use crate::{Error, Input, Outcome, Phase, Plan, Strategy};

/// The `migration-strategy` world implemented by `S`; a strategy crate
/// exports it with [`export_strategy!`](crate::export_strategy).
pub struct Component<S>(PhantomData<S>);

impl<S: Strategy> MigrationStrategy for Component<S> {
    fn describe() -> PluginInfo {
        plugin_info(
            S::NAME,
            S::VERSION,
            S::DESCRIPTION,
            S::KINDS,
            S::settings_schema(),
        )
    }

    fn plan(input: ReconcileInput) -> Result<PlanOutput, PluginError> {
        S::plan(&self::input(&input))
            .map(plan_output)
            .map_err(error)
    }

    fn interpret(input: InterpretInput) -> Result<StepOutcome, PluginError> {
        S::interpret(
            &self::input(&input.reconcile),
            &input.step.key,
            &input.job,
            input.termination_message.as_deref(),
        )
        .map(step_outcome)
        .map_err(error)
    }
}

/// The kit's view of what the host handed the plugin.
fn input(input: &ReconcileInput) -> Input<'_> {
    Input {
        name: &input.meta.name,
        uid: &input.meta.uid,
        annotations: &input.meta.annotations,
        spec: &input.spec,
        settings: &input.settings,
    }
}

/// What `describe` returns.
fn plugin_info(
    name: &str,
    version: &str,
    description: &str,
    kinds: &[(&str, &str)],
    settings_schema: String,
) -> PluginInfo {
    PluginInfo {
        name: name.to_owned(),
        version: version.to_owned(),
        description: description.to_owned(),
        kinds: kinds
            .iter()
            .map(|(api_version, kind)| KindRef::new(api_version, kind))
            .collect(),
        settings_schema: Some(settings_schema),
    }
}

/// What `plan` returns.
fn plan_output(plan: Plan) -> PlanOutput {
    PlanOutput {
        steps: plan
            .steps
            .into_iter()
            .map(|step| PlanStep {
                key: step.key.to_owned(),
                phase: phase(step.phase),
                job: step.job,
                description: step.description,
            })
            .collect(),
        summary: plan.summary,
    }
}

fn phase(phase: Phase) -> StepPhase {
    match phase {
        Phase::Expand => StepPhase::Expand,
        Phase::Contract => StepPhase::Contract,
        Phase::PlanOnly => StepPhase::PlanOnly,
        Phase::Maintenance => StepPhase::Maintenance,
    }
}

/// What `interpret` returns.
fn step_outcome(outcome: Outcome) -> StepOutcome {
    match outcome {
        Outcome::Running => StepOutcome::Running,
        Outcome::Succeeded {
            applied_version,
            summary,
        } => StepOutcome::Succeeded(StepSuccess {
            applied_version,
            summary,
        }),
        Outcome::Failed(failure) => StepOutcome::Failed(StepFailure {
            reason: failure.reason.to_owned(),
            message: failure.message,
            retryable: failure.retryable,
        }),
        Outcome::LockHeld(message) => StepOutcome::LockHeld(message),
    }
}

/// A kit error as the WIT's.
fn error(error: Error) -> PluginError {
    match error {
        Error::Invalid(invalid) => PluginError::invalid(invalid.field, invalid.message),
        Error::Internal(message) => PluginError::internal(message),
    }
}
