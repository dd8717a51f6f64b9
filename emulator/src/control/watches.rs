//! Watch faults: watches answered `410 Gone`, open watches cut, and history compacted.

use serde::{Deserialize, Serialize};

use super::patterns::opt_matches;
use super::{Control, lock};
use crate::http::RequestInfo;

/// Makes the next watch requests answer `410 Gone` (an `ERROR` event with reason `Expired`, as
/// Kubernetes' watch cache sends once a resourceVersion is compacted away).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WatchExpiry {
    /// Only watches of this plural resource (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Only watches in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How many watches (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

pub(super) struct Expiry {
    rule: WatchExpiry,
    left: u32,
}

impl Control {
    /// Makes the next matching watches answer 410 Gone.
    pub fn expire_watches(&self, rule: WatchExpiry) {
        let left = rule.count.unwrap_or(1);
        if left > 0 {
            lock(&self.expiries).push(Expiry { rule, left });
        }
    }

    /// Whether this watch request must answer 410 Gone (uses up one expiry).
    pub(crate) fn take_watch_expiry(&self, info: &RequestInfo) -> bool {
        let mut ex = lock(&self.expiries);
        let Some(e) = ex.iter_mut().find(|e| {
            opt_matches(&e.rule.resource, &info.resource)
                && opt_matches(&e.rule.namespace, &info.namespace)
        }) else {
            return false;
        };
        e.left -= 1;
        ex.retain(|e| e.left > 0);
        drop(ex);
        self.record(0, "watch expired".into(), info);
        true
    }

    /// Ends every open watch stream (clients see the connection close and re-watch).
    pub fn cut_watches(&self) {
        tracing::info!(target: "emulator::control", "injected fault: cutting every open watch");
        self.watch_cut.send_modify(|v| *v += 1);
    }

    pub(crate) fn watch_cuts(&self) -> tokio::sync::watch::Receiver<u64> {
        let mut r = self.watch_cut.subscribe();
        r.mark_unchanged();
        r
    }

    /// Forgets history: watches and lists at older resourceVersions get 410 Gone.
    pub fn compact(&self) {
        tracing::info!(target: "emulator::control", "injected fault: compacting history");
        (self.compact)();
    }
}
