//! Run and step states and the transitions between them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The state of a workflow run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
