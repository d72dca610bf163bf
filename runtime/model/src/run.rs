//! Workflow runs: their state as stored and served, and the statuses of
//! runs and steps.

use crate::failure::Failure;
use crate::ids::{RunId, TemplateId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The state of a workflow run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "SCREAMING_SNAKE_CASE"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Created, no step started yet.
    Pending,
    /// At least one step is ready or running.
    Running,
    /// Paused: no new steps start; in-flight ones finish.
    Paused,
    /// Every unfinished step waits for input.
    AwaitingInput,
    /// Finished successfully.
    Success,
    /// Finished with a failure.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl RunStatus {
    /// Whether the run has finished for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::Failed | Self::Cancelled)
    }

    /// The upper-case name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Paused => "PAUSED",
            Self::AwaitingInput => "AWAITING_INPUT",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one step (or one `forEach` item) in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "SCREAMING_SNAKE_CASE"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    /// Waiting for its `needs`.
    Pending,
    /// Dependencies met; waiting for a worker.
    Ready,
    /// An attempt is executing.
    Running,
    /// Waiting for the backoff before the next attempt.
    Retrying,
    /// Waiting for an answer to its input request.
    AwaitingInput,
    /// Finished successfully.
    Success,
    /// Failed after its last attempt.
    Failed,
    /// Not run: its `if` was false or an upstream step failed.
    Skipped,
    /// Cancelled with the run.
    Cancelled,
}

impl StepStatus {
    /// Whether the step has finished for good.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }

    /// The upper-case name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Ready => "READY",
            Self::Running => "RUNNING",
            Self::Retrying => "RETRYING",
            Self::AwaitingInput => "AWAITING_INPUT",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::Skipped => "SKIPPED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Completed / total steps and the ones running now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunProgress {
    /// Steps (or items) finished.
    pub completed: u32,
    /// Steps (or items) known so far.
    pub total: u32,
    /// Keys of steps running now.
    pub running: Vec<crate::ids::StepKey>,
}

/// A run's current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRun {
    /// Run id.
    pub run_id: RunId,
    /// Template id.
    pub template_id: TemplateId,
    /// Template name at start.
    pub template_name: String,
    /// Pinned template revision.
    pub revision: u32,
    /// Status.
    pub status: RunStatus,
    /// Validated inputs.
    pub inputs: serde_json::Value,
    /// Outputs once finished (step id → output).
    pub outputs: Option<serde_json::Value>,
    /// Failure, if any.
    pub error: Option<Failure>,
    /// Plugin digests pinned at start, by `plugin@version`.
    pub pinned_plugins: std::collections::BTreeMap<String, crate::PluginDigest>,
    /// Idempotency key the run was started with.
    pub idempotency_key: Option<String>,
    /// Progress.
    pub progress: RunProgress,
    /// Created.
    pub created_at: i64,
    /// First step started.
    pub started_at: Option<i64>,
    /// Finished.
    pub ended_at: Option<i64>,
    /// Next event sequence number; events are numbered densely from 1.
    pub next_event_seq: u64,
    /// Sequence number of the run's next log line (log sequence numbers
    /// increase across the run, so a recovered run continues them without
    /// reading its logs back).
    #[serde(default = "first_seq")]
    pub next_log_seq: u64,
    /// Position of the run's next journal record (see
    /// the store's transition journal); like the other counters it may be
    /// behind in a RUNNING run's record and is recovered from the journal.
    #[serde(default = "first_seq")]
    pub next_journal_seq: u64,
}

fn first_seq() -> u64 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialize_upper_case() {
        assert_eq!(
            serde_json::to_value(RunStatus::AwaitingInput).ok(),
            Some(serde_json::json!("AWAITING_INPUT"))
        );
        assert_eq!(
            serde_json::to_value(StepStatus::Retrying).ok(),
            Some(serde_json::json!("RETRYING"))
        );
        assert!(RunStatus::Cancelled.is_terminal() && !RunStatus::Paused.is_terminal());
        assert!(StepStatus::Skipped.is_terminal() && !StepStatus::AwaitingInput.is_terminal());
    }
}
