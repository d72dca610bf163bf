//! # weft-plugin-core
//!
//! Weft's first-party step types, shipped as the `core` plugin:
//!
//! | step type   | what it does                                                    |
//! |-------------|-----------------------------------------------------------------|
//! | `noop`      | returns its input unchanged                                     |
//! | `fibo`      | naive recursive Fibonacci (a CPU benchmark workload)            |
//! | `sleep`     | sleeps, in 10 ms slices, returning early when cancelled         |
//! | `transform` | evaluates a CEL expression over `data`                          |
//! | `http`      | sends one HTTP request through the host's `wasi:http`           |
//! | `approval`  | pauses the run until a person answers, then outputs the answer  |
//!
//! Build with `cargo build --target wasm32-wasip2 --release` in `plugins/`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod approval;
mod fibo;
mod http;
mod noop;
mod sleep;
mod transform;

pub use approval::Approval;
pub use fibo::Fibo;
pub use http::Http;
pub use noop::Noop;
pub use sleep::Sleep;
pub use transform::Transform;

weft_plugin_sdk::export_plugin! {
    name: "core",
    version: env!("CARGO_PKG_VERSION"),
    description: "Weft's built-in step types: noop, fibo, sleep, transform (CEL expressions), http and approval.",
    capabilities: weft_plugin_sdk::Capabilities {
        outbound_hosts: vec!["*".into()],
        ..Default::default()
    },
    steps: [Noop, Fibo, Sleep, Transform, Http, Approval],
}

#[cfg(test)]
mod tests {
    #[test]
    fn manifest_is_valid_and_lists_every_step() {
        let plugin = super::weft_plugin();
        assert_eq!(plugin.validate(), Ok(()));
        let manifest = plugin.manifest();
        assert_eq!(manifest.name, "core");
        assert_eq!(manifest.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(manifest.requested.outbound_hosts, vec!["*".to_string()]);
        assert!(manifest.requested.secrets.is_empty());
        assert!(manifest.requested.env.is_empty());
        assert!(manifest.requested.directories.is_empty());
        let names: Vec<_> = manifest
            .step_types
            .iter()
            .map(|step| step.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["noop", "fibo", "sleep", "transform", "http", "approval"]
        );
        for step in &manifest.step_types {
            for schema in [&step.input_schema, &step.output_schema] {
                let value: serde_json::Value = serde_json::from_str(schema).unwrap();
                assert!(
                    value.is_object() || value.is_boolean(),
                    "{}: {schema}",
                    step.name
                );
            }
        }
    }
}
