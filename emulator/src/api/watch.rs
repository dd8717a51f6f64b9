//! Watches: the initial events (synthetic, replayed from history, or `410 Gone`), the live
//! feed, bookmarks, and the JSON lines a watcher receives.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::read::parse_rv;
use super::{Api, Filter, ListOptions};
use crate::convert::to_version;
use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::store::Event;

/// A started watch: events to send first, then the live feed.
pub struct Watch {
    /// Synthetic or replayed events to send before live ones.
    pub initial: Vec<WatchItem>,
    /// The live feed (filter with [`Filter::apply`]).
    pub rx: broadcast::Receiver<Arc<Event>>,
    /// The resourceVersion the initial events end at.
    pub rv: u64,
    /// Whether to send the initial-events-end bookmark after `initial`.
    pub initial_end_bookmark: bool,
}

/// One event ready for a watcher.
#[derive(Debug, Clone)]
pub struct WatchItem {
    /// ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
    pub kind: &'static str,
    /// The object (converted to the watched version).
    pub object: Value,
}

impl Filter {
    /// The serialized watch line of a store event this filter passes as `kind`: the event's
    /// shared serialization when the watched version is the stored one (no copy of the
    /// object per watcher), else the object converted.
    pub fn line(&self, e: &Event, kind: &'static str) -> String {
        if !super::filter::sends_previous(e, kind)
            && crate::convert::is_identity(&self.rt, &e.object)
        {
            let obj = e
                .json
                .get_or_init(|| serde_json::to_string(&*e.object).unwrap_or_default());
            return format!("{{\"type\":\"{kind}\",\"object\":{obj}}}\n");
        }
        watch_line(&WatchItem {
            kind,
            object: self.object_sent(e, kind),
        })
    }
}

/// A watch event as one JSON line, `type` before `object` as Kubernetes
/// writes it (Go encodes a `metav1.WatchEvent`'s fields in their order): a
/// `json!` map sorts its keys, and a client that reads the object as it
/// comes (serde's adjacently tagged enums, as kube-rs' `WatchEvent`) must
/// otherwise buffer it first.
pub fn watch_line(item: &WatchItem) -> String {
    let kind = serde_json::to_string(item.kind).unwrap_or_default();
    let object = serde_json::to_string(&item.object).unwrap_or_default();
    format!("{{\"type\":{kind},\"object\":{object}}}\n")
}

impl Api {
    /// Starts a watch with Kubernetes' resourceVersion semantics.
    pub fn watch(
        &self,
        rt: &Arc<ResourceType>,
        ns: Option<&str>,
        o: &ListOptions,
    ) -> Result<(Watch, Filter), ApiError> {
        let o = &o.defaulted_and_checked(true)?;
        let mut filter = self.filter(rt, ns, o)?;
        let rv = parse_rv(o.resource_version.as_deref())?;
        let send_initial = o.send_initial_events.unwrap_or(false);
        let inner = self.store.lock();
        let rx = self.store.subscribe();
        let current = inner.rv();
        // Initial events are the current state (at least as new as `rv`); without them
        // a watch replays from `rv`, or starts now when `rv` is unset or 0.
        let synthetic = send_initial;
        let initial = if synthetic {
            inner
                .list_current(&rt.storage, ns)
                .into_iter()
                .filter(|obj| filter.matches(obj))
                .map(|obj| WatchItem {
                    kind: "ADDED",
                    object: to_version(rt, &obj),
                })
                .collect()
        } else {
            let from = rv.filter(|rv| *rv != 0).unwrap_or(current);
            filter.after = from;
            match inner.events_since(from) {
                Some(events) => events.iter().filter_map(|e| filter.apply(e)).collect(),
                None => vec![WatchItem {
                    kind: "ERROR",
                    object: ApiError::expired(format!(
                        "too old resource version: {from} ({})",
                        inner.oldest() + 1
                    ))
                    .to_status(),
                }],
            }
        };
        drop(inner);
        Ok((
            Watch {
                initial,
                rx,
                rv: current,
                initial_end_bookmark: send_initial && o.allow_bookmarks,
            },
            filter,
        ))
    }

    /// A bookmark event at `rv` for this type.
    pub fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> WatchItem {
        let mut m = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            m["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        WatchItem {
            kind: "BOOKMARK",
            object: json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": m}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_line_names_its_type_before_its_object_as_kubernetes_does() {
        let line = watch_line(&WatchItem {
            kind: "MODIFIED",
            object: json!({"metadata": {"name": "a", "resourceVersion": "3"}, "apiVersion": "v1"}),
        });
        assert!(
            line.starts_with(r#"{"type":"MODIFIED","object":{"#),
            "{line}"
        );
        assert!(line.ends_with("}\n") && !line[..line.len() - 1].contains('\n'));
        let parsed: Value = serde_json::from_str(&line).expect("one JSON object");
        assert_eq!(parsed["object"]["metadata"]["name"], "a");
    }
}
