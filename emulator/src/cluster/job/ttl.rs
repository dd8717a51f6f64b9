//! The TTL-after-finished controller: finished Jobs deleted once their TTL passes.

use std::time::Duration;

use serde_json::{Value, json};

use super::Jobs;
use crate::cluster::{condition, int_at, is_true, seconds_since, str_at};
use crate::error::ApiError;

impl Jobs {
    /// The TTL-after-finished controller: deletes a finished Job `ttlSecondsAfterFinished`
    /// after it finished; answers when to look again.
    pub(super) fn ttl(&self, job: &Value) -> Result<Option<Duration>, ApiError> {
        if !self.ttl {
            return Ok(None);
        }
        let Some(ttl) = int_at(job, "/spec/ttlSecondsAfterFinished") else {
            return Ok(None);
        };
        let conds = job
            .pointer("/status/conditions")
            .cloned()
            .unwrap_or(json!([]));
        let finished_at = ["Complete", "Failed"]
            .iter()
            .filter(|t| is_true(&conds, t))
            .find_map(|t| {
                condition(&conds, t).map(|c| str_at(c, "/lastTransitionTime").to_string())
            });
        let Some(at) = finished_at else {
            return Ok(None);
        };
        let left = ttl as f64 - seconds_since(&at);
        if left > 0.0 {
            return Ok(Some(Duration::from_secs_f64(left + 0.05)));
        }
        let rt = self.ctx.rt("batch", "v1", "jobs")?;
        tracing::debug!(
            target: "emulator::cluster::job",
            job = str_at(job, "/metadata/name"),
            "deleting a finished Job after its TTL"
        );
        // The TTL-after-finished controller deletes with foreground propagation.
        self.ctx.delete(
            &rt,
            str_at(job, "/metadata/namespace"),
            str_at(job, "/metadata/name"),
            "Foreground",
        )?;
        Ok(None)
    }
}
