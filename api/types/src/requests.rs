//! What clients send: request bodies.

use poem_openapi::Object;
use serde_json::Value;

/// Starts a run.
#[derive(Object, Debug, serde::Serialize, serde::Deserialize)]
pub struct StartRunBody {
    /// Template id or name.
    pub template: String,
    /// Inputs, validated against the template's `inputs` schema.
    #[oai(default)]
    #[serde(default)]
    pub inputs: Option<Value>,
}

/// Answers a step's input request.
#[derive(Object, Debug, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct AnswerBody {
    /// The step waiting for input.
    pub step_id: String,
    /// The answer, validated against the request's schema.
    pub values: Value,
}

/// Capabilities granted when enabling a plugin.
#[derive(Object, Debug, Default, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct EnablePluginRequest {
    /// Hosts the plugin may reach (`example.com`, `*.example.com`, `host:port`).
    #[oai(default)]
    #[serde(default)]
    pub outbound_hosts: Vec<String>,
    /// Environment variable names passed through.
    #[oai(default)]
    #[serde(default)]
    pub env: Vec<String>,
    /// Secret names the plugin may read.
    #[oai(default)]
    #[serde(default)]
    pub secrets: Vec<String>,
}
