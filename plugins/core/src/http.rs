//! `http`: sends one HTTP request through the host's `wasi:http`.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_plugin_sdk::http::{Request, Response};
use weft_plugin_sdk::prelude::*;

/// Sends one HTTP request. Any status, including 4xx and 5xx, is a
/// successful output: the template decides what it means.
#[derive(Debug, Default, Clone, Copy)]
pub struct Http;

/// Input of `http`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpInput {
    /// The HTTP method (default `GET`).
    #[serde(default = "default_method")]
    pub method: String,
    /// An absolute `http://` or `https://` URL; its host must be granted to the plugin.
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request body as text.
    #[serde(default)]
    pub body: Option<String>,
    /// Time limit for the whole request, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn default_method() -> String {
    "GET".to_string()
}

/// Output of `http`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpOutput {
    /// The response status code.
    pub status: u16,
    /// Response headers (lower-case names; repeated headers joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// The response body as text (invalid UTF-8 is replaced).
    pub body: String,
}

impl Step for Http {
    const NAME: &'static str = "http";
    const DESCRIPTION: &'static str = "Sends an HTTP request to a granted host and outputs the status, headers and body; 4xx/5xx statuses are outputs too.";
    type Input = HttpInput;
    type Output = HttpOutput;

    fn run(
        &self,
        _ctx: &StepContext,
        input: HttpInput,
    ) -> Result<Outcome<HttpOutput>, PluginError> {
        let response = build_request(input).send()?;
        Ok(Outcome::Done(to_output(response)))
    }
}

fn build_request(input: HttpInput) -> Request {
    let mut request = Request::new(input.method, input.url);
    request.headers = input.headers.into_iter().collect();
    request.body = input.body.map(String::into_bytes);
    request.timeout = input.timeout_ms.map(Duration::from_millis);
    request
}

fn to_output(response: Response) -> HttpOutput {
    let body = response.text();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in response.headers {
        headers
            .entry(name.to_ascii_lowercase())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    HttpOutput {
        status: response.status,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn input_defaults() {
        let input: HttpInput =
            serde_json::from_value(json!({ "url": "https://example.com" })).unwrap();
        let request = build_request(input);
        assert_eq!(request.method, "GET");
        assert!(request.headers.is_empty());
        assert_eq!(request.body, None);
        assert_eq!(request.timeout, None);

        let input: HttpInput = serde_json::from_value(json!({
            "method": "POST",
            "url": "https://example.com",
            "headers": { "x-a": "1" },
            "body": "hi",
            "timeoutMs": 1500
        }))
        .unwrap();
        let request = build_request(input);
        assert_eq!(request.headers, vec![("x-a".to_string(), "1".to_string())]);
        assert_eq!(request.body.as_deref(), Some(&b"hi"[..]));
        assert_eq!(request.timeout, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn output_joins_repeated_headers() {
        let output = to_output(Response {
            status: 404,
            headers: vec![
                ("Set-Cookie".into(), "a=1".into()),
                ("set-cookie".into(), "b=2".into()),
                ("content-type".into(), "text/plain".into()),
            ],
            body: b"not found \xff".to_vec(),
        });
        assert_eq!(output.status, 404);
        assert_eq!(output.headers["set-cookie"], "a=1, b=2");
        assert_eq!(output.headers["content-type"], "text/plain");
        assert_eq!(output.body, "not found \u{fffd}");
    }
}
