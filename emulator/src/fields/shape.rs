//! The shape of an object's lists and maps at a path (list-map keys, sets, atomic lists and
//! maps), and the keys that identify list items.

use serde_json::{Map, Value};

use crate::schema::{ListType, Schema, builtin_list_type};

/// Tells list types and atomic maps at a path; schema-driven for CRDs, built-in tables otherwise.
#[derive(Clone, Copy)]
pub struct Shape<'a> {
    /// The CRD's schema, if any.
    pub schema: Option<&'a Schema>,
}

impl Shape<'_> {
    /// List type of the array at `names`.
    pub fn list_type(&self, names: &[&str]) -> ListType {
        match (names.first(), self.schema) {
            (Some(&"metadata"), _) | (_, None) => builtin_list_type(names),
            (_, Some(s)) => s.list_type_at(names),
        }
    }

    /// Whether the object at `names` is atomic.
    pub fn map_atomic(&self, names: &[&str]) -> bool {
        match (names.first(), self.schema) {
            (Some(&"metadata"), _) | (_, None) => {
                // Built-in atomic structs that matter in practice: selectors are granular,
                // but an ownerReference entry or a quantity never is a map.
                false
            }
            (_, Some(s)) => s.map_atomic_at(names),
        }
    }
}

/// Whether a value has nothing below it: a scalar, or an empty map or list.
pub(super) fn is_leaf(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => true,
    }
}

/// The key of a list-map item: its key fields as canonical JSON (a `k:` path element).
pub(super) fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_string(&Value::Object(m)).unwrap_or_default()
}

/// The key of a set item: the value as JSON (a `v:` path element).
pub(super) fn value_key(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
