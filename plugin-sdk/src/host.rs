//! Functions the Weft host provides to a running step: logs, progress,
//! artifacts, secrets, cancellation, and a cancellable sleep.
//!
//! They call the component's `weft:plugin/host` imports, so they only work
//! inside a Weft host (natively they panic).

use crate::bindings::weft::plugin::host as wit;

pub use crate::bindings::weft::plugin::host::Level;

/// Writes a log line for the current invocation. Lines past the
/// invocation's log limit fail the invocation.
pub fn log(level: Level, message: &str) {
    wit::log(level, message, None);
}

/// Writes a log line with structured context (any JSON value).
pub fn log_with_context(level: Level, message: &str, context: &serde_json::Value) {
    wit::log(level, message, Some(&context.to_string()));
}

/// Writes a `trace` log line.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Writes a `debug` log line.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes an `info` log line.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes a `warn` log line.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes an `error` log line.
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// Reports progress of the current invocation; `fraction` is clamped to
/// `0.0..=1.0` (NaN becomes 0).
pub fn progress(fraction: f32, message: Option<&str>) {
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    wit::progress(fraction, message);
}

/// Stores a named artifact (a report, a file) for the current step attempt.
/// The error is the host's explanation (e.g. the artifact is too large).
pub fn emit_artifact(name: &str, media_type: &str, data: &[u8]) -> Result<(), String> {
    wit::emit_artifact(name, media_type, data)
}

/// Reads a granted secret; `None` when it is unknown or not granted.
pub fn secret(name: &str) -> Option<String> {
    wit::secret(name)
}

/// True once the run or step was cancelled: return promptly.
pub fn cancelled() -> bool {
    wit::cancelled()
}

/// Sleeps `duration`, waking every 100 ms to ask whether the run was
/// cancelled; returns `false` (early) when it was.
pub fn sleep(duration: std::time::Duration) -> bool {
    use wasi::clocks::monotonic_clock;
    const SLICE_NS: u64 = 100_000_000;
    let total = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    let deadline = monotonic_clock::now().saturating_add(total);
    loop {
        if cancelled() {
            return false;
        }
        let now = monotonic_clock::now();
        if now >= deadline {
            return true;
        }
        monotonic_clock::subscribe_duration((deadline - now).min(SLICE_NS)).block();
    }
}
