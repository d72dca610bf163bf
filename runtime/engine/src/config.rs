//! Engine settings and the bounds the engine applies to callers' values.

use crate::ExpressionSettings;
use crate::secret_box::SecretKey;
use std::collections::BTreeMap;
use std::time::Duration;
use weft_model::template::TemplateLimits;
use weft_model::{InvocationLimits, JsonLimits};

/// Stack size for the threads of a runtime that drives the engine: enough
/// for host-side expression evaluation at its nesting limit in release
/// builds, so it runs in place instead of on a fresh segment.
pub const WORKER_STACK_BYTES: usize = 8 << 20;

/// Bounds on values callers hand the engine (run inputs, answers): what
/// passes is stored with the run and must read back.
pub(crate) const VALUE_LIMITS: JsonLimits = JsonLimits::bytes(4 << 20);

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Step invocations running at once across all runs.
    pub max_concurrent_steps: usize,
    /// Limits for step invocations (a step's `timeout` overrides the timeout).
    pub step_limits: InvocationLimits,
    /// Secrets available to expressions (`secrets.x`) and to plugins granted them.
    pub secrets: BTreeMap<String, String>,
    /// Memory for records of finished runs served without a store read
    /// (estimated bytes; 0 turns the cache off).
    pub finished_run_cache_bytes: u64,
    /// Budgets for the expressions the host evaluates.
    pub expressions: ExpressionSettings,
    /// How large a template may be (steps, `needs`, attempts).
    pub templates: TemplateLimits,
    /// The shortest wait before a retry, whatever a template asks for: a
    /// step with a huge `maxAttempts` and no backoff cannot storm.
    pub min_retry_backoff: Duration,
    /// Seals connection secrets at rest. The server reads it from its
    /// settings or key file; the default is a fresh key per process.
    pub secret_key: SecretKey,
    /// Limits for a sync step's connectors, each side on its own (a
    /// step's `timeout` overrides the wall clock and CPU time).
    pub sync_limits: InvocationLimits,
    /// Least time between two destination commits of a sync.
    pub sync_commit_interval: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_concurrent_steps: 256,
            step_limits: InvocationLimits::default(),
            secrets: BTreeMap::new(),
            finished_run_cache_bytes: 32 * 1024 * 1024,
            expressions: ExpressionSettings::default(),
            templates: TemplateLimits::default(),
            min_retry_backoff: Duration::from_millis(100),
            secret_key: SecretKey::generate(),
            sync_limits: InvocationLimits {
                timeout: Duration::from_secs(24 * 3600),
                cpu_time: Duration::from_secs(24 * 3600),
                ..InvocationLimits::default()
            },
            sync_commit_interval: Duration::from_secs(1),
        }
    }
}
