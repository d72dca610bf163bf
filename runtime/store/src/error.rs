//! Store errors, and the one place that classifies SurrealDB's.

use std::sync::Arc;
use surrealdb::types::QueryError;

/// What kind of database error a [`StoreError::Db`] is, decided once from
/// SurrealDB's own error kinds (see [`DbErrorKind::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// Two transactions touched the same keys; running it again may succeed.
    TransactionConflict,
    /// A record with that id, or a unique index entry with that value,
    /// exists already.
    AlreadyExists,
    /// Anything else: a permanent failure of the statement.
    Other,
}

impl DbErrorKind {
    /// Classifies a SurrealDB error.
    pub fn of(e: &surrealdb::Error) -> Self {
        if e.query_details() == Some(&QueryError::TransactionConflict) {
            Self::TransactionConflict
        } else if e.is_already_exists() || is_unique_index_violation(e) {
            Self::AlreadyExists
        } else {
            Self::Other
        }
    }
}

/// The outcome of a query as one result: its first real error, if any.
/// In a failed transaction every statement reports an error, the ones
/// before the failing statement only "not executed" (and SurrealDB's own
/// `check` returns the first of those), so the cause is the first error
/// that is not a not-executed one.
pub fn settle(
    mut results: surrealdb::IndexedResults,
) -> Result<surrealdb::IndexedResults, StoreError> {
    let mut errors: Vec<(usize, surrealdb::Error)> = results.take_errors().into_iter().collect();
    if errors.is_empty() {
        return Ok(results);
    }
    errors.sort_by_key(|(i, _)| *i);
    let not_executed = |e: &surrealdb::Error| e.query_details() == Some(&QueryError::NotExecuted);
    let pick = errors
        .iter()
        .position(|(_, e)| !not_executed(e))
        .unwrap_or(0);
    let (_, cause) = errors.swap_remove(pick);
    Err(StoreError::db(cause))
}

/// A unique index refusing a duplicate is reported with the internal kind
/// (`IndexExists`: "Database index `x` already contains …"), so its message
/// is the only thing that tells it apart.
fn is_unique_index_violation(e: &surrealdb::Error) -> bool {
    e.is_internal() && e.message().contains("already contains")
}

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("cannot connect to the store: {0}")]
    Connect(String),
    /// A migration failed.
    #[error("migration {version} failed: {message}")]
    Migration {
        /// Migration version.
        version: u32,
        /// What went wrong.
        message: String,
    },
    /// The record does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness or optimistic-concurrency check failed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A record could not be (de)serialized.
    #[error("bad record: {0}")]
    Codec(String),
    /// The database reported an error (after retries for conflicts).
    #[error("database error: {source}")]
    Db {
        /// What kind of error it is.
        kind: DbErrorKind,
        /// SurrealDB's error.
        #[source]
        source: Arc<surrealdb::Error>,
    },
    /// The part of the process that writes to the store has stopped
    /// (the server is shutting down).
    #[error("the store writer stopped")]
    WriterStopped,
}

impl StoreError {
    pub(crate) fn db(e: surrealdb::Error) -> Self {
        Self::Db {
            kind: DbErrorKind::of(&e),
            source: Arc::new(e),
        }
    }

    /// The kind of database error, for [`StoreError::Db`].
    pub fn db_kind(&self) -> Option<DbErrorKind> {
        match self {
            Self::Db { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Whether the operation may succeed if tried again: the database was
    /// unreachable, or a transaction conflict outlasted the store's own
    /// retries. A statement the database refused will be refused again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Connect(_)
                | Self::Db {
                    kind: DbErrorKind::TransactionConflict,
                    ..
                }
        )
    }
}
