//! Runs, steps, the event log, logs, artifacts and schedule claims.

use crate::records::{AttemptPage, RunFilter, RunPage, StepAttemptRecord, Transition};
use crate::{DbErrorKind, Store, StoreError};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt::Write;
use weft_model::{
    ArtifactInfo, LogLine, RunEvent, RunId, RunStep, StepAttempt, StepKey, TemplateId, WorkflowRun,
};

/// The next sequence numbers of a run, recovered from what it stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextSequences {
    /// The next event's.
    pub event: u64,
    /// The next log line's.
    pub log: u64,
    /// The next journal record's.
    pub journal: u64,
}

/// A journal record's position and step states (JSON text).
#[derive(serde::Deserialize)]
struct JournalSteps {
    seq: u64,
    steps: String,
}

/// Whether `create_run` made a new run or found one with the same idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateRunOutcome {
    /// A new run was written.
    Created,
    /// A run with this idempotency key already exists.
    Existing(Box<WorkflowRun>),
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, StoreError> {
    serde_json::to_value(v).map_err(|e| StoreError::Codec(e.to_string()))
}

/// A journal payload: JSON text, which SurrealDB stores as one string
/// instead of converting, validating and encoding every nested field.
fn to_text<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Codec(e.to_string()))
}

/// One journal payload, decoded.
fn from_text<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Codec(e.to_string()))
}

/// The journal payloads a query returned, decoded and concatenated.
fn from_texts<T: DeserializeOwned>(
    res: &mut surrealdb::IndexedResults,
    idx: usize,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for text in rows::<String>(res, idx)? {
        out.extend(from_text::<T>(&text)?);
    }
    Ok(out)
}

pub(crate) fn rows<T: DeserializeOwned>(
    res: &mut surrealdb::IndexedResults,
    idx: usize,
) -> Result<Vec<T>, StoreError> {
    let values: Vec<Value> = res
        .take(idx)
        .map_err(|e| StoreError::Codec(e.to_string()))?;
    values
        .into_iter()
        .map(|v| serde_json::from_value(v).map_err(|e| StoreError::Codec(e.to_string())))
        .collect()
}

/// A step as schema versions up to 4 stored it (its whole attempt history
/// inside) gets its latest attempt and first start time in the fields
/// later versions keep them in.
fn upgrade_attempts(mut step: RunStep) -> RunStep {
    if step.last_attempt.is_none() {
        step.last_attempt = step.legacy_attempts.last().cloned();
    }
    if step.first_started_at.is_none() {
        step.first_started_at = step
            .legacy_attempts
            .first()
            .map(|a: &StepAttempt| a.started_at);
    }
    step
}

/// Run fields a transition may change; the others (template, inputs,
/// pins, idempotency key, creation time) are written once, at creation.
const MUTABLE_RUN_FIELDS: &[&str] = &[
    "status",
    "outputs",
    "error",
    "progress",
    "startedAt",
    "endedAt",
    "nextEventSeq",
    "nextLogSeq",
    "nextJournalSeq",
];

/// Updates of the batch's changed runs: a loop of `UPDATE … MERGE` per
/// record. Not `INSERT … ON DUPLICATE KEY UPDATE f = $input.f, …`, whose
/// clause SurrealDB evaluates per field and record (twice the CPU, measured
/// on `mem://`), nor `UPSERT`, which costs more than `UPDATE` (1,000
/// one-step runs, alternating: 1,962–2,498 runs/s against 1,872–2,290). A
/// run exists by then: its creation committed before its actor went on,
/// and a run never has two transitions in flight.
const UPDATE_RUNS: &str =
    "FOR $r IN $runs { UPDATE type::record('run', $r.runId) MERGE $r RETURN NONE; };\n";

/// `record` with its record id set (for inserts; updates name theirs).
fn keyed(mut record: Value, id: Value) -> Value {
    if let Some(fields) = record.as_object_mut() {
        fields.insert("id".into(), id);
    }
    record
}

/// The records of a batch of transitions, by table: a batch is written
/// with a few statements however many runs it covers. Only new records are
/// written, except for runs whose head changed: a new run is a plain
/// insert, and each transition's steps and events are one new journal
/// record (the cheapest write SurrealDB has: on `mem://` a journal record
/// with 2 steps and 2 events costs about 150 µs of CPU, updating 2
/// existing steps 450–600 µs), whose payload is JSON text (in the engine
/// bench on `mem://` that cut a sequential step's commit from 286 to
/// 170 µs). The `step` and `run_event` tables hold
/// what schema version 2 wrote; they are read, never written.
#[derive(Default)]
struct BatchWriter {
    sql: String,
    vars: Map<String, Value>,
    new_runs: Vec<Value>,
    runs: Vec<Value>,
    journal: Vec<Value>,
    logs: Vec<Value>,
    attempts: Vec<Value>,
}

impl BatchWriter {
    fn add(&mut self, t: &Transition) -> Result<(), StoreError> {
        if let Some(run) = &t.run {
            let mut record = to_json(run)?;
            if t.creates_run
                && let Some(key) = &run.idempotency_key
            {
                // CREATE fails on an existing record: a reused key aborts
                // the whole transaction, and the caller looks the first run up.
                let k = format!("k{}", self.vars.len());
                let _ = writeln!(
                    self.sql,
                    "CREATE type::record('idempotency', ${k}) SET runId = ${k}r RETURN NONE;"
                );
                self.vars.insert(k.clone(), json!(key));
                self.vars.insert(format!("{k}r"), json!(run.run_id));
            }
            if t.creates_run {
                self.new_runs.push(keyed(record, json!(run.run_id)));
            } else {
                // After creation only the changing fields are written (and
                // merged): inputs and pins can be large and never change.
                if let Some(fields) = record.as_object_mut() {
                    fields.retain(|f, _| f == "runId" || MUTABLE_RUN_FIELDS.contains(&f.as_str()));
                }
                self.runs.push(record);
            }
        }
        if let Some(run_id) = t
            .steps
            .first()
            .map(|s| &s.run_id)
            .or_else(|| t.events.first().map(|e| &e.run_id))
        {
            if t.journal_seq == 0 {
                return Err(StoreError::Codec(format!(
                    "a transition of run {run_id} changes steps or events without a journal position"
                )));
            }
            let last_event = t.events.iter().map(|e| e.seq).max().unwrap_or(0);
            self.journal.push(json!({
                "id": [run_id, t.events_through.max(last_event), t.journal_seq],
                "runId": run_id,
                "seq": t.journal_seq,
                // 0 without events: event reads skip the record.
                "lastEventSeq": last_event,
                "steps": to_text(&t.steps)?,
                "events": to_text(&t.events)?,
            }));
        }
        for l in &t.logs {
            self.logs
                .push(keyed(to_json(l)?, json!([l.run_id, l.step_key, l.seq])));
        }
        for a in &t.earlier_attempts {
            self.attempts.push(keyed(
                to_json(a)?,
                json!([a.run_id, a.step_key, a.attempt.attempt]),
            ));
        }
        Ok(())
    }

    /// The transaction and its variables.
    fn finish(mut self) -> (String, Value) {
        let mut sql = String::from("BEGIN TRANSACTION;\n");
        sql.push_str(&self.sql);
        // IGNORE for the journal and logs: a transition retried after
        // a commit that did land (a lost reply) must not fail on its own
        // records.
        let parts = [
            (
                "INSERT INTO run $new_runs RETURN NONE;\n",
                "new_runs",
                self.new_runs,
            ),
            (UPDATE_RUNS, "runs", self.runs),
            (
                "INSERT IGNORE INTO journal $journal RETURN NONE;\n",
                "journal",
                self.journal,
            ),
            (
                "INSERT IGNORE INTO log $logs RETURN NONE;\n",
                "logs",
                self.logs,
            ),
            (
                "INSERT IGNORE INTO attempt $attempts RETURN NONE;\n",
                "attempts",
                self.attempts,
            ),
        ];
        for (statement, var, records) in parts {
            if !records.is_empty() {
                sql.push_str(statement);
                self.vars.insert(var.into(), Value::Array(records));
            }
        }
        sql.push_str("COMMIT TRANSACTION;");
        (sql, Value::Object(self.vars))
    }
}

impl Store {
    /// Writes a new run with its initial steps and events in one
    /// transaction. With an idempotency key that was used before, nothing
    /// is written and the existing run is returned.
    pub async fn create_run(&self, initial: &Transition) -> Result<CreateRunOutcome, StoreError> {
        let run = initial
            .run
            .as_ref()
            .ok_or_else(|| StoreError::Codec("create_run needs a run record".into()))?;
        let claim = Transition {
            creates_run: true,
            ..initial.clone()
        };
        match self.commit(&[&claim]).await {
            Ok(()) => Ok(CreateRunOutcome::Created),
            Err(e) => match &run.idempotency_key {
                Some(key) => match self.run_by_idempotency_key(key).await? {
                    Some(existing) => Ok(CreateRunOutcome::Existing(Box::new(existing))),
                    None => Err(e),
                },
                None => Err(e),
            },
        }
    }

    /// The run an idempotency key was first used for, if any.
    pub async fn run_by_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<WorkflowRun>, StoreError> {
        crate::check_key("idempotency key", key)?;
        let mut res = self
            .run(
                "SELECT VALUE runId FROM type::record('idempotency', $k);",
                json!({"k": key}),
            )
            .await?;
        let existing: Vec<String> = res.take(0).map_err(|e| StoreError::Codec(e.to_string()))?;
        match existing.into_iter().next() {
            Some(id) => Ok(Some(
                self.get_run(&RunId::new(id).map_err(|e| StoreError::Codec(e.to_string()))?)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// Commits a batch of transitions (from one or many runs) atomically.
    pub async fn commit<T: Borrow<Transition>>(&self, batch: &[T]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut writer = BatchWriter::default();
        for t in batch {
            writer.add(t.borrow())?;
        }
        let (sql, vars) = writer.finish();
        self.run(&sql, vars).await.map(drop)
    }

    /// A run by id. Read with the SDK's `select`, not a query: the hottest
    /// read the API serves skips SurrealQL parsing (72 against 52 µs per
    /// read on surrealkv).
    pub async fn get_run(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        let record: Option<Value> = self
            .db
            .select(surrealdb::types::RecordId::new("run", run_id.as_str()))
            .await
            .map_err(StoreError::db)?;
        let mut record = record.ok_or_else(|| StoreError::NotFound(format!("run {run_id}")))?;
        if let Some(fields) = record.as_object_mut() {
            fields.remove("id");
        }
        serde_json::from_value(record).map_err(|e| StoreError::Codec(e.to_string()))
    }

    /// Runs matching a filter, newest first.
    pub async fn list_runs(&self, f: &RunFilter) -> Result<RunPage, StoreError> {
        let mut cond = vec!["true".to_owned()];
        if f.status.is_some() {
            cond.push("status = $status".into());
        }
        if f.template_id.is_some() {
            cond.push("templateId = $template".into());
        }
        if f.created_after.is_some() {
            cond.push("createdAt >= $after".into());
        }
        if f.created_before.is_some() {
            cond.push("createdAt < $before".into());
        }
        let cond = cond.join(" AND ");
        let size = f.page_size.clamp(1, 100);
        let start = u64::from(f.page.max(1) - 1).saturating_mul(u64::from(size));
        let sql = format!(
            "SELECT * OMIT id FROM run WHERE {cond} ORDER BY createdAt DESC LIMIT {size} START {start};\n\
             SELECT VALUE count() FROM run WHERE {cond} GROUP ALL;"
        );
        let mut res = self
            .run(&sql, json!({"status": f.status, "template": f.template_id, "after": f.created_after, "before": f.created_before}))
            .await?;
        let runs = rows(&mut res, 0)?;
        let total: Vec<u64> = res.take(1).map_err(|e| StoreError::Codec(e.to_string()))?;
        Ok(RunPage {
            runs,
            total: total.first().copied().unwrap_or(0),
        })
    }

    /// A run's steps, in key order: the journal's states laid over each
    /// other in order (over any step records schema version 2 wrote).
    pub async fn steps(&self, run_id: &RunId) -> Result<Vec<RunStep>, StoreError> {
        let mut res = self
            .run(
                "SELECT * OMIT id FROM step:[$id, NONE]..[$id, {}];\
                 SELECT seq, steps FROM journal:[$id, NONE, NONE]..[$id, {}, {}];",
                json!({"id": run_id}),
            )
            .await?;
        let created: Vec<RunStep> = rows(&mut res, 0)?;
        let mut journal: Vec<JournalSteps> = rows(&mut res, 1)?;
        // Commit order is `seq` order (the key leads with the event cursor).
        journal.sort_by_key(|j| j.seq);
        let mut steps: BTreeMap<StepKey, RunStep> =
            created.into_iter().map(|s| (s.key.clone(), s)).collect();
        for j in journal {
            for s in from_text::<RunStep>(&j.steps)? {
                steps.insert(s.key.clone(), s);
            }
        }
        Ok(steps.into_values().map(upgrade_attempts).collect())
    }

    /// A page of a step's attempts, oldest first: the earlier ones from
    /// their own records (a range scan of just this page), the latest from
    /// the step's state.
    pub async fn step_attempts(
        &self,
        step: &RunStep,
        page: u32,
        page_size: u32,
    ) -> Result<AttemptPage, StoreError> {
        let size = u64::from(page_size.clamp(1, 100));
        let first = u64::from(page.max(1) - 1).saturating_mul(size) + 1;
        if !step.legacy_attempts.is_empty() {
            let all = &step.legacy_attempts;
            let attempts = all
                .iter()
                .skip(usize::try_from(first - 1).unwrap_or(usize::MAX))
                .take(size as usize)
                .cloned()
                .collect();
            return Ok(AttemptPage {
                attempts,
                total: all.len() as u64,
            });
        }
        let Some(latest) = &step.last_attempt else {
            return Ok(AttemptPage {
                attempts: Vec::new(),
                total: 0,
            });
        };
        let total = u64::from(latest.attempt);
        let last = (first + size - 1).min(total);
        let mut attempts = Vec::new();
        // Attempts are numbered densely from 1; all but the latest are records.
        if first < total {
            let mut res = self
                .run(
                    "SELECT * OMIT id FROM attempt:[$run, $key, $from]..=[$run, $key, $to];",
                    json!({"run": step.run_id, "key": step.key, "from": first, "to": last.min(total - 1)}),
                )
                .await?;
            let stored: Vec<StepAttemptRecord> = rows(&mut res, 0)?;
            attempts.extend(stored.into_iter().map(|a| a.attempt));
            attempts.sort_by_key(|a| a.attempt);
        }
        if first <= total && last == total {
            attempts.push(latest.clone());
        }
        Ok(AttemptPage { attempts, total })
    }

    /// Runs that have not finished, for recovery at start-up.
    pub async fn unfinished_runs(&self) -> Result<Vec<WorkflowRun>, StoreError> {
        let mut res = self
            .run("SELECT * OMIT id FROM run WHERE status IN ['PENDING', 'RUNNING', 'PAUSED', 'AWAITING_INPUT'];", json!({}))
            .await?;
        rows(&mut res, 0)
    }

    /// A run's events after `after_seq`, in order: those in its journal
    /// and any event records schema version 2 wrote.
    pub async fn events(
        &self,
        run_id: &RunId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<RunEvent>, StoreError> {
        let limit = limit.clamp(1, 1000);
        // Journal keys lead with the run's event cursor, so the scan starts
        // at records holding events past `after`; each record's events are
        // later than the previous record's, so the first `limit` records
        // with events hold at least the first `limit` events past it.
        let mut res = self
            .run(
                "SELECT * OMIT id FROM run_event:[$id, $after]>..[$id, {}] LIMIT $limit;\
                 SELECT VALUE events FROM journal:[$id, $after, {}]..[$id, {}, {}] WHERE lastEventSeq > $after LIMIT $limit;",
                json!({"id": run_id, "after": after_seq, "limit": limit}),
            )
            .await?;
        let mut events: Vec<RunEvent> = rows(&mut res, 0)?;
        let journal: Vec<RunEvent> = from_texts(&mut res, 1)?;
        events.extend(journal.into_iter().filter(|e| e.seq > after_seq));
        events.sort_by_key(|e| e.seq);
        events.dedup_by_key(|e| e.seq);
        events.truncate(limit as usize);
        Ok(events)
    }

    /// The next event, log and journal sequence numbers of a run, from
    /// what it has stored: a RUNNING run's record is not rewritten for
    /// every transition, so the counters it holds may be behind.
    pub async fn next_sequences(&self, run_id: &RunId) -> Result<NextSequences, StoreError> {
        let mut res = self
            .run(
                "math::max(SELECT VALUE seq FROM run_event:[$id, NONE]..[$id, {}]) ?? 0;\
                 math::max(SELECT VALUE seq FROM log:[$id, NONE, NONE]..[$id, {}, {}]) ?? 0;\
                 LET $journal = SELECT lastEventSeq, seq FROM journal:[$id, NONE, NONE]..[$id, {}, {}];\
                 math::max($journal.lastEventSeq) ?? 0;\
                 math::max($journal.seq) ?? 0;",
                json!({"id": run_id}),
            )
            .await?;
        // Statement 2 is the LET (one scan of the journal for both maxima).
        let mut max = [0u64; 4];
        for (i, n) in [0, 1, 3, 4].into_iter().zip(max.iter_mut()) {
            // math::max answers with whichever number kind it computed in.
            let v: Option<Value> = res.take(i).map_err(|e| StoreError::Codec(e.to_string()))?;
            *n = v
                .as_ref()
                .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64)))
                .unwrap_or(0);
        }
        Ok(NextSequences {
            event: max[0].max(max[2]) + 1,
            log: max[1] + 1,
            journal: max[3] + 1,
        })
    }

    /// A step's log lines after `after_seq`, in order.
    pub async fn logs(
        &self,
        run_id: &RunId,
        step_key: &StepKey,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<LogLine>, StoreError> {
        let mut res = self
            .run(
                "SELECT * OMIT id FROM log:[$id, $step, $after]>..[$id, $step, {}] LIMIT $limit;",
                json!({"id": run_id, "step": step_key, "after": after_seq, "limit": limit.clamp(1, 1000)}),
            )
            .await?;
        rows(&mut res, 0)
    }

    /// Stores an artifact: metadata (with the sha256 of the bytes) in
    /// `artifact`, bytes by reference in `artifact_blob`.
    pub async fn put_artifact(&self, meta: &ArtifactInfo, data: &[u8]) -> Result<(), StoreError> {
        let mut m = to_json(meta)?;
        if let Value::Object(fields) = &mut m {
            // Lets clients verify downloads and use it as an ETag.
            let digest = <sha2::Sha256 as sha2::Digest>::digest(data);
            fields.insert("sha256".into(), Value::String(hex::encode(digest)));
        }
        self.run(
            "BEGIN TRANSACTION;\
             UPSERT type::record('artifact', [$m.runId, $m.stepKey, $m.attempt, $m.name]) CONTENT $m RETURN NONE;\
             UPSERT type::record('artifact_blob', [$m.runId, $m.stepKey, $m.attempt, $m.name]) CONTENT { data: $data } RETURN NONE;\
             COMMIT TRANSACTION;",
            json!({"m": m, "data": crate::plugins::b64(data)}),
        )
        .await
        .map(drop)
    }

    /// A step's artifacts (metadata).
    pub async fn artifacts(
        &self,
        run_id: &RunId,
        step_key: &StepKey,
    ) -> Result<Vec<ArtifactInfo>, StoreError> {
        let mut res = self
            .run("SELECT * OMIT id FROM artifact WHERE runId = $id AND stepKey = $step ORDER BY attempt, name;", json!({"id": run_id, "step": step_key}))
            .await?;
        rows(&mut res, 0)
    }

    /// An artifact's bytes (latest attempt with that name).
    pub async fn artifact_data(&self, meta: &ArtifactInfo) -> Result<Vec<u8>, StoreError> {
        let mut res = self
            .run(
                "SELECT VALUE data FROM type::record('artifact_blob', [$m.runId, $m.stepKey, $m.attempt, $m.name]);",
                json!({"m": to_json(meta)?}),
            )
            .await?;
        let data: Vec<String> = res.take(0).map_err(|e| StoreError::Codec(e.to_string()))?;
        let s = data
            .first()
            .ok_or_else(|| StoreError::NotFound(format!("artifact {}", meta.name)))?;
        crate::plugins::unb64(s)
    }

    /// Claims one firing of a schedule cluster-wide; true for exactly one caller.
    pub async fn claim_schedule_fire(
        &self,
        template_id: &TemplateId,
        fire_at_ms: i64,
    ) -> Result<bool, StoreError> {
        match self
            .run(
                "CREATE type::record('schedule_fire', [$t, $at]) SET claimedAt = $now RETURN NONE;",
                json!({"t": template_id, "at": fire_at_ms, "now": crate::now_ms()}),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.db_kind() == Some(DbErrorKind::AlreadyExists) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::upgrade_attempts;
    use serde_json::json;
    use weft_model::RunStep;

    /// A step as schema version 4 stored it, history inside.
    #[test]
    fn a_step_with_its_history_inside_reads_as_latest_attempt() {
        let old = json!({
            "runId": "r", "key": "s", "stepId": "s", "item": null, "status": "SUCCESS",
            "attempt": 2, "input": null, "output": {"v": 1}, "error": null,
            "inputRequest": null, "answer": null, "answerHasSecrets": false,
            "nextAttemptAt": null, "endedAt": 30, "completionSeq": 1,
            "attempts": [
                {"attempt": 1, "startedAt": 10, "endedAt": 15, "status": "FAILED", "error": {"code": "TRAP", "message": "boom"}},
                {"attempt": 2, "startedAt": 20, "endedAt": 30, "status": "SUCCESS", "error": null}
            ]
        });
        let step = upgrade_attempts(serde_json::from_value::<RunStep>(old).unwrap());
        assert_eq!(step.first_started_at, Some(10));
        assert_eq!(step.last_attempt.as_ref().map(|a| a.attempt), Some(2));
        assert_eq!(step.legacy_attempts.len(), 2);
        let written = serde_json::to_value(&step).unwrap();
        assert!(
            written.get("attempts").is_none(),
            "history is never written back inside"
        );
    }
}
