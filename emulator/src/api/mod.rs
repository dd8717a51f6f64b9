//! The API's semantics, independent of HTTP: the in-process API the server and the simulated
//! controllers call. Every write goes through one pipeline (`commit`); each module here is
//! one step or one kind of request.

use std::sync::{Arc, RwLock};

use serde_json::json;

use crate::error::ApiError;
use crate::registry::{GroupResource, Registry, ResourceType};
use crate::store::Store;

mod apply;
mod binding;
mod builtin_validation;
mod commit;
mod crds;
mod defaults;
mod delete;
mod filter;
mod gc;
mod ids;
mod managed;
mod meta;
mod options;
mod read;
mod scale;
mod validate;
mod watch;
mod write;

pub use filter::Filter;
pub(crate) use ids::safe_encode;
pub use ids::{new_uid, now};
pub use options::{
    DeleteOptions, DeleteResult, FieldValidation, ListOptions, Options, Sub, WriteOptions,
    WriteResult,
};
pub use watch::{Watch, WatchItem, watch_line};

/// The API: registry plus store, with Kubernetes' semantics.
pub struct Api {
    store: Store,
    registry: RwLock<Arc<Registry>>,
    builtin: Registry,
    opts: Options,
}

impl Api {
    /// A fresh API with the built-in types and namespaces `default`, `kube-system`,
    /// `kube-public` and `kube-node-lease`.
    pub fn new(opts: Options) -> Self {
        let builtin = Registry::builtin();
        let api = Api {
            store: Store::new(opts.history_window),
            registry: RwLock::new(Arc::new(builtin.clone())),
            builtin,
            opts,
        };
        let mut inner = api.store.lock();
        let gr = GroupResource::new("", "namespaces");
        let ts = now();
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let rv = inner.next_rv();
            let obj = json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "uid": new_uid(), "resourceVersion": rv.to_string(),
                    "creationTimestamp": ts, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            inner.put(&gr, "", ns, obj, rv);
        }
        drop(inner);
        api
    }

    /// The served types right now.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The store (for controllers and fault injection: compaction, subscriptions).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The type served at group/version/resource, or 404.
    pub fn resolve(
        &self,
        group: &str,
        version: &str,
        resource: &str,
    ) -> Result<Arc<ResourceType>, ApiError> {
        self.registry()
            .get(group, version, resource)
            .ok_or_else(ApiError::no_route)
    }

    /// The latest resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.store.lock().rv()
    }

    /// Forgets history: older resourceVersions answer 410 Gone from now on.
    pub fn compact(&self) {
        self.store.lock().compact();
    }
}
