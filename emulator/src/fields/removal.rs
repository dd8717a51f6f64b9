//! Removing the fields a manager stopped applying, widened to whole structs as
//! structured-merge-diff does.

use std::collections::BTreeMap;

use serde_json::Value;

use super::set::{FieldSet, PathElement};
use super::shape::{item_key, value_key};
use crate::schema::Schema;

/// What a manager stopped applying, widened as structured-merge-diff widens it: a struct
/// (a field with named properties) in which no manager owns anything any more goes as a
/// whole, with the fields nobody owned (such as defaults), instead of leaving a partial
/// struct behind. `kept` is what the applier still applies plus what others own.
pub fn widen_to_structs(removed: &FieldSet, kept: &FieldSet, schema: Option<&Schema>) -> FieldSet {
    let mut names = Vec::new();
    widen_at(removed, Some(kept), schema, &mut names)
}

fn widen_at<'a>(
    removed: &'a FieldSet,
    kept: Option<&FieldSet>,
    schema: Option<&Schema>,
    names: &mut Vec<&'a str>,
) -> FieldSet {
    let mut out = FieldSet {
        member: removed.member,
        children: BTreeMap::new(),
    };
    for (k, c) in &removed.children {
        let kept_child = kept.and_then(|kept| kept.children.get(k));
        let widened = match k {
            PathElement::Field(name) => {
                names.push(name.as_str());
                // The object's metadata is never pruned as a whole: the fields that
                // identify it are tracked by no manager.
                let whole = !c.member
                    && names.first() != Some(&"metadata")
                    && kept_child.is_none_or(FieldSet::is_empty)
                    && schema.is_some_and(|s| s.struct_at(names));
                let w = if whole {
                    FieldSet {
                        member: true,
                        children: BTreeMap::new(),
                    }
                } else {
                    widen_at(c, kept_child, schema, names)
                };
                names.pop();
                w
            }
            _ => widen_at(c, kept_child, schema, names),
        };
        out.children.insert(k.clone(), widened);
    }
    out
}

/// Removes the member paths of `set` from an object (fields a manager stopped applying).
pub fn remove_fields(v: &mut Value, set: &FieldSet) {
    for (k, c) in &set.children {
        match (k, &mut *v) {
            (PathElement::Field(f), Value::Object(m)) => {
                if c.member {
                    m.remove(f);
                } else if let Some(child) = m.get_mut(f) {
                    remove_fields(child, c);
                }
            }
            (PathElement::Key(key), Value::Array(items)) => {
                let keys: Vec<String> = serde_json::from_str::<Value>(key)
                    .ok()
                    .and_then(|k| k.as_object().map(|m| m.keys().cloned().collect()))
                    .unwrap_or_default();
                if c.member {
                    items.retain(|it| item_key(it, &keys) != *key);
                } else if let Some(it) = items.iter_mut().find(|it| item_key(it, &keys) == *key) {
                    remove_fields(it, c);
                }
            }
            (PathElement::Value(val), Value::Array(items)) if c.member => {
                items.retain(|it| value_key(it) != *val);
            }
            (PathElement::Index(i), Value::Array(items)) => {
                if c.member && *i < items.len() {
                    items.remove(*i);
                } else if let Some(it) = items.get_mut(*i) {
                    remove_fields(it, c);
                }
            }
            _ => {}
        }
    }
}
