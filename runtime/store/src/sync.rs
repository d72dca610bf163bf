//! Connections, sync jobs and sync state.
//!
//! A job's state is saved with a compare on its seq: a commit older than
//! the stored one (a zombie sync that lost its place) never overwrites a
//! newer state. The seq is the fencing token of a job's destination.

use crate::runs::{rows, to_json};
use crate::{DbErrorKind, Store, StoreError, check_key};
use serde_json::{Value, json};
use weft_model::{Connection, ConnectionId, SyncJob, SyncJobId, SyncState};

/// A job as stored: each stream's JSON Schema as JSON text, because
/// SurrealDB objects sort their keys and a schema's property order is the
/// column order destinations create.
fn job_record(job: &SyncJob) -> Result<Value, StoreError> {
    let mut v = to_json(job)?;
    for schema in stream_schemas(&mut v) {
        *schema = Value::String(schema.to_string());
    }
    Ok(v)
}

/// The `jsonSchema` of each stream of a job record.
fn stream_schemas(job: &mut Value) -> impl Iterator<Item = &mut Value> {
    job.get_mut("streams")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|stream| stream.get_mut("jsonSchema"))
}

/// Jobs read back; a schema stored as an object (before schemas were
/// kept as text) is taken as it is.
fn job_rows(res: &mut surrealdb::IndexedResults) -> Result<Vec<SyncJob>, StoreError> {
    let mut values: Vec<Value> = rows(res, 0)?;
    for v in &mut values {
        for schema in stream_schemas(v) {
            if let Value::String(text) = schema {
                *schema = serde_json::from_str(text)
                    .map_err(|e| StoreError::Codec(format!("a stored stream schema: {e}")))?;
            }
        }
    }
    values
        .into_iter()
        .map(|v| serde_json::from_value(v).map_err(|e| StoreError::Codec(e.to_string())))
        .collect()
}

impl Store {
    /// Stores a new connection.
    pub async fn create_connection(&self, c: &Connection) -> Result<(), StoreError> {
        self.run(
            "CREATE type::record('connection', $c.connectionId) CONTENT $c RETURN NONE;",
            json!({"c": to_json(c)?}),
        )
        .await
        .map(drop)
    }

    /// Replaces a live connection.
    pub async fn update_connection(&self, c: &Connection) -> Result<(), StoreError> {
        let mut res = self
            .run(
                "UPDATE type::record('connection', $c.connectionId) CONTENT $c \
                 WHERE deletedAt = NONE RETURN VALUE connectionId;",
                json!({"c": to_json(c)?}),
            )
            .await?;
        let updated: Vec<String> = res.take(0).map_err(|e| StoreError::Codec(e.to_string()))?;
        if updated.is_empty() {
            return Err(StoreError::NotFound(format!(
                "connection {}",
                c.connection_id
            )));
        }
        Ok(())
    }

    /// A live connection.
    pub async fn connection(&self, id: &ConnectionId) -> Result<Connection, StoreError> {
        check_key("connection", id)?;
        let mut res = self
            .run(
                "SELECT * OMIT id FROM type::record('connection', $id) WHERE deletedAt = NONE;",
                json!({"id": id}),
            )
            .await?;
        rows(&mut res, 0)?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("connection {id}")))
    }

    /// Every live connection, oldest first.
    pub async fn connections(&self) -> Result<Vec<Connection>, StoreError> {
        let mut res = self
            .run(
                "SELECT * OMIT id FROM connection WHERE deletedAt = NONE ORDER BY createdAt;",
                json!({}),
            )
            .await?;
        rows(&mut res, 0)
    }

    /// Marks a connection deleted unless a job still uses it; the check and
    /// the mark are one transaction.
    pub async fn delete_connection(&self, id: &ConnectionId, at: i64) -> Result<(), StoreError> {
        check_key("connection", id)?;
        let mut res = self
            .run(
                // One statement, so one transaction.
                "RETURN {\
                   LET $users = (SELECT VALUE name FROM sync_job WHERE source = $id OR destination = $id);\
                   LET $done = IF array::len($users) = 0 {\
                     (UPDATE type::record('connection', $id) SET deletedAt = $at WHERE deletedAt = NONE RETURN VALUE connectionId)\
                   } ELSE { [] };\
                   RETURN { users: $users, done: $done };\
                 };",
                json!({"id": id, "at": at}),
            )
            .await?;
        #[derive(serde::Deserialize)]
        struct Outcome {
            users: Vec<String>,
            done: Vec<String>,
        }
        let outcome: Option<serde_json::Value> =
            res.take(0).map_err(|e| StoreError::Codec(e.to_string()))?;
        let outcome: Outcome = outcome
            .ok_or_else(|| StoreError::Codec("no outcome".into()))
            .and_then(|v| {
                serde_json::from_value(v).map_err(|e| StoreError::Codec(e.to_string()))
            })?;
        if !outcome.users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "connection {id} is used by the jobs {:?}; delete them or point them elsewhere first",
                outcome.users
            )));
        }
        if outcome.done.is_empty() {
            return Err(StoreError::NotFound(format!("connection {id}")));
        }
        Ok(())
    }

    /// Stores a new job. Names are unique.
    pub async fn create_sync_job(&self, job: &SyncJob) -> Result<(), StoreError> {
        let res = self
            .run(
                "CREATE type::record('sync_job', $j.jobId) CONTENT $j RETURN NONE;",
                json!({"j": job_record(job)?}),
            )
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if e.db_kind() == Some(DbErrorKind::AlreadyExists) => Err(StoreError::Conflict(
                format!("a job named {:?} already exists", job.name),
            )),
            Err(e) => Err(e),
        }
    }

    /// Replaces a job.
    pub async fn update_sync_job(&self, job: &SyncJob) -> Result<(), StoreError> {
        let res = self
            .run(
                "UPDATE type::record('sync_job', $j.jobId) CONTENT $j RETURN VALUE jobId;",
                json!({"j": job_record(job)?}),
            )
            .await;
        let mut res = match res {
            Err(e) if e.db_kind() == Some(DbErrorKind::AlreadyExists) => {
                return Err(StoreError::Conflict(format!(
                    "a job named {:?} already exists",
                    job.name
                )));
            }
            other => other?,
        };
        let updated: Vec<String> = res.take(0).map_err(|e| StoreError::Codec(e.to_string()))?;
        if updated.is_empty() {
            return Err(StoreError::NotFound(format!("job {}", job.job_id)));
        }
        Ok(())
    }

    /// A job.
    pub async fn sync_job(&self, id: &SyncJobId) -> Result<SyncJob, StoreError> {
        check_key("job", id)?;
        let mut res = self
            .run(
                "SELECT * OMIT id FROM type::record('sync_job', $id);",
                json!({"id": id}),
            )
            .await?;
        job_rows(&mut res)?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("job {id}")))
    }

    /// Every job, oldest first.
    pub async fn sync_jobs(&self) -> Result<Vec<SyncJob>, StoreError> {
        let mut res = self
            .run(
                "SELECT * OMIT id FROM sync_job ORDER BY createdAt;",
                json!({}),
            )
            .await?;
        job_rows(&mut res)
    }

    /// Deletes a job and its state.
    pub async fn delete_sync_job(&self, id: &SyncJobId) -> Result<(), StoreError> {
        check_key("job", id)?;
        self.run(
            "BEGIN TRANSACTION;\
             DELETE type::record('sync_job', $id);\
             DELETE type::record('sync_state', $id);\
             COMMIT TRANSACTION;",
            json!({"id": id}),
        )
        .await
        .map(drop)
    }

    /// A job's state; the empty state at seq 0 before its first commit.
    pub async fn sync_state(&self, id: &SyncJobId) -> Result<SyncState, StoreError> {
        check_key("job", id)?;
        let mut res = self
            .run(
                "SELECT * OMIT id FROM type::record('sync_state', $id);",
                json!({"id": id}),
            )
            .await?;
        Ok(rows(&mut res, 0)?.into_iter().next().unwrap_or_default())
    }

    /// Saves the state a destination commit reached, unless the stored
    /// state is from a later commit. Returns whether it was saved.
    pub async fn save_sync_state(
        &self,
        id: &SyncJobId,
        state: &SyncState,
    ) -> Result<bool, StoreError> {
        check_key("job", id)?;
        let mut res = self
            .run(
                // One statement, so one transaction.
                "RETURN {\
                   LET $cur = (SELECT VALUE seq FROM type::record('sync_state', $id))[0];\
                   LET $saved = IF $cur = NONE OR $cur < $s.seq {\
                     (UPSERT type::record('sync_state', $id) CONTENT $s RETURN VALUE seq)\
                   } ELSE { [] };\
                   RETURN array::len($saved) > 0;\
                 };",
                json!({"id": id, "s": to_json(state)?}),
            )
            .await?;
        let saved: Option<bool> = res.take(0).map_err(|e| StoreError::Codec(e.to_string()))?;
        Ok(saved.unwrap_or(false))
    }

    /// Replaces a job's state whatever its seq (an operator's edit or reset).
    pub async fn replace_sync_state(
        &self,
        id: &SyncJobId,
        state: &SyncState,
    ) -> Result<(), StoreError> {
        check_key("job", id)?;
        self.run(
            "UPSERT type::record('sync_state', $id) CONTENT $s RETURN NONE;",
            json!({"id": id, "s": to_json(state)?}),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use weft_model::{Checkpoint, ConnectorRole, TemplateId};

    fn connection(id: &ConnectionId) -> Connection {
        Connection {
            connection_id: id.clone(),
            name: "in".into(),
            role: ConnectorRole::Source,
            connector: "files".into(),
            version: None,
            config: json!({"path": "in"}),
            secrets: Default::default(),
            created_at: 1,
            updated_at: 1,
        }
    }

    fn state(seq: u64, v: i64) -> SyncState {
        SyncState {
            seq,
            state: vec![Checkpoint {
                stream: Some("s".into()),
                state: json!(v),
            }],
            updated_at: 1,
        }
    }

    #[tokio::test]
    async fn a_jobs_stream_schema_keeps_its_column_order() {
        let store = Store::connect("mem://").await.unwrap();
        let schema = json!({"type": "object", "properties": {
            "zeta": {"type": "integer"}, "alpha": {"type": "string"}, "mid": {}
        }});
        let job = SyncJob {
            job_id: SyncJobId::generate(),
            name: "ordered".into(),
            source: ConnectionId::generate(),
            destination: ConnectionId::generate(),
            streams: vec![weft_model::ConfiguredStream {
                name: "s".into(),
                namespace: None,
                json_schema: schema.clone(),
                fields: Vec::new(),
                sync_mode: weft_model::SyncMode::FullRefresh,
                cursor_field: None,
                primary_key: Vec::new(),
                write_mode: weft_model::WriteMode::Append,
            }],
            schedule: None,
            active: false,
            template_id: TemplateId::generate(),
            created_at: 1,
            updated_at: 1,
        };
        store.create_sync_job(&job).await.unwrap();
        let back = store.sync_job(&job.job_id).await.unwrap();
        let keys: Vec<&String> = back.streams[0].json_schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(keys, ["zeta", "alpha", "mid"]);
        assert_eq!(store.sync_jobs().await.unwrap()[0], back);
        assert_eq!(back, job);
    }

    #[tokio::test]
    async fn a_connection_in_use_is_not_deleted_and_an_older_commit_never_wins() {
        let store = Store::connect("mem://").await.unwrap();
        let src = ConnectionId::generate();
        store.create_connection(&connection(&src)).await.unwrap();
        let job = SyncJob {
            job_id: SyncJobId::generate(),
            name: "j".into(),
            source: src.clone(),
            destination: ConnectionId::generate(),
            streams: vec![],
            schedule: None,
            active: false,
            template_id: TemplateId::generate(),
            created_at: 1,
            updated_at: 1,
        };
        store.create_sync_job(&job).await.unwrap();
        let err = store.delete_connection(&src, 5).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict(m) if m.contains("\"j\"")),
            "{err:?}"
        );
        assert_eq!(store.connections().await.unwrap().len(), 1);

        let id = &job.job_id;
        assert_eq!(store.sync_state(id).await.unwrap().seq, 0);
        assert!(store.save_sync_state(id, &state(2, 2)).await.unwrap());
        assert!(!store.save_sync_state(id, &state(1, 1)).await.unwrap());
        assert!(!store.save_sync_state(id, &state(2, 3)).await.unwrap());
        assert_eq!(store.sync_state(id).await.unwrap(), state(2, 2));
        store.replace_sync_state(id, &state(2, 9)).await.unwrap();
        assert_eq!(store.sync_state(id).await.unwrap().state[0].state, json!(9));

        store.delete_sync_job(id).await.unwrap();
        store.delete_connection(&src, 5).await.unwrap();
        assert!(store.connections().await.unwrap().is_empty());
        assert!(matches!(
            store.connection(&src).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.delete_connection(&src, 6).await,
            Err(StoreError::NotFound(_))
        ));
    }
}
