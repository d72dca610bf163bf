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

/// How many live events a slow subscriber may fall behind before it is
/// told it lagged (it then re-reads the backlog from the store).
const CAPACITY: usize = 256;

/// Per-run broadcast channels, created on demand by a subscriber and
/// dropped once nobody listens, so runs nobody watches cost nothing here.
#[derive(Default)]
pub(crate) struct LiveHub {
    channels: Mutex<HashMap<String, broadcast::Sender<LiveEvent>>>,
}

impl LiveHub {
    pub(crate) fn subscribe(&self, run_id: &str) -> broadcast::Receiver<LiveEvent> {
        let mut c = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        c.entry(run_id.to_owned())
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Whether anybody listens to `run_id` (publishing can be skipped).
    pub(crate) fn has_subscribers(&self, run_id: &str) -> bool {
        let c = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        c.contains_key(run_id)
    }

    pub(crate) fn publish(&self, run_id: &str, e: LiveEvent) {
        let mut c = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = c.get(run_id)
            && tx.send(e).is_err()
        {
            // Every receiver is gone.
            c.remove(run_id);
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
