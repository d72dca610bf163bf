//! Runs: starting one, commands to its actor (cancel, pause, resume,
//! answer), and reading its state, steps and attempts.

use crate::actor::{self, RunActor, RunCommand};
use crate::config::VALUE_LIMITS;
use crate::plan::RunPlan;
use crate::shared::RunSlot;
use crate::templates::parse_template;
use crate::{Engine, EngineError, LiveEvent, Operation, Page, PageRequest};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use weft_model::template::validate_template_with;
use weft_model::{EventKind, Principal, RunStatus, check_json};
use weft_model::{RunId, RunStep, StepAttempt, StepKey, WorkflowRun};
use weft_store::{RunFilter, RunPage, now_ms};

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

impl Engine {
    /// Starts a run: validates inputs, pins the template revision and
    /// plugin digests, persists the run, and schedules its first steps.
    pub async fn start_run(
        &self,
        caller: &Principal,
        req: StartRunRequest,
    ) -> Result<WorkflowRun, EngineError> {
        self.authorize(caller, Operation::StartRun)?;
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
        let run_id = RunId::generate();
        let created_at = now_ms();
        let run = WorkflowRun {
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
        let created = weft_model::RunEvent {
            run_id: run_id.clone(),
            seq: 1,
            at: created_at,
            kind: EventKind::RunCreated,
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

    /// Brings a parked run back with `first` already queued for its new
    /// actor, so the actor cannot park again before seeing it. If the run
    /// stopped being parked meanwhile, `first` is dropped (its reply
    /// channel closes and the caller retries).
    async fn unpark(&self, run_id: &RunId, first: RunCommand) -> Result<(), EngineError> {
        let run = self.shared.store.get_run(run_id).await?;
        let (run, steps) = self.shared.load_run(run).await?;
        let plan = self.plan_for(&run).await?;
        let (tx, rx) = mpsc::channel(actor::COMMAND_QUEUE);
        // A fresh channel has room: this cannot fail.
        let _ = tx.try_send(first);
        let actor = RunActor::new(self.shared.clone(), plan, run, steps, rx);
        let mut runs = self.shared.lock_runs();
        if matches!(runs.get(run_id), Some(RunSlot::Parked)) {
            runs.insert(run_id.clone(), RunSlot::Active(tx));
            tokio::spawn(actor.run());
        }
        Ok(())
    }

    async fn command(
        &self,
        run_id: &RunId,
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
    pub async fn cancel_run(&self, caller: &Principal, run_id: &RunId) -> Result<(), EngineError> {
        self.authorize(caller, Operation::ControlRun)?;
        self.command(run_id, |reply| RunCommand::Cancel {
            by: caller.name.clone(),
            reply,
        })
        .await
    }

    /// Pauses a run: no new steps start; in-flight ones finish.
    pub async fn pause_run(&self, caller: &Principal, run_id: &RunId) -> Result<(), EngineError> {
        self.authorize(caller, Operation::ControlRun)?;
        self.command(run_id, |reply| RunCommand::Pause {
            by: caller.name.clone(),
            reply,
        })
        .await
    }

    /// Resumes a paused run.
    pub async fn resume_run(&self, caller: &Principal, run_id: &RunId) -> Result<(), EngineError> {
        self.authorize(caller, Operation::ControlRun)?;
        self.command(run_id, |reply| RunCommand::Resume {
            by: caller.name.clone(),
            reply,
        })
        .await
    }

    /// Answers a step's input request; the answer is validated against the
    /// request's schema and its secret fields are kept in memory only.
    pub async fn answer(
        &self,
        caller: &Principal,
        run_id: &RunId,
        step: &StepKey,
        values: Value,
    ) -> Result<(), EngineError> {
        self.authorize(caller, Operation::AnswerRun)?;
        check_json(&values, VALUE_LIMITS).map_err(|error| EngineError::ValueLimit {
            what: "answer",
            error,
        })?;
        self.command(run_id, |reply| RunCommand::Answer {
            step: step.clone(),
            values: values.clone(),
            by: caller.name.clone(),
            reply,
        })
        .await
    }

    /// A run's current state.
    pub async fn run(
        &self,
        caller: &Principal,
        run_id: &RunId,
    ) -> Result<WorkflowRun, EngineError> {
        self.authorize(caller, Operation::ReadRuns)?;
        if let Some(run) = self.shared.finished_runs.get(run_id) {
            return Ok(run);
        }
        let mut run = self.shared.store.get_run(run_id).await?;
        self.shared.finished_runs.remember(&run);
        self.shared.live_progress.overlay(&mut run);
        Ok(run)
    }

    /// Runs matching a filter, newest first, with live progress.
    pub async fn list_runs(
        &self,
        caller: &Principal,
        filter: &RunFilter,
    ) -> Result<RunPage, EngineError> {
        self.authorize(caller, Operation::ReadRuns)?;
        let mut page = self.shared.store.list_runs(filter).await?;
        for run in &mut page.runs {
            self.shared.live_progress.overlay(run);
        }
        Ok(page)
    }

    /// A run's steps.
    pub async fn steps(
        &self,
        caller: &Principal,
        run_id: &RunId,
    ) -> Result<Vec<RunStep>, EngineError> {
        self.authorize(caller, Operation::ReadRuns)?;
        Ok(self.shared.store.steps(run_id).await?)
    }

    /// Subscribes to a run's live events (published after each commit).
    pub fn subscribe(
        &self,
        caller: &Principal,
        run_id: &RunId,
    ) -> Result<broadcast::Receiver<LiveEvent>, EngineError> {
        self.authorize(caller, Operation::ReadRuns)?;
        Ok(self.shared.live.subscribe(run_id))
    }

    /// Waits until a run reaches one of `statuses` (or any terminal status
    /// when empty), up to `timeout`.
    pub async fn wait_for(
        &self,
        caller: &Principal,
        run_id: &RunId,
        statuses: &[RunStatus],
        timeout: Duration,
    ) -> Result<WorkflowRun, EngineError> {
        self.authorize(caller, Operation::ReadRuns)?;
        let mut rx = self.shared.live.subscribe(run_id);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let run = self.run(caller, run_id).await?;
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
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    rx = self.shared.live.subscribe(run_id);
                }
                Ok(_) => {}
            }
        }
    }

    /// A page of a run's steps (and `forEach` items), in key order.
    pub async fn list_steps(
        &self,
        caller: &Principal,
        run_id: &RunId,
        page: PageRequest,
    ) -> Result<Page<RunStep>, EngineError> {
        self.authorize(caller, Operation::ReadRuns)?;
        self.run(caller, run_id).await?;
        Ok(page.slice(self.shared.store.steps(run_id).await?))
    }

    /// One step (or `forEach` item, `id[i]`) of a run.
    pub async fn step(
        &self,
        caller: &Principal,
        run_id: &RunId,
        key: &StepKey,
    ) -> Result<RunStep, EngineError> {
        self.authorize(caller, Operation::ReadRuns)?;
        self.run(caller, run_id).await?;
        self.shared
            .store
            .steps(run_id)
            .await?
            .into_iter()
            .find(|s| s.key == *key)
            .ok_or_else(|| EngineError::NotFound(format!("step {key} of run {run_id}")))
    }

    /// A page of a step's attempts, oldest first.
    pub async fn list_step_attempts(
        &self,
        caller: &Principal,
        run_id: &RunId,
        key: &StepKey,
        page: PageRequest,
    ) -> Result<Page<StepAttempt>, EngineError> {
        self.authorize(caller, Operation::ReadRuns)?;
        let step = self.step(caller, run_id, key).await?;
        let p = self
            .shared
            .store
            .step_attempts(&step, page.page, page.page_size)
            .await?;
        Ok(Page {
            items: p.attempts,
            total: p.total,
        })
    }
}
