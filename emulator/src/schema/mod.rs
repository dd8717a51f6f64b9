//! Structural OpenAPI v3 schemas of CRDs (and of built-in kinds): one parsed node per
//! schema node. Validation, pruning, defaulting and list types are in the submodules.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Value, json};

use crate::error::Cause;

mod defaults;
mod lists;
mod prune;
mod validate;

pub use lists::{ListType, builtin_list_type};
pub use validate::type_name;

/// One node of a structural schema.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// `type`: object, array, string, integer, number, boolean.
    pub type_: Option<String>,
    /// `properties`.
    pub properties: BTreeMap<String, Schema>,
    /// `items`.
    pub items: Option<Box<Schema>>,
    /// `additionalProperties` as a schema (maps).
    pub additional: Option<Box<Schema>>,
    /// `additionalProperties: true` without a schema.
    pub additional_any: bool,
    /// `required`.
    pub required: Vec<String>,
    /// `enum`.
    pub enum_: Vec<Value>,
    /// `minimum` / `exclusiveMinimum`.
    pub minimum: Option<f64>,
    /// Whether `minimum` is exclusive.
    pub exclusive_minimum: bool,
    /// `maximum` / `exclusiveMaximum`.
    pub maximum: Option<f64>,
    /// Whether `maximum` is exclusive.
    pub exclusive_maximum: bool,
    /// `multipleOf`.
    pub multiple_of: Option<f64>,
    /// `minLength`.
    pub min_length: Option<u64>,
    /// `maxLength`.
    pub max_length: Option<u64>,
    /// `pattern`, compiled.
    pub pattern: Option<(String, Regex)>,
    /// `minItems`.
    pub min_items: Option<u64>,
    /// `maxItems`.
    pub max_items: Option<u64>,
    /// `uniqueItems`.
    pub unique_items: bool,
    /// `minProperties`.
    pub min_properties: Option<u64>,
    /// `maxProperties`.
    pub max_properties: Option<u64>,
    /// `nullable`.
    pub nullable: bool,
    /// `x-kubernetes-int-or-string`.
    pub int_or_string: bool,
    /// `x-kubernetes-preserve-unknown-fields`.
    pub preserve_unknown: bool,
    /// A Kubernetes quantity (built-ins): a number or a quantity string.
    pub quantity: bool,
    /// `x-kubernetes-embedded-resource`.
    pub embedded_resource: bool,
    /// `default`.
    pub default: Option<Value>,
    /// Whether this node or one below it has a `default` (set by [`Schema::parse`]):
    /// defaulting skips the subtrees that have none, which is every built-in kind.
    pub defaults_within: bool,
    /// `x-kubernetes-list-type`.
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`.
    pub map_type: Option<String>,
    /// `format`.
    pub format: Option<String>,
    /// `allOf`, `anyOf`, `oneOf` (value validations only, as structural schemas require).
    pub all_of: Vec<Schema>,
    /// `anyOf`.
    pub any_of: Vec<Schema>,
    /// `oneOf`.
    pub one_of: Vec<Schema>,
    /// `not`.
    pub not: Option<Box<Schema>>,
    /// The schema as given, for OpenAPI publishing.
    pub raw: Value,
    /// `x-kubernetes-validations`, compiled (CRDs only: see `crate::cel`).
    pub(crate) rules: Vec<std::sync::Arc<crate::cel::Rule>>,
}

impl Schema {
    /// Parses a schema node; errors name the offending path.
    pub fn parse(v: &Value, path: &str) -> Result<Schema, Cause> {
        let Value::Object(m) = v else {
            return Err(Cause::invalid(path, v, "must be an object"));
        };
        let mut s = Schema {
            raw: v.clone(),
            ..Default::default()
        };
        let num = |k: &str| m.get(k).and_then(Value::as_f64);
        let uint = |k: &str| m.get(k).and_then(Value::as_u64);
        let flag = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
        s.type_ = m.get("type").and_then(Value::as_str).map(str::to_string);
        if let Some(t) = &s.type_
            && !matches!(
                t.as_str(),
                "object" | "array" | "string" | "integer" | "number" | "boolean"
            )
        {
            return Err(Cause::not_supported(
                format!("{path}.type"),
                &json!(t),
                &[
                    json!("array"),
                    json!("boolean"),
                    json!("integer"),
                    json!("number"),
                    json!("object"),
                    json!("string"),
                ],
            ));
        }
        if let Some(Value::Object(props)) = m.get("properties") {
            for (k, pv) in props {
                s.properties.insert(
                    k.clone(),
                    Schema::parse(pv, &format!("{path}.properties[{k}]"))?,
                );
            }
        }
        if let Some(items) = m.get("items") {
            s.items = Some(Box::new(Schema::parse(items, &format!("{path}.items"))?));
        }
        match m.get("additionalProperties") {
            Some(Value::Bool(b)) => s.additional_any = *b,
            Some(ap @ Value::Object(_)) => {
                s.additional = Some(Box::new(Schema::parse(
                    ap,
                    &format!("{path}.additionalProperties"),
                )?))
            }
            _ => {}
        }
        if !s.properties.is_empty() && (s.additional.is_some() || s.additional_any) {
            return Err(Cause::forbidden(
                format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if let Some(Value::Array(req)) = m.get("required") {
            s.required = req
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
        }
        if let Some(Value::Array(e)) = m.get("enum") {
            s.enum_ = e.clone();
        }
        s.minimum = num("minimum");
        s.maximum = num("maximum");
        s.exclusive_minimum = flag("exclusiveMinimum");
        s.exclusive_maximum = flag("exclusiveMaximum");
        s.multiple_of = num("multipleOf");
        s.min_length = uint("minLength");
        s.max_length = uint("maxLength");
        s.min_items = uint("minItems");
        s.max_items = uint("maxItems");
        s.unique_items = flag("uniqueItems");
        s.min_properties = uint("minProperties");
        s.max_properties = uint("maxProperties");
        s.nullable = flag("nullable");
        s.int_or_string = flag("x-kubernetes-int-or-string");
        s.preserve_unknown = flag("x-kubernetes-preserve-unknown-fields");
        s.embedded_resource = flag("x-kubernetes-embedded-resource");
        s.quantity = flag("x-emulator-quantity");
        s.default = m.get("default").cloned();
        s.format = m.get("format").and_then(Value::as_str).map(str::to_string);
        s.list_type = m
            .get("x-kubernetes-list-type")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(Value::Array(keys)) = m.get("x-kubernetes-list-map-keys") {
            s.list_map_keys = keys
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
        }
        if s.list_type.as_deref() == Some("map") && s.list_map_keys.is_empty() {
            return Err(Cause::required(
                format!("{path}.x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        s.map_type = m
            .get("x-kubernetes-map-type")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(p) = m.get("pattern").and_then(Value::as_str) {
            let re = Regex::new(p).map_err(|e| {
                Cause::invalid(
                    format!("{path}.pattern"),
                    &json!(p),
                    &format!("must be a valid regular expression, but isn't: {e}"),
                )
            })?;
            s.pattern = Some((p.to_string(), re));
        }
        for (key, dst) in [
            ("allOf", &mut s.all_of),
            ("anyOf", &mut s.any_of),
            ("oneOf", &mut s.one_of),
        ] {
            if let Some(Value::Array(list)) = m.get(key) {
                for (i, sub) in list.iter().enumerate() {
                    dst.push(Schema::parse(sub, &format!("{path}.{key}[{i}]"))?);
                }
            }
        }
        if let Some(n) = m.get("not") {
            s.not = Some(Box::new(Schema::parse(n, &format!("{path}.not"))?));
        }
        s.defaults_within = s.default.is_some()
            || s.properties.values().any(|p| p.defaults_within)
            || s.items.as_ref().is_some_and(|i| i.defaults_within)
            || s.additional.as_ref().is_some_and(|a| a.defaults_within);
        Ok(s)
    }

    /// The schema of a child field, if the schema knows it.
    pub fn field(&self, name: &str) -> Option<&Schema> {
        self.properties.get(name).or(self.additional.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CRD-like schema the tests of every submodule use.
    pub(super) fn schema() -> Schema {
        Schema::parse(
            &json!({
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["image"],
                        "properties": {
                            "image": {"type": "string", "minLength": 1, "pattern": "^[a-z:0-9./-]+$"},
                            "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                            "mode": {"type": "string", "enum": ["a", "b"]},
                            "port": {"x-kubernetes-int-or-string": true},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                            "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                            "note": {"type": "string", "nullable": true},
                        }
                    }
                }
            }),
            "spec.validation.openAPIV3Schema",
        )
        .unwrap()
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert!(Schema::parse(&json!({"type": "string", "pattern": "("}), "s").is_err());
    }
}
