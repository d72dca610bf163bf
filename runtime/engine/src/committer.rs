//! Group commit: transitions from concurrent runs are batched into one
//! store transaction, so N runs finishing steps at once cost one commit,
//! not N. A run's transition is acknowledged only after its batch committed.

use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use weft_store::{Store, StoreError, Transition};

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// Handle to the committer task.
#[derive(Clone)]
pub(crate) struct Committer {
    tx: mpsc::UnboundedSender<(Arc<Transition>, Reply)>,
}

/// Largest number of transitions committed in one transaction.
const MAX_BATCH: usize = 256;

impl Committer {
    pub(crate) fn spawn(store: Store) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Arc<Transition>, Reply)>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut replies = Vec::new();
            while let Some((t, reply)) = rx.recv().await {
                batch.push(t);
                replies.push(reply);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok((t, reply)) => {
                            batch.push(t);
                            replies.push(reply);
                        }
                        Err(_) => break,
                    }
                }
                match store.commit(&batch).await {
                    Ok(()) => {
                        for reply in replies.drain(..) {
                            let _ = reply.send(Ok(()));
                        }
                    }
                    // One bad transition (a reused idempotency key, say)
                    // must not fail its neighbours: commit them one by one.
                    Err(_) if batch.len() > 1 => {
                        for (t, reply) in batch.iter().zip(replies.drain(..)) {
                            let _ = reply.send(store.commit(std::slice::from_ref(t)).await);
                        }
                    }
                    Err(e) => {
                        for reply in replies.drain(..) {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
                batch.clear();
            }
        });
        Self { tx }
    }

    /// Commits `t` (possibly together with others) and waits until it is durable.
    pub(crate) async fn commit(&self, t: Arc<Transition>) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((t, reply))
            .map_err(|_| StoreError::Db("committer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Db("committer stopped".into()))?
    }
}
