//! The built-in step type `weft/sync`: one sync of a job, as a step of a
//! workflow run, so a sync has the run's logs, events, live feed, cancel
//! and retries, and can sit in any template between other steps.
//!
//! The step re-reads the job, its connections and the source's catalog at
//! every attempt (a stream or column that disappeared fails the step
//! before the destination is touched), then runs [`PluginHost::sync`]
//! with the state of the job's last destination commit. Each commit's state
//! is saved by [`StoreSink`] before the next batch is written, so an
//! attempt after a crash resumes from the last commit with the same sync
//! id (the run's), and the destination finds what the attempt before left.
//!
//! [`PluginHost::sync`]: weft_host::PluginHost::sync

use crate::EngineError;
use crate::connections::connector_failure;
use crate::shared::Shared;
use crate::sync_jobs::check_streams_exist;
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use weft_host::{
    ConnectorFailure, InvokeError, InvokeStepRequest, PluginEvent, SessionOptions, SyncError,
    SyncProgress, SyncRequest, SyncSide, SyncSink,
};
use weft_model::template::{CatalogMiss, ResolvedStepType};
use weft_model::{
    CommitMarker, ConnectorRole, LiveSync, LogLevel, PluginDigest, PluginError, PluginErrorKind,
    RunId, StepOutcome, StepTypeRef, StreamTotals, SyncJobId, SyncOutput, SyncState,
};

/// The plugin name of the engine's built-in step types (reserved: no
/// installed plugin may take it).
pub const BUILTIN_PLUGIN: &str = "weft";
/// The built-in sync step type.
pub const SYNC_STEP: &str = "sync";

/// The digest built-in step types pin: no component has it.
pub(crate) fn builtin_digest() -> PluginDigest {
    PluginDigest::from_sha256([0; 32])
}

/// Resolves `weft/<type>` to a built-in step type.
pub(crate) fn resolve_builtin(r: &StepTypeRef) -> Result<ResolvedStepType, CatalogMiss> {
    let version = semver::Version::parse(env!("CARGO_PKG_VERSION"))
        .unwrap_or_else(|_| semver::Version::new(0, 0, 0));
    if r.version.as_ref().is_some_and(|req| !req.matches(&version)) {
        return Err(CatalogMiss::NoMatchingVersion {
            available: vec![version],
        });
    }
    if r.step_type != SYNC_STEP {
        return Err(CatalogMiss::UnknownStepType {
            available: vec![SYNC_STEP.to_owned()],
        });
    }
    Ok(ResolvedStepType {
        plugin: BUILTIN_PLUGIN.to_owned(),
        version,
        digest: builtin_digest(),
        step_type: SYNC_STEP.to_owned(),
        input_schema: json!({
            "type": "object",
            "required": ["job"],
            "additionalProperties": false,
            "properties": {
                "job": {"type": "string", "minLength": 1, "maxLength": 128,
                        "description": "Id of the sync job to run."}
            }
        }),
        output_schema: json!({"type": "object"}),
    })
}

/// Whether a step of `plugin` is a built-in one.
pub(crate) fn is_builtin(plugin: &str) -> bool {
    plugin == BUILTIN_PLUGIN
}

/// Syncs in progress, by job: at most one per job in this process.
#[derive(Default)]
pub(crate) struct LiveSyncs {
    syncs: Mutex<std::collections::HashMap<SyncJobId, LiveSync>>,
}

impl LiveSyncs {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<SyncJobId, LiveSync>> {
        self.syncs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where a job's running sync has got to.
    pub(crate) fn get(&self, job: &SyncJobId) -> Option<LiveSync> {
        self.lock().get(job).cloned()
    }

    /// Claims the job for a sync; `None` while another one runs.
    fn claim(self: &Arc<Self>, job: &SyncJobId, run: &RunId) -> Option<LiveClaim> {
        let mut syncs = self.lock();
        if syncs.contains_key(job) {
            return None;
        }
        syncs.insert(
            job.clone(),
            LiveSync {
                run_id: Some(run.clone()),
                started_at: crate::now_ms(),
                ..LiveSync::default()
            },
        );
        Some(LiveClaim {
            syncs: self.clone(),
            job: job.clone(),
        })
    }

    fn update(&self, job: &SyncJobId, f: impl FnOnce(&mut LiveSync)) {
        if let Some(live) = self.lock().get_mut(job) {
            f(live);
        }
    }
}

/// Releases a job's claim when the sync ends, however it ends.
struct LiveClaim {
    syncs: Arc<LiveSyncs>,
    job: SyncJobId,
}

impl Drop for LiveClaim {
    fn drop(&mut self) {
        self.syncs.lock().remove(&self.job);
    }
}

/// The input of a `weft/sync` step.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncInput {
    job: SyncJobId,
}

fn failed(kind: PluginErrorKind, message: impl Into<String>, retryable: bool) -> StepOutcome {
    StepOutcome::Failed(PluginError {
        kind,
        message: message.into(),
        retryable,
        retry_after_ms: None,
        details: None,
    })
}

/// An engine error before the sync started, as the step's outcome.
fn setup_failure(e: EngineError) -> StepOutcome {
    match e {
        EngineError::Connector(f) => failure_outcome(None, &f),
        EngineError::InvalidConnection(ps) | EngineError::InvalidJob(ps) => {
            let text: Vec<String> = ps
                .iter()
                .map(|p| format!("{}: {}", p.pointer, p.message))
                .collect();
            let mut out = failed(PluginErrorKind::Config, text.join("; "), false);
            if let StepOutcome::Failed(err) = &mut out {
                err.details = serde_json::to_value(&ps)
                    .ok()
                    .map(|p| json!({"problems": p}));
            }
            out
        }
        EngineError::NotFound(what)
        | EngineError::Store(weft_store::StoreError::NotFound(what)) => {
            failed(PluginErrorKind::Config, format!("{what} not found"), false)
        }
        e => {
            let retryable = e.is_retryable();
            failed(PluginErrorKind::Internal, e.to_string(), retryable)
        }
    }
}

fn failure_outcome(side: Option<ConnectorRole>, f: &ConnectorFailure) -> StepOutcome {
    let side = side.map_or(String::new(), |s| format!("the {s}: "));
    match f {
        ConnectorFailure::Plugin(e) => StepOutcome::Failed(PluginError {
            message: format!("{side}{}", e.message),
            ..e.clone()
        }),
        ConnectorFailure::Host(e) => {
            let f = connector_failure(&ConnectorFailure::Host(e.clone()));
            failed(
                PluginErrorKind::Internal,
                format!("{side}{}", f.message),
                f.retryable,
            )
        }
    }
}

/// Runs one attempt of a `weft/sync` step.
pub(crate) async fn run(
    shared: Arc<Shared>,
    req: InvokeStepRequest,
) -> Result<StepOutcome, InvokeError> {
    let input: SyncInput = match serde_json::from_value(req.input.clone()) {
        Ok(i) => i,
        Err(e) => {
            return Ok(failed(
                PluginErrorKind::Config,
                format!("input: {e}"),
                false,
            ));
        }
    };
    let Some(_claim) = shared.live_syncs.claim(&input.job, &req.run_id) else {
        return Ok(failed(
            PluginErrorKind::Transient,
            format!("another sync of job {} is running", input.job),
            true,
        ));
    };
    let prepared = match prepare(&shared, &input.job, &req).await {
        Ok(p) => p,
        Err(e) => return Ok(setup_failure(e)),
    };
    let Prepared {
        mut sync,
        initial_seq,
    } = prepared;
    let sink = Arc::new(StoreSink {
        shared: shared.clone(),
        job: input.job.clone(),
        initial_seq,
        observer: req.observer.clone(),
        started: Instant::now(),
        last_log: Mutex::new(None),
    });
    sync.sink = sink.clone();
    sync.cancel = req.cancel.clone();
    log(
        req.observer.as_deref(),
        LogLevel::Info,
        format!(
            "sync {} of job {} from seq {initial_seq}: {} stream(s)",
            sync.sync_id,
            input.job,
            sync.streams.len()
        ),
    );
    match shared.host.sync(sync).await {
        Ok(report) => {
            let streams = totals(&report.progress);
            let output = SyncOutput {
                job: Some(input.job.clone()),
                format: report.format.to_string(),
                commits: report.commits,
                seq: report.progress.committed_seq,
                rows: streams.iter().map(|s| s.rows).sum(),
                bytes: streams.iter().map(|s| s.bytes).sum(),
                streams,
                adopted_seq: report.adopted.map(|m| m.seq),
            };
            log(
                req.observer.as_deref(),
                LogLevel::Info,
                format!(
                    "sync done: {} rows, {} bytes in {} commit(s), seq {}",
                    output.rows, output.bytes, output.commits, output.seq
                ),
            );
            serde_json::to_value(&output)
                .map(StepOutcome::Success)
                .map_err(|e| InvokeError::InvalidOutput(e.to_string()))
        }
        Err(SyncError {
            side,
            failure,
            committed_seq,
        }) => {
            log(
                req.observer.as_deref(),
                LogLevel::Error,
                format!("sync failed after commit {committed_seq}: {failure}"),
            );
            match failure {
                // The host's own verdicts keep their codes (TRAP, TIMEOUT…).
                ConnectorFailure::Host(e) => Err(e),
                f => Ok(failure_outcome(side, &f)),
            }
        }
    }
}

struct Prepared {
    sync: SyncRequest,
    initial_seq: u64,
}

/// The job, its connections (secrets opened), a fresh check of its
/// streams against the source's catalog, and the saved state.
async fn prepare(
    shared: &Shared,
    job_id: &SyncJobId,
    req: &InvokeStepRequest,
) -> Result<Prepared, EngineError> {
    let job = shared.store.sync_job(job_id).await?;
    let (src_entry, _, src_config) = shared.open_connection(&job.source).await?;
    let (dst_entry, _, dst_config) = shared.open_connection(&job.destination).await?;
    let catalog = shared.discover_with(&src_entry, src_config.clone()).await?;
    check_streams_exist(&catalog, &job.streams).map_err(EngineError::InvalidJob)?;
    let state = shared.store.sync_state(job_id).await?;
    let options = |limits| SessionOptions {
        limits: Some(limits),
        call_timeout: None,
        secrets: shared.secrets.clone(),
        observer: req.observer.clone(),
        cancel: req.cancel.clone(),
    };
    let limits = req
        .limits
        .clone()
        .unwrap_or_else(|| shared.config.sync_limits.clone());
    let sync_id = if req.step_id.as_str() == SYNC_STEP {
        req.run_id.to_string()
    } else {
        format!("{}-{}", req.run_id, req.step_id)
    };
    let mut sync = SyncRequest::new(
        sync_id,
        SyncSide {
            plugin: src_entry.digest,
            config: src_config,
            options: options(limits.clone()),
        },
        SyncSide {
            plugin: dst_entry.digest,
            config: dst_config,
            options: options(limits),
        },
        job.streams.clone(),
    );
    sync.state = state.state;
    sync.committed_seq = state.seq;
    sync.commit_interval = shared.config.sync_commit_interval;
    Ok(Prepared {
        sync,
        initial_seq: state.seq,
    })
}

fn log(observer: Option<&dyn weft_host::InvocationObserver>, level: LogLevel, message: String) {
    if let Some(o) = observer {
        o.on_event(PluginEvent::Log {
            at: std::time::SystemTime::now(),
            level,
            message,
            context: None,
            source: weft_model::LogSource::Engine,
        });
    }
}

/// The host's per-stream counters as the model's.
fn totals(progress: &SyncProgress) -> Vec<StreamTotals> {
    progress
        .streams
        .iter()
        .map(|s| StreamTotals {
            stream: s.stream.clone(),
            rows: s.rows,
            bytes: s.bytes,
            status: s.status,
            estimated_rows: s.estimated_rows,
        })
        .collect()
}

/// Saves each commit's state in the store and keeps the live counters.
struct StoreSink {
    shared: Arc<Shared>,
    job: SyncJobId,
    /// The seq the sync started from: a commit below it is the
    /// destination's marker adopted after the destination lost commits.
    initial_seq: u64,
    observer: Option<Arc<dyn weft_host::InvocationObserver>>,
    started: Instant,
    last_log: Mutex<Option<Instant>>,
}

/// Least time between two progress lines in a sync's log.
const PROGRESS_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl SyncSink for StoreSink {
    fn committed<'a>(
        &'a self,
        marker: &'a CommitMarker,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let state = SyncState {
                seq: marker.seq,
                state: marker.state.clone(),
                updated_at: crate::now_ms(),
            };
            let store = &self.shared.store;
            if marker.seq < self.initial_seq {
                store.replace_sync_state(&self.job, &state).await
            } else {
                store
                    .save_sync_state(&self.job, &state)
                    .await
                    .and_then(|saved| {
                        if saved {
                            Ok(())
                        } else {
                            Err(weft_store::StoreError::Conflict(format!(
                                "job {} has a newer state than commit {}: another sync got ahead",
                                self.job, marker.seq
                            )))
                        }
                    })
            }
            .map_err(|e| e.to_string())?;
            self.shared
                .live_syncs
                .update(&self.job, |l| l.seq = marker.seq);
            Ok(())
        })
    }

    fn progress(&self, progress: &SyncProgress) {
        let rows: u64 = progress.streams.iter().map(|s| s.rows).sum();
        let bytes: u64 = progress.streams.iter().map(|s| s.bytes).sum();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = rows as f64 / secs;
        let estimated: Option<u64> = progress
            .streams
            .iter()
            .map(|s| s.estimated_rows)
            .sum::<Option<u64>>();
        let eta_ms = estimated
            .filter(|_| rate > 0.0)
            .map(|total| (total.saturating_sub(rows) as f64 / rate * 1000.0) as u64);
        self.shared.live_syncs.update(&self.job, |l| {
            l.rows = rows;
            l.bytes = bytes;
            l.rows_per_second = rate;
            l.eta_ms = eta_ms;
            l.seq = progress.committed_seq;
            l.streams = totals(progress);
        });
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= PROGRESS_LOG_EVERY) {
            *last = Some(Instant::now());
            if let Some(o) = &self.observer {
                let fraction = estimated
                    .filter(|t| *t > 0)
                    .map_or(0.0, |t| (rows as f64 / t as f64).min(1.0) as f32);
                o.on_event(PluginEvent::Progress {
                    at: std::time::SystemTime::now(),
                    fraction,
                    message: Some(format!("{rows} rows, {bytes} bytes, {rate:.0} rows/s")),
                });
            }
        }
    }
}
