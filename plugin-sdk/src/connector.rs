//! Connectors: implement [`Source`] and/or [`Destination`] and name them in
//! [`export_plugin!`](crate::export_plugin); the SDK turns configs into
//! your typed `Config`, builds the specs from its JSON Schema, and wires
//! your [`Reader`] and [`Writer`] to the `reader` and `writer` resources.
//!
//! Secret config fields are marked in the schema with `writeOnly`:
//!
//! ```
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Config {
//!     /// The API's base URL.
//!     url: String,
//!     /// Sent as the bearer token; encrypted at rest, never returned.
//!     #[schemars(extend("writeOnly" = true))]
//!     token: String,
//! }
//! let fields = weft_plugin_sdk::connector::secret_fields(
//!     &schemars::schema_for!(Config).to_value(),
//! );
//! assert_eq!(fields, ["token"]);
//! ```

use crate::PluginError;
use crate::wit::{
    Batch, BatchFormat, Checkpoint, CommitMarker, ConfiguredStream, Delivery, DestinationSpec,
    ReadItem, ReadLimits, ReadRequest, SourceSpec, StreamInfo, SyncMode, WriteMode, WriteRequest,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// A source connector.
pub trait Source {
    /// The connection's configuration.
    type Config: DeserializeOwned + JsonSchema;

    /// Formats the source can produce, best first; Arrow IPC is added when missing.
    fn formats(&self) -> Vec<BatchFormat> {
        vec![BatchFormat::ArrowIpc]
    }

    /// Checks that the configuration can connect and read.
    fn check(&self, config: &Self::Config) -> Result<(), PluginError>;

    /// The streams the configuration can read.
    fn discover(&self, config: &Self::Config) -> Result<Vec<StreamInfo>, PluginError>;

    /// Opens a read of `request.streams`, resuming from `request.state`.
    fn read(
        &self,
        config: Self::Config,
        request: ReadRequest,
    ) -> Result<Box<dyn Reader>, PluginError>;
}

/// An open read: the host calls [`next`](Reader::next) until it returns
/// [`ReadItem::Done`].
pub trait Reader {
    /// The next batch, checkpoint or stream status, within `limits`.
    fn next(&mut self, limits: &ReadLimits) -> Result<ReadItem, PluginError>;
}

/// A destination connector.
pub trait Destination {
    /// The connection's configuration.
    type Config: DeserializeOwned + JsonSchema;

    /// Formats the destination can write, best first; Arrow IPC is added when missing.
    fn formats(&self) -> Vec<BatchFormat> {
        vec![BatchFormat::ArrowIpc]
    }

    /// Write modes supported.
    fn write_modes(&self) -> Vec<WriteMode>;

    /// What the destination promises across crashes and retries.
    fn delivery(&self) -> Delivery;

    /// Checks that the configuration can connect and write.
    fn check(&self, config: &Self::Config) -> Result<(), PluginError>;

    /// Opens a write of `request.streams`.
    fn open(
        &self,
        config: Self::Config,
        request: WriteRequest,
    ) -> Result<Box<dyn Writer>, PluginError>;
}

/// An open write.
pub trait Writer {
    /// The last commit made durable, if the destination stores markers.
    fn last_commit(&mut self) -> Result<Option<CommitMarker>, PluginError>;
    /// Writes one batch; durable only at the next commit.
    fn write(&mut self, batch: Batch) -> Result<(), PluginError>;
    /// Makes everything written durable with `marker`; `last` ends the sync.
    fn commit(&mut self, marker: CommitMarker, last: bool) -> Result<(), PluginError>;
    /// Discards what is not committed.
    fn abort(&mut self);
}

/// The top-level properties a JSON Schema marks `writeOnly: true`.
pub fn secret_fields(schema: &serde_json::Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(serde_json::Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter(|(_, p)| p.get("writeOnly") == Some(&serde_json::Value::Bool(true)))
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn with_arrow(mut formats: Vec<BatchFormat>) -> Vec<BatchFormat> {
    if !formats.iter().any(|f| matches!(f, BatchFormat::ArrowIpc)) {
        formats.push(BatchFormat::ArrowIpc);
    }
    formats
}

/// A connection's configuration, as the exports and the test harness parse it.
pub(crate) fn parse_config<C: DeserializeOwned>(config: &str) -> Result<C, PluginError> {
    serde_json::from_str(config)
        .map_err(|e| PluginError::config(format!("invalid configuration: {e}")))
}

/// The JSON Schema of a configured stream (its selected fields).
pub fn stream_schema(stream: &ConfiguredStream) -> Result<serde_json::Value, PluginError> {
    serde_json::from_str(&stream.json_schema)
        .map_err(|e| PluginError::config(format!("stream schema: {e}")))
}

/// The saved state of `stream` among a read's checkpoints, parsed as `T`;
/// `None` when the stream has none yet.
pub fn saved_state<T: DeserializeOwned>(
    state: &[Checkpoint],
    stream: &str,
) -> Result<Option<T>, PluginError> {
    state
        .iter()
        .find(|c| c.stream_name.as_deref() == Some(stream))
        .map(|c| {
            serde_json::from_str(&c.state).map_err(|e| {
                PluginError::config(format!(
                    "the saved state of stream `{stream}` is not this connector's: {e}"
                ))
            })
        })
        .transpose()
}

/// A stream with a JSON Schema and the sync modes it supports; the other
/// fields empty.
pub fn stream_info(
    name: impl Into<String>,
    json_schema: &serde_json::Value,
    sync_modes: Vec<SyncMode>,
) -> StreamInfo {
    StreamInfo {
        name: name.into(),
        namespace: None,
        json_schema: json_schema.to_string(),
        sync_modes,
        cursor_candidates: Vec::new(),
        primary_key_candidates: Vec::new(),
        estimated_rows: None,
    }
}

// What `export_plugin!` calls: the glue between the WIT exports and the traits.

#[doc(hidden)]
pub fn source_spec<S: Source>(source: &S) -> SourceSpec {
    let schema = schemars::schema_for!(S::Config).to_value();
    SourceSpec {
        secret_fields: secret_fields(&schema),
        config_schema: schema.to_string(),
        formats: with_arrow(source.formats()),
    }
}

#[doc(hidden)]
pub fn source_check<S: Source>(source: &S, config: &str) -> Result<(), crate::wit::PluginError> {
    source.check(&parse_config(config)?).map_err(|e| e.to_wit())
}

#[doc(hidden)]
pub fn source_discover<S: Source>(
    source: &S,
    config: &str,
) -> Result<crate::wit::Catalog, crate::wit::PluginError> {
    let streams = source
        .discover(&parse_config(config)?)
        .map_err(|e| e.to_wit())?;
    Ok(crate::wit::Catalog { streams })
}

#[doc(hidden)]
pub fn source_read<S: Source>(
    source: &S,
    request: ReadRequest,
) -> Result<Box<dyn Reader>, crate::wit::PluginError> {
    let config = parse_config(&request.config)?;
    source.read(config, request).map_err(|e| e.to_wit())
}

#[doc(hidden)]
pub fn destination_spec<D: Destination>(destination: &D) -> DestinationSpec {
    let schema = schemars::schema_for!(D::Config).to_value();
    DestinationSpec {
        secret_fields: secret_fields(&schema),
        config_schema: schema.to_string(),
        formats: with_arrow(destination.formats()),
        write_modes: destination.write_modes(),
        delivery: destination.delivery(),
    }
}

#[doc(hidden)]
pub fn destination_check<D: Destination>(
    destination: &D,
    config: &str,
) -> Result<(), crate::wit::PluginError> {
    destination
        .check(&parse_config(config)?)
        .map_err(|e| e.to_wit())
}

#[doc(hidden)]
pub fn destination_open<D: Destination>(
    destination: &D,
    request: WriteRequest,
) -> Result<Box<dyn Writer>, crate::wit::PluginError> {
    let config = parse_config(&request.config)?;
    destination.open(config, request).map_err(|e| e.to_wit())
}
