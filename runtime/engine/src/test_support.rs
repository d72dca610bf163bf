//! Records the engine's unit tests build.

use weft_model::RunStatus;
use weft_model::WorkflowRun;

/// A run record with `status` and placeholders elsewhere.
pub(crate) fn run_record(run_id: &str, status: RunStatus) -> WorkflowRun {
    WorkflowRun {
        run_id: run_id.into(),
        template_id: "t".into(),
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
