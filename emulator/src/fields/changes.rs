//! Which fields an object sets, or a write changes.

use serde_json::Value;

use super::set::{FieldSet, PathElement};
use super::shape::{Shape, is_leaf, item_key, value_key};
use crate::schema::ListType;

/// Collects the paths of `new` that are absent from or different in `old`
/// (with `old = None`, every path of `new`).
pub fn changed_fields(old: Option<&Value>, new: &Value, shape: Shape) -> FieldSet {
    let mut out = FieldSet::default();
    let mut names = Vec::new();
    walk_changed(old, new, shape, &mut names, &mut out);
    out.member = false;
    out.prune_empty();
    out
}

fn walk_changed<'a>(
    old: Option<&Value>,
    new: &'a Value,
    shape: Shape,
    names: &mut Vec<&'a str>,
    out: &mut FieldSet,
) {
    match new {
        Value::Object(m) if !m.is_empty() && !shape.map_atomic(names) => {
            let old_map = old.and_then(Value::as_object);
            if old.is_some() && old_map.is_none() {
                out.member = true;
            }
            for (k, v) in m {
                let child = out.child(PathElement::Field(k.clone()));
                names.push(k.as_str());
                walk_changed(old_map.and_then(|o| o.get(k)), v, shape, names, child);
                names.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match shape.list_type(names) {
            ListType::Atomic => {
                if old != Some(new) {
                    out.member = true;
                }
            }
            ListType::Set => {
                let old_items = old.and_then(Value::as_array);
                for it in items {
                    if !old_items.is_some_and(|o| o.contains(it)) {
                        out.child(PathElement::Value(value_key(it))).member = true;
                    }
                }
            }
            ListType::Map(keys) => {
                let old_items = old.and_then(Value::as_array);
                for it in items {
                    let key = item_key(it, &keys);
                    let old_item =
                        old_items.and_then(|o| o.iter().find(|x| item_key(x, &keys) == key));
                    let child = out.child(PathElement::Key(key));
                    if old_item.is_none() {
                        child.member = true;
                    }
                    if it.is_object() && !is_leaf(it) {
                        walk_changed(old_item, it, shape, names, child);
                    }
                    if old_item.is_none() {
                        child.member = true;
                    }
                }
            }
        },
        _ => {
            if old != Some(new) {
                out.member = true;
            }
        }
    }
}

/// Every member path of an object (what an applied configuration sets).
pub fn fields_of(v: &Value, shape: Shape) -> FieldSet {
    changed_fields(None, v, shape)
}
