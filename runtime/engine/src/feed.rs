//! The one implementation of "backlog then live, resumable after a
//! sequence number", shared by the SSE endpoints (run events, step logs)
//! and the WebSocket stream.
//!
//! A feed subscribes to the run's live channel *before* reading the
//! backlog from the store, so nothing committed in between is lost; it
//! then skips live items at or below the cursor it reached, so nothing is
//! sent twice. When the live channel lags (a slow client), it catches up
//! from the store from its cursors instead of dropping items. It ends
//! after the run's terminal event (or at once, after the backlog, when
//! the run had already finished), or when the client goes away.

use crate::{Engine, EngineError, LiveEvent, Operation};
use futures::StreamExt;
use futures::stream::BoxStream;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use weft_model::Principal;
use weft_model::{LogLine, RunEvent, RunId, StepKey};
use weft_store::{Store, StoreError};

/// Page size of backlog reads.
const PAGE: u32 = 1000;

/// One item of a feed, already durable.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// A run event (sequence numbers are dense per run).
    Event(RunEvent),
    /// A step's log line (sequence numbers are per step).
    Log(LogLine),
}

impl FeedItem {
    /// The run event, if this is one.
    pub fn into_event(self) -> Option<RunEvent> {
        match self {
            Self::Event(e) => Some(e),
            Self::Log(_) => None,
        }
    }

    /// The log line, if this is one.
    pub fn into_log(self) -> Option<LogLine> {
        match self {
            Self::Log(l) => Some(l),
            Self::Event(_) => None,
        }
    }

    fn at(&self) -> i64 {
        match self {
            Self::Event(e) => e.at,
            Self::Log(l) => l.at,
        }
    }
}

/// Which log lines a feed carries.
#[derive(Debug, Clone)]
pub enum Logs {
    /// None.
    None,
    /// One step's lines with a sequence number above `after`.
    Step {
        /// Step key (`id` or `id[i]`).
        key: StepKey,
        /// Resume point.
        after: u64,
    },
    /// Every step's lines. Log sequence numbers are per step, so there is
    /// no run-wide log cursor: with `backlog` the stored lines come first,
    /// without it only lines committed from now on.
    All {
        /// Whether to send the stored lines first.
        backlog: bool,
    },
}

/// What a feed carries.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    /// The run.
    pub run_id: RunId,
    /// Run events with a sequence number above this; `None` for no events.
    pub events_after: Option<u64>,
    /// Log lines.
    pub logs: Logs,
}

impl Engine {
    /// Starts a feed of a run's events and log lines: backlog, then live.
    pub async fn feed(
        &self,
        caller: &Principal,
        spec: FeedSpec,
    ) -> Result<BoxStream<'static, FeedItem>, EngineError> {
        self.authorize(caller, Operation::ReadRuns)?;
        self.run(caller, &spec.run_id).await?;
        // Subscribe now, before the producer reads the backlog.
        let live = self.subscribe(caller, &spec.run_id)?;
        Ok(start_feed(self, spec, live))
    }
}

fn start_feed(
    engine: &Engine,
    spec: FeedSpec,
    live: broadcast::Receiver<LiveEvent>,
) -> BoxStream<'static, FeedItem> {
    let store = engine.shared.store.clone();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut producer = Producer {
            store,
            spec,
            tx,
            events_sent: 0,
            log_sent: HashMap::new(),
            finished: false,
        };
        producer.run(live).await;
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) }).boxed()
}

/// The client went away.
struct Gone;

struct Producer {
    store: Store,
    spec: FeedSpec,
    tx: mpsc::Sender<FeedItem>,
    /// Highest event sequence number sent.
    events_sent: u64,
    /// Highest log sequence number sent, per step.
    log_sent: HashMap<StepKey, u64>,
    finished: bool,
}

impl Producer {
    async fn run(&mut self, mut live: broadcast::Receiver<LiveEvent>) {
        self.events_sent = self.spec.events_after.unwrap_or(0);
        if let Logs::Step { key, after } = &self.spec.logs {
            self.log_sent.insert(key.clone(), *after);
        }
        let all_logs = matches!(
            self.spec.logs,
            Logs::All { backlog: true } | Logs::Step { .. }
        );
        if self.catch_up(all_logs).await.is_err() {
            return;
        }
        while !self.finished {
            let next = tokio::select! {
                () = self.tx.closed() => return,
                r = live.recv() => r,
            };
            let sent = match next {
                Ok(e) => self.live_item(e).await,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(run = %self.spec.run_id, missed, "feed lagged; catching up from the store");
                    self.catch_up(all_logs).await
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if sent.is_err() {
                return;
            }
        }
    }

    /// Sends what the store has past the cursors. Steps without a cursor
    /// get their whole log only when `all_logs` is set.
    async fn catch_up(&mut self, all_logs: bool) -> Result<(), Gone> {
        // Read the status before the backlog: a run that was finished then
        // has all its events and lines in the store, and one that finishes
        // later is seen live (we subscribed before this).
        match self.store.get_run(&self.spec.run_id).await {
            Ok(run) => self.finished |= run.status.is_terminal(),
            Err(e) => {
                tracing::warn!(run = %self.spec.run_id, "feed: cannot read the run: {e}");
                return Err(Gone);
            }
        }
        match self.backlog(all_logs).await {
            Ok(mut items) => {
                // Merge events and log lines by time; the sort is stable,
                // so each kind keeps its own order.
                if self.spec.events_after.is_some() && !matches!(self.spec.logs, Logs::None) {
                    items.sort_by_key(FeedItem::at);
                }
                for item in items {
                    self.send(item).await?;
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(run = %self.spec.run_id, "feed: reading the backlog failed: {e}");
                Err(Gone)
            }
        }
    }

    async fn backlog(&self, all_logs: bool) -> Result<Vec<FeedItem>, StoreError> {
        let run_id = &self.spec.run_id;
        let mut items = Vec::new();
        if self.spec.events_after.is_some() {
            let mut after = self.events_sent;
            loop {
                let page = self.store.events(run_id, after, PAGE).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                items.extend(page.into_iter().map(FeedItem::Event));
            }
        }
        let keys: Vec<StepKey> = match &self.spec.logs {
            Logs::None => Vec::new(),
            Logs::Step { key, .. } => vec![key.clone()],
            Logs::All { .. } => self
                .store
                .steps(run_id)
                .await?
                .into_iter()
                .map(|s| s.key)
                .filter(|k| all_logs || self.log_sent.contains_key(k))
                .collect(),
        };
        for key in keys {
            let mut after = self.log_sent.get(&key).copied().unwrap_or(0);
            loop {
                let page = self.store.logs(run_id, &key, after, PAGE).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                items.extend(page.into_iter().map(FeedItem::Log));
            }
        }
        Ok(items)
    }

    /// Handles one live item: sends it if the feed carries it and it is
    /// past the cursor; notices the end of the run either way.
    async fn live_item(&mut self, e: LiveEvent) -> Result<(), Gone> {
        match e {
            LiveEvent::Event(ev) => {
                if self.spec.events_after.is_some() {
                    if ev.seq > self.events_sent {
                        self.send(FeedItem::Event(Arc::unwrap_or_clone(ev))).await?;
                    }
                } else if ev.kind.ends_run() {
                    self.finished = true;
                }
                Ok(())
            }
            LiveEvent::Log(l) => {
                let wanted = match &self.spec.logs {
                    Logs::None => false,
                    Logs::Step { key, .. } => *key == l.step_key,
                    Logs::All { .. } => true,
                };
                let seen = self.log_sent.get(&l.step_key).copied().unwrap_or(0);
                if wanted && l.seq > seen {
                    self.send(FeedItem::Log(Arc::unwrap_or_clone(l))).await?;
                }
                Ok(())
            }
        }
    }

    async fn send(&mut self, item: FeedItem) -> Result<(), Gone> {
        match &item {
            FeedItem::Event(e) => {
                self.events_sent = self.events_sent.max(e.seq);
                self.finished |= e.kind.ends_run();
            }
            FeedItem::Log(l) => {
                let seen = self.log_sent.entry(l.step_key.clone()).or_insert(0);
                *seen = (*seen).max(l.seq);
            }
        }
        self.tx.send(item).await.map_err(|_| Gone)
    }
}
