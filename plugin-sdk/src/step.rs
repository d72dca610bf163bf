//! The [`Step`] trait and what a step receives ([`StepContext`]) and returns
//! ([`Outcome`], [`InputRequest`]).

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::PluginError;
use crate::bindings::weft::plugin::types as wit;

/// One step type of a plugin.
///
/// The input is deserialized from the invocation's JSON before [`run`](Step::run)
/// is called (bad input becomes a `config` error without reaching your code),
/// and the output is serialized back to JSON. The JSON Schemas of both types,
/// generated with [`schemars`], go into the plugin's manifest.
///
/// ```
/// use schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
/// use weft_plugin_sdk::prelude::*;
///
/// /// Doubles a number.
/// #[derive(Default)]
/// pub struct Double;
///
/// #[derive(Deserialize, JsonSchema)]
/// pub struct DoubleInput {
///     value: i64,
/// }
///
/// #[derive(Serialize, JsonSchema)]
/// pub struct DoubleOutput {
///     value: i64,
/// }
///
/// impl Step for Double {
///     const NAME: &'static str = "double";
///     const DESCRIPTION: &'static str = "Doubles `value`.";
///     type Input = DoubleInput;
///     type Output = DoubleOutput;
///
///     fn run(&self, _ctx: &StepContext, input: DoubleInput) -> Result<Outcome<DoubleOutput>, PluginError> {
///         let value = input
///             .value
///             .checked_mul(2)
///             .ok_or_else(|| PluginError::data("value overflows when doubled"))?;
///         Ok(Outcome::Done(DoubleOutput { value }))
///     }
/// }
/// ```
pub trait Step {
    /// The step type's name within the plugin: lower-case letters, digits and
    /// `-` (addressed as `<plugin>/<NAME>` in templates).
    const NAME: &'static str;
    /// What the step does, in one or two sentences.
    const DESCRIPTION: &'static str;
    /// The step's input (the template's `with`), deserialized from JSON.
    type Input: DeserializeOwned + JsonSchema;
    /// The step's output, serialized to JSON.
    type Output: Serialize + JsonSchema;

    /// Runs one attempt of the step.
    fn run(
        &self,
        ctx: &StepContext,
        input: Self::Input,
    ) -> Result<Outcome<Self::Output>, PluginError>;
}

/// How a successful [`Step::run`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// Finished with this output.
    Done(T),
    /// Needs input from a person (or the API): the run pauses, and the step
    /// is invoked again with the answer in [`StepContext::answer`].
    AwaitInput(InputRequest),
}

/// A request for human (or API) input that pauses the run.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRequest {
    /// What the person is asked.
    pub prompt: String,
    /// JSON Schema the answer must satisfy.
    pub schema: serde_json::Value,
    /// Fields of the answer that are secret: held in memory only, never persisted.
    pub secret_fields: Vec<String>,
}

impl InputRequest {
    /// Asks `prompt`, expecting an answer that satisfies the JSON Schema `schema`.
    pub fn new(prompt: impl Into<String>, schema: serde_json::Value) -> Self {
        InputRequest {
            prompt: prompt.into(),
            schema,
            secret_fields: Vec::new(),
        }
    }

    /// Asks `prompt`, expecting an answer shaped like `T` (its schema is
    /// generated with `schemars`).
    pub fn for_type<T: JsonSchema>(prompt: impl Into<String>) -> Self {
        Self::new(prompt, schema_value::<T>())
    }

    /// Marks top-level fields of the answer as secret.
    #[must_use]
    pub fn secret_fields<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.secret_fields = fields.into_iter().map(Into::into).collect();
        self
    }

    /// Converts to the WIT record the host receives.
    pub fn to_wit(&self) -> wit::InputRequest {
        wit::InputRequest {
            prompt: self.prompt.clone(),
            schema: self.schema.to_string(),
            secret_fields: self.secret_fields.clone(),
        }
    }
}

/// The JSON Schema of `T` as a JSON value.
pub(crate) fn schema_value<T: JsonSchema>() -> serde_json::Value {
    schemars::schema_for!(T).to_value()
}

/// What a step knows about the attempt it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepContext {
    step_type: String,
    run_id: String,
    step_id: String,
    attempt: u32,
    answer: Option<String>,
}

impl StepContext {
    /// A context for `step_type` with empty ids, attempt 1 and no answer;
    /// handy in unit tests together with the `with_*` methods.
    pub fn new(step_type: impl Into<String>) -> Self {
        StepContext {
            step_type: step_type.into(),
            run_id: String::new(),
            step_id: String::new(),
            attempt: 1,
            answer: None,
        }
    }

    /// Sets the run and step ids.
    #[must_use]
    pub fn with_ids(mut self, run_id: impl Into<String>, step_id: impl Into<String>) -> Self {
        self.run_id = run_id.into();
        self.step_id = step_id.into();
        self
    }

    /// Sets the attempt number.
    #[must_use]
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Sets the answer to an earlier input request, as JSON text.
    #[must_use]
    pub fn with_answer(mut self, answer: impl Into<String>) -> Self {
        self.answer = Some(answer.into());
        self
    }

    /// The step type being run, e.g. `fibo`.
    pub fn step_type(&self) -> &str {
        &self.step_type
    }

    /// The workflow run this attempt belongs to.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The step within the run.
    pub fn step_id(&self) -> &str {
        &self.step_id
    }

    /// The attempt number, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the invocation carries an answer to an earlier input request.
    pub fn has_answer(&self) -> bool {
        self.answer.is_some()
    }

    /// The answer to an earlier input request as raw JSON text, if any.
    pub fn raw_answer(&self) -> Option<&str> {
        self.answer.as_deref()
    }

    /// The answer to an earlier input request deserialized into `T`, if any.
    /// An answer that does not deserialize is a `config` error.
    pub fn answer<T: DeserializeOwned>(&self) -> Result<Option<T>, PluginError> {
        match &self.answer {
            None => Ok(None),
            Some(text) => serde_json::from_str(text).map(Some).map_err(|err| {
                PluginError::config(format!(
                    "invalid answer for step type `{}`: {err}",
                    self.step_type
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Answer {
        approved: bool,
    }

    #[test]
    fn typed_and_raw_answers() {
        let ctx = StepContext::new("approval");
        assert!(!ctx.has_answer());
        assert_eq!(ctx.answer::<Answer>(), Ok(None));

        let ctx = ctx.with_answer(r#"{"approved":true}"#);
        assert_eq!(ctx.raw_answer(), Some(r#"{"approved":true}"#));
        assert_eq!(ctx.answer::<Answer>(), Ok(Some(Answer { approved: true })));

        let err = StepContext::new("approval")
            .with_answer(r#"{"approved":"yes"}"#)
            .answer::<Answer>()
            .err();
        let err = err.map(|e| (e.kind, e.message.contains("approval")));
        assert_eq!(err, Some((crate::ErrorKind::Config, true)));
    }

    #[test]
    fn input_request_to_wit() {
        let req = InputRequest::new("Token?", serde_json::json!({ "type": "object" }))
            .secret_fields(["token"]);
        let wit = req.to_wit();
        assert_eq!(wit.prompt, "Token?");
        assert_eq!(wit.schema, r#"{"type":"object"}"#);
        assert_eq!(wit.secret_fields, vec!["token".to_string()]);
    }
}
