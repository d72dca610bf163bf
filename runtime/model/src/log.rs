//! Log lines of step attempts: what plugins and the engine wrote.

use crate::ids::{RunId, StepKey};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal information.
    Info,
    /// Something unexpected but recoverable.
    Warn,
    /// A failure.
    Error,
    /// A progress report (`context.fraction` says how far).
    Progress,
}

impl LogLevel {
    /// The level as written in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Progress => "progress",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The plugin called `host.log` (or reported progress).
    Plugin,
    /// The plugin wrote to stdout.
    Stdout,
    /// The plugin wrote to stderr.
    Stderr,
    /// The engine, about the attempt (restarts, retries).
    Engine,
}

impl LogSource {
    /// The source as written in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plugin => "plugin",
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Engine => "engine",
        }
    }
}

impl fmt::Display for LogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A log line of a step attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// Run id.
    pub run_id: RunId,
    /// Step key.
    pub step_key: StepKey,
    /// Attempt.
    pub attempt: u32,
    /// Sequence within the run, from 1.
    pub seq: u64,
    /// When (Unix milliseconds).
    pub at: i64,
    /// Severity.
    pub level: LogLevel,
    /// Text.
    pub message: String,
    /// Structured context.
    pub context: Option<serde_json::Value>,
    /// Who wrote it.
    pub source: LogSource,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_sources_are_lower_case_on_the_wire() {
        assert_eq!(
            serde_json::to_value(LogLevel::Progress).ok(),
            Some(serde_json::json!("progress"))
        );
        assert_eq!(
            serde_json::from_value::<LogSource>(serde_json::json!("stderr")).ok(),
            Some(LogSource::Stderr)
        );
        assert!(LogLevel::Warn > LogLevel::Info);
    }
}
