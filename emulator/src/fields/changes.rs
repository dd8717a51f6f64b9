//! Which fields an object sets, or a write changes, as structured-merge-diff counts them.

use serde_json::Value;

use super::set::{FieldSet, PathElement};
use super::shape::{Shape, is_leaf, item_key, value_key};
use crate::schema::{ListType, Schema};

/// What exists in an object of a kind before anything is set: Kubernetes compares an update
/// with the stored object, and a create with the kind's Go zero value, in which structs are
/// present (empty) and some lists are present as `null`. Custom resources are unstructured:
/// their zero value is empty.
#[derive(Clone, Copy, Default)]
pub struct Zero<'a> {
    /// The built-in kind's schema; `None` for custom resources.
    pub builtin: Option<&'a Schema>,
}

impl Zero<'_> {
    /// Whether the node at `names` (field names from the root, through no list item) exists
    /// in the zero value. Every struct of a built-in kind counts as present, although Go
    /// serializes only its non-pointer ones. `metadata` is counted present because no
    /// manager ever owns it.
    fn present(&self, names: &[&str]) -> bool {
        if names == ["metadata"] {
            return true;
        }
        let Some(mut cur) = self.builtin else {
            return false;
        };
        for n in names {
            match cur.properties.get(*n) {
                Some(s) => cur = s,
                None => return false,
            }
        }
        is_struct(cur) || matches!(names, ["rules"] | [.., "spec", "containers"])
    }
}

/// A struct: named properties and nothing else.
fn is_struct(s: &Schema) -> bool {
    !s.properties.is_empty() && s.additional.is_none() && !s.additional_any && !s.preserve_unknown
}

/// The schema node at `names` (field names, list items looked through), if known.
fn node_at<'s>(schema: &'s Schema, names: &[&str]) -> Option<&'s Schema> {
    let mut cur = schema;
    for n in names {
        while cur.properties.is_empty() && cur.additional.is_none() {
            cur = cur.items.as_deref()?;
        }
        cur = cur.properties.get(*n).or(cur.additional.as_deref())?;
    }
    while let Some(items) = cur.items.as_deref() {
        cur = items;
    }
    Some(cur)
}

/// The comparison of `old` with `new` (`None`: the zero value): the paths modified or added,
/// structured-merge-diff's `Modified ∪ Added`, which an update gives to its manager. A map,
/// struct or list that did not exist before is itself added (`.` in `fieldsV1`), besides
/// its contents.
pub fn changed_fields(old: Option<&Value>, new: &Value, shape: Shape, zero: Zero) -> FieldSet {
    let mut out = FieldSet::default();
    let mut names = Vec::new();
    walk_changed(old, new, shape, zero, false, &mut names, &mut out);
    out.member = false;
    out.prune_empty();
    out
}

#[allow(clippy::too_many_arguments)]
fn walk_changed<'a>(
    old: Option<&Value>,
    new: &'a Value,
    shape: Shape,
    zero: Zero,
    in_item: bool,
    names: &mut Vec<&'a str>,
    out: &mut FieldSet,
) {
    const ABSENT_BUT_PRESENT: &Value = &Value::Null;
    let old = old.or_else(|| (!in_item && zero.present(names)).then_some(ABSENT_BUT_PRESENT));
    match new {
        Value::Object(m) if !m.is_empty() && !shape.map_atomic(names) => {
            let old_map = old.and_then(Value::as_object);
            // Added, or turned from a scalar into a map.
            if old.is_none_or(|o| !o.is_null() && !o.is_object()) {
                out.member = true;
            }
            for (k, v) in m {
                let child = out.child(PathElement::Field(k.clone()));
                names.push(k.as_str());
                walk_changed(
                    old_map.and_then(|o| o.get(k)),
                    v,
                    shape,
                    zero,
                    in_item,
                    names,
                    child,
                );
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
                if old.is_none() {
                    out.member = true;
                }
                let old_items = old.and_then(Value::as_array);
                for it in items {
                    if !old_items.is_some_and(|o| o.contains(it)) {
                        out.child(PathElement::Value(value_key(it))).member = true;
                    }
                }
            }
            ListType::Map(keys) => {
                if old.is_none() {
                    out.member = true;
                }
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
                        walk_changed(old_item, it, shape, zero, true, names, child);
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

/// The fields an applied configuration sets (structured-merge-diff's `ToFieldSet`): its
/// leaves, empty maps and nulls, list items, and map entries that are not fields of a
/// struct. `schema` tells struct fields from map entries (the CRD's or the built-in
/// kind's; without one, every object counts as a struct).
pub fn fields_of(v: &Value, shape: Shape, schema: Option<&Schema>) -> FieldSet {
    let mut out = FieldSet::default();
    let mut names = Vec::new();
    walk_config(v, shape, schema, &mut names, &mut out);
    out.member = false;
    out.prune_empty();
    out
}

fn walk_config<'a>(
    v: &'a Value,
    shape: Shape,
    schema: Option<&Schema>,
    names: &mut Vec<&'a str>,
    out: &mut FieldSet,
) {
    match v {
        Value::Object(m) if !m.is_empty() && !shape.map_atomic(names) => {
            let node = schema.and_then(|s| node_at(s, names));
            for (k, c) in m {
                let child = out.child(PathElement::Field(k.clone()));
                names.push(k.as_str());
                walk_config(c, shape, schema, names, child);
                names.pop();
                if node.is_some_and(|n| !n.properties.contains_key(k)) {
                    child.member = true;
                }
            }
        }
        Value::Array(items) if !items.is_empty() => match shape.list_type(names) {
            ListType::Atomic => out.member = true,
            ListType::Set => {
                for it in items {
                    out.child(PathElement::Value(value_key(it))).member = true;
                }
            }
            ListType::Map(keys) => {
                for it in items {
                    let child = out.child(PathElement::Key(item_key(it, &keys)));
                    if it.is_object() && !is_leaf(it) {
                        walk_config(it, shape, schema, names, child);
                    }
                    child.member = true;
                }
            }
        },
        _ => out.member = true,
    }
}

/// Every node of an object, containers included: what managers may keep owning after a
/// write (they lose what the write removed).
pub fn all_fields(v: &Value, shape: Shape) -> FieldSet {
    changed_fields(None, v, shape, Zero::default())
}
