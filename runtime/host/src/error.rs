//! Host errors: why a component could not be installed, and why an
//! invocation failed for reasons the host imposed (as opposed to a
//! `failed(plugin-error)` the plugin itself returned).

use std::time::Duration;
use weft_model::{ManifestProblem, PluginDigest};

/// Why installing (or loading) a plugin failed. All of these are permanent
/// for the given bytes except [`InstallError::Io`].
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The bytes do not start with the WebAssembly magic number.
    #[error("not a WebAssembly file (the bytes do not start with \\0asm)")]
    NotWasm,
    /// A core module was uploaded where a component is required.
    #[error(
        "this is a core WebAssembly module, not a component; build with `--target wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The component is larger than the host accepts.
    #[error("component is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Size of the upload.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// Cranelift rejected the component (malformed or unsupported features).
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The component exports the Weft contract at a version this host does not support.
    #[error("component targets weft:plugin@{found}; this host supports {supported}")]
    UnsupportedWitVersion {
        /// The version the component exports.
        found: String,
        /// Versions this host supports.
        supported: String,
    },
    /// The component does not export `weft:plugin/plugin` at all.
    #[error(
        "component is not a Weft plugin: it exports none of the weft:plugin interfaces (exports: {exports})"
    )]
    NotAPlugin {
        /// The component's exports, for diagnosis.
        exports: String,
    },
    /// The component imports something the host does not provide.
    #[error("component imports something this host does not provide: {0}")]
    UnsatisfiedImports(String),
    /// `describe()` trapped, timed out or could not be called.
    #[error("describe() failed: {0}")]
    DescribeFailed(String),
    /// The manifest returned by `describe()` is invalid.
    #[error("invalid manifest: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidManifest(Vec<ManifestProblem>),
    /// Reading or writing the compiled-artifact cache failed.
    #[error("compiled-artifact cache I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Why an invocation failed for a reason the host imposed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvokeError {
    /// No plugin with this digest is loaded.
    #[error("no plugin with digest {0} is loaded")]
    UnknownPlugin(PluginDigest),
    /// The plugin does not export `step`.
    #[error("plugin {0} does not provide step types")]
    NotAStepPlugin(String),
    /// The plugin does not play the connector role asked for.
    #[error("plugin {plugin} is not a {role} connector")]
    NotAConnector {
        /// Plugin name.
        plugin: String,
        /// The role asked for.
        role: weft_model::ConnectorRole,
    },
    /// A connector broke the sync protocol.
    #[error("connector protocol violation: {0}")]
    Protocol(String),
    /// The plugin has no step type of that name.
    #[error("plugin {plugin} has no step type {step_type:?}")]
    UnknownStepType {
        /// Plugin name.
        plugin: String,
        /// Requested step type.
        step_type: String,
    },
    /// The wall-clock timeout elapsed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The invocation was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The plugin tried to grow its memory past the limit.
    #[error("memory limit exceeded: the plugin tried to grow its memory past {limit_bytes} bytes")]
    MemoryLimitExceeded {
        /// Configured limit.
        limit_bytes: u64,
    },
    /// The plugin used more CPU time than allowed.
    #[error("CPU time limit of {0:?} exceeded")]
    CpuLimitExceeded(Duration),
    /// The plugin exhausted its call stack (unbounded recursion).
    #[error("stack overflow: the plugin exhausted its call stack")]
    StackOverflow,
    /// The plugin trapped (panicked, hit `unreachable`, divided by zero…).
    #[error("plugin trapped: {message}")]
    Trap {
        /// The trap, followed by the tail of the plugin's stderr (e.g. its panic message).
        message: String,
    },
    /// The output exceeded the limit.
    #[error("output too large: {size} bytes, limit {limit}")]
    OutputTooLarge {
        /// Size of the output.
        size: u64,
        /// Configured limit.
        limit: u64,
    },
    /// The output (or an input request's schema) is not valid JSON / JSON Schema.
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    /// The plugin wrote more log lines or bytes than allowed.
    #[error("log limit exceeded: {0}")]
    LogLimitExceeded(String),
    /// The plugin emitted more artifact bytes than allowed.
    #[error("artifact limit exceeded: more than {limit} bytes")]
    ArtifactLimitExceeded {
        /// Configured limit.
        limit: u64,
    },
    /// The plugin emitted more artifacts than allowed.
    #[error("artifact limit exceeded: more than {limit} artifacts")]
    ArtifactCountExceeded {
        /// Configured limit.
        limit: u32,
    },
    /// The invocation's memory limit is larger than the host's whole
    /// memory budget for running invocations, so it could never start.
    #[error(
        "memory budget exceeded: the invocation's limit of {limit_bytes} bytes is more than the host's budget of {budget_bytes} bytes for all running invocations"
    )]
    MemoryBudgetExceeded {
        /// The invocation's memory limit.
        limit_bytes: u64,
        /// The host's budget.
        budget_bytes: u64,
    },
    /// The plugin tried to use a capability it was not granted and failed because of it.
    #[error("capability denied: {0}")]
    CapabilityDenied(String),
    /// The sandbox could not be set up (e.g. the instance pool is full).
    #[error("could not instantiate the plugin: {0}")]
    Instantiate(String),
}

impl InvokeError {
    /// Whether retrying the same invocation may succeed. Resource
    /// exhaustion of the host and timeouts are retryable; a plugin that
    /// trapped or broke a limit will do it again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Instantiate(_))
    }

    /// A stable machine-readable code for the API and the event log.
    pub fn code(&self) -> weft_model::FailureCode {
        use weft_model::FailureCode as C;
        match self {
            Self::UnknownPlugin(_) => C::UnknownPlugin,
            Self::NotAStepPlugin(_) => C::NotAStepPlugin,
            Self::NotAConnector { .. } => C::NotAConnector,
            Self::Protocol(_) => C::ConnectorProtocol,
            Self::UnknownStepType { .. } => C::UnknownStepType,
            Self::Timeout(_) => C::Timeout,
            Self::Cancelled => C::Cancelled,
            Self::MemoryLimitExceeded { .. } => C::MemoryLimitExceeded,
            Self::CpuLimitExceeded(_) => C::CpuLimitExceeded,
            Self::StackOverflow => C::StackOverflow,
            Self::Trap { .. } => C::Trap,
            Self::OutputTooLarge { .. } => C::OutputTooLarge,
            Self::InvalidOutput(_) => C::InvalidOutput,
            Self::LogLimitExceeded(_) => C::LogLimitExceeded,
            Self::ArtifactLimitExceeded { .. } => C::ArtifactLimitExceeded,
            Self::ArtifactCountExceeded { .. } => C::ArtifactCountExceeded,
            Self::MemoryBudgetExceeded { .. } => C::MemoryBudgetExceeded,
            Self::CapabilityDenied(_) => C::CapabilityDenied,
            Self::Instantiate(_) => C::InstantiateFailed,
        }
    }
}
