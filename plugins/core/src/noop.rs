//! `noop`: returns its input unchanged.

use serde_json::Value;
use weft_plugin_sdk::prelude::*;

/// Returns its input unchanged (any JSON value).
#[derive(Debug, Default, Clone, Copy)]
pub struct Noop;

impl Step for Noop {
    const NAME: &'static str = "noop";
    const DESCRIPTION: &'static str = "Returns its input unchanged; any JSON value is accepted.";
    type Input = Value;
    type Output = Value;

    fn run(&self, _ctx: &StepContext, input: Value) -> Result<Outcome<Value>, PluginError> {
        Ok(Outcome::Done(input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn echoes_any_value() {
        for value in [
            json!(null),
            json!(1),
            json!("x"),
            json!({"a": [1, {"b": true}]}),
        ] {
            let out = Noop.run(&StepContext::new("noop"), value.clone());
            assert_eq!(out, Ok(Outcome::Done(value)));
        }
    }
}
