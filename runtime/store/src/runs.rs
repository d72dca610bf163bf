//! Runs, steps, the event log, logs, artifacts and schedule claims.

use crate::records::{
    ArtifactRecord, LogRecord, RunEvent, RunFilter, RunPage, RunRecord, StepRecord, Transition,
};
use crate::{Store, StoreError};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::borrow::Borrow;
use std::fmt::Write;

/// Whether `create_run` made a new run or found one with the same idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateRunOutcome {
    /// A new run was written.
    Created,
    /// A run with this idempotency key already exists.
    Existing(Box<RunRecord>),
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, StoreError> {
    serde_json::to_value(v).map_err(|e| StoreError::Codec(e.to_string()))
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
];

/// Upserts of the batch's runs and steps. A loop of `UPSERT … CONTENT` /
/// `MERGE` per record, not `INSERT … ON DUPLICATE KEY UPDATE f = $input.f,
/// …`: SurrealDB evaluates every `$input.f` of that clause per record, which
/// made a step's update cost twice the CPU (measured on `mem://`: 2 existing
/// steps 499 µs that way, 266 µs this way).
const UPSERT_RUNS: &str =
    "FOR $r IN $runs { UPSERT type::record('run', $r.runId) MERGE $r RETURN NONE; };\n";
/// Steps are written whole.
const UPSERT_STEPS: &str = "FOR $s IN $steps { UPSERT type::record('step', [$s.runId, $s.key]) CONTENT $s RETURN NONE; };\n";

/// `record` with its record id set (for inserts; upserts name theirs).
fn keyed(mut record: Value, id: Value) -> Value {
    if let Some(fields) = record.as_object_mut() {
        fields.insert("id".into(), id);
    }
    record
}

/// The records of a batch of transitions, by table and by whether they are
/// new: a batch is written with a few statements however many runs it
/// covers. A new run and its initial steps are plain inserts, the cheapest
/// write SurrealDB has (2 new steps: 133 µs of CPU inserted, 253 µs
/// through `ON DUPLICATE KEY UPDATE`, on `mem://`).
#[derive(Default)]
struct BatchWriter {
    sql: String,
    vars: Map<String, Value>,
    new_runs: Vec<Value>,
    new_steps: Vec<Value>,
    runs: Vec<Value>,
    steps: Vec<Value>,
    events: Vec<Value>,
    logs: Vec<Value>,
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
        for s in &t.steps {
            let record = to_json(s)?;
            if t.creates_run {
                // A new run's steps are new too (fan-out items appear
                // later and go through the upsert).
                self.new_steps.push(keyed(record, json!([s.run_id, s.key])));
            } else {
                self.steps.push(record);
            }
        }
        for e in &t.events {
            self.events
                .push(keyed(to_json(e)?, json!([e.run_id, e.seq])));
        }
        for l in &t.logs {
            self.logs
                .push(keyed(to_json(l)?, json!([l.run_id, l.step_key, l.seq])));
        }
        Ok(())
    }

    /// The transaction and its variables.
    fn finish(mut self) -> (String, Value) {
        let mut sql = String::from("BEGIN TRANSACTION;\n");
        sql.push_str(&self.sql);
        // IGNORE for events and logs: a transition retried after a commit
        // that did land (a lost reply) must not fail on its own records.
        let parts = [
            (
                "INSERT INTO run $new_runs RETURN NONE;\n",
                "new_runs",
                self.new_runs,
            ),
            (
                "INSERT INTO step $new_steps RETURN NONE;\n",
                "new_steps",
                self.new_steps,
            ),
            (UPSERT_RUNS, "runs", self.runs),
            (UPSERT_STEPS, "steps", self.steps),
            (
                "INSERT IGNORE INTO run_event $events RETURN NONE;\n",
                "events",
                self.events,
            ),
            (
                "INSERT IGNORE INTO log $logs RETURN NONE;\n",
                "logs",
                self.logs,
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
    pub async fn run_by_idempotency_key(&self, key: &str) -> Result<Option<RunRecord>, StoreError> {
        crate::check_key("idempotency key", key)?;
        let mut res = self
            .run(
                "SELECT VALUE runId FROM type::record('idempotency', $k);",
                json!({"k": key}),
            )
            .await?;
        let existing: Vec<String> = res.take(0).map_err(|e| StoreError::Codec(e.to_string()))?;
        match existing.first() {
            Some(id) => Ok(Some(self.get_run(id).await?)),
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

    /// A run by id.
    pub async fn get_run(&self, run_id: &str) -> Result<RunRecord, StoreError> {
        crate::check_key("run", run_id)?;
        let mut res = self
            .run(
                "SELECT * OMIT id FROM type::record('run', $id);",
                json!({"id": run_id}),
            )
            .await?;
        rows(&mut res, 0)?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("run {run_id}")))
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

    /// A run's steps, in key order.
    pub async fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        let mut res = self
            .run(
                "SELECT * OMIT id FROM step:[$id, NONE]..[$id, {}];",
                json!({"id": run_id}),
            )
            .await?;
        rows(&mut res, 0)
    }

    /// Runs that have not finished, for recovery at start-up.
    pub async fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut res = self
            .run("SELECT * OMIT id FROM run WHERE status IN ['PENDING', 'RUNNING', 'PAUSED', 'AWAITING_INPUT'];", json!({}))
            .await?;
        rows(&mut res, 0)
    }

    /// A run's events after `after_seq`, in order.
    pub async fn events(
        &self,
        run_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<RunEvent>, StoreError> {
        let mut res = self
            .run(
                "SELECT * OMIT id FROM run_event:[$id, $after]>..[$id, {}] LIMIT $limit;",
                json!({"id": run_id, "after": after_seq, "limit": limit.clamp(1, 1000)}),
            )
            .await?;
        rows(&mut res, 0)
    }

    /// The next event and log sequence numbers of a run, from the events
    /// and logs it has: a RUNNING run's record is not rewritten for every
    /// transition, so the counters it holds may be behind.
    pub async fn next_sequences(&self, run_id: &str) -> Result<(u64, u64), StoreError> {
        let mut res = self
            .run(
                "math::max(SELECT VALUE seq FROM run_event:[$id, NONE]..[$id, {}]) ?? 0;\
                 math::max(SELECT VALUE seq FROM log:[$id, NONE, NONE]..[$id, {}, {}]) ?? 0;",
                json!({"id": run_id}),
            )
            .await?;
        let mut next = [1u64; 2];
        for (i, n) in next.iter_mut().enumerate() {
            // math::max answers with whichever number kind it computed in.
            let max: Option<Value> = res.take(i).map_err(|e| StoreError::Codec(e.to_string()))?;
            let max = max
                .as_ref()
                .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64)));
            *n = max.unwrap_or(0) + 1;
        }
        Ok((next[0], next[1]))
    }

    /// A step's log lines after `after_seq`, in order.
    pub async fn logs(
        &self,
        run_id: &str,
        step_key: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<LogRecord>, StoreError> {
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
    pub async fn put_artifact(&self, meta: &ArtifactRecord, data: &[u8]) -> Result<(), StoreError> {
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
        run_id: &str,
        step_key: &str,
    ) -> Result<Vec<ArtifactRecord>, StoreError> {
        let mut res = self
            .run("SELECT * OMIT id FROM artifact WHERE runId = $id AND stepKey = $step ORDER BY attempt, name;", json!({"id": run_id, "step": step_key}))
            .await?;
        rows(&mut res, 0)
    }

    /// An artifact's bytes (latest attempt with that name).
    pub async fn artifact_data(&self, meta: &ArtifactRecord) -> Result<Vec<u8>, StoreError> {
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
        template_id: &str,
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
            Err(StoreError::Db(msg)) if msg.contains("already exists") => Ok(false),
            Err(e) => Err(e),
        }
    }
}
