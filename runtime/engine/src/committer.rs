//! Group commit: transitions from concurrent runs are batched into one
//! store transaction, so N runs finishing steps at once cost one commit,
//! not N, and two batches commit at once so one's fsync overlaps the
//! other's work. A run's transition is acknowledged only after its batch
//! committed.

use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};
use weft_store::{Store, StoreError, Transition};

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// Handle to the committer task.
#[derive(Clone)]
pub(crate) struct Committer {
    tx: mpsc::UnboundedSender<(Arc<Transition>, Reply)>,
}

/// Largest number of transitions committed in one transaction.
const MAX_BATCH: usize = 256;

/// Batches committing at once. One batch's fsync leaves the CPU idle, so
/// a second one is built and executed meanwhile. Order is safe: a run has
/// at most one transition in flight (its actor waits for the commit), so
/// concurrent batches never hold two transitions of the same run.
/// Measured with 1,000 one-step runs on 2 cores: 1 in flight 1,244–1,288
/// runs/s, 2 in flight 1,752–1,841, 4 in flight 1,386–1,449.
const IN_FLIGHT: usize = 2;

impl Committer {
    pub(crate) fn spawn(store: Store) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Arc<Transition>, Reply)>();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            while let Some(first) = rx.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let store = store.clone();
                tokio::spawn(async move {
                    commit_batch(&store, batch).await;
                    drop(slot);
                });
            }
        });
        Self { tx }
    }

    /// Commits `t` (possibly together with others) and waits until it is durable.
    pub(crate) async fn commit(&self, t: Arc<Transition>) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((t, reply))
            .map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// Commits a batch and answers each transition's sender.
async fn commit_batch(store: &Store, batch: Vec<(Arc<Transition>, Reply)>) {
    let (transitions, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    match store.commit(&transitions).await {
        Ok(()) => {
            for reply in replies {
                let _ = reply.send(Ok(()));
            }
        }
        // One bad transition (a reused idempotency key, say) must not fail
        // its neighbours: commit them one by one.
        Err(_) if transitions.len() > 1 => {
            for (t, reply) in transitions.iter().zip(replies) {
                let _ = reply.send(store.commit(std::slice::from_ref(t)).await);
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_model::RunStatus;

    fn creating(run_id: &str, key: Option<&str>) -> Arc<Transition> {
        let mut run = crate::test_support::run_record(run_id, RunStatus::Pending);
        run.idempotency_key = key.map(str::to_owned);
        Arc::new(Transition {
            run: Some(run),
            creates_run: true,
            ..Default::default()
        })
    }

    /// Concurrent transitions land in concurrent batches; a reused
    /// idempotency key fails only its own transition, whichever batch the
    /// two claims fall into.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_batches_fail_only_the_bad_transition() -> anyhow::Result<()> {
        let store = Store::connect("mem://").await?;
        let committer = Committer::spawn(store.clone());
        let mut tasks = Vec::new();
        for i in 0..200 {
            let key = (i % 100 == 7).then_some("same-key");
            let t = creating(&format!("r{i}"), key);
            let c = committer.clone();
            tasks.push(tokio::spawn(async move { c.commit(t).await }));
        }
        let mut failed = 0;
        for task in tasks {
            if task.await?.is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 1, "only the second claim of the key fails");
        let page = store
            .list_runs(&weft_store::RunFilter {
                page: 1,
                page_size: 1,
                ..Default::default()
            })
            .await?;
        assert_eq!(page.total, 199);
        Ok(())
    }
}
