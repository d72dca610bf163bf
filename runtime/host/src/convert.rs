//! Conversions between the latest contract's connector records and the
//! domain types of `weft-model`, so nothing above the host sees WIT types.

use crate::bindings::latest::types as wit;
use crate::error::InvokeError;
use weft_model::{
    BatchFormat, Catalog, Checkpoint, CommitMarker, ConfiguredStream, Delivery, JsonLimits,
    RawDestinationSpec, RawSourceSpec, StreamInfo, StreamStatus, SyncMode, WriteMode, parse_json,
};

/// Largest JSON Schema of one stream in a catalog.
const MAX_STREAM_SCHEMA_BYTES: usize = 1 << 20;
/// Largest state document of one checkpoint.
pub(crate) const MAX_STATE_BYTES: usize = 1 << 20;
/// Most streams in a catalog.
pub(crate) const MAX_STREAMS: usize = 10_000;

pub(crate) fn format_from(f: wit::BatchFormat) -> BatchFormat {
    match f {
        wit::BatchFormat::ArrowIpc => BatchFormat::ArrowIpc,
        wit::BatchFormat::Other(name) => BatchFormat::from(name),
    }
}

pub(crate) fn format_to(f: &BatchFormat) -> wit::BatchFormat {
    match f {
        BatchFormat::ArrowIpc => wit::BatchFormat::ArrowIpc,
        BatchFormat::Other(name) => wit::BatchFormat::Other(name.clone()),
    }
}

fn sync_mode_from(m: wit::SyncMode) -> SyncMode {
    match m {
        wit::SyncMode::FullRefresh => SyncMode::FullRefresh,
        wit::SyncMode::Incremental => SyncMode::Incremental,
    }
}

fn sync_mode_to(m: SyncMode) -> wit::SyncMode {
    match m {
        SyncMode::FullRefresh => wit::SyncMode::FullRefresh,
        SyncMode::Incremental => wit::SyncMode::Incremental,
    }
}

fn write_mode_from(m: wit::WriteMode) -> WriteMode {
    match m {
        wit::WriteMode::Append => WriteMode::Append,
        wit::WriteMode::Overwrite => WriteMode::Overwrite,
        wit::WriteMode::Upsert => WriteMode::Upsert,
    }
}

fn write_mode_to(m: WriteMode) -> wit::WriteMode {
    match m {
        WriteMode::Append => wit::WriteMode::Append,
        WriteMode::Overwrite => wit::WriteMode::Overwrite,
        WriteMode::Upsert => wit::WriteMode::Upsert,
    }
}

pub(crate) fn raw_source_spec(s: wit::SourceSpec) -> RawSourceSpec {
    RawSourceSpec {
        config_schema: s.config_schema,
        secret_fields: s.secret_fields,
        formats: s.formats.into_iter().map(format_from).collect(),
    }
}

pub(crate) fn raw_destination_spec(s: wit::DestinationSpec) -> RawDestinationSpec {
    RawDestinationSpec {
        config_schema: s.config_schema,
        secret_fields: s.secret_fields,
        formats: s.formats.into_iter().map(format_from).collect(),
        write_modes: s.write_modes.into_iter().map(write_mode_from).collect(),
        delivery: match s.delivery {
            wit::Delivery::ExactlyOnce => Delivery::ExactlyOnce,
            wit::Delivery::AtLeastOnce => Delivery::AtLeastOnce,
        },
    }
}

fn invalid(what: impl std::fmt::Display) -> InvokeError {
    InvokeError::InvalidOutput(what.to_string())
}

/// A discovered catalog, with every stream's schema parsed within limits.
pub(crate) fn catalog_from(c: wit::Catalog) -> Result<Catalog, InvokeError> {
    if c.streams.len() > MAX_STREAMS {
        return Err(invalid(format!(
            "the catalog has {} streams; at most {MAX_STREAMS} are accepted",
            c.streams.len()
        )));
    }
    let streams =
        c.streams
            .into_iter()
            .map(|s| {
                let json_schema =
                    parse_json(&s.json_schema, JsonLimits::bytes(MAX_STREAM_SCHEMA_BYTES))
                        .map_err(|e| {
                            invalid(format!(
                                "stream {:?}: schema is not acceptable JSON: {e}",
                                s.name
                            ))
                        })?;
                Ok(StreamInfo {
                    name: s.name,
                    namespace: s.namespace,
                    json_schema,
                    sync_modes: s.sync_modes.into_iter().map(sync_mode_from).collect(),
                    cursor_candidates: s.cursor_candidates,
                    primary_key_candidates: s.primary_key_candidates,
                    estimated_rows: s.estimated_rows,
                })
            })
            .collect::<Result<_, InvokeError>>()?;
    Ok(Catalog { streams })
}

pub(crate) fn configured_stream_to(s: &ConfiguredStream) -> wit::ConfiguredStream {
    wit::ConfiguredStream {
        name: s.name.clone(),
        namespace: s.namespace.clone(),
        json_schema: s.json_schema.to_string(),
        fields: s.fields.clone(),
        sync_mode: sync_mode_to(s.sync_mode),
        cursor_field: s.cursor_field.clone(),
        primary_key: s.primary_key.clone(),
        write_mode: write_mode_to(s.write_mode),
    }
}

pub(crate) fn checkpoint_to(c: &Checkpoint) -> wit::Checkpoint {
    wit::Checkpoint {
        stream_name: c.stream.clone(),
        state: c.state.to_string(),
    }
}

pub(crate) fn checkpoint_from(c: wit::Checkpoint) -> Result<Checkpoint, InvokeError> {
    let state = parse_json(&c.state, JsonLimits::bytes(MAX_STATE_BYTES))
        .map_err(|e| invalid(format!("checkpoint state is not acceptable JSON: {e}")))?;
    Ok(Checkpoint {
        stream: c.stream_name,
        state,
    })
}

pub(crate) fn marker_to(m: &CommitMarker) -> wit::CommitMarker {
    wit::CommitMarker {
        seq: m.seq,
        state: m.state.iter().map(checkpoint_to).collect(),
    }
}

pub(crate) fn marker_from(m: wit::CommitMarker) -> Result<CommitMarker, InvokeError> {
    Ok(CommitMarker {
        seq: m.seq,
        state: m
            .state
            .into_iter()
            .map(checkpoint_from)
            .collect::<Result<_, _>>()?,
    })
}

pub(crate) fn stream_status_from(s: wit::StreamStatus) -> StreamStatus {
    match s {
        wit::StreamStatus::Started => StreamStatus::Started,
        wit::StreamStatus::Running => StreamStatus::Running,
        wit::StreamStatus::Complete => StreamStatus::Complete,
        wit::StreamStatus::Incomplete => StreamStatus::Incomplete,
    }
}
