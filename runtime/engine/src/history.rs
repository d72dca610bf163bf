//! What a run left behind: its event log, its steps' log lines and
//! artifacts, read a page at a time.

use crate::{Engine, EngineError, Operation};
use weft_model::Principal;
use weft_model::{LogLine, RunEvent, RunId, StepKey};
use weft_store::ArtifactEntry;

/// An artifact's metadata and bytes.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Its metadata and digest.
    pub entry: ArtifactEntry,
    /// Its bytes.
    pub data: Vec<u8>,
}

impl Engine {
    /// A run's events after sequence number `after`, at most `limit` (1..=1000).
    pub async fn run_events(
        &self,
        caller: &Principal,
        run_id: &RunId,
        after: u64,
        limit: u32,
    ) -> Result<Vec<RunEvent>, EngineError> {
        self.authorize(caller, Operation::ReadRuns)?;
        self.run(caller, run_id).await?;
        Ok(self.shared.store.events(run_id, after, limit).await?)
    }

    /// A step's log lines after sequence number `after`, at most `limit`.
    /// A step that has not logged (or does not exist) has none.
    pub async fn step_logs(
        &self,
        caller: &Principal,
        run_id: &RunId,
        step_key: &StepKey,
        after: u64,
        limit: u32,
    ) -> Result<Vec<LogLine>, EngineError> {
        self.authorize(caller, Operation::ReadRuns)?;
        self.run(caller, run_id).await?;
        Ok(self
            .shared
            .store
            .logs(run_id, step_key, after, limit)
            .await?)
    }

    /// A step's artifacts, by attempt then name.
    pub async fn artifacts(
        &self,
        caller: &Principal,
        run_id: &RunId,
        step_key: &StepKey,
    ) -> Result<Vec<ArtifactEntry>, EngineError> {
        self.step(caller, run_id, step_key).await?;
        Ok(self.shared.store.artifact_entries(run_id, step_key).await?)
    }

    /// One artifact of a step by name: of `attempt`, or of the latest
    /// attempt that emitted that name.
    pub async fn artifact(
        &self,
        caller: &Principal,
        run_id: &RunId,
        step_key: &StepKey,
        name: &str,
        attempt: Option<u32>,
    ) -> Result<Artifact, EngineError> {
        self.step(caller, run_id, step_key).await?;
        let store = &self.shared.store;
        let entry = store
            .artifact_entry(run_id, step_key, name, attempt)
            .await?;
        let data = store.artifact_data(&entry.record).await?;
        Ok(Artifact { entry, data })
    }
}
