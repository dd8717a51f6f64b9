//! Server-side apply: the applied configuration merged into the live object, ownership
//! conflicts between field managers, and removal of fields a manager stopped applying.

use std::sync::Arc;

use serde_json::{Value, json};

use super::ids::now;
use super::managed::{Manager, Op, strip_tracked, sub_name, zero_of};
use super::meta::meta;
use super::validate::unknown_fields;
use super::write::{check_name, check_rv};
use super::{Api, FieldValidation, Sub, WriteOptions, WriteResult};
use crate::builtin_schema::schema_of;
use crate::convert::to_version;
use crate::error::{ApiError, Cause};
use crate::fields::{
    FieldSet, Shape, changed_fields, fields_of, find_duplicates, merge, remove_fields,
    widen_to_structs,
};
use crate::registry::ResourceType;
use crate::schema::Schema;

impl Api {
    /// Server-side apply (`application/apply-patch+yaml`): merges the configuration, checks
    /// ownership conflicts, and removes what the manager no longer applies.
    pub(super) fn apply(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        sub: Sub,
        config: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        let Some(manager) = opts.field_manager.clone().filter(|m| !m.is_empty()) else {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::required(
                    "fieldManager",
                    "is required for apply patch",
                )],
            ));
        };
        Self::manager(opts)?;
        if sub == Sub::Scale {
            return Err(ApiError::method_not_allowed());
        }
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "error decoding YAML: the applied configuration must be an object",
            ));
        }
        if config
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            || config
                .get("kind")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in the applied configuration",
            ));
        }
        Self::check_body_type(rt, &config)?;
        Self::check_namespace(rt, ns, &config)?;
        if meta(&config)
            .get("managedFields")
            .is_some_and(|m| !m.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let mut inner = self.store.lock();
        let old = inner.get(&rt.storage, ns, name);
        // Kubernetes checks the name of the merged object: a configuration without one
        // keeps the live object's, but cannot create an object (the zero object it merges
        // into has no name either).
        let mut config = config;
        match meta(&config).get("name") {
            None if old.is_some() => {
                if let Some(m) = config.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("name".into(), Value::String(name.to_owned()));
                } else if let Some(o) = config.as_object_mut() {
                    o.insert("metadata".into(), json!({ "name": name }));
                }
            }
            merged => check_name(merged.and_then(Value::as_str).unwrap_or_default(), name)?,
        }
        if old.is_none() && sub == Sub::Status {
            return Err(ApiError::not_found(&rt.group, &rt.resource, name));
        }
        if let Some(o) = &old {
            check_rv(rt, name, &config, o)?;
        }
        if old.is_none() {
            Self::namespace_usable(&inner, rt, ns)?;
        }
        let old_v = old.as_ref().map(|o| to_version(rt, o));
        let new_object;
        let live = match &old_v {
            Some(old_v) => old_v,
            None => {
                new_object = json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": name}});
                &new_object
            }
        };
        scope_to_subresource(&mut config, rt, sub);
        let shape = Shape {
            schema: rt.schema.as_deref(),
        };
        let schema = schema_of(rt);
        let config_for_fields =
            typed_configuration(&config, schema.as_deref(), shape, rt, ns, name)?;
        let applied = fields_of(&strip_tracked(&config_for_fields), shape, schema.as_deref());
        let merged = merge(live, &config_for_fields, shape);
        let zero = zero_of(schema.as_deref(), rt);
        let mut managers = Manager::parse(live);
        let live_stripped = strip_tracked(live);
        if managers.is_empty() && old.is_some() {
            // The first apply to an object without managed fields (they were reset) gives
            // what it has to an Update manager, "before-first-apply", as Kubernetes does.
            managers.push(Manager {
                manager: "before-first-apply".into(),
                operation: "Update".into(),
                api_version: rt.api_version(),
                time: now(),
                subresource: String::new(),
                fields: changed_fields(None, &live_stripped, shape, zero),
            });
        }
        let changed = changed_fields(Some(&live_stripped), &strip_tracked(&merged), shape, zero);
        let subname = sub_name(sub);
        let mut conflicts: Vec<(String, String, String)> = Vec::new();
        let mut new_managers = Vec::new();
        for m in &managers {
            if m.same(&manager, "Apply", subname) {
                continue;
            }
            let overlap = m.fields.intersection(&changed).intersection(&applied);
            if overlap.is_empty() {
                new_managers.push(m.clone());
                continue;
            }
            if opts.force {
                let mut m2 = m.clone();
                m2.fields = m.fields.difference(&overlap);
                new_managers.push(m2);
            } else {
                for p in overlap.paths() {
                    conflicts.push((m.manager.clone(), m.api_version.clone(), p));
                }
                new_managers.push(m.clone());
            }
        }
        if !conflicts.is_empty() {
            return Err(conflict_error(rt, name, &conflicts));
        }
        // After the apply's own errors, before validation: where Kubernetes judges them.
        let duplicates = match opts.field_validation {
            _ if opts.duplicate_keys.is_empty() => Vec::new(),
            FieldValidation::Strict => {
                return Err(ApiError::bad_request(format!(
                    "error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  {}",
                    opts.duplicate_keys.join("\n  ")
                )));
            }
            FieldValidation::Warn => opts.duplicate_keys.clone(),
            FieldValidation::Ignore => Vec::new(),
        };
        let previous = managers
            .iter()
            .find(|m| m.same(&manager, "Apply", subname))
            .map(|m| m.fields.clone())
            .unwrap_or_default();
        let others = new_managers
            .iter()
            .fold(FieldSet::default(), |acc, m| acc.union(&m.fields));
        let kept = applied.union(&others);
        let to_remove = widen_to_structs(&previous.difference(&applied), &kept, schema.as_deref())
            .difference(&others)
            .keeping_ancestors_of(&kept);
        let mut merged = merged;
        remove_fields(&mut merged, &to_remove);
        // The applier's time moves only when the apply changes the object.
        let previous_time = managers
            .iter()
            .find(|m| m.same(&manager, "Apply", subname))
            .map(|m| m.time.clone());
        let time = match previous_time {
            Some(t) if strip_tracked(&merged) == live_stripped => t,
            _ => now(),
        };
        new_managers.push(Manager {
            manager: manager.clone(),
            operation: "Apply".into(),
            api_version: rt.api_version(),
            time,
            subresource: subname.to_string(),
            fields: applied,
        });
        let mut written = self.commit(
            &mut inner,
            rt,
            ns,
            name,
            old_v,
            merged,
            sub,
            Op::Apply(new_managers),
            &manager,
            opts,
        )?;
        written.warnings.splice(0..0, duplicates);
        Ok(written)
    }
}

/// Only the part of a configuration an endpoint writes counts: the main resource never
/// applies `status`, `/status` applies only `status` (and the object's identity).
fn scope_to_subresource(config: &mut Value, rt: &ResourceType, sub: Sub) {
    if !rt.status {
        return;
    }
    if let Value::Object(m) = config {
        match sub {
            Sub::Main => {
                m.remove("status");
            }
            _ => {
                m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"))
            }
        }
    }
    if sub == Sub::Status
        && let Some(Value::Object(mm)) = config.get_mut("metadata")
    {
        mm.retain(|k, _| matches!(k.as_str(), "name" | "namespace" | "resourceVersion"));
    }
}

/// The configuration as server-side apply's typed object: pruned to the schema. A field the
/// schema does not declare, or a duplicate list-map key or set value, is an error whatever
/// `fieldValidation` says.
fn typed_configuration(
    config: &Value,
    schema: Option<&Schema>,
    shape: Shape,
    rt: &ResourceType,
    ns: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let mut typed = config.clone();
    let Some(s) = schema else {
        return Ok(typed);
    };
    s.prune(&mut typed, true);
    let problem = unknown_fields(config, &typed, "")
        .first()
        .map(|f| format!(".{f}: field not declared in schema"))
        .or_else(|| find_duplicates(&typed, shape));
    match problem {
        // Kubernetes answers this with a bare 500 and no reason (kubernetes#139253); the
        // emulator answers the same so clients are tested against what they get.
        Some(problem) => {
            let gvk = format!("{}/{}, Kind={}", rt.group, rt.version, rt.kind);
            Err(ApiError::new(
                500,
                "",
                format!(
                    "failed to create typed patch object ({}/{name}; {gvk}): {problem}",
                    if rt.namespaced { ns } else { "" }
                ),
            ))
        }
        None => Ok(typed),
    }
}

/// The 409 of an apply that changes fields other managers own: (manager, apiVersion, path)
/// per conflict.
fn conflict_error(
    rt: &ResourceType,
    name: &str,
    conflicts: &[(String, String, String)],
) -> ApiError {
    let n = conflicts.len();
    let mut e = ApiError::new(
        409,
        "Conflict",
        format!(
            "Apply failed with {n} conflict{}: {}",
            if n == 1 { "" } else { "s" },
            conflicts
                .iter()
                .map(|(m, v, p)| format!("conflict with \"{m}\" using {v}: {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    );
    e.details.causes = conflicts
        .iter()
        .map(|(m, v, p)| {
            Cause::new(
                "FieldManagerConflict",
                p.clone(),
                format!("conflict with \"{m}\" using {v}"),
            )
        })
        .collect();
    e.details.group = Some(rt.group.clone()).filter(|g| !g.is_empty());
    e.details.kind = Some(rt.resource.clone());
    e.details.name = Some(name.to_string());
    e
}
