//! Live subscriptions: what a run persisted, published to subscribers
//! (the API's SSE and WebSocket streams) right after the commit.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;
use weft_store::{LogRecord, RunEvent};

/// Something that happened in a run, already durable.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// An event-log entry (status changes, step transitions…).
    Event(RunEvent),
    /// A log line of a step attempt.
    Log(LogRecord),
}

/// Per-run broadcast channels, created on demand.
#[derive(Default)]
pub(crate) struct LiveHub {
    channels: Mutex<HashMap<String, broadcast::Sender<LiveEvent>>>,
}

impl LiveHub {
    pub(crate) fn subscribe(&self, run_id: &str) -> broadcast::Receiver<LiveEvent> {
        let mut c = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        c.entry(run_id.to_owned())
            .or_insert_with(|| broadcast::channel(1024).0)
            .subscribe()
    }

    pub(crate) fn publish(&self, run_id: &str, e: LiveEvent) {
        let c = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = c.get(run_id) {
            let _ = tx.send(e);
        }
    }

    /// Drops a finished run's channel once nobody listens.
    pub(crate) fn close(&self, run_id: &str) {
        let mut c = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if c.get(run_id).is_some_and(|tx| tx.receiver_count() == 0) {
            c.remove(run_id);
        }
    }
}
