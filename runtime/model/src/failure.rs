//! Why a step attempt, a step or a run failed: one shape for all three,
//! stored with the step or run and returned by the API as it is.

use crate::error::PluginErrorKind;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares [`FailureCode`] with its wire names from one list.
macro_rules! failure_codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// A stable, machine-readable reason for a failure.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
        pub enum FailureCode {
            $(
                $(#[$doc])*
                #[serde(rename = $name)]
                #[cfg_attr(feature = "openapi", oai(rename = $name))]
                $variant,
            )*
        }

        impl FailureCode {
            /// The code as written in the API and the store.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

failure_codes! {
    /// The plugin reported the failure itself (see `kind`).
    PluginError = "PLUGIN_ERROR",
    /// A run failed because this step (see `step` and `cause`) failed.
    StepFailed = "STEP_FAILED",
    /// A `forEach` step failed because one of its items failed.
    ItemFailed = "ITEM_FAILED",
    /// The run went past its `timeout`.
    RunTimeout = "RUN_TIMEOUT",
    /// The process running the attempt stopped; the step is re-run.
    Interrupted = "INTERRUPTED",
    /// The step's evaluated input does not match its type's schema.
    InvalidInput = "INVALID_INPUT",
    /// An invariant of the engine did not hold.
    Internal = "INTERNAL",
    /// A template expression failed to evaluate.
    Expression = "EXPRESSION",
    /// A template expression used more than its cost or time budget.
    ExpressionBudgetExceeded = "EXPRESSION_BUDGET_EXCEEDED",
    /// A template expression produced a value larger than allowed.
    ExpressionResultTooLarge = "EXPRESSION_RESULT_TOO_LARGE",
    /// A `forEach` list had more items than allowed.
    ForEachTooManyItems = "FOR_EACH_TOO_MANY_ITEMS",
    /// No installed plugin has the pinned digest.
    UnknownPlugin = "UNKNOWN_PLUGIN",
    /// The plugin does not have the step role.
    NotAStepPlugin = "NOT_A_STEP_PLUGIN",
    /// The plugin is not a source (or not a destination) connector.
    NotAConnector = "NOT_A_CONNECTOR",
    /// Two connectors broke the sync protocol (a batch of an unknown
    /// stream or format, a rows count that does not match).
    ConnectorProtocol = "CONNECTOR_PROTOCOL",
    /// The plugin does not offer the step type.
    UnknownStepType = "UNKNOWN_STEP_TYPE",
    /// The attempt ran past its wall-clock limit.
    Timeout = "TIMEOUT",
    /// The attempt was cancelled.
    Cancelled = "CANCELLED",
    /// The plugin grew past its memory limit.
    MemoryLimitExceeded = "MEMORY_LIMIT_EXCEEDED",
    /// The plugin used more CPU time than allowed.
    CpuLimitExceeded = "CPU_LIMIT_EXCEEDED",
    /// The plugin overflowed its stack.
    StackOverflow = "STACK_OVERFLOW",
    /// The plugin trapped (a panic, an unreachable, a bad access).
    Trap = "TRAP",
    /// The plugin's output was larger than allowed.
    OutputTooLarge = "OUTPUT_TOO_LARGE",
    /// The plugin's output was not valid for its output schema.
    InvalidOutput = "INVALID_OUTPUT",
    /// The plugin wrote more log lines or bytes than allowed.
    LogLimitExceeded = "LOG_LIMIT_EXCEEDED",
    /// An artifact was larger than allowed.
    ArtifactLimitExceeded = "ARTIFACT_LIMIT_EXCEEDED",
    /// The plugin emitted more artifacts than allowed.
    ArtifactCountExceeded = "ARTIFACT_COUNT_EXCEEDED",
    /// The host's shared memory budget for plugins was exhausted.
    MemoryBudgetExceeded = "MEMORY_BUDGET_EXCEEDED",
    /// The plugin used a capability it was not granted.
    CapabilityDenied = "CAPABILITY_DENIED",
    /// The sandbox could not be set up.
    InstantiateFailed = "INSTANTIATE_FAILED",
    /// The stored run no longer decodes; it was failed and its record kept.
    RunUnreadable = "RUN_UNREADABLE",
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of a step attempt, a step or a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(rename_all = "camelCase"))]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// What kind of failure.
    pub code: FailureCode,
    /// Human-readable explanation.
    pub message: String,
    /// Whether trying again may succeed.
    #[serde(default)]
    pub retryable: bool,
    /// The plugin's class of failure, for `PLUGIN_ERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_none))]
    pub kind: Option<PluginErrorKind>,
    /// Structured details from the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_none))]
    pub details: Option<serde_json::Value>,
    /// The step (or item key) whose failure this one reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_none))]
    pub step: Option<String>,
    /// The failure this one was caused by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_none))]
    pub cause: Option<Box<Failure>>,
}

impl Failure {
    /// A failure with a code and a message and nothing else.
    pub fn new(code: FailureCode, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            code,
            message: message.into(),
            retryable,
            kind: None,
            details: None,
            step: None,
            cause: None,
        }
    }

    /// A failure reported by the plugin.
    pub fn from_plugin(err: &crate::PluginError) -> Self {
        Self {
            kind: Some(err.kind),
            details: err.details.clone(),
            ..Self::new(FailureCode::PluginError, err.message.clone(), err.retryable)
        }
    }

    /// This failure, reported as caused by `cause` in `step`.
    pub fn caused_by(mut self, step: Option<String>, cause: Option<Failure>) -> Self {
        self.step = step;
        self.cause = cause.map(Box::new);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failures_stored_before_they_were_typed_still_decode() {
        let plugin = json!({"code": "PLUGIN_ERROR", "kind": "rate-limited", "message": "slow down",
            "retryable": true, "details": null});
        let item = json!({"code": "ITEM_FAILED", "message": "item x[1] failed",
            "cause": {"code": "TRAP", "message": "boom", "retryable": false}});
        let run =
            json!({"code": "STEP_FAILED", "message": "step x failed", "step": "x", "cause": item});
        let decoded: Failure = serde_json::from_value(run).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded.code, FailureCode::StepFailed);
        let item = decoded.cause.unwrap_or_else(|| panic!("no cause"));
        assert_eq!(item.code, FailureCode::ItemFailed);
        assert!(!item.retryable);
        assert_eq!(item.cause.map(|c| c.code), Some(FailureCode::Trap));
        let plugin: Failure = serde_json::from_value(plugin).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plugin.kind, Some(PluginErrorKind::RateLimited));
        assert_eq!(plugin.details, None);
    }

    #[test]
    fn codes_are_written_as_their_wire_names() {
        let f = Failure::new(FailureCode::RunTimeout, "late", false);
        assert_eq!(
            serde_json::to_value(&f).ok(),
            Some(json!({"code": "RUN_TIMEOUT", "message": "late", "retryable": false}))
        );
        assert_eq!(
            FailureCode::ForEachTooManyItems.as_str(),
            "FOR_EACH_TOO_MANY_ITEMS"
        );
    }
}
