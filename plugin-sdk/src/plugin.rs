//! [`Plugin`]: a plugin's metadata and registered steps, the manifest it
//! describes and the dispatch of invocations to steps.
//!
//! [`export_plugin!`](crate::export_plugin) builds a [`Plugin`] and wires it
//! to the component's exports; you can also build one by hand in unit tests.

use std::collections::HashSet;

use crate::bindings::weft::plugin::types as wit;
use crate::bindings::weft::plugin::types::{Invocation, Outcome as WitOutcome};
use crate::step::schema_value;
use crate::{Outcome, PluginError, Step, StepContext};

/// Capabilities a plugin requests; an admin grants a subset when enabling it.
///
/// ```
/// let caps = weft_plugin_sdk::Capabilities {
///     outbound_hosts: vec!["api.example.com".into()],
///     ..Default::default()
/// };
/// assert!(caps.secrets.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Hosts reachable over `wasi:http`: `example.com`, `*.example.com`,
    /// `example.com:8443`, `127.0.0.1:9000`, or `*` for whatever the admin grants.
    pub outbound_hosts: Vec<String>,
    /// Guest paths the plugin wants preopened, e.g. `/data`.
    pub directories: Vec<String>,
    /// Environment variable names the plugin may read.
    pub env: Vec<String>,
    /// Secret names the plugin may read through [`host::secret`](crate::host::secret).
    pub secrets: Vec<String>,
}

impl From<Capabilities> for wit::Capabilities {
    fn from(caps: Capabilities) -> Self {
        wit::Capabilities {
            outbound_hosts: caps.outbound_hosts,
            directories: caps.directories,
            env: caps.env,
            secrets: caps.secrets,
        }
    }
}

/// A [`Step`] with its types erased, so that steps of different types can sit
/// in one list.
trait ErasedStep {
    fn name(&self) -> &'static str;
    fn info(&self) -> wit::StepTypeInfo;
    fn invoke(&self, ctx: &StepContext, input: &str) -> WitOutcome;
}

impl<S: Step> ErasedStep for S {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn info(&self) -> wit::StepTypeInfo {
        wit::StepTypeInfo {
            name: S::NAME.to_string(),
            description: S::DESCRIPTION.to_string(),
            input_schema: schema_value::<S::Input>().to_string(),
            output_schema: schema_value::<S::Output>().to_string(),
        }
    }

    fn invoke(&self, ctx: &StepContext, input: &str) -> WitOutcome {
        let input: S::Input = match serde_json::from_str(input) {
            Ok(input) => input,
            Err(err) => {
                return WitOutcome::Failed(
                    PluginError::config(format!(
                        "invalid input for step type `{}`: {err}",
                        S::NAME
                    ))
                    .to_wit(),
                );
            }
        };
        match self.run(ctx, input) {
            Ok(Outcome::Done(output)) => match serde_json::to_string(&output) {
                Ok(json) => WitOutcome::Success(json),
                Err(err) => WitOutcome::Failed(
                    PluginError::internal(format!(
                        "could not serialize the output of step type `{}`: {err}",
                        S::NAME
                    ))
                    .to_wit(),
                ),
            },
            Ok(Outcome::AwaitInput(request)) => WitOutcome::AwaitingInput(request.to_wit()),
            Err(err) => WitOutcome::Failed(err.into()),
        }
    }
}

/// A plugin: its name, version, description, requested capabilities and steps.
///
/// ```
/// # use weft_plugin_sdk::prelude::*;
/// # #[derive(Default)] struct Greet;
/// # impl Step for Greet {
/// #     const NAME: &'static str = "greet";
/// #     const DESCRIPTION: &'static str = "Greets.";
/// #     type Input = String;
/// #     type Output = String;
/// #     fn run(&self, _: &StepContext, name: String) -> Result<Outcome<String>, PluginError> {
/// #         Ok(Outcome::Done(format!("Hello, {name}!")))
/// #     }
/// # }
/// use weft_plugin_sdk::{Plugin, testing};
/// use weft_plugin_sdk::wit::Outcome as WitOutcome;
///
/// let plugin = Plugin::new("hello", "1.0.0", "Greetings.").step(Greet);
/// assert_eq!(plugin.manifest().step_types[0].name, "greet");
/// let outcome = plugin.run(testing::invocation("greet", serde_json::json!("Ada")));
/// assert!(matches!(outcome, WitOutcome::Success(json) if json == r#""Hello, Ada!""#));
/// ```
pub struct Plugin {
    name: String,
    version: String,
    description: String,
    capabilities: Capabilities,
    steps: Vec<Box<dyn ErasedStep>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("capabilities", &self.capabilities)
            .field("steps", &self.step_names())
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// A plugin with no steps and no capabilities.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Plugin {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            capabilities: Capabilities::default(),
            steps: Vec::new(),
        }
    }

    /// Sets the capabilities the plugin requests.
    #[must_use]
    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Registers a step type.
    #[must_use]
    pub fn step<S: Step + 'static>(mut self, step: S) -> Self {
        self.steps.push(Box::new(step));
        self
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names of the registered step types, in registration order.
    pub fn step_names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|step| step.name()).collect()
    }

    /// The manifest returned by the component's `describe` export.
    pub fn manifest(&self) -> wit::Manifest {
        wit::Manifest {
            name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            step_types: self.steps.iter().map(|step| step.info()).collect(),
            requested: self.capabilities.clone().into(),
        }
    }

    /// Checks what the host will check on install, so that a plugin's own
    /// unit tests catch it: the name (lower-case letters, digits, `-`), a
    /// semantic version, step names and unique step names. Returns every
    /// problem found.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !is_valid_name(&self.name) {
            problems.push(format!(
                "plugin name `{}` must be non-empty lower-case letters, digits and `-`",
                self.name
            ));
        }
        if !is_semver(&self.version) {
            problems.push(format!(
                "version `{}` is not a semantic version (MAJOR.MINOR.PATCH)",
                self.version
            ));
        }
        let mut seen = HashSet::new();
        for name in self.step_names() {
            if !is_valid_name(name) {
                problems.push(format!(
                    "step type name `{name}` must be non-empty lower-case letters, digits and `-`"
                ));
            }
            if !seen.insert(name) {
                problems.push(format!("step type `{name}` is registered twice"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Runs one invocation: finds the step type, deserializes the input,
    /// runs the step and serializes its outcome.
    ///
    /// An unknown step type or input that does not deserialize fails with a
    /// `config` error; an output that does not serialize with an `internal` one.
    pub fn run(&self, invocation: Invocation) -> WitOutcome {
        let Some(step) = self
            .steps
            .iter()
            .find(|step| step.name() == invocation.step_type)
        else {
            return WitOutcome::Failed(
                PluginError::config(format!(
                    "unknown step type `{}` in plugin `{}` (known: {})",
                    invocation.step_type,
                    self.name,
                    self.step_names().join(", ")
                ))
                .to_wit(),
            );
        };
        let ctx = StepContext::new(invocation.step_type)
            .with_ids(invocation.run_id, invocation.step_id)
            .with_attempt(invocation.attempt);
        let ctx = match invocation.answer {
            Some(answer) => ctx.with_answer(answer),
            None => ctx,
        };
        step.invoke(&ctx, &invocation.input)
    }
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A loose semantic-version check: `MAJOR.MINOR.PATCH` numbers, optionally
/// followed by `-pre` and/or `+build`.
fn is_semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::invocation;
    use crate::{ErrorKind, InputRequest};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    #[derive(Default)]
    struct Add;

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    struct AddInput {
        left: i64,
        right: i64,
    }

    #[derive(Serialize, JsonSchema)]
    struct AddOutput {
        sum: i64,
    }

    impl Step for Add {
        const NAME: &'static str = "add";
        const DESCRIPTION: &'static str = "Adds two numbers.";
        type Input = AddInput;
        type Output = AddOutput;

        fn run(&self, _: &StepContext, input: AddInput) -> Result<Outcome<AddOutput>, PluginError> {
            let sum = input
                .left
                .checked_add(input.right)
                .ok_or_else(|| PluginError::data("overflow").with_details(json!({"op": "add"})))?;
            Ok(Outcome::Done(AddOutput { sum }))
        }
    }

    struct Ask;

    impl Step for Ask {
        const NAME: &'static str = "ask";
        const DESCRIPTION: &'static str = "Asks for approval, then echoes context.";
        type Input = serde_json::Value;
        type Output = serde_json::Value;

        fn run(
            &self,
            ctx: &StepContext,
            _: serde_json::Value,
        ) -> Result<Outcome<serde_json::Value>, PluginError> {
            match ctx.answer::<serde_json::Value>()? {
                None => Ok(Outcome::AwaitInput(
                    InputRequest::new("Approve?", json!({"type": "object"})).secret_fields(["pin"]),
                )),
                Some(answer) => Ok(Outcome::Done(json!({
                    "answer": answer,
                    "runId": ctx.run_id(),
                    "stepId": ctx.step_id(),
                    "attempt": ctx.attempt(),
                    "stepType": ctx.step_type(),
                }))),
            }
        }
    }

    /// Output whose serialization always fails.
    struct Unserializable;

    struct BadOutput;

    impl Serialize for Unserializable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("cannot serialize this"))
        }
    }

    impl JsonSchema for Unserializable {
        fn schema_name() -> std::borrow::Cow<'static, str> {
            "Unserializable".into()
        }

        fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
            schemars::json_schema!({ "type": "null" })
        }
    }

    impl Step for BadOutput {
        const NAME: &'static str = "bad-output";
        const DESCRIPTION: &'static str = "Returns an output that cannot be serialized.";
        type Input = serde_json::Value;
        type Output = Unserializable;

        fn run(
            &self,
            _: &StepContext,
            _: serde_json::Value,
        ) -> Result<Outcome<Unserializable>, PluginError> {
            Ok(Outcome::Done(Unserializable))
        }
    }

    fn plugin() -> Plugin {
        Plugin::new("demo", "1.2.3", "A demo plugin.")
            .capabilities(Capabilities {
                outbound_hosts: vec!["*".into()],
                secrets: vec!["token".into()],
                ..Default::default()
            })
            .step(Add)
            .step(Ask)
            .step(BadOutput)
    }

    fn failed(outcome: WitOutcome) -> wit::PluginError {
        match outcome {
            WitOutcome::Failed(err) => err,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn manifest_lists_steps_schemas_and_capabilities() {
        let manifest = plugin().manifest();
        assert_eq!(manifest.name, "demo");
        assert_eq!(manifest.version, "1.2.3");
        assert_eq!(manifest.description, "A demo plugin.");
        assert_eq!(manifest.requested.outbound_hosts, vec!["*".to_string()]);
        assert_eq!(manifest.requested.secrets, vec!["token".to_string()]);
        assert!(manifest.requested.env.is_empty());
        assert!(manifest.requested.directories.is_empty());

        let names: Vec<_> = manifest
            .step_types
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["add", "ask", "bad-output"]);
        let add = &manifest.step_types[0];
        assert_eq!(add.description, "Adds two numbers.");
        let input: serde_json::Value = serde_json::from_str(&add.input_schema).unwrap();
        assert_eq!(input["type"], "object");
        assert_eq!(input["properties"]["left"]["type"], "integer");
        assert_eq!(input["required"], json!(["left", "right"]));
        let output: serde_json::Value = serde_json::from_str(&add.output_schema).unwrap();
        assert_eq!(output["properties"]["sum"]["type"], "integer");
        // `serde_json::Value` accepts anything.
        let ask: serde_json::Value =
            serde_json::from_str(&manifest.step_types[1].input_schema).unwrap();
        assert!(ask == json!(true) || ask.get("type").is_none(), "{ask}");
    }

    #[test]
    fn validate_reports_every_problem() {
        assert_eq!(plugin().validate(), Ok(()));
        let problems = Plugin::new("Bad Name", "one.two", "")
            .step(Add)
            .step(Add)
            .validate()
            .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("Bad Name"));
        assert!(problems[1].contains("one.two"));
        assert!(problems[2].contains("twice"));
        assert!(is_semver("1.0.0-alpha.1+build.5"));
        assert!(!is_semver("1.0"));
    }

    #[test]
    fn runs_a_step() {
        let outcome = plugin().run(invocation("add", json!({"left": 2, "right": 40})));
        match outcome {
            WitOutcome::Success(json) => assert_eq!(json, r#"{"sum":42}"#),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_step_type_is_a_config_error() {
        let err = failed(plugin().run(invocation("nope", json!({}))));
        assert_eq!(err.kind, wit::ErrorKind::Config);
        assert!(!err.retryable);
        assert!(
            err.message.contains("unknown step type `nope`"),
            "{}",
            err.message
        );
        assert!(err.message.contains("add, ask"), "{}", err.message);
    }

    #[test]
    fn bad_input_is_a_config_error() {
        for input in [
            json!({"left": 1}),
            json!({"left": "1", "right": 2}),
            json!("1 + 2"),
        ] {
            let err = failed(plugin().run(invocation("add", input)));
            assert_eq!(err.kind, wit::ErrorKind::Config);
            assert!(!err.retryable);
            assert!(
                err.message
                    .starts_with("invalid input for step type `add`: "),
                "{}",
                err.message
            );
        }
        let err = failed(plugin().run(invocation("add", json!({"left": 1}))));
        assert!(
            err.message.contains("missing field `right`"),
            "{}",
            err.message
        );

        let mut inv = invocation("add", json!(null));
        inv.input = "{not json".into();
        assert_eq!(failed(plugin().run(inv)).kind, wit::ErrorKind::Config);
    }

    #[test]
    fn step_errors_keep_their_kind_and_details() {
        let err = failed(plugin().run(invocation("add", json!({"left": i64::MAX, "right": 1}))));
        assert_eq!(err.kind, wit::ErrorKind::Data);
        assert_eq!(err.message, "overflow");
        assert_eq!(err.details.as_deref(), Some(r#"{"op":"add"}"#));
    }

    #[test]
    fn output_serialization_failure_is_internal() {
        let err = failed(plugin().run(invocation("bad-output", json!(null))));
        assert_eq!(ErrorKind::from(err.kind), ErrorKind::Internal);
        assert!(
            err.message.contains("cannot serialize this"),
            "{}",
            err.message
        );
    }

    #[test]
    fn input_requests_and_answers() {
        match plugin().run(invocation("ask", json!({}))) {
            WitOutcome::AwaitingInput(req) => {
                assert_eq!(req.prompt, "Approve?");
                assert_eq!(req.schema, r#"{"type":"object"}"#);
                assert_eq!(req.secret_fields, vec!["pin".to_string()]);
            }
            other => panic!("unexpected {other:?}"),
        }

        let mut inv = invocation("ask", json!({}));
        inv.answer = Some(r#"{"ok":true}"#.into());
        inv.run_id = "run-1".into();
        inv.step_id = "approve".into();
        inv.attempt = 3;
        match plugin().run(inv) {
            WitOutcome::Success(json) => {
                let value: serde_json::Value = serde_json::from_str(&json).unwrap();
                assert_eq!(
                    value,
                    json!({
                        "answer": {"ok": true},
                        "runId": "run-1",
                        "stepId": "approve",
                        "attempt": 3,
                        "stepType": "ask",
                    })
                );
            }
            other => panic!("unexpected {other:?}"),
        }

        let mut inv = invocation("ask", json!({}));
        inv.answer = Some("not json".into());
        assert_eq!(failed(plugin().run(inv)).kind, wit::ErrorKind::Config);
    }
}
