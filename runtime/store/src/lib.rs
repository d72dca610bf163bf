//! Weft's persistence on SurrealDB.
//!
//! One URL selects the engine: `surrealkv://<dir>` (embedded, on disk, the
//! default; append `?sync=never` to trade durability for speed), `mem://`
//! (tests) or `ws://host:port` (a SurrealDB server). Versioned `.surql`
//! migrations run at start-up and are recorded in the `migration` table.
//!
//! The engine owns run state in memory and writes whole records, so every
//! state transition is one transaction with no read-modify-write round
//! trip; concurrent transitions are grouped into one commit by
//! [`Store::commit`]'s caller. A transition's changed steps and events are
//! one new journal record (see [`Transition::journal_seq`]); reads of a
//! run's steps and events replay its journal.

mod admin;
mod error;
mod migrate;
mod plugins;
mod quarantine;
mod records;
mod runs;
mod sync;
mod templates;

pub use admin::ArtifactEntry;
pub use error::{DbErrorKind, StoreError, settle};
pub use records::{
    AttemptPage, PluginRecord, RevisionPage, RunFilter, RunPage, StepAttemptRecord, TemplatePage,
    Transition,
};
pub use runs::{CreateRunOutcome, NextSequences};

use std::sync::Arc;
use std::time::Duration;
use surrealdb::Surreal;
use surrealdb::engine::any::Any;

/// A handle to the database. Cheap to clone (one shared session: cloning a
/// `Surreal` would open a new one, which remote servers cap).
#[derive(Clone)]
pub struct Store {
    db: Arc<Surreal<Any>>,
}

impl Store {
    /// Connects, selects the `weft` namespace and database, and applies
    /// pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let db = surrealdb::engine::any::connect(url)
            .await
            .map_err(|e| StoreError::Connect(format!("{url}: {e}")))?;
        db.use_ns("weft")
            .use_db("main")
            .await
            .map_err(|e| StoreError::Connect(e.to_string()))?;
        let store = Self { db: Arc::new(db) };
        migrate::apply(&store).await?;
        Ok(store)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.health().await.map_err(StoreError::db)
    }

    /// Runs a query with variables, retrying transaction conflicts, and
    /// returns the response for the caller to take results from.
    pub(crate) async fn run(
        &self,
        sql: &str,
        vars: serde_json::Value,
    ) -> Result<surrealdb::IndexedResults, StoreError> {
        let mut delay = Duration::from_millis(1);
        for attempt in 0.. {
            let result = self
                .db
                .query(sql)
                .bind(vars.clone())
                .await
                .map_err(StoreError::db)
                .and_then(settle);
            match result {
                Err(e) if attempt < 8 && e.db_kind() == Some(DbErrorKind::TransactionConflict) => {
                    tracing::debug!(attempt, "retrying after transaction conflict: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(100));
                }
                other => return other,
            }
        }
        unreachable!("the loop returns")
    }
}

/// Rejects keys that cannot name a record (empty or absurdly long) as
/// not found, before they reach the database.
pub(crate) fn check_key(what: &str, key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > 512 {
        return Err(StoreError::NotFound(format!("{what} {key:?}")));
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, the store's time unit.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
