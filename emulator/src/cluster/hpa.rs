//! The HorizontalPodAutoscaler controller, after Kubernetes' `pkg/controller/podautoscaler`:
//! reads the target's `/scale`, keeps its replicas within min/max, computes a proposal from
//! simulated metrics (at target unless the control API sets a utilization), stabilizes scale
//! downs, writes the target's `/scale` as `kube-controller-manager` (so the autoscaler, not
//! the target's author, owns `spec.replicas` in managedFields, as in a real cluster), and
//! reports status with the `AbleToScale`, `ScalingActive` and `ScalingLimited` conditions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::events::Source;
use super::{Controller, Ctx, KCM, Key, Reconciler, deleting, gr, int_at, key_of, str_at};
use crate::api::{Sub, now};
use crate::error::ApiError;
use crate::store::{Event, EventType};

const SOURCE: Source = Source {
    component: "horizontal-pod-autoscaler",
    manager: KCM,
    host: None,
};

/// kube-controller-manager's `--horizontal-pod-autoscaler-tolerance`.
const TOLERANCE: f64 = 0.1;

pub(crate) struct Autoscalers {
    ctx: Arc<Ctx>,
    /// Recent recommendations per autoscaler uid, for scale-down stabilization.
    recommendations: Mutex<HashMap<String, Vec<(Instant, i64)>>>,
}

impl Autoscalers {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Autoscalers {
            ctx,
            recommendations: Mutex::new(HashMap::new()),
        }
    }
}

/// Sets an autoscaler condition as Kubernetes' `setConditionInList` does: the transition
/// time changes only with the status; reason and message always follow.
fn set_condition(conds: &mut Vec<Value>, type_: &str, status: &str, reason: &str, message: &str) {
    let ts = now();
    match conds
        .iter_mut()
        .find(|c| c.get("type") == Some(&json!(type_)))
    {
        Some(c) => {
            if c.get("status") != Some(&json!(status)) {
                c["lastTransitionTime"] = json!(ts);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => conds.push(
            json!({"type": type_, "status": status, "lastTransitionTime": ts,
            "reason": reason, "message": message}),
        ),
    }
}

/// Whether the autoscaler's last status already reported this `AbleToScale` failure.
fn was_failing(status: &Value, reason: &str) -> bool {
    status
        .get("conditions")
        .and_then(|c| super::condition(c, "AbleToScale"))
        .is_some_and(|c| c.get("reason") == Some(&json!(reason)))
}

/// A quantity's number and suffix, e.g. `("250", "m")`.
fn split_quantity(q: &str) -> Option<(f64, &str)> {
    let end = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(q.len());
    Some((q[..end].parse().ok()?, &q[end..]))
}

/// A quantity scaled by a ratio, keeping its suffix.
fn scale_quantity(q: &Value, ratio: f64) -> Value {
    let text = match q {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match split_quantity(&text) {
        Some((n, suffix)) => {
            let v = n * ratio;
            let v = if (v - v.round()).abs() < 1e-9 {
                format!("{}", v.round() as i64)
            } else {
                // Finer units keep the value an integer, as Kubernetes prints quantities.
                if suffix.is_empty() {
                    return json!(format!("{}m", (v * 1000.0).round() as i64));
                }
                format!("{}", v.round() as i64)
            };
            json!(format!("{v}{suffix}"))
        }
        None => q.clone(),
    }
}

/// One metric's proposal: replicas, the metric's name in condition messages, its status.
fn metric_proposal(
    spec: &Value,
    current: i64,
    utilization: Option<u32>,
) -> Option<(i64, String, Value)> {
    let kind = str_at(spec, "/type");
    let proposal = |ratio: f64| {
        if (1.0 - ratio).abs() <= TOLERANCE {
            current
        } else {
            (ratio * current as f64).ceil() as i64
        }
    };
    let source_key = match kind {
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        "Pods" => "pods",
        "Object" => "object",
        "External" => "external",
        _ => return None,
    };
    let src = spec.get(source_key)?;
    let target = src.get("target")?;
    let target_type = str_at(target, "/type");
    let mut status_src = json!({});
    if let Some(m) = src.get("metric") {
        status_src["metric"] = m.clone();
    }
    if let Some(n) = src.get("name") {
        status_src["name"] = n.clone();
    }
    if let Some(c) = src.get("container") {
        status_src["container"] = c.clone();
    }
    if let Some(o) = src.get("describedObject") {
        status_src["describedObject"] = o.clone();
    }
    let (ratio, current_value, name) = match target_type {
        "Utilization" => {
            let t = int_at(target, "/averageUtilization").unwrap_or(80).max(1);
            let u = utilization.map(i64::from).unwrap_or(t);
            let name = format!(
                "{} {}resource utilization (percentage of request)",
                str_at(src, "/name"),
                if kind == "ContainerResource" {
                    "container "
                } else {
                    ""
                }
            );
            (u as f64 / t as f64, json!({"averageUtilization": u}), name)
        }
        "AverageValue" | "Value" => {
            let field = if target_type == "AverageValue" {
                "averageValue"
            } else {
                "value"
            };
            let ratio = utilization.map(|u| f64::from(u) / 100.0).unwrap_or(1.0);
            let v = target.get(field).cloned().unwrap_or(json!("0"));
            let name = match kind {
                "Resource" => format!("{} resource", str_at(src, "/name")),
                "ContainerResource" => format!("{} container resource", str_at(src, "/name")),
                "Pods" => format!("pods metric {}", str_at(src, "/metric/name")),
                "Object" => format!(
                    "{} metric {}",
                    str_at(src, "/describedObject/kind"),
                    str_at(src, "/metric/name")
                ),
                _ => format!("external metric {}", str_at(src, "/metric/name")),
            };
            let mut cur = json!({});
            cur[field] = scale_quantity(&v, ratio);
            (ratio, cur, name)
        }
        _ => return None,
    };
    status_src["current"] = current_value;
    let mut status = json!({"type": kind});
    status[source_key] = status_src;
    Some((proposal(ratio), name, status))
}

impl Reconciler for Autoscalers {
    fn controller(&self) -> Controller {
        Controller::HorizontalPodAutoscaler
    }

    fn keys(&self, e: &Event, out: &mut Vec<Key>) {
        if e.storage == gr("autoscaling", "horizontalpodautoscalers") {
            if e.kind == EventType::Deleted {
                let uid = str_at(&e.object, "/metadata/uid");
                self.recommendations
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(uid);
            } else {
                out.push(key_of(&e.object));
            }
        }
    }

    fn all_keys(&self) -> Vec<Key> {
        self.ctx
            .list(&gr("autoscaling", "horizontalpodautoscalers"), None)
            .iter()
            .map(|h| key_of(h))
            .collect()
    }

    fn reconcile(&self, key: &Key) -> Result<Option<Duration>, ApiError> {
        let Some(hpa) = self.ctx.get(
            &gr("autoscaling", "horizontalpodautoscalers"),
            &key.0,
            &key.1,
        ) else {
            return Ok(None);
        };
        let hpa = (*hpa).clone();
        if deleting(&hpa) {
            return Ok(None);
        }
        let knobs = self.ctx.control.knobs();
        let period = Some(knobs.hpa_sync_period);
        let uid = str_at(&hpa, "/metadata/uid").to_string();
        let old_status = hpa.get("status").cloned().unwrap_or(json!({}));
        let mut conds: Vec<Value> = old_status
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let target_ref = hpa
            .pointer("/spec/scaleTargetRef")
            .cloned()
            .unwrap_or(json!({}));
        let (api_version, kind, name) = (
            str_at(&target_ref, "/apiVersion"),
            str_at(&target_ref, "/kind"),
            str_at(&target_ref, "/name"),
        );
        let reference = format!("{kind}/{}/{name}", key.0);
        let rt = self
            .ctx
            .api
            .registry()
            .by_kind(api_version, kind)
            .filter(|rt| rt.scale.is_some());
        let scale = rt
            .as_ref()
            .ok_or_else(|| {
                ApiError::not_found("", "scale", name).tap_message(format!(
                    "no scale subresource for {api_version}, Kind={kind}"
                ))
            })
            .and_then(|rt| self.ctx.api.get_scale(rt, &key.0, name));
        let write = |conds: Vec<Value>, status: Value| -> Result<(), ApiError> {
            let mut status = status;
            status["conditions"] = Value::Array(conds);
            if hpa.get("status") == Some(&status) {
                return Ok(());
            }
            let rt = self
                .ctx
                .rt("autoscaling", "v2", "horizontalpodautoscalers")?;
            let mut h = hpa.clone();
            h["status"] = status;
            self.ctx.update(&rt, Sub::Status, h, KCM).map(|_| ())
        };
        let (rt, scale) = match (rt, scale) {
            (Some(rt), Ok(s)) => (rt, s),
            (_, Err(e)) => {
                let msg = format!(
                    "the HPA controller was unable to get the target's current scale: {}",
                    e.message
                );
                // Kubernetes aggregates repeated events into one with a count; recording only
                // the first of a run keeps the store from filling up meanwhile.
                if !was_failing(&old_status, "FailedGetScale") {
                    self.ctx
                        .recorder
                        .warning(SOURCE, &hpa, "FailedGetScale", &e.message);
                }
                set_condition(&mut conds, "AbleToScale", "False", "FailedGetScale", &msg);
                let mut status = old_status.clone();
                if status.get("desiredReplicas").is_none() {
                    status["desiredReplicas"] = json!(0);
                }
                write(conds, status)?;
                return Ok(period);
            }
            (None, Ok(_)) => return Ok(period),
        };
        set_condition(
            &mut conds,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        );
        let current = int_at(&scale, "/spec/replicas").unwrap_or(0);
        let min = int_at(&hpa, "/spec/minReplicas").unwrap_or(1);
        let max = int_at(&hpa, "/spec/maxReplicas").unwrap_or(min.max(1));
        let mut metric_statuses = Vec::new();
        let mut rescale = true;
        let mut reason = String::new();
        let desired;
        if current == 0 && min != 0 {
            desired = 0;
            rescale = false;
            set_condition(
                &mut conds,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            );
        } else if current > max {
            reason = "Current number of replicas above Spec.MaxReplicas".into();
            desired = max;
        } else if current < min {
            reason = "Current number of replicas below Spec.MinReplicas".into();
            desired = min;
        } else {
            let utilization = self.ctx.control.utilization_for(&key.0, &key.1);
            let metrics = hpa
                .pointer("/spec/metrics")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut proposal = 0;
            let mut metric_name = String::new();
            for m in &metrics {
                if let Some((p, n, s)) = metric_proposal(m, current, utilization) {
                    if p > proposal || metric_name.is_empty() {
                        proposal = p.max(proposal);
                        metric_name = n;
                    }
                    metric_statuses.push(s);
                }
            }
            if metric_name.is_empty() {
                proposal = current;
                metric_name = "no metrics".into();
            }
            set_condition(
                &mut conds,
                "ScalingActive",
                "True",
                "ValidMetricFound",
                &format!(
                    "the HPA was able to successfully calculate a replica count from {metric_name}"
                ),
            );
            if proposal > current {
                reason = format!("{metric_name} above target");
            } else if proposal < current {
                reason = "All metrics below target".into();
            }
            // Scale-down stabilization: the highest recommendation of the window wins.
            let window = knobs.hpa_downscale_stabilization;
            let stabilized = {
                let mut recs = self
                    .recommendations
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let list = recs
                    .entry(uid.clone())
                    .or_insert_with(|| vec![(Instant::now(), current)]);
                list.retain(|(t, _)| t.elapsed() <= window);
                let best = list.iter().map(|(_, r)| *r).fold(proposal, i64::max);
                list.push((Instant::now(), proposal));
                best
            };
            if stabilized != proposal {
                set_condition(
                    &mut conds,
                    "AbleToScale",
                    "True",
                    "ScaleDownStabilized",
                    "recent recommendations were higher than current one, applying the highest recent recommendation",
                );
            } else {
                set_condition(
                    &mut conds,
                    "AbleToScale",
                    "True",
                    "ReadyForNewScale",
                    "recommended size matches current size",
                );
            }
            // convertDesiredReplicasWithRules
            let scale_up_limit = ((2 * current) as f64).max(4.0) as i64;
            let (max_allowed, limit_reason, limit_msg) = if max > scale_up_limit {
                (
                    scale_up_limit,
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                )
            } else {
                (
                    max,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            };
            let (d, r, m) = if stabilized < min {
                (
                    min,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )
            } else if stabilized > max_allowed {
                (max_allowed, limit_reason, limit_msg)
            } else {
                (
                    stabilized,
                    "DesiredWithinRange",
                    "the desired count is within the acceptable range",
                )
            };
            let limited = if d == stabilized { "False" } else { "True" };
            set_condition(&mut conds, "ScalingLimited", limited, r, m);
            desired = d;
            rescale = desired != current;
        }
        let mut last_scale = old_status.get("lastScaleTime").cloned();
        let mut desired = desired;
        if rescale {
            let mut s = scale.clone();
            s["spec"]["replicas"] = json!(desired);
            match self.ctx.update(&rt, Sub::Scale, s, KCM) {
                Ok(_) => {
                    set_condition(
                        &mut conds,
                        "AbleToScale",
                        "True",
                        "SucceededRescale",
                        &format!(
                            "the HPA controller was able to update the target scale to {desired}"
                        ),
                    );
                    self.ctx.recorder.normal(
                        SOURCE,
                        &hpa,
                        "SuccessfulRescale",
                        &format!("New size: {desired}; reason: {reason}"),
                    );
                    tracing::debug!(hpa = %key.1, target = %reference, from = current, to = desired, "autoscaler rescaled");
                    last_scale = Some(json!(now()));
                }
                Err(e) => {
                    if !was_failing(&old_status, "FailedUpdateScale") {
                        self.ctx.recorder.warning(
                            SOURCE,
                            &hpa,
                            "FailedRescale",
                            &format!(
                                "New size: {desired}; reason: {reason}; error: {}",
                                e.message
                            ),
                        );
                    }
                    set_condition(
                        &mut conds,
                        "AbleToScale",
                        "False",
                        "FailedUpdateScale",
                        &format!(
                            "the HPA controller was unable to update the target scale: {}",
                            e.message
                        ),
                    );
                    desired = int_at(&old_status, "/desiredReplicas").unwrap_or(current);
                }
            }
        }
        let mut status = json!({"currentReplicas": current, "desiredReplicas": desired});
        super::omit_zero(&mut status, &["currentReplicas"]);
        if let Some(t) = last_scale {
            status["lastScaleTime"] = t;
        }
        if !metric_statuses.is_empty() {
            status["currentMetrics"] = Value::Array(metric_statuses);
        }
        write(conds, status)?;
        Ok(period)
    }
}

trait TapMessage {
    fn tap_message(self, m: String) -> Self;
}

impl TapMessage for ApiError {
    fn tap_message(mut self, m: String) -> Self {
        self.message = m;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilization_proposals_follow_the_ratio_with_tolerance() {
        let cpu = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}});
        assert_eq!(metric_proposal(&cpu, 2, None).unwrap().0, 2);
        assert_eq!(
            metric_proposal(&cpu, 2, Some(52)).unwrap().0,
            2,
            "within tolerance"
        );
        assert_eq!(metric_proposal(&cpu, 2, Some(100)).unwrap().0, 4);
        assert_eq!(metric_proposal(&cpu, 4, Some(10)).unwrap().0, 1);
        let (_, name, status) = metric_proposal(&cpu, 2, Some(100)).unwrap();
        assert_eq!(name, "cpu resource utilization (percentage of request)");
        assert_eq!(status["resource"]["current"]["averageUtilization"], 100);
    }

    #[test]
    fn quantities_scale_keeping_units() {
        assert_eq!(scale_quantity(&json!("100m"), 2.0), json!("200m"));
        assert_eq!(scale_quantity(&json!("1Gi"), 1.0), json!("1Gi"));
        assert_eq!(scale_quantity(&json!("1"), 0.5), json!("500m"));
    }
}
