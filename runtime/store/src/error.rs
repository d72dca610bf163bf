//! Store errors.

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
    #[error("database error: {0}")]
    Db(String),
}

impl StoreError {
    pub(crate) fn db(e: surrealdb::Error) -> Self {
        Self::Db(e.to_string())
    }

    /// Whether the operation may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::Db(_))
    }
}
