//! Structural OpenAPI v3 schemas of CRDs: validation, pruning, defaulting and list types.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Map, Value, json};

use crate::error::Cause;

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
}

/// How a list merges under patches and server-side apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// A set of scalars.
    Set,
    /// A map keyed by these fields of each item.
    Map(Vec<String>),
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
        Ok(s)
    }

    /// The schema of a child field, if the schema knows it.
    pub fn field(&self, name: &str) -> Option<&Schema> {
        self.properties.get(name).or(self.additional.as_deref())
    }

    /// Drops fields the schema does not know (Kubernetes' pruning) and non-nullable nulls.
    /// `root` keeps apiVersion, kind and metadata.
    pub fn prune(&self, v: &mut Value, root: bool) {
        match v {
            Value::Object(map) => {
                if self.preserve_unknown && self.properties.is_empty() && self.additional.is_none()
                {
                    return;
                }
                let keep_unknown = self.preserve_unknown || self.additional_any;
                map.retain(|k, child| {
                    if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        return true;
                    }
                    match self.field(k) {
                        Some(s) => !(child.is_null() && !s.nullable && s.default.is_none()),
                        None => keep_unknown,
                    }
                });
                for (k, child) in map.iter_mut() {
                    if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    if let Some(s) = self.field(k) {
                        s.prune(child, false);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(s) = &self.items {
                    for item in items {
                        s.prune(item, false);
                    }
                }
            }
            _ => {}
        }
    }

    /// Fills in `default`s of absent (or null, non-nullable) fields, recursively.
    pub fn apply_defaults(&self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, s) in &self.properties {
                    let absent = match map.get(k) {
                        None => true,
                        Some(Value::Null) => !s.nullable,
                        Some(_) => false,
                    };
                    if absent && let Some(d) = &s.default {
                        let mut d = d.clone();
                        s.apply_defaults(&mut d);
                        map.insert(k.clone(), d);
                    }
                }
                for (k, child) in map.iter_mut() {
                    if let Some(s) = self.field(k) {
                        s.apply_defaults(child);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(s) = &self.items {
                    for item in items {
                        s.apply_defaults(item);
                    }
                }
            }
            _ => {}
        }
    }

    /// Validates a value, collecting every error with its field path.
    pub fn validate(&self, v: &Value, path: &str, errs: &mut Vec<Cause>) {
        if v.is_null() {
            if !self.nullable && (self.type_.is_some() || self.int_or_string) {
                let t = self.type_.as_deref().unwrap_or("string");
                errs.push(Cause::invalid(
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
                errs.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body must be of type quantity: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
                ));
            }
            return;
        }
        if self.int_or_string {
            if !(v.is_string() || v.is_i64() || v.is_u64()) {
                errs.push(Cause::invalid(
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
                errs.push(Cause::invalid(
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
                if let Some(min) = self.min_items
                    && n < min
                {
                    errs.push(Cause::invalid(
                        path,
                        v,
                        &format!("{path} in body should have at least {min} items"),
                    ));
                }
                if let Some(max) = self.max_items
                    && n > max
                {
                    errs.push(Cause::new(
                        "FieldValueTooMany",
                        path,
                        format!("Too many: {n}: must have at most {max} items"),
                    ));
                }
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
                if let Some(min) = self.min_properties
                    && n < min
                {
                    errs.push(Cause::invalid(
                        path,
                        v,
                        &format!("{path} in body should have at least {min} properties"),
                    ));
                }
                if let Some(max) = self.max_properties
                    && n > max
                {
                    errs.push(Cause::new(
                        "FieldValueTooMany",
                        path,
                        format!("Too many: {n}: must have at most {max} items"),
                    ));
                }
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

    /// The list type of the array at `path` (field names only, list items skipped).
    pub fn list_type_at(&self, path: &[&str]) -> ListType {
        let mut cur = self;
        for p in path {
            let next = cur
                .field(p)
                .or_else(|| cur.items.as_deref().and_then(|i| i.field(p)));
            match next {
                Some(n) => cur = n,
                None => return ListType::Atomic,
            }
        }
        match cur.list_type.as_deref() {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(cur.list_map_keys.clone()),
            _ => ListType::Atomic,
        }
    }

    /// Whether the object at `path` is a struct: named properties, no additional ones
    /// (structured-merge-diff's "named fields", which server-side apply prunes whole).
    pub fn struct_at(&self, path: &[&str]) -> bool {
        let mut cur = self;
        for p in path {
            let next = cur
                .field(p)
                .or_else(|| cur.items.as_deref().and_then(|i| i.field(p)));
            match next {
                Some(n) => cur = n,
                None => return false,
            }
        }
        !cur.properties.is_empty()
            && cur.additional.is_none()
            && !cur.additional_any
            && !cur.preserve_unknown
    }

    /// Whether the object at `path` is replaced as a whole (`x-kubernetes-map-type: atomic`).
    pub fn map_atomic_at(&self, path: &[&str]) -> bool {
        let mut cur = self;
        for p in path {
            let next = cur
                .field(p)
                .or_else(|| cur.items.as_deref().and_then(|i| i.field(p)));
            match next {
                Some(n) => cur = n,
                None => return false,
            }
        }
        cur.map_type.as_deref() == Some("atomic")
    }
}

fn quantity_re() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
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

/// List types of built-in Kubernetes types: the merge keys of their Go structs.
pub fn builtin_list_type(path: &[&str]) -> ListType {
    let Some(last) = path.last() else {
        return ListType::Atomic;
    };
    let keys = |k: &[&str]| ListType::Map(k.iter().map(|s| s.to_string()).collect());
    let in_container = path
        .iter()
        .any(|p| matches!(*p, "containers" | "initContainers" | "ephemeralContainers"));
    match *last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "resizePolicy" => keys(&["name"]),
        "volumeMounts" => keys(&["mountPath"]),
        "volumeDevices" => keys(&["devicePath"]),
        "ports" if in_container => keys(&["containerPort", "protocol"]),
        "ports" if path.first() == Some(&"spec") => keys(&["port", "protocol"]),
        "conditions" => keys(&["type"]),
        "ownerReferences" => keys(&["uid"]),
        "hostAliases" => keys(&["ip"]),
        "topologySpreadConstraints" => keys(&["topologyKey", "whenUnsatisfiable"]),
        "finalizers" if path.len() == 2 && path[0] == "metadata" => ListType::Set,
        _ => ListType::Atomic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
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

    #[test]
    fn prunes_and_defaults() {
        let s = schema();
        let mut v = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"image": "x", "unknown": 1, "extra": {"free": {"form": true}}}, "junk": 1});
        s.prune(&mut v, true);
        s.apply_defaults(&mut v);
        assert_eq!(
            v,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
                "spec": {"image": "x", "replicas": 1, "extra": {"free": {"form": true}}}})
        );
    }

    #[test]
    fn list_types_come_from_the_schema_and_builtins() {
        assert_eq!(schema().list_type_at(&["spec", "tags"]), ListType::Set);
        assert_eq!(
            builtin_list_type(&["spec", "template", "spec", "containers"]),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(
            builtin_list_type(&["spec", "template", "spec", "containers", "ports"]),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert!(Schema::parse(&json!({"type": "string", "pattern": "("}), "s").is_err());
    }
}
