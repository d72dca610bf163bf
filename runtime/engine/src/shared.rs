//! State shared by the engine facade and its run actors.

use crate::actor::RunCommand;
use crate::committer::Committer;
use crate::evaluate;
use crate::finished::FinishedRuns;
use crate::live::LiveHub;
use crate::plan::RunPlan;
use crate::progress::LiveProgress;
use crate::{EngineConfig, EngineError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc, watch};
use weft_host::PluginHost;
use weft_model::{RunId, RunStep, TemplateId, WorkflowRun};
use weft_store::Store;

/// State shared by the engine and its run actors.
pub(crate) struct Shared {
    pub(crate) host: Arc<PluginHost>,
    pub(crate) store: Store,
    pub(crate) committer: Committer,
    pub(crate) config: EngineConfig,
    pub(crate) secrets: Arc<HashMap<String, String>>,
    pub(crate) step_slots: Arc<Semaphore>,
    pub(crate) live: LiveHub,
    /// Set by [`crate::Engine::shutdown`]: no new step or run starts.
    pub(crate) stopping: AtomicBool,
    /// Steps invoked and not yet committed as finished, all runs together.
    pub(crate) running_steps: watch::Sender<usize>,
    pub(crate) runs: Mutex<HashMap<RunId, RunSlot>>,
    /// Progress of RUNNING runs whose record in the store is behind: a
    /// transition that changes only steps leaves the run record alone
    /// (one record fewer per step), so readers take progress from here.
    pub(crate) live_progress: LiveProgress,
    /// Records of finished runs, which never change.
    pub(crate) finished_runs: FinishedRuns,
    /// Validated plans by (template id, revision), with the registry
    /// generation they were resolved against: starting a run of a known
    /// revision neither re-parses nor re-validates the template.
    pub(crate) plans: Mutex<HashMap<PlanKey, (u64, Arc<RunPlan>)>>,
    /// Evaluates every host-side expression under the configured budgets.
    pub(crate) evaluator: Arc<evaluate::Evaluator>,
    /// Installed plugins (the engine's own handle, for built-in steps).
    pub(crate) registry: crate::registry::Registry,
    /// Syncs running in this process, by job.
    pub(crate) live_syncs: Arc<crate::sync_step::LiveSyncs>,
    /// Held while a sync is checked for and started, so two requests
    /// cannot both start one.
    pub(crate) sync_starts: tokio::sync::Mutex<()>,
}

/// A template revision: (template id, revision).
pub(crate) type PlanKey = (TemplateId, u32);

/// Where an unfinished run lives in this process.
pub(crate) enum RunSlot {
    /// Its actor is running; commands go through this channel.
    Active(mpsc::Sender<RunCommand>),
    /// It waits for a command with no actor; the store holds its state.
    Parked,
}

/// Most plans kept in the plan cache; when full, plans of older registry
/// generations go first, then all (a miss only costs one validation).
const PLAN_CACHE: usize = 256;

impl Shared {
    /// Whether [`crate::Engine::shutdown`] has begun.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub(crate) fn finish_run(&self, run_id: &RunId) {
        self.lock_runs().remove(run_id);
        self.live_progress.forget(run_id);
        self.live.close(run_id);
    }

    /// A stored run with its steps, ready for an actor: the sequence
    /// numbers of a RUNNING run's record may be behind its events and logs.
    pub(crate) async fn load_run(
        &self,
        mut run: WorkflowRun,
    ) -> Result<(WorkflowRun, Vec<RunStep>), EngineError> {
        let steps = self.store.steps(&run.run_id).await?;
        let next = self.store.next_sequences(&run.run_id).await?;
        run.next_event_seq = run.next_event_seq.max(next.event);
        run.next_log_seq = run.next_log_seq.max(next.log);
        run.next_journal_seq = run.next_journal_seq.max(next.journal);
        Ok((run, steps))
    }

    pub(crate) fn lock_runs(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, RunSlot>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn cached_plan(&self, key: &PlanKey, generation: u64) -> Option<Arc<RunPlan>> {
        let plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        plans
            .get(key)
            .filter(|(g, _)| *g == generation)
            .map(|(_, p)| p.clone())
    }

    pub(crate) fn cache_plan(&self, key: PlanKey, generation: u64, plan: Arc<RunPlan>) {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if plans.len() >= PLAN_CACHE {
            plans.retain(|_, (g, _)| *g == generation);
            if plans.len() >= PLAN_CACHE {
                plans.clear();
            }
        }
        plans.insert(key, (generation, plan));
    }
}
