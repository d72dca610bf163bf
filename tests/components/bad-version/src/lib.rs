//! # bad-version — a manifest whose version (`one.two`) is not semver.
//!
//! A raw `wit-bindgen` component (no SDK) exporting world `step-plugin` of
//! `weft:plugin@0.1.0`, used by the host's tests to check that installing it
//! is rejected.

#[allow(missing_docs, unsafe_code, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/weft-plugin@0.1.0",
        world: "step-plugin",
    });
}

use bindings::exports::weft::plugin::{plugin, step};
use bindings::weft::plugin::types::{Capabilities, Manifest, StepTypeInfo};

struct Component;

fn step_type(name: &str, input_schema: &str) -> StepTypeInfo {
    StepTypeInfo {
        name: name.to_string(),
        description: "A step type of a bad manifest.".to_string(),
        input_schema: input_schema.to_string(),
        output_schema: r#"{"type":"object"}"#.to_string(),
    }
}

impl plugin::Guest for Component {
    fn describe() -> Manifest {
        Manifest {
            name: "bad-version".to_string(),
            version: "one.two".to_string(),
            description: "Test fixture: a version that is not semver.".to_string(),
            step_types: vec![step_type("ok", r#"{"type":"object"}"#)],
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
    fn run(_invocation: step::Invocation) -> step::Outcome {
        step::Outcome::Success("{}".to_string())
    }
}

bindings::export!(Component with_types_in bindings);
