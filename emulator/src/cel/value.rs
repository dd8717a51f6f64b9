//! JSON values as CEL sees them under a structural schema: integers as `int`, `number`
//! fields as `double`, property names escaped as Kubernetes escapes them, and the root's
//! metadata reduced to `name` and `generateName`.

use std::collections::HashMap;
use std::sync::Arc;

use cel::Value as Cel;
use cel::objects::{Key, Map};
use serde_json::Value;

use crate::schema::Schema;

/// CEL's reserved words: a property with such a name is `__{name}__` in a rule.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// A property name as a rule spells it (Kubernetes' `cel.Escape`), or `None` when no CEL
/// identifier can name it (then the property is invisible to rules).
pub(super) fn escape(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
    {
        return None;
    }
    Some(
        name.replace("__", "__underscores__")
            .replace('.', "__dot__")
            .replace('-', "__dash__")
            .replace('/', "__slash__"),
    )
}

/// `v` as a CEL value, typed by `schema` where it knows the node.
pub(super) fn to_cel(v: &Value, schema: Option<&Schema>) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => {
            let number = schema.is_some_and(|s| s.type_.as_deref() == Some("number"));
            match n.as_i64() {
                Some(i) if !number => Cel::Int(i),
                _ => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
            }
        }
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.items.as_deref());
            Cel::List(Arc::new(
                items.iter().map(|i| to_cel(i, item_schema)).collect(),
            ))
        }
        Value::Object(m) => {
            // A map (additionalProperties) keeps its keys; an object's properties are
            // fields, escaped.
            let is_map = schema.is_some_and(|s| s.properties.is_empty() && s.additional.is_some());
            let mut out = HashMap::with_capacity(m.len());
            for (k, child) in m {
                let child_schema = schema.and_then(|s| s.field(k));
                let key = if is_map {
                    k.clone()
                } else {
                    match escape(k) {
                        Some(e) => e,
                        None => continue,
                    }
                };
                out.insert(Key::String(Arc::new(key)), to_cel(child, child_schema));
            }
            Cel::Map(Map { map: Arc::new(out) })
        }
    }
}

/// The root object as rules see it: apiVersion, kind, metadata.name and
/// metadata.generateName, and what the schema declares.
pub(super) fn root_to_cel(v: &Value, schema: &Schema) -> Cel {
    let mut reduced = v.clone();
    if let Some(Value::Object(meta)) = reduced.get_mut("metadata") {
        meta.retain(|k, _| k == "name" || k == "generateName");
    }
    to_cel(&reduced, Some(schema))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn escapes_as_kubernetes_does() {
        assert_eq!(escape("name").as_deref(), Some("name"));
        assert_eq!(escape("if").as_deref(), Some("__if__"));
        assert_eq!(escape("foo-bar").as_deref(), Some("foo__dash__bar"));
        assert_eq!(escape("a.b/c").as_deref(), Some("a__dot__b__slash__c"));
        assert_eq!(escape("x__y").as_deref(), Some("x__underscores__y"));
        assert_eq!(escape("1abc"), None);
        assert_eq!(escape("a b"), None);
    }

    #[test]
    fn numbers_follow_the_schema() {
        let s = Schema::parse(
            &json!({"type": "object", "properties": {
                "i": {"type": "integer"}, "n": {"type": "number"},
                "m": {"type": "object", "additionalProperties": {"type": "string"}}}}),
            "",
        )
        .unwrap();
        let v = to_cel(
            &json!({"i": 3, "n": 3, "m": {"a-b": "x"}, "x-y": true}),
            Some(&s),
        );
        let Cel::Map(m) = v else { panic!() };
        let get = |k: &str| m.map.get(&Key::String(Arc::new(k.into()))).cloned();
        assert_eq!(get("i"), Some(Cel::Int(3)));
        assert_eq!(get("n"), Some(Cel::Float(3.0)));
        assert_eq!(get("x__dash__y"), Some(Cel::Bool(true)));
        let Some(Cel::Map(inner)) = get("m") else {
            panic!()
        };
        assert!(inner.map.contains_key(&Key::String(Arc::new("a-b".into()))));
    }
}
