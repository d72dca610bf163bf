//! What happens when something finishes: step results, plugin events,
//! retries, the run's own status, and compensations on failure.

use super::{NewLogLine, RunActor, rand01};
use serde_json::{Value, json};
use std::time::Duration;
use weft_host::{InvokeError, InvokeStepRequest, LogLevel, LogSource, PluginEvent};
use weft_model::EventKind;
use weft_model::template::{RetryOn, StepResultView};
use weft_model::{EventData, Failure, FailureCode};
use weft_model::{PluginErrorKind, RunStatus, StepId, StepKey, StepOutcome, StepStatus};
use weft_store::now_ms;

impl RunActor {
    /// Changes a step's status, keeping the bookkeeping in step: a step that
    /// became terminal wakes its dependents (or its fan-out parent).
    pub(super) fn set_status(&mut self, key: &StepKey, to: StepStatus) {
        let Some(s) = self.steps.get(key) else {
            return;
        };
        let from = s.status;
        let parent = self.is_fan_out_parent(s);
        let (step_id, item) = (s.step_id.clone(), s.item);
        self.step_mut(key).status = to;
        if from == to {
            return;
        }
        self.agenda.tally.change(key, parent, Some(from), to);
        if to.is_terminal() && !from.is_terminal() {
            match item {
                Some(_) => {
                    if let Some(left) = self.agenda.items_left.get_mut(&step_id) {
                        *left = left.saturating_sub(1);
                        if *left == 0 {
                            self.agenda.parents_done.insert(step_id);
                        }
                    }
                }
                None => {
                    for d in self.plan.dependents(&step_id) {
                        self.agenda.examine.insert(self.plan.position(d));
                    }
                }
            }
        }
    }

    pub(super) fn finish_step(
        &mut self,
        key: &StepKey,
        status: StepStatus,
        output: Option<Value>,
        error: Option<Failure>,
    ) {
        self.completion_seq += 1;
        let seq = self.completion_seq;
        let now = now_ms();
        if let Some(s) = self.steps.get(key)
            && s.item.is_none()
        {
            self.ctx.steps.insert(
                s.step_id.to_string(),
                StepResultView {
                    output: output.clone().unwrap_or(Value::Null),
                    status: status.as_str().to_owned(),
                },
            );
        }
        self.set_status(key, status);
        let st = self.step_mut(key);
        st.output = output;
        st.error = error.clone();
        st.ended_at = Some(now);
        st.completion_seq = Some(seq);
        st.input_request = None;
        if let Some(a) = st.last_attempt.as_mut()
            && a.ended_at.is_none()
        {
            a.ended_at = Some(now);
            a.status = status;
            a.error = error;
        }
    }

    pub(super) fn fail_step(&mut self, key: &StepKey, attempt: u32, error: Failure) {
        let msg = error.message.clone();
        self.finish_step(key, StepStatus::Failed, None, Some(error));
        self.event(EventKind::StepFailed, Some(key), Some(attempt), &msg, None);
    }

    pub(super) fn plugin_event(&mut self, key: &StepKey, attempt: u32, event: PluginEvent) {
        match event {
            PluginEvent::Log {
                level,
                message,
                context,
                source,
                ..
            } => {
                self.push_log(NewLogLine {
                    key,
                    attempt,
                    level,
                    message,
                    context,
                    source,
                });
            }
            PluginEvent::Progress {
                fraction, message, ..
            } => {
                let text = message.unwrap_or_else(|| format!("{:.0}%", fraction * 100.0));
                self.push_log(NewLogLine {
                    key,
                    attempt,
                    level: LogLevel::Progress,
                    message: text,
                    context: Some(json!({"fraction": fraction})),
                    source: LogSource::Plugin,
                });
            }
            // Written by the attempt's observer, never through here.
            PluginEvent::Artifact { .. } => {}
        }
    }

    pub(super) fn completed(
        &mut self,
        key: &StepKey,
        attempt: u32,
        result: Result<StepOutcome, InvokeError>,
    ) {
        let current = self.steps.get(key).map(|s| (s.status, s.attempt));
        if current != Some((StepStatus::Running, attempt)) {
            return;
        }
        self.running.remove(key);
        match result {
            Ok(StepOutcome::Success(output)) => {
                self.finish_step(key, StepStatus::Success, Some(output), None);
                self.event(
                    EventKind::StepSucceeded,
                    Some(key),
                    Some(attempt),
                    &format!("attempt {attempt} succeeded"),
                    None,
                );
            }
            Ok(StepOutcome::AwaitingInput(req)) => {
                self.set_status(key, StepStatus::AwaitingInput);
                let st = self.step_mut(key);
                st.input_request = Some(req.clone());
                if let Some(a) = st.last_attempt.as_mut() {
                    a.ended_at = Some(now_ms());
                    a.status = StepStatus::AwaitingInput;
                }
                self.event(
                    EventKind::StepAwaitingInput,
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
                let value = Failure::from_plugin(&err);
                self.fail_or_retry(key, attempt, on, value, min_delay);
            }
            Err(InvokeError::Cancelled) if self.cancel_requested.is_some() || self.timed_out => {
                self.finish_step(key, StepStatus::Cancelled, None, None);
                self.event(
                    EventKind::StepCancelled,
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
                let value = Failure::new(e.code(), e.to_string(), e.is_retryable());
                self.fail_or_retry(key, attempt, on, value, None);
            }
        }
    }

    fn fail_or_retry(
        &mut self,
        key: &StepKey,
        attempt: u32,
        on: RetryOn,
        error: Failure,
        min_delay: Option<Duration>,
    ) {
        let delay = self.plan.retry_delay(key.step_id(), on, attempt, rand01());
        let Some(delay) = delay.map(|d| min_delay.map_or(d, |m| d.max(m))) else {
            self.fail_step(key, attempt, error);
            return;
        };
        let msg = format!(
            "attempt {attempt} failed ({}); retrying in {delay:?}",
            error.message
        );
        let at = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
        self.set_status(key, StepStatus::Retrying);
        self.agenda.retries.insert((at, key.clone()));
        let st = self.step_mut(key);
        st.next_attempt_at = Some(at);
        if let Some(a) = st.last_attempt.as_mut() {
            a.ended_at = Some(now_ms());
            a.status = StepStatus::Failed;
            a.error = Some(error.clone());
        }
        self.engine_log(key, attempt, &msg);
        self.event(
            EventKind::StepRetrying,
            Some(key),
            Some(attempt),
            &msg,
            Some(EventData::Failure(error)),
        );
    }

    pub(super) fn refresh_status(&mut self) {
        if self.run.status.is_terminal() {
            return;
        }
        if self.agenda.tally.all_done() {
            self.finish_run();
            return;
        }
        if self.run.status == RunStatus::Paused {
            return;
        }
        let status = if self.agenda.tally.active == 0 && self.agenda.tally.awaiting > 0 {
            RunStatus::AwaitingInput
        } else {
            RunStatus::Running
        };
        if status != self.run.status {
            self.run.status = status;
            self.event(
                EventKind::RunStatusChanged,
                None,
                None,
                status.as_str(),
                Some(EventData::Status(status)),
            );
        }
    }

    fn finish_run(&mut self) {
        let failed = self
            .steps
            .values()
            .find(|s| s.status == StepStatus::Failed)
            .map(|s| (s.key.clone(), s.error.clone()));
        match failed {
            None => {
                let outputs: serde_json::Map<String, Value> = self
                    .steps
                    .values()
                    .filter(|s| s.item.is_none() && s.status == StepStatus::Success)
                    .map(|s| {
                        (
                            s.step_id.to_string(),
                            s.output.clone().unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                self.run.outputs = Some(Value::Object(outputs));
                self.set_terminal(RunStatus::Success, "run succeeded");
            }
            Some((first, cause)) => {
                if self.run.error.is_none() {
                    self.run.error = Some(
                        Failure::new(
                            FailureCode::StepFailed,
                            format!("step {first} failed"),
                            false,
                        )
                        .caused_by(Some(first.to_string()), cause),
                    );
                }
                self.needs_compensation = true;
            }
        }
    }

    /// Runs the `onFailure` compensations of completed steps in reverse
    /// completion order (the rollback provisioning users expect), then
    /// ends the run FAILED. A crash midway re-runs them on recovery
    /// (at-least-once, like steps).
    pub(super) async fn compensate(&mut self) {
        self.needs_compensation = false;
        let mut done: Vec<(u64, StepKey, StepId)> = self
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
            let Some(comp) = self.plan.compensation(&step_id, &self.ctx) else {
                continue;
            };
            let (digest, step_type, input) = match comp {
                Ok(c) => c,
                Err(e) => {
                    self.event(
                        EventKind::StepCompensationFailed,
                        Some(&key),
                        None,
                        &e,
                        None,
                    );
                    continue;
                }
            };
            self.event(
                EventKind::StepCompensating,
                Some(&key),
                None,
                &format!("running compensation {step_type}"),
                None,
            );
            self.flush().await;
            let mut req =
                InvokeStepRequest::new(digest, step_type, input, self.run.run_id.clone(), step_id);
            req.limits = Some(self.shared.config.step_limits.clone());
            req.secrets = self.shared.secrets.clone();
            let result = self.shared.host.invoke_step(req).await;
            match result {
                Ok(StepOutcome::Success(out)) => self.event(
                    EventKind::StepCompensated,
                    Some(&key),
                    None,
                    "compensation succeeded",
                    Some(EventData::Output(out)),
                ),
                Ok(other) => self.event(
                    EventKind::StepCompensationFailed,
                    Some(&key),
                    None,
                    "compensation did not succeed",
                    Some(EventData::Failure(match other {
                        StepOutcome::Failed(err) => Failure::from_plugin(&err),
                        _ => Failure::new(
                            FailureCode::PluginError,
                            "a compensation cannot ask for input",
                            false,
                        ),
                    })),
                ),
                Err(e) => self.event(
                    EventKind::StepCompensationFailed,
                    Some(&key),
                    None,
                    &format!("compensation failed: {e}"),
                    None,
                ),
            }
        }
        self.set_terminal(RunStatus::Failed, "run failed");
    }

    pub(super) fn set_terminal(&mut self, status: RunStatus, message: &str) {
        self.run.status = status;
        self.run.ended_at = Some(now_ms());
        if let Some(kind) = EventKind::run_ended(status) {
            self.event(kind, None, None, message, None);
        }
    }
}
