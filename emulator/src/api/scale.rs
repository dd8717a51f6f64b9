//! The `scale` subresource: an object seen and written as an `autoscaling/v1` Scale.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::managed::Op;
use super::meta::meta;
use super::read::stored;
use super::write::check_rv;
use super::{Api, Sub, WriteOptions, WriteResult};
use crate::convert::to_version;
use crate::error::{ApiError, Cause};
use crate::registry::{ResourceType, get_path, set_path};
use crate::selector::LabelSelector;
use crate::store::Inner;

impl Api {
    /// The `/scale` view of an object.
    pub fn get_scale(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        let obj = self.get(rt, ns, name)?;
        scale_of(rt, &obj)
    }

    /// Replaces the replicas of an object through a Scale (PUT on `/scale`).
    pub(super) fn update_scale(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        if rt.scale.is_none() {
            return Err(ApiError::no_route());
        }
        let replicas = requested_replicas(&body, name)?;
        let manager = Self::manager(opts)?;
        let mut inner = self.store.lock();
        let old = stored(&inner, rt, ns, name)?;
        check_rv(rt, name, &body, &old)?;
        let old_v = to_version(rt, &old);
        self.commit_scale(&mut inner, rt, ns, name, old_v, replicas, &manager, opts)
    }

    /// Writes `replicas` (checked with [`requested_replicas`]) into the object and answers
    /// the new Scale.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn commit_scale(
        &self,
        inner: &mut Inner,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        old_v: Value,
        replicas: Value,
        manager: &str,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        let scale = rt.scale.as_ref().ok_or_else(ApiError::no_route)?;
        let mut new = old_v.clone();
        set_path(&mut new, &scale.spec_replicas, replicas);
        let res = self.commit(
            inner,
            rt,
            ns,
            name,
            Some(old_v),
            new,
            Sub::Scale,
            Op::Update,
            manager,
            opts,
        )?;
        Ok(WriteResult {
            object: Arc::new(scale_of(rt, &res.object)?),
            ..res
        })
    }
}

/// The `spec.replicas` of a Scale: a non-negative integer (422 otherwise; absent is 0).
pub(super) fn requested_replicas(scale: &Value, name: &str) -> Result<Value, ApiError> {
    let replicas = scale
        .get("spec")
        .and_then(|s| s.get("replicas"))
        .cloned()
        .unwrap_or(json!(0));
    if !replicas.is_i64() || replicas.as_i64().is_some_and(|r| r < 0) {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            name,
            vec![Cause::invalid(
                "spec.replicas",
                &replicas,
                "must be greater than or equal to 0",
            )],
        ));
    }
    Ok(replicas)
}

/// The `autoscaling/v1` Scale view of an object.
pub(super) fn scale_of(rt: &ResourceType, obj: &Value) -> Result<Value, ApiError> {
    let Some(scale) = &rt.scale else {
        return Err(ApiError::no_route());
    };
    let m = meta(obj);
    let mut status =
        json!({"replicas": get_path(obj, &scale.status_replicas).cloned().unwrap_or(json!(0))});
    if let Some(p) = &scale.label_selector
        && let Some(sel) = get_path(obj, p)
    {
        let s = match sel {
            Value::String(s) => s.clone(),
            other => LabelSelector::from_object(other)
                .map(|s| s.to_string_form())
                .unwrap_or_default(),
        };
        status["selector"] = json!(s);
    }
    let mut sm = Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(k) {
            sm.insert(k.into(), v.clone());
        }
    }
    Ok(json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": sm,
        "spec": {"replicas": get_path(obj, &scale.spec_replicas).cloned().unwrap_or(json!(0))},
        "status": status,
    }))
}
