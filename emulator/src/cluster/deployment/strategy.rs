//! The rollout strategy: maxSurge and maxUnavailable resolved, rolling update steps, and
//! Recreate.

use serde_json::{Value, json};

use super::{Deployments, spec_replicas, status_count};
use crate::cluster::{int_at, str_at};
use crate::error::ApiError;

/// A percentage or an absolute number, resolved against `total` as Kubernetes'
/// `intstr.GetScaledValueFromIntOrPercent` does.
fn scaled(v: Option<&Value>, total: i64, round_up: bool, default: &str) -> i64 {
    let v = v.cloned().unwrap_or(json!(default));
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%') {
            Some(p) => {
                let x = p.parse::<f64>().unwrap_or(0.0) * total as f64 / 100.0;
                (if round_up { x.ceil() } else { x.floor() }) as i64
            }
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// The Deployment's desired replicas.
pub(super) fn replicas(d: &Value) -> i64 {
    int_at(d, "/spec/replicas").unwrap_or(1).max(0)
}

/// Whether the strategy is RollingUpdate (the default).
pub(super) fn rolling(d: &Value) -> bool {
    str_at(d, "/spec/strategy/type") != "Recreate"
}

/// (maxSurge, maxUnavailable) as numbers; both 0 for Recreate.
pub(super) fn surge_and_unavailable(d: &Value) -> (i64, i64) {
    if !rolling(d) {
        return (0, 0);
    }
    let n = replicas(d);
    let surge = scaled(
        d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
        n,
        true,
        "25%",
    );
    let mut unavailable = scaled(
        d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
        n,
        false,
        "25%",
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge.max(0), unavailable.clamp(0, n))
}

impl Deployments {
    /// A rolling update step: scale the new ReplicaSet up within the surge, old ones down
    /// within the unavailability budget.
    pub(super) fn roll(
        &self,
        d: &Value,
        new_rs: &mut Value,
        olds: &mut [Value],
    ) -> Result<(), ApiError> {
        let want = replicas(d);
        let (surge, unavailable) = surge_and_unavailable(d);
        // reconcileNewReplicaSet
        let new_spec = spec_replicas(new_rs);
        if new_spec > want {
            self.scale_rs(d, new_rs, want)?;
        } else if new_spec < want {
            let total: i64 = olds.iter().map(spec_replicas).sum::<i64>() + new_spec;
            let max_total = want + surge;
            if total < max_total {
                let up = (max_total - total).min(want - new_spec);
                self.scale_rs(d, new_rs, new_spec + up)?;
            }
        }
        // reconcileOldReplicaSets
        let old_total: i64 = olds.iter().map(spec_replicas).sum();
        if old_total == 0 {
            return Ok(());
        }
        olds.sort_by_key(|r| str_at(r, "/metadata/creationTimestamp").to_string());
        let all: i64 = old_total + spec_replicas(new_rs);
        let min_available = want - unavailable;
        let new_unavailable = spec_replicas(new_rs) - status_count(new_rs, "availableReplicas");
        let mut budget = all - min_available - new_unavailable;
        if budget <= 0 {
            return Ok(());
        }
        // Unhealthy old pods go first.
        for rs in olds.iter_mut() {
            if budget <= 0 {
                break;
            }
            let unhealthy = spec_replicas(rs) - status_count(rs, "availableReplicas");
            if unhealthy <= 0 {
                continue;
            }
            let down = budget.min(unhealthy);
            let to = spec_replicas(rs) - down;
            self.scale_rs(d, rs, to)?;
            budget -= down;
        }
        // Then healthy ones, as long as enough pods stay available.
        let available: i64 = olds
            .iter()
            .map(|r| status_count(r, "availableReplicas").min(spec_replicas(r)))
            .sum::<i64>()
            + status_count(new_rs, "availableReplicas");
        let mut down_total = available - min_available;
        for rs in olds.iter_mut() {
            if down_total <= 0 {
                break;
            }
            let n = spec_replicas(rs);
            if n == 0 {
                continue;
            }
            let down = n.min(down_total);
            self.scale_rs(d, rs, n - down)?;
            down_total -= down;
        }
        Ok(())
    }
    /// A Recreate step: old ReplicaSets to zero, and the new one up once their pods are gone.
    pub(super) fn recreate(
        &self,
        d: &Value,
        new_rs: &mut Value,
        olds: &mut [Value],
    ) -> Result<(), ApiError> {
        for rs in olds.iter_mut() {
            if spec_replicas(rs) > 0 {
                self.scale_rs(d, rs, 0)?;
            }
        }
        if olds.iter().any(|r| status_count(r, "replicas") > 0) {
            return Ok(());
        }
        self.scale_rs(d, new_rs, replicas(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surge_and_unavailability_resolve_like_kubernetes() {
        let d = |r: i64, s: Value, u: Value| {
            json!({"spec": {"replicas": r, "strategy": {"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": s, "maxUnavailable": u}}}})
        };
        assert_eq!(
            surge_and_unavailable(&d(1, json!("25%"), json!("25%"))),
            (1, 0)
        );
        assert_eq!(
            surge_and_unavailable(&d(10, json!("25%"), json!("25%"))),
            (3, 2)
        );
        assert_eq!(surge_and_unavailable(&d(3, json!(0), json!(0))), (0, 1));
        assert_eq!(
            surge_and_unavailable(
                &json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}})
            ),
            (0, 0)
        );
    }
}
