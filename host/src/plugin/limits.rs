//! Per-call limits of a plugin, and the store limiter that enforces memory.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one plugin call may use. Defaults suit the built-in plugins with a wide margin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one call, enforced by epoch interruption.
    pub timeout: Duration,
    /// Linear memory the plugin may grow to, in bytes.
    pub memory_bytes: usize,
    /// Total bytes of objects, conditions and status one call may return.
    pub max_output_bytes: usize,
    /// Number of objects one call may return.
    pub max_objects: usize,
    /// Log lines written per call; further lines are counted, not written.
    pub max_log_lines: u32,
    /// WebAssembly stack of a call, in bytes.
    pub stack_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(1),
            memory_bytes: 64 << 20,
            max_output_bytes: 4 << 20,
            max_objects: 256,
            max_log_lines: 64,
            stack_bytes: 512 << 10,
        }
    }
}

/// Limits as a plugin's registration may override them; unset fields keep the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsOverride {
    /// Wall-clock budget of one call, in milliseconds (1 to 60 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Memory cap in MiB (1 to the runtime's maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Output cap in KiB (1 to 65 536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_kib: Option<u64>,
    /// Object cap (1 to 10 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_objects: Option<u64>,
    /// Log lines per call (0 to 10 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_log_lines: Option<u64>,
    /// WebAssembly stack in KiB (64 to the runtime's maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_kib: Option<u64>,
}

/// A limit outside what the runtime accepts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("limit {field} = {value} is out of range ({min} to {max})")]
pub struct LimitsError {
    /// The offending field, as spelled in the registration.
    pub field: &'static str,
    /// What was asked.
    pub value: u64,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
}

fn in_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<u64, LimitsError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(LimitsError {
            field,
            value,
            min,
            max,
        })
    }
}

impl Limits {
    /// These limits with `overrides` applied, within the runtime's ceilings.
    pub fn with(
        &self,
        overrides: &LimitsOverride,
        max_memory_bytes: usize,
        max_stack_bytes: usize,
    ) -> Result<Limits, LimitsError> {
        let mut limits = self.clone();
        if let Some(ms) = overrides.timeout_ms {
            limits.timeout = Duration::from_millis(in_range("timeoutMs", ms, 1, 60_000)?);
        }
        if let Some(mib) = overrides.memory_mib {
            let max_mib = (max_memory_bytes >> 20) as u64;
            limits.memory_bytes = (in_range("memoryMib", mib, 1, max_mib)? as usize) << 20;
        }
        if let Some(kib) = overrides.max_output_kib {
            limits.max_output_bytes = (in_range("maxOutputKib", kib, 1, 65_536)? as usize) << 10;
        }
        if let Some(count) = overrides.max_objects {
            limits.max_objects = in_range("maxObjects", count, 1, 10_000)? as usize;
        }
        if let Some(lines) = overrides.max_log_lines {
            limits.max_log_lines = in_range("maxLogLines", lines, 0, 10_000)? as u32;
        }
        if let Some(kib) = overrides.stack_kib {
            let max_kib = (max_stack_bytes >> 10) as u64;
            limits.stack_bytes = (in_range("stackKib", kib, 64, max_kib)? as usize) << 10;
        }
        Ok(limits)
    }
}

/// Enforces the memory cap of one call and remembers whether the plugin hit it,
/// so that the trap that follows (a Rust guest aborts when allocation fails)
/// is reported as out of memory rather than as a bare trap.
pub(crate) struct CallLimiter {
    memory_bytes: usize,
    pub(crate) memory_exhausted: bool,
}

impl CallLimiter {
    pub(crate) fn new(memory_bytes: usize) -> Self {
        CallLimiter {
            memory_bytes,
            memory_exhausted: false,
        }
    }
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exhausted = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; no honest plugin needs many.
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn overrides_apply_within_range() {
        let overrides = LimitsOverride {
            timeout_ms: Some(250),
            memory_mib: Some(16),
            max_output_kib: Some(8),
            max_objects: Some(3),
            max_log_lines: Some(0),
            stack_kib: Some(128),
        };
        let limits = Limits::default()
            .with(&overrides, 256 << 20, 1 << 20)
            .unwrap();
        assert_eq!(limits.timeout, Duration::from_millis(250));
        assert_eq!(limits.memory_bytes, 16 << 20);
        assert_eq!(limits.max_output_bytes, 8 << 10);
        assert_eq!(limits.max_objects, 3);
        assert_eq!(limits.max_log_lines, 0);
        assert_eq!(limits.stack_bytes, 128 << 10);
    }

    #[test]
    fn unset_overrides_keep_defaults() {
        let limits = Limits::default()
            .with(&LimitsOverride::default(), 256 << 20, 1 << 20)
            .unwrap();
        assert_eq!(limits, Limits::default());
    }

    #[test]
    fn out_of_range_overrides_are_refused() {
        let too_much_memory = LimitsOverride {
            memory_mib: Some(512),
            ..Default::default()
        };
        let error = Limits::default()
            .with(&too_much_memory, 256 << 20, 1 << 20)
            .unwrap_err();
        assert_eq!(error.field, "memoryMib");
        assert_eq!(error.max, 256);

        let zero_timeout = LimitsOverride {
            timeout_ms: Some(0),
            ..Default::default()
        };
        assert_eq!(
            Limits::default()
                .with(&zero_timeout, 256 << 20, 1 << 20)
                .unwrap_err()
                .field,
            "timeoutMs"
        );

        let deep_stack = LimitsOverride {
            stack_kib: Some(4096),
            ..Default::default()
        };
        let error = Limits::default()
            .with(&deep_stack, 256 << 20, 1 << 20)
            .unwrap_err();
        assert_eq!((error.field, error.max), ("stackKib", 1024));
    }

    #[test]
    fn overrides_reject_unknown_fields() {
        let parsed: Result<LimitsOverride, _> = serde_json::from_str(r#"{"timeoutMillis": 5}"#);
        assert!(parsed.is_err());
    }

    #[test]
    fn limiter_refuses_growth_past_the_cap_and_remembers() {
        let mut limiter = CallLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!limiter.memory_exhausted);
        assert!(!limiter.memory_growing(1 << 20, 2 << 20, None).unwrap());
        assert!(limiter.memory_exhausted);
    }
}
