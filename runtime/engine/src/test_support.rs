//! Records and ids the engine's unit tests build (from literals, so
//! a bad one is a bug in the test).
#![allow(clippy::expect_used)]

use weft_model::RunId;
use weft_model::RunStatus;
use weft_model::StepKey;
use weft_model::WorkflowRun;

/// A run record with `status` and placeholders elsewhere.
pub(crate) fn run_record(run_id: &str, status: RunStatus) -> WorkflowRun {
    WorkflowRun {
        run_id: rid(run_id),
        template_id: "t".parse().expect("a valid template id"),
        template_name: "t".into(),
        revision: 1,
        status,
        inputs: serde_json::json!({}),
        outputs: None,
        error: None,
        pinned_plugins: Default::default(),
        idempotency_key: None,
        progress: Default::default(),
        created_at: 0,
        started_at: None,
        ended_at: None,
        next_event_seq: 1,
        next_log_seq: 1,
        next_journal_seq: 1,
    }
}

/// `s` as a run id (tests use short readable ones).
pub(crate) fn rid(s: &str) -> RunId {
    s.parse().expect("a valid run id")
}

/// `s` as a step key.
pub(crate) fn key(s: &str) -> StepKey {
    s.parse().expect("a valid step key")
}
