//! The checks of an object on every write: its schema (pruning unknown fields as
//! `fieldValidation` says, defaults, validation with ratcheting), its name and metadata.

use serde_json::Value;

use super::FieldValidation;
use super::meta::{finalizers, meta};
use crate::builtin_schema::schema_of;
use crate::error::{ApiError, Cause};
use crate::registry::ResourceType;
use crate::schema::Schema;
use crate::validation::{NameRule, name_rule, validate_meta, validate_name};

/// Prunes what the schema does not declare (refused or warned as `validation` says), applies
/// the schema's defaults and validates; answers the validation errors (a 422 to be), or the
/// error Kubernetes already gives when decoding the object: a 400 for a request body, a 422
/// for the result of a patch (endpoints/handlers/patch.go, `applyPatchToCurrentObject`).
pub(super) fn check_schema(
    rt: &ResourceType,
    old: Option<&Value>,
    new: &mut Value,
    validation: FieldValidation,
    patched: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<Cause>, ApiError> {
    let Some(schema) = schema_of(rt) else {
        return Ok(Vec::new());
    };
    let decoding_error = |object: &Value, detail: String| {
        if patched {
            patch_error(object, &detail)
        } else {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {detail}",
                rt.kind, rt.version, rt.kind
            ))
        }
    };
    let mut unknown = Vec::new();
    let prunes = schema.prunable(new, true, &mut String::new(), &mut unknown);
    if !unknown.is_empty() {
        match validation {
            FieldValidation::Strict => {
                return Err(decoding_error(
                    new,
                    format!(
                        "strict decoding error: {}",
                        unknown
                            .iter()
                            .map(|f| format!("unknown field \"{f}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            FieldValidation::Warn => {
                warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
            }
            FieldValidation::Ignore => {}
        }
    }
    // A patched built-in that does not decode is reported with the object as it came
    // (below); copied only when pruning changes it, which it almost never does, and
    // defaulting leaves built-ins alone (their schemas have no defaults: a test says so).
    let before = (prunes && patched && !rt.custom).then(|| new.clone());
    if prunes {
        schema.prune(new, true);
    }
    schema.apply_defaults(new);
    let mut errs = Vec::new();
    validate_root(&schema, new, &mut errs);
    // For built-ins a type mismatch is a decoding error in Kubernetes (400), not a
    // validation error (422).
    if !rt.custom
        && let Some(c) = errs.iter().find(|c| c.message.contains("must be of type"))
    {
        return Err(decoding_error(
            before.as_ref().unwrap_or(new),
            format!("{}: {}", c.field, c.message),
        ));
    }
    // Validation ratcheting (Kubernetes 1.30+, GA in 1.33): an update may keep a value that
    // fails the schema as long as it leaves that value unchanged.
    if rt.custom
        && let Some(old) = old
    {
        errs.retain(|c| !unchanged_at(old, new, &c.field, &c.reason));
    }
    if rt.custom {
        crate::cel::validate(&schema, new, old, &mut errs, warnings);
    }
    Ok(errs)
}

/// A patched object that does not decode: `"" is invalid: patch: Invalid value: "<the
/// patched object>": <why>` (422, no kind or name).
fn patch_error(patched: &Value, detail: &str) -> ApiError {
    let mut e = ApiError::invalid(
        "",
        "",
        "",
        vec![Cause::invalid(
            "patch",
            &Value::String(patched.to_string()),
            detail,
        )],
    );
    e.details.kind = None;
    e
}

/// The name rule of the resource and Kubernetes' metadata validation (labels, annotations,
/// finalizers, owner references).
pub(super) fn check_name_and_meta(
    rt: &ResourceType,
    name: &str,
    new: &Value,
    errs: &mut Vec<Cause>,
) {
    let rule = if rt.custom {
        NameRule::Subdomain
    } else {
        name_rule(&rt.group, &rt.resource)
    };
    if let Some(c) = validate_name(name, rule, "metadata.name") {
        errs.push(c);
    }
    validate_meta(meta(new), errs);
}

/// No finalizer may be added to an object being deleted.
pub(super) fn check_finalizers(old: Option<&Value>, new: &Value, errs: &mut Vec<Cause>) {
    if let Some(old) = old
        && meta(old).get("deletionTimestamp").is_some()
    {
        let before = finalizers(old);
        if finalizers(new).iter().any(|f| !before.contains(f)) {
            errs.push(Cause::forbidden(
                "metadata.finalizers",
                "no new finalizers can be added if the object is being deleted",
            ));
        }
    }
}

/// Validates an object against its schema, except the metadata, apiVersion and kind that
/// Kubernetes validates separately.
fn validate_root(schema: &Schema, obj: &Value, errs: &mut Vec<Cause>) {
    const SKIP: &[&str] = &["metadata", "apiVersion", "kind"];
    for r in &schema.required {
        if !SKIP.contains(&r.as_str()) && obj.get(r).is_none() {
            errs.push(Cause::required(r.clone(), ""));
        }
    }
    if let Value::Object(m) = obj {
        for (k, v) in m {
            if SKIP.contains(&k.as_str()) {
                continue;
            }
            if let Some(s) = schema.field(k) {
                s.validate(v, k, errs);
            }
        }
    }
}

/// Whether the value a validation error points at is the same in `old` and `new`
/// (for a missing required field: whether its parent is the same).
fn unchanged_at(old: &Value, new: &Value, field: &str, reason: &str) -> bool {
    let mut path = field_path(field);
    if reason == "FieldValueRequired" {
        path.pop();
    }
    let resolve = |mut v: &Value| -> Option<Value> {
        for step in &path {
            v = match step {
                Step::Key(k) => v.get(k)?,
                Step::Index(i) => v.get(*i)?,
            };
        }
        Some(v.clone())
    };
    let (before, after) = (resolve(old), resolve(new));
    before.is_some() && before == after
}

enum Step {
    Key(String),
    Index(usize),
}

/// `spec.ports[0].name` as steps (keys containing dots are not told apart; such a
/// field simply does not ratchet).
fn field_path(field: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            steps.push(Step::Key(rest[..open].to_string()));
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                match rest[1..close].parse() {
                    Ok(i) => steps.push(Step::Index(i)),
                    Err(_) => steps.push(Step::Key(rest[1..close].to_string())),
                }
                rest = &rest[close + 1..];
                if !rest.starts_with('[') {
                    break;
                }
            }
        } else {
            steps.push(Step::Key(rest.to_string()));
        }
    }
    steps
}

/// The paths of `before` that `after` (its pruned form) lost: the unknown fields.
pub(super) fn unknown_fields(before: &Value, after: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    lost_fields(before, after, &mut path.to_owned(), &mut out);
    out
}

/// [`unknown_fields`]' walk, with the path in one buffer: a write's object has hundreds of
/// fields and almost never an unknown one, so no path is made unless it is reported.
fn lost_fields(before: &Value, after: &Value, path: &mut String, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, bv) in b {
                let mark = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match a.get(k) {
                    None if !bv.is_null() => out.push(path.clone()),
                    None => {}
                    Some(av) => lost_fields(bv, av, path, out),
                }
                path.truncate(mark);
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                let mark = path.len();
                path.push_str(&format!("[{i}]"));
                lost_fields(bv, av, path, out);
                path.truncate(mark);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_the_paths_pruning_lost() {
        let before = json!({
            "spec": {"a": 1, "gone": 2, "null": null, "list": [{"x": 1, "y": 2}, {"x": 3}]},
            "top": true,
        });
        let after = json!({"spec": {"a": 1, "list": [{"x": 1}, {"x": 3}]}});
        assert_eq!(
            unknown_fields(&before, &after, ""),
            ["spec.gone", "spec.list[0].y", "top"]
        );
        assert_eq!(
            unknown_fields(&json!([{"a": 1}]), &json!([{}]), "items"),
            ["items[0].a"]
        );
        assert!(unknown_fields(&before, &before, "").is_empty());
    }

    /// `prunable` tells what `prune` then does: the same unknown fields as a copy
    /// compared with the pruned object, and nothing for an object prune leaves alone.
    #[test]
    fn prunable_foretells_prune() {
        let s = Schema::parse(
            &serde_json::json!({"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "image": {"type": "string"},
                    "replicas": {"type": "integer", "default": 1},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "z": {"type": "object", "properties": {"deep": {"type": "array", "items": {"type": "string"}}}},
                }},
                "b": {"type": "array", "items": {"type": "object", "properties": {"d": {"type": "integer"}}}},
            }}),
            "",
        )
        .expect("schema");
        let objects = [
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "odd": 1},
                "spec": {"image": "x", "unknown": 1, "extra": {"free": {"form": true}}}, "junk": 1}),
            json!({"metadata": {}, "spec": {"image": "x", "replicas": null, "unknown": null}}),
            json!({"metadata": {}, "spec": {"image": "x", "replicas": 2}}),
            json!({"spec": {"z": {"deep": [1]}, "a": 1}, "b": [{"c": 1}], "status": "s"}),
            json!([1, 2]),
            json!("text"),
        ];
        for object in objects {
            let mut pruned = object.clone();
            s.prune(&mut pruned, true);
            let mut found = Vec::new();
            let any = s.prunable(&object, true, &mut String::new(), &mut found);
            assert_eq!(any, pruned != object, "{object}");
            assert_eq!(found, unknown_fields(&object, &pruned, ""), "{object}");
        }
    }
}
