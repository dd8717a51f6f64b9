//! The component glue: the `generator` world, implemented with [`crate::generate`].

use portfolio_plugin_sdk::{
    GenerateOutput, Generator, KindRef, PluginError, PluginInfo, ReconcileInput,
};

// Each call runs in a fresh instance whose memory is discarded afterwards,
// so nothing is ever worth freeing.
#[global_allocator]
static ALLOC: portfolio_plugin_sdk::alloc::BumpAllocator =
    portfolio_plugin_sdk::alloc::BumpAllocator::new();

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
            settings_schema: None,
        }
    }

    fn generate(input: ReconcileInput) -> Result<GenerateOutput, PluginError> {
        let objects = crate::generate(&input.meta.name, &input.spec)
            .map_err(|invalid| PluginError::invalid(invalid.field, invalid.message))?;
        Ok(GenerateOutput {
            objects,
            conditions: Vec::new(),
            status: "{}".to_owned(),
            requeue_after_seconds: None,
        })
    }

    fn finalize(_input: ReconcileInput) -> Result<Vec<String>, PluginError> {
        Ok(Vec::new())
    }
}

portfolio_plugin_sdk::export_generator!(DeploymentGenerator);
