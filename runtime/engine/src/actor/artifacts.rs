//! Artifact writes of one step attempt. Bytes go to the store as the
//! plugin emits them (not through the run actor, so a large artifact is
//! never buffered in a transition), and the attempt's result is handled
//! only once they are durable: a step is never SUCCESS with an artifact
//! that a crash could still lose.

use std::sync::Mutex;
use std::time::Duration;
use tokio::task::JoinHandle;
use weft_model::{ArtifactInfo, RunId, StepKey};
use weft_model::{PluginError, PluginErrorKind, StepOutcome};
use weft_store::{Store, StoreError, now_ms};

/// Attempts at writing one artifact before the step attempt fails.
const WRITE_ATTEMPTS: u32 = 5;

/// A write in progress: on failure, the artifact's name and why.
type Write = JoinHandle<Result<(), (String, StoreError)>>;

/// Pending artifact writes of one attempt (its step key and attempt
/// number are the observer's, passed in).
pub(super) struct ArtifactWrites {
    store: Store,
    run_id: RunId,
    pending: Mutex<Vec<Write>>,
}

/// One artifact as the plugin emitted it.
pub(super) struct Artifact {
    pub(super) name: String,
    pub(super) media_type: String,
    pub(super) data: Vec<u8>,
}

impl ArtifactWrites {
    pub(super) fn new(store: Store, run_id: RunId) -> Self {
        Self {
            store,
            run_id,
            pending: Mutex::default(),
        }
    }

    /// Starts writing attempt `attempt` of step `key`'s artifact; returns
    /// its metadata.
    pub(super) fn write(&self, key: &StepKey, attempt: u32, artifact: Artifact) -> ArtifactInfo {
        let Artifact {
            name,
            media_type,
            data,
        } = artifact;
        let meta = ArtifactInfo {
            run_id: self.run_id.clone(),
            step_key: key.clone(),
            attempt,
            name,
            media_type,
            size: data.len() as u64,
            at: now_ms(),
        };
        let store = self.store.clone();
        let record = meta.clone();
        let task = tokio::spawn(async move {
            let mut delay = Duration::from_millis(20);
            let mut tries = 0;
            loop {
                match store.put_artifact(&record, &data).await {
                    Ok(()) => return Ok(()),
                    Err(e) if e.is_retryable() && tries + 1 < WRITE_ATTEMPTS => {
                        tries += 1;
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    Err(e) => return Err((record.name, e)),
                }
            }
        });
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
        meta
    }

    /// Waits for every write of step `key`'s attempt; a write that failed
    /// turns the attempt's outcome into a transient (retryable) failure.
    pub(super) async fn settle<E>(
        &self,
        key: &StepKey,
        result: Result<StepOutcome, E>,
    ) -> Result<StepOutcome, E> {
        let tasks = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let mut failure = None;
        for task in tasks {
            let problem = match task.await {
                Ok(Ok(())) => continue,
                Ok(Err((name, e))) => format!("storing artifact {name} failed: {e}"),
                Err(e) => format!("storing an artifact failed: {e}"),
            };
            tracing::error!(run = %self.run_id, step = %key, "{problem}");
            failure.get_or_insert(problem);
        }
        match (failure, result) {
            (Some(message), Ok(StepOutcome::Success(_))) => Ok(StepOutcome::Failed(PluginError {
                kind: PluginErrorKind::Transient,
                message,
                retryable: true,
                retry_after_ms: None,
                details: None,
            })),
            (_, result) => result,
        }
    }
}
