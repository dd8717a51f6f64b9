//! Built-in generator: turns a `PortfolioApp` into a Deployment, a Service and a ConfigMap.
//!
//! The logic ([`generate`]) is plain Rust with no WebAssembly bindings, so the
//! operator's benchmark can call it natively; the component glue in
//! `component.rs` exists only when building for WebAssembly.

#[cfg(target_arch = "wasm32")]
mod component;
mod objects;
mod shapes;
mod validate;

pub use objects::CONFIG_HASH_ANNOTATION;

/// Name under which this plugin registers.
pub const NAME: &str = "deployment-generator";

/// One line about the plugin, for `describe`.
pub const DESCRIPTION: &str = "Turns a PortfolioApp into a Deployment, a Service and a ConfigMap.";

/// The kinds this plugin may emit, as (apiVersion, kind).
pub const KINDS: &[(&str, &str)] = &[
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
];

/// A spec this generator cannot turn into valid objects: the user's fault.
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

/// The children (JSON text) of the app `name` whose spec is `spec_json`.
pub fn generate(name: &str, spec_json: &str) -> Result<Vec<String>, Invalid> {
    // Path tracking costs on every field, so it only runs to explain a failure.
    let spec: portfolio_api::PortfolioAppSpec = match serde_json::from_str(spec_json) {
        Ok(spec) => spec,
        Err(_) => return Err(spec_error(spec_json)),
    };
    validate::app(name, &spec)?;
    Ok(objects::build(name, &spec))
}

/// Why `spec_json` is not a `PortfolioAppSpec`, naming the field.
fn spec_error(spec_json: &str) -> Invalid {
    let mut deserializer = serde_json::Deserializer::from_str(spec_json);
    let result: Result<portfolio_api::PortfolioAppSpec, _> =
        serde_path_to_error::deserialize(&mut deserializer);
    match result {
        Ok(_) => Invalid::new("spec", "could not be read"),
        Err(error) => {
            let path = error.path().to_string();
            let field = if path == "." {
                "spec".to_owned()
            } else {
                format!("spec.{path}")
            };
            Invalid::new(field, error.into_inner().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_name_the_field() {
        let error = generate("shop", r#"{"image": "a:1", "replicas": "two"}"#).unwrap_err();
        assert_eq!(error.field, "spec.replicas");
    }

    #[test]
    fn the_sample_spec_renders() {
        let objects = generate(
            "shop",
            r#"{"image": "a:1", "ports": [{"name": "http", "containerPort": 8080}], "config": {"A": "b"}}"#,
        )
        .unwrap();
        assert_eq!(objects.len(), 3);
    }
}
