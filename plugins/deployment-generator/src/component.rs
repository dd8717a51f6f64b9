//! The component glue: the `generator` world, implemented with [`crate::generate`].

use portfolio_plugin_sdk::{
    GenerateOutput, Generator, KindRef, PluginError, PluginInfo, ReconcileInput,
};

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

portfolio_plugin_sdk::no_std_runtime!();

struct DeploymentGenerator;

impl Generator for DeploymentGenerator {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: crate::NAME.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: crate::DESCRIPTION.to_owned(),
            kinds: crate::KINDS
                .iter()
                .map(|(api_version, kind)| KindRef::new(api_version, kind))
                .collect(),
            settings_schema: Some(crate::SETTINGS_SCHEMA.to_owned()),
        }
    }

    fn generate(input: ReconcileInput) -> Result<GenerateOutput, PluginError> {
        let objects = crate::generate(&input.meta.name, &input.spec, &input.settings)
            .map_err(|invalid| PluginError::invalid(invalid.field, invalid.message))?;
        Ok(GenerateOutput {
            objects,
            conditions: Vec::new(),
            status: "{}".to_owned(),
            requeue_after_seconds: None,
        })
    }

    fn finalize(input: ReconcileInput) -> Result<Vec<String>, PluginError> {
        crate::finalize(&input.meta.name, &input.spec, &input.settings)
            .map_err(|invalid| PluginError::invalid(invalid.field, invalid.message))
    }
}

portfolio_plugin_sdk::export_generator!(DeploymentGenerator);
