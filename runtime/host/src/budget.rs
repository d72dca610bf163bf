//! The host-wide memory budget for running invocations.
//!
//! Each invocation may grow to its own `max_memory_bytes`; many of them at
//! once could add up to more than the machine has. Before instantiating,
//! an invocation reserves its whole limit from a byte-weighted semaphore
//! (one permit per MiB) and waits while the budget is spent, instead of
//! overcommitting. The reservation is released when it is dropped, which
//! covers every way an invocation ends: return, error, timeout, cancel, or
//! its future being dropped.

use crate::error::InvokeError;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const MIB: u64 = 1 << 20;

/// Used when the machine's memory cannot be read (not Linux, no `/proc`).
const FALLBACK_BUDGET_BYTES: u64 = 4 << 30;

/// The budget, shared by every invocation of one host.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    permits: Arc<Semaphore>,
    /// Whole budget in MiB (the semaphore only knows what is left).
    total_mib: u32,
}

/// Memory held for one running invocation; released on drop.
#[derive(Debug)]
pub(crate) struct MemoryReservation {
    _permit: OwnedSemaphorePermit,
}

impl MemoryBudget {
    /// A budget of `bytes`, rounded down to whole MiB (at least one).
    pub(crate) fn new(bytes: u64) -> Self {
        let mib = (bytes / MIB).clamp(1, u64::from(u32::MAX));
        // Also bounded by what a tokio semaphore can hold.
        let total_mib = u32::try_from(mib)
            .unwrap_or(u32::MAX)
            .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Self {
            permits: Arc::new(Semaphore::new(total_mib as usize)),
            total_mib,
        }
    }

    /// Reserves `limit_bytes` (rounded up to whole MiB), waiting until
    /// enough of the budget is free. Fails at once when the limit is larger
    /// than the whole budget: waiting could never succeed.
    pub(crate) async fn reserve(&self, limit_bytes: u64) -> Result<MemoryReservation, InvokeError> {
        let too_large = || InvokeError::MemoryBudgetExceeded {
            limit_bytes,
            budget_bytes: u64::from(self.total_mib) * MIB,
        };
        let mib = u32::try_from(limit_bytes.div_ceil(MIB))
            .map_err(|_| too_large())?
            .max(1);
        if mib > self.total_mib {
            return Err(too_large());
        }
        // The semaphore is never closed; treat it like an exhausted host.
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(mib)
            .await
            .map_err(|_| InvokeError::Instantiate("the memory budget was closed".into()))?;
        Ok(MemoryReservation { _permit: permit })
    }
}

/// The default budget: half of the machine's memory (`MemTotal` in
/// `/proc/meminfo`), or 4 GiB when that cannot be read.
pub fn default_memory_budget_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| mem_total_bytes(&info))
        .map_or(FALLBACK_BUDGET_BYTES, |total| total / 2)
}

/// `MemTotal:  16314268 kB` -> bytes.
fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::pin::pin;
    use std::task::Poll;

    /// Polls `fut` once: whether it finished without waiting.
    async fn poll_once<F: Future>(fut: &mut std::pin::Pin<&mut F>) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
    }

    #[tokio::test]
    async fn a_second_reservation_waits_until_the_first_is_released() {
        let budget = MemoryBudget::new(100 * MIB);
        let first = budget.reserve(60 * MIB).await.unwrap();
        let mut second = pin!(budget.reserve(60 * MIB));
        assert!(
            poll_once(&mut second).await.is_pending(),
            "two 60 MiB reservations fit in a 100 MiB budget"
        );
        // Still waiting: nothing was released.
        assert!(poll_once(&mut second).await.is_pending());
        drop(first);
        let second = second.await.unwrap();
        // What is left after the second: 40 MiB.
        assert!(budget.reserve(40 * MIB).await.is_ok());
        drop(second);
        assert!(budget.reserve(100 * MIB).await.is_ok());
    }

    #[tokio::test]
    async fn a_limit_larger_than_the_budget_fails_at_once() {
        let budget = MemoryBudget::new(64 * MIB);
        assert_eq!(
            budget.reserve(64 * MIB + 1).await.unwrap_err(),
            InvokeError::MemoryBudgetExceeded {
                limit_bytes: 64 * MIB + 1,
                budget_bytes: 64 * MIB,
            }
        );
        assert!(budget.reserve(u64::MAX).await.is_err());
        assert!(budget.reserve(64 * MIB).await.is_ok());
    }

    #[test]
    fn mem_total_is_read_from_meminfo() {
        let info = "MemTotal:       16314268 kB\nMemFree:         1234 kB\n";
        assert_eq!(mem_total_bytes(info), Some(16_314_268 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
        assert!(default_memory_budget_bytes() >= MIB);
    }
}
