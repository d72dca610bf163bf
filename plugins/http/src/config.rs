//! The connections' configurations, as JSON Schema (via schemars) and Rust.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use weft_plugin_sdk::PluginError;

/// An API to read from.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceConfig {
    /// `http://` or `https://` origin (and optional base path) the stream
    /// paths are relative to. Its host must be granted to the plugin.
    pub base_url: String,
    /// Headers sent with every request (not secret; put credentials in
    /// `authToken`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The header that carries `authToken`.
    #[serde(default = "default_auth_header")]
    pub auth_header: String,
    /// The value of `authHeader`, e.g. `Bearer abc123`. Encrypted at rest,
    /// never returned, sent only to `baseUrl`'s origin.
    #[serde(default)]
    #[schemars(extend("writeOnly" = true))]
    pub auth_token: Option<String>,
    /// The streams: one endpoint each.
    #[schemars(length(min = 1))]
    pub streams: Vec<StreamConfig>,
    /// Timeouts, retries and back-off.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// One endpoint read as a stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamConfig {
    /// The stream's name.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// The path (and query) under `baseUrl`, e.g. `/v1/orders?status=all`.
    pub path: String,
    /// Query parameters added to every request of the stream.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// JSON pointer (RFC 6901) to the array of records in a response body;
    /// empty when the body is the array.
    #[serde(default)]
    pub records_pointer: String,
    /// How the endpoint pages.
    #[serde(default)]
    pub pagination: Pagination,
    /// The records' primary key, if any (fields of a record).
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// The field incremental reads resume from (an increasing number or an
    /// ISO-8601 timestamp); a job may pick another.
    #[serde(default)]
    pub cursor_field: Option<String>,
    /// Query parameter that sends the saved cursor on incremental reads so
    /// the API filters; without it the connector filters what it reads.
    #[serde(default)]
    pub cursor_param: Option<String>,
    /// The records' JSON Schema; inferred from the first page when absent.
    #[serde(default)]
    pub schema: Option<Value>,
}

/// How an endpoint pages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Pagination {
    /// One response holds every record.
    #[default]
    None,
    /// `?limit=N&offset=K`; the last page is shorter than `pageSize`.
    Offset(OffsetPagination),
    /// `?page=P` (and optionally a page size); the last page is short or empty.
    Page(PagePagination),
    /// A cursor at a JSON pointer of the body, sent back as a query parameter;
    /// the last page has none.
    Cursor(CursorPagination),
    /// The next page's URL at a JSON pointer of the body.
    NextUrl(NextUrlPagination),
    /// The `Link: <…>; rel="next"` response header (RFC 8288).
    Link,
}

/// Offset pagination.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OffsetPagination {
    /// The page-size parameter.
    #[serde(default = "default_limit_param")]
    pub limit_param: String,
    /// The offset parameter.
    #[serde(default = "default_offset_param")]
    pub offset_param: String,
    /// Records asked for per page.
    #[serde(default = "default_page_size")]
    #[schemars(range(min = 1, max = 100000))]
    pub page_size: u32,
}

/// Page-number pagination.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PagePagination {
    /// The page-number parameter.
    #[serde(default = "default_page_param")]
    pub page_param: String,
    /// The number of the first page.
    #[serde(default = "default_first_page")]
    pub first_page: u64,
    /// The page-size parameter, if the API takes one.
    #[serde(default)]
    pub size_param: Option<String>,
    /// Records per page: a shorter page is the last. Without it, an empty page is.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100000))]
    pub page_size: Option<u32>,
}

/// Cursor pagination.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CursorPagination {
    /// JSON pointer to the next cursor in the body, e.g. `/meta/next_cursor`.
    pub cursor_pointer: String,
    /// The parameter the cursor is sent back in.
    #[serde(default = "default_cursor_param")]
    pub cursor_param: String,
}

/// Next-URL pagination.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NextUrlPagination {
    /// JSON pointer to the next page's URL (absolute or relative), e.g. `/next`.
    pub next_pointer: String,
}

/// Timeouts, retries and back-off of every request.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryConfig {
    /// Time limit of one request, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    #[schemars(range(min = 100, max = 600000))]
    pub timeout_ms: u64,
    /// Attempts per request, the first included, for network errors, 5xx
    /// and 429 responses.
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1, max = 20))]
    pub max_attempts: u32,
    /// First back-off, in milliseconds; doubled per attempt, at most 30 s.
    #[serde(default = "default_backoff_ms")]
    #[schemars(range(max = 60000))]
    pub backoff_ms: u64,
    /// Longest `Retry-After` waited in place, in milliseconds; a longer one
    /// fails the sync as `rate-limited`, with the delay, for the run's retry policy.
    #[serde(default = "default_max_wait_ms")]
    #[schemars(range(max = 3600000))]
    pub max_wait_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            timeout_ms: default_timeout_ms(),
            max_attempts: default_attempts(),
            backoff_ms: default_backoff_ms(),
            max_wait_ms: default_max_wait_ms(),
        }
    }
}

/// A webhook to post batches to.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookConfig {
    /// The `http://` or `https://` URL batches are posted to. Its host must
    /// be granted to the plugin.
    pub url: String,
    /// Headers sent with every request (not secret).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The header that carries `authToken`.
    #[serde(default = "default_auth_header")]
    pub auth_header: String,
    /// The value of `authHeader`. Encrypted at rest, never returned.
    #[serde(default)]
    #[schemars(extend("writeOnly" = true))]
    pub auth_token: Option<String>,
    /// Most records per request.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 100000))]
    pub batch_size: u32,
    /// The body of each request.
    #[serde(default)]
    pub body: BodyShape,
    /// Timeouts, retries and back-off of every request.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// The body of a webhook request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BodyShape {
    /// `{"stream", "namespace", "syncId", "sequence", "records": [...]}`.
    #[default]
    Envelope,
    /// The records as a JSON array.
    Array,
}

fn default_auth_header() -> String {
    "Authorization".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_page_param() -> String {
    "page".into()
}
fn default_cursor_param() -> String {
    "cursor".into()
}
fn default_page_size() -> u32 {
    100
}
fn default_first_page() -> u64 {
    1
}
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_attempts() -> u32 {
    5
}
fn default_backoff_ms() -> u64 {
    500
}
fn default_max_wait_ms() -> u64 {
    60_000
}
fn default_batch_size() -> u32 {
    500
}

/// Checks what the schema cannot say: names, pointers and schemas.
pub fn check_source(config: &SourceConfig) -> Result<(), PluginError> {
    crate::url::Origin::parse(&config.base_url)?;
    check_header_name(&config.auth_header)?;
    for name in config.headers.keys() {
        check_header_name(name)?;
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, stream) in config.streams.iter().enumerate() {
        if !seen.insert(stream.name.as_str()) {
            return Err(PluginError::config(format!(
                "streams/{i}: the stream name `{}` is used twice",
                stream.name
            )));
        }
        check_pointer(&stream.records_pointer, "recordsPointer")?;
        match &stream.pagination {
            Pagination::Cursor(c) => check_pointer(&c.cursor_pointer, "cursorPointer")?,
            Pagination::NextUrl(n) => check_pointer(&n.next_pointer, "nextPointer")?,
            _ => {}
        }
        if let Some(schema) = &stream.schema
            && schema
                .get("properties")
                .and_then(Value::as_object)
                .is_none()
        {
            return Err(PluginError::config(format!(
                "streams/{i}/schema must be a JSON Schema object with `properties`"
            )));
        }
    }
    Ok(())
}

/// Checks what the schema cannot say about a webhook.
pub fn check_webhook(config: &WebhookConfig) -> Result<(), PluginError> {
    crate::url::Origin::parse(&config.url)?;
    check_header_name(&config.auth_header)?;
    config.headers.keys().try_for_each(|n| check_header_name(n))
}

fn check_pointer(pointer: &str, field: &str) -> Result<(), PluginError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(PluginError::config(format!(
            "{field} `{pointer}` is not a JSON pointer: it must be empty or start with `/`"
        )))
    }
}

fn check_header_name(name: &str) -> Result<(), PluginError> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        Ok(())
    } else {
        Err(PluginError::config(format!(
            "`{name}` is not a valid HTTP header name"
        )))
    }
}
