//! The steps of a run and their attempts.

use crate::failure::Failure;
use crate::ids::{RunId, StepId, StepKey};
use crate::outcome::InputRequest;
use crate::run::StepStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One attempt of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepAttempt {
    /// Attempt number.
    pub attempt: u32,
    /// Started.
    pub started_at: i64,
    /// Finished.
    pub ended_at: Option<i64>,
    /// How it ended.
    pub status: StepStatus,
    /// Its error.
    pub error: Option<Failure>,
}

/// A step's (or `forEach` item's) current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStep {
    /// Run id.
    pub run_id: RunId,
    /// Step id, or `id[i]` for a `forEach` item.
    pub key: StepKey,
    /// Step id from the template.
    pub step_id: StepId,
    /// Item index for `forEach` items.
    pub item: Option<u32>,
    /// Status.
    pub status: StepStatus,
    /// Current (or last) attempt, from 1; 0 before the first.
    pub attempt: u32,
    /// Evaluated input of the current attempt.
    pub input: Option<Value>,
    /// Output once succeeded.
    pub output: Option<Value>,
    /// Error once failed.
    pub error: Option<Failure>,
    /// Pending input request.
    pub input_request: Option<InputRequest>,
    /// The non-secret part of an answer received but not yet consumed.
    pub answer: Option<Value>,
    /// An answer carried secret fields that only live in memory.
    pub answer_has_secrets: bool,
    /// When the next attempt may start (RETRYING).
    pub next_attempt_at: Option<i64>,
    /// The latest attempt; the earlier ones are records of their own
    /// (listed by the store apart from the step).
    #[serde(default)]
    pub last_attempt: Option<StepAttempt>,
    /// When the first attempt started.
    #[serde(default)]
    pub first_started_at: Option<i64>,
    /// The whole attempt history, as schema versions up to 4 kept it inside
    /// the step; read, never written (the store moves its last entry to
    /// `last_attempt` when it reads such a step).
    #[serde(default, rename = "attempts", skip_serializing)]
    pub legacy_attempts: Vec<StepAttempt>,
    /// When the step finished.
    pub ended_at: Option<i64>,
    /// When it finished, as a sequence across the run (for compensation order).
    pub completion_seq: Option<u64>,
}
