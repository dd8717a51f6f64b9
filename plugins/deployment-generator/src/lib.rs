//! Built-in generator: turns a `PortfolioApp` into a Deployment, a Service, a
//! ConfigMap, and — when the spec asks — a PersistentVolumeClaim, a
//! HorizontalPodAutoscaler, a PodDisruptionBudget and a ServiceAccount; on
//! deletion, a backup Job.
//!
//! The logic ([`generate`], [`finalize`]) is plain Rust with no WebAssembly
//! bindings, so the operator's benchmark can call it natively; the component
//! glue in `component.rs` exists only when building for WebAssembly.

// no_std: no WASI imports at all, and a smaller component (see the SDK).
// Only as the component: as a library of another plugin the crate is still
// built as a cdylib too (cargo builds every crate type of a dependency), and a
// no_std cdylib without this crate's panic handler and allocator cannot link.
#![cfg_attr(all(target_arch = "wasm32", not(test), feature = "component"), no_std)]
extern crate alloc;

#[cfg(all(target_arch = "wasm32", not(test), feature = "component"))]
mod component;
mod objects;
mod settings;
mod shapes;
mod validate;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use portfolio_api::PortfolioAppSpec;
use serde::de::DeserializeOwned;

pub use objects::CONFIG_HASH_ANNOTATION;
pub use settings::{SCHEMA as SETTINGS_SCHEMA, Settings};

/// Name under which this plugin registers.
pub const NAME: &str = "deployment-generator";

/// One line about the plugin, for `describe`.
pub const DESCRIPTION: &str = "Turns a PortfolioApp into a Deployment, Service, ConfigMap, and as asked a PersistentVolumeClaim, HorizontalPodAutoscaler, PodDisruptionBudget and ServiceAccount; backs storage up before deletion.";

/// The kinds this plugin may emit, as (apiVersion, kind).
pub const KINDS: &[(&str, &str)] = &[
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("batch/v1", "Job"),
];

/// A spec or settings this generator cannot turn into valid objects: the user's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// JSON path of the offending field, e.g. `spec.ports[0].name`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Invalid {
    /// `field` is wrong because of `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The children (JSON text) of the app `name`, in the order they should be applied.
pub fn generate(name: &str, spec_json: &str, settings_json: &str) -> Result<Vec<String>, Invalid> {
    let (spec, settings) = parse(name, spec_json, settings_json)?;
    Ok(objects::build(name, &spec, &settings))
}

/// What must run before the app `name` is deleted: the backup Job when
/// `spec.storage.backup` is set, else nothing.
pub fn finalize(name: &str, spec_json: &str, settings_json: &str) -> Result<Vec<String>, Invalid> {
    let (spec, settings) = parse(name, spec_json, settings_json)?;
    Ok(objects::backup_job(name, &spec, &settings)
        .into_iter()
        .collect())
}

fn parse(
    name: &str,
    spec_json: &str,
    settings_json: &str,
) -> Result<(PortfolioAppSpec, Settings), Invalid> {
    let spec: PortfolioAppSpec = parse_json("spec", spec_json)?;
    let settings = Settings::parse(settings_json)?;
    validate::app(name, &spec, &settings)?;
    Ok((spec, settings))
}

/// Parse `text`; on failure, name the field under `root`.
pub(crate) fn parse_json<T: DeserializeOwned>(root: &str, text: &str) -> Result<T, Invalid> {
    serde_json::from_str(text).map_err(|error| {
        Invalid::new(
            portfolio_api::json_path::field_of(root, text, &error),
            error.to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_name_the_field() {
        let error = generate("shop", r#"{"image": "a:1", "replicas": "two"}"#, "").unwrap_err();
        assert_eq!(error.field, "spec.replicas");
        let error = generate("shop", r#"{"image": "a:1"}"#, r#"{"labels": 3}"#).unwrap_err();
        assert_eq!(error.field, "settings.labels");
        let error = generate("shop", "{", "").unwrap_err();
        assert_eq!(error.field, "spec");
    }

    #[test]
    fn default_readiness_false_turns_the_default_probe_off() {
        let readiness = |spec: &str| {
            let deployment = generate("shop", spec, "{}")
                .unwrap()
                .iter()
                .map(|text| serde_json::from_str::<serde_json::Value>(text).unwrap())
                .find(|object| object["kind"] == "Deployment")
                .unwrap();
            deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].clone()
        };
        let ports = r#""ports": [{"name": "http", "containerPort": 8080}]"#;
        assert_eq!(
            readiness(&format!(r#"{{"image": "a:1", {ports}}}"#))["tcpSocket"]["port"],
            "http"
        );
        assert!(
            readiness(&format!(
                r#"{{"image": "a:1", {ports}, "probes": {{"defaultReadiness": false}}}}"#
            ))
            .is_null()
        );
        let error = generate(
            "shop",
            &format!(
                r#"{{"image": "a:1", {ports}, "probes": {{"defaultReadiness": false, "readiness": {{"tcp": {{}}}}}}}}"#
            ),
            "{}",
        )
        .unwrap_err();
        assert_eq!(error.field, "spec.probes.defaultReadiness");
    }

    #[test]
    fn the_sample_spec_renders() {
        let objects = generate(
            "shop",
            r#"{"image": "a:1", "ports": [{"name": "http", "containerPort": 8080}], "config": {"A": "b"}}"#,
            "{}",
        )
        .unwrap();
        assert_eq!(objects.len(), 3);
    }
}
