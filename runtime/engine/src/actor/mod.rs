//! The run actor: one task per unfinished run owns its state in memory,
//! decides what happens next, and persists every transition (one
//! transaction, group-committed with other runs) before acting on it.
//!
//! Semantics: each step runs at least once. A step marked RUNNING is
//! durable before its plugin is invoked; if the process dies, recovery
//! re-runs it as attempt + 1 with an engine log line saying why. Finished
//! steps are never re-run.
//!
//! A run with nothing to do but wait for a person (AWAITING_INPUT or
//! PAUSED, no step running, no timer) is *parked*: its actor ends and only
//! its id stays in memory; the next command reloads it from the store.
//! That is what lets 10,000 runs wait for input in a few megabytes.

mod agenda;
mod artifacts;
mod commit;
mod control;
mod outcome;
mod schedule;

use crate::plan::RunPlan;
use crate::{EngineError, Shared};
use agenda::Agenda;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weft_host::{InvocationObserver, InvokeError, PluginEvent};
use weft_model::template::{ExprContext, StepResultView};
use weft_model::{
    EventData, EventKind, Failure, LogLevel, LogSource, RunStatus, StepOutcome, StepStatus,
};
use weft_model::{LogLine, RunEvent, RunId, RunStep, StepId, StepKey, WorkflowRun};
use weft_store::{StepAttemptRecord, Transition, now_ms};

/// Where a command's result goes.
pub(crate) type Reply = oneshot::Sender<Result<(), EngineError>>;

/// A request to a running run.
pub(crate) enum RunCommand {
    Cancel {
        by: String,
        reply: Reply,
    },
    Pause {
        by: String,
        reply: Reply,
    },
    Resume {
        by: String,
        reply: Reply,
    },
    Answer {
        step: StepKey,
        values: Value,
        by: String,
        reply: Reply,
    },
}

enum Msg {
    Done {
        key: StepKey,
        attempt: u32,
        result: Result<StepOutcome, InvokeError>,
    },
    Plugin {
        key: StepKey,
        attempt: u32,
        event: PluginEvent,
    },
    /// An artifact is being written (its bytes went straight to the store).
    Artifact {
        key: StepKey,
        attempt: u32,
        name: String,
        size: u64,
    },
}

struct ToActor {
    tx: mpsc::UnboundedSender<Msg>,
    key: StepKey,
    attempt: u32,
    artifacts: artifacts::ArtifactWrites,
}

impl InvocationObserver for ToActor {
    fn on_event(&self, event: PluginEvent) {
        let msg = match event {
            PluginEvent::Artifact {
                name,
                media_type,
                data,
                ..
            } => {
                let meta = self.artifacts.write(
                    &self.key,
                    self.attempt,
                    artifacts::Artifact {
                        name,
                        media_type,
                        data,
                    },
                );
                Msg::Artifact {
                    key: self.key.clone(),
                    attempt: self.attempt,
                    name: meta.name,
                    size: meta.size,
                }
            }
            event => Msg::Plugin {
                key: self.key.clone(),
                attempt: self.attempt,
                event,
            },
        };
        let _ = self.tx.send(msg);
    }
}

/// How often buffered log lines of long-running steps are persisted.
const LOG_FLUSH: Duration = Duration::from_millis(200);

/// Capacity of a run's command channel (commands are rare; senders wait).
pub(crate) const COMMAND_QUEUE: usize = 16;

pub(crate) struct RunActor {
    shared: Arc<Shared>,
    plan: Arc<RunPlan>,
    run: WorkflowRun,
    steps: BTreeMap<StepKey, RunStep>,
    agenda: Agenda,
    /// What expressions see, updated as top-level steps finish.
    ctx: ExprContext,
    /// Set while the run is begun inside the request that starts it:
    /// expressions needing more than the inline slice are put off, to the
    /// actor's first schedule, instead of holding the request.
    inline_only: bool,
    /// Steps to examine again once `inline_only` is lifted (positions).
    deferred_examine: Vec<usize>,
    /// Steps to start again once `inline_only` is lifted (keys).
    deferred_start: Vec<StepKey>,
    dirty_steps: BTreeSet<StepKey>,
    events: Vec<RunEvent>,
    logs: Vec<LogLine>,
    /// Attempts superseded by a new attempt since the last transition.
    earlier_attempts: Vec<StepAttemptRecord>,
    to_start: Vec<StepKey>,
    running: HashMap<StepKey, CancellationToken>,
    /// Full answers including secret fields: memory only.
    answers: HashMap<StepKey, Value>,
    completion_seq: u64,
    /// Accepted commands, answered once their transition is committed.
    acks: Vec<Reply>,
    /// `running.len()` as last added to the engine-wide count.
    reported_running: usize,
    cancel_requested: Option<String>,
    timed_out: bool,
    needs_compensation: bool,
    deadline: Option<Instant>,
    first_log_at: Option<Instant>,
    /// The run-level fields as last written to the store.
    stored_head: RunHead,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    commands: mpsc::Receiver<RunCommand>,
}

fn step_record(run_id: &RunId, step_id: &StepId, item: Option<u32>) -> RunStep {
    RunStep {
        run_id: run_id.clone(),
        key: StepKey::of(step_id, item),
        step_id: step_id.clone(),
        item,
        status: StepStatus::Pending,
        attempt: 0,
        input: None,
        output: None,
        error: None,
        input_request: None,
        answer: None,
        answer_has_secrets: false,
        next_attempt_at: None,
        last_attempt: None,
        first_started_at: None,
        legacy_attempts: Vec::new(),
        ended_at: None,
        completion_seq: None,
    }
}

/// The initial step records of a new run.
pub(crate) fn initial_steps(plan: &RunPlan, run_id: &RunId) -> Vec<RunStep> {
    plan.order()
        .iter()
        .map(|id| step_record(run_id, id, None))
        .collect()
}

/// The fields of a run record that only the record holds. While a run is
/// RUNNING and these have not changed, a transition does not write the
/// record: progress is served from memory and sequence numbers are
/// recovered from the journal and logs themselves.
#[derive(Debug, Clone, PartialEq)]
struct RunHead {
    status: RunStatus,
    started_at: Option<i64>,
    ended_at: Option<i64>,
    outputs: Option<Value>,
    error: Option<Failure>,
}

impl RunHead {
    fn of(run: &WorkflowRun) -> Self {
        Self {
            status: run.status,
            started_at: run.started_at,
            ended_at: run.ended_at,
            outputs: run.outputs.clone(),
            error: run.error.clone(),
        }
    }
}

/// How [`RunActor::run`] ended.
enum Exit {
    /// The run reached a terminal state.
    Finished,
    /// The run waits for a command; its state is all in the store.
    Parked,
}

impl RunActor {
    pub(crate) fn new(
        shared: Arc<Shared>,
        plan: Arc<RunPlan>,
        run: WorkflowRun,
        steps: Vec<RunStep>,
        commands: mpsc::Receiver<RunCommand>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let completion_seq = steps
            .iter()
            .filter_map(|s| s.completion_seq)
            .max()
            .unwrap_or(0);
        let deadline = plan.run_timeout().map(|t| {
            let elapsed = Duration::from_millis(
                u64::try_from(now_ms() - run.started_at.unwrap_or(run.created_at)).unwrap_or(0),
            );
            Instant::now() + t.saturating_sub(elapsed)
        });
        let ctx = ExprContext {
            inputs: run.inputs.clone(),
            steps: BTreeMap::new(),
            run: json!({"id": run.run_id, "template": run.template_name, "revision": run.revision}),
            secrets: shared.config.secrets.clone(),
            item: None,
            index: None,
        };
        let stored_head = RunHead::of(&run);
        let mut actor = Self {
            shared,
            plan,
            stored_head,
            run,
            steps: BTreeMap::new(),
            agenda: Agenda::default(),
            ctx,
            dirty_steps: BTreeSet::new(),
            events: Vec::new(),
            logs: Vec::new(),
            earlier_attempts: Vec::new(),
            to_start: Vec::new(),
            running: HashMap::new(),
            answers: HashMap::new(),
            completion_seq,
            acks: Vec::new(),
            reported_running: 0,
            cancel_requested: None,
            inline_only: false,
            deferred_examine: Vec::new(),
            deferred_start: Vec::new(),
            timed_out: false,
            needs_compensation: false,
            deadline,
            first_log_at: None,
            tx,
            rx,
            commands,
        };
        for s in steps {
            actor.adopt(s);
        }
        let parents: Vec<StepId> = actor.agenda.items_left.keys().cloned().collect();
        for p in parents {
            if actor.agenda.items_left.get(&p) == Some(&0) {
                actor.agenda.parents_done.insert(p);
            }
        }
        actor
    }

    /// Takes a step record into the actor's state and bookkeeping.
    fn adopt(&mut self, s: RunStep) {
        let parent = self.is_fan_out_parent(&s);
        self.agenda.tally.change(&s.key, parent, None, s.status);
        let position = self.plan.position(&s.step_id);
        match (s.status, s.item) {
            (StepStatus::Pending, None) => {
                self.agenda.examine.insert(position);
            }
            (StepStatus::Pending | StepStatus::Ready, Some(i)) => {
                self.agenda.ready.insert((position, i + 1, s.key.clone()));
            }
            (StepStatus::Ready, None) => {
                self.agenda.ready.insert((position, 0, s.key.clone()));
            }
            (StepStatus::Retrying, _) => {
                self.agenda
                    .retries
                    .insert((s.next_attempt_at.unwrap_or(0), s.key.clone()));
            }
            (StepStatus::Running, None) if parent => {
                self.agenda.items_left.entry(s.step_id.clone()).or_insert(0);
            }
            _ => {}
        }
        if s.item.is_none() && s.status.is_terminal() {
            self.ctx.steps.insert(
                s.step_id.to_string(),
                StepResultView {
                    output: s.output.clone().unwrap_or(Value::Null),
                    status: s.status.as_str().to_owned(),
                },
            );
        }
        if s.item.is_some() && !s.status.is_terminal() {
            *self.agenda.items_left.entry(s.step_id.clone()).or_insert(0) += 1;
        }
        self.steps.insert(s.key.clone(), s);
    }

    /// Marks a step changed, to be written with the next transition.
    fn step_mut(&mut self, key: &StepKey) -> &mut RunStep {
        self.dirty_steps.insert(key.clone());
        let run_id = &self.run.run_id;
        self.steps.entry(key.clone()).or_insert_with(|| {
            // Every key the actor uses is one of its steps' (their records
            // are loaded or created first); this only keeps it total.
            step_record(run_id, &key.step(), key.item())
        })
    }

    fn is_fan_out_parent(&self, s: &RunStep) -> bool {
        s.item.is_none() && self.plan.step(&s.step_id).is_some_and(|p| p.for_each)
    }

    fn event(
        &mut self,
        kind: EventKind,
        step: Option<&StepKey>,
        attempt: Option<u32>,
        message: &str,
        data: Option<EventData>,
    ) {
        let seq = self.run.next_event_seq.max(1);
        self.run.next_event_seq = seq + 1;
        self.events.push(RunEvent {
            run_id: self.run.run_id.clone(),
            seq,
            at: now_ms(),
            kind,
            step: step.cloned(),
            attempt,
            message: message.to_owned(),
            data,
        });
    }

    fn push_log(&mut self, line: NewLogLine<'_>) {
        let seq = self.run.next_log_seq.max(1);
        self.run.next_log_seq = seq + 1;
        self.logs.push(LogLine {
            run_id: self.run.run_id.clone(),
            step_key: line.key.clone(),
            attempt: line.attempt,
            seq,
            at: now_ms(),
            level: line.level,
            message: line.message,
            context: line.context,
            source: line.source,
        });
        self.first_log_at.get_or_insert_with(Instant::now);
    }

    fn engine_log(&mut self, key: &StepKey, attempt: u32, message: &str) {
        self.push_log(NewLogLine {
            key,
            attempt,
            level: LogLevel::Info,
            message: message.to_owned(),
            context: None,
            source: LogSource::Engine,
        });
    }

    /// Schedules what can start and returns the transition that creates
    /// the run: the run record, its steps, and the first steps marked
    /// RUNNING, so creating a run and starting it is one commit.
    pub(crate) fn begin(&mut self, created: RunEvent) -> Transition {
        self.events.push(created);
        self.dirty_steps.extend(self.steps.keys().cloned());
        self.inline_only = true;
        self.schedule();
        self.inline_only = false;
        for position in std::mem::take(&mut self.deferred_examine) {
            self.agenda.examine.insert(position);
        }
        for key in std::mem::take(&mut self.deferred_start) {
            self.enqueue(&key);
        }
        let mut t = self.take_transition();
        t.run = Some(self.run.clone());
        t.creates_run = true;
        t
    }

    /// The run record as of the last [`begin`](Self::begin) or transition.
    pub(crate) fn record(&self) -> &WorkflowRun {
        &self.run
    }

    /// Drives the run until it ends or parks.
    pub(crate) async fn run(mut self) {
        let exit = self.drive().await;
        // Anything still in a plugin now reports to nobody.
        self.running.clear();
        self.report_running();
        match exit {
            Exit::Finished => self.shared.finish_run(&self.run.run_id),
            Exit::Parked => {}
        }
    }

    async fn drive(&mut self) -> Exit {
        loop {
            self.schedule();
            if self.needs_compensation {
                self.flush().await;
                self.compensate().await;
            }
            self.flush().await;
            self.spawn_started();
            // After the flush: a finished step leaves the count only once
            // its result is committed (what a graceful shutdown waits for).
            self.report_running();
            if self.run.status.is_terminal() {
                return Exit::Finished;
            }
            if self.idle() && self.try_park() {
                return Exit::Parked;
            }
            let wake = self.next_wake();
            tokio::select! {
                Some(msg) = self.rx.recv() => {
                    self.handle(msg);
                    // Drain what is already queued so one commit covers it all.
                    while let Ok(msg) = self.rx.try_recv() {
                        self.handle(msg);
                    }
                }
                Some(cmd) = self.commands.recv() => self.command(cmd),
                () = sleep_until_opt(wake) => self.on_timer(),
            }
        }
    }

    /// Nothing will happen in this run until somebody sends a command.
    fn idle(&self) -> bool {
        matches!(
            self.run.status,
            RunStatus::AwaitingInput | RunStatus::Paused
        ) && self.running.is_empty()
            && self.to_start.is_empty()
            && self.answers.is_empty()
            && self.agenda.retries.is_empty()
            && self.deadline.is_none()
            && self.cancel_requested.is_none()
            && self.first_log_at.is_none()
            && self.events.is_empty()
            && self.dirty_steps.is_empty()
    }

    /// Parks the run unless a command is already queued for it.
    fn try_park(&mut self) -> bool {
        let mut runs = self.shared.lock_runs();
        if !self.commands.is_empty() {
            return false;
        }
        runs.insert(self.run.run_id.clone(), crate::shared::RunSlot::Parked);
        true
    }

    fn next_wake(&self) -> Option<Instant> {
        let retry = self.agenda.retries.first().map(|(at, _)| {
            Instant::now() + Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
        });
        let logs = self.first_log_at.map(|t| t + LOG_FLUSH);
        [retry, logs, self.deadline.filter(|_| !self.timed_out)]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Plugin {
                key,
                attempt,
                event,
            } => self.plugin_event(&key, attempt, event),
            Msg::Artifact {
                key,
                attempt,
                name,
                size,
            } => self.engine_log(&key, attempt, &format!("artifact {name} ({size} bytes)")),
            Msg::Done {
                key,
                attempt,
                result,
            } => self.completed(&key, attempt, result),
        }
    }
}

/// One log line of a step attempt.
struct NewLogLine<'a> {
    key: &'a StepKey,
    attempt: u32,
    level: LogLevel,
    message: String,
    context: Option<Value>,
    source: LogSource,
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A jitter source; retries need spread, not cryptographic randomness.
fn rand01() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    let x = RandomState::new().hash_one(std::time::SystemTime::now());
    (x >> 11) as f64 / (1u64 << 53) as f64
}
