//! Built-in generator: turns a `PortfolioApp` into a Deployment, a Service and a ConfigMap.
//!
//! The logic lives in [`generate`], a plain function, so that it can also be
//! compiled natively (the operator's benchmark compares both).

mod objects;
mod validate;

use portfolio_plugin_sdk::{
    GenerateOutput, Generator, KindRef, PluginError, PluginInfo, ReconcileInput, input,
};

pub use objects::CONFIG_HASH_ANNOTATION;

/// Name under which this plugin registers.
pub const NAME: &str = "deployment-generator";

/// What this plugin says about itself.
pub fn info() -> PluginInfo {
    PluginInfo {
        name: NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        description: "Turns a PortfolioApp into a Deployment, a Service and a ConfigMap."
            .to_owned(),
        kinds: vec![
            KindRef::new("apps/v1", "Deployment"),
            KindRef::new("v1", "Service"),
            KindRef::new("v1", "ConfigMap"),
        ],
        settings_schema: None,
    }
}

/// The children of the app described by `input`.
pub fn generate(input: &ReconcileInput) -> Result<GenerateOutput, PluginError> {
    let spec: portfolio_api::PortfolioAppSpec = input::spec(input)?;
    validate::app(&input.meta.name, &spec)?;
    let objects = objects::build(&input.meta.name, &spec)?;
    Ok(GenerateOutput {
        objects,
        conditions: Vec::new(),
        status: "{}".to_owned(),
        requeue_after_seconds: None,
    })
}

struct DeploymentGenerator;

impl Generator for DeploymentGenerator {
    fn describe() -> PluginInfo {
        info()
    }

    fn generate(input: ReconcileInput) -> Result<GenerateOutput, PluginError> {
        generate(&input)
    }

    fn finalize(_input: ReconcileInput) -> Result<Vec<String>, PluginError> {
        Ok(Vec::new())
    }
}

portfolio_plugin_sdk::export_generator!(DeploymentGenerator);
