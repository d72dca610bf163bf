//! [`PluginError`]: how a step reports a failure, and its [`ErrorKind`].

use std::fmt;

use crate::bindings::weft::plugin::types as wit;

/// The class of a failure; the engine's retry policy keys on it.
///
/// Mirrors the WIT `error-kind` enum of `weft:plugin@0.1.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The configuration or input is wrong; retrying will not help.
    Config,
    /// Credentials were missing or rejected.
    Auth,
    /// A temporary failure (network blip, 5xx); usually worth a retry.
    Transient,
    /// A remote service asked us to slow down.
    RateLimited,
    /// The data itself is bad (a record that cannot be parsed or written).
    Data,
    /// A bug or unexpected state inside the plugin.
    Internal,
}

impl ErrorKind {
    /// The WIT spelling of the kind: `config`, `auth`, `transient`,
    /// `rate-limited`, `data` or `internal`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Auth => "auth",
            ErrorKind::Transient => "transient",
            ErrorKind::RateLimited => "rate-limited",
            ErrorKind::Data => "data",
            ErrorKind::Internal => "internal",
        }
    }

    /// Parses a kind from its WIT spelling (`rate_limited` and
    /// `rateLimited` are accepted too). Returns `None` for anything else.
    pub fn parse(text: &str) -> Option<ErrorKind> {
        match text {
            "config" => Some(ErrorKind::Config),
            "auth" => Some(ErrorKind::Auth),
            "transient" => Some(ErrorKind::Transient),
            "rate-limited" | "rate_limited" | "rateLimited" => Some(ErrorKind::RateLimited),
            "data" => Some(ErrorKind::Data),
            "internal" => Some(ErrorKind::Internal),
            _ => None,
        }
    }

    /// Whether failures of this kind are retryable unless said otherwise:
    /// `true` for [`Transient`](ErrorKind::Transient) and
    /// [`RateLimited`](ErrorKind::RateLimited), `false` for the rest.
    pub fn default_retryable(self) -> bool {
        matches!(self, ErrorKind::Transient | ErrorKind::RateLimited)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ErrorKind> for wit::ErrorKind {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Config => wit::ErrorKind::Config,
            ErrorKind::Auth => wit::ErrorKind::Auth,
            ErrorKind::Transient => wit::ErrorKind::Transient,
            ErrorKind::RateLimited => wit::ErrorKind::RateLimited,
            ErrorKind::Data => wit::ErrorKind::Data,
            ErrorKind::Internal => wit::ErrorKind::Internal,
        }
    }
}

impl From<wit::ErrorKind> for ErrorKind {
    fn from(kind: wit::ErrorKind) -> Self {
        match kind {
            wit::ErrorKind::Config => ErrorKind::Config,
            wit::ErrorKind::Auth => ErrorKind::Auth,
            wit::ErrorKind::Transient => ErrorKind::Transient,
            wit::ErrorKind::RateLimited => ErrorKind::RateLimited,
            wit::ErrorKind::Data => ErrorKind::Data,
            wit::ErrorKind::Internal => ErrorKind::Internal,
        }
    }
}

/// A failure reported by a step.
///
/// Build one with the constructor for its kind ([`config`](PluginError::config),
/// [`auth`](PluginError::auth), [`transient`](PluginError::transient),
/// [`rate_limited`](PluginError::rate_limited), [`data`](PluginError::data),
/// [`internal`](PluginError::internal)); each sets the kind's default
/// `retryable` hint, which [`retryable`](PluginError::retryable) overrides.
///
/// ```
/// use weft_plugin_sdk::PluginError;
///
/// let err = PluginError::config("`n` must be at most 92")
///     .with_details(serde_json::json!({ "field": "n", "max": 92 }));
/// assert!(!err.retryable);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PluginError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// A human-readable explanation; must never contain secrets.
    pub message: String,
    /// The plugin's retry hint; the template's retry policy decides.
    pub retryable: bool,
    /// How long to wait before retrying, when known.
    pub retry_after_ms: Option<u64>,
    /// Structured details.
    pub details: Option<serde_json::Value>,
}

impl PluginError {
    /// An error of `kind` with the kind's default `retryable` hint.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind,
            message: message.into(),
            retryable: kind.default_retryable(),
            retry_after_ms: None,
            details: None,
        }
    }

    /// The configuration or input is wrong (not retryable).
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// Credentials were missing or rejected (not retryable).
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }

    /// A temporary failure such as a network error (retryable).
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    /// A remote service asked to slow down (retryable), optionally saying
    /// after how many milliseconds to try again.
    pub fn rate_limited(message: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        let mut err = Self::new(ErrorKind::RateLimited, message);
        err.retry_after_ms = retry_after_ms;
        err
    }

    /// The data itself is bad (not retryable).
    pub fn data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Data, message)
    }

    /// A bug or unexpected state inside the plugin (not retryable).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Attaches structured details (any JSON value).
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Overrides the `retryable` hint.
    #[must_use]
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Sets how long to wait before retrying.
    #[must_use]
    pub fn with_retry_after_ms(mut self, retry_after_ms: u64) -> Self {
        self.retry_after_ms = Some(retry_after_ms);
        self
    }

    /// Converts to the WIT record the host receives.
    pub fn to_wit(&self) -> wit::PluginError {
        self.clone().into()
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.kind, self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<PluginError> for wit::PluginError {
    fn from(err: PluginError) -> Self {
        wit::PluginError {
            kind: err.kind.into(),
            message: err.message,
            retryable: err.retryable,
            retry_after_ms: err.retry_after_ms,
            details: err.details.map(|details| details.to_string()),
        }
    }
}

impl From<wit::PluginError> for PluginError {
    /// Converts back from the WIT record; details that are not valid JSON
    /// are kept as a JSON string.
    fn from(err: wit::PluginError) -> Self {
        PluginError {
            kind: err.kind.into(),
            message: err.message,
            retryable: err.retryable,
            retry_after_ms: err.retry_after_ms,
            details: err
                .details
                .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_kind_and_default_retryable() {
        let cases = [
            (PluginError::config("m"), ErrorKind::Config, false),
            (PluginError::auth("m"), ErrorKind::Auth, false),
            (PluginError::transient("m"), ErrorKind::Transient, true),
            (
                PluginError::rate_limited("m", Some(1500)),
                ErrorKind::RateLimited,
                true,
            ),
            (PluginError::data("m"), ErrorKind::Data, false),
            (PluginError::internal("m"), ErrorKind::Internal, false),
        ];
        for (err, kind, retryable) in cases {
            assert_eq!(err.kind, kind);
            assert_eq!(err.retryable, retryable, "{kind}");
            assert_eq!(err.message, "m");
        }
        assert_eq!(
            PluginError::rate_limited("m", Some(1500)).retry_after_ms,
            Some(1500)
        );
    }

    #[test]
    fn converts_to_wit_record() {
        let err = PluginError::rate_limited("slow down", Some(250))
            .with_details(serde_json::json!({ "limit": 10 }));
        let wit = err.to_wit();
        assert_eq!(wit.kind, wit::ErrorKind::RateLimited);
        assert_eq!(wit.message, "slow down");
        assert!(wit.retryable);
        assert_eq!(wit.retry_after_ms, Some(250));
        assert_eq!(wit.details.as_deref(), Some(r#"{"limit":10}"#));
        assert_eq!(PluginError::from(wit), err);

        let wit = PluginError::transient("x").retryable(false).to_wit();
        assert_eq!(wit.kind, wit::ErrorKind::Transient);
        assert!(!wit.retryable);
        assert_eq!(wit.details, None);
    }

    #[test]
    fn every_kind_round_trips() {
        for kind in [
            ErrorKind::Config,
            ErrorKind::Auth,
            ErrorKind::Transient,
            ErrorKind::RateLimited,
            ErrorKind::Data,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from(wit::ErrorKind::from(kind)), kind);
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::parse("bogus"), None);
        assert_eq!(
            PluginError::data("bad row").to_string(),
            "data error: bad row"
        );
    }
}
