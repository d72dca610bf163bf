//! Host-side expression evaluation that cannot stall the async workers.
//!
//! Every `if`, `forEach` and `with` is first evaluated where the run's
//! actor runs, under a small slice of its budget: ordinary expressions cost
//! microseconds and finish there. One that runs out of the slice is
//! evaluated again — expressions are pure, so the result is the same —
//! with the whole budget, in [`tokio::task::block_in_place`] (the worker
//! hands its other tasks to another thread first) and only while holding
//! one of a few "heavy" slots, so a handful of hostile expressions can
//! occupy at most that many threads and `/health` keeps answering.

use serde::{Deserialize, Serialize};
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use weft_model::template::{ExprBudget, ExprError};

/// Settings for expressions the host evaluates (`weft.toml` `[expressions]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", default, deny_unknown_fields)]
pub struct ExpressionSettings {
    /// Cost units one evaluation may spend (see [`ExprBudget::max_cost`]).
    pub max_cost: u64,
    /// Wall-clock time one evaluation may take, in milliseconds.
    pub max_time_ms: u64,
    /// Largest value one evaluation may produce, in bytes of JSON.
    pub max_result_bytes: u64,
    /// Most items a `forEach` may fan out to.
    pub max_for_each_items: usize,
    /// Cost an evaluation may spend on the actor's worker before it moves
    /// off it.
    pub inline_cost: u64,
    /// Expensive evaluations running at once.
    pub heavy_slots: usize,
}

impl Default for ExpressionSettings {
    fn default() -> Self {
        let budget = ExprBudget::default();
        Self {
            max_cost: budget.max_cost,
            max_time_ms: u64::try_from(budget.max_time.as_millis()).unwrap_or(u64::MAX),
            max_result_bytes: budget.max_result_bytes,
            max_for_each_items: 10_000,
            inline_cost: 100_000,
            heavy_slots: std::thread::available_parallelism()
                .map(|n| n.get().div_ceil(2))
                .unwrap_or(1),
        }
    }
}

impl ExpressionSettings {
    /// The whole budget of one evaluation.
    pub fn budget(&self) -> ExprBudget {
        ExprBudget {
            max_cost: self.max_cost,
            max_time: Duration::from_millis(self.max_time_ms),
            max_result_bytes: self.max_result_bytes,
        }
    }
}

/// Evaluates expressions under [`ExpressionSettings`].
#[derive(Debug)]
pub(crate) struct Evaluator {
    settings: ExpressionSettings,
    budget: ExprBudget,
    inline: ExprBudget,
    heavy: Slots,
}

impl Evaluator {
    pub(crate) fn new(settings: ExpressionSettings) -> Self {
        let budget = settings.budget();
        let inline = ExprBudget {
            max_time: budget.max_time.min(Duration::from_millis(20)),
            ..budget.with_max_cost(settings.inline_cost)
        };
        Self {
            heavy: Slots::new(settings.heavy_slots.max(1)),
            budget,
            inline,
            settings,
        }
    }

    /// Most items a `forEach` may fan out to.
    pub(crate) fn max_for_each_items(&self) -> usize {
        self.settings.max_for_each_items
    }

    /// Runs `eval` with the inline slice, then, if that ran out, with the
    /// whole budget off the async workers — unless `inline_only`, when it
    /// answers `None` instead so the caller can come back to it later (a
    /// run's first steps are evaluated inside the request that starts it).
    pub(crate) fn run<T>(
        &self,
        inline_only: bool,
        eval: impl Fn(&ExprBudget) -> Result<T, ExprError>,
    ) -> Option<Result<T, ExprError>> {
        match eval(&self.inline) {
            Err(e) if e.is_budget() && self.inline != self.budget => {
                (!inline_only).then(|| offload(|| self.heavy.with(|| eval(&self.budget))))
            }
            done => Some(done),
        }
    }
}

/// Runs blocking work without stalling a multi-threaded runtime's worker;
/// elsewhere (a current-thread runtime, a plain thread) it just runs.
fn offload<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A counting semaphore for blocking code.
#[derive(Debug)]
struct Slots {
    free: Mutex<usize>,
    released: Condvar,
}

impl Slots {
    fn new(n: usize) -> Self {
        Self {
            free: Mutex::new(n),
            released: Condvar::new(),
        }
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            while *free == 0 {
                free = self.released.wait(free).unwrap_or_else(|p| p.into_inner());
            }
            *free -= 1;
        }
        struct Release<'a>(&'a Slots);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                self.0.released.notify_one();
            }
        }
        let _release = Release(self);
        f()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use weft_model::template::{CompiledExpr, ExprContext};

    #[test]
    fn cheap_expressions_stay_inline_and_expensive_ones_get_the_whole_budget() {
        let eval = Evaluator::new(ExpressionSettings {
            inline_cost: 1_000,
            ..Default::default()
        });
        let calls = AtomicUsize::new(0);
        let cheap = CompiledExpr::compile("1 + 2").unwrap();
        let out = eval.run(true, |b| {
            calls.fetch_add(1, Ordering::SeqCst);
            cheap.evaluate_with(&ExprContext::default(), b)
        });
        assert_eq!(out.unwrap().unwrap(), serde_json::json!(3));
        assert_eq!(calls.swap(0, Ordering::SeqCst), 1);
        // Over the inline slice, within the whole budget: a second, full try.
        let dear = CompiledExpr::compile("lists.range(5000).map(x, x).size()").unwrap();
        let deferred = eval.run(true, |b| dear.evaluate_with(&ExprContext::default(), b));
        assert!(deferred.is_none(), "inline only: left for later");
        let out = eval.run(false, |b| {
            calls.fetch_add(1, Ordering::SeqCst);
            dear.evaluate_with(&ExprContext::default(), b)
        });
        assert_eq!(out.unwrap().unwrap(), serde_json::json!(5000));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn heavy_slots_bound_concurrency() {
        let slots = Arc::new(Slots::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (slots, running, peak) = (slots.clone(), running.clone(), peak.clone());
                std::thread::spawn(move || {
                    slots.with(|| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 2);
        assert_eq!(*slots.free.lock().unwrap(), 2);
    }
}
