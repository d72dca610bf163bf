//! Versioned migrations, applied in order at start-up and recorded.

use crate::{Store, StoreError, now_ms};
use serde_json::json;

/// Every migration, in order. Released migrations never change.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/0001_init.surql")),
    (2, include_str!("../migrations/0002_keyed_by_run.surql")),
    (3, include_str!("../migrations/0003_journal.surql")),
    (4, include_str!("../migrations/0004_quarantine.surql")),
    (5, include_str!("../migrations/0005_attempts.surql")),
    (6, include_str!("../migrations/0006_sync.surql")),
];

pub(crate) async fn apply(store: &Store) -> Result<(), StoreError> {
    // The migration table may not exist yet; defining it is idempotent.
    store
        .run(
            "DEFINE TABLE IF NOT EXISTS migration SCHEMALESS;",
            json!({}),
        )
        .await?;
    let mut res = store
        .run("SELECT VALUE version FROM migration;", json!({}))
        .await?;
    let applied: Vec<i64> = res.take(0).map_err(|e| StoreError::Codec(e.to_string()))?;
    for (version, sql) in MIGRATIONS {
        if applied.contains(&i64::from(*version)) {
            continue;
        }
        let script = format!(
            "BEGIN TRANSACTION;\n{sql}\nCREATE type::record('migration', $version) SET version = $version, appliedAt = $at;\nCOMMIT TRANSACTION;"
        );
        store
            .run(&script, json!({"version": version, "at": now_ms()}))
            .await
            .map_err(|e| StoreError::Migration {
                version: *version,
                message: e.to_string(),
            })?;
        tracing::info!(version, "applied store migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A version 1 store with events and logs under random ids comes out
    /// of version 2 readable through the keyed range scans.
    #[tokio::test]
    async fn version_2_rekeys_events_and_logs() -> Result<(), Box<dyn std::error::Error>> {
        let db = surrealdb::engine::any::connect("mem://").await?;
        db.use_ns("weft").use_db("main").await?;
        let store = Store { db: Arc::new(db) };
        store.run(MIGRATIONS[0].1, json!({})).await?;
        store
            .run(
                "CREATE type::record('migration', 1) SET version = 1;\
                 CREATE run_event CONTENT { runId: 'r', seq: 2, at: 2, kind: 'step.started', message: 'second' };\
                 CREATE run_event CONTENT { runId: 'r', seq: 1, at: 1, kind: 'step.started', message: 'first' };\
                 CREATE log CONTENT { runId: 'r', stepKey: 'a', attempt: 1, seq: 1, at: 1, level: 'info', message: 'hi', source: 'plugin' };",
                json!({}),
            )
            .await?;
        apply(&store).await?;
        let run = weft_model::RunId::new("r")?;
        let events = store.events(&run, 0, 10).await?;
        let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["first", "second"]);
        assert_eq!(
            store
                .logs(&run, &weft_model::StepKey::new("a")?, 0, 10)
                .await?[0]
                .message,
            "hi"
        );
        let next = store.next_sequences(&run).await?;
        assert_eq!((next.event, next.log, next.journal), (3, 2, 1));
        Ok(())
    }
}
