//! Connectors: what sources and destinations declare (specs), what a source
//! can read (its catalog), what a job selects (configured streams), and the
//! state that moves between them (checkpoints and commit markers).
//!
//! These mirror the `weft:plugin@0.2.0` records; the host converts between
//! the two, so nothing above the host sees WIT types.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How the bytes of a batch are encoded.
///
/// Serialised as its name: `arrow-ipc`, or the pass-through format's own
/// name (`ndjson`, `csv`, `postgres-copy-binary`…).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum BatchFormat {
    /// An Arrow IPC stream: the typed format every connector speaks.
    ArrowIpc,
    /// A format a pair of connectors passes through untouched.
    Other(String),
}

impl BatchFormat {
    /// The name on the wire: `arrow-ipc` or the other format's name.
    pub fn name(&self) -> &str {
        match self {
            Self::ArrowIpc => ARROW_IPC,
            Self::Other(name) => name,
        }
    }
}

const ARROW_IPC: &str = "arrow-ipc";

impl From<String> for BatchFormat {
    fn from(name: String) -> Self {
        // `other("arrow-ipc")` would otherwise be a second spelling of Arrow.
        if name == ARROW_IPC {
            Self::ArrowIpc
        } else {
            Self::Other(name)
        }
    }
}

impl From<BatchFormat> for String {
    fn from(f: BatchFormat) -> Self {
        match f {
            BatchFormat::ArrowIpc => ARROW_IPC.to_owned(),
            BatchFormat::Other(name) => name,
        }
    }
}

impl fmt::Display for BatchFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The batch format a sync uses: the source's most preferred format the
/// destination also writes, else Arrow IPC (which both must speak).
pub fn negotiate_format(source: &[BatchFormat], destination: &[BatchFormat]) -> BatchFormat {
    source
        .iter()
        .find(|f| destination.contains(f))
        .cloned()
        .unwrap_or(BatchFormat::ArrowIpc)
}

/// The two sides of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum ConnectorRole {
    /// Reads rows.
    Source,
    /// Writes rows.
    Destination,
}

impl fmt::Display for ConnectorRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Source => "source",
            Self::Destination => "destination",
        })
    }
}

/// How a stream is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "kebab-case"))]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    /// Every row, every sync.
    FullRefresh,
    /// Only rows past the saved cursor.
    Incremental,
}

/// How a stream is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "kebab-case"))]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// Rows are added to what is there.
    Append,
    /// The sync's rows replace what was there once the sync completes.
    Overwrite,
    /// Rows replace those with the same primary key.
    Upsert,
}

/// What a destination promises about rows across retries and crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "kebab-case"))]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Data and state are committed together: each source row lands once.
    ExactlyOnce,
    /// A row may be written again after a crash (dedup by primary key in upsert mode).
    AtLeastOnce,
}

/// Where a stream of a read has got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "SCREAMING_SNAKE_CASE"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    /// The source began reading the stream.
    Started,
    /// Still reading.
    Running,
    /// Every row of the stream was produced.
    Complete,
    /// The source stopped the stream early; the rest comes next sync.
    Incomplete,
}

/// A source spec exactly as the plugin's `source.spec()` returned it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawSourceSpec {
    /// Config JSON Schema text.
    pub config_schema: String,
    /// Secret config fields.
    pub secret_fields: Vec<String>,
    /// Formats produced, best first.
    pub formats: Vec<BatchFormat>,
}

/// A destination spec exactly as the plugin's `destination.spec()` returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDestinationSpec {
    /// Config JSON Schema text.
    pub config_schema: String,
    /// Secret config fields.
    pub secret_fields: Vec<String>,
    /// Formats accepted, best first.
    pub formats: Vec<BatchFormat>,
    /// Write modes supported.
    pub write_modes: Vec<WriteMode>,
    /// What the destination promises.
    pub delivery: Delivery,
}

/// A validated source spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// JSON Schema of a source connection's configuration.
    pub config_schema: serde_json::Value,
    /// Top-level config fields that are secret.
    pub secret_fields: Vec<String>,
    /// Formats produced, best first; always includes Arrow IPC.
    pub formats: Vec<BatchFormat>,
}

/// A validated destination spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationSpec {
    /// JSON Schema of a destination connection's configuration.
    pub config_schema: serde_json::Value,
    /// Top-level config fields that are secret.
    pub secret_fields: Vec<String>,
    /// Formats accepted, best first; always includes Arrow IPC.
    pub formats: Vec<BatchFormat>,
    /// Write modes supported.
    pub write_modes: Vec<WriteMode>,
    /// What the destination promises.
    pub delivery: Delivery,
}

/// One stream a source can read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamInfo {
    /// Name, unique within its namespace.
    pub name: String,
    /// Schema, database or folder, when the source has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// JSON Schema of one record.
    pub json_schema: serde_json::Value,
    /// Sync modes supported.
    pub sync_modes: Vec<SyncMode>,
    /// Fields usable as an incremental cursor, best first.
    #[serde(default)]
    pub cursor_candidates: Vec<String>,
    /// Known primary keys, each a list of fields.
    #[serde(default)]
    pub primary_key_candidates: Vec<Vec<String>>,
    /// Rows in the stream, when the source can estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_rows: Option<u64>,
}

/// What a source can read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// Its streams.
    pub streams: Vec<StreamInfo>,
}

impl Catalog {
    /// A stream by name (and namespace, when given).
    pub fn stream(&self, name: &str, namespace: Option<&str>) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| {
            s.name == name && (namespace.is_none() || s.namespace.as_deref() == namespace)
        })
    }
}

/// One stream as a job selected and configured it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfiguredStream {
    /// The stream's name.
    pub name: String,
    /// Its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// JSON Schema of one record with only the selected fields.
    pub json_schema: serde_json::Value,
    /// Selected fields; empty means all.
    #[serde(default)]
    pub fields: Vec<String>,
    /// How it is read.
    pub sync_mode: SyncMode,
    /// Cursor field, for incremental reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<String>,
    /// Primary key fields; empty when none.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// How it is written.
    pub write_mode: WriteMode,
}

/// A source's position: saved only once everything before it is committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The stream it is for; `None` for state shared by all streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The state.
    pub state: serde_json::Value,
}

/// A destination commit: data so far plus the source state it reaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitMarker {
    /// Increases with every commit of a job, across syncs.
    pub seq: u64,
    /// The latest state per stream covered by the commit.
    pub state: Vec<Checkpoint>,
}

/// Folds `newer` into `states`: one entry per stream, the latest wins.
pub fn merge_checkpoints(states: &mut Vec<Checkpoint>, newer: Checkpoint) {
    match states.iter_mut().find(|c| c.stream == newer.stream) {
        Some(slot) => *slot = newer,
        None => states.push(newer),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_source_preference_wins_among_formats_both_sides_speak() {
        let ndjson = BatchFormat::Other("ndjson".into());
        let csv = BatchFormat::Other("csv".into());
        let source = [csv.clone(), ndjson.clone(), BatchFormat::ArrowIpc];
        assert_eq!(
            negotiate_format(&source, &[ndjson.clone(), BatchFormat::ArrowIpc]),
            ndjson
        );
        assert_eq!(
            negotiate_format(&[csv], &[ndjson]),
            BatchFormat::ArrowIpc,
            "no common format falls back to Arrow"
        );
    }

    #[test]
    fn formats_serialise_as_their_names_and_arrow_has_one_spelling() {
        let f: BatchFormat = serde_json::from_str("\"arrow-ipc\"").unwrap();
        assert_eq!(f, BatchFormat::ArrowIpc);
        assert_eq!(
            serde_json::to_string(&BatchFormat::Other("ndjson".into())).unwrap(),
            "\"ndjson\""
        );
    }

    #[test]
    fn a_newer_checkpoint_replaces_the_streams_older_one() {
        let mut states = vec![Checkpoint {
            stream: Some("a".into()),
            state: serde_json::json!(1),
        }];
        merge_checkpoints(
            &mut states,
            Checkpoint {
                stream: Some("b".into()),
                state: serde_json::json!(1),
            },
        );
        merge_checkpoints(
            &mut states,
            Checkpoint {
                stream: Some("a".into()),
                state: serde_json::json!(2),
            },
        );
        assert_eq!(states.len(), 2);
        assert_eq!(states[0].state, serde_json::json!(2));
    }
}
