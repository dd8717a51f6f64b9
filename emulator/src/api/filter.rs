//! What a list or watch selects: namespace, label and field selectors, compiled once.

use std::sync::Arc;

use serde_json::Value;

use super::{Api, ListOptions, WatchItem};
use crate::convert::to_version;
use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector, supported_fields};
use crate::store::Event;

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
        if e.storage != self.rt.storage || e.rv <= self.after {
            return None;
        }
        if self.namespace.as_ref().is_some_and(|ns| *ns != e.namespace) {
            return None;
        }
        let now = self.matches(&e.object);
        let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
        use crate::store::EventType::*;
        let kind = match e.kind {
            Added if now => "ADDED",
            Modified if now && before => "MODIFIED",
            Modified if now => "ADDED",
            Modified if before => "DELETED",
            Deleted if now || before => "DELETED",
            _ => return None,
        };
        Some(WatchItem {
            kind,
            object: to_version(&self.rt, &e.object),
        })
    }
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
