//! How simulated workloads behave: the outcomes of Jobs' pods, and the metrics autoscalers
//! observe.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::patterns::opt_matches;
use super::{Control, lock};
use crate::error::ApiError;
use crate::selector::LabelSelector;

/// The result a pod of a Job (or a bare pod that runs to completion) ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Outcome {
    /// Exit code 0 (after `failedAttempts` failing attempts, if set).
    #[default]
    Succeeded,
    /// Every attempt fails.
    Failed,
}

/// Chooses how matching Jobs' pods end. The latest added rule that matches a Job wins;
/// without one, pods succeed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutcomeRule {
    /// Only Jobs (or bare pods) in this namespace (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only Jobs (or bare pods) with a matching name (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only Jobs (or bare pods) whose labels match this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Success or failure.
    #[serde(default)]
    pub outcome: Outcome,
    /// With `Succeeded`: this many attempts fail first (retries are then visible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<u32>,
    /// The container's termination message (`state.terminated.message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The exit code of failing attempts (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// How long each attempt runs (default: the `jobDuration` knob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl OutcomeRule {
    /// Every attempt of matching Jobs fails with this termination message.
    pub fn fail(message: &str) -> Self {
        OutcomeRule {
            outcome: Outcome::Failed,
            message: Some(message.to_string()),
            ..Default::default()
        }
    }

    /// Matching Jobs succeed with this termination message.
    pub fn succeed(message: &str) -> Self {
        OutcomeRule {
            outcome: Outcome::Succeeded,
            message: Some(message.to_string()),
            ..Default::default()
        }
    }

    /// Only Jobs whose name matches (wildcards allowed).
    pub fn name(mut self, pattern: &str) -> Self {
        self.name = Some(pattern.to_string());
        self
    }

    /// Only Jobs whose labels match the selector.
    pub fn labels(mut self, selector: &str) -> Self {
        self.labels = Some(selector.to_string());
        self
    }

    /// Only Jobs in this namespace.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_string());
        self
    }

    /// Refuses a rule whose label selector does not parse.
    fn check(&self) -> Result<(), ApiError> {
        if let Some(l) = &self.labels {
            LabelSelector::parse(l).map_err(|e| ApiError::bad_request(format!("labels: {e}")))?;
        }
        Ok(())
    }

    fn matches(&self, ns: &str, name: &str, obj: &Value) -> bool {
        opt_matches(&self.namespace, ns)
            && opt_matches(&self.name, name)
            && self
                .labels
                .as_deref()
                .is_none_or(|l| LabelSelector::parse(l).is_ok_and(|s| s.matches(obj)))
    }
}

/// What a workload's attempt does, resolved from the rules and knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Whether attempt number `n` (0-based) fails: `n < failing`.
    pub failing: u32,
    /// Termination message.
    pub message: Option<String>,
    /// Exit code of failing attempts.
    pub exit_code: i32,
    /// How long an attempt runs.
    pub duration: Duration,
}

/// Simulated metrics for autoscalers: the average utilization (percent of the pods' requests)
/// matching HorizontalPodAutoscalers observe. Without a rule, every metric sits at its target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricRule {
    /// Only autoscalers in this namespace (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only autoscalers with a matching name (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The observed utilization, in percent.
    pub utilization: u32,
}

impl Control {
    /// Adds a rule for Job outcomes; answers its identifier.
    pub fn add_outcome(&self, rule: OutcomeRule) -> Result<u64, ApiError> {
        rule.check()?;
        Ok(lock(&self.outcomes).add(rule))
    }

    /// Removes every outcome rule (pods succeed again).
    pub fn clear_outcomes(&self) {
        lock(&self.outcomes).items.clear();
    }

    /// The outcome rules with their identifiers.
    pub fn outcomes(&self) -> Vec<(u64, OutcomeRule)> {
        lock(&self.outcomes).items.clone()
    }

    /// How an attempt of the workload named `name` in `ns` (with `obj`'s labels) ends.
    pub fn resolve_outcome(&self, ns: &str, name: &str, obj: &Value) -> Resolved {
        let knobs = self.knobs();
        let rules = lock(&self.outcomes);
        let rule = rules
            .items
            .iter()
            .rev()
            .map(|(_, r)| r)
            .find(|r| r.matches(ns, name, obj));
        match rule {
            None => Resolved {
                failing: 0,
                message: None,
                exit_code: 1,
                duration: knobs.job_duration,
            },
            Some(r) => Resolved {
                failing: match r.outcome {
                    Outcome::Failed => u32::MAX,
                    Outcome::Succeeded => r.failed_attempts.unwrap_or(0),
                },
                message: r.message.clone(),
                exit_code: r.exit_code.filter(|c| *c != 0).unwrap_or(1),
                duration: r
                    .duration_ms
                    .map(Duration::from_millis)
                    .unwrap_or(knobs.job_duration),
            },
        }
    }

    /// Sets the utilization matching autoscalers observe; answers the rule's identifier.
    pub fn add_metric(&self, rule: MetricRule) -> u64 {
        lock(&self.metrics).add(rule)
    }

    /// Removes every metric rule (metrics sit at their targets again).
    pub fn clear_metrics(&self) {
        lock(&self.metrics).items.clear();
    }

    /// The utilization an autoscaler observes, if a rule sets one.
    pub fn utilization_for(&self, ns: &str, name: &str) -> Option<u32> {
        lock(&self.metrics)
            .items
            .iter()
            .rev()
            .find(|(_, r)| opt_matches(&r.namespace, ns) && opt_matches(&r.name, name))
            .map(|(_, r)| r.utilization)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::control::Knobs;

    fn control() -> std::sync::Arc<Control> {
        Control::new(Knobs::default(), vec![], Box::new(|| {}))
    }

    #[test]
    fn outcomes_latest_rule_wins() {
        let c = control();
        let job = json!({"metadata": {"labels": {"team": "a"}}});
        assert_eq!(c.resolve_outcome("ns", "x", &job).failing, 0);
        c.add_outcome(OutcomeRule::fail("boom").name("mig*"))
            .unwrap();
        c.add_outcome(OutcomeRule::succeed("ok").labels("team=a"))
            .unwrap();
        assert_eq!(c.resolve_outcome("ns", "migrate", &job).failing, 0);
        let other = json!({"metadata": {"labels": {"team": "b"}}});
        let r = c.resolve_outcome("ns", "migrate", &other);
        assert_eq!((r.failing, r.message.as_deref()), (u32::MAX, Some("boom")));
        assert!(
            c.add_outcome(OutcomeRule::fail("x").labels("a in ("))
                .is_err()
        );
    }
}
