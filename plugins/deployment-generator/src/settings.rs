//! The generator's settings, chosen by the platform team when registering it.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use portfolio_api::AppResources;
use serde::Deserialize;

use crate::Invalid;

/// JSON Schema of [`Settings`], returned by `describe`.
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "labels": {"type": "object", "additionalProperties": {"type": "string"},
      "description": "Labels added to every object and pod (the app's own selector labels win)."},
    "annotations": {"type": "object", "additionalProperties": {"type": "string"},
      "description": "Annotations added to every object and pod."},
    "defaultResources": {"type": "object",
      "description": "Requests and limits for apps that set no spec.resources (same shape as spec.resources)."},
    "allowedRegistries": {"type": "array", "items": {"type": "string", "minLength": 1},
      "description": "Image prefixes apps may use, e.g. ghcr.io/acme/; any image when empty."}
  }
}"#;

/// What the platform team may set.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Labels added to every object and pod.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to every object and pod.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Requests and limits of apps that set none.
    #[serde(default)]
    pub default_resources: Option<AppResources>,
    /// Image prefixes apps may use; any when empty.
    #[serde(default)]
    pub allowed_registries: Vec<String>,
}

impl Settings {
    /// Parse settings JSON (empty text means none).
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if text.trim().is_empty() {
            return Ok(Settings::default());
        }
        crate::parse_json("settings", text)
    }

    /// Refuse an image from a registry that is not allowed.
    pub fn check_image(&self, field: &str, image: &str) -> Result<(), Invalid> {
        if self.allowed_registries.is_empty()
            || self
                .allowed_registries
                .iter()
                .any(|prefix| image.starts_with(prefix.as_str()))
        {
            return Ok(());
        }
        Err(Invalid::new(
            field,
            format!(
                "image {image:?} is not from an allowed registry ({})",
                self.allowed_registries.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_json() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["type"], "object");
    }

    #[test]
    fn unknown_settings_are_named() {
        let error = Settings::parse(r#"{"allowedRegistry": []}"#).unwrap_err();
        assert!(error.message.contains("allowedRegistry"), "{error:?}");
    }

    #[test]
    fn registries_are_prefixes() {
        let settings = Settings::parse(r#"{"allowedRegistries": ["ghcr.io/acme/"]}"#).unwrap();
        settings
            .check_image("spec.image", "ghcr.io/acme/shop:1")
            .unwrap();
        let error = settings
            .check_image("spec.image", "docker.io/evil:1")
            .unwrap_err();
        assert_eq!(error.field, "spec.image");
    }
}
