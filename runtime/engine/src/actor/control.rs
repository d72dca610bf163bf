//! Commands from outside (cancel, pause, resume, answers), the run
//! timeout, and recovery of a run whose process died.

use super::{Reply, RunActor, RunCommand};
use crate::EngineError;
use serde_json::Value;
use tokio::time::Instant;
use weft_model::EventKind;
use weft_model::{Failure, FailureCode};
use weft_model::{RunStatus, StepKey, StepStatus};
use weft_store::now_ms;

impl RunActor {
    /// Prepares a recovered run: interrupted attempts are re-queued, and
    /// answers whose secret fields died with the old process are asked again.
    pub(crate) fn recover(&mut self) {
        let interrupted: Vec<StepKey> = self
            .steps
            .values()
            .filter(|s| s.status == StepStatus::Running && !self.is_fan_out_parent(s))
            .map(|s| s.key.clone())
            .collect();
        for key in interrupted {
            let Some(st) = self.steps.get(&key) else {
                continue;
            };
            let attempt = st.attempt;
            if st.answer_has_secrets {
                self.set_status(&key, StepStatus::AwaitingInput);
                let st = self.step_mut(&key);
                st.answer = None;
                st.answer_has_secrets = false;
                self.engine_log(&key, attempt, "the answer's secret fields were held in memory and lost in a restart; asking again");
                self.event(
                    EventKind::StepAwaitingInput,
                    Some(&key),
                    Some(attempt),
                    "asking again after a restart",
                    None,
                );
            } else {
                self.set_status(&key, StepStatus::Ready);
                self.enqueue(&key);
                let st = self.step_mut(&key);
                if let Some(a) = st.last_attempt.as_mut() {
                    a.ended_at = Some(now_ms());
                    a.status = StepStatus::Failed;
                    a.error = Some(Failure::new(
                        FailureCode::Interrupted,
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
                    EventKind::StepRequeued,
                    Some(&key),
                    Some(attempt),
                    &format!("attempt {attempt} interrupted by a restart; re-queued"),
                    None,
                );
            }
        }
    }

    pub(super) fn on_timer(&mut self) {
        if let Some(d) = self.deadline
            && !self.timed_out
            && Instant::now() >= d
        {
            self.timed_out = true;
            let msg = format!(
                "run timed out after {:?}",
                self.plan.run_timeout().unwrap_or_default()
            );
            self.event(EventKind::RunTimedOut, None, None, &msg, None);
            self.run.error = Some(Failure::new(FailureCode::RunTimeout, msg.clone(), false));
            self.cancel_everything();
        }
        // Retries whose time has come are picked up by `schedule`.
    }

    fn cancel_everything(&mut self) {
        for token in self.running.values() {
            token.cancel();
        }
        let keys: Vec<StepKey> = self
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
        self.agenda.ready.clear();
        self.agenda.retries.clear();
        self.maybe_finish_cancelled();
    }

    pub(super) fn maybe_finish_cancelled(&mut self) {
        if self.run.status.is_terminal() || !self.running.is_empty() {
            return;
        }
        let parents: Vec<StepKey> = self
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

    /// Replies to a command: a refusal at once, an accepted command only
    /// after the transition it caused is committed (see `drive`), so the
    /// caller never sees an acknowledgement the store does not hold yet.
    fn acknowledge(&mut self, reply: Reply, r: Result<(), EngineError>) {
        match r {
            Ok(()) => self.acks.push(reply),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    pub(super) fn command(&mut self, cmd: RunCommand) {
        match cmd {
            RunCommand::Cancel { by, reply } => {
                let r = if self.run.status.is_terminal() || self.cancel_requested.is_some() {
                    Err(EngineError::Conflict(format!("run is {}", self.run.status)))
                } else {
                    self.cancel_requested = Some(by.clone());
                    self.event(
                        EventKind::RunCancelRequested,
                        None,
                        None,
                        &format!("cancel requested by {by}"),
                        None,
                    );
                    self.cancel_everything();
                    Ok(())
                };
                self.acknowledge(reply, r);
            }
            RunCommand::Pause { by, reply } => {
                let r = if self.run.status.is_terminal() || self.run.status == RunStatus::Paused {
                    Err(EngineError::Conflict(format!("run is {}", self.run.status)))
                } else {
                    self.run.status = RunStatus::Paused;
                    self.event(
                        EventKind::RunPaused,
                        None,
                        None,
                        &format!("paused by {by}"),
                        None,
                    );
                    Ok(())
                };
                self.acknowledge(reply, r);
            }
            RunCommand::Resume { by, reply } => {
                let r = if self.run.status != RunStatus::Paused {
                    Err(EngineError::Conflict(format!(
                        "run is {}, not PAUSED",
                        self.run.status
                    )))
                } else {
                    self.run.status = RunStatus::Running;
                    self.event(
                        EventKind::RunResumed,
                        None,
                        None,
                        &format!("resumed by {by}"),
                        None,
                    );
                    Ok(())
                };
                self.acknowledge(reply, r);
            }
            RunCommand::Answer {
                step,
                values,
                by,
                reply,
            } => {
                let r = self.answer(&step, values, &by);
                self.acknowledge(reply, r);
            }
        }
    }

    fn answer(&mut self, key: &StepKey, values: Value, by: &str) -> Result<(), EngineError> {
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
        let (schema, secret) = match &st.input_request {
            Some(r) => (r.schema.clone(), r.secret_fields.clone()),
            None => (Value::Bool(true), Vec::new()),
        };
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| EngineError::Internal(format!("stored input schema: {e}")))?;
        let problems: Vec<String> = validator
            .iter_errors(&values)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        if !problems.is_empty() {
            return Err(EngineError::InvalidAnswer(problems));
        }
        let mut public = values.clone();
        let mut has_secrets = false;
        if let Some(obj) = public.as_object_mut() {
            for f in &secret {
                has_secrets |= obj.remove(f).is_some();
            }
        }
        let attempt = st.attempt;
        self.answers.insert(key.clone(), values);
        self.set_status(key, StepStatus::Ready);
        self.enqueue(key);
        let st = self.step_mut(key);
        st.answer = Some(public);
        st.answer_has_secrets = has_secrets;
        st.input_request = None;
        self.event(
            EventKind::StepInputReceived,
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
}
