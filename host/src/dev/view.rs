//! The live view of `dev`: one line per app and per migration whenever what
//! it shows changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use kube::{Resource, ResourceExt};
use portfolio_api::{DatabaseMigration, PortfolioApp};

use crate::controller::conditions;

/// The live view: one line per app whenever what it shows changes.
#[derive(Debug)]
pub struct View {
    started: Instant,
    shown: BTreeMap<String, String>,
}

impl View {
    /// A view whose timestamps count from `started`.
    pub fn new(started: Instant) -> Self {
        View {
            started,
            shown: BTreeMap::new(),
        }
    }

    /// The line to print for `app`, if it differs from the last one shown.
    pub fn changed(&mut self, app: &PortfolioApp) -> Option<String> {
        let key = key(app);
        let summary = summary(app);
        if self.shown.get(&key) == Some(&summary) {
            return None;
        }
        self.shown.insert(key.clone(), summary.clone());
        Some(self.line(&key, &summary))
    }

    /// The line to print for a deleted `app`.
    pub fn deleted(&mut self, app: &PortfolioApp) -> Option<String> {
        let key = key(app);
        self.shown.remove(&key)?;
        Some(self.line(&key, "deleted"))
    }

    /// The line to print for `migration`, if it differs from the last one shown.
    pub fn migration_changed(&mut self, migration: &DatabaseMigration) -> Option<String> {
        let key = migration_key(migration);
        let summary = migration_summary(migration);
        if self.shown.get(&key) == Some(&summary) {
            return None;
        }
        self.shown.insert(key.clone(), summary.clone());
        Some(self.line(&key, &summary))
    }

    /// The line to print for a deleted `migration`.
    pub fn migration_deleted(&mut self, migration: &DatabaseMigration) -> Option<String> {
        let key = migration_key(migration);
        self.shown.remove(&key)?;
        Some(self.line(&key, "deleted"))
    }

    fn line(&self, key: &str, summary: &str) -> String {
        format!(
            "{:>7.1}s  {key:<30} {summary}\n",
            self.started.elapsed().as_secs_f64()
        )
    }
}

fn key(app: &PortfolioApp) -> String {
    format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any())
}

fn migration_key(migration: &DatabaseMigration) -> String {
    format!(
        "dbm {}/{}",
        migration.namespace().unwrap_or_default(),
        migration.name_any()
    )
}

/// A migration's phase, its applied version, and what its conditions say now.
fn migration_summary(migration: &DatabaseMigration) -> String {
    let Some(status) = migration.status.as_ref().filter(|s| s.phase.is_some()) else {
        return "waiting for the operator".to_owned();
    };
    let phase = status
        .phase
        .map_or("?", crate::controller::migration::report::phase_name);
    let mut text = format!("{phase:<16}");
    if let Some(version) = &status.applied_version {
        let _ = write!(text, " version {version}");
    }
    let condition = |type_: &str| status.conditions.iter().find(|c| c.type_ == type_);
    let focus = [conditions::DEGRADED, conditions::PROGRESSING]
        .into_iter()
        .filter_map(condition)
        .find(|c| c.status == "True")
        .or_else(|| condition(conditions::READY));
    if let Some(c) = focus {
        let _ = write!(text, "  {}: {}", c.reason, c.message);
    }
    if status.observed_generation != migration.meta().generation {
        text.push_str("  (spec changed; not reconciled yet)");
    }
    text
}

/// What a person wants to see: the three conditions, the pods, and the
/// message of the condition that matters most right now.
fn summary(app: &PortfolioApp) -> String {
    if app.meta().deletion_timestamp.is_some() {
        let message = app
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == conditions::READY))
            .map(|c| c.message.clone())
            .unwrap_or_default();
        return format!("deleting: {message}");
    }
    let Some(status) = app.status.as_ref().filter(|s| !s.conditions.is_empty()) else {
        return "waiting for the operator".to_owned();
    };
    let condition = |type_: &str| status.conditions.iter().find(|c| c.type_ == type_);
    let state = |type_: &str| condition(type_).map_or("?", |c| c.status.as_str());
    let mut text = format!(
        "Ready={:<5} Progressing={:<5} Degraded={:<5}",
        state(conditions::READY),
        state(conditions::PROGRESSING),
        state(conditions::DEGRADED),
    );
    if let Some(replicas) = status.replicas {
        let _ = write!(
            text,
            " pods {}/{replicas}",
            status.ready_replicas.unwrap_or(0)
        );
    }
    let stale = status.observed_generation != app.meta().generation;
    let focus = [conditions::DEGRADED, conditions::PROGRESSING]
        .into_iter()
        .filter_map(condition)
        .find(|c| c.status == "True")
        .or_else(|| condition(conditions::READY));
    if let Some(c) = focus {
        let _ = write!(text, "  {}: {}", c.reason, c.message);
    }
    if stale {
        text.push_str("  (spec changed; not reconciled yet)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn app(status: Value) -> PortfolioApp {
        serde_json::from_value(json!({
            "apiVersion": "portfolio.dev/v1alpha1",
            "kind": "PortfolioApp",
            "metadata": {"name": "shop", "namespace": "demo", "generation": 2},
            "spec": {"image": "example/shop:1"},
            "status": status,
        }))
        .expect("app")
    }

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn the_view_prints_each_change_once() {
        let mut view = View::new(Instant::now());
        let waiting = app(json!({}));
        let line = view.changed(&waiting).expect("first sight");
        assert!(line.contains("demo/shop"), "{line}");
        assert!(line.contains("waiting for the operator"), "{line}");
        assert_eq!(view.changed(&waiting), None, "nothing changed");

        let rolling = app(json!({
            "observedGeneration": 2, "replicas": 2, "readyReplicas": 1,
            "conditions": [
                condition("Ready", "False", "RollingOut", "1 of 2 pods available"),
                condition("Progressing", "True", "RollingOut", "Deployment shop is rolling out"),
                condition("Degraded", "False", "AsExpected", ""),
            ],
        }));
        let line = view.changed(&rolling).expect("a change");
        assert!(line.contains("Ready=False"), "{line}");
        assert!(line.contains("pods 1/2"), "{line}");
        assert!(
            line.contains("RollingOut: Deployment shop is rolling out"),
            "the progressing message: {line}"
        );
        assert!(!line.contains("not reconciled"), "{line}");

        let broken = app(json!({
            "observedGeneration": 1,
            "conditions": [
                condition("Ready", "False", "PluginFailed", "x"),
                condition("Progressing", "True", "RollingOut", "y"),
                condition("Degraded", "True", "PluginFailed", "plugin g@1.0.0 trapped"),
            ],
        }));
        let line = view.changed(&broken).expect("a change");
        assert!(
            line.contains("PluginFailed: plugin g@1.0.0 trapped"),
            "Degraded comes first: {line}"
        );
        assert!(line.contains("not reconciled yet"), "{line}");

        let line = view.deleted(&broken).expect("deleted");
        assert!(line.contains("deleted"), "{line}");
        assert_eq!(view.deleted(&broken), None, "said once");
    }
}
