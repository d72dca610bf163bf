//! What the store keeps besides the domain's own types (runs, steps,
//! events, log lines and templates are stored as `weft-model` defines
//! them): plugin records, earlier attempts, transitions, filters and
//! pages. Times are Unix milliseconds; JSON payloads are stored as
//! documents. The SurrealDB record id is derived from the
//! natural key and never read back (queries `OMIT id`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_model::{
    CapabilityGrants, LogLine, PluginDigest, RunEvent, RunId, RunStatus, RunStep, StepAttempt,
    StepKey, TemplateHead, TemplateId, TemplateRevision, WorkflowRun,
};

/// An installed plugin (bytes live in `plugin_blob`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginRecord {
    /// sha256 of the component bytes.
    pub digest: PluginDigest,
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

/// A page of templates.
#[derive(Debug, Clone)]
pub struct TemplatePage {
    /// Templates by name.
    pub templates: Vec<TemplateHead>,
    /// Total templates.
    pub total: u64,
}

/// A page of one template's revisions.
#[derive(Debug, Clone)]
pub struct RevisionPage {
    /// Revisions, oldest first.
    pub revisions: Vec<TemplateRevision>,
    /// Total revisions of the template.
    pub total: u64,
}

/// An attempt of a step that is no longer its latest, as stored on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepAttemptRecord {
    /// Run id.
    pub run_id: RunId,
    /// Step key.
    pub step_key: StepKey,
    /// The attempt.
    #[serde(flatten)]
    pub attempt: StepAttempt,
}

/// A page of a step's attempts.
#[derive(Debug, Clone)]
pub struct AttemptPage {
    /// Attempts, oldest first.
    pub attempts: Vec<StepAttempt>,
    /// How many attempts the step has had.
    pub total: u64,
}

/// Everything one state transition writes, committed atomically. Batches
/// of transitions from concurrent runs commit together (group commit).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transition {
    /// The run's new state, when it changed.
    pub run: Option<WorkflowRun>,
    /// Steps whose state changed.
    pub steps: Vec<RunStep>,
    /// Events to append.
    pub events: Vec<RunEvent>,
    /// Log lines to append.
    pub logs: Vec<LogLine>,
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
    pub template_id: Option<TemplateId>,
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
    pub runs: Vec<WorkflowRun>,
    /// Total matching runs.
    pub total: u64,
}
