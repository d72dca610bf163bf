//! Helpers for unit-testing a plugin natively (`cargo test`), without a
//! host: invocations for steps, and for connectors an in-process harness
//! ([`discover`], [`read_all`], [`write_all`]) that drives them as a sync does.
//!
//! Steps that call [`host`](crate::host) or [`http`](crate::http) functions
//! cannot run natively: those imports only exist inside a Weft host.

use crate::bindings::weft::plugin::types::Invocation;

/// An invocation of `step_type` with `input`, attempt 1, ids `run-test` /
/// `step-test` and no answer. Set `answer` on the result to simulate the
/// answer to an input request.
pub fn invocation(step_type: &str, input: serde_json::Value) -> Invocation {
    Invocation {
        step_type: step_type.to_string(),
        input: input.to_string(),
        run_id: "run-test".to_string(),
        step_id: "step-test".to_string(),
        attempt: 1,
        answer: None,
    }
}

use crate::PluginError;
use crate::batch::BatchExt;
use crate::connector::{Destination, Source, parse_config};
use crate::wit::{
    Batch, BatchFormat, Checkpoint, CommitMarker, ConfiguredStream, ReadItem, ReadLimits,
    ReadRequest, StreamInfo, StreamStatus, SyncMode, WriteMode, WriteRequest,
};

/// Calls to `reader.next` after which [`read_all`] gives up: a reader that
/// never says `done` is a bug the harness reports instead of hanging.
pub const MAX_PULLS: usize = 1_000_000;

/// What a full read produced, in order of arrival.
#[derive(Debug, Default)]
pub struct ReadOutput {
    /// The batches.
    pub batches: Vec<Batch>,
    /// The checkpoints.
    pub checkpoints: Vec<Checkpoint>,
    /// Each stream status, as `(stream, status)`.
    pub statuses: Vec<(String, StreamStatus)>,
}

impl ReadOutput {
    /// Every row of `stream`, decoded to JSON whatever the batch format.
    pub fn rows(
        &self,
        stream: &str,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, PluginError> {
        let mut rows = Vec::new();
        for b in self.batches.iter().filter(|b| b.stream_name == stream) {
            rows.extend(b.json_rows()?);
        }
        Ok(rows)
    }

    /// The last checkpoint of each stream, as a sync would save it.
    pub fn state(&self) -> Vec<Checkpoint> {
        let mut out: Vec<Checkpoint> = Vec::new();
        for c in &self.checkpoints {
            match out.iter_mut().find(|o| o.stream_name == c.stream_name) {
                Some(o) => o.state = c.state.clone(),
                None => out.push(c.clone()),
            }
        }
        out
    }
}

fn same_format(a: &BatchFormat, b: &BatchFormat) -> bool {
    match (a, b) {
        (BatchFormat::ArrowIpc, BatchFormat::ArrowIpc) => true,
        (BatchFormat::Other(x), BatchFormat::Other(y)) => x == y,
        _ => false,
    }
}

/// A stream selected as discovered: every field, the first sync mode it
/// offers (full refresh unless it offers nothing), appended.
pub fn configure(stream: &StreamInfo, sync_mode: Option<SyncMode>) -> ConfiguredStream {
    ConfiguredStream {
        name: stream.name.clone(),
        namespace: stream.namespace.clone(),
        json_schema: stream.json_schema.clone(),
        fields: Vec::new(),
        sync_mode: sync_mode
            .or_else(|| stream.sync_modes.first().copied())
            .unwrap_or(SyncMode::FullRefresh),
        cursor_field: None,
        primary_key: stream
            .primary_key_candidates
            .first()
            .cloned()
            .unwrap_or_default(),
        write_mode: WriteMode::Append,
    }
}

/// Runs `check`, then `discover`, of `source` with `config`, in-process.
pub fn discover<S: Source>(
    source: &S,
    config: serde_json::Value,
) -> Result<Vec<StreamInfo>, PluginError> {
    let config: S::Config = parse_config(&config.to_string())?;
    source.check(&config)?;
    source.discover(&config)
}

/// A read as the host would drive it: opens `request`, then pulls with
/// `limits` until `done`, checking each item like the host does (known
/// streams, the agreed format, row counts that match the batch).
pub fn read_all<S: Source>(
    source: &S,
    request: ReadRequest,
    limits: ReadLimits,
) -> Result<ReadOutput, PluginError> {
    let known: Vec<String> = request.streams.iter().map(|s| s.name.clone()).collect();
    let format = request.format.clone();
    let mut reader = source.read(parse_config(&request.config)?, request)?;
    let mut out = ReadOutput::default();
    let unknown = |s: &str| {
        (!known.iter().any(|k| k == s)).then(|| {
            PluginError::internal(format!(
                "the reader sent stream {s:?}, which was not selected"
            ))
        })
    };
    for _ in 0..MAX_PULLS {
        match reader.next(&limits)? {
            ReadItem::Batch(b) => {
                if let Some(e) = unknown(&b.stream_name) {
                    return Err(e);
                }
                if !same_format(&b.format, &format) {
                    return Err(PluginError::internal(format!(
                        "the reader sent a batch as {:?}, not the agreed {format:?}",
                        b.format
                    )));
                }
                let decoded = b.json_rows()?.len();
                if decoded != b.rows as usize {
                    return Err(PluginError::internal(format!(
                        "a batch says {} rows and holds {decoded}",
                        b.rows
                    )));
                }
                out.batches.push(b);
            }
            ReadItem::Checkpoint(c) => {
                if let Some(e) = c.stream_name.as_deref().and_then(unknown) {
                    return Err(e);
                }
                serde_json::from_str::<serde_json::Value>(&c.state).map_err(|e| {
                    PluginError::internal(format!("a checkpoint's state is not JSON: {e}"))
                })?;
                out.checkpoints.push(c);
            }
            ReadItem::StreamStatus(s) => {
                if let Some(e) = unknown(&s.stream_name) {
                    return Err(e);
                }
                out.statuses.push((s.stream_name, s.status));
            }
            ReadItem::Done => return Ok(out),
        }
    }
    Err(PluginError::internal(format!(
        "the reader did not finish within {MAX_PULLS} pulls"
    )))
}

/// A write as the host would drive it: opens `request`, writes `batches`,
/// committing after each one (seq 1, 2, ... after the writer's last
/// commit; the last commit final), and returns the writer's last commit as
/// it reports it afterwards.
pub fn write_all<D: Destination>(
    destination: &D,
    request: WriteRequest,
    batches: Vec<Batch>,
) -> Result<Option<CommitMarker>, PluginError> {
    let mut writer = destination.open(parse_config(&request.config)?, request)?;
    let start = writer.last_commit()?.map_or(0, |m| m.seq);
    let count = batches.len();
    for (i, batch) in batches.into_iter().enumerate() {
        if let Err(e) = writer.write(batch) {
            writer.abort();
            return Err(e);
        }
        let last = i + 1 == count;
        writer.commit(
            CommitMarker {
                seq: start + i as u64 + 1,
                state: Vec::new(),
            },
            last,
        )?;
    }
    if count == 0 {
        writer.commit(
            CommitMarker {
                seq: start + 1,
                state: Vec::new(),
            },
            true,
        )?;
    }
    writer.last_commit()
}
