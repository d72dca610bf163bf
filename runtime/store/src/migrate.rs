//! Versioned migrations, applied in order at start-up and recorded.

use crate::{Store, StoreError, now_ms};
use serde_json::json;

/// Every migration, in order. Released migrations never change.
const MIGRATIONS: &[(u32, &str)] = &[(1, include_str!("../migrations/0001_init.surql"))];

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
