//! Running a sync: one source session and one destination session for the
//! whole sync, joined by a bounded queue.
//!
//! The source runs on a task of its own and is pulled (`reader.next`) only
//! while the queue has room, so a slow destination holds it back and a
//! sync's memory is bounded by `queue_depth × max_batch_bytes` whatever
//! the size of the source. The destination commits at checkpoints; only
//! after a commit succeeded is the state handed to the [`SyncSink`] (the
//! engine saves it). On start the destination's `last-commit` wins over
//! the saved state, which covers a crash between the destination's commit
//! and the engine's save.

use crate::PluginHost;
use crate::bindings::latest::types as wit;
use crate::connector::connector;
use crate::convert;
use crate::error::InvokeError;
use crate::session::{ConnectorFailure, Session, SessionOptions};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmtime::component::ResourceAny;
use weft_model::{
    BatchFormat, Checkpoint, CommitMarker, ConfiguredStream, ConnectorRole, PluginDigest,
    StreamStatus, merge_checkpoints, negotiate_format,
};

/// One side of a sync: a connector and its connection's configuration.
#[derive(Debug, Clone)]
pub struct SyncSide {
    /// The connector plugin.
    pub plugin: PluginDigest,
    /// The connection's configuration (secrets decrypted).
    pub config: serde_json::Value,
    /// Limits (wall clock and CPU for the whole sync), secrets and logs.
    /// The cancellation token is replaced by the sync's.
    pub options: SessionOptions,
}

impl SyncSide {
    /// A side with default options.
    pub fn new(plugin: PluginDigest, config: serde_json::Value) -> Self {
        Self {
            plugin,
            config,
            options: SessionOptions::default(),
        }
    }
}

/// Bounds on one `reader.next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Most rows in a batch.
    pub max_rows: u32,
    /// Target bytes of batch data.
    pub max_bytes: u64,
    /// Return within this many milliseconds.
    pub max_millis: u32,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_rows: 10_000,
            max_bytes: 4 << 20,
            max_millis: 1000,
        }
    }
}

/// Where a sync's commits and progress go. The engine implements it.
pub trait SyncSink: Send + Sync {
    /// The destination made `marker` durable: save its state. The next
    /// batch is not written until this returns; an error fails the sync
    /// (the destination still holds the marker, so the next sync adopts it).
    fn committed<'a>(
        &'a self,
        marker: &'a CommitMarker,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

    /// Rows and bytes so far; called after batches, at most a few times a second.
    fn progress(&self, _progress: &SyncProgress) {}
}

/// A sink that keeps nothing: for tests and dry runs.
impl SyncSink for () {
    fn committed<'a>(
        &'a self,
        _marker: &'a CommitMarker,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async { Ok(()) })
    }
}

/// Everything a sync needs.
pub struct SyncRequest {
    /// The sync run; the same on every attempt (the destination uses it
    /// to find what an interrupted attempt left).
    pub sync_id: String,
    /// Where rows come from.
    pub source: SyncSide,
    /// Where rows go.
    pub destination: SyncSide,
    /// The selected streams.
    pub streams: Vec<ConfiguredStream>,
    /// State saved after the last commit the engine knows of.
    pub state: Vec<Checkpoint>,
    /// The seq of that commit (0 before the first).
    pub committed_seq: u64,
    /// Bounds per `reader.next`.
    pub read_limits: ReadLimits,
    /// Least time between two commits at checkpoints (the last commit is
    /// always made); zero commits at every checkpoint.
    pub commit_interval: Duration,
    /// Read items the queue between the two sides holds.
    pub queue_depth: usize,
    /// Largest batch accepted from the source.
    pub max_batch_bytes: usize,
    /// Receives commits and progress.
    pub sink: Arc<dyn SyncSink>,
    /// Stops both sides within a second.
    pub cancel: CancellationToken,
}

impl SyncRequest {
    /// A request with default limits, an empty state and a sink that keeps nothing.
    pub fn new(
        sync_id: impl Into<String>,
        source: SyncSide,
        destination: SyncSide,
        streams: Vec<ConfiguredStream>,
    ) -> Self {
        Self {
            sync_id: sync_id.into(),
            source,
            destination,
            streams,
            state: Vec::new(),
            committed_seq: 0,
            read_limits: ReadLimits::default(),
            commit_interval: Duration::from_secs(1),
            queue_depth: 4,
            max_batch_bytes: 64 << 20,
            sink: Arc::new(()),
            cancel: CancellationToken::new(),
        }
    }
}

/// Counters of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamCounters {
    /// The stream.
    pub stream: String,
    /// Rows written to the destination.
    pub rows: u64,
    /// Bytes of batch data written.
    pub bytes: u64,
    /// Batches written.
    pub batches: u64,
    /// The source's last status for it.
    pub status: Option<StreamStatus>,
    /// The source's estimate of its rows.
    pub estimated_rows: Option<u64>,
}

/// How far a sync has got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Per stream, in the order the streams were configured.
    pub streams: Vec<StreamCounters>,
    /// The last commit's seq.
    pub committed_seq: u64,
}

/// How a sync ended when it succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReport {
    /// The batch format both sides used.
    pub format: BatchFormat,
    /// Counters per stream.
    pub progress: SyncProgress,
    /// Commits made by this sync.
    pub commits: u32,
    /// The state after the final commit.
    pub state: Vec<Checkpoint>,
    /// Set when the destination's last commit was newer than the saved
    /// state and was adopted (a crash after the destination committed).
    pub adopted: Option<CommitMarker>,
}

/// Why a sync failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} failed: {failure}", side.map_or("the sync".to_owned(), |s| format!("the {s}")))]
pub struct SyncError {
    /// The side that failed; `None` for the sink or a cancelled sync.
    pub side: Option<ConnectorRole>,
    /// What happened.
    pub failure: ConnectorFailure,
    /// The last seq committed (and handed to the sink) before it failed.
    pub committed_seq: u64,
}

/// What the source task sends the destination.
enum Item {
    Batch(wit::Batch),
    Checkpoint(Checkpoint),
    Status(wit::StreamProgress),
    Done,
}

/// The bounds of the source task.
struct SourcePlan {
    streams: Vec<String>,
    format: BatchFormat,
    limits: wit::ReadLimits,
    max_batch_bytes: usize,
}

impl PluginHost {
    /// Runs a sync to the end. The destination is aborted when either side
    /// fails; state reaches the sink only after the destination committed.
    pub async fn sync(&self, req: SyncRequest) -> Result<SyncReport, SyncError> {
        let fail = |side, failure: ConnectorFailure, seq| SyncError {
            side,
            failure,
            committed_seq: seq,
        };
        let src_plugin = connector(self, &req.source.plugin, ConnectorRole::Source)
            .map_err(|e| fail(Some(ConnectorRole::Source), e.into(), req.committed_seq))?;
        let dst_plugin = connector(self, &req.destination.plugin, ConnectorRole::Destination)
            .map_err(|e| {
                fail(
                    Some(ConnectorRole::Destination),
                    e.into(),
                    req.committed_seq,
                )
            })?;
        let (Some(src_spec), Some(dst_spec)) = (
            src_plugin.manifest.source.as_ref(),
            dst_plugin.manifest.destination.as_ref(),
        ) else {
            return Err(fail(
                None,
                InvokeError::Protocol("a connector lost its spec".into()).into(),
                req.committed_seq,
            ));
        };
        let format = negotiate_format(&src_spec.formats, &dst_spec.formats);

        let src_cancel = req.cancel.child_token();
        let dst_cancel = req.cancel.child_token();
        let mut dst_options = req.destination.options.clone();
        dst_options.cancel = dst_cancel.clone();
        let dest = Session::open(&self.engine, dst_plugin.clone(), dst_options)
            .await
            .map_err(|e| {
                fail(
                    Some(ConnectorRole::Destination),
                    e.into(),
                    req.committed_seq,
                )
            })?;
        let mut dest = Destination {
            session: dest,
            writer: None,
        };
        let opened = dest
            .open(&req, &format)
            .await
            .map_err(|e| fail(Some(ConnectorRole::Destination), e, req.committed_seq));
        let adopted = match opened {
            Ok(marker) => marker.filter(|m| m.seq != req.committed_seq),
            Err(e) => {
                dest.abort().await;
                return Err(e);
            }
        };
        let (mut state, mut seq) = (req.state.clone(), req.committed_seq);
        if let Some(marker) = &adopted {
            tracing::info!(
                sync = %req.sync_id,
                saved = req.committed_seq,
                destination = marker.seq,
                "adopting the destination's last commit"
            );
            if let Err(e) = req.sink.committed(marker).await {
                dest.abort().await;
                return Err(fail(
                    None,
                    InvokeError::Protocol(format!("saving state: {e}")).into(),
                    seq,
                ));
            }
            state = marker.state.clone();
            seq = marker.seq;
        }

        let mut src_options = req.source.options.clone();
        src_options.cancel = src_cancel.clone();
        let plan = SourcePlan {
            streams: req.streams.iter().map(|s| s.name.clone()).collect(),
            format: format.clone(),
            limits: wit::ReadLimits {
                max_rows: req.read_limits.max_rows,
                max_bytes: req.read_limits.max_bytes,
                max_millis: req.read_limits.max_millis,
            },
            max_batch_bytes: req.max_batch_bytes,
        };
        let read_request = wit::ReadRequest {
            config: req.source.config.to_string(),
            streams: req
                .streams
                .iter()
                .map(convert::configured_stream_to)
                .collect(),
            state: state.iter().map(convert::checkpoint_to).collect(),
            format: convert::format_to(&plan.format),
        };
        let (tx, rx) = mpsc::channel(req.queue_depth.max(1));
        let engine = self.engine.clone();
        let source = tokio::spawn(async move {
            let session = Session::open(&engine, src_plugin, src_options).await?;
            run_source(session, read_request, plan, tx).await
        });

        let mut pump = Pump {
            progress: SyncProgress {
                streams: req
                    .streams
                    .iter()
                    .map(|s| StreamCounters {
                        stream: s.name.clone(),
                        ..Default::default()
                    })
                    .collect(),
                committed_seq: seq,
            },
            state,
            seq,
            commits: 0,
        };
        let pumped = pump.run(&mut dest, rx, &req, &dst_cancel).await;
        match pumped {
            Ok(()) => {
                // The source sent `done`; its task ends on its own.
                let _ = source.await;
                Ok(SyncReport {
                    format,
                    progress: pump.progress,
                    commits: pump.commits,
                    state: pump.state,
                    adopted,
                })
            }
            Err(PumpError::SourceEnded) => {
                let failure = match source.await {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => {
                        InvokeError::Protocol("the source stopped without sending done".into())
                            .into()
                    }
                    Err(e) => InvokeError::Trap {
                        message: format!("the source task failed: {e}"),
                    }
                    .into(),
                };
                dest.abort().await;
                let side = (!req.cancel.is_cancelled()).then_some(ConnectorRole::Source);
                Err(fail(side, failure, pump.seq))
            }
            Err(PumpError::Destination(failure)) => {
                src_cancel.cancel();
                let _ = source.await;
                dest.abort().await;
                let side = (!req.cancel.is_cancelled()).then_some(ConnectorRole::Destination);
                Err(fail(side, failure, pump.seq))
            }
            Err(PumpError::Sink(message)) => {
                src_cancel.cancel();
                let _ = source.await;
                dest.abort().await;
                Err(fail(
                    None,
                    InvokeError::Protocol(format!("saving state: {message}")).into(),
                    pump.seq,
                ))
            }
        }
    }
}

/// Pulls the reader until `done`, checking each item, and queues it.
async fn run_source(
    mut session: Session,
    request: wit::ReadRequest,
    plan: SourcePlan,
    tx: mpsc::Sender<Item>,
) -> Result<(), ConnectorFailure> {
    let plugin = session.plugin.clone();
    let idx = plugin
        .source
        .as_ref()
        .ok_or_else(|| InvokeError::Protocol("not a source".into()))?;
    let opened = session
        .call(async |store, instance| {
            idx.load(&mut *store, instance)?
                .reader()
                .call_open(&mut *store, &request)
                .await
        })
        .await?;
    let reader: ResourceAny = opened.map_err(|e| session.plugin_failure(e))?;
    loop {
        let item = session
            .call(async |store, instance| {
                idx.load(&mut *store, instance)?
                    .reader()
                    .call_next(&mut *store, reader, plan.limits)
                    .await
            })
            .await?
            .map_err(|e| session.plugin_failure(e))?;
        let item = check_item(item, &plan)?;
        let done = matches!(item, Item::Done);
        // A full queue parks the source here: back-pressure.
        if tx.send(item).await.is_err() || done {
            // The destination side stopped listening (it failed or was cancelled).
            return Ok(());
        }
    }
}

/// Refuses what the sync did not agree to: unknown streams, another format, oversize batches.
fn check_item(item: wit::ReadItem, plan: &SourcePlan) -> Result<Item, InvokeError> {
    let known = |s: &str| plan.streams.iter().any(|n| n == s);
    match item {
        wit::ReadItem::Batch(b) => {
            if !known(&b.stream_name) {
                return Err(InvokeError::Protocol(format!(
                    "the source sent a batch of stream {:?}, which the sync did not select",
                    b.stream_name
                )));
            }
            let format = convert::format_from(b.format.clone());
            if format != plan.format {
                return Err(InvokeError::Protocol(format!(
                    "the source sent a batch as {format}, the sync agreed on {}",
                    plan.format
                )));
            }
            if b.data.len() > plan.max_batch_bytes {
                return Err(InvokeError::OutputTooLarge {
                    size: b.data.len() as u64,
                    limit: plan.max_batch_bytes as u64,
                });
            }
            Ok(Item::Batch(b))
        }
        wit::ReadItem::Checkpoint(c) => {
            if let Some(s) = &c.stream_name
                && !known(s)
            {
                return Err(InvokeError::Protocol(format!(
                    "the source sent a checkpoint of stream {s:?}, which the sync did not select"
                )));
            }
            Ok(Item::Checkpoint(convert::checkpoint_from(c)?))
        }
        wit::ReadItem::StreamStatus(s) => {
            if !known(&s.stream_name) {
                return Err(InvokeError::Protocol(format!(
                    "the source sent the status of stream {:?}, which the sync did not select",
                    s.stream_name
                )));
            }
            Ok(Item::Status(s))
        }
        wit::ReadItem::Done => Ok(Item::Done),
    }
}

/// The destination session and its open writer.
struct Destination {
    session: Session,
    writer: Option<ResourceAny>,
}

impl Destination {
    /// Opens the writer and reads its last commit.
    async fn open(
        &mut self,
        req: &SyncRequest,
        format: &BatchFormat,
    ) -> Result<Option<CommitMarker>, ConnectorFailure> {
        let plugin = self.session.plugin.clone();
        let idx = plugin
            .destination
            .as_ref()
            .ok_or_else(|| InvokeError::Protocol("not a destination".into()))?;
        let request = wit::WriteRequest {
            config: req.destination.config.to_string(),
            streams: req
                .streams
                .iter()
                .map(convert::configured_stream_to)
                .collect(),
            format: convert::format_to(format),
            sync_id: req.sync_id.clone(),
        };
        let opened = self
            .session
            .call(async |store, instance| {
                idx.load(&mut *store, instance)?
                    .writer()
                    .call_open(&mut *store, &request)
                    .await
            })
            .await?;
        let writer = opened.map_err(|e| self.session.plugin_failure(e))?;
        self.writer = Some(writer);
        let last = self
            .session
            .call(async |store, instance| {
                idx.load(&mut *store, instance)?
                    .writer()
                    .call_last_commit(&mut *store, writer)
                    .await
            })
            .await?
            .map_err(|e| self.session.plugin_failure(e))?;
        Ok(last.map(convert::marker_from).transpose()?)
    }

    async fn write(&mut self, batch: wit::Batch) -> Result<(), ConnectorFailure> {
        let plugin = self.session.plugin.clone();
        let (Some(idx), Some(writer)) = (plugin.destination.as_ref(), self.writer) else {
            return Err(InvokeError::Protocol("the writer is not open".into()).into());
        };
        self.session
            .call(async |store, instance| {
                idx.load(&mut *store, instance)?
                    .writer()
                    .call_write(&mut *store, writer, &batch)
                    .await
            })
            .await?
            .map_err(|e| self.session.plugin_failure(e))
    }

    async fn commit(&mut self, marker: &CommitMarker, last: bool) -> Result<(), ConnectorFailure> {
        let plugin = self.session.plugin.clone();
        let (Some(idx), Some(writer)) = (plugin.destination.as_ref(), self.writer) else {
            return Err(InvokeError::Protocol("the writer is not open".into()).into());
        };
        let marker = convert::marker_to(marker);
        self.session
            .call(async |store, instance| {
                idx.load(&mut *store, instance)?
                    .writer()
                    .call_commit(&mut *store, writer, &marker, last)
                    .await
            })
            .await?
            .map_err(|e| self.session.plugin_failure(e))
    }

    /// Discards what is not committed; best effort (the instance may have
    /// trapped, and the next `open` of the same sync discards leftovers too).
    async fn abort(&mut self) {
        let plugin = self.session.plugin.clone();
        let (Some(idx), Some(writer)) = (plugin.destination.as_ref(), self.writer.take()) else {
            return;
        };
        if !self.session.usable() {
            return;
        }
        if let Err(e) = self
            .session
            .call(async |store, instance| {
                idx.load(&mut *store, instance)?
                    .writer()
                    .call_abort(&mut *store, writer)
                    .await
            })
            .await
        {
            tracing::warn!("aborting the destination failed: {e}");
        }
    }
}

enum PumpError {
    /// The queue closed without `done`: the source failed or was cancelled.
    SourceEnded,
    Destination(ConnectorFailure),
    Sink(String),
}

/// The destination side's loop: write batches, commit at checkpoints.
struct Pump {
    progress: SyncProgress,
    state: Vec<Checkpoint>,
    seq: u64,
    commits: u32,
}

/// Least time between two progress reports.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

impl Pump {
    async fn run(
        &mut self,
        dest: &mut Destination,
        mut rx: mpsc::Receiver<Item>,
        req: &SyncRequest,
        cancel: &CancellationToken,
    ) -> Result<(), PumpError> {
        let mut last_commit = Instant::now();
        let mut last_progress = Instant::now();
        let index: HashMap<String, usize> = req
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        loop {
            let item = tokio::select! {
                item = rx.recv() => item,
                () = cancel.cancelled() => {
                    return Err(PumpError::Destination(InvokeError::Cancelled.into()));
                }
            };
            match item {
                None => return Err(PumpError::SourceEnded),
                Some(Item::Batch(batch)) => {
                    let (rows, bytes) = (u64::from(batch.rows), batch.data.len() as u64);
                    let i = index.get(&batch.stream_name).copied();
                    dest.write(batch).await.map_err(PumpError::Destination)?;
                    if let Some(c) = i.and_then(|i| self.progress.streams.get_mut(i)) {
                        c.rows += rows;
                        c.bytes += bytes;
                        c.batches += 1;
                    }
                    if last_progress.elapsed() >= PROGRESS_INTERVAL {
                        req.sink.progress(&self.progress);
                        last_progress = Instant::now();
                    }
                }
                Some(Item::Checkpoint(c)) => {
                    merge_checkpoints(&mut self.state, c);
                    if last_commit.elapsed() >= req.commit_interval {
                        self.commit(dest, req, false).await?;
                        last_commit = Instant::now();
                    }
                }
                Some(Item::Status(s)) => {
                    if let Some(c) = index
                        .get(&s.stream_name)
                        .and_then(|&i| self.progress.streams.get_mut(i))
                    {
                        c.status = Some(convert::stream_status_from(s.status));
                        c.estimated_rows = s.estimated_rows.or(c.estimated_rows);
                    }
                }
                Some(Item::Done) => {
                    self.commit(dest, req, true).await?;
                    req.sink.progress(&self.progress);
                    return Ok(());
                }
            }
        }
    }

    async fn commit(
        &mut self,
        dest: &mut Destination,
        req: &SyncRequest,
        last: bool,
    ) -> Result<(), PumpError> {
        let marker = CommitMarker {
            seq: self.seq + 1,
            state: self.state.clone(),
        };
        dest.commit(&marker, last)
            .await
            .map_err(PumpError::Destination)?;
        self.seq = marker.seq;
        self.commits += 1;
        self.progress.committed_seq = marker.seq;
        req.sink.committed(&marker).await.map_err(PumpError::Sink)
    }
}
