//! Live subscriptions: what a run persisted, published to subscribers
//! (the API's SSE and WebSocket streams) right after the commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use weft_model::{LogLine, RunEvent, RunId};

/// Something that happened in a run, already durable. Shared, not owned:
/// every subscriber's receive clones the value, and a small value keeps
/// each run's channel (one slot per buffered item) small to allocate.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// An event-log entry (status changes, step transitions…).
    Event(Arc<RunEvent>),
    /// A log line of a step attempt.
    Log(Arc<LogLine>),
}

/// How many live events a slow subscriber may fall behind before it is
/// told it lagged (it then re-reads the backlog from the store).
const CAPACITY: usize = 256;

/// Per-run broadcast channels, created on demand by a subscriber and
/// dropped once nobody listens, so runs nobody watches cost nothing here.
#[derive(Default)]
pub(crate) struct LiveHub {
    channels: Mutex<Channels>,
}

#[derive(Default)]
struct Channels {
    by_run: HashMap<RunId, broadcast::Sender<LiveEvent>>,
    /// Size at which channels without receivers are swept.
    sweep_at: usize,
}

/// Fewest channels kept before a sweep.
const SWEEP_MIN: usize = 64;

impl LiveHub {
    pub(crate) fn subscribe(&self, run_id: &RunId) -> broadcast::Receiver<LiveEvent> {
        let mut guard = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let c = &mut *guard;
        // A subscriber that left a run which then published nothing more
        // (a run waiting for input, say) leaves its channel behind, and
        // each channel holds CAPACITY slots. Sweeping when the map has
        // doubled keeps them bounded at O(1) amortised cost.
        if c.by_run.len() >= c.sweep_at {
            c.by_run.retain(|_, tx| tx.receiver_count() > 0);
            c.sweep_at = (c.by_run.len() * 2).max(SWEEP_MIN);
        }
        c.by_run
            .entry(run_id.clone())
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Whether anybody listens to `run_id` (publishing can be skipped).
    pub(crate) fn has_subscribers(&self, run_id: &RunId) -> bool {
        let c = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        c.by_run.contains_key(run_id)
    }

    pub(crate) fn publish(&self, run_id: &RunId, e: LiveEvent) {
        let mut c = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = c.by_run.get(run_id)
            && tx.send(e).is_err()
        {
            // Every receiver is gone.
            c.by_run.remove(run_id);
        }
    }

    /// Drops a finished run's channel once nobody listens.
    pub(crate) fn close(&self, run_id: &RunId) {
        let mut c = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if c.by_run
            .get(run_id)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            c.by_run.remove(run_id);
        }
    }

    /// Channels currently held (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        let c = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        c.by_run.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::rid;

    #[test]
    fn channels_left_by_subscribers_are_swept() {
        let hub = LiveHub::default();
        let kept = hub.subscribe(&rid("watched"));
        for i in 0..10 * SWEEP_MIN {
            drop(hub.subscribe(&rid(&format!("run-{i}"))));
        }
        assert!(hub.len() <= SWEEP_MIN + 1, "{} channels held", hub.len());
        assert!(hub.has_subscribers(&rid("watched")));
        drop(kept);
    }
}
