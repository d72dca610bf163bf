//! Deciding what can happen now: skips, `if`, fan-outs, starts within the
//! run's `parallelLimit`, and handing started steps to the plugin host.

use super::agenda::ReadyEntry;
use super::artifacts::ArtifactWrites;
use super::{Msg, RunActor, ToActor, step_record};
use crate::plan::ExprFailure;
use serde_json::Value;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use weft_host::{InvokeError, InvokeStepRequest};
use weft_model::EventKind;
use weft_model::StepAttempt;
use weft_model::{Failure, FailureCode};
use weft_model::{RunStatus, StepId, StepKey, StepStatus};
use weft_store::{StepAttemptRecord, now_ms};

impl RunActor {
    /// Decides what can happen now: skips, fan-outs, starts, run completion.
    pub(super) fn schedule(&mut self) {
        if self.run.status.is_terminal() || self.cancel_requested.is_some() || self.timed_out {
            self.maybe_finish_cancelled();
            return;
        }
        if self.run.status != RunStatus::Paused {
            let limit = self
                .plan
                .parallel_limit()
                .map_or(usize::MAX, |l| l.max(1) as usize);
            self.release_due_retries();
            loop {
                let mut progressed = false;
                while let Some(parent) = self.agenda.parents_done.pop_first() {
                    self.finish_fan_out(&parent);
                    progressed = true;
                }
                while let Some(position) = self.agenda.examine.pop_first() {
                    self.examine(position);
                    progressed = true;
                }
                // A stopping engine starts nothing; recovery will.
                while self.agenda.tally.running.len() < limit && !self.shared.is_stopping() {
                    let Some((_, _, key)) = self.agenda.ready.pop_first() else {
                        break;
                    };
                    self.start(&key);
                    progressed = true;
                }
                if !progressed {
                    break;
                }
            }
        }
        self.refresh_status();
    }

    /// Moves retries whose time has come to the ready queue.
    fn release_due_retries(&mut self) {
        let now = now_ms();
        while let Some((at, _)) = self.agenda.retries.first()
            && *at <= now
        {
            let Some((_, key)) = self.agenda.retries.pop_first() else {
                break;
            };
            if self.steps.get(&key).map(|s| s.status) == Some(StepStatus::Retrying) {
                self.enqueue(&key);
            }
        }
    }

    fn ready_entry(&self, key: &StepKey) -> Option<ReadyEntry> {
        let s = self.steps.get(key)?;
        Some((
            self.plan.position(&s.step_id),
            s.item.map_or(0, |i| i + 1),
            key.clone(),
        ))
    }

    /// Queues a step whose `needs` are met for a slot.
    pub(super) fn enqueue(&mut self, key: &StepKey) {
        if let Some(e) = self.ready_entry(key) {
            self.agenda.ready.insert(e);
        }
    }

    /// Looks at a PENDING top-level step whose `needs` may have finished.
    fn examine(&mut self, position: usize) {
        let Some(id) = self.plan.order().get(position).cloned() else {
            return;
        };
        let key = StepKey::from(id.clone());
        if self.steps.get(&key).map(|s| s.status) != Some(StepStatus::Pending) {
            return;
        }
        let Some(step) = self.plan.step(&id) else {
            return;
        };
        let fan_out = step.for_each;
        let needs = step.needs;
        if !needs.iter().all(|n| {
            self.steps
                .get(n.as_str())
                .is_some_and(|s| s.status.is_terminal())
        }) {
            return;
        }
        if let Some(bad) = needs.iter().find(|n| {
            self.steps
                .get(n.as_str())
                .is_some_and(|s| s.status != StepStatus::Success)
        }) {
            let msg = format!("skipped: upstream step {bad} did not succeed");
            self.finish_step(&key, StepStatus::Skipped, None, None);
            self.event(EventKind::StepSkipped, Some(&key), None, &msg, None);
            return;
        }
        match self.plan.condition(&id, &self.ctx, self.inline_only) {
            Err(ExprFailure::Deferred) => {
                self.deferred_examine.push(position);
                return;
            }
            Ok(false) => {
                self.finish_step(&key, StepStatus::Skipped, None, None);
                self.event(
                    EventKind::StepSkipped,
                    Some(&key),
                    None,
                    "skipped: `if` is false",
                    None,
                );
                return;
            }
            Err(ExprFailure::Failed(e)) => {
                self.fail_step(&key, 0, Failure::new(e.code, e.message, false));
                return;
            }
            Ok(true) => {}
        }
        if fan_out {
            if self.fan_out(&id) {
                self.deferred_examine.push(position);
            }
        } else {
            self.enqueue(&key);
        }
    }

    /// Creates one step record per `forEach` item and queues them; `true`
    /// when its evaluation was deferred and nothing was done.
    fn fan_out(&mut self, id: &StepId) -> bool {
        let parent = StepKey::from(id.clone());
        let items = match self.plan.for_each(id, &self.ctx, self.inline_only) {
            Ok(items) => items,
            Err(ExprFailure::Deferred) => return true,
            Err(ExprFailure::Failed(e)) => {
                self.fail_step(&parent, 0, Failure::new(e.code, e.message, false));
                return false;
            }
        };
        let n = items.len();
        for i in 0..n {
            let rec = step_record(
                &self.run.run_id,
                id,
                Some(u32::try_from(i).unwrap_or(u32::MAX)),
            );
            self.dirty_steps.insert(rec.key.clone());
            self.adopt(rec);
        }
        self.agenda.items_left.entry(id.clone()).or_insert(0);
        if n == 0 {
            self.agenda.parents_done.insert(id.clone());
        }
        self.set_status(&parent, StepStatus::Running);
        self.step_mut(&parent).input = Some(Value::Array(items));
        self.event(
            EventKind::StepFannedOut,
            Some(&parent),
            None,
            &format!("fanned out over {n} items"),
            None,
        );
        false
    }

    /// Ends a fan-out parent once its items finished: the outputs in item
    /// order, or the first failed item's error.
    fn finish_fan_out(&mut self, id: &StepId) {
        let parent_key = StepKey::from(id.clone());
        let Some(parent) = self.steps.get(&parent_key) else {
            return;
        };
        if parent.status != StepStatus::Running {
            return;
        }
        let n = parent
            .input
            .as_ref()
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let mut outputs = Vec::with_capacity(n);
        let mut failed = None;
        for i in 0..n {
            let key = StepKey::of(id, Some(u32::try_from(i).unwrap_or(u32::MAX)));
            match self.steps.get(&key) {
                Some(s) if s.status == StepStatus::Success => {
                    outputs.push(s.output.clone().unwrap_or(Value::Null));
                }
                Some(s) => {
                    failed = Some((key, s.error.clone()));
                    break;
                }
                None => {
                    failed = Some((key, None));
                    break;
                }
            }
        }
        if let Some((bad, err)) = failed {
            self.fail_step(
                &parent_key,
                0,
                Failure::new(FailureCode::ItemFailed, format!("item {bad} failed"), false)
                    .caused_by(None, err),
            );
        } else {
            self.finish_step(
                &parent_key,
                StepStatus::Success,
                Some(Value::Array(outputs)),
                None,
            );
            self.event(
                EventKind::StepSucceeded,
                Some(&parent_key),
                None,
                &format!("all {n} items succeeded"),
                None,
            );
        }
    }

    /// Marks a step RUNNING with a new attempt; it is invoked after the commit.
    fn start(&mut self, key: &StepKey) {
        let Some((step_id, item, attempt)) = self
            .steps
            .get(key)
            .map(|s| (s.step_id.clone(), s.item, s.attempt))
        else {
            return;
        };
        if let Some(i) = item {
            let value = self
                .steps
                .get(step_id.as_str())
                .and_then(|p| p.input.as_ref())
                .and_then(|v| v.get(i as usize))
                .cloned()
                .unwrap_or(Value::Null);
            self.ctx.item = Some(value);
            self.ctx.index = Some(u64::from(i));
        }
        let input = self.plan.input(&step_id, &self.ctx, self.inline_only);
        self.ctx.item = None;
        self.ctx.index = None;
        let input = match input {
            Ok(v) => v,
            Err(ExprFailure::Deferred) => {
                self.deferred_start.push(key.clone());
                return;
            }
            Err(ExprFailure::Failed(e)) => {
                self.fail_step(key, attempt, Failure::new(e.code, e.message, false));
                return;
            }
        };
        let now = now_ms();
        if self.run.started_at.is_none() {
            self.run.started_at = Some(now);
            self.event(EventKind::RunStarted, None, None, "run started", None);
        }
        self.set_status(key, StepStatus::Running);
        let st = self.step_mut(key);
        st.attempt += 1;
        st.input = Some(input);
        st.next_attempt_at = None;
        st.first_started_at.get_or_insert(now);
        let earlier = st.last_attempt.replace(StepAttempt {
            attempt: st.attempt,
            started_at: now,
            ended_at: None,
            status: StepStatus::Running,
            error: None,
        });
        let attempt = st.attempt;
        if let Some(earlier) = earlier {
            let record = StepAttemptRecord {
                run_id: st.run_id.clone(),
                step_key: key.clone(),
                attempt: earlier,
            };
            self.earlier_attempts.push(record);
        }
        self.event(
            EventKind::StepStarted,
            Some(key),
            Some(attempt),
            &format!("attempt {attempt} started"),
            None,
        );
        self.to_start.push(key.clone());
    }

    /// Invokes the steps marked RUNNING by the transition just committed.
    pub(super) fn spawn_started(&mut self) {
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
            let builtin = crate::sync_step::is_builtin(step.plugin);
            let mut limits = if builtin {
                self.shared.config.sync_limits.clone()
            } else {
                self.shared.config.step_limits.clone()
            };
            if let Some(t) = step.timeout {
                limits.timeout = t;
                limits.cpu_time = t;
            }
            let observer = Arc::new(ToActor {
                tx: self.tx.clone(),
                key: key.clone(),
                attempt,
                artifacts: ArtifactWrites::new(self.shared.store.clone(), self.run.run_id.clone()),
            });
            let req = InvokeStepRequest {
                plugin: step.digest.clone(),
                step_type: step.step_type.to_owned(),
                input: st.input.clone().unwrap_or(Value::Null),
                run_id: self.run.run_id.clone(),
                step_id: st.step_id.clone(),
                attempt,
                answer: self.answers.remove(&key).or_else(|| st.answer.clone()),
                limits: Some(limits),
                secrets: self.shared.secrets.clone(),
                observer: Some(observer.clone()),
                cancel: token,
            };
            let step_label = format!("{}/{}", step.plugin, step.step_type);
            let shared = self.shared.clone();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let result = match shared.step_slots.clone().acquire_owned().await {
                    Ok(_permit) => {
                        let started = std::time::Instant::now();
                        let result = if builtin {
                            crate::sync_step::run(shared.clone(), req).await
                        } else {
                            shared.host.invoke_step(req).await
                        };
                        crate::metrics::step_finished(
                            &step_label,
                            crate::metrics::AttemptOutcome::of(&result),
                            started.elapsed(),
                        );
                        result
                    }
                    Err(_) => Err(InvokeError::Instantiate("engine is shutting down".into())),
                };
                // The result counts only once the attempt's artifacts are durable.
                let result = observer.artifacts.settle(&observer.key, result).await;
                let _ = tx.send(Msg::Done {
                    key,
                    attempt,
                    result,
                });
            });
        }
    }
}
