//! Records as stored. Times are Unix milliseconds; JSON payloads are
//! stored as documents. The SurrealDB record id is derived from the
//! natural key and never read back (queries `OMIT id`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use weft_model::{CapabilityGrants, RunStatus, StepStatus};

/// An installed plugin (bytes live in `plugin_blob`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginRecord {
    /// sha256 hex of the component bytes.
    pub digest: String,
    /// Plugin name from the manifest.
    pub name: String,
    /// Plugin version from the manifest.
    pub version: String,
    /// The validated manifest as JSON.
    pub manifest: Value,
    /// Whether new runs may use it.
    pub enabled: bool,
    /// What an admin granted.
    pub grants: CapabilityGrants,
    /// When it was installed.
    pub installed_at: i64,
}

/// A workflow template's current head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRecord {
    /// Template id.
    pub template_id: String,
    /// Unique name.
    pub name: String,
    /// Latest revision number (from 1).
    pub revision: u32,
    /// The latest revision's body.
    pub body: Value,
    /// Creation time.
    pub created_at: i64,
    /// Time of the latest revision.
    pub updated_at: i64,
}

/// A page of templates.
#[derive(Debug, Clone)]
pub struct TemplatePage {
    /// Templates by name.
    pub templates: Vec<TemplateRecord>,
    /// Total templates.
    pub total: u64,
}

/// A page of one template's revisions.
#[derive(Debug, Clone)]
pub struct RevisionPage {
    /// Revisions, oldest first.
    pub revisions: Vec<TemplateRevisionRecord>,
    /// Total revisions of the template.
    pub total: u64,
}

/// One immutable revision of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRevisionRecord {
    /// Template id.
    pub template_id: String,
    /// Revision number.
    pub revision: u32,
    /// The body.
    pub body: Value,
    /// When it was written.
    pub created_at: i64,
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
    pub running: Vec<String>,
}

/// A run's current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Run id.
    pub run_id: String,
    /// Template id.
    pub template_id: String,
    /// Template name at start.
    pub template_name: String,
    /// Pinned template revision.
    pub revision: u32,
    /// Status.
    pub status: RunStatus,
    /// Validated inputs.
    pub inputs: Value,
    /// Outputs once finished (step id → output).
    pub outputs: Option<Value>,
    /// Failure, if any.
    pub error: Option<Value>,
    /// Plugin digests pinned at start, by `plugin@version`.
    pub pinned_plugins: BTreeMap<String, String>,
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
    /// [`Transition::journal_seq`]); like the other counters it may be
    /// behind in a RUNNING run's record and is recovered from the journal.
    #[serde(default = "first_seq")]
    pub next_journal_seq: u64,
}

fn first_seq() -> u64 {
    1
}

/// One attempt of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// Attempt number.
    pub attempt: u32,
    /// Started.
    pub started_at: i64,
    /// Finished.
    pub ended_at: Option<i64>,
    /// How it ended.
    pub status: StepStatus,
    /// Its error.
    pub error: Option<Value>,
}

/// An attempt of a step that is no longer its latest, as stored on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepAttemptRecord {
    /// Run id.
    pub run_id: String,
    /// Step key.
    pub step_key: String,
    /// The attempt.
    #[serde(flatten)]
    pub attempt: AttemptRecord,
}

/// A page of a step's attempts.
#[derive(Debug, Clone)]
pub struct AttemptPage {
    /// Attempts, oldest first.
    pub attempts: Vec<AttemptRecord>,
    /// How many attempts the step has had.
    pub total: u64,
}

/// A step's (or `forEach` item's) current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// Run id.
    pub run_id: String,
    /// Step id, or `id[i]` for a `forEach` item.
    pub key: String,
    /// Step id from the template.
    pub step_id: String,
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
    pub error: Option<Value>,
    /// Pending input request.
    pub input_request: Option<Value>,
    /// The non-secret part of an answer received but not yet consumed.
    pub answer: Option<Value>,
    /// An answer carried secret fields that only live in memory.
    pub answer_has_secrets: bool,
    /// When the next attempt may start (RETRYING).
    pub next_attempt_at: Option<i64>,
    /// The latest attempt; the earlier ones are records of their own
    /// ([`StepAttemptRecord`], listed by [`crate::Store::step_attempts`]).
    #[serde(default)]
    pub last_attempt: Option<AttemptRecord>,
    /// When the first attempt started.
    #[serde(default)]
    pub first_started_at: Option<i64>,
    /// The whole attempt history, as schema versions up to 4 kept it inside
    /// the step; read, never written (the store moves its last entry to
    /// `last_attempt` when it reads such a step).
    #[serde(default, rename = "attempts", skip_serializing)]
    pub legacy_attempts: Vec<AttemptRecord>,
    /// When the step finished.
    pub ended_at: Option<i64>,
    /// When it finished, as a sequence across the run (for compensation order).
    pub completion_seq: Option<u64>,
}

/// An entry of a run's append-only event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    /// Run id.
    pub run_id: String,
    /// Dense sequence number within the run, from 1.
    pub seq: u64,
    /// When.
    pub at: i64,
    /// Kind, e.g. `run.started`, `step.retrying`.
    pub kind: String,
    /// Step key, for step events.
    pub step: Option<String>,
    /// Attempt, for step events.
    pub attempt: Option<u32>,
    /// Human-readable.
    pub message: String,
    /// Structured details.
    pub data: Option<Value>,
}

/// A log line of a step attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    /// Run id.
    pub run_id: String,
    /// Step key.
    pub step_key: String,
    /// Attempt.
    pub attempt: u32,
    /// Sequence within the step, from 1.
    pub seq: u64,
    /// When.
    pub at: i64,
    /// `trace`…`error`, or `engine` for engine lines.
    pub level: String,
    /// Text.
    pub message: String,
    /// Structured context.
    pub context: Option<Value>,
    /// `plugin`, `stdout`, `stderr` or `engine`.
    pub source: String,
}

/// An artifact's metadata (its bytes live in `artifact_blob`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRecord {
    /// Run id.
    pub run_id: String,
    /// Step key.
    pub step_key: String,
    /// Attempt.
    pub attempt: u32,
    /// Name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// When.
    pub at: i64,
}

/// Everything one state transition writes, committed atomically. Batches
/// of transitions from concurrent runs commit together (group commit).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transition {
    /// The run's new state, when it changed.
    pub run: Option<RunRecord>,
    /// Steps whose state changed.
    pub steps: Vec<StepRecord>,
    /// Events to append.
    pub events: Vec<RunEvent>,
    /// Log lines to append.
    pub logs: Vec<LogRecord>,
    /// Attempts that stopped being their step's latest in this transition
    /// (a new attempt of the step started).
    pub earlier_attempts: Vec<StepAttemptRecord>,
    /// This transition creates the run: its idempotency key (if any) is
    /// claimed in the same transaction, so a reused key fails the commit.
    pub creates_run: bool,
    /// Position (from 1, increasing per run) of the journal record that
    /// holds this transition's steps and events; every transition that
    /// changes steps or writes events needs one.
    pub journal_seq: u64,
    /// The run's last event sequence number as of this transition (0
    /// before its first event). It leads the journal record's key, so a
    /// read of events after a cursor starts at the cursor.
    pub events_through: u64,
}

/// Filters for listing runs, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs of this template id.
    pub template_id: Option<String>,
    /// Created at or after (ms).
    pub created_after: Option<i64>,
    /// Created before (ms).
    pub created_before: Option<i64>,
    /// Page number from 1.
    pub page: u32,
    /// Page size (1..=100).
    pub page_size: u32,
}

/// A page of runs.
#[derive(Debug, Clone)]
pub struct RunPage {
    /// Runs, newest first.
    pub runs: Vec<RunRecord>,
    /// Total matching runs.
    pub total: u64,
}
