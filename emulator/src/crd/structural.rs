//! Kubernetes' structural-schema rules for the schemas of CRDs.

use serde_json::{Value, json};

use crate::error::Cause;

/// Kubernetes' structural-schema rules: every specified node has a type (unless it is
/// int-or-string or preserves unknown fields), and value validations (allOf, anyOf, oneOf,
/// not) carry no structural keywords.
pub(super) fn structural(v: &Value, path: &str, in_junctor: bool, errs: &mut Vec<Cause>) {
    let Value::Object(m) = v else { return };
    let flag = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
    if in_junctor {
        for (k, rule) in [
            ("type", "must be empty to be structural"),
            ("title", "must be empty to be structural"),
            ("description", "must be empty to be structural"),
            ("additionalProperties", "must be undefined to be structural"),
            ("default", "must be undefined to be structural"),
            (
                "x-kubernetes-preserve-unknown-fields",
                "must be undefined to be structural",
            ),
        ] {
            if m.contains_key(k) {
                errs.push(Cause::forbidden(format!("{path}.{k}"), rule));
            }
        }
        if flag("nullable") {
            errs.push(Cause::forbidden(
                format!("{path}.nullable"),
                "must be false to be structural",
            ));
        }
    } else if m
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        && !flag("x-kubernetes-int-or-string")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        errs.push(Cause::required(
            format!("{path}.type"),
            "must not be empty for specified object fields",
        ));
    }
    if m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errs.push(Cause::invalid(
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(false),
            "must be true or undefined",
        ));
    }
    if let Some(Value::Object(props)) = m.get("properties") {
        for (k, p) in props {
            structural(p, &format!("{path}.properties[{k}]"), in_junctor, errs);
        }
    }
    if let Some(items) = m.get("items") {
        structural(items, &format!("{path}.items"), in_junctor, errs);
    }
    if let Some(ap @ Value::Object(_)) = m.get("additionalProperties") {
        structural(
            ap,
            &format!("{path}.additionalProperties"),
            in_junctor,
            errs,
        );
    }
    // int-or-string may spell its two types as `anyOf: [{type: integer}, {type: string}]`.
    let int_or_string_any_of = flag("x-kubernetes-int-or-string")
        && m.get("anyOf") == Some(&json!([{"type": "integer"}, {"type": "string"}]));
    for k in ["allOf", "anyOf", "oneOf"] {
        if k == "anyOf" && int_or_string_any_of {
            continue;
        }
        if let Some(Value::Array(list)) = m.get(k) {
            for (i, sub) in list.iter().enumerate() {
                structural(sub, &format!("{path}.{k}[{i}]"), true, errs);
            }
        }
    }
    if let Some(n) = m.get("not") {
        structural(n, &format!("{path}.not"), true, errs);
    }
}
