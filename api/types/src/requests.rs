//! What clients send: request bodies. Unknown fields are refused (a
//! misspelt `imputs` must not start a run without its inputs); the API
//! document says so with `additionalProperties: false`.

use crate::strict::{JsonObject, Maybe, Text};
use poem_openapi::Object;
use serde_json::Value;

/// Starts a run.
#[derive(Object, Debug, serde::Serialize, serde::Deserialize)]
#[oai(deny_unknown_fields)]
pub struct StartRunBody {
    /// Template id or name.
    pub template: Text,
    /// Inputs (an object, `{}` when left out), validated against the
    /// template's `inputs` schema.
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub inputs: Maybe<JsonObject>,
}

/// Answers a step's input request.
#[derive(Object, Debug, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct AnswerBody {
    /// The step waiting for input.
    pub step_id: Text,
    /// The answer, validated against the request's schema.
    pub values: Value,
}

/// Capabilities granted when enabling a plugin.
#[derive(Object, Debug, Default, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct EnablePluginRequest {
    /// Hosts the plugin may reach (`example.com`, `*.example.com`, `host:port`).
    #[oai(validator(min_length = 1, max_length = 260))]
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub outbound_hosts: Maybe<Vec<Text>>,
    /// Environment variable names passed through.
    #[oai(validator(pattern = "^[A-Za-z_][A-Za-z0-9_]{0,127}$"))]
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub env: Maybe<Vec<Text>>,
    /// Secret names the plugin may read.
    #[oai(validator(pattern = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"))]
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub secrets: Maybe<Vec<Text>>,
    /// Server directories mapped to paths the plugin requested. Left out,
    /// the plugin keeps the directories it has; `[]` removes them.
    #[serde(default, skip_serializing_if = "Maybe::is_none")]
    pub directories: Maybe<Vec<DirectoryGrantBody>>,
}

/// A server directory mapped into a plugin's sandbox.
#[derive(Object, Debug, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryGrantBody {
    /// The path the plugin requested, e.g. `/data`.
    #[oai(validator(min_length = 1, max_length = 4096))]
    pub guest_path: Text,
    /// An existing absolute directory on the server.
    #[oai(validator(min_length = 1, max_length = 4096))]
    pub host_path: Text,
    /// Whether the plugin may only read (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}
