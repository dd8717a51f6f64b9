//! Helpers for what a plugin returns.

use alloc::format;
use alloc::string::String;
use serde::Serialize;

use crate::PluginError;

/// Serialise one Kubernetes object to the JSON text the host expects.
pub fn object<T: Serialize>(value: &T) -> Result<String, PluginError> {
    serde_json::to_string(value)
        .map_err(|error| PluginError::internal(format!("cannot serialise an object: {error}")))
}
