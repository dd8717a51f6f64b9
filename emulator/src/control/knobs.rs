//! Knobs: the timings and behaviour of the simulated cluster that tests change at run time.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Control;

/// Timings and behaviour of the simulated cluster that tests may change at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    /// From a pod being scheduled to its containers running and ready (Kubernetes: image
    /// pulls and container starts, seconds).
    pub pod_start_delay: Duration,
    /// How long a pod of a Job (or a bare pod that runs to completion) runs before it ends.
    pub job_duration: Duration,
    /// The first delay before a Job replaces a failed pod; it doubles per failure, capped at
    /// 36 times this (Kubernetes: 10 s, capped at 6 min).
    pub job_backoff: Duration,
    /// How often each HorizontalPodAutoscaler is reconciled (Kubernetes: 15 s).
    pub hpa_sync_period: Duration,
    /// How long an autoscaler remembers higher recommendations before scaling down
    /// (Kubernetes: 5 min).
    pub hpa_downscale_stabilization: Duration,
    /// Images whose name contains one of these never become ready: their pull fails with
    /// `ImagePullBackOff`, so Deployments using them exceed their progress deadline.
    pub never_ready_markers: Vec<String>,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            pod_start_delay: Duration::from_millis(500),
            job_duration: Duration::from_secs(1),
            job_backoff: Duration::from_secs(1),
            hpa_sync_period: Duration::from_secs(1),
            hpa_downscale_stabilization: Duration::from_secs(300),
            // `.invalid` is a reserved top-level domain: such images never pull in a real
            // cluster either, so tests using them behave the same on both.
            never_ready_markers: vec![".invalid/".to_string()],
        }
    }
}

/// [`Knobs`] as the HTTP control API shows and changes them (durations in milliseconds).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KnobsPatch {
    /// [`Knobs::pod_start_delay`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_start_delay_ms: Option<u64>,
    /// [`Knobs::job_duration`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_duration_ms: Option<u64>,
    /// [`Knobs::job_backoff`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_backoff_ms: Option<u64>,
    /// [`Knobs::hpa_sync_period`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_sync_period_ms: Option<u64>,
    /// [`Knobs::hpa_downscale_stabilization`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_downscale_stabilization_ms: Option<u64>,
    /// [`Knobs::never_ready_markers`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_ready_markers: Option<Vec<String>>,
}

impl Knobs {
    /// The knobs as the HTTP control API shows them.
    pub(super) fn to_patch(&self) -> KnobsPatch {
        let ms = |d: Duration| Some(d.as_millis() as u64);
        KnobsPatch {
            pod_start_delay_ms: ms(self.pod_start_delay),
            job_duration_ms: ms(self.job_duration),
            job_backoff_ms: ms(self.job_backoff),
            hpa_sync_period_ms: ms(self.hpa_sync_period),
            hpa_downscale_stabilization_ms: ms(self.hpa_downscale_stabilization),
            never_ready_markers: Some(self.never_ready_markers.clone()),
        }
    }

    /// Changes the knobs a patch sets.
    pub(super) fn apply(&mut self, p: &KnobsPatch) {
        let ms = Duration::from_millis;
        if let Some(v) = p.pod_start_delay_ms {
            self.pod_start_delay = ms(v);
        }
        if let Some(v) = p.job_duration_ms {
            self.job_duration = ms(v);
        }
        if let Some(v) = p.job_backoff_ms {
            self.job_backoff = ms(v);
        }
        if let Some(v) = p.hpa_sync_period_ms {
            // A zero period would spin; Kubernetes refuses it too.
            self.hpa_sync_period = ms(v.max(1));
        }
        if let Some(v) = p.hpa_downscale_stabilization_ms {
            self.hpa_downscale_stabilization = ms(v);
        }
        if let Some(v) = &p.never_ready_markers {
            self.never_ready_markers = v.iter().filter(|m| !m.is_empty()).cloned().collect();
        }
    }
}

impl Control {
    /// The current knobs.
    pub fn knobs(&self) -> Knobs {
        self.knobs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes knobs at run time.
    pub fn update_knobs(&self, f: impl FnOnce(&mut Knobs)) {
        let mut k = self.knobs.write().unwrap_or_else(|p| p.into_inner());
        f(&mut k);
    }

    /// Whether pods with this image never become ready.
    pub fn never_ready(&self, image: &str) -> bool {
        self.knobs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .never_ready_markers
            .iter()
            .any(|m| image.contains(m.as_str()))
    }
}
