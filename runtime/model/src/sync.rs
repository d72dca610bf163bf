//! Connections, sync jobs and their state: what an API user configures to
//! move data, and what the engine keeps between syncs.
//!
//! A [`Connection`] is a connector plugin (by name) plus its configuration,
//! with the spec's secret fields sealed apart from the rest. A [`SyncJob`]
//! joins a source and a destination connection over configured streams;
//! each sync of it is a workflow run of the job's template (one `weft/sync`
//! step, plus the job's schedule). [`SyncState`] is the state the last
//! destination commit reached, the only thing a sync resumes from.

use crate::connector::{Checkpoint, ConfiguredStream, ConnectorRole, StreamStatus};
use crate::ids::{ConnectionId, RunId, SyncJobId, TemplateId};
use crate::template::spec::ScheduleSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A secret config field encrypted at rest (AES-256-GCM).
///
/// The associated data binds it to its connection and field, so a sealed
/// value copied into another connection or field does not open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecret {
    /// Which key sealed it (a short fingerprint, not the key).
    pub key_id: String,
    /// The 96-bit nonce, base64.
    pub nonce: String,
    /// Ciphertext with its tag, base64.
    pub ciphertext: String,
}

/// A configured source or destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// Its id.
    pub connection_id: ConnectionId,
    /// A name for people; unique among live connections.
    pub name: String,
    /// Which side of a sync it can be.
    pub role: ConnectorRole,
    /// The connector plugin's name, e.g. `files`.
    pub connector: String,
    /// A semver requirement on the plugin's version; the newest enabled
    /// match is used when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<semver::VersionReq>,
    /// The configuration without its secret fields.
    pub config: serde_json::Value,
    /// The secret fields, sealed, by top-level field name.
    #[serde(default)]
    pub secrets: BTreeMap<String, SealedSecret>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

/// A sync job: which streams go from a source connection to a destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncJob {
    /// Its id.
    pub job_id: SyncJobId,
    /// A name for people; unique among jobs.
    pub name: String,
    /// Where rows come from.
    pub source: ConnectionId,
    /// Where rows go.
    pub destination: ConnectionId,
    /// The selected streams, each with the schema it had when configured.
    pub streams: Vec<ConfiguredStream>,
    /// When syncs start on their own (while active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// Whether the schedule fires.
    pub active: bool,
    /// The template whose runs are this job's syncs.
    pub template_id: TemplateId,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

/// What the last destination commit of a job reached.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    /// The commit's seq (0 before the first); increases across syncs.
    pub seq: u64,
    /// Per-stream state as of that commit.
    pub state: Vec<Checkpoint>,
    /// When it was saved (ms).
    pub updated_at: i64,
}

/// Counters of one stream in a sync, as a sync step outputs them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamTotals {
    /// The stream.
    pub stream: String,
    /// Rows written.
    pub rows: u64,
    /// Bytes of batch data written.
    pub bytes: u64,
    /// The source's last status for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StreamStatus>,
    /// The source's estimate of its rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_rows: Option<u64>,
}

/// What a finished sync step outputs (and a job's run history shows).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOutput {
    /// The job synced.
    pub job: Option<SyncJobId>,
    /// The batch format both sides used.
    pub format: String,
    /// Commits made.
    pub commits: u32,
    /// The last commit's seq.
    pub seq: u64,
    /// Rows written, all streams.
    pub rows: u64,
    /// Bytes written, all streams.
    pub bytes: u64,
    /// Per stream.
    pub streams: Vec<StreamTotals>,
    /// Set when the destination had committed further than the saved state
    /// (a crash between its commit and ours) and its marker was adopted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_seq: Option<u64>,
}

/// A sync in progress, as the engine tracks it live.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveSync {
    /// The run doing it.
    pub run_id: Option<RunId>,
    /// When it started (ms).
    pub started_at: i64,
    /// Rows written so far, all streams.
    pub rows: u64,
    /// Bytes written so far.
    pub bytes: u64,
    /// Rows per second since the start.
    pub rows_per_second: f64,
    /// The last commit's seq.
    pub seq: u64,
    /// Estimated milliseconds left, when the source estimates its rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_ms: Option<u64>,
    /// Per stream.
    pub streams: Vec<StreamTotals>,
}

/// The prefix of the names of templates that sync jobs own.
pub const SYNC_JOB_TEMPLATE_PREFIX: &str = "sync-job.";

/// The name of the template a job owns.
pub fn sync_job_template_name(job: &SyncJobId) -> String {
    format!("{SYNC_JOB_TEMPLATE_PREFIX}{job}")
}

/// One stream as a job request selects it; the engine fills in the schema
/// from the source's catalog and checks every choice against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamSelection {
    /// The stream's name in the source's catalog.
    pub name: String,
    /// Its namespace, when the source has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Columns to sync; all when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// How it is read.
    pub sync_mode: crate::connector::SyncMode,
    /// Cursor column, for incremental reads; the source's first candidate when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<String>,
    /// Primary key columns; the source's first candidate when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Vec<String>>,
    /// How it is written.
    pub write_mode: crate::connector::WriteMode,
}

/// What is wrong with a connection or job request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "SCREAMING_SNAKE_CASE"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConfigProblemCode {
    /// The configuration does not match the connector's config schema.
    InvalidConfig,
    /// No installed plugin of that name has the role asked for.
    UnknownConnector,
    /// Every matching connector version is disabled.
    ConnectorDisabled,
    /// The connection is the other role (a destination given as a source).
    WrongRole,
    /// The source has no such stream.
    UnknownStream,
    /// The stream has no such column.
    UnknownField,
    /// The stream cannot be read that way.
    UnsupportedSyncMode,
    /// The destination cannot write that way.
    UnsupportedWriteMode,
    /// Upsert needs a primary key.
    MissingPrimaryKey,
    /// The cron schedule or time zone does not parse.
    InvalidSchedule,
    /// A name is empty, too long or already taken.
    InvalidName,
    /// A stream is selected twice.
    DuplicateStream,
    /// No live connection has that id.
    UnknownConnection,
    /// A granted directory is not absolute, does not exist, or was not requested.
    InvalidDirectory,
}

/// One problem with a connection or job request, by JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigProblem {
    /// JSON pointer into the request, e.g. `/config/port`.
    pub pointer: String,
    /// Machine-readable code.
    pub code: ConfigProblemCode,
    /// Human-readable explanation.
    pub message: String,
}

impl ConfigProblem {
    /// A problem at `pointer`.
    pub fn new(
        pointer: impl Into<String>,
        code: ConfigProblemCode,
        message: impl Into<String>,
    ) -> Self {
        Self {
            pointer: pointer.into(),
            code,
            message: message.into(),
        }
    }
}
