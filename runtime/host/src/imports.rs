//! The host side of the `weft:plugin/host` interface.

use crate::bindings::latest::host::{Host, Level};
use crate::bindings::latest::types;
use crate::events::LogLevel;
use crate::sandbox::SandboxState;

impl types::Host for SandboxState {}

impl Host for SandboxState {
    fn log(
        &mut self,
        level: Level,
        message: String,
        context: Option<String>,
    ) -> wasmtime::Result<()> {
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        // Breaking the log budget traps: a flooding plugin is stopped, not throttled.
        self.io
            .log(level, message, context)
            .map_err(wasmtime::Error::new)
    }

    fn progress(&mut self, fraction: f32, message: Option<String>) -> wasmtime::Result<()> {
        // Progress is stored as log lines: flooding it traps like log does.
        self.io
            .progress(fraction, message)
            .map_err(wasmtime::Error::new)
    }

    fn emit_artifact(
        &mut self,
        name: String,
        media_type: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        self.io
            .artifact(name, media_type, data)
            .map_err(wasmtime::Error::new)
    }

    fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.io.secret(&name))
    }

    fn cancelled(&mut self) -> wasmtime::Result<bool> {
        Ok(self.io.cancelled())
    }
}
