//! Why an engine operation failed.

use weft_model::JsonLimitError;
use weft_model::template::TemplateProblem;
use weft_store::StoreError;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The operation conflicts with the current state (e.g. cancelling a finished run).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A plugin cannot be uninstalled: unfinished runs pinned it.
    #[error("plugin {plugin} is pinned by {} active run(s): {}", .runs.len(), .runs.join(", "))]
    PluginInUse {
        /// `name@version` of the plugin.
        plugin: String,
        /// Ids of the unfinished runs that pinned it, oldest first.
        runs: Vec<weft_model::RunId>,
    },
    /// An update was made against a revision that is no longer current
    /// (HTTP's `If-Match`): somebody else wrote in between.
    #[error("expected revision {expected}, but the current one is {current}")]
    RevisionMismatch {
        /// The revision the caller based its change on.
        expected: u32,
        /// The current revision.
        current: u32,
    },
    /// A template is invalid; every problem with its JSON pointer.
    #[error("invalid template: {} problem(s)", .0.len())]
    InvalidTemplate(Vec<TemplateProblem>),
    /// Run inputs do not match the template's `inputs` schema.
    #[error("invalid inputs: {} problem(s)", .0.len())]
    InvalidInputs(Vec<TemplateProblem>),
    /// An answer does not match the input request's schema.
    #[error("invalid answer: {}", .0.join("; "))]
    InvalidAnswer(Vec<String>),
    /// A value from the caller (run inputs, an answer) is nested too
    /// deeply or too large to be stored and read back.
    #[error("{what}: {error}")]
    ValueLimit {
        /// Which value, e.g. `inputs`.
        what: &'static str,
        /// The limit crossed.
        error: JsonLimitError,
    },
    /// A connection request is invalid; every problem with its JSON pointer.
    #[error("invalid connection: {}", problems_text(.0))]
    InvalidConnection(Vec<weft_model::ConfigProblem>),
    /// A job request is invalid (or the job no longer fits its source).
    #[error("invalid job: {}", problems_text(.0))]
    InvalidJob(Vec<weft_model::ConfigProblem>),
    /// Capability grants cannot be given as asked (a directory that does
    /// not exist, say); every problem with its JSON pointer.
    #[error("invalid grants: {}", problems_text(.0))]
    InvalidGrants(Vec<weft_model::ConfigProblem>),
    /// A connector's `check` or `discover` failed.
    #[error("the connector failed: {0}")]
    Connector(weft_host::ConnectorFailure),
    /// The resource is busy (a job's state while it syncs).
    #[error("locked: {0}")]
    Locked(String),
    /// A plugin could not be installed.
    #[error(transparent)]
    Install(#[from] weft_host::InstallError),
    /// The host refused an operation.
    #[error(transparent)]
    Host(#[from] weft_host::InvokeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller's role does not grant what the operation needs.
    #[error("{operation:?} needs the {needed:?} permission")]
    Forbidden {
        /// What was attempted.
        operation: crate::Operation,
        /// The permission it needs.
        needed: weft_model::Permission,
    },
    /// The engine is shutting down and starts nothing new.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// Whether retrying the operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::ShuttingDown => true,
            Self::Store(e) => e.is_retryable(),
            Self::Connector(weft_host::ConnectorFailure::Host(e)) => e.is_retryable(),
            Self::Connector(weft_host::ConnectorFailure::Plugin(e)) => e.retryable,
            _ => false,
        }
    }
}

fn problems_text(ps: &[weft_model::ConfigProblem]) -> String {
    ps.iter()
        .map(|p| format!("{}: {}", p.pointer, p.message))
        .collect::<Vec<_>>()
        .join("; ")
}
