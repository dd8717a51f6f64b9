//! Field sets: trees of field paths, as managedFields' `fieldsV1` encodes them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

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

    /// The child set at `e`, created empty if absent.
    pub(super) fn child(&mut self, e: PathElement) -> &mut FieldSet {
        self.children.entry(e).or_default()
    }

    /// Drops empty children, recursively.
    pub(super) fn prune_empty(&mut self) {
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

    /// `self` without the membership of nodes below which `kept` still has paths: server-side
    /// apply adds back what anyone owns after removing what a manager stopped applying, so
    /// such a node stays (with what is kept in it).
    pub fn keeping_ancestors_of(&self, kept: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && kept.children.values().all(FieldSet::is_empty),
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let d = match kept.children.get(k) {
                Some(o) => c.keeping_ancestors_of(o),
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
