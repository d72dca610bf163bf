//! Persisting what the actor decided: pending steps, events and logs
//! become one [`Transition`], committed (group commit, retried until the
//! store takes it) before anything is published or acknowledged.

use super::{RunActor, RunHead};
use crate::Shared;
use crate::live::LiveEvent;
use std::sync::Arc;
use std::time::Duration;
use weft_model::RunStep;
use weft_model::{RunId, RunStatus};
use weft_store::Transition;

impl RunActor {
    /// Takes everything pending as one transition.
    pub(super) fn take_transition(&mut self) -> Transition {
        self.update_progress();
        let steps: Vec<RunStep> = std::mem::take(&mut self.dirty_steps)
            .into_iter()
            .filter_map(|k| self.steps.get(&k).cloned())
            .collect();
        self.first_log_at = None;
        let head = RunHead::of(&self.run);
        let write_run = head.status != RunStatus::Running || head != self.stored_head;
        if write_run {
            self.stored_head = head;
        }
        let events = std::mem::take(&mut self.events);
        // Only a transition with steps or events writes a journal record.
        let journal_seq = if steps.is_empty() && events.is_empty() {
            0
        } else {
            let seq = self.run.next_journal_seq.max(1);
            self.run.next_journal_seq = seq + 1;
            seq
        };
        Transition {
            run: write_run.then(|| self.run.clone()),
            steps,
            events,
            logs: std::mem::take(&mut self.logs),
            earlier_attempts: std::mem::take(&mut self.earlier_attempts),
            creates_run: false,
            journal_seq,
            events_through: self.run.next_event_seq.saturating_sub(1),
        }
    }

    /// Persists everything pending in one transaction, then publishes it live.
    /// Accepted commands are acknowledged after it.
    pub(super) async fn flush(&mut self) {
        if self.dirty_steps.is_empty() && self.events.is_empty() && self.logs.is_empty() {
            self.acknowledge_commands();
            return;
        }
        let t = Arc::new(self.take_transition());
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
        let run_id = &self.run.run_id;
        if t.run.is_some() {
            self.shared.live_progress.forget(run_id);
        } else {
            self.shared.live_progress.set(run_id, &self.run.progress);
        }
        self.shared.publish(run_id, &t);
        self.acknowledge_commands();
    }

    fn acknowledge_commands(&mut self) {
        for reply in self.acks.drain(..) {
            let _ = reply.send(Ok(()));
        }
    }

    /// Brings the engine-wide count of running steps up to date.
    pub(super) fn report_running(&mut self) {
        let now = self.running.len();
        if now != self.reported_running {
            let before = self.reported_running;
            self.shared
                .running_steps
                .send_modify(|n| *n = (*n + now).saturating_sub(before));
            self.reported_running = now;
        }
    }

    fn update_progress(&mut self) {
        let tally = &self.agenda.tally;
        self.run.progress.total = u32::try_from(tally.countable).unwrap_or(u32::MAX);
        self.run.progress.completed = u32::try_from(tally.countable_terminal).unwrap_or(u32::MAX);
        self.run.progress.running = tally.running.iter().cloned().collect();
    }
}

impl Shared {
    /// Publishes a committed transition's events and logs to live subscribers.
    pub(crate) fn publish(&self, run_id: &RunId, t: &Transition) {
        if !self.live.has_subscribers(run_id) {
            return;
        }
        for e in &t.events {
            self.live
                .publish(run_id, LiveEvent::Event(Arc::new(e.clone())));
        }
        for l in &t.logs {
            self.live
                .publish(run_id, LiveEvent::Log(Arc::new(l.clone())));
        }
    }
}
