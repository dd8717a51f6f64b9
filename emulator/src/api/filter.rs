//! What a list or watch selects: namespace, label and field selectors, compiled once.

use std::sync::Arc;

use serde_json::Value;

use super::{Api, ListOptions, WatchItem};
use crate::convert::to_version;
use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector, supported_fields};
use crate::store::{Event, EventType};

/// A compiled list/watch filter.
#[derive(Clone)]
pub struct Filter {
    pub(super) rt: Arc<ResourceType>,
    pub(super) namespace: Option<String>,
    pub(super) labels: LabelSelector,
    pub(super) fields: FieldSelector,
    /// Events at or before this resourceVersion are not delivered (a watch from a version
    /// the store has not reached yet starts once it is reached, as in Kubernetes).
    pub(super) after: u64,
}

impl Filter {
    pub(super) fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// What a watcher of this filter receives for a store event, if anything.
    pub fn apply(&self, e: &Event) -> Option<WatchItem> {
        let kind = self.event_type(e)?;
        Some(WatchItem {
            kind,
            object: self.object_sent(e, kind),
        })
    }

    /// The object a watcher is sent with an event of type `kind`, in the watched version.
    /// One that stops matching goes out as its previous content at the change's
    /// resourceVersion, as Kubernetes' cacher sends it (`cacheWatcher.convertToWatchEvent`).
    pub(super) fn object_sent(&self, e: &Event, kind: &str) -> Value {
        match &e.prev {
            Some(prev) if sends_previous(e, kind) => {
                let mut object = to_version(&self.rt, prev);
                if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("resourceVersion".into(), Value::String(e.rv.to_string()));
                }
                object
            }
            _ => to_version(&self.rt, &e.object),
        }
    }

    /// The type of the event a watcher of this filter sees for a store event (an object
    /// that stops matching is `DELETED`, one that starts is `ADDED`), if it sees one.
    pub fn event_type(&self, e: &Event) -> Option<&'static str> {
        if e.storage != self.rt.storage || e.rv <= self.after {
            return None;
        }
        if self.namespace.as_ref().is_some_and(|ns| *ns != e.namespace) {
            return None;
        }
        let now = self.matches(&e.object);
        let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
        use EventType::*;
        Some(match e.kind {
            Added if now => "ADDED",
            Modified if now && before => "MODIFIED",
            Modified if now => "ADDED",
            Modified if before => "DELETED",
            Deleted if now || before => "DELETED",
            _ => return None,
        })
    }
}

/// Whether a watcher is sent an event's previous object: it stopped matching.
pub(super) fn sends_previous(e: &Event, kind: &str) -> bool {
    kind == "DELETED" && e.kind == EventType::Modified
}

impl Api {
    /// Compiles the selectors of a list or watch.
    pub(super) fn filter(
        &self,
        rt: &Arc<ResourceType>,
        ns: Option<&str>,
        o: &ListOptions,
    ) -> Result<Filter, ApiError> {
        let labels = LabelSelector::parse(o.label_selector.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(
            o.field_selector.as_deref().unwrap_or(""),
            &supported_fields(&rt.group, &rt.resource),
        )
        .map_err(|e| {
            ApiError::bad_request(format!(
                "\"{}\" is not a known field selector: {e}",
                o.field_selector.as_deref().unwrap_or("")
            ))
        })?;
        Ok(Filter {
            rt: rt.clone(),
            namespace: ns.map(str::to_string),
            labels,
            fields,
            after: 0,
        })
    }
}
