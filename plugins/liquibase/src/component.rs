//! The component glue: the `migration-strategy` world, implemented with [`crate::plan`] and [`crate::interpret`].

use portfolio_plugin_sdk::{
    InterpretInput, MigrationStrategy, PlanOutput, PluginError, PluginInfo, ReconcileInput,
    StepOutcome,
};
use strategy_kit::wit;

portfolio_plugin_sdk::no_std_runtime!();

struct Liquibase;

impl MigrationStrategy for Liquibase {
    fn describe() -> PluginInfo {
        wit::plugin_info(
            crate::NAME,
            env!("CARGO_PKG_VERSION"),
            crate::DESCRIPTION,
            crate::KINDS,
            crate::settings_schema(),
        )
    }

    fn plan(input: ReconcileInput) -> Result<PlanOutput, PluginError> {
        crate::plan(&wit::input(&input))
            .map(wit::plan_output)
            .map_err(wit::error)
    }

    fn interpret(input: InterpretInput) -> Result<StepOutcome, PluginError> {
        crate::interpret(
            &wit::input(&input.reconcile),
            &input.step.key,
            &input.job,
            input.termination_message.as_deref(),
        )
        .map(wit::step_outcome)
        .map_err(wit::error)
    }
}

portfolio_plugin_sdk::export_migration_strategy!(Liquibase);
