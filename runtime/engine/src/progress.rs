//! Progress of running runs, for readers.
//!
//! A transition that changes only steps leaves the run record alone (one
//! record fewer per step), so while a run is RUNNING its stored progress
//! is behind; its actor keeps the current one here. Any other status is
//! written together with its progress.

use std::collections::HashMap;
use std::sync::Mutex;
use weft_model::RunStatus;
use weft_model::{RunId, RunProgress, WorkflowRun};

/// Current progress of RUNNING runs whose stored record is behind.
#[derive(Default)]
pub(crate) struct LiveProgress {
    runs: Mutex<HashMap<RunId, RunProgress>>,
}

impl LiveProgress {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, RunProgress>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a run's progress after a commit that did not write its
    /// record (every step of a running run: its entry is reused).
    pub(crate) fn set(&self, run_id: &RunId, progress: &RunProgress) {
        let mut runs = self.lock();
        match runs.get_mut(run_id) {
            Some(p) => p.clone_from(progress),
            None => {
                runs.insert(run_id.clone(), progress.clone());
            }
        }
    }

    /// Forgets a run: its stored record is current again.
    pub(crate) fn forget(&self, run_id: &RunId) {
        self.lock().remove(run_id);
    }

    /// Brings a stored run's progress up to date.
    pub(crate) fn overlay(&self, run: &mut WorkflowRun) {
        if run.status != RunStatus::Running {
            return;
        }
        if let Some(p) = self.lock().get(&run.run_id) {
            run.progress = p.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: RunStatus) -> WorkflowRun {
        crate::test_support::run_record("r", status)
    }

    #[test]
    fn only_running_records_take_live_progress() {
        let live = LiveProgress::default();
        let p = RunProgress {
            completed: 3,
            total: 5,
            running: vec![crate::test_support::key("d")],
        };
        let id = crate::test_support::rid("r");
        live.set(&id, &p);
        let mut running = run(RunStatus::Running);
        live.overlay(&mut running);
        assert_eq!(running.progress, p);
        // A finished run's record was written with its final progress.
        let mut done = run(RunStatus::Success);
        live.overlay(&mut done);
        assert_eq!(done.progress, RunProgress::default());
        live.forget(&id);
        let mut again = run(RunStatus::Running);
        live.overlay(&mut again);
        assert_eq!(again.progress, RunProgress::default());
    }
}
