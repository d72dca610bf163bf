//! Recovery that survives records it cannot read.
//!
//! Start-up recovery lists unfinished runs by id only and loads each one on
//! its own, so one record that no longer decodes (written by a bug, an old
//! version, or by hand) fails that run, not the server: it is replaced by a
//! FAILED record explaining why, and what could still be read of it is kept
//! in `run_quarantine` for an operator.

use crate::runs::rows;
use crate::{Store, StoreError, now_ms};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use weft_model::{Failure, FailureCode, RunId, RunProgress, RunStatus, TemplateId, WorkflowRun};

impl Store {
    /// Ids of the runs that have not finished. Only ids are read, so a run
    /// whose record cannot be decoded does not hide the others.
    pub async fn unfinished_run_ids(&self) -> Result<Vec<RunId>, StoreError> {
        let mut res = self
            .run(
                "SELECT VALUE record::id(id) FROM run \
                 WHERE status IN ['PENDING', 'RUNNING', 'PAUSED', 'AWAITING_INPUT'];",
                json!({}),
            )
            .await?;
        let ids: Vec<Value> = rows(&mut res, 0)?;
        Ok(ids
            .into_iter()
            .filter_map(|v| v.as_str().and_then(|s| RunId::new(s).ok()))
            .collect())
    }

    /// Replaces a run that cannot be recovered by a FAILED record whose
    /// error says why (code `RUN_UNREADABLE`), keeping its identity where
    /// that can still be read, and saves what was stored to
    /// `run_quarantine:<id>` as JSON text.
    pub async fn quarantine_run(&self, run_id: &RunId, reason: &str) -> Result<(), StoreError> {
        // Whatever still reads, field by field: the record as a whole may not.
        let raw: Option<Value> = self
            .db
            .select(surrealdb::types::RecordId::new("run", run_id.as_str()))
            .await
            .ok()
            .flatten();
        let field = |name: &str| raw.as_ref().and_then(|r| r.get(name)).cloned();
        let text = |name: &str| field(name).and_then(|v| v.as_str().map(str::to_owned));
        let now = now_ms();
        let record = WorkflowRun {
            run_id: run_id.clone(),
            // A placeholder keeps the record readable when its own is not.
            template_id: text("templateId")
                .and_then(|t| TemplateId::new(t).ok())
                .unwrap_or_else(TemplateId::unknown),
            template_name: text("templateName").unwrap_or_default(),
            revision: field("revision")
                .and_then(|v| v.as_u64())
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            status: RunStatus::Failed,
            inputs: Value::Null,
            outputs: None,
            error: Some(Failure::new(FailureCode::RunUnreadable, reason, false)),
            pinned_plugins: BTreeMap::new(),
            idempotency_key: text("idempotencyKey"),
            progress: RunProgress::default(),
            created_at: field("createdAt").and_then(|v| v.as_i64()).unwrap_or(now),
            started_at: field("startedAt").and_then(|v| v.as_i64()),
            ended_at: Some(now),
            next_event_seq: field("nextEventSeq").and_then(|v| v.as_u64()).unwrap_or(1),
            next_log_seq: 1,
            next_journal_seq: 1,
        };
        let saved = raw.map(|r| r.to_string());
        let mut content =
            serde_json::to_value(&record).map_err(|e| StoreError::Codec(e.to_string()))?;
        if let Some(o) = content.as_object_mut() {
            o.remove("id");
        }
        self.run(
            "BEGIN TRANSACTION;\
             UPSERT type::record('run_quarantine', $id) CONTENT { runId: $id, reason: $reason, raw: $raw, at: $at };\
             DELETE type::record('run', $id);\
             CREATE type::record('run', $id) CONTENT $record;\
             COMMIT TRANSACTION;",
            json!({"id": run_id, "reason": reason, "raw": saved, "at": now, "record": content}),
        )
        .await?;
        Ok(())
    }
}
