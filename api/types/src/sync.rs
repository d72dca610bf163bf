//! Connector types, connections and sync jobs: request bodies and views.

use crate::strict::{JsonObject, Maybe, Text};
use crate::views::RunView;
use poem_openapi::Object;
use serde_json::Value;
use weft_model::{ConnectorRole, Delivery, Failure, RunStatus, StreamStatus, SyncMode, WriteMode};

/// A connection: a configured source or destination. Also the whole of
/// one in `PUT` (where role and connector cannot change, and a secret field
/// left out or sent as `"********"` keeps its stored value).
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionBody {
    /// A name for people; unique among connections.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub name: Text,
    /// Which side of a sync it is.
    pub role: ConnectorRole,
    /// The connector plugin's name (see `GET /connector-types`).
    #[oai(validator(min_length = 1, max_length = 128))]
    pub connector: Text,
    /// A semver requirement on the connector's version; the newest
    /// enabled version when left out.
    #[oai(validator(min_length = 1, max_length = 128))]
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub version: Maybe<Text>,
    /// The configuration, validated against the connector's config schema.
    pub config: JsonObject,
}

/// One stream of a job, as selected.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct StreamSelectionBody {
    /// The stream's name in the source's catalog.
    #[oai(validator(min_length = 1, max_length = 512))]
    pub name: Text,
    /// Its namespace, when the source has them.
    #[oai(validator(min_length = 1, max_length = 512))]
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub namespace: Maybe<Text>,
    /// Columns to sync; all when left out.
    #[oai(validator(max_items = 4096))]
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub fields: Maybe<Vec<Text>>,
    /// How the stream is read.
    pub sync_mode: SyncMode,
    /// Cursor column for incremental reads; the source's first candidate
    /// when left out.
    #[oai(validator(min_length = 1, max_length = 512))]
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub cursor_field: Maybe<Text>,
    /// Primary key columns; the source's first candidate when left out.
    #[oai(validator(max_items = 64))]
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub primary_key: Maybe<Vec<Text>>,
    /// How the stream is written.
    pub write_mode: WriteMode,
}

/// A cron schedule.
#[derive(Object, Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleBody {
    /// Cron pattern, 5 fields or 6 with seconds (`0 9 * * MON-FRI`).
    #[oai(validator(min_length = 1, max_length = 256))]
    pub cron: Text,
    /// IANA time zone (`Europe/Paris`); UTC when left out.
    #[oai(validator(min_length = 1, max_length = 64))]
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub timezone: Maybe<Text>,
}

/// A sync job (also the whole of one in `PUT`).
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct SyncJobBody {
    /// A name for people; unique among jobs.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub name: Text,
    /// The source connection's id.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub source: Text,
    /// The destination connection's id.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub destination: Text,
    /// The streams to sync, each with its modes.
    #[oai(validator(min_items = 1, max_items = 1024))]
    pub streams_config: Vec<StreamSelectionBody>,
    /// When syncs start on their own (while active).
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub schedule: Maybe<ScheduleBody>,
    /// Whether the schedule fires; `true` when left out.
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub active: Maybe<bool>,
}

/// Turns a job's schedule on or off.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ActivateBody {
    /// Whether the schedule fires.
    pub activate: bool,
}

/// One stream's state.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct StreamStateBody {
    /// The stream; left out for state shared by all streams.
    #[oai(validator(min_length = 1, max_length = 512))]
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub stream: Maybe<Text>,
    /// The connector's state for it (cursor, file offsets…).
    pub state: Value,
}

/// A job's state, as edited.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct SyncStateBody {
    /// Per-stream state.
    #[oai(validator(max_items = 1024))]
    pub streams: Vec<StreamStateBody>,
}

/// One installed version of a connector.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ConnectorVersionView {
    /// Semantic version.
    pub version: String,
    /// The plugin's id (`sha256:…`).
    pub plugin_id: String,
    /// Whether new connections and syncs may use it.
    pub enabled: bool,
    /// The roles it plays.
    pub roles: Vec<ConnectorRole>,
}

/// A connector: a plugin name with its installed versions.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ConnectorTypeView {
    /// The plugin's name: what a connection's `connector` names.
    pub name: String,
    /// Its description (newest version's).
    pub description: String,
    /// Installed versions, newest first.
    pub versions: Vec<ConnectorVersionView>,
}

/// One role's spec of a connector version.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ConnectorRoleSpecView {
    /// JSON Schema of a connection's `config`.
    pub config_schema: Value,
    /// Config fields that are secret (write-only).
    pub secret_fields: Vec<String>,
    /// Batch formats, best first.
    pub formats: Vec<String>,
    /// Write modes (destinations; empty for a source).
    #[serde(default)]
    pub write_modes: Vec<WriteMode>,
    /// Delivery guarantee (destinations).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
}

/// A connector version's specs.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ConnectorSpecView {
    /// The connector.
    pub name: String,
    /// The version described.
    pub version: String,
    /// As a source.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ConnectorRoleSpecView>,
    /// As a destination.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<ConnectorRoleSpecView>,
}

/// A job's latest run, as lists show it.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct LastRunView {
    /// When it started (or was created).
    pub at: String,
    /// Its status.
    pub status: RunStatus,
}

/// A job that uses a connection.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ConnectionJobView {
    /// The job's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its latest run.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRunView>,
}

/// A connection. Secret fields are never returned: their values read
/// `"********"`, and `secretsSet` names those that have one.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Source or destination.
    pub role: ConnectorRole,
    /// The connector plugin's name.
    pub connector: String,
    /// The version requirement, when one was given.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The configuration, secrets masked.
    pub config: Value,
    /// Secret fields that have a value.
    pub secrets_set: Vec<String>,
    /// Jobs that use it, with their latest run.
    pub jobs: Vec<ConnectionJobView>,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// How a connection check went.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ConnectionCheckView {
    /// Whether the connector could connect.
    pub ok: bool,
    /// Why not: `kind` `auth` for rejected credentials, `transient` for an
    /// unreachable address, code `CAPABILITY_DENIED` for a grant to add.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// How long the check took.
    pub elapsed_ms: u64,
    /// When it ran.
    pub checked_at: String,
}

/// One stream a source can read.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct StreamView {
    /// Its name.
    pub name: String,
    /// Its namespace.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// JSON Schema of one record.
    pub json_schema: Value,
    /// How it can be read.
    pub sync_modes: Vec<SyncMode>,
    /// Columns usable as a cursor, best first.
    pub cursor_candidates: Vec<String>,
    /// Known primary keys.
    pub primary_key_candidates: Vec<Vec<String>>,
    /// Its rows, when the source can estimate.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_rows: Option<u64>,
}

/// What a source connection can read.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct CatalogView {
    /// Its streams.
    pub streams: Vec<StreamView>,
}

/// One stream of a job, as configured.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ConfiguredStreamView {
    /// Its name.
    pub name: String,
    /// Its namespace.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Selected columns; empty means all.
    pub fields: Vec<String>,
    /// How it is read.
    pub sync_mode: SyncMode,
    /// The cursor column of incremental reads.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<String>,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// How it is written.
    pub write_mode: WriteMode,
    /// JSON Schema of one record as configured.
    pub json_schema: Value,
}

/// One stream's counters in a sync.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct StreamTotalsView {
    /// The stream.
    pub stream: String,
    /// Rows written.
    pub rows: u64,
    /// Bytes of batch data written.
    pub bytes: u64,
    /// The source's last status for it.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StreamStatus>,
    /// The source's estimate of its rows.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_rows: Option<u64>,
}

/// A sync in progress.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct LiveSyncView {
    /// The run doing it.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// When it started.
    pub started_at: String,
    /// Rows written so far.
    pub rows: u64,
    /// Bytes written so far.
    pub bytes: u64,
    /// Rows per second since the start.
    pub rows_per_second: f64,
    /// The last commit's seq.
    pub seq: u64,
    /// Milliseconds left, when the source estimates its rows.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_ms: Option<u64>,
    /// Per stream.
    pub streams: Vec<StreamTotalsView>,
}

/// A sync job.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct SyncJobView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The source connection's id.
    pub source: String,
    /// The destination connection's id.
    pub destination: String,
    /// The streams it syncs.
    pub streams_config: Vec<ConfiguredStreamView>,
    /// Its schedule.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleBody>,
    /// Whether the schedule fires.
    pub active: bool,
    /// The template whose runs are its syncs.
    pub template_id: String,
    /// The seq of its last destination commit.
    pub state_seq: u64,
    /// Its latest run.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRunView>,
    /// The sync running now.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<LiveSyncView>,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// One sync of a job's history.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct SyncJobRunView {
    /// The run.
    pub run: RunView,
    /// How long it took (ms), once finished.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Rows written, all streams (once it succeeded).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Bytes written (once it succeeded).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Per stream (once it succeeded).
    pub streams: Vec<StreamTotalsView>,
}

/// A job's state as of its last destination commit.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct SyncStateView {
    /// The commit's seq.
    pub seq: u64,
    /// Per-stream state.
    pub streams: Vec<StreamStateBody>,
    /// When it was saved.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// Column changes of one stream.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct StreamDiffView {
    /// The stream.
    pub stream: String,
    /// Columns the source has now that the job's schema does not.
    pub added_fields: Vec<String>,
    /// Columns the job's schema has that the source no longer has.
    pub removed_fields: Vec<String>,
}

/// How the source's catalog moved since the job was configured.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct CatalogDiffView {
    /// Streams the source has that the job does not sync.
    pub added_streams: Vec<String>,
    /// Streams the job syncs that the source no longer has.
    pub removed_streams: Vec<String>,
    /// Column changes of streams both have.
    pub changed_streams: Vec<StreamDiffView>,
}
