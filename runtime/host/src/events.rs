//! What a plugin reports while it runs: log lines, progress and artifacts,
//! delivered to the caller as they happen so the engine can persist them.

use std::time::SystemTime;

pub use weft_model::{LogLevel, LogSource};

/// One event of an invocation, in the order the plugin produced it.
#[derive(Debug, Clone, PartialEq)]
pub enum PluginEvent {
    /// A log line.
    Log {
        /// When the host received it.
        at: SystemTime,
        /// Severity.
        level: LogLevel,
        /// The text (truncated to the host's line limit).
        message: String,
        /// Structured context, if the plugin gave valid JSON.
        context: Option<serde_json::Value>,
        /// Where it came from.
        source: LogSource,
    },
    /// Progress, `fraction` clamped to 0.0..=1.0.
    Progress {
        /// When the host received it.
        at: SystemTime,
        /// Fraction done.
        fraction: f32,
        /// Optional status text.
        message: Option<String>,
    },
    /// An artifact the plugin emitted.
    Artifact {
        /// When the host received it.
        at: SystemTime,
        /// Artifact name (unique per step attempt by convention).
        name: String,
        /// Media type, e.g. `text/csv`.
        media_type: String,
        /// The bytes.
        data: Vec<u8>,
    },
}

/// Receives an invocation's events as they happen. Implementations must be
/// quick: they run on the invocation's task. Hand work off to a channel.
pub trait InvocationObserver: Send + Sync {
    /// Called once per event, in order.
    fn on_event(&self, event: PluginEvent);
}

impl InvocationObserver for tokio::sync::mpsc::UnboundedSender<PluginEvent> {
    fn on_event(&self, event: PluginEvent) {
        // A receiver that went away no longer wants events; that is not the plugin's fault.
        let _ = self.send(event);
    }
}

impl<F: Fn(PluginEvent) + Send + Sync> InvocationObserver for F {
    fn on_event(&self, event: PluginEvent) {
        self(event)
    }
}
