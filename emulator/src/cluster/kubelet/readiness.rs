//! Pod readiness and availability, as controllers read them from the kubelet's status.

use serde_json::Value;

use crate::cluster::{condition, is_true, seconds_since};

/// Whether the pod's `Ready` condition is true.
pub(crate) fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .is_some_and(|c| is_true(c, "Ready"))
}

/// Whether a pod counts as available: ready for at least `min_ready` seconds.
pub(crate) fn pod_available(pod: &Value, min_ready: i64) -> bool {
    if !pod_ready(pod) {
        return false;
    }
    if min_ready <= 0 {
        return true;
    }
    let since = pod
        .pointer("/status/conditions")
        .and_then(|c| condition(c, "Ready"))
        .and_then(|c| c.get("lastTransitionTime"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    seconds_since(since) >= min_ready as f64
}
