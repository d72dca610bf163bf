//! A step's retry policy: how many attempts, how long to wait between them,
//! and which failures are worth another attempt.

use super::duration::DurationSpec;
use crate::error::PluginErrorKind;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A class of failure a retry policy may retry: every [`PluginErrorKind`]
/// plus the failures the host imposes (`timeout`, `trap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// The plugin reported a configuration error.
    Config,
    /// The plugin reported missing or rejected credentials.
    Auth,
    /// The plugin reported a temporary failure.
    Transient,
    /// The plugin was asked to slow down.
    RateLimited,
    /// The plugin reported bad data.
    Data,
    /// The plugin reported a bug of its own.
    Internal,
    /// The host stopped the attempt: wall-clock or CPU limit.
    Timeout,
    /// The plugin trapped or broke the contract.
    Trap,
}

impl RetryOn {
    /// The name as written in templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Auth => "auth",
            Self::Transient => "transient",
            Self::RateLimited => "rate-limited",
            Self::Data => "data",
            Self::Internal => "internal",
            Self::Timeout => "timeout",
            Self::Trap => "trap",
        }
    }
}

impl fmt::Display for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<PluginErrorKind> for RetryOn {
    fn from(kind: PluginErrorKind) -> Self {
        match kind {
            PluginErrorKind::Config => Self::Config,
            PluginErrorKind::Auth => Self::Auth,
            PluginErrorKind::Transient => Self::Transient,
            PluginErrorKind::RateLimited => Self::RateLimited,
            PluginErrorKind::Data => Self::Data,
            PluginErrorKind::Internal => Self::Internal,
        }
    }
}

/// How the wait between attempts grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackoffKind {
    /// Always `initial`.
    Fixed,
    /// `initial`, doubling after every failed attempt, up to `max`.
    #[default]
    Exponential,
}

/// The wait between attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backoff {
    /// Fixed or exponential; exponential by default.
    #[serde(default)]
    pub kind: BackoffKind,
    /// The first wait; 1s by default.
    #[serde(default = "default_initial")]
    pub initial: DurationSpec,
    /// The longest wait; 60s by default.
    #[serde(default = "default_max")]
    pub max: DurationSpec,
    /// The fraction of each wait that is randomised away, in `0..=1`;
    /// 0.1 by default.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
}

fn default_initial() -> DurationSpec {
    DurationSpec::from_millis(1_000)
}

fn default_max() -> DurationSpec {
    DurationSpec::from_millis(60_000)
}

fn default_jitter() -> f64 {
    0.1
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            kind: BackoffKind::default(),
            initial: default_initial(),
            max: default_max(),
            jitter: default_jitter(),
        }
    }
}

/// A step's retry policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included: 1 (the default) never retries.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The wait between attempts.
    #[serde(default)]
    pub backoff: Backoff,
    /// Which failures are retried; `transient`, `rate-limited` and `timeout`
    /// by default.
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<RetryOn>,
}

fn default_max_attempts() -> u32 {
    1
}

fn default_retry_on() -> Vec<RetryOn> {
    vec![RetryOn::Transient, RetryOn::RateLimited, RetryOn::Timeout]
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            backoff: Backoff::default(),
            retry_on: default_retry_on(),
        }
    }
}

impl RetryPolicy {
    /// Whether failures of class `kind` are retried at all.
    pub fn retries(&self, kind: RetryOn) -> bool {
        self.retry_on.contains(&kind)
    }

    /// Whether attempt number `attempt` (1 = the first) failing with `kind`
    /// is followed by another attempt.
    pub fn should_retry(&self, attempt: u32, kind: RetryOn) -> bool {
        attempt < self.max_attempts && self.retries(kind)
    }

    /// The wait after attempt number `attempt` (1 = the first) failed.
    ///
    /// The base wait is `initial` (fixed) or `initial * 2^(attempt-1)`
    /// (exponential), capped at `max`. Jitter then takes away up to
    /// `jitter` of it: the wait is `base * (1 - jitter * rand01)`, so it
    /// never exceeds `max`. `rand01` is the caller's random number in
    /// `0..=1` (clamped), which keeps this function deterministic.
    pub fn delay_for(&self, attempt: u32, rand01: f64) -> Duration {
        let b = &self.backoff;
        let max_ms = b.max.as_millis() as f64;
        let initial_ms = b.initial.as_millis() as f64;
        let base_ms = match b.kind {
            BackoffKind::Fixed => initial_ms,
            BackoffKind::Exponential => {
                let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
                initial_ms * 2f64.powi(exp.min(1024))
            }
        }
        .min(max_ms);
        let unit = |x: f64| if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
        let ms = base_ms * (1.0 - unit(b.jitter) * unit(rand01));
        Duration::try_from_secs_f64(ms / 1_000.0).unwrap_or(b.max.as_duration())
    }

    /// What is wrong with this policy, as (pointer relative to the policy,
    /// message) pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.max_attempts == 0 {
            out.push((
                "/maxAttempts".to_owned(),
                "maxAttempts must be at least 1 (1 means no retry)".to_owned(),
            ));
        }
        let j = self.backoff.jitter;
        if !(0.0..=1.0).contains(&j) {
            out.push((
                "/backoff/jitter".to_owned(),
                format!("jitter must be between 0 and 1, got {j}"),
            ));
        }
        if self.backoff.initial > self.backoff.max {
            out.push((
                "/backoff/initial".to_owned(),
                format!(
                    "initial backoff {} is longer than max {}",
                    self.backoff.initial, self.backoff.max
                ),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn policy(kind: BackoffKind, jitter: f64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            backoff: Backoff {
                kind,
                initial: DurationSpec::from_millis(1_000),
                max: DurationSpec::from_millis(10_000),
                jitter,
            },
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn defaults_apply() {
        let p: RetryPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, RetryPolicy::default());
        assert_eq!(p.max_attempts, 1);
        assert_eq!(p.backoff.kind, BackoffKind::Exponential);
        assert_eq!(p.backoff.initial.as_millis(), 1_000);
        assert_eq!(p.backoff.max.as_millis(), 60_000);
        assert!(p.retries(RetryOn::Timeout) && p.retries(RetryOn::RateLimited));
        assert!(!p.retries(RetryOn::Config) && !p.retries(RetryOn::Trap));
        assert!(!p.should_retry(1, RetryOn::Transient), "one attempt only");
    }

    #[test]
    fn retry_on_names_parse() {
        let p: RetryPolicy = serde_json::from_str(
            r#"{"maxAttempts": 3, "retryOn": ["rate-limited", "trap", "internal"]}"#,
        )
        .unwrap();
        assert!(p.should_retry(2, RetryOn::Trap));
        assert!(!p.should_retry(3, RetryOn::Trap));
        assert!(p.retries(RetryOn::from(PluginErrorKind::Internal)));
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"retryOn": ["flaky"]}"#).is_err());
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"maxAttempt": 3}"#).is_err());
    }

    #[test]
    fn exponential_backoff_doubles_up_to_max() {
        let p = policy(BackoffKind::Exponential, 0.0);
        let secs: Vec<u64> = (1..=6).map(|a| p.delay_for(a, 0.5).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
        assert_eq!(p.delay_for(u32::MAX, 0.5), Duration::from_secs(10));
        assert_eq!(p.delay_for(0, 0.5), Duration::from_secs(1));
    }

    #[test]
    fn fixed_backoff_stays_put() {
        let p = policy(BackoffKind::Fixed, 0.0);
        assert_eq!(p.delay_for(1, 0.3), Duration::from_secs(1));
        assert_eq!(p.delay_for(9, 0.3), Duration::from_secs(1));
    }

    #[test]
    fn jitter_takes_away_a_fraction() {
        let p = policy(BackoffKind::Exponential, 0.5);
        assert_eq!(p.delay_for(2, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay_for(2, 1.0), Duration::from_secs(1));
        assert_eq!(p.delay_for(2, 0.5), Duration::from_millis(1_500));
        // Out-of-range randomness is clamped, never panics.
        assert_eq!(p.delay_for(2, 7.0), Duration::from_secs(1));
        assert_eq!(p.delay_for(2, f64::NAN), Duration::from_secs(2));
        assert!(p.delay_for(30, 0.0) <= Duration::from_secs(10));
    }

    #[test]
    fn bad_policies_are_reported() {
        let mut p = policy(BackoffKind::Fixed, 1.5);
        p.max_attempts = 0;
        p.backoff.initial = DurationSpec::from_millis(20_000);
        let pointers: Vec<String> = p.problems().into_iter().map(|(ptr, _)| ptr).collect();
        assert_eq!(
            pointers,
            ["/maxAttempts", "/backoff/jitter", "/backoff/initial"]
        );
        assert!(RetryPolicy::default().problems().is_empty());
    }
}
