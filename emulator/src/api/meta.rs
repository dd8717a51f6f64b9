//! Reading and writing an object's `metadata`, whatever shape the client sent.

use serde_json::{Map, Value};

/// The object's `metadata`, or null.
pub(crate) fn meta(v: &Value) -> &Value {
    v.get("metadata").unwrap_or(&Value::Null)
}

/// A string field of the object's `metadata`.
pub(crate) fn meta_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    meta(v).get(key).and_then(Value::as_str)
}

/// The object's `metadata` for writing, made an object (and the object one) if it was not.
pub(crate) fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let Value::Object(m) = v else {
        unreachable!("just made an object")
    };
    let entry = m
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(meta) => meta,
        _ => unreachable!("just made an object"),
    }
}

/// The object's `metadata.finalizers`.
pub(crate) fn finalizers(v: &Value) -> Vec<String> {
    meta(v)
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
