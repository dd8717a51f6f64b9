//! JSON passed through untouched (scheduling objects, plugin settings).
//!
//! Kept as validated JSON text rather than a `serde_json::Value` tree: the
//! operator and plugins only copy it, and plugins stay smaller without the
//! float parsing and formatting a tree drags in.

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A JSON value kept as text.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(pub Box<RawValue>);

impl RawJson {
    /// The JSON text, exactly as it was read.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Parse `text` as JSON.
    pub fn from_text(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(RawJson)
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// Schema of an object whose fields Kubernetes keeps as they are.
#[cfg(feature = "kube")]
pub struct AnyObject;

#[cfg(feature = "kube")]
impl schemars::JsonSchema for AnyObject {
    fn schema_name() -> alloc::borrow::Cow<'static, str> {
        "AnyObject".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_text_and_compares_by_text() {
        let a: RawJson = serde_json::from_str(r#"{"b": [1, 2.5]}"#).unwrap();
        assert_eq!(a.get(), r#"{"b": [1, 2.5]}"#);
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"b": [1, 2.5]}"#);
        assert_eq!(a, RawJson::from_text(r#"{"b": [1, 2.5]}"#.into()).unwrap());
        assert!(RawJson::from_text("{".into()).is_err());
    }
}
