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
mod evaluate;
mod finished;
mod listing;
mod live;
pub mod metrics;
mod plan;
pub mod process;
mod progress;
mod recovery;
mod registry;
mod scheduler;
#[cfg(test)]
mod test_support;

pub use evaluate::ExpressionSettings;
pub use listing::{MAX_PAGE_SIZE, Page, PageRequest, StepTypeEntry};
pub use live::LiveEvent;
pub use registry::PluginEntry;

use actor::{RunActor, RunCommand};
use committer::Committer;
use finished::FinishedRuns;
use live::LiveHub;
use plan::RunPlan;
use progress::LiveProgress;
use registry::Registry;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot, watch};
use weft_host::PluginHost;
use weft_model::template::{
    TemplateLimits, TemplateProblem, ValidatedTemplate, WorkflowTemplate, validate_template_with,
};
use weft_model::{CapabilityGrants, InvocationLimits, PluginDigest, RunStatus};
use weft_model::{JsonLimitError, JsonLimits, check_json};
use weft_store::{
    RunFilter, RunPage, RunRecord, StepRecord, Store, StoreError, TemplateRecord, now_ms,
};

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The operation conflicts with the current state (e.g. cancelling a finished run).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A plugin cannot be uninstalled: unfinished runs pinned it.
    #[error("plugin {plugin} is pinned by {} active run(s): {}", .runs.len(), .runs.join(", "))]
    PluginInUse {
        /// `name@version` of the plugin.
        plugin: String,
        /// Ids of the unfinished runs that pinned it, oldest first.
        runs: Vec<String>,
    },
    /// A template is invalid; every problem with its JSON pointer.
    #[error("invalid template: {} problem(s)", .0.len())]
    InvalidTemplate(Vec<TemplateProblem>),
    /// Run inputs do not match the template's `inputs` schema.
    #[error("invalid inputs: {} problem(s)", .0.len())]
    InvalidInputs(Vec<TemplateProblem>),
    /// An answer does not match the input request's schema.
    #[error("invalid answer: {}", .0.join("; "))]
    InvalidAnswer(Vec<String>),
    /// A value from the caller (run inputs, an answer) is nested too
    /// deeply or too large to be stored and read back.
    #[error("{what}: {error}")]
    ValueLimit {
        /// Which value, e.g. `inputs`.
        what: &'static str,
        /// The limit crossed.
        error: JsonLimitError,
    },
    /// A plugin could not be installed.
    #[error(transparent)]
    Install(#[from] weft_host::InstallError),
    /// The host refused an operation.
    #[error(transparent)]
    Host(#[from] weft_host::InvokeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine is shutting down and starts nothing new.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// Whether retrying the operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::ShuttingDown => true,
            Self::Store(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Stack size for the threads of a runtime that drives the engine: enough
/// for host-side expression evaluation at its nesting limit in release
/// builds, so it runs in place instead of on a fresh segment.
pub const WORKER_STACK_BYTES: usize = 8 << 20;

/// Bounds on values callers hand the engine (run inputs, answers): what
/// passes is stored with the run and must read back.
const VALUE_LIMITS: JsonLimits = JsonLimits::bytes(4 << 20);

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Step invocations running at once across all runs.
    pub max_concurrent_steps: usize,
    /// Limits for step invocations (a step's `timeout` overrides the timeout).
    pub step_limits: InvocationLimits,
    /// Secrets available to expressions (`secrets.x`) and to plugins granted them.
    pub secrets: BTreeMap<String, String>,
    /// Memory for records of finished runs served without a store read
    /// (estimated bytes; 0 turns the cache off).
    pub finished_run_cache_bytes: u64,
    /// Budgets for the expressions the host evaluates.
    pub expressions: ExpressionSettings,
    /// How large a template may be (steps, `needs`, attempts).
    pub templates: TemplateLimits,
    /// The shortest wait before a retry, whatever a template asks for: a
    /// step with a huge `maxAttempts` and no backoff cannot storm.
    pub min_retry_backoff: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_concurrent_steps: 256,
            step_limits: InvocationLimits::default(),
            secrets: BTreeMap::new(),
            finished_run_cache_bytes: 32 * 1024 * 1024,
            expressions: ExpressionSettings::default(),
            templates: TemplateLimits::default(),
            min_retry_backoff: Duration::from_millis(100),
        }
    }
}

/// What starts a run.
#[derive(Debug, Clone)]
pub struct StartRunRequest {
    /// Template id or name.
    pub template: String,
    /// Run inputs, validated against the template's `inputs` schema.
    pub inputs: Value,
    /// Starting twice with the same key returns the first run.
    pub idempotency_key: Option<String>,
}

/// How [`Engine::shutdown`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every in-flight step finished and was committed within the grace period.
    pub drained: bool,
    /// Steps still in their plugins when the grace period ended (left to recovery).
    pub left_running: usize,
}

/// State shared by the engine and its run actors.
pub(crate) struct Shared {
    pub(crate) host: Arc<PluginHost>,
    pub(crate) store: Store,
    pub(crate) committer: Committer,
    pub(crate) config: EngineConfig,
    pub(crate) secrets: Arc<HashMap<String, String>>,
    pub(crate) step_slots: Arc<Semaphore>,
    pub(crate) live: LiveHub,
    /// Set by [`Engine::shutdown`]: no new step or run starts.
    stopping: AtomicBool,
    /// Steps invoked and not yet committed as finished, all runs together.
    pub(crate) running_steps: watch::Sender<usize>,
    runs: Mutex<HashMap<String, RunSlot>>,
    /// Progress of RUNNING runs whose record in the store is behind: a
    /// transition that changes only steps leaves the run record alone
    /// (one record fewer per step), so readers take progress from here.
    pub(crate) live_progress: LiveProgress,
    /// Records of finished runs, which never change.
    finished_runs: FinishedRuns,
    /// Validated plans by (template id, revision), with the registry
    /// generation they were resolved against: starting a run of a known
    /// revision neither re-parses nor re-validates the template.
    plans: Mutex<HashMap<PlanKey, (u64, Arc<RunPlan>)>>,
    /// Evaluates every host-side expression under the configured budgets.
    pub(crate) evaluator: Arc<evaluate::Evaluator>,
}

/// A template revision: (template id, revision).
type PlanKey = (String, u32);

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
    /// Whether [`Engine::shutdown`] has begun.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub(crate) fn finish_run(&self, run_id: &str) {
        self.lock_runs().remove(run_id);
        self.live_progress.forget(run_id);
        self.live.close(run_id);
    }

    /// A stored run with its steps, ready for an actor: the sequence
    /// numbers of a RUNNING run's record may be behind its events and logs.
    async fn load_run(
        &self,
        mut run: RunRecord,
    ) -> Result<(RunRecord, Vec<StepRecord>), EngineError> {
        let steps = self.store.steps(&run.run_id).await?;
        let next = self.store.next_sequences(&run.run_id).await?;
        run.next_event_seq = run.next_event_seq.max(next.event);
        run.next_log_seq = run.next_log_seq.max(next.log);
        run.next_journal_seq = run.next_journal_seq.max(next.journal);
        Ok((run, steps))
    }

    pub(crate) fn lock_runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunSlot>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached_plan(&self, key: &PlanKey, generation: u64) -> Option<Arc<RunPlan>> {
        let plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        plans
            .get(key)
            .filter(|(g, _)| *g == generation)
            .map(|(_, p)| p.clone())
    }

    fn cache_plan(&self, key: PlanKey, generation: u64, plan: Arc<RunPlan>) {
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
            committer: Committer::spawn(store.clone()),
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

    // ---- plugins -------------------------------------------------------

    /// Installs a plugin from its component bytes.
    pub async fn install_plugin(
        &self,
        bytes: &[u8],
        enabled: bool,
    ) -> Result<PluginEntry, EngineError> {
        self.registry.install(bytes, enabled).await
    }

    /// Enables or disables a plugin and replaces its grants.
    pub async fn set_plugin_state(
        &self,
        digest: &PluginDigest,
        enabled: bool,
        grants: CapabilityGrants,
    ) -> Result<PluginEntry, EngineError> {
        self.registry.set_state(digest, enabled, grants).await
    }

    /// Uninstalls a plugin: removes it from the registry, the host and the
    /// store. Refused with [`EngineError::PluginInUse`] while an unfinished
    /// run pinned it. Templates that use it are left alone; they fail
    /// validation (unknown step type) when a run of them next starts.
    pub async fn uninstall_plugin(
        &self,
        digest: &PluginDigest,
    ) -> Result<PluginEntry, EngineError> {
        let _exclusive = self.plugin_gate.write().await;
        let entry = self
            .registry
            .get(digest)
            .ok_or_else(|| EngineError::NotFound(format!("plugin {digest}")))?;
        let runs = self
            .shared
            .store
            .active_runs_pinning(digest.as_str())
            .await?;
        if !runs.is_empty() {
            return Err(EngineError::PluginInUse {
                plugin: format!("{}@{}", entry.manifest.name, entry.manifest.version),
                runs,
            });
        }
        self.registry.remove(digest).await?;
        Ok(entry)
    }

    /// Installed plugins.
    pub fn plugins(&self) -> Vec<PluginEntry> {
        self.registry.list()
    }

    // ---- templates -----------------------------------------------------

    /// Validates a template body against the installed plugins.
    pub fn validate_template(&self, body: &Value) -> Result<ValidatedTemplate, EngineError> {
        let template = parse_template(body)?;
        validate_template_with(&template, &self.registry, &self.shared.config.templates)
            .map_err(EngineError::InvalidTemplate)
    }

    /// Creates a template (revision 1) after validating it.
    pub async fn create_template(&self, body: &Value) -> Result<TemplateRecord, EngineError> {
        let validated = self.validate_template(body)?;
        let name = validated.template().name.clone();
        let id = new_id();
        Ok(self.shared.store.create_template(&id, &name, body).await?)
    }

    /// Writes a new revision if the template is still at `expected_revision`.
    pub async fn update_template(
        &self,
        id_or_name: &str,
        body: &Value,
        expected_revision: u32,
    ) -> Result<TemplateRecord, EngineError> {
        self.validate_template(body)?;
        let current = self.shared.store.template(id_or_name).await?;
        Ok(self
            .shared
            .store
            .update_template(&current.template_id, body, expected_revision)
            .await?)
    }

    /// A template by id or name.
    pub async fn template(&self, id_or_name: &str) -> Result<TemplateRecord, EngineError> {
        Ok(self.shared.store.template(id_or_name).await?)
    }

    // ---- runs ----------------------------------------------------------

    /// Starts a run: validates inputs, pins the template revision and
    /// plugin digests, persists the run, and schedules its first steps.
    pub async fn start_run(&self, req: StartRunRequest) -> Result<RunRecord, EngineError> {
        if self.shared.is_stopping() {
            return Err(EngineError::ShuttingDown);
        }
        check_json(&req.inputs, VALUE_LIMITS).map_err(|error| EngineError::ValueLimit {
            what: "inputs",
            error,
        })?;
        // From resolving step types until the run (with its pins) is stored.
        let _pinning = self.plugin_gate.read().await;
        let t = self.shared.store.template(&req.template).await?;
        let key = (t.template_id.clone(), t.revision);
        let generation = self.registry.generation();
        let plan = match self.shared.cached_plan(&key, generation) {
            Some(plan) => plan,
            None => {
                let template = parse_template(&t.body)?;
                let validated = validate_template_with(
                    &template,
                    &self.registry,
                    &self.shared.config.templates,
                )
                .map_err(EngineError::InvalidTemplate)?;
                let plan = RunPlan::new(
                    validated,
                    self.shared.evaluator.clone(),
                    self.shared.config.min_retry_backoff,
                );
                self.shared.cache_plan(key, generation, plan.clone());
                plan
            }
        };
        plan.validated
            .validate_run_inputs(&req.inputs)
            .map_err(EngineError::InvalidInputs)?;
        let run_id = new_id();
        let created_at = now_ms();
        let run = RunRecord {
            run_id: run_id.clone(),
            template_id: t.template_id,
            template_name: t.name,
            revision: t.revision,
            status: RunStatus::Pending,
            inputs: req.inputs,
            outputs: None,
            error: None,
            pinned_plugins: plan.pinned(),
            idempotency_key: req.idempotency_key.clone(),
            progress: Default::default(),
            created_at,
            started_at: None,
            ended_at: None,
            next_event_seq: 2,
            next_log_seq: 1,
            next_journal_seq: 1,
        };
        let created = weft_store::RunEvent {
            run_id: run_id.clone(),
            seq: 1,
            at: created_at,
            kind: "run.created".into(),
            step: None,
            attempt: None,
            message: format!(
                "run of {} revision {} created",
                run.template_name, run.revision
            ),
            data: None,
        };
        let steps = actor::initial_steps(&plan, &run_id);
        let (tx, rx) = mpsc::channel(actor::COMMAND_QUEUE);
        let mut actor = RunActor::new(self.shared.clone(), plan, run, steps, rx);
        // Creating the run and starting its first steps is one transaction.
        let initial = Arc::new(actor.begin(created));
        if let Err(e) = self.shared.committer.commit(initial.clone()).await {
            if let Some(key) = &req.idempotency_key
                && let Some(existing) = self.shared.store.run_by_idempotency_key(key).await?
            {
                return Ok(existing);
            }
            return Err(e.into());
        }
        let run = actor.record().clone();
        self.shared.lock_runs().insert(run_id, RunSlot::Active(tx));
        self.shared.publish(&run.run_id, &initial);
        tokio::spawn(actor.run());
        Ok(run)
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

    /// Brings a parked run back with `first` already queued for its new
    /// actor, so the actor cannot park again before seeing it. If the run
    /// stopped being parked meanwhile, `first` is dropped (its reply
    /// channel closes and the caller retries).
    async fn unpark(&self, run_id: &str, first: RunCommand) -> Result<(), EngineError> {
        let run = self.shared.store.get_run(run_id).await?;
        let (run, steps) = self.shared.load_run(run).await?;
        let plan = self.plan_for(&run).await?;
        let (tx, rx) = mpsc::channel(actor::COMMAND_QUEUE);
        // A fresh channel has room: this cannot fail.
        let _ = tx.try_send(first);
        let actor = RunActor::new(self.shared.clone(), plan, run, steps, rx);
        let mut runs = self.shared.lock_runs();
        if matches!(runs.get(run_id), Some(RunSlot::Parked)) {
            runs.insert(run_id.to_owned(), RunSlot::Active(tx));
            tokio::spawn(actor.run());
        }
        Ok(())
    }

    async fn command(
        &self,
        run_id: &str,
        make: impl Fn(oneshot::Sender<Result<(), EngineError>>) -> RunCommand,
    ) -> Result<(), EngineError> {
        // A run may park or finish between looking it up and sending; then
        // the command was not handled and is sent again.
        for _ in 0..8 {
            let slot = match self.shared.lock_runs().get(run_id) {
                Some(RunSlot::Active(tx)) => Some(Some(tx.clone())),
                Some(RunSlot::Parked) => Some(None),
                None => None,
            };
            let Some(slot) = slot else {
                let run = self.shared.store.get_run(run_id).await?;
                return Err(EngineError::Conflict(format!("run is {}", run.status)));
            };
            let (reply, rx) = oneshot::channel();
            match slot {
                Some(tx) => {
                    if tx.send(make(reply)).await.is_err() {
                        continue;
                    }
                }
                None => self.unpark(run_id, make(reply)).await?,
            }
            if let Ok(result) = rx.await {
                return result;
            }
        }
        let run = self.shared.store.get_run(run_id).await?;
        Err(EngineError::Conflict(format!("run is {}", run.status)))
    }

    /// Cancels a run: in-flight plugin code is stopped, the run ends CANCELLED.
    pub async fn cancel_run(&self, run_id: &str, by: &str) -> Result<(), EngineError> {
        self.command(run_id, |reply| RunCommand::Cancel {
            by: by.to_owned(),
            reply,
        })
        .await
    }

    /// Pauses a run: no new steps start; in-flight ones finish.
    pub async fn pause_run(&self, run_id: &str, by: &str) -> Result<(), EngineError> {
        self.command(run_id, |reply| RunCommand::Pause {
            by: by.to_owned(),
            reply,
        })
        .await
    }

    /// Resumes a paused run.
    pub async fn resume_run(&self, run_id: &str, by: &str) -> Result<(), EngineError> {
        self.command(run_id, |reply| RunCommand::Resume {
            by: by.to_owned(),
            reply,
        })
        .await
    }

    /// Answers a step's input request; the answer is validated against the
    /// request's schema and its secret fields are kept in memory only.
    pub async fn answer(
        &self,
        run_id: &str,
        step: &str,
        values: Value,
        by: &str,
    ) -> Result<(), EngineError> {
        check_json(&values, VALUE_LIMITS).map_err(|error| EngineError::ValueLimit {
            what: "answer",
            error,
        })?;
        self.command(run_id, |reply| RunCommand::Answer {
            step: step.to_owned(),
            values: values.clone(),
            by: by.to_owned(),
            reply,
        })
        .await
    }

    /// A run's current state.
    pub async fn run(&self, run_id: &str) -> Result<RunRecord, EngineError> {
        if let Some(run) = self.shared.finished_runs.get(run_id) {
            return Ok(run);
        }
        let mut run = self.shared.store.get_run(run_id).await?;
        self.shared.finished_runs.remember(&run);
        self.shared.live_progress.overlay(&mut run);
        Ok(run)
    }

    /// Runs matching a filter, newest first, with live progress.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<RunPage, EngineError> {
        let mut page = self.shared.store.list_runs(filter).await?;
        for run in &mut page.runs {
            self.shared.live_progress.overlay(run);
        }
        Ok(page)
    }

    /// A run's steps.
    pub async fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>, EngineError> {
        Ok(self.shared.store.steps(run_id).await?)
    }

    /// The store, for read-only queries the engine does not wrap.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Subscribes to a run's live events (published after each commit).
    pub fn subscribe(&self, run_id: &str) -> broadcast::Receiver<LiveEvent> {
        self.shared.live.subscribe(run_id)
    }

    /// Waits until a run reaches one of `statuses` (or any terminal status
    /// when empty), up to `timeout`.
    pub async fn wait_for(
        &self,
        run_id: &str,
        statuses: &[RunStatus],
        timeout: Duration,
    ) -> Result<RunRecord, EngineError> {
        let mut rx = self.subscribe(run_id);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let run = self.run(run_id).await?;
            let hit = if statuses.is_empty() {
                run.status.is_terminal()
            } else {
                statuses.contains(&run.status)
            };
            if hit {
                return Ok(run);
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => {
                    return Err(EngineError::Conflict(format!(
                        "run still {} after {timeout:?}",
                        run.status
                    )));
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => rx = self.subscribe(run_id),
                Ok(_) => {}
            }
        }
    }
}

fn parse_template(body: &Value) -> Result<WorkflowTemplate, EngineError> {
    WorkflowTemplate::from_value(body).map_err(|e| {
        EngineError::InvalidTemplate(vec![TemplateProblem {
            pointer: String::new(),
            code: weft_model::template::TemplateProblemCode::InvalidTemplate,
            message: e.to_string(),
        }])
    })
}

/// A run id: time-ordered so ids sort by creation.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Resolves step types to the digests a run pinned, so a recovered run
/// keeps using exactly the plugins it started with.
struct PinnedCatalog<'a> {
    registry: &'a Registry,
    pinned: &'a BTreeMap<String, String>,
}

impl weft_model::template::StepTypeCatalog for PinnedCatalog<'_> {
    fn resolve(
        &self,
        r: &weft_model::StepTypeRef,
    ) -> Result<weft_model::template::ResolvedStepType, weft_model::template::CatalogMiss> {
        let mut pinned_for_plugin = self
            .pinned
            .values()
            .filter_map(|d| PluginDigest::parse(d).ok())
            .filter_map(|d| self.registry.get(&d))
            .filter(|e| e.manifest.name == r.plugin);
        match pinned_for_plugin.next() {
            Some(e) => e.resolve_step(&r.step_type),
            // Compensation step types were not pinned: resolve them normally.
            None => self.registry.resolve(r),
        }
    }
}
