//! Patch types: JSON merge (RFC 7386), JSON patch (RFC 6902) and strategic merge for built-ins.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::fields::Shape;
use crate::schema::ListType;

/// The patch formats the API accepts, by content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

/// Every patch content type, in Kubernetes' order (for 415 messages).
pub const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
];

impl PatchType {
    /// The patch type of a content type, ignoring parameters.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// Applies an RFC 7386 merge patch.
pub fn merge_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal non-object merge patch into the object",
        ));
    }
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

/// Applies an RFC 6902 JSON patch (a failed `test` is 422, like Kubernetes).
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    let mut out = doc.clone();
    for op in &ops.0 {
        // Kubernetes' JSON patch library treats a missing member as null in `test`
        // (kube-runtime's finalizer helper relies on it); RFC 6902 would fail the test.
        if let json_patch::PatchOperation::Test(t) = op
            && t.value.is_null()
            && missing_member(&out, t.path.as_str())
        {
            continue;
        }
        json_patch::patch(&mut out, std::slice::from_ref(op)).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        })?;
    }
    Ok(out)
}

/// Whether `path` names an absent member of an existing object.
fn missing_member(doc: &Value, path: &str) -> bool {
    let Some((parent, key)) = path.rsplit_once('/') else {
        return false;
    };
    let key = key.replace("~1", "/").replace("~0", "~");
    match doc.pointer(parent) {
        Some(Value::Object(m)) => !m.contains_key(&key),
        _ => false,
    }
}

/// Applies a strategic merge patch with the merge keys of built-in types.
pub fn strategic_merge(doc: &Value, patch: &Value, shape: Shape) -> Result<Value, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal non-object strategic merge patch",
        ));
    }
    let mut names = Vec::new();
    smp_object(doc, patch, shape, &mut names).map(|v| v.unwrap_or(Value::Object(Map::new())))
}

fn smp_object<'a>(
    doc: &Value,
    patch: &'a Value,
    shape: Shape,
    names: &mut Vec<&'a str>,
) -> Result<Option<Value>, ApiError> {
    let Value::Object(p) = patch else {
        return Ok(Some(patch.clone()));
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut out = p.clone();
            out.remove("$patch");
            return Ok(Some(Value::Object(out)));
        }
        Some("delete") => return Ok(None),
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Unknown patch type: {other} in map: {patch}"
            )));
        }
    }
    let mut out = match doc {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if let Some(Value::Array(retain)) = p.get("$retainKeys") {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()) || p.contains_key(k));
    }
    for (k, pv) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(del)) = (out.get_mut(field), pv) {
                items.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            return Err(ApiError::bad_request(format!(
                "unknown patch directive {k}"
            )));
        }
        names.push(k.as_str());
        match pv {
            Value::Null => {
                out.remove(k);
            }
            Value::Object(_) if !shape.map_atomic(names) => {
                let base = out.get(k).cloned().unwrap_or(Value::Null);
                match smp_object(&base, pv, shape, names)? {
                    Some(v) => {
                        out.insert(k.clone(), strip_directives(v));
                    }
                    None => {
                        out.remove(k);
                    }
                }
            }
            Value::Array(items) => {
                let base = out
                    .get(k)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let merged = smp_list(&base, items, shape, names)?;
                out.insert(k.clone(), Value::Array(merged));
            }
            other => {
                out.insert(k.clone(), other.clone());
            }
        }
        names.pop();
    }
    Ok(Some(Value::Object(out)))
}

fn smp_list<'a>(
    base: &[Value],
    items: &'a [Value],
    shape: Shape,
    names: &mut Vec<&'a str>,
) -> Result<Vec<Value>, ApiError> {
    match shape.list_type(names) {
        ListType::Atomic => Ok(items.iter().cloned().map(strip_directives).collect()),
        ListType::Set => {
            let mut out = base.to_vec();
            for it in items {
                if !out.contains(it) {
                    out.push(it.clone());
                }
            }
            Ok(out)
        }
        ListType::Map(keys) => {
            let key = keys.first().cloned().unwrap_or_default();
            if items
                .iter()
                .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
            {
                return Ok(items
                    .iter()
                    .filter(|i| i.get("$patch").is_none())
                    .cloned()
                    .map(strip_directives)
                    .collect());
            }
            let mut out = base.to_vec();
            for it in items {
                let Some(kv) = it.get(&key) else {
                    return Err(ApiError::bad_request(format!(
                        "map: {it} does not contain declared merge key: {key}"
                    )));
                };
                let pos = out.iter().position(|x| x.get(&key) == Some(kv));
                let delete = it.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        out.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => match smp_object(&out[i], it, shape, names)? {
                        Some(v) => out[i] = strip_directives(v),
                        None => {
                            out.remove(i);
                        }
                    },
                    (None, false) => out.push(strip_directives(it.clone())),
                }
            }
            Ok(out)
        }
    }
}

fn strip_directives(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k, strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_directives).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const B: Shape = Shape { schema: None };

    #[test]
    fn merge_patch_removes_nulls() {
        let v = merge_patch(
            &json!({"a": 1, "b": {"c": 2}}),
            &json!({"a": null, "b": {"d": 3}}),
        )
        .unwrap();
        assert_eq!(v, json!({"b": {"c": 2, "d": 3}}));
        assert!(merge_patch(&json!({}), &json!([1])).is_err());
    }

    #[test]
    fn json_patch_test_failure_is_422() {
        let e = json_patch(
            &json!({"a": 1}),
            &json!([{"op": "test", "path": "/a", "value": 2}]),
        )
        .unwrap_err();
        assert_eq!(e.code, 422);
        let ok = json_patch(
            &json!({"a": [1]}),
            &json!([{"op": "add", "path": "/a/-", "value": 2}]),
        )
        .unwrap();
        assert_eq!(ok, json!({"a": [1, 2]}));
        assert_eq!(
            json_patch(&json!({}), &json!({"op": "x"}))
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn strategic_merge_by_keys() {
        let doc = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "2"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [
                {"name": "a", "env": [{"name": "Y", "value": "2"}]},
                {"name": "b", "$patch": "delete"}]}}}});
        let out = strategic_merge(&doc, &patch, B).unwrap();
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs.as_array().map(Vec::len), Some(1));
        assert_eq!(cs[0]["image"], "1");
        assert_eq!(cs[0]["env"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn strategic_merge_finalizers_and_atomic_lists() {
        let doc = json!({"metadata": {"finalizers": ["a"]}, "spec": {"args": ["x", "y"]}});
        let out = strategic_merge(
            &doc,
            &json!({"metadata": {"finalizers": ["b"]}, "spec": {"args": ["z"]}}),
            B,
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(out["spec"]["args"], json!(["z"]));
        let out = strategic_merge(
            &out,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            B,
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }
}
