//! The structural merge of an applied configuration into a live object, and the duplicate
//! keys that make a configuration unmergeable.

use serde_json::Value;

use super::shape::{Shape, item_key};
use crate::schema::ListType;

/// Merges an applied configuration into a live object, structurally (maps and list-maps by
/// key, sets by value, atomic lists replaced).
pub fn merge(live: &Value, applied: &Value, shape: Shape) -> Value {
    let mut names = Vec::new();
    merge_at(live, applied, shape, &mut names)
}

fn merge_at<'a>(live: &Value, applied: &'a Value, shape: Shape, names: &mut Vec<&'a str>) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) if !shape.map_atomic(names) => {
            let mut out = l.clone();
            for (k, av) in a {
                names.push(k.as_str());
                let merged = match l.get(k) {
                    Some(lv) => merge_at(lv, av, shape, names),
                    None => av.clone(),
                };
                names.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => match shape.list_type(names) {
            ListType::Atomic => applied.clone(),
            ListType::Set => {
                let mut out = l.clone();
                for it in a {
                    if !out.contains(it) {
                        out.push(it.clone());
                    }
                }
                Value::Array(out)
            }
            ListType::Map(keys) => {
                let mut out = l.clone();
                for it in a {
                    let key = item_key(it, &keys);
                    match out.iter_mut().find(|x| item_key(x, &keys) == key) {
                        Some(existing) => *existing = merge_at(existing, it, shape, names),
                        None => out.push(it.clone()),
                    }
                }
                Value::Array(out)
            }
        },
        _ => applied.clone(),
    }
}

/// The first list-map key or set value that occurs twice in `v`, in structured-merge-diff's
/// words (`.spec.containers: duplicate entries for key [name="a"]`); server-side apply
/// refuses such configurations.
pub fn find_duplicates(v: &Value, shape: Shape) -> Option<String> {
    let mut names = Vec::new();
    dup_at(v, shape, &mut names, String::new())
}

fn dup_at<'a>(
    v: &'a Value,
    shape: Shape,
    names: &mut Vec<&'a str>,
    path: String,
) -> Option<String> {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                names.push(k.as_str());
                let found = dup_at(child, shape, names, format!("{path}.{k}"));
                names.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        Value::Array(items) => {
            match shape.list_type(names) {
                ListType::Map(keys) => {
                    let mut seen = Vec::new();
                    for it in items {
                        let k = item_key(it, &keys);
                        if seen.contains(&k) {
                            let shown: Vec<String> = keys
                                .iter()
                                .filter_map(|key| it.get(key).map(|v| format!("{key}={v}")))
                                .collect();
                            return Some(format!(
                                "{path}: duplicate entries for key [{}]",
                                shown.join(",")
                            ));
                        }
                        seen.push(k);
                    }
                }
                ListType::Set => {
                    for (i, it) in items.iter().enumerate() {
                        if items[..i].contains(it) {
                            return Some(format!("{path}: duplicate entries for key [={it}]"));
                        }
                    }
                }
                ListType::Atomic => return None,
            }
            for it in items {
                if let Some(found) = dup_at(it, shape, names, format!("{path}[]")) {
                    return Some(found);
                }
            }
            None
        }
        _ => None,
    }
}
