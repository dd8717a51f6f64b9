//! Managed fields: the `metadata.managedFields` entries of field managers, and how a write
//! records its manager in them.

use serde_json::{Value, json};

use super::Sub;
use super::meta::{meta, meta_mut};
use crate::fields::{FieldSet, Shape, changed_fields, fields_of};
use crate::registry::ResourceType;

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
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.remove("apiVersion");
        m.remove("kind");
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            for k in STRIPPED_META {
                meta.remove(*k);
            }
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
    }
    v
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
    /// The entries of an object's `metadata.managedFields`; malformed ones are dropped.
    pub(super) fn parse(v: &Value) -> Vec<Manager> {
        let Some(list) = meta(v).get("managedFields").and_then(Value::as_array) else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|e| {
                Some(Manager {
                    manager: e.get("manager")?.as_str()?.to_string(),
                    operation: e.get("operation")?.as_str()?.to_string(),
                    api_version: e
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    time: e
                        .get("time")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    subresource: e
                        .get("subresource")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    fields: FieldSet::from_fields_v1(e.get("fieldsV1").unwrap_or(&json!({})))?,
                })
            })
            .collect()
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
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

/// Writes the entries into `metadata.managedFields`, dropping empty ones.
fn write_managers(obj: &mut Value, mut managers: Vec<Manager>, old: &[Manager]) {
    managers.retain(|m| !m.fields.is_empty());
    // Entries whose set did not change keep their time, so a no-op write stays a no-op.
    for m in &mut managers {
        if let Some(o) = old
            .iter()
            .find(|o| o.same(&m.manager, &m.operation, &m.subresource))
            && o.fields == m.fields
            && o.api_version == m.api_version
        {
            m.time = o.time.clone();
        }
    }
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

/// Records a write in `new`'s `metadata.managedFields`: an apply's entries as computed, or
/// for a create or update the changed fields moved from other managers to `manager`'s Update
/// entry; every entry keeps only fields the object has. Unchanged entries keep their time.
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
    let old_managers = old.map(Manager::parse).unwrap_or_default();
    let subname = sub_name(sub);
    let managers = match op {
        Op::Apply(list) => list,
        Op::Create | Op::Update | Op::Patch => {
            let base = Manager::parse(new);
            let changed =
                changed_fields(old.map(strip_tracked).as_ref(), &strip_tracked(new), shape);
            let mut list: Vec<Manager> = base
                .into_iter()
                .map(|mut m| {
                    if !m.same(manager, "Update", subname) {
                        m.fields = m.fields.difference(&changed);
                    }
                    m
                })
                .collect();
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
            list
        }
    };
    let present = fields_of(&strip_tracked(new), shape);
    let managers: Vec<Manager> = managers
        .into_iter()
        .map(|mut m| {
            m.fields = m.fields.intersection(&present);
            m
        })
        .collect();
    write_managers(new, managers, &old_managers);
}
