//! Prometheus metrics of the operator, served on `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a reconcile: how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok`, or the error's reason.
    pub result: String,
}

/// Labels of a plugin call failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The failure's CamelCase reason (`PluginDeadlineExceeded`, `PluginTrapped`, …).
    pub reason: String,
}

/// Labels of a refused plugin upload: where it came from, and why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabels {
    /// `configmap` or `directory`.
    pub source: String,
    /// CamelCase reason, one of a small fixed set (`registry::RejectReason`).
    pub reason: String,
}

/// Every metric the operator keeps.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_seconds: Histogram,
    plugin_failures: Family<ReasonLabels, Counter>,
    plugin_rejections: Family<RejectionLabels, Counter>,
    applies: Counter,
    status_writes: Counter,
    skipped: Counter,
    writes: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portfolio");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let plugin_failures = Family::<ReasonLabels, Counter>::default();
        let plugin_rejections = Family::<RejectionLabels, Counter>::default();
        let applies = Counter::default();
        let status_writes = Counter::default();
        let skipped = Counter::default();
        registry.register("reconciles", "Reconciles, by result", reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconcile took",
            reconcile_seconds.clone(),
        );
        registry.register(
            "plugin_call_failures",
            "Plugin calls that failed, by reason",
            plugin_failures.clone(),
        );
        registry.register(
            "plugin_rejections",
            "Plugin uploads refused before activation, by source and reason",
            plugin_rejections.clone(),
        );
        registry.register(
            "applies",
            "Objects sent with server-side apply",
            applies.clone(),
        );
        registry.register(
            "status_writes",
            "Status updates written",
            status_writes.clone(),
        );
        registry.register(
            "reconciles_unchanged",
            "Reconciles that found the inputs of the last one and did nothing (included in reconciles)",
            skipped.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_seconds,
            plugin_failures,
            plugin_rejections,
            applies,
            status_writes,
            skipped,
            writes: AtomicU64::new(0),
        }
    }

    /// Count a reconcile and its duration.
    pub fn reconciled(&self, result: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_seconds.observe(seconds);
    }

    /// Count a failed plugin call.
    pub fn plugin_failure(&self, reason: &str) {
        self.plugin_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Count a refused plugin upload from `source`, refused for `reason`.
    pub fn plugin_rejected(&self, source: &str, reason: &str) {
        self.plugin_rejections
            .get_or_create(&RejectionLabels {
                source: source.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Count an object sent with server-side apply.
    pub fn applied(&self) {
        self.applies.inc();
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a reconcile that found nothing changed since the last one.
    pub fn skipped(&self) {
        self.skipped.inc();
    }

    /// Count a status write.
    pub fn status_written(&self) {
        self.status_writes.inc();
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Objects sent with server-side apply so far.
    pub fn applies(&self) -> u64 {
        self.applies.get()
    }

    /// Writes to the API server so far (applies and status updates).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_in_the_exposition() {
        let metrics = Metrics::new();
        metrics.reconciled("ok", 0.01);
        metrics.plugin_failure("PluginTrapped");
        metrics.plugin_rejected("configmap", "NotAComponent");
        metrics.applied();
        metrics.status_written();
        let text = metrics.encode();
        assert!(
            text.contains("portfolio_reconciles_total{result=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("portfolio_plugin_call_failures_total{reason=\"PluginTrapped\"} 1"));
        assert!(
            text.contains(
                "portfolio_plugin_rejections_total{source=\"configmap\",reason=\"NotAComponent\"} 1"
            ),
            "{text}"
        );
        assert_eq!(metrics.writes(), 2);
    }
}
