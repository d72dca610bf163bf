//! # hello-plugin
//!
//! An example third-party [Weft](https://example.invalid/weft) plugin named
//! `hello`, with one step type, `greet`:
//!
//! ```json
//! { "name": "Ada" }  →  { "greeting": "Hello, Ada!" }
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release`; the plugin
//! is `target/wasm32-wasip2/release/hello_plugin.wasm`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_plugin_sdk::prelude::*;

weft_plugin_sdk::export_plugin! {
    name: "hello",
    version: env!("CARGO_PKG_VERSION"),
    description: "An example plugin that greets people.",
    steps: [Greet],
}

/// The `greet` step type.
#[derive(Debug, Default, Clone, Copy)]
pub struct Greet;

/// Input of `greet`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GreetInput {
    /// Who to greet; must not be empty.
    pub name: String,
}

/// Output of `greet`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GreetOutput {
    /// `Hello, <name>!`
    pub greeting: String,
}

impl Step for Greet {
    const NAME: &'static str = "greet";
    const DESCRIPTION: &'static str = "Greets `name`: outputs `Hello, <name>!`.";
    type Input = GreetInput;
    type Output = GreetOutput;

    fn run(
        &self,
        _ctx: &StepContext,
        input: GreetInput,
    ) -> Result<Outcome<GreetOutput>, PluginError> {
        if input.name.trim().is_empty() {
            return Err(PluginError::config("`name` must not be empty"));
        }
        Ok(Outcome::Done(GreetOutput {
            greeting: format!("Hello, {}!", input.name),
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use weft_plugin_sdk::testing::invocation;
    use weft_plugin_sdk::wit::{ErrorKind, Outcome};

    #[test]
    fn manifest_is_valid() {
        let plugin = super::weft_plugin();
        assert_eq!(plugin.validate(), Ok(()));
        let manifest = plugin.manifest();
        assert_eq!(manifest.name, "hello");
        assert_eq!(manifest.step_types.len(), 1);
        assert_eq!(manifest.step_types[0].name, "greet");
    }

    #[test]
    fn greets() {
        let outcome = super::weft_plugin().run(invocation("greet", json!({ "name": "Ada" })));
        match outcome {
            Outcome::Success(output) => assert_eq!(output, r#"{"greeting":"Hello, Ada!"}"#),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn empty_or_missing_name_is_a_config_error() {
        for input in [json!({ "name": "" }), json!({})] {
            match super::weft_plugin().run(invocation("greet", input)) {
                Outcome::Failed(err) => assert_eq!(err.kind, ErrorKind::Config),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
