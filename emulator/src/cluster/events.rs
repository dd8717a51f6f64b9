//! Events, as the controllers and the kubelet record them (`kubectl describe` and
//! `kubectl get events` show them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::str_at;
use crate::api::{Api, WriteOptions, now};

/// Who records an event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source {
    /// `source.component` / `reportingComponent`, e.g. `deployment-controller`.
    pub component: &'static str,
    /// The field manager of the write, e.g. `kube-controller-manager`.
    pub manager: &'static str,
    /// `source.host` / `reportingInstance` (the kubelet's node), if any.
    pub host: Option<&'static str>,
}

/// Writes core/v1 Events about objects.
pub(crate) struct Recorder {
    api: Arc<Api>,
    seq: AtomicU64,
}

impl Recorder {
    /// A recorder writing through `api`.
    pub fn new(api: Arc<Api>) -> Self {
        Recorder {
            api,
            seq: AtomicU64::new(0),
        }
    }

    /// Records a `Normal` event.
    pub fn normal(&self, src: Source, obj: &Value, reason: &str, message: &str) {
        self.record(src, obj, "Normal", reason, message);
    }

    /// Records a `Warning` event.
    pub fn warning(&self, src: Source, obj: &Value, reason: &str, message: &str) {
        self.record(src, obj, "Warning", reason, message);
    }

    /// Records an event about `obj`; failures (e.g. a terminating namespace) are ignored, as
    /// Kubernetes' recorders do.
    pub fn record(&self, src: Source, obj: &Value, type_: &str, reason: &str, message: &str) {
        let ns = match str_at(obj, "/metadata/namespace") {
            "" => "default",
            n => n,
        };
        let nanos = jiff::Timestamp::now().as_nanosecond() as u64;
        // Kubernetes names events `<object>.<unix nanoseconds in hex>`.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{}.{:x}",
            str_at(obj, "/metadata/name"),
            nanos.wrapping_add(seq)
        );
        let mut involved = json!({
            "apiVersion": str_at(obj, "/apiVersion"),
            "kind": str_at(obj, "/kind"),
            "name": str_at(obj, "/metadata/name"),
            "uid": str_at(obj, "/metadata/uid"),
            "resourceVersion": str_at(obj, "/metadata/resourceVersion"),
        });
        let obj_ns = str_at(obj, "/metadata/namespace");
        if !obj_ns.is_empty() {
            involved["namespace"] = json!(obj_ns);
        }
        let ts = now();
        let mut source = json!({"component": src.component});
        if let Some(h) = src.host {
            source["host"] = json!(h);
        }
        let ev = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": source,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "eventTime": null,
            "reportingComponent": src.component,
            "reportingInstance": src.host.unwrap_or_default(),
        });
        self.write(src.manager, ns, ev);
    }

    /// The scheduler's `Scheduled` event, which it records through events.k8s.io/v1: an
    /// `eventTime`, an `action`, no `firstTimestamp`/`lastTimestamp`.
    pub fn scheduled(&self, pod: &Value, node: &str) {
        let ns = str_at(pod, "/metadata/namespace");
        let name = str_at(pod, "/metadata/name");
        let t = jiff::Timestamp::now();
        let micro = t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let ev = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": format!("{name}.{:x}", (t.as_nanosecond() as u64).wrapping_add(seq)), "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": ns,
                "uid": str_at(pod, "/metadata/uid")},
            "reason": "Scheduled",
            "message": format!("Successfully assigned {ns}/{name} to {node}"),
            "type": "Normal",
            "source": {},
            "firstTimestamp": null,
            "lastTimestamp": null,
            "eventTime": micro,
            "action": "Binding",
            "reportingComponent": "default-scheduler",
            "reportingInstance": format!("default-scheduler-{node}"),
        });
        self.write("kube-scheduler", ns, ev);
    }

    fn write(&self, manager: &str, ns: &str, ev: Value) {
        let Ok(rt) = self.api.resolve("", "v1", "events") else {
            return;
        };
        let opts = WriteOptions {
            field_manager: Some(manager.to_string()),
            ..Default::default()
        };
        if let Err(e) = self.api.create(&rt, ns, ev, &opts) {
            tracing::debug!(error = %e, "event not recorded");
        }
    }
}
