//! The template schema, as written by users in JSON or YAML.
//!
//! One schema serves both formats: camelCase keys, and unknown keys are
//! errors so that typos (`need:` for `needs:`) never pass silently.

use super::duration::DurationSpec;
use super::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// A workflow template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowTemplate {
    /// Unique name: 1-128 characters of `[A-Za-z0-9_.-]`, starting with a
    /// letter or digit.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the run inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
    /// Start runs on a schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// At most this many steps (or `forEach` items) run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_limit: Option<u32>,
    /// The whole run's deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
    /// The steps; their `needs` form a DAG.
    #[serde(default)]
    pub steps: Vec<StepSpec>,
}

/// A cron schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Cron pattern, 5 fields or 6 with seconds (`0 9 * * MON-FRI`).
    pub cron: String,
    /// IANA time zone (`Europe/Paris`); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl ScheduleSpec {
    /// Parses the cron pattern.
    pub fn parse_cron(&self) -> Result<croner::Cron, String> {
        self.cron
            .parse::<croner::Cron>()
            .map_err(|e| format!("invalid cron pattern {:?}: {e}", self.cron))
    }

    /// The time zone, UTC when absent.
    pub fn time_zone(&self) -> Result<chrono_tz::Tz, String> {
        match &self.timezone {
            None => Ok(chrono_tz::Tz::UTC),
            Some(tz) => tz
                .parse::<chrono_tz::Tz>()
                .map_err(|_| format!("{tz:?} is not an IANA time zone (e.g. \"Europe/Paris\")")),
        }
    }
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// One step of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepSpec {
    /// Unique within the template: 1-64 characters of `[A-Za-z0-9_-]`.
    pub id: String,
    /// The step type: `plugin/step-type`, optionally `@semver-requirement`.
    pub uses: String,
    /// The step's input; strings may hold `${{ }}` expressions.
    #[serde(default = "empty_object")]
    pub with: Value,
    /// Steps that must finish first.
    #[serde(default)]
    pub needs: Vec<String>,
    /// CEL condition (bare or in `${{ }}`); the step is skipped when false.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// CEL expression yielding a list: the step runs once per item, with
    /// `item` and `index` bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// Retry policy; one attempt when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Deadline of each attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
    /// The compensation (rollback) step run if this step fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<CompensationSpec>,
}

/// A compensation step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompensationSpec {
    /// The step type, as in [`StepSpec::uses`].
    pub uses: String,
    /// Its input, with expressions.
    #[serde(default = "empty_object")]
    pub with: Value,
}

/// The text format of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateFormat {
    /// JSON.
    Json,
    /// YAML (1.2; JSON is valid YAML too).
    Yaml,
}

/// A template that does not parse, or does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[error("{message}")]
pub struct TemplateParseError {
    /// What is wrong (the parser's message, with its position).
    pub message: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
}

impl TemplateParseError {
    fn from_json(e: &serde_json::Error) -> Self {
        let known = e.line() > 0;
        Self {
            message: e.to_string(),
            line: known.then(|| e.line()),
            column: known.then(|| e.column()),
        }
    }

    fn from_yaml(e: &serde_yaml_ng::Error) -> Self {
        let loc = e.location();
        Self {
            message: e.to_string(),
            line: loc.as_ref().map(serde_yaml_ng::Location::line),
            column: loc.as_ref().map(serde_yaml_ng::Location::column),
        }
    }
}

impl WorkflowTemplate {
    /// Parses a JSON template.
    pub fn from_json(text: &str) -> Result<Self, TemplateParseError> {
        serde_json::from_str(text).map_err(|e| TemplateParseError::from_json(&e))
    }

    /// Parses a YAML template.
    pub fn from_yaml(text: &str) -> Result<Self, TemplateParseError> {
        serde_yaml_ng::from_str(text).map_err(|e| TemplateParseError::from_yaml(&e))
    }

    /// Parses a template in the given format.
    pub fn from_slice(bytes: &[u8], format: TemplateFormat) -> Result<Self, TemplateParseError> {
        match format {
            TemplateFormat::Json => {
                serde_json::from_slice(bytes).map_err(|e| TemplateParseError::from_json(&e))
            }
            TemplateFormat::Yaml => {
                serde_yaml_ng::from_slice(bytes).map_err(|e| TemplateParseError::from_yaml(&e))
            }
        }
    }

    /// Reads a template from an already-parsed JSON value (no positions).
    pub fn from_value(value: &Value) -> Result<Self, TemplateParseError> {
        Self::deserialize(value).map_err(|e| TemplateParseError::from_json(&e))
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|s| s.id == id)
    }
}

impl fmt::Display for TemplateFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Yaml => "yaml",
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::template::retry::{BackoffKind, RetryOn};

    const JSON: &str = r#"{
      "name": "nightly-report",
      "description": "Builds the report",
      "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
      "schedule": {"cron": "0 2 * * *", "timezone": "Europe/Paris"},
      "parallelLimit": 4,
      "timeout": "1h30m",
      "steps": [
        {"id": "a", "uses": "core/fibo@^0.1", "with": {"n": "${{ inputs.n }}"}},
        {"id": "b", "uses": "core/echo", "needs": ["a"],
         "if": "steps.a.output.value > 3", "forEach": "${{ [1, 2] }}",
         "retry": {"maxAttempts": 3, "backoff": {"kind": "fixed", "initial": 500}, "retryOn": ["transient", "timeout"]},
         "timeout": 30000,
         "onFailure": {"uses": "core/undo", "with": {"why": "b failed"}}}
      ]
    }"#;

    const YAML: &str = r#"
name: nightly-report
description: Builds the report
inputs:
  type: object
  properties:
    n: {type: integer}
schedule:
  cron: "0 2 * * *"
  timezone: Europe/Paris
parallelLimit: 4
timeout: 1h30m
steps:
  - id: a
    uses: core/fibo@^0.1
    with:
      n: ${{ inputs.n }}
  - id: b
    uses: core/echo
    needs: [a]
    if: steps.a.output.value > 3
    forEach: "${{ [1, 2] }}"
    retry:
      maxAttempts: 3
      backoff: {kind: fixed, initial: 500}
      retryOn: [transient, timeout]
    timeout: 30000
    onFailure:
      uses: core/undo
      with: {why: b failed}
"#;

    #[test]
    fn json_and_yaml_parse_to_the_same_template() {
        let j = WorkflowTemplate::from_json(JSON).unwrap();
        let y = WorkflowTemplate::from_yaml(YAML).unwrap();
        assert_eq!(j, y);
        assert_eq!(
            WorkflowTemplate::from_slice(YAML.as_bytes(), TemplateFormat::Yaml).unwrap(),
            j
        );
        assert_eq!(
            WorkflowTemplate::from_slice(JSON.as_bytes(), TemplateFormat::Json).unwrap(),
            j
        );
        let b = j.step("b").unwrap();
        assert_eq!(b.condition.as_deref(), Some("steps.a.output.value > 3"));
        assert_eq!(b.timeout.unwrap().as_millis(), 30_000);
        let retry = b.retry.as_ref().unwrap();
        assert_eq!(retry.backoff.kind, BackoffKind::Fixed);
        assert_eq!(retry.backoff.initial.as_millis(), 500);
        assert_eq!(retry.backoff.max.as_millis(), 60_000, "default kept");
        assert_eq!(retry.retry_on, [RetryOn::Transient, RetryOn::Timeout]);
        assert_eq!(
            j.step("a").unwrap().with,
            serde_json::json!({"n": "${{ inputs.n }}"})
        );
        assert_eq!(j.timeout.unwrap().as_millis(), 5_400_000);
        assert_eq!(
            j.schedule.as_ref().unwrap().time_zone().unwrap(),
            chrono_tz::Tz::Europe__Paris
        );
        assert!(j.schedule.as_ref().unwrap().parse_cron().is_ok());
    }

    #[test]
    fn it_round_trips_through_json() {
        let j = WorkflowTemplate::from_json(JSON).unwrap();
        let text = serde_json::to_string(&j).unwrap();
        assert!(text.contains("\"timeout\":\"1h30m\""), "{text}");
        assert!(text.contains("\"if\":"), "{text}");
        assert_eq!(WorkflowTemplate::from_json(&text).unwrap(), j);
        assert_eq!(
            WorkflowTemplate::from_value(&serde_json::to_value(&j).unwrap()).unwrap(),
            j
        );
    }

    #[test]
    fn defaults_fill_in() {
        let t =
            WorkflowTemplate::from_yaml("name: t\nsteps:\n  - {id: a, uses: core/noop}\n").unwrap();
        let a = &t.steps[0];
        assert_eq!(a.with, serde_json::json!({}));
        assert!(a.needs.is_empty() && a.condition.is_none() && a.retry.is_none());
        assert!(
            WorkflowTemplate::from_json(r#"{"name": "t"}"#)
                .unwrap()
                .steps
                .is_empty()
        );
    }

    #[test]
    fn unknown_fields_are_errors_with_positions() {
        let e = WorkflowTemplate::from_json("{\"name\": \"t\",\n \"step\": []}").unwrap_err();
        assert!(e.message.contains("unknown field `step`"), "{e}");
        assert_eq!(e.line, Some(2));
        let e = WorkflowTemplate::from_yaml(
            "name: t\nsteps:\n  - id: a\n    uses: x/y\n    need: [b]\n",
        )
        .unwrap_err();
        assert!(e.message.contains("unknown field `need`"), "{e}");
        assert_eq!(e.line, Some(5), "{e:?}");
        let e = WorkflowTemplate::from_json(
            r#"{"name": "t", "steps": [{"id": "a", "uses": "x/y", "retry": {"backof": {}}}]}"#,
        )
        .unwrap_err();
        assert!(e.message.contains("backof"), "{e}");
        let e = WorkflowTemplate::from_value(&serde_json::json!({"name": 3})).unwrap_err();
        assert_eq!((e.line, e.column), (None, None));
        assert!(WorkflowTemplate::from_json(r#"{"name": "t", "timeout": "soon"}"#).is_err());
    }
}
