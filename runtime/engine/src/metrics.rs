//! Step-duration metrics, recorded through the `metrics` facade (the API
//! installs a Prometheus recorder; without one these calls do nothing).
//!
//! `weft_step_duration_seconds{step_type, outcome}` is a histogram of how
//! long one attempt of a step ran in its plugin, labelled by the step type
//! (`plugin/step-type`, e.g. `core/fibo`) and a fixed set of outcomes, so
//! the label cardinality is bounded by the installed step types. The
//! exporter should use [`STEP_DURATION_BUCKETS`] for it.

use std::sync::Once;
use std::time::Duration;
use weft_host::InvokeError;
use weft_model::StepOutcome;

/// Name of the step-duration histogram.
pub const STEP_DURATION: &str = "weft_step_duration_seconds";

/// Histogram buckets (seconds) for [`STEP_DURATION`]: steps range from a
/// millisecond-scale `core/noop` to multi-minute HTTP calls and batch jobs
/// (the default invocation timeout is five minutes; longer ones land in `+Inf`).
pub const STEP_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0,
];

/// How an attempt ended: the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The plugin returned an output.
    Success,
    /// The plugin asked for input (the attempt ends; a later one gets the answer).
    AwaitingInput,
    /// The plugin reported an error, or the host stopped it (trap, limit…).
    Failed,
    /// The wall-clock or CPU-time limit ran out.
    Timeout,
    /// The run (or the step) was cancelled.
    Cancelled,
}

impl AttemptOutcome {
    /// Classifies what `PluginHost::invoke_step` returned.
    pub fn of(result: &Result<StepOutcome, InvokeError>) -> Self {
        match result {
            Ok(StepOutcome::Success(_)) => Self::Success,
            Ok(StepOutcome::AwaitingInput(_)) => Self::AwaitingInput,
            Ok(StepOutcome::Failed(_)) => Self::Failed,
            Err(InvokeError::Timeout(_) | InvokeError::CpuLimitExceeded(_)) => Self::Timeout,
            Err(InvokeError::Cancelled) => Self::Cancelled,
            Err(_) => Self::Failed,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::AwaitingInput => "awaiting_input",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Records one finished attempt of a step: `step_type` is
/// `plugin/step-type` (e.g. `core/fibo`), `duration` the time spent in
/// the plugin invocation.
pub fn step_finished(step_type: &str, outcome: AttemptOutcome, duration: Duration) {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_histogram!(
            STEP_DURATION,
            metrics::Unit::Seconds,
            "Duration of step attempts (time in the plugin invocation) by step type and outcome."
        );
    });
    metrics::histogram!(STEP_DURATION, "step_type" => step_type.to_owned(), "outcome" => outcome.as_str())
        .record(duration.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

    #[test]
    fn records_a_labelled_histogram_with_step_buckets() {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(STEP_DURATION.into()), STEP_DURATION_BUCKETS)
            .map(PrometheusBuilder::build_recorder);
        let Ok(recorder) = recorder else {
            panic!("buckets are not empty");
        };
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let outcome = AttemptOutcome::of(&Err(InvokeError::Timeout(Duration::from_secs(1))));
            step_finished("core/sleep", outcome, Duration::from_millis(1500));
        });
        let text = handle.render();
        assert!(
            text.contains(
                r#"weft_step_duration_seconds_bucket{step_type="core/sleep",outcome="timeout",le="2.5"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"weft_step_duration_seconds_bucket{step_type="core/sleep",outcome="timeout",le="1"} 0"#
            ),
            "{text}"
        );
    }
}
