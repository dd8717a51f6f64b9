//! Reading objects as controllers do: fields at JSON pointers, owner references, conditions,
//! deletion and timestamps; and Go's `omitempty` for status counts.

use serde_json::{Value, json};

use super::Key;

/// A string at a JSON pointer, or "".
pub(crate) fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// An integer at a JSON pointer.
pub(crate) fn int_at(v: &Value, ptr: &str) -> Option<i64> {
    v.pointer(ptr).and_then(Value::as_i64)
}

/// The uid of an object's controller owner reference.
pub(crate) fn controller_uid(v: &Value) -> Option<String> {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller") == Some(&json!(true)))
        .and_then(|r| r.get("uid").and_then(Value::as_str))
        .map(str::to_string)
}

/// A controller owner reference to `owner`, as controllers set it.
pub(crate) fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": str_at(owner, "/apiVersion"),
        "kind": str_at(owner, "/kind"),
        "name": str_at(owner, "/metadata/name"),
        "uid": str_at(owner, "/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The namespace and name of an object as a queue key.
pub(crate) fn key_of(v: &Value) -> Key {
    (
        str_at(v, "/metadata/namespace").to_string(),
        str_at(v, "/metadata/name").to_string(),
    )
}

/// Whether the object is being deleted.
pub(crate) fn deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp").is_some()
}

/// Parses an RFC 3339 timestamp.
fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// Seconds since an RFC 3339 timestamp (0 if it does not parse or lies ahead).
pub(crate) fn seconds_since(ts: &str) -> f64 {
    parse_time(ts)
        .map(|t| {
            let d = jiff::Timestamp::now().duration_since(t);
            d.as_secs_f64().max(0.0)
        })
        .unwrap_or(0.0)
}

/// The condition of `type_` in a conditions list.
pub(crate) fn condition<'a>(conds: &'a Value, type_: &str) -> Option<&'a Value> {
    conds
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// Whether the condition `type_` is `True`.
pub(crate) fn is_true(conds: &Value, type_: &str) -> bool {
    condition(conds, type_).is_some_and(|c| c.get("status") == Some(&json!("True")))
}

/// Removes members whose value is zero, as Go's `omitempty` does for the integer fields of
/// Kubernetes' status types.
pub(crate) fn omit_zero(v: &mut Value, keys: &[&str]) {
    if let Value::Object(m) = v {
        for k in keys {
            if m.get(*k) == Some(&json!(0)) {
                m.remove(*k);
            }
        }
    }
}
