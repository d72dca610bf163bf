//! `approval`: pauses the run until a person answers.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use weft_plugin_sdk::prelude::*;

/// Asks a person (or an API client) for input; once answered, outputs the
/// answer.
#[derive(Debug, Default, Clone, Copy)]
pub struct Approval;

/// Input of `approval`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalInput {
    /// What the person is asked.
    pub prompt: String,
    /// JSON Schema the answer must satisfy; by default an object with a
    /// required boolean `approved` and an optional string `comment`.
    #[serde(default)]
    pub schema: Option<Value>,
    /// Top-level fields of the answer that are secret (never persisted).
    #[serde(default)]
    pub secret_fields: Vec<String>,
}

/// The answer schema used when the input has none.
pub fn default_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "approved": { "type": "boolean" },
            "comment": { "type": "string" }
        },
        "required": ["approved"]
    })
}

impl Step for Approval {
    const NAME: &'static str = "approval";
    const DESCRIPTION: &'static str = "Pauses the run until someone answers `prompt` (by default: approved yes/no and a comment); outputs the answer.";
    type Input = ApprovalInput;
    type Output = Value;

    fn run(&self, ctx: &StepContext, input: ApprovalInput) -> Result<Outcome<Value>, PluginError> {
        if let Some(answer) = ctx.answer::<Value>()? {
            return Ok(Outcome::Done(answer));
        }
        let schema = match input.schema {
            None => default_schema(),
            Some(schema @ (Value::Object(_) | Value::Bool(_))) => schema,
            Some(other) => {
                return Err(PluginError::config(format!(
                    "`schema` must be a JSON Schema (an object or a boolean), got {other}"
                )));
            }
        };
        Ok(Outcome::AwaitInput(
            InputRequest::new(input.prompt, schema).secret_fields(input.secret_fields),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(value: Value) -> ApprovalInput {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn asks_with_the_default_schema() {
        let out = Approval.run(
            &StepContext::new("approval"),
            input(json!({ "prompt": "Ship it?" })),
        );
        assert_eq!(
            out,
            Ok(Outcome::AwaitInput(InputRequest::new(
                "Ship it?",
                default_schema()
            )))
        );
    }

    #[test]
    fn asks_with_a_custom_schema_and_secret_fields() {
        let schema = json!({ "type": "object", "properties": { "token": { "type": "string" } } });
        let out = Approval.run(
            &StepContext::new("approval"),
            input(json!({ "prompt": "Token?", "schema": schema, "secretFields": ["token"] })),
        );
        assert_eq!(
            out,
            Ok(Outcome::AwaitInput(
                InputRequest::new("Token?", schema).secret_fields(["token"])
            ))
        );
        let err = Approval
            .run(
                &StepContext::new("approval"),
                input(json!({ "prompt": "x", "schema": 12 })),
            )
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
    }

    #[test]
    fn outputs_the_answer() {
        let ctx = StepContext::new("approval").with_answer(r#"{"approved":true,"comment":"ok"}"#);
        let out = Approval.run(&ctx, input(json!({ "prompt": "Ship it?" })));
        assert_eq!(
            out,
            Ok(Outcome::Done(json!({ "approved": true, "comment": "ok" })))
        );
    }
}
