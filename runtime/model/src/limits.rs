//! Per-invocation resource limits a plugin runs under.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Limits applied to one invocation of a plugin. Every field has a safe
/// default; templates and admins may tighten or relax them per plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InvocationLimits {
    /// Wall-clock limit from the start of the invocation.
    #[serde(with = "duration_ms", rename = "timeoutMs")]
    pub timeout: Duration,
    /// Time the plugin may spend executing WebAssembly (not waiting on I/O
    /// or timers), measured in epoch ticks.
    #[serde(with = "duration_ms", rename = "cpuTimeMs")]
    pub cpu_time: Duration,
    /// Largest linear memory the plugin may grow to, in bytes.
    pub max_memory_bytes: u64,
    /// Largest output (JSON bytes) the plugin may return.
    pub max_output_bytes: u64,
    /// Log lines the plugin may write; one more fails the invocation.
    pub max_log_lines: u32,
    /// Total log bytes the plugin may write; more fails the invocation.
    pub max_log_bytes: u64,
    /// Total artifact bytes the plugin may emit.
    pub max_artifact_bytes: u64,
    /// Artifacts the plugin may emit; one more fails the invocation.
    /// Each artifact is stored and listed on its own, so many tiny ones
    /// cost the server far more than their bytes.
    pub max_artifacts: u32,
    /// How long a cancelled plugin may take to return on its own before
    /// it is stopped.
    #[serde(with = "duration_ms", rename = "cancelGraceMs")]
    pub cancel_grace: Duration,
}

impl Default for InvocationLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            cpu_time: Duration::from_secs(300),
            max_memory_bytes: 256 << 20,
            max_output_bytes: 4 << 20,
            max_log_lines: 10_000,
            max_log_bytes: 4 << 20,
            max_artifact_bytes: 64 << 20,
            max_artifacts: 1000,
            cancel_grace: Duration::from_secs(1),
        }
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_serialize_durations_as_milliseconds() {
        let limits = InvocationLimits {
            timeout: Duration::from_millis(1500),
            ..Default::default()
        };
        let json = serde_json::to_value(&limits).unwrap_or_default();
        assert_eq!(json["timeoutMs"], 1500);
        let back: InvocationLimits =
            serde_json::from_value(serde_json::json!({"timeoutMs": 20})).unwrap_or_default();
        assert_eq!(back.timeout, Duration::from_millis(20));
        assert_eq!(
            back.max_log_lines,
            InvocationLimits::default().max_log_lines
        );
        assert_eq!(json["maxArtifacts"], 1000);
        let back: InvocationLimits =
            serde_json::from_value(serde_json::json!({"maxArtifacts": 3})).unwrap_or_default();
        assert_eq!(back.max_artifacts, 3);
    }
}
