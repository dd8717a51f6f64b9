//! Typed access to what the host hands a plugin, with field-precise user errors.

use alloc::string::ToString;
use serde::de::DeserializeOwned;

use crate::{PluginError, ReconcileInput};

/// Parse the custom resource's spec; a mismatch is the user's fault and names the field.
pub fn spec<T: DeserializeOwned>(input: &ReconcileInput) -> Result<T, PluginError> {
    parse_json("spec", &input.spec)
}

/// Parse the plugin's settings (`{}` when none); a mismatch names the setting.
pub fn settings<T: DeserializeOwned>(input: &ReconcileInput) -> Result<T, PluginError> {
    let text = if input.settings.trim().is_empty() {
        "{}"
    } else {
        input.settings.as_str()
    };
    parse_json("settings", text)
}

/// Parse JSON text into `T`, reporting errors as [`PluginError::InvalidSpec`]
/// with the path of the offending field under `root`.
pub fn parse_json<T: DeserializeOwned>(root: &str, text: &str) -> Result<T, PluginError> {
    serde_json::from_str(text).map_err(|error| {
        PluginError::invalid(
            portfolio_api::json_path::field_of(root, text, &error),
            error.to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectMeta;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Spec {
        ports: Vec<Port>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Port {
        port: u16,
    }

    fn input(spec: &str) -> ReconcileInput {
        ReconcileInput {
            meta: ObjectMeta {
                name: "a".into(),
                namespace: "b".into(),
                uid: String::new(),
                generation: 0,
                labels: vec![],
                annotations: vec![],
            },
            spec: spec.into(),
            settings: String::new(),
            observed: vec![],
        }
    }

    #[test]
    fn errors_name_the_field() {
        let error = spec::<Spec>(&input(r#"{"ports":[{"port":1},{"port":"x"}]}"#)).unwrap_err();
        match error {
            PluginError::InvalidSpec(invalid) => assert_eq!(invalid.field, "spec.ports[1].port"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn empty_settings_are_an_empty_object() {
        #[derive(Deserialize)]
        struct Settings {
            #[serde(default)]
            registries: Vec<String>,
        }
        let parsed: Settings = settings(&input("{}")).unwrap();
        assert!(parsed.registries.is_empty());
    }

    #[test]
    fn not_json_is_the_users_fault() {
        assert!(matches!(
            spec::<Spec>(&input("{")),
            Err(PluginError::InvalidSpec(_))
        ));
    }
}
