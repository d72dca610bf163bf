//! # v0-1-step — a step plugin for the frozen `weft:plugin@0.1.0`
//!
//! Built with wit-bindgen straight from `wit/weft-plugin@0.1.0`, as a
//! third party's plugin of that release was, so the host's `since_v0_1`
//! adapter keeps being tested against real 0.1.0 exports and imports:
//! `echo` logs through the 0.1.0 `host` and returns its input; `fail`
//! returns a 0.1.0 `plugin-error`.

#[allow(missing_docs, unsafe_code, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/weft-plugin@0.1.0",
        world: "step-plugin",
    });
}

use bindings::exports::weft::plugin::{plugin, step};
use bindings::weft::plugin::host;
use bindings::weft::plugin::types::{Capabilities, ErrorKind, Manifest, PluginError, StepTypeInfo};

struct Component;

impl plugin::Guest for Component {
    fn describe() -> Manifest {
        let any = r#"{"type":"object"}"#.to_string();
        let info = |name: &str, description: &str| StepTypeInfo {
            name: name.into(),
            description: description.into(),
            input_schema: any.clone(),
            output_schema: any.clone(),
        };
        Manifest {
            name: "legacy".into(),
            version: "0.1.0".into(),
            description: "A step plugin built against weft:plugin@0.1.0.".into(),
            step_types: vec![
                info("echo", "Returns its input."),
                info("fail", "Fails with a data error."),
            ],
            connector: None,
            requested: Capabilities {
                outbound_hosts: vec![],
                directories: vec![],
                env: vec![],
                secrets: vec![],
            },
        }
    }
}

impl step::Guest for Component {
    fn run(invocation: step::Invocation) -> step::Outcome {
        host::log(host::Level::Info, "echo from 0.1.0", None);
        match invocation.step_type.as_str() {
            "echo" => step::Outcome::Success(invocation.input),
            _ => step::Outcome::Failed(PluginError {
                kind: ErrorKind::Data,
                message: "failed on purpose".into(),
                retryable: false,
                retry_after_ms: None,
                details: Some(r#"{"attempt":1}"#.into()),
            }),
        }
    }
}

bindings::export!(Component with_types_in bindings);
