//! The adapter for plugins built against `weft:plugin@0.1.0`.
//!
//! The host implements the latest contract; this module only maps the
//! frozen 0.1.0 types onto it and delegates, as Zed's extension host does
//! (`since_v0_1`). 0.1.0 step plugins load and run unchanged. 0.1.0
//! connectors are refused: that contract's `source` and `destination` were
//! declared but never run, and 0.2.0 redesigned them.

use crate::bindings::{latest, v0_1};
use crate::error::InstallError;
use crate::sandbox::SandboxState;
use weft_model::{RawManifest, RawStepType};

impl v0_1::types::Host for SandboxState {}

impl v0_1::host::Host for SandboxState {
    fn log(
        &mut self,
        level: v0_1::host::Level,
        message: String,
        context: Option<String>,
    ) -> wasmtime::Result<()> {
        use latest::host::Level as L;
        use v0_1::host::Level as Old;
        let level = match level {
            Old::Trace => L::Trace,
            Old::Debug => L::Debug,
            Old::Info => L::Info,
            Old::Warn => L::Warn,
            Old::Error => L::Error,
        };
        latest::host::Host::log(self, level, message, context)
    }

    fn progress(&mut self, fraction: f32, message: Option<String>) -> wasmtime::Result<()> {
        latest::host::Host::progress(self, fraction, message)
    }

    fn emit_artifact(
        &mut self,
        name: String,
        media_type: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        latest::host::Host::emit_artifact(self, name, media_type, data)
    }

    fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        latest::host::Host::secret(self, name)
    }

    fn cancelled(&mut self) -> wasmtime::Result<bool> {
        latest::host::Host::cancelled(self)
    }
}

/// A 0.1.0 manifest as the latest raw manifest.
pub(crate) fn manifest(m: v0_1::types::Manifest) -> Result<RawManifest, InstallError> {
    if m.connector.is_some() {
        return Err(connector_refused());
    }
    Ok(RawManifest {
        name: m.name,
        version: m.version,
        description: m.description,
        step_types: m
            .step_types
            .into_iter()
            .map(|s| RawStepType {
                name: s.name,
                description: s.description,
                input_schema: s.input_schema,
                output_schema: s.output_schema,
            })
            .collect(),
        source: None,
        destination: None,
        outbound_hosts: m.requested.outbound_hosts,
        directories: m.requested.directories,
        env: m.requested.env,
        secrets: m.requested.secrets,
    })
}

/// Why a 0.1.0 component exporting `source` or `destination` is refused.
pub(crate) fn connector_refused() -> InstallError {
    InstallError::UnsupportedWitVersion {
        found: "0.1.0 with `source`/`destination` exports (0.1.0 connectors never ran; rebuild against 0.2.0)".into(),
        supported: format!(
            "{} (connectors from 0.2.0)",
            crate::bindings::ContractVersion::supported_list()
        ),
    }
}

/// The latest invocation as 0.1.0's.
pub(crate) fn invocation(i: &latest::types::Invocation) -> v0_1::step::Invocation {
    v0_1::step::Invocation {
        step_type: i.step_type.clone(),
        input: i.input.clone(),
        run_id: i.run_id.clone(),
        step_id: i.step_id.clone(),
        attempt: i.attempt,
        answer: i.answer.clone(),
    }
}

/// A 0.1.0 outcome as the latest one.
pub(crate) fn outcome(o: v0_1::step::Outcome) -> latest::types::Outcome {
    use latest::types::Outcome as New;
    use v0_1::step::Outcome as Old;
    match o {
        Old::Success(json) => New::Success(json),
        Old::Failed(e) => New::Failed(plugin_error(e)),
        Old::AwaitingInput(r) => New::AwaitingInput(latest::types::InputRequest {
            prompt: r.prompt,
            schema: r.schema,
            secret_fields: r.secret_fields,
        }),
    }
}

fn plugin_error(e: v0_1::types::PluginError) -> latest::types::PluginError {
    use latest::types::ErrorKind as New;
    use v0_1::types::ErrorKind as Old;
    latest::types::PluginError {
        kind: match e.kind {
            Old::Config => New::Config,
            Old::Auth => New::Auth,
            Old::Transient => New::Transient,
            Old::RateLimited => New::RateLimited,
            Old::Data => New::Data,
            Old::Internal => New::Internal,
        },
        message: e.message,
        retryable: e.retryable,
        retry_after_ms: e.retry_after_ms,
        details: e.details,
    }
}
