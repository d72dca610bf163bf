//! The catalog of installed step types, and the problems validation reports.

use crate::ids::PluginDigest;
use crate::manifest::StepTypeRef;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Looks up installed step types. Implemented by the engine over its
/// plugin registry.
pub trait StepTypeCatalog {
    /// Resolves `plugin/step-type@req` to the highest enabled plugin
    /// version satisfying `req`.
    fn resolve(&self, r: &StepTypeRef) -> Result<ResolvedStepType, CatalogMiss>;
}

/// A step type pinned to one plugin build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedStepType {
    /// Plugin name.
    pub plugin: String,
    /// Plugin version chosen.
    pub version: semver::Version,
    /// Digest of that build.
    pub digest: PluginDigest,
    /// Step type name within the plugin.
    pub step_type: String,
    /// Input JSON Schema.
    pub input_schema: Value,
    /// Output JSON Schema.
    pub output_schema: Value,
}

/// Why a step type could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogMiss {
    /// No plugin of that name is installed.
    UnknownPlugin,
    /// The plugin has no step type of that name.
    UnknownStepType {
        /// The step types it has.
        available: Vec<String>,
    },
    /// Every matching version is disabled.
    Disabled,
    /// No installed version satisfies the requirement.
    NoMatchingVersion {
        /// The versions installed.
        available: Vec<semver::Version>,
    },
}

/// What is wrong with a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateProblemCode {
    /// The text does not parse or does not fit the template schema.
    InvalidTemplate,
    /// The template name breaks the naming rule.
    InvalidName,
    /// A step id is not 1-64 characters of `[A-Za-z0-9_-]`.
    InvalidStepId,
    /// Two steps share an id.
    DuplicateStepId,
    /// `uses` names a plugin or step type that is not installed.
    UnknownStepType,
    /// Every matching plugin version is disabled.
    StepTypeDisabled,
    /// No installed version satisfies the `@` requirement.
    UnsatisfiableVersion,
    /// `uses` is not `plugin/step-type[@requirement]`.
    InvalidUses,
    /// `needs` names a step that does not exist.
    UnknownNeeds,
    /// Steps need each other.
    Cycle,
    /// An expression reads a step that is not upstream.
    NotUpstream,
    /// An expression does not compile, or reads an unknown variable.
    ExpressionSyntax,
    /// Input does not match the step type's input schema (or run inputs
    /// do not match the template's `inputs` schema).
    InputSchemaMismatch,
    /// The template's `inputs` is not a valid JSON Schema.
    InvalidInputsSchema,
    /// The schedule's cron pattern does not parse.
    InvalidCron,
    /// The schedule's time zone is unknown.
    InvalidTimezone,
    /// A retry policy is impossible.
    InvalidRetry,
    /// The template has no steps.
    NoSteps,
    /// The template is larger than the server's limits allow (steps,
    /// `needs`, attempts, nesting or size of a value).
    LimitExceeded,
}

/// One problem, located by a JSON pointer into the template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateProblem {
    /// JSON pointer, e.g. `/steps/2/with/n`.
    pub pointer: String,
    /// Machine-readable code.
    pub code: TemplateProblemCode,
    /// Human-readable explanation.
    pub message: String,
}

impl fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{p}: {}", self.message)
    }
}

impl From<super::spec::TemplateParseError> for TemplateProblem {
    fn from(e: super::spec::TemplateParseError) -> Self {
        Self {
            pointer: String::new(),
            code: TemplateProblemCode::InvalidTemplate,
            message: e.message,
        }
    }
}
