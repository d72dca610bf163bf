//! Finished runs served from memory.
//!
//! A run's record never changes once its status is terminal: compensations
//! finish before a run is marked FAILED, and commands on a finished run are
//! refused. Clients poll runs for their result, so after the first read a
//! finished run is answered without a store round trip, on every node
//! (another node cannot change a finished run either). The cache is bounded
//! by an estimate of the records' size, not their number: inputs and outputs
//! are user data of any size.

use quick_cache::Weighter;
use quick_cache::sync::Cache;
use serde_json::Value;
use std::sync::Arc;
use weft_model::{RunId, WorkflowRun};

/// A finished run's record and its estimated size.
#[derive(Debug)]
struct Entry {
    record: WorkflowRun,
    bytes: u64,
}

/// Weighs entries by their estimated size (computed once, at insertion:
/// the weigher runs during eviction).
#[derive(Clone)]
struct BySize;

impl Weighter<RunId, Arc<Entry>> for BySize {
    fn weight(&self, key: &RunId, entry: &Arc<Entry>) -> u64 {
        key.len() as u64 + entry.bytes
    }
}

/// Records of finished runs, by run id.
pub(crate) struct FinishedRuns {
    /// `None` when turned off.
    cache: Option<Cache<RunId, Arc<Entry>, BySize>>,
}

/// Fixed cost of a record besides its JSON values (ids, names, times).
const RECORD_OVERHEAD: u64 = 512;

impl FinishedRuns {
    /// A cache holding about `capacity_bytes` of records (0 disables it).
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        let items = usize::try_from(capacity_bytes / 2048).unwrap_or(usize::MAX);
        Self {
            cache: (capacity_bytes > 0)
                .then(|| Cache::with_weighter(items.max(1), capacity_bytes, BySize)),
        }
    }

    /// The record of a finished run, if cached.
    pub(crate) fn get(&self, run_id: &RunId) -> Option<WorkflowRun> {
        self.cache.as_ref()?.get(run_id).map(|e| e.record.clone())
    }

    /// Remembers `record` if its run has finished; anything else can still change.
    pub(crate) fn remember(&self, record: &WorkflowRun) {
        let Some(cache) = &self.cache else { return };
        if !record.status.is_terminal() {
            return;
        }
        let bytes = RECORD_OVERHEAD
            + json_size(&record.inputs)
            + record.outputs.as_ref().map_or(0, json_size)
            + record.error.as_ref().map_or(0, failure_size)
            + record
                .pinned_plugins
                .iter()
                .map(|(k, v)| (k.len() + v.as_str().len()) as u64)
                .sum::<u64>();
        cache.insert(
            record.run_id.clone(),
            Arc::new(Entry {
                record: record.clone(),
                bytes,
            }),
        );
    }
}

/// Rough heap size of a failure and its causes.
fn failure_size(f: &weft_model::Failure) -> u64 {
    64 + f.message.len() as u64
        + f.step.as_ref().map_or(0, |s| s.len() as u64)
        + f.details.as_ref().map_or(0, json_size)
        + f.cause.as_deref().map_or(0, failure_size)
}

/// Rough heap size of a JSON value: string bytes plus a word or two per node.
fn json_size(v: &Value) -> u64 {
    match v {
        Value::String(s) => 24 + s.len() as u64,
        Value::Array(items) => 24 + items.iter().map(json_size).sum::<u64>(),
        Value::Object(fields) => {
            48 + fields
                .iter()
                .map(|(k, v)| 24 + k.len() as u64 + json_size(v))
                .sum::<u64>()
        }
        _ => 16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{rid, run_record};
    use weft_model::RunStatus;

    #[test]
    fn only_finished_runs_are_kept_and_size_bounds_the_cache() {
        let cache = FinishedRuns::new(64 * 1024);
        let running = run_record("running", RunStatus::Running);
        cache.remember(&running);
        assert!(
            cache.get(&rid("running")).is_none(),
            "a running run can change"
        );
        let mut done = run_record("done", RunStatus::Success);
        done.outputs = Some(serde_json::json!({"a": {"value": 55}}));
        cache.remember(&done);
        assert_eq!(cache.get(&rid("done")), Some(done));
        // A record larger than the whole cache is not kept, and many
        // records do not grow it past its bound.
        let mut huge = run_record("huge", RunStatus::Failed);
        huge.inputs = Value::String("x".repeat(128 * 1024));
        cache.remember(&huge);
        assert!(cache.get(&rid("huge")).is_none());
        for i in 0..1_000 {
            cache.remember(&run_record(&format!("r{i}"), RunStatus::Cancelled));
        }
        let kept = (0..1_000)
            .filter(|i| cache.get(&rid(&format!("r{i}"))).is_some())
            .count();
        assert!(kept > 0 && kept < 1_000, "kept {kept}");
        let off = FinishedRuns::new(0);
        off.remember(&run_record("done", RunStatus::Success));
        assert!(off.get(&rid("done")).is_none());
    }
}
