//! Validation of values against a schema, with Kubernetes' field paths and messages.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value, json};

use super::Schema;
use crate::error::Cause;

impl Schema {
    /// Validates a value, collecting every error with its field path.
    pub fn validate(&self, v: &Value, path: &str, errs: &mut Vec<Cause>) {
        if v.is_null() {
            if !self.nullable && (self.type_.is_some() || self.int_or_string) {
                let t = self.type_.as_deref().unwrap_or("string");
                errs.push(type_invalid(
                    path,
                    &json!("null"),
                    &format!("{path} in body must be of type {t}: \"null\""),
                ));
            }
            return;
        }
        if self.quantity {
            let ok = match v {
                Value::Number(_) => true,
                Value::String(q) => quantity_re().is_match(q),
                _ => false,
            };
            if !ok {
                errs.push(type_invalid(
                    path,
                    v,
                    &format!("{path} in body must be of type quantity: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
                ));
            }
            return;
        }
        if self.int_or_string {
            if !(v.is_string() || v.is_i64() || v.is_u64()) {
                errs.push(type_invalid(
                    path,
                    &json!(type_name(v)),
                    &format!(
                        "{path} in body must be of type integer,string: \"{}\"",
                        type_name(v)
                    ),
                ));
                return;
            }
        } else if let Some(t) = &self.type_ {
            let ok = match t.as_str() {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "boolean" => v.is_boolean(),
                "integer" => v.is_i64() || v.is_u64() || is_integral_float(v),
                "number" => v.is_number(),
                _ => true,
            };
            if !ok {
                errs.push(type_invalid(
                    path,
                    &json!(type_name(v)),
                    &format!("{path} in body must be of type {t}: \"{}\"", type_name(v)),
                ));
                return;
            }
        }
        if !self.enum_.is_empty() && !self.enum_.contains(v) {
            errs.push(Cause::not_supported(path, v, &self.enum_));
        }
        match v {
            Value::Number(n) => self.validate_number(v, n.as_f64().unwrap_or(0.0), path, errs),
            Value::String(s) => self.validate_string(v, s, path, errs),
            Value::Array(items) => {
                let n = items.len() as u64;
                count_bounds(v, path, n, (self.min_items, self.max_items), "items", errs);
                if self.unique_items || self.list_type.as_deref() == Some("set") {
                    for (i, a) in items.iter().enumerate() {
                        if items[..i].contains(a) {
                            errs.push(Cause::new(
                                "FieldValueDuplicate",
                                format!("{path}[{i}]"),
                                format!("Duplicate value: {a}"),
                            ));
                        }
                    }
                }
                if self.list_type.as_deref() == Some("map") {
                    let mut seen: Vec<Vec<Value>> = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let key: Vec<Value> = self
                            .list_map_keys
                            .iter()
                            .map(|k| item.get(k).cloned().unwrap_or(Value::Null))
                            .collect();
                        if seen.contains(&key) {
                            let shown: Map<String, Value> = self
                                .list_map_keys
                                .iter()
                                .cloned()
                                .zip(key.iter().cloned())
                                .collect();
                            errs.push(Cause::new(
                                "FieldValueDuplicate",
                                format!("{path}[{i}]"),
                                format!("Duplicate value: {}", Value::Object(shown)),
                            ));
                        }
                        seen.push(key);
                    }
                }
                if let Some(s) = &self.items {
                    for (i, item) in items.iter().enumerate() {
                        s.validate(item, &format!("{path}[{i}]"), errs);
                    }
                }
            }
            Value::Object(map) => {
                for r in &self.required {
                    if !map.contains_key(r) {
                        errs.push(Cause::required(join(path, r), ""));
                    }
                }
                let n = map.len() as u64;
                let bounds = (self.min_properties, self.max_properties);
                count_bounds(v, path, n, bounds, "properties", errs);
                for (k, child) in map {
                    if let Some(s) = self.field(k) {
                        s.validate(child, &join(path, k), errs);
                    }
                }
            }
            _ => {}
        }
        for s in &self.all_of {
            s.validate(v, path, errs);
        }
        if !self.any_of.is_empty()
            && !self.any_of.iter().any(|s| {
                let mut e = Vec::new();
                s.validate(v, path, &mut e);
                e.is_empty()
            })
        {
            errs.push(Cause::invalid(
                path,
                v,
                &format!("{path} in body must validate at least one schema (anyOf)"),
            ));
        }
        if !self.one_of.is_empty() {
            let matching = self
                .one_of
                .iter()
                .filter(|s| {
                    let mut e = Vec::new();
                    s.validate(v, path, &mut e);
                    e.is_empty()
                })
                .count();
            if matching != 1 {
                errs.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body must validate one and only one schema (oneOf)"),
                ));
            }
        }
        if let Some(n) = &self.not {
            let mut e = Vec::new();
            n.validate(v, path, &mut e);
            if e.is_empty() {
                errs.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body should not validate the schema (not)"),
                ));
            }
        }
    }

    fn validate_number(&self, v: &Value, n: f64, path: &str, errs: &mut Vec<Cause>) {
        if let Some(min) = self.minimum {
            let bad = if self.exclusive_minimum {
                n <= min
            } else {
                n < min
            };
            if bad {
                let op = if self.exclusive_minimum {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                errs.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body should be {op} {}", fmt_num(min)),
                ));
            }
        }
        if let Some(max) = self.maximum {
            let bad = if self.exclusive_maximum {
                n >= max
            } else {
                n > max
            };
            if bad {
                let op = if self.exclusive_maximum {
                    "less than"
                } else {
                    "less than or equal to"
                };
                errs.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body should be {op} {}", fmt_num(max)),
                ));
            }
        }
        if let Some(m) = self.multiple_of
            && m > 0.0
            && (n / m).fract() != 0.0
        {
            errs.push(Cause::invalid(
                path,
                v,
                &format!("{path} in body should be a multiple of {}", fmt_num(m)),
            ));
        }
    }

    fn validate_string(&self, v: &Value, s: &str, path: &str, errs: &mut Vec<Cause>) {
        let len = s.chars().count() as u64;
        if let Some(min) = self.min_length
            && len < min
        {
            errs.push(Cause::invalid(
                path,
                v,
                &format!("{path} in body should be at least {min} chars long"),
            ));
        }
        if let Some(max) = self.max_length
            && len > max
        {
            errs.push(Cause::too_long(
                path,
                &format!("may not be more than {max} bytes"),
            ));
        }
        if self.format.as_deref() == Some("byte") && !crate::base64::is_valid(s) {
            errs.push(Cause::invalid(
                path,
                v,
                &format!("{path} in body must be of type byte: illegal base64 data"),
            ));
        }
        if let Some((p, re)) = &self.pattern
            && !re.is_match(s)
        {
            errs.push(Cause::invalid(
                path,
                v,
                &format!("{path} in body should match '{p}'"),
            ));
        }
    }
}

/// Kubernetes' `field.TypeInvalid`: worded as `Invalid`, with its own reason (one of the
/// errors that keep CEL rules from running).
fn type_invalid(path: &str, v: &Value, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueTypeInvalid".into(),
        ..Cause::invalid(path, v, detail)
    }
}

/// `minItems`/`maxItems` or `minProperties`/`maxProperties`: `n` within `(min, max)`.
fn count_bounds(
    v: &Value,
    path: &str,
    n: u64,
    (min, max): (Option<u64>, Option<u64>),
    noun: &str,
    errs: &mut Vec<Cause>,
) {
    if let Some(min) = min
        && n < min
    {
        errs.push(Cause::invalid(
            path,
            v,
            &format!("{path} in body should have at least {min} {noun}"),
        ));
    }
    // Kubernetes says "items" for too many properties as well.
    if let Some(max) = max
        && n > max
    {
        errs.push(Cause::new(
            "FieldValueTooMany",
            path,
            format!("Too many: {n}: must have at most {max} items"),
        ));
    }
}

fn quantity_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
            .unwrap_or_else(|_| unreachable!("the quantity pattern is a valid regular expression"))
    })
}

fn is_integral_float(v: &Value) -> bool {
    v.as_f64()
        .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// The JSON type name of a value, as Kubernetes' validator reports it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::schema;
    use super::*;

    fn errors(v: Value) -> Vec<String> {
        let mut e = Vec::new();
        schema().validate(&v, "", &mut e);
        e.into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn validates_like_kubernetes() {
        assert!(errors(json!({"spec": {"image": "nginx", "replicas": 2}})).is_empty());
        assert_eq!(
            errors(json!({"spec": {}})),
            vec!["spec.image: Required value"]
        );
        let e = errors(json!({"spec": {"image": "x", "replicas": -1}}));
        assert_eq!(
            e,
            vec![
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
            ]
        );
        assert!(
            errors(json!({"spec": {"image": "x", "mode": "c"}}))[0].contains("Unsupported value")
        );
        assert!(
            errors(json!({"spec": {"image": "x", "replicas": "3"}}))[0]
                .contains("must be of type integer")
        );
        assert!(errors(json!({"spec": {"image": "x", "port": 1.5}}))[0].contains("integer,string"));
        assert!(
            errors(json!({"spec": {"image": "x", "tags": ["a", "a"]}}))[0].contains("Duplicate")
        );
        assert!(
            errors(json!({"spec": {"image": "x", "tags": ["a", "b", "c"]}}))[0]
                .contains("Too many")
        );
        assert!(errors(json!({"spec": {"image": "UPPER"}}))[0].contains("should match"));
        assert!(errors(json!({"spec": {"image": "x", "note": null}})).is_empty());
    }
}
