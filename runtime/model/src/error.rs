//! Failures reported by plugin code, mirroring the WIT `plugin-error`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How a plugin failure should be treated; mirrors WIT `error-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "kebab-case"))]
#[serde(rename_all = "kebab-case")]
pub enum PluginErrorKind {
    /// Configuration or input is wrong; retrying will not help.
    Config,
    /// Credentials were missing or rejected.
    Auth,
    /// A temporary failure worth retrying.
    Transient,
    /// A remote service asked to slow down.
    RateLimited,
    /// The data itself is bad.
    Data,
    /// A bug inside the plugin.
    Internal,
}

impl PluginErrorKind {
    /// The kind's name as written in templates and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Auth => "auth",
            Self::Transient => "transient",
            Self::RateLimited => "rate-limited",
            Self::Data => "data",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for PluginErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure reported by a plugin (as opposed to one the host imposed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginError {
    /// The class of failure.
    pub kind: PluginErrorKind,
    /// Human-readable explanation.
    pub message: String,
    /// The plugin's hint; the template's retry policy decides.
    pub retryable: bool,
    /// How long to wait before retrying, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Structured details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.kind, self.message)
    }
}
