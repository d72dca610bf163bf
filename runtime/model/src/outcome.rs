//! How one step invocation ended, as reported by the plugin.

use crate::error::PluginError;
use serde::{Deserialize, Serialize};

/// A request for human (or API) input that pauses a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(rename_all = "camelCase"))]
#[serde(rename_all = "camelCase")]
pub struct InputRequest {
    /// What the person is asked.
    pub prompt: String,
    /// JSON Schema the answer must satisfy.
    pub schema: serde_json::Value,
    /// Answer fields that are secret: held in memory only.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub secret_fields: Vec<String>,
}

/// The plugin's verdict on one invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "status", content = "value")]
pub enum StepOutcome {
    /// Finished with this output.
    Success(serde_json::Value),
    /// The plugin reported a failure.
    Failed(PluginError),
    /// The plugin needs input before it can finish.
    AwaitingInput(InputRequest),
}
