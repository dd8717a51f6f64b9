//! Field sets (managedFields' `fieldsV1`) and the structural merge server-side apply is built on.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::schema::{ListType, Schema, builtin_list_type};

/// Tells list types and atomic maps at a path; schema-driven for CRDs, built-in tables otherwise.
#[derive(Clone, Copy)]
pub struct Shape<'a> {
    /// The CRD's schema, if any.
    pub schema: Option<&'a Schema>,
}

impl Shape<'_> {
    /// List type of the array at `names`.
    pub fn list_type(&self, names: &[&str]) -> ListType {
        match (names.first(), self.schema) {
            (Some(&"metadata"), _) | (_, None) => builtin_list_type(names),
            (_, Some(s)) => s.list_type_at(names),
        }
    }

    /// Whether the object at `names` is atomic.
    pub fn map_atomic(&self, names: &[&str]) -> bool {
        match (names.first(), self.schema) {
            (Some(&"metadata"), _) | (_, None) => {
                // Built-in atomic structs that matter in practice: selectors are granular,
                // but an ownerReference entry or a quantity never is a map.
                false
            }
            (_, Some(s)) => s.map_atomic_at(names),
        }
    }
}

/// One step of a field path, as in `fieldsV1` keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElement {
    /// `f:<name>`: a field of a struct or map.
    Field(String),
    /// `k:<json>`: an item of a list-map, by its key fields.
    Key(String),
    /// `v:<json>`: an item of a set.
    Value(String),
    /// `i:<n>`: an item of an atomic-less list by index (rare).
    Index(usize),
}

impl PathElement {
    fn encode(&self) -> String {
        match self {
            PathElement::Field(f) => format!("f:{f}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<Self> {
        let (prefix, rest) = s.split_at_checked(2)?;
        Some(match prefix {
            "f:" => PathElement::Field(rest.to_string()),
            "k:" => PathElement::Key(canonical(rest)?),
            "v:" => PathElement::Value(canonical(rest)?),
            "i:" => PathElement::Index(rest.parse().ok()?),
            _ => return None,
        })
    }

    /// Human form used in conflict messages: `.spec.replicas`, `[name="c"]`.
    fn display(&self) -> String {
        match self {
            PathElement::Field(f) => format!(".{f}"),
            PathElement::Key(k) => {
                let v: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                let parts: Vec<String> = v
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                format!("[{}]", parts.join(","))
            }
            PathElement::Value(v) => format!("[={v}]"),
            PathElement::Index(i) => format!("[{i}]"),
        }
    }
}

fn canonical(json: &str) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    serde_json::to_string(&v).ok()
}

/// A set of field paths, as a tree; a node is a member when it (itself) is owned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSet {
    /// Whether the path leading here is itself in the set.
    pub member: bool,
    /// Children by path element.
    pub children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// Whether no path is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    fn child(&mut self, e: PathElement) -> &mut FieldSet {
        self.children.entry(e).or_default()
    }

    fn prune_empty(&mut self) {
        for c in self.children.values_mut() {
            c.prune_empty();
        }
        self.children.retain(|_, c| !c.is_empty());
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (k, c) in &other.children {
            let merged = match out.children.get(k) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(k.clone(), merged);
        }
        out
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(o) = other.children.get(k) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    out.children.insert(k.clone(), i);
                }
            }
        }
        out
    }

    /// Paths in `self` but not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let d = match other.children.get(k) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(k.clone(), d);
            }
        }
        out
    }

    /// Removes the top-level field `name` (and everything below it).
    pub fn without_field(&self, name: &str) -> FieldSet {
        let mut out = self.clone();
        out.children.remove(&PathElement::Field(name.to_string()));
        out
    }

    /// Keeps only the top-level field `name`.
    pub fn only_field(&self, name: &str) -> FieldSet {
        let mut out = FieldSet::default();
        if let Some(c) = self.children.get(&PathElement::Field(name.to_string())) {
            out.children
                .insert(PathElement::Field(name.to_string()), c.clone());
        }
        out
    }

    /// Removes a nested path given as field names (e.g. metadata.resourceVersion).
    pub fn without_path(&self, path: &[&str]) -> FieldSet {
        let mut out = self.clone();
        let mut cur = &mut out;
        for (i, p) in path.iter().enumerate() {
            let key = PathElement::Field(p.to_string());
            if i + 1 == path.len() {
                cur.children.remove(&key);
                break;
            }
            match cur.children.get_mut(&key) {
                Some(c) => cur = c,
                None => break,
            }
        }
        out.prune_empty();
        out
    }

    /// The member paths in display form, sorted (for conflict messages).
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_paths(String::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: String, out: &mut Vec<String>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (k, c) in &self.children {
            c.collect_paths(format!("{prefix}{}", k.display()), out);
        }
    }

    /// Encodes as `fieldsV1`.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            m.insert(k.encode(), c.to_fields_v1());
        }
        Value::Object(m)
    }

    /// Decodes `fieldsV1`; `None` if malformed.
    pub fn from_fields_v1(v: &Value) -> Option<FieldSet> {
        fn node(v: &Value) -> Option<FieldSet> {
            let m = v.as_object()?;
            let mut fs = FieldSet {
                member: m.is_empty(),
                children: BTreeMap::new(),
            };
            for (k, c) in m {
                if k == "." {
                    fs.member = true;
                    continue;
                }
                fs.children.insert(PathElement::decode(k)?, node(c)?);
            }
            Some(fs)
        }
        let mut root = node(v)?;
        root.member = false;
        Some(root)
    }
}

fn is_leaf(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => true,
    }
}

fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_string(&Value::Object(m)).unwrap_or_default()
}

fn value_key(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const B: Shape = Shape { schema: None };

    #[test]
    fn fields_v1_round_trip() {
        let obj = json!({"metadata": {"labels": {"a": "b"}, "finalizers": ["x"]},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let fs = fields_of(&obj, B);
        let v1 = fs.to_fields_v1();
        assert_eq!(
            v1,
            json!({"f:metadata": {"f:finalizers": {"v:\"x\"": {}}, "f:labels": {"f:a": {}}},
                "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&v1), Some(fs));
    }

    #[test]
    fn merge_and_remove() {
        let live = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}], "args": ["x"]}});
        let applied = json!({"spec": {"containers": [{"name": "b", "image": "3"}], "args": ["y"]}});
        let m = merge(&live, &applied, B);
        assert_eq!(m["spec"]["containers"][1]["image"], "3");
        assert_eq!(m["spec"]["containers"][0]["image"], "1");
        assert_eq!(m["spec"]["args"], json!(["y"]));
        let mut m2 = m.clone();
        let drop = fields_of(&json!({"spec": {"containers": [{"name": "a"}]}}), B);
        let only_item = FieldSet::from_fields_v1(
            &json!({"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {}}}}),
        )
        .unwrap();
        assert!(!drop.intersection(&only_item).is_empty());
        remove_fields(&mut m2, &only_item);
        assert_eq!(m2["spec"]["containers"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn duplicates_are_found() {
        let v = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "env": [{"name": "X"}, {"name": "X"}]}]}});
        assert_eq!(
            find_duplicates(&v, B).as_deref(),
            Some(".spec.containers[].env: duplicate entries for key [name=\"X\"]")
        );
        assert!(find_duplicates(&json!({"spec": {"args": ["a", "a"]}}), B).is_none());
        assert!(find_duplicates(&json!({"metadata": {"finalizers": ["a", "a"]}}), B).is_some());
    }

    #[test]
    fn changes_are_leaf_precise() {
        let old = json!({"a": {"b": 1, "c": 2}});
        let new = json!({"a": {"b": 1, "c": 3, "d": 4}});
        assert_eq!(
            changed_fields(Some(&old), &new, B).paths(),
            vec![".a.c", ".a.d"]
        );
    }

    /// Random objects with built-in list types; `min` items in every list and map.
    fn arb_object_min(min: usize) -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-5i64..5).prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
        ];
        let container = (
            prop::sample::select(vec!["a", "b", "c"]),
            "[x-z]{1,2}",
            prop::option::of("[a-c]"),
        )
            .prop_map(|(n, img, tag)| {
                let mut c = json!({"name": n, "image": img});
                if let Some(t) = tag {
                    c["env"] = json!([{"name": t, "value": "v"}]);
                }
                c
            });
        (
            prop::collection::vec(container, min..4),
            prop::collection::btree_set("[a-c]", min..3),
            prop::collection::btree_map("[a-c]", scalar.clone(), min..3),
            prop::collection::vec(scalar, min..3),
        )
            .prop_map(|(cs, fins, labels, args)| {
                let mut seen = std::collections::BTreeSet::new();
                let cs: Vec<Value> = cs
                    .into_iter()
                    .filter(|c| seen.insert(c["name"].to_string()))
                    .collect();
                json!({
                    "metadata": {"finalizers": fins.into_iter().collect::<Vec<_>>(), "labels": labels},
                    "spec": {"containers": cs, "args": args},
                })
            })
    }

    fn arb_object() -> impl proptest::strategy::Strategy<Value = Value> {
        arb_object_min(0)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { failure_persistence: None, ..Default::default() })]

        #[test]
        fn field_sets_round_trip_through_fields_v1(o in arb_object()) {
            let fs = fields_of(&o, B);
            proptest::prop_assert_eq!(FieldSet::from_fields_v1(&fs.to_fields_v1()), Some(fs));
        }

        #[test]
        fn merging_an_object_into_itself_changes_nothing(o in arb_object()) {
            let m = merge(&o, &o, B);
            proptest::prop_assert_eq!(&m, &o);
            proptest::prop_assert!(changed_fields(Some(&o), &m, B).is_empty());
        }

        #[test]
        fn applied_fields_survive_a_merge(live in arb_object(), applied in arb_object_min(1)) {
            let m = merge(&live, &applied, B);
            // Everything the applier set is present with the applied value (an applied empty
            // map or list claims the field without removing others' entries, so the
            // configurations here have none).
            let set = fields_of(&applied, B);
            proptest::prop_assert!(changed_fields(Some(&m), &applied, B).intersection(&set).is_empty());
        }

        #[test]
        fn set_algebra_laws(a in arb_object(), b in arb_object()) {
            let (x, y) = (fields_of(&a, B), fields_of(&b, B));
            proptest::prop_assert!(x.difference(&y).intersection(&y).is_empty());
            proptest::prop_assert_eq!(x.union(&y).intersection(&x), x.clone());
            proptest::prop_assert_eq!(x.intersection(&y), y.intersection(&x));
        }
    }
}
