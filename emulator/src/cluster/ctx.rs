//! What every controller shares (the API, the control plane, the event recorder, the CA),
//! and its reads and writes as a field manager.

use std::sync::Arc;

use serde_json::Value;

use super::{Recorder, controller_uid, str_at};
use crate::api::{Api, DeleteOptions, Sub, WriteOptions};
use crate::control::Control;
use crate::error::ApiError;
use crate::registry::{GroupResource, ResourceType};

/// What every controller shares: the API, the control plane, the event recorder and the
/// cluster's CA certificate (PEM).
pub(crate) struct Ctx {
    pub api: Arc<Api>,
    pub control: Arc<Control>,
    pub recorder: Arc<Recorder>,
    pub root_ca: String,
}

/// Well-known storages.
pub(crate) fn gr(group: &str, resource: &str) -> GroupResource {
    GroupResource::new(group, resource)
}

impl Ctx {
    pub fn rt(
        &self,
        group: &str,
        version: &str,
        resource: &str,
    ) -> Result<Arc<ResourceType>, ApiError> {
        self.api.resolve(group, version, resource)
    }

    /// One stored object.
    pub fn get(&self, g: &GroupResource, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.api.store().lock().get(g, ns, name)
    }

    /// Stored objects of a storage, in one namespace or all.
    pub fn list(&self, g: &GroupResource, ns: Option<&str>) -> Vec<Arc<Value>> {
        self.api.store().lock().list_current(g, ns)
    }

    /// Objects of storage `g` whose controller owner reference names `owner_uid`.
    pub fn controlled_by(&self, owner_uid: &str, g: &GroupResource) -> Vec<Arc<Value>> {
        let inner = self.api.store().lock();
        inner
            .dependents_of(owner_uid)
            .into_iter()
            .filter(|(dg, _)| dg == g)
            .filter_map(|(dg, (ns, name))| inner.get(&dg, &ns, &name))
            .filter(|o| controller_uid(o).as_deref() == Some(owner_uid))
            .collect()
    }

    fn opts(manager: &str) -> WriteOptions {
        WriteOptions {
            field_manager: Some(manager.to_string()),
            ..Default::default()
        }
    }

    /// Creates an object as `manager`.
    pub fn create(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        obj: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        Ok(Arc::unwrap_or_clone(
            self.api.create(rt, ns, obj, &Self::opts(manager))?.object,
        ))
    }

    /// Replaces an object (or its status) as `manager`, with optimistic concurrency on the
    /// resourceVersion `obj` carries.
    pub fn update(
        &self,
        rt: &Arc<ResourceType>,
        sub: Sub,
        obj: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let ns = str_at(&obj, "/metadata/namespace").to_string();
        let name = str_at(&obj, "/metadata/name").to_string();
        Ok(Arc::unwrap_or_clone(
            self.api
                .update(rt, &ns, &name, sub, obj, &Self::opts(manager))?
                .object,
        ))
    }

    /// Deletes an object with a propagation policy; a missing object is not an error.
    pub fn delete(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        propagation: &str,
    ) -> Result<(), ApiError> {
        let opts = DeleteOptions {
            propagation: Some(propagation.to_string()),
            ..Default::default()
        };
        match self.api.delete(rt, ns, name, &opts) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}
