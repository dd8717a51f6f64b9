//! Test fixture: a generator built against portfolio:plugin@0.1.1, which adds
//! a function. A 0.1.0 host must still load and call it (wit/README.md).
// A component only: natively there is nothing to build.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    world: "generator",
    path: concat!(env!("OUT_DIR"), "/wit"),
});

use exports::portfolio::plugin::generation::{GenerateOutput, Guest};
use portfolio::plugin::types::{KindRef, PluginError, PluginInfo, ReconcileInput};

struct Future;

impl Guest for Future {
    fn health() -> String {
        "ok".into()
    }

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "future-minor".into(),
            version: "0.2.0".into(),
            description: "Built against portfolio:plugin@0.1.1.".into(),
            kinds: vec![KindRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
            }],
            settings_schema: None,
        }
    }

    fn generate(input: ReconcileInput) -> Result<GenerateOutput, PluginError> {
        portfolio::plugin::host::log(
            portfolio::plugin::types::LogLevel::Info,
            "future plugin generating",
        );
        Ok(GenerateOutput {
            objects: vec![format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{}-future"}},"data":{{"contract":"0.1.1"}}}}"#,
                input.meta.name
            )],
            conditions: Vec::new(),
            status: "{}".into(),
            requeue_after_seconds: None,
        })
    }

    fn finalize(_input: ReconcileInput) -> Result<Vec<String>, PluginError> {
        Ok(Vec::new())
    }
}

export!(Future);
