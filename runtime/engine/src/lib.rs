//! Weft's durable workflow engine.
//!
//! [`Engine`] runs workflow templates as DAGs of plugin steps on the
//! [`weft_host::PluginHost`], persisting every transition to the
//! [`weft_store::Store`] before acting on it. Each unfinished run is one
//! actor task owning its state; transitions of concurrent runs are
//! group-committed. On start the engine recovers unfinished runs:
//! finished steps are never re-run, interrupted ones re-run as attempt + 1
//! (at-least-once), retries and timers continue.

mod actor;
mod committer;
mod config;
mod connections;
mod error;
mod evaluate;
mod feed;
mod finished;
mod gate;
mod history;
mod listing;
mod live;
pub mod metrics;
mod plan;
mod plugins;
pub mod process;
mod progress;
mod recovery;
mod registry;
mod runs;
mod scheduler;
mod secret_box;
mod shared;
mod sync_jobs;
mod sync_step;
mod templates;
#[cfg(test)]
mod test_support;

pub use config::{EngineConfig, WORKER_STACK_BYTES};
pub use connections::{
    CheckReport, ConnectionEntry, ConnectionRequest, JobUse, MASK, connector_failure,
};
pub use error::EngineError;
pub use evaluate::ExpressionSettings;
pub use feed::{FeedItem, FeedSpec, Logs};
pub use gate::Operation;
pub use history::Artifact;
pub use listing::{MAX_PAGE_SIZE, Page, PageRequest};
pub use live::LiveEvent;
pub use plugins::StepTypeEntry;
pub use registry::PluginEntry;
pub use runs::StartRunRequest;
pub use secret_box::{SecretBoxError, SecretKey};
pub use sync_jobs::{CatalogDiff, StreamDiff, SyncJobEntry, SyncJobRequest, SyncJobRun};
pub use sync_step::{BUILTIN_PLUGIN, SYNC_STEP};
// Host and store types that the engine's services take or return, so the
// API's handlers depend on the engine alone (only `main` wires a store).
pub use weft_host::InstallError;
pub use weft_store::{ArtifactEntry, RunFilter, StoreError, now_ms};

use finished::FinishedRuns;
use live::LiveHub;
use progress::LiveProgress;
use registry::Registry;
use shared::Shared;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use weft_host::PluginHost;
use weft_model::Principal;
use weft_store::Store;

/// How [`Engine::shutdown`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every in-flight step finished and was committed within the grace period.
    pub drained: bool,
    /// Steps still in their plugins when the grace period ended (left to recovery).
    pub left_running: usize,
}

/// The workflow engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    registry: Registry,
    /// Held shared while a run resolves and pins plugins, exclusively while
    /// a plugin is uninstalled, so no run can pin a plugin being removed.
    plugin_gate: Arc<tokio::sync::RwLock<()>>,
}

impl Engine {
    /// Starts the engine: loads stored plugins into the host and recovers
    /// every unfinished run.
    pub async fn start(
        config: EngineConfig,
        host: Arc<PluginHost>,
        store: Store,
    ) -> Result<Self, EngineError> {
        let registry = Registry::new(host.clone(), store.clone());
        registry.load_all().await?;
        let finished_runs = FinishedRuns::new(config.finished_run_cache_bytes);
        let shared = Arc::new(Shared {
            secrets: Arc::new(
                config
                    .secrets
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            step_slots: Arc::new(Semaphore::new(config.max_concurrent_steps.max(1))),
            committer: committer::Committer::spawn(store.clone()),
            evaluator: Arc::new(evaluate::Evaluator::new(config.expressions.clone())),
            host,
            store,
            config,
            live: LiveHub::default(),
            stopping: AtomicBool::new(false),
            running_steps: watch::Sender::new(0),
            runs: Mutex::default(),
            live_progress: LiveProgress::default(),
            finished_runs,
            plans: Mutex::default(),
            registry: registry.clone(),
            live_syncs: Arc::default(),
            sync_starts: tokio::sync::Mutex::default(),
        });
        let engine = Self {
            shared,
            registry,
            plugin_gate: Arc::default(),
        };
        engine.recover().await?;
        scheduler::spawn(engine.clone());
        Ok(engine)
    }

    /// Stops the engine gracefully: no new run or step starts (cron
    /// stops firing), and steps already in their plugins get up to `grace`
    /// to finish and have their results committed. Whatever is still
    /// running after that is left to recovery: those steps are durable as
    /// RUNNING and re-run as `attempt + 1` at the next start.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.shared.stopping.store(true, Ordering::Release);
        let mut running = self.shared.running_steps.subscribe();
        let drained = tokio::time::timeout(grace, running.wait_for(|n| *n == 0))
            .await
            .is_ok();
        let left_running = *running.borrow();
        ShutdownReport {
            drained,
            left_running,
        }
    }

    /// Whether the store answers (for readiness probes, which any caller
    /// may make: they reveal nothing).
    pub async fn store_ready(&self) -> bool {
        self.shared.store.ping().await.is_ok()
    }

    /// Runs by status, for the metrics endpoint.
    pub async fn run_counts(
        &self,
        caller: &Principal,
    ) -> Result<Vec<(weft_model::RunStatus, u64)>, EngineError> {
        self.authorize(caller, Operation::ReadMetrics)?;
        Ok(self.shared.store.count_runs_by_status().await?)
    }
}
