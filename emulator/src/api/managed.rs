//! Managed fields: the `metadata.managedFields` entries of field managers, and how a write
//! records its manager in them.

use serde_json::{Value, json};

use super::Sub;
use super::meta::{meta, meta_mut};
use crate::builtin_schema::schema_of;
use crate::fields::{FieldSet, Shape, Zero, all_fields, changed_fields};
use crate::registry::ResourceType;
use crate::schema::Schema;

/// Fields server-side apply and update tracking never assign to a manager.
const STRIPPED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// An object without what managers never own: apiVersion, kind and system metadata.
pub(super) fn strip_tracked(v: &Value) -> Value {
    // Copies only what it keeps: managedFields are most of a stored object's bytes.
    let Value::Object(m) = v else {
        return v.clone();
    };
    let mut out = serde_json::Map::new();
    for (k, v) in m {
        match (k.as_str(), v) {
            ("apiVersion" | "kind", _) => {}
            ("metadata", Value::Object(meta)) => {
                let kept: serde_json::Map<String, Value> = meta
                    .iter()
                    .filter(|(k, _)| !STRIPPED_META.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !kept.is_empty() {
                    out.insert(k.clone(), Value::Object(kept));
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone)]
pub(super) struct Manager {
    pub(super) manager: String,
    pub(super) operation: String,
    pub(super) api_version: String,
    pub(super) time: String,
    pub(super) subresource: String,
    pub(super) fields: FieldSet,
}

impl Manager {
    /// The entries of a stored object's `metadata.managedFields` (always well-formed: the
    /// emulator wrote them).
    pub(super) fn parse(v: &Value) -> Vec<Manager> {
        meta(v)
            .get("managedFields")
            .and_then(Value::as_array)
            .and_then(|list| Manager::decode(list))
            .unwrap_or_default()
    }

    /// Decodes a list of entries as Kubernetes does, all or nothing: each needs operation
    /// `Apply` or `Update`, an apiVersion, fieldsType `FieldsV1` and a decodable `fieldsV1`.
    fn decode(list: &[Value]) -> Option<Vec<Manager>> {
        let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
        list.iter()
            .map(|e| {
                let operation = text(e, "operation").filter(|o| o == "Apply" || o == "Update")?;
                let api_version = text(e, "apiVersion").filter(|v| !v.is_empty())?;
                if e.get("fieldsType").and_then(Value::as_str) != Some("FieldsV1") {
                    return None;
                }
                let fields = match e.get("fieldsV1") {
                    None | Some(Value::Null) => FieldSet::default(),
                    Some(f) => FieldSet::from_fields_v1(f)?,
                };
                Some(Manager {
                    manager: text(e, "manager").unwrap_or_default(),
                    operation,
                    api_version,
                    time: text(e, "time").unwrap_or_default(),
                    subresource: text(e, "subresource").unwrap_or_default(),
                    fields,
                })
            })
            .collect()
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if !self.time.is_empty() {
            v["time"] = json!(self.time);
        }
        if !self.subresource.is_empty() {
            v["subresource"] = json!(self.subresource);
        }
        v
    }

    /// Whether this is the entry of `manager` for `operation` on subresource `sub`.
    pub(super) fn same(&self, manager: &str, operation: &str, sub: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == sub
    }
}

/// Writes the entries into `metadata.managedFields`, dropping empty ones, in Kubernetes'
/// order (Apply before Update, then by time, manager, apiVersion and subresource).
fn write_managers(obj: &mut Value, mut managers: Vec<Manager>) {
    managers.retain(|m| !m.fields.is_empty());
    managers.sort_by(|p, q| {
        (
            &p.operation,
            &p.time,
            &p.manager,
            &p.api_version,
            &p.subresource,
        )
            .cmp(&(
                &q.operation,
                &q.time,
                &q.manager,
                &q.api_version,
                &q.subresource,
            ))
    });
    let list: Vec<Value> = managers.iter().map(Manager::to_json).collect();
    let meta = meta_mut(obj);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// The `subresource` of a managedFields entry.
pub(super) fn sub_name(sub: Sub) -> &'static str {
    match sub {
        Sub::Main => "",
        Sub::Status => "status",
        Sub::Scale => "scale",
    }
}

/// How a write records its field manager.
pub(super) enum Op {
    /// A create: the manager's Update entry gets every field.
    Create,
    /// An update: the manager's Update entry gets the changed fields.
    Update,
    /// A JSON, merge or strategic merge patch: recorded as an update; its decoding errors
    /// are 422s.
    Patch,
    /// Server-side apply, whose entries the apply computed.
    Apply(Vec<Manager>),
}

/// What Kubernetes compares a write with when the object did not exist: the kind's zero
/// value (see [`Zero`]).
pub(super) fn zero_of<'s>(schema: Option<&'s Schema>, rt: &ResourceType) -> Zero<'s> {
    Zero {
        builtin: schema.filter(|_| !rt.custom),
    }
}

/// The managers an update or patch starts from, as Kubernetes decides them from the request
/// object's `metadata.managedFields`: absent, or not decodable, keeps the stored ones; an
/// empty list or a list of one empty entry resets them; a decodable list replaces them.
/// Writes to a subresource always keep the stored ones.
fn requested_managers(old: Option<&Value>, new: &Value, sub: Sub) -> Vec<Manager> {
    let live = || old.map(Manager::parse).unwrap_or_default();
    if sub != Sub::Main {
        return live();
    }
    let Some(Value::Array(list)) = meta(new).get("managedFields") else {
        return live();
    };
    let zero_entry = |e: &Value| {
        e.as_object().is_some_and(|m| {
            m.values()
                .all(|v| v.is_null() || v == "" || v == &json!({}))
        })
    };
    match list.as_slice() {
        [] => Vec::new(),
        [e] if zero_entry(e) => Vec::new(),
        _ => match Manager::decode(list) {
            Some(m) if !m.is_empty() => m,
            _ => live(),
        },
    }
}

/// Records a write in `new`'s `metadata.managedFields`: an apply's entries as computed, or
/// for a create or update what the write changed (structured-merge-diff's comparison with
/// the stored object, or with the zero value on create) moved from other managers to
/// `manager`'s Update entry; every entry keeps only fields the object has. An update of an
/// object whose managers were reset records nothing (Kubernetes tracks again from the next
/// apply, or a create).
pub(super) fn track(
    rt: &ResourceType,
    old: Option<&Value>,
    new: &mut Value,
    sub: Sub,
    op: Op,
    manager: &str,
    ts: &str,
) {
    let shape = Shape {
        schema: rt.schema.as_deref(),
    };
    let schema = schema_of(rt);
    let subname = sub_name(sub);
    let managers = match op {
        Op::Apply(list) => list,
        Op::Create | Op::Update | Op::Patch => {
            let base = requested_managers(old, new, sub);
            if base.is_empty() && old.is_some() {
                meta_mut(new).remove("managedFields");
                return;
            }
            let changed = changed_fields(
                old.map(strip_tracked).as_ref(),
                &strip_tracked(new),
                shape,
                zero_of(schema.as_deref(), rt),
            );
            let mut list: Vec<Manager> = base
                .into_iter()
                .map(|mut m| {
                    if !m.same(manager, "Update", subname) {
                        m.fields = m.fields.difference(&changed);
                    }
                    m
                })
                .collect();
            if !changed.is_empty() {
                match list.iter_mut().find(|m| m.same(manager, "Update", subname)) {
                    Some(m) => {
                        m.fields = m.fields.union(&changed);
                        m.api_version = rt.api_version();
                        m.time = ts.to_string();
                    }
                    None => list.push(Manager {
                        manager: manager.to_string(),
                        operation: "Update".into(),
                        api_version: rt.api_version(),
                        time: ts.to_string(),
                        subresource: subname.to_string(),
                        fields: changed,
                    }),
                }
            }
            list
        }
    };
    let present = all_fields(&strip_tracked(new), shape);
    let managers: Vec<Manager> = managers
        .into_iter()
        .map(|mut m| {
            m.fields = m.fields.intersection(&present);
            m
        })
        .collect();
    write_managers(new, managers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_tracked_keeps_what_managers_may_own() {
        let object = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "uid": "u", "resourceVersion": "7", "labels": {"x": "1"},
                         "managedFields": [{"manager": "m"}]},
            "data": {"k": "v"},
        });
        assert_eq!(
            strip_tracked(&object),
            json!({"metadata": {"labels": {"x": "1"}}, "data": {"k": "v"}})
        );
        // Nothing left of the metadata: no metadata at all.
        assert_eq!(
            strip_tracked(&json!({"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {}})),
            json!({"data": {}})
        );
        assert_eq!(strip_tracked(&json!("text")), json!("text"));
    }
}
