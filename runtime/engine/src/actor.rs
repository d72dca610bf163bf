//! The run actor: one task per unfinished run owns its state in memory,
//! decides what happens next, and persists every transition (one
//! transaction, group-committed with other runs) before acting on it.
//!
//! Semantics: each step runs at least once. A step marked RUNNING is
//! durable before its plugin is invoked; if the process dies, recovery
//! re-runs it as attempt + 1 with an engine log line saying why. Finished
//! steps are never re-run.

use crate::live::LiveEvent;
use crate::plan::RunPlan;
use crate::{EngineError, Shared};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weft_host::{
    InvocationObserver, InvokeError, InvokeStepRequest, LogLevel, LogSource, PluginEvent,
};
use weft_model::template::{ExprContext, RetryOn, StepResultView};
use weft_model::{PluginErrorKind, RunId, RunStatus, StepId, StepOutcome, StepStatus};
use weft_store::{
    ArtifactRecord, AttemptRecord, LogRecord, RunEvent, RunRecord, StepRecord, Transition, now_ms,
};

/// A request to a running run.
pub(crate) enum RunCommand {
    Cancel {
        by: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Pause {
        by: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Resume {
        by: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Answer {
        step: String,
        values: Value,
        by: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
}

enum Msg {
    Done {
        key: String,
        attempt: u32,
        result: Result<StepOutcome, InvokeError>,
    },
    Plugin {
        key: String,
        attempt: u32,
        event: PluginEvent,
    },
}

struct ToActor {
    tx: mpsc::UnboundedSender<Msg>,
    key: String,
    attempt: u32,
}

impl InvocationObserver for ToActor {
    fn on_event(&self, event: PluginEvent) {
        let _ = self.tx.send(Msg::Plugin {
            key: self.key.clone(),
            attempt: self.attempt,
            event,
        });
    }
}

/// How often buffered log lines of long-running steps are persisted.
const LOG_FLUSH: Duration = Duration::from_millis(200);

pub(crate) struct RunActor {
    shared: Arc<Shared>,
    plan: Arc<RunPlan>,
    run: RunRecord,
    steps: BTreeMap<String, StepRecord>,
    dirty_steps: BTreeSet<String>,
    events: Vec<RunEvent>,
    logs: Vec<LogRecord>,
    to_start: Vec<String>,
    running: HashMap<String, CancellationToken>,
    /// Full answers including secret fields: memory only.
    answers: HashMap<String, Value>,
    log_seq: HashMap<String, u64>,
    completion_seq: u64,
    cancel_requested: Option<String>,
    timed_out: bool,
    needs_compensation: bool,
    deadline: Option<Instant>,
    first_log_at: Option<Instant>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    commands: mpsc::Receiver<RunCommand>,
}

fn step_record(run_id: &str, key: &str, step_id: &str, item: Option<u32>) -> StepRecord {
    StepRecord {
        run_id: run_id.to_owned(),
        key: key.to_owned(),
        step_id: step_id.to_owned(),
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
        attempts: Vec::new(),
        ended_at: None,
        completion_seq: None,
    }
}

/// The initial step records of a new run.
pub(crate) fn initial_steps(plan: &RunPlan, run_id: &str) -> Vec<StepRecord> {
    plan.order()
        .into_iter()
        .map(|id| step_record(run_id, id, id, None))
        .collect()
}

fn error_json(code: &str, message: &str, retryable: bool) -> Value {
    json!({"code": code, "message": message, "retryable": retryable})
}

impl RunActor {
    pub(crate) fn new(
        shared: Arc<Shared>,
        plan: Arc<RunPlan>,
        run: RunRecord,
        steps: Vec<StepRecord>,
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
        Self {
            shared,
            plan,
            run,
            steps: steps.into_iter().map(|s| (s.key.clone(), s)).collect(),
            dirty_steps: BTreeSet::new(),
            events: Vec::new(),
            logs: Vec::new(),
            to_start: Vec::new(),
            running: HashMap::new(),
            answers: HashMap::new(),
            log_seq: HashMap::new(),
            completion_seq,
            cancel_requested: None,
            timed_out: false,
            needs_compensation: false,
            deadline,
            first_log_at: None,
            tx,
            rx,
            commands,
        }
    }

    /// Prepares a recovered run: interrupted attempts are re-queued, and
    /// answers whose secret fields died with the old process are asked again.
    pub(crate) async fn recover(&mut self) {
        let keys: Vec<String> = self.steps.keys().cloned().collect();
        for key in keys {
            let Some(st) = self.steps.get(&key) else {
                continue;
            };
            if st.status != StepStatus::Running {
                continue;
            }
            // Log sequence numbers continue after what was persisted.
            if let Ok(last) = self
                .shared
                .store
                .logs(&self.run.run_id, &key, 0, 1000)
                .await
            {
                self.log_seq
                    .insert(key.clone(), last.last().map_or(0, |l| l.seq));
            }
            let attempt = st.attempt;
            if st.answer_has_secrets {
                let st = self.step_mut(&key);
                st.status = StepStatus::AwaitingInput;
                st.answer = None;
                st.answer_has_secrets = false;
                self.engine_log(&key, attempt, "the answer's secret fields were held in memory and lost in a restart; asking again");
                self.event(
                    "step.awaiting_input",
                    Some(&key),
                    Some(attempt),
                    "asking again after a restart",
                    None,
                );
            } else {
                let st = self.step_mut(&key);
                st.status = StepStatus::Ready;
                if let Some(a) = st.attempts.last_mut() {
                    a.ended_at = Some(now_ms());
                    a.status = StepStatus::Failed;
                    a.error = Some(error_json(
                        "INTERRUPTED",
                        "the process running this attempt stopped",
                        true,
                    ));
                }
                self.engine_log(
                    &key,
                    attempt,
                    &format!(
                        "attempt {attempt} was interrupted by a restart; re-running as attempt {}",
                        attempt + 1
                    ),
                );
                self.event(
                    "step.requeued",
                    Some(&key),
                    Some(attempt),
                    &format!("attempt {attempt} interrupted by a restart; re-queued"),
                    None,
                );
            }
        }
    }

    fn step_mut(&mut self, key: &str) -> &mut StepRecord {
        self.dirty_steps.insert(key.to_owned());
        self.steps
            .entry(key.to_owned())
            .or_insert_with(|| step_record("", key, key, None))
    }

    fn event(
        &mut self,
        kind: &str,
        step: Option<&str>,
        attempt: Option<u32>,
        message: &str,
        data: Option<Value>,
    ) {
        let seq = self.run.next_event_seq.max(1);
        self.run.next_event_seq = seq + 1;
        self.events.push(RunEvent {
            run_id: self.run.run_id.clone(),
            seq,
            at: now_ms(),
            kind: kind.to_owned(),
            step: step.map(str::to_owned),
            attempt,
            message: message.to_owned(),
            data,
        });
    }

    fn push_log(
        &mut self,
        key: &str,
        attempt: u32,
        level: &str,
        message: String,
        context: Option<Value>,
        source: &str,
    ) {
        let seq = self.log_seq.entry(key.to_owned()).or_insert(0);
        *seq += 1;
        self.logs.push(LogRecord {
            run_id: self.run.run_id.clone(),
            step_key: key.to_owned(),
            attempt,
            seq: *seq,
            at: now_ms(),
            level: level.to_owned(),
            message,
            context,
            source: source.to_owned(),
        });
        self.first_log_at.get_or_insert_with(Instant::now);
    }

    fn engine_log(&mut self, key: &str, attempt: u32, message: &str) {
        self.push_log(key, attempt, "info", message.to_owned(), None, "engine");
    }

    /// Drives the run to a terminal state.
    pub(crate) async fn run(mut self) {
        loop {
            self.schedule();
            if self.needs_compensation {
                self.flush().await;
                self.compensate().await;
            }
            self.flush().await;
            self.spawn_started();
            if self.run.status.is_terminal() {
                break;
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
        self.shared.finish_run(&self.run.run_id);
    }

    fn next_wake(&self) -> Option<Instant> {
        let now_wall = now_ms();
        let retry = self
            .steps
            .values()
            .filter(|s| s.status == StepStatus::Retrying)
            .filter_map(|s| s.next_attempt_at)
            .min()
            .map(|at| {
                Instant::now() + Duration::from_millis(u64::try_from(at - now_wall).unwrap_or(0))
            });
        let logs = self.first_log_at.map(|t| t + LOG_FLUSH);
        [retry, logs, self.deadline.filter(|_| !self.timed_out)]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_timer(&mut self) {
        if let Some(d) = self.deadline
            && !self.timed_out
            && Instant::now() >= d
        {
            self.timed_out = true;
            let msg = format!(
                "run timed out after {:?}",
                self.plan.run_timeout().unwrap_or_default()
            );
            self.event("run.timed_out", None, None, &msg, None);
            self.run.error = Some(error_json("RUN_TIMEOUT", &msg, false));
            self.cancel_everything();
        }
        // Retries whose time has come are picked up by `schedule`.
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Plugin {
                key,
                attempt,
                event,
            } => self.plugin_event(&key, attempt, event),
            Msg::Done {
                key,
                attempt,
                result,
            } => self.completed(&key, attempt, result),
        }
    }

    fn plugin_event(&mut self, key: &str, attempt: u32, event: PluginEvent) {
        match event {
            PluginEvent::Log {
                level,
                message,
                context,
                source,
                ..
            } => {
                let level = match level {
                    LogLevel::Trace => "trace",
                    LogLevel::Debug => "debug",
                    LogLevel::Info => "info",
                    LogLevel::Warn => "warn",
                    LogLevel::Error => "error",
                };
                let source = match source {
                    LogSource::Plugin => "plugin",
                    LogSource::Stdout => "stdout",
                    LogSource::Stderr => "stderr",
                };
                self.push_log(key, attempt, level, message, context, source);
            }
            PluginEvent::Progress {
                fraction, message, ..
            } => {
                let text = message.unwrap_or_else(|| format!("{:.0}%", fraction * 100.0));
                self.push_log(
                    key,
                    attempt,
                    "progress",
                    text,
                    Some(json!({"fraction": fraction})),
                    "plugin",
                );
            }
            PluginEvent::Artifact {
                name,
                media_type,
                data,
                ..
            } => {
                let meta = ArtifactRecord {
                    run_id: self.run.run_id.clone(),
                    step_key: key.to_owned(),
                    attempt,
                    name: name.clone(),
                    media_type,
                    size: data.len() as u64,
                    at: now_ms(),
                };
                self.push_log(
                    key,
                    attempt,
                    "info",
                    format!("artifact {name} ({} bytes)", data.len()),
                    None,
                    "engine",
                );
                let store = self.shared.store.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.put_artifact(&meta, &data).await {
                        tracing::error!(run = %meta.run_id, "storing artifact {} failed: {e}", meta.name);
                    }
                });
            }
        }
    }

    fn expr_ctx(&self, item: Option<(u32, Value)>) -> ExprContext {
        let steps = self
            .steps
            .values()
            .filter(|s| s.item.is_none())
            .map(|s| {
                (
                    s.step_id.clone(),
                    StepResultView {
                        output: s.output.clone().unwrap_or(Value::Null),
                        status: s.status.as_str().to_owned(),
                    },
                )
            })
            .collect();
        ExprContext {
            inputs: self.run.inputs.clone(),
            steps,
            run: json!({"id": self.run.run_id, "template": self.run.template_name, "revision": self.run.revision}),
            secrets: self.shared.config.secrets.clone(),
            index: item.as_ref().map(|(i, _)| u64::from(*i)),
            item: item.map(|(_, v)| v),
        }
    }

    fn running_count(&self) -> usize {
        self.steps
            .values()
            .filter(|s| s.status == StepStatus::Running && !self.is_fan_out_parent(s))
            .count()
    }

    fn is_fan_out_parent(&self, s: &StepRecord) -> bool {
        s.item.is_none() && self.plan.step(&s.step_id).is_some_and(|p| p.for_each)
    }

    /// Decides what can happen now: skips, fan-outs, starts, run completion.
    fn schedule(&mut self) {
        if self.run.status.is_terminal() || self.cancel_requested.is_some() || self.timed_out {
            self.maybe_finish_cancelled();
            return;
        }
        let limit = self
            .plan
            .parallel_limit()
            .map_or(usize::MAX, |l| l.max(1) as usize);
        let paused = self.run.status == RunStatus::Paused;
        let now = now_ms();
        for id in self
            .plan
            .order()
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
        {
            let Some(status) = self.steps.get(&id).map(|s| s.status) else {
                continue;
            };
            match status {
                StepStatus::Pending => {
                    let Some(step) = self.plan.step(&id) else {
                        continue;
                    };
                    let needs: Vec<String> = step.needs.to_vec();
                    let fan_out = step.for_each;
                    if !needs
                        .iter()
                        .all(|n| self.steps.get(n).is_some_and(|s| s.status.is_terminal()))
                    {
                        continue;
                    }
                    if let Some(bad) = needs.iter().find(|n| {
                        self.steps
                            .get(*n)
                            .is_some_and(|s| s.status != StepStatus::Success)
                    }) {
                        let msg = format!("skipped: upstream step {bad} did not succeed");
                        self.finish_step(&id, StepStatus::Skipped, None, None);
                        self.event("step.skipped", Some(&id), None, &msg, None);
                        continue;
                    }
                    if paused {
                        continue;
                    }
                    let ctx = self.expr_ctx(None);
                    match self.plan.condition(&id, &ctx) {
                        Ok(false) => {
                            self.finish_step(&id, StepStatus::Skipped, None, None);
                            self.event(
                                "step.skipped",
                                Some(&id),
                                None,
                                "skipped: `if` is false",
                                None,
                            );
                            continue;
                        }
                        Err(e) => {
                            self.fail_step(&id, 0, error_json("EXPRESSION", &e, false));
                            continue;
                        }
                        Ok(true) => {}
                    }
                    if fan_out {
                        match self.plan.for_each(&id, &ctx) {
                            Ok(items) => {
                                let n = items.len();
                                for (i, _) in items.iter().enumerate() {
                                    let key = format!("{id}[{i}]");
                                    let rec =
                                        step_record(&self.run.run_id, &key, &id, Some(i as u32));
                                    self.steps.insert(key.clone(), rec);
                                    self.dirty_steps.insert(key);
                                }
                                let st = self.step_mut(&id);
                                st.status = StepStatus::Running;
                                st.input = Some(Value::Array(items));
                                self.event(
                                    "step.fanned_out",
                                    Some(&id),
                                    None,
                                    &format!("fanned out over {n} items"),
                                    None,
                                );
                                self.schedule_items(&id, limit, paused, now);
                            }
                            Err(e) => self.fail_step(&id, 0, error_json("EXPRESSION", &e, false)),
                        }
                    } else if self.running_count() < limit {
                        self.start(&id, &ctx);
                    }
                }
                StepStatus::Running if self.plan.step(&id).is_some_and(|s| s.for_each) => {
                    self.schedule_items(&id, limit, paused, now);
                }
                StepStatus::Ready | StepStatus::Retrying => {
                    let due = status == StepStatus::Ready
                        || self
                            .steps
                            .get(&id)
                            .and_then(|s| s.next_attempt_at)
                            .is_none_or(|t| t <= now);
                    if due && !paused && self.running_count() < limit {
                        let ctx = self.expr_ctx(None);
                        self.start(&id, &ctx);
                    }
                }
                _ => {}
            }
        }
        self.refresh_status();
    }

    fn schedule_items(&mut self, id: &str, limit: usize, paused: bool, now: i64) {
        let items: Vec<String> = self
            .steps
            .values()
            .filter(|s| s.step_id == id && s.item.is_some())
            .map(|s| s.key.clone())
            .collect();
        let mut all_done = true;
        let mut failed = None;
        for key in &items {
            let Some(st) = self.steps.get(key) else {
                continue;
            };
            let (status, item) = (st.status, st.item);
            if !status.is_terminal() {
                all_done = false;
            } else if status != StepStatus::Success && failed.is_none() {
                failed = Some(key.clone());
            }
            let due = match status {
                StepStatus::Pending | StepStatus::Ready => true,
                StepStatus::Retrying => st.next_attempt_at.is_none_or(|t| t <= now),
                _ => false,
            };
            if due && !paused && self.running_count() < limit {
                let value = self
                    .steps
                    .get(id)
                    .and_then(|p| p.input.as_ref())
                    .and_then(|v| v.get(item.unwrap_or(0) as usize))
                    .cloned()
                    .unwrap_or(Value::Null);
                let ctx = self.expr_ctx(Some((item.unwrap_or(0), value)));
                self.start(key, &ctx);
            }
        }
        if all_done {
            if let Some(bad) = failed {
                let err = self.steps.get(&bad).and_then(|s| s.error.clone());
                self.fail_step(id, 0, json!({"code": "ITEM_FAILED", "message": format!("item {bad} failed"), "cause": err}));
            } else {
                let mut ordered: Vec<&StepRecord> =
                    items.iter().filter_map(|k| self.steps.get(k)).collect();
                ordered.sort_by_key(|s| s.item);
                let outputs: Vec<Value> = ordered
                    .iter()
                    .map(|s| s.output.clone().unwrap_or(Value::Null))
                    .collect();
                self.finish_step(id, StepStatus::Success, Some(Value::Array(outputs)), None);
                self.event(
                    "step.succeeded",
                    Some(id),
                    None,
                    &format!("all {} items succeeded", items.len()),
                    None,
                );
            }
        }
    }

    /// Marks a step RUNNING with a new attempt; it is invoked after the commit.
    fn start(&mut self, key: &str, ctx: &ExprContext) {
        let Some(step_id) = self.steps.get(key).map(|s| s.step_id.clone()) else {
            return;
        };
        let input = match self.plan.input(&step_id, ctx) {
            Ok(v) => v,
            Err(e) => {
                let attempt = self.steps.get(key).map_or(0, |s| s.attempt);
                self.fail_step(key, attempt, error_json("INVALID_INPUT", &e, false));
                return;
            }
        };
        let now = now_ms();
        if self.run.started_at.is_none() {
            self.run.started_at = Some(now);
            self.event("run.started", None, None, "run started", None);
        }
        let st = self.step_mut(key);
        st.attempt += 1;
        st.status = StepStatus::Running;
        st.input = Some(input);
        st.next_attempt_at = None;
        st.attempts.push(AttemptRecord {
            attempt: st.attempt,
            started_at: now,
            ended_at: None,
            status: StepStatus::Running,
            error: None,
        });
        let attempt = st.attempt;
        self.event(
            "step.started",
            Some(key),
            Some(attempt),
            &format!("attempt {attempt} started"),
            None,
        );
        self.to_start.push(key.to_owned());
    }

    fn finish_step(
        &mut self,
        key: &str,
        status: StepStatus,
        output: Option<Value>,
        error: Option<Value>,
    ) {
        self.completion_seq += 1;
        let seq = self.completion_seq;
        let now = now_ms();
        let st = self.step_mut(key);
        st.status = status;
        st.output = output;
        st.error = error.clone();
        st.ended_at = Some(now);
        st.completion_seq = Some(seq);
        st.input_request = None;
        if let Some(a) = st.attempts.last_mut()
            && a.ended_at.is_none()
        {
            a.ended_at = Some(now);
            a.status = status;
            a.error = error;
        }
    }

    fn fail_step(&mut self, key: &str, attempt: u32, error: Value) {
        let msg = error["message"].as_str().unwrap_or("failed").to_owned();
        self.finish_step(key, StepStatus::Failed, None, Some(error));
        self.event("step.failed", Some(key), Some(attempt), &msg, None);
    }

    fn spawn_started(&mut self) {
        for key in std::mem::take(&mut self.to_start) {
            let Some(st) = self.steps.get(&key) else {
                continue;
            };
            let Some(step) = self.plan.step(&st.step_id) else {
                continue;
            };
            let token = CancellationToken::new();
            self.running.insert(key.clone(), token.clone());
            let attempt = st.attempt;
            let mut limits = self.shared.config.step_limits.clone();
            if let Some(t) = step.timeout {
                limits.timeout = t;
                limits.cpu_time = t;
            }
            let (Ok(run_id), Ok(step_id)) = (
                RunId::new(self.run.run_id.clone()),
                StepId::new(st.step_id.clone()),
            ) else {
                continue;
            };
            let req = InvokeStepRequest {
                plugin: step.digest.clone(),
                step_type: step.step_type.to_owned(),
                input: st.input.clone().unwrap_or(Value::Null),
                run_id,
                step_id,
                attempt,
                answer: self.answers.remove(&key).or_else(|| st.answer.clone()),
                limits: Some(limits),
                secrets: self.shared.secrets.clone(),
                observer: Some(Arc::new(ToActor {
                    tx: self.tx.clone(),
                    key: key.clone(),
                    attempt,
                })),
                cancel: token,
            };
            let shared = self.shared.clone();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let result = match shared.step_slots.clone().acquire_owned().await {
                    Ok(_permit) => shared.host.invoke_step(req).await,
                    Err(_) => Err(InvokeError::Instantiate("engine is shutting down".into())),
                };
                let _ = tx.send(Msg::Done {
                    key,
                    attempt,
                    result,
                });
            });
        }
    }

    fn completed(&mut self, key: &str, attempt: u32, result: Result<StepOutcome, InvokeError>) {
        let current = self.steps.get(key).map(|s| (s.status, s.attempt));
        if current != Some((StepStatus::Running, attempt)) {
            return;
        }
        self.running.remove(key);
        match result {
            Ok(StepOutcome::Success(output)) => {
                self.finish_step(key, StepStatus::Success, Some(output), None);
                self.event(
                    "step.succeeded",
                    Some(key),
                    Some(attempt),
                    &format!("attempt {attempt} succeeded"),
                    None,
                );
            }
            Ok(StepOutcome::AwaitingInput(req)) => {
                let st = self.step_mut(key);
                st.status = StepStatus::AwaitingInput;
                st.input_request = serde_json::to_value(&req).ok();
                if let Some(a) = st.attempts.last_mut() {
                    a.ended_at = Some(now_ms());
                    a.status = StepStatus::AwaitingInput;
                }
                self.event(
                    "step.awaiting_input",
                    Some(key),
                    Some(attempt),
                    &req.prompt,
                    None,
                );
            }
            Ok(StepOutcome::Failed(err)) => {
                let on = match err.kind {
                    PluginErrorKind::Config => RetryOn::Config,
                    PluginErrorKind::Auth => RetryOn::Auth,
                    PluginErrorKind::Transient => RetryOn::Transient,
                    PluginErrorKind::RateLimited => RetryOn::RateLimited,
                    PluginErrorKind::Data => RetryOn::Data,
                    PluginErrorKind::Internal => RetryOn::Internal,
                };
                let min_delay = err.retry_after_ms.map(Duration::from_millis);
                let value = json!({"code": "PLUGIN_ERROR", "kind": err.kind, "message": err.message, "retryable": err.retryable, "details": err.details});
                self.fail_or_retry(key, attempt, on, value, min_delay);
            }
            Err(InvokeError::Cancelled) if self.cancel_requested.is_some() || self.timed_out => {
                self.finish_step(key, StepStatus::Cancelled, None, None);
                self.event(
                    "step.cancelled",
                    Some(key),
                    Some(attempt),
                    "cancelled",
                    None,
                );
            }
            Err(e) => {
                let on = match e {
                    InvokeError::Timeout(_) | InvokeError::CpuLimitExceeded(_) => RetryOn::Timeout,
                    InvokeError::Instantiate(_) => RetryOn::Transient,
                    _ => RetryOn::Trap,
                };
                let value = error_json(e.code(), &e.to_string(), e.is_retryable());
                self.fail_or_retry(key, attempt, on, value, None);
            }
        }
    }

    fn fail_or_retry(
        &mut self,
        key: &str,
        attempt: u32,
        on: RetryOn,
        error: Value,
        min_delay: Option<Duration>,
    ) {
        let step_id = self
            .steps
            .get(key)
            .map(|s| s.step_id.clone())
            .unwrap_or_default();
        let delay = self.plan.retry_delay(&step_id, on, attempt, rand01());
        let Some(delay) = delay.map(|d| min_delay.map_or(d, |m| d.max(m))) else {
            self.fail_step(key, attempt, error);
            return;
        };
        let msg = format!(
            "attempt {attempt} failed ({}); retrying in {delay:?}",
            error["message"].as_str().unwrap_or("error")
        );
        let at = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
        let st = self.step_mut(key);
        st.status = StepStatus::Retrying;
        st.next_attempt_at = Some(at);
        if let Some(a) = st.attempts.last_mut() {
            a.ended_at = Some(now_ms());
            a.status = StepStatus::Failed;
            a.error = Some(error.clone());
        }
        self.engine_log(key, attempt, &msg);
        self.event("step.retrying", Some(key), Some(attempt), &msg, Some(error));
    }

    fn refresh_status(&mut self) {
        if self.run.status.is_terminal() {
            return;
        }
        let all_done = self.steps.values().all(|s| s.status.is_terminal());
        if all_done {
            self.finish_run();
            return;
        }
        if self.run.status == RunStatus::Paused {
            return;
        }
        let active = self.steps.values().any(|s| {
            matches!(
                s.status,
                StepStatus::Running | StepStatus::Ready | StepStatus::Retrying
            )
        });
        let waiting = self
            .steps
            .values()
            .any(|s| s.status == StepStatus::AwaitingInput);
        let status = if !active && waiting {
            RunStatus::AwaitingInput
        } else {
            RunStatus::Running
        };
        if status != self.run.status {
            self.run.status = status;
            self.event("run.status", None, None, status.as_str(), None);
        }
    }

    fn finish_run(&mut self) {
        let failed: Vec<String> = self
            .steps
            .values()
            .filter(|s| s.status == StepStatus::Failed)
            .map(|s| s.key.clone())
            .collect();
        if failed.is_empty() {
            let outputs: serde_json::Map<String, Value> = self
                .steps
                .values()
                .filter(|s| s.item.is_none() && s.status == StepStatus::Success)
                .map(|s| (s.step_id.clone(), s.output.clone().unwrap_or(Value::Null)))
                .collect();
            self.run.outputs = Some(Value::Object(outputs));
            self.set_terminal(RunStatus::Success, "run succeeded");
        } else {
            if self.run.error.is_none() {
                let first = &failed[0];
                let cause = self.steps.get(first).and_then(|s| s.error.clone());
                self.run.error = Some(
                    json!({"code": "STEP_FAILED", "message": format!("step {first} failed"), "step": first, "cause": cause}),
                );
            }
            self.needs_compensation = true;
        }
    }

    /// Runs the `onFailure` compensations of completed steps in reverse
    /// completion order (the rollback provisioning users expect), then
    /// ends the run FAILED. A crash midway re-runs them on recovery
    /// (at-least-once, like steps).
    async fn compensate(&mut self) {
        self.needs_compensation = false;
        let mut done: Vec<(u64, String, String)> = self
            .steps
            .values()
            .filter(|s| s.item.is_none() && s.status == StepStatus::Success)
            .filter_map(|s| {
                s.completion_seq
                    .map(|c| (c, s.key.clone(), s.step_id.clone()))
            })
            .collect();
        done.sort_by_key(|d| std::cmp::Reverse(d.0));
        for (_, key, step_id) in done {
            let ctx = self.expr_ctx(None);
            let Some(comp) = self.plan.compensation(&step_id, &ctx) else {
                continue;
            };
            let (digest, step_type, input) = match comp {
                Ok(c) => c,
                Err(e) => {
                    self.event("step.compensation_failed", Some(&key), None, &e, None);
                    continue;
                }
            };
            self.event(
                "step.compensating",
                Some(&key),
                None,
                &format!("running compensation {step_type}"),
                None,
            );
            self.flush().await;
            let (Ok(run_id), Ok(sid)) = (
                RunId::new(self.run.run_id.clone()),
                StepId::new(step_id.clone()),
            ) else {
                continue;
            };
            let mut req = InvokeStepRequest::new(digest, step_type, input, run_id, sid);
            req.limits = Some(self.shared.config.step_limits.clone());
            req.secrets = self.shared.secrets.clone();
            let result = self.shared.host.invoke_step(req).await;
            match result {
                Ok(StepOutcome::Success(out)) => self.event(
                    "step.compensated",
                    Some(&key),
                    None,
                    "compensation succeeded",
                    Some(out),
                ),
                Ok(other) => self.event(
                    "step.compensation_failed",
                    Some(&key),
                    None,
                    "compensation did not succeed",
                    serde_json::to_value(&other).ok(),
                ),
                Err(e) => self.event(
                    "step.compensation_failed",
                    Some(&key),
                    None,
                    &format!("compensation failed: {e}"),
                    None,
                ),
            }
        }
        self.set_terminal(RunStatus::Failed, "run failed");
    }

    fn set_terminal(&mut self, status: RunStatus, message: &str) {
        self.run.status = status;
        self.run.ended_at = Some(now_ms());
        self.event(
            &format!("run.{}", status.as_str().to_ascii_lowercase()),
            None,
            None,
            message,
            None,
        );
    }

    fn cancel_everything(&mut self) {
        for token in self.running.values() {
            token.cancel();
        }
        let keys: Vec<String> = self
            .steps
            .values()
            .filter(|s| {
                !s.status.is_terminal()
                    && !self.running.contains_key(&s.key)
                    && !self.is_fan_out_parent(s)
            })
            .map(|s| s.key.clone())
            .collect();
        for key in keys {
            self.finish_step(&key, StepStatus::Cancelled, None, None);
        }
        self.maybe_finish_cancelled();
    }

    fn maybe_finish_cancelled(&mut self) {
        if self.run.status.is_terminal() || !self.running.is_empty() {
            return;
        }
        let parents: Vec<String> = self
            .steps
            .values()
            .filter(|s| !s.status.is_terminal())
            .map(|s| s.key.clone())
            .collect();
        for key in parents {
            self.finish_step(&key, StepStatus::Cancelled, None, None);
        }
        if self.timed_out {
            self.set_terminal(RunStatus::Failed, "run timed out");
        } else if let Some(by) = self.cancel_requested.clone() {
            self.set_terminal(RunStatus::Cancelled, &format!("cancelled by {by}"));
        }
    }

    fn command(&mut self, cmd: RunCommand) {
        match cmd {
            RunCommand::Cancel { by, reply } => {
                let r = if self.run.status.is_terminal() || self.cancel_requested.is_some() {
                    Err(EngineError::Conflict(format!("run is {}", self.run.status)))
                } else {
                    self.cancel_requested = Some(by.clone());
                    self.event(
                        "run.cancel_requested",
                        None,
                        None,
                        &format!("cancel requested by {by}"),
                        None,
                    );
                    self.cancel_everything();
                    Ok(())
                };
                let _ = reply.send(r);
            }
            RunCommand::Pause { by, reply } => {
                let r = if self.run.status.is_terminal() || self.run.status == RunStatus::Paused {
                    Err(EngineError::Conflict(format!("run is {}", self.run.status)))
                } else {
                    self.run.status = RunStatus::Paused;
                    self.event("run.paused", None, None, &format!("paused by {by}"), None);
                    Ok(())
                };
                let _ = reply.send(r);
            }
            RunCommand::Resume { by, reply } => {
                let r = if self.run.status != RunStatus::Paused {
                    Err(EngineError::Conflict(format!(
                        "run is {}, not PAUSED",
                        self.run.status
                    )))
                } else {
                    self.run.status = RunStatus::Running;
                    self.event("run.resumed", None, None, &format!("resumed by {by}"), None);
                    Ok(())
                };
                let _ = reply.send(r);
            }
            RunCommand::Answer {
                step,
                values,
                by,
                reply,
            } => {
                let _ = reply.send(self.answer(&step, values, &by));
            }
        }
    }

    fn answer(&mut self, key: &str, values: Value, by: &str) -> Result<(), EngineError> {
        let st = self
            .steps
            .get(key)
            .ok_or_else(|| EngineError::NotFound(format!("step {key}")))?;
        if st.status != StepStatus::AwaitingInput {
            return Err(EngineError::Conflict(format!(
                "step {key} is {}, not AWAITING_INPUT",
                st.status
            )));
        }
        let request = st.input_request.clone().unwrap_or(Value::Null);
        let schema = request.get("schema").cloned().unwrap_or(Value::Bool(true));
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| EngineError::Internal(format!("stored input schema: {e}")))?;
        let problems: Vec<String> = validator
            .iter_errors(&values)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        if !problems.is_empty() {
            return Err(EngineError::InvalidAnswer(problems));
        }
        let secret: Vec<String> = request
            .get("secretFields")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut public = values.clone();
        let mut has_secrets = false;
        if let Some(obj) = public.as_object_mut() {
            for f in &secret {
                has_secrets |= obj.remove(f).is_some();
            }
        }
        let attempt = st.attempt;
        self.answers.insert(key.to_owned(), values);
        let st = self.step_mut(key);
        st.answer = Some(public);
        st.answer_has_secrets = has_secrets;
        st.status = StepStatus::Ready;
        st.input_request = None;
        self.event(
            "step.input_received",
            Some(key),
            Some(attempt),
            &format!("input received from {by}"),
            None,
        );
        self.engine_log(key, attempt, &format!("input received from {by}"));
        if self.run.status == RunStatus::AwaitingInput {
            self.run.status = RunStatus::Running;
        }
        Ok(())
    }

    /// Persists everything pending in one transaction, then publishes it live.
    async fn flush(&mut self) {
        if self.dirty_steps.is_empty() && self.events.is_empty() && self.logs.is_empty() {
            return;
        }
        self.update_progress();
        let steps: Vec<StepRecord> = std::mem::take(&mut self.dirty_steps)
            .into_iter()
            .filter_map(|k| self.steps.get(&k).cloned())
            .collect();
        let t = Transition {
            run: Some(self.run.clone()),
            steps,
            events: std::mem::take(&mut self.events),
            logs: std::mem::take(&mut self.logs),
        };
        self.first_log_at = None;
        let mut delay = Duration::from_millis(10);
        loop {
            match self.shared.committer.commit(t.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(run = %self.run.run_id, "persisting a transition failed, retrying: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        let live = &self.shared.live;
        for e in t.events {
            live.publish(&self.run.run_id, LiveEvent::Event(e));
        }
        for l in t.logs {
            live.publish(&self.run.run_id, LiveEvent::Log(l));
        }
    }

    fn update_progress(&mut self) {
        let countable: Vec<&StepRecord> = self
            .steps
            .values()
            .filter(|s| !self.is_fan_out_parent(s))
            .collect();
        self.run.progress.total = countable.len() as u32;
        self.run.progress.completed =
            countable.iter().filter(|s| s.status.is_terminal()).count() as u32;
        self.run.progress.running = countable
            .iter()
            .filter(|s| s.status == StepStatus::Running)
            .map(|s| s.key.clone())
            .collect();
    }
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
