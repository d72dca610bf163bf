//! The HTTP client for the `/api/v1` REST API: bearer auth, the response
//! envelope, and errors a person can act on (an unreachable server, a
//! rejected token, the server's error code, message and per-field problems).

use anyhow::{Context, Result};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;
use std::time::Duration;
use weft_api_types::{ErrorBody, Meta, ValidationError};

/// How long an ordinary request may take; streams have no overall limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An error response from the server, decoded from its envelope.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The envelope's `error.code`, e.g. `NOT_FOUND`.
    pub code: String,
    /// The envelope's `error.message`.
    pub message: String,
    /// The envelope's `error.validationErrors`.
    pub problems: Vec<ValidationError>,
    /// `meta.requestId`, to find the request in the server log.
    pub request_id: Option<String>,
    /// What the user can do about it, when we know.
    pub hint: Option<String>,
    /// The envelope's `error` object as sent, for `--json`.
    pub raw: Value,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The server could not be reached at all.
#[derive(Debug)]
pub struct Unreachable {
    /// The server URL we tried.
    pub server: String,
    /// The innermost cause (e.g. `Connection refused (os error 111)`).
    pub cause: String,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot reach the Weft server at {}: {}\nhint: is `weft serve` running there? Choose the server with --server or WEFT_SERVER.",
            self.server, self.cause
        )
    }
}

impl std::error::Error for Unreachable {}

/// A successful response: the whole envelope and the headers.
#[derive(Debug)]
pub struct Reply {
    /// Response headers (`ETag`, `Location`…).
    pub headers: HeaderMap,
    /// The decoded envelope (`success`, `data`, `meta`).
    pub envelope: Value,
}

/// Decodes a response's `data` as the REST type the server serialised it
/// from; a server of another version may send what this CLI cannot read.
pub fn decode<T: DeserializeOwned>(data: &Value) -> Result<T> {
    T::deserialize(data).with_context(|| {
        let ty = std::any::type_name::<T>();
        let ty = ty.rsplit("::").next().unwrap_or(ty);
        format!("the server sent a {ty} this weft CLI cannot read (is it another Weft version?)")
    })
}

/// The part of an envelope every response has.
#[derive(Deserialize)]
struct EnvelopeMeta {
    meta: Meta,
}

impl Reply {
    /// The envelope's `meta` (request id, time, pagination), when it has one.
    pub fn meta(&self) -> Option<Meta> {
        EnvelopeMeta::deserialize(&self.envelope)
            .ok()
            .map(|e| e.meta)
    }

    /// The envelope's `data`.
    pub fn data(self) -> Value {
        match self.envelope {
            Value::Object(mut m) => m.remove("data").unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client for one Weft server. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    server: String,
    api: Url,
    token: Option<String>,
}

impl Client {
    /// A client for `server` (e.g. `http://127.0.0.1:8080`; a trailing
    /// `/api/v1` and a missing `http://` are tolerated).
    pub fn new(server: &str, token: Option<String>) -> Result<Self> {
        let mut server = server.trim().trim_end_matches('/').to_owned();
        if let Some(s) = server.strip_suffix("/api/v1") {
            server = s.to_owned();
        }
        if !server.contains("://") {
            server = format!("http://{server}");
        }
        let api = Url::parse(&format!("{server}/api/v1/"))
            .with_context(|| format!("--server {server:?} is not a valid URL"))?;
        if !matches!(api.scheme(), "http" | "https") {
            anyhow::bail!("--server {server:?} must be an http:// or https:// URL");
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("weft-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self {
            http,
            server,
            api,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    /// The server URL, as normalised.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `/api/v1/<segments…>`, each segment percent-encoded (names and ids
    /// come from users and are not URL-safe in general).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.api.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A request to `url` with the bearer token.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let req = self.http.request(method, url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends a request and decodes the envelope, or the error envelope into
    /// an [`ApiError`].
    pub async fn send(&self, req: RequestBuilder) -> Result<Reply> {
        self.send_within(req, REQUEST_TIMEOUT).await
    }

    /// [`Client::send`] with a longer (or shorter) time limit.
    pub async fn send_within(&self, req: RequestBuilder, limit: Duration) -> Result<Reply> {
        let resp = req
            .timeout(limit)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(self.api_error(status, &body).into());
        }
        let envelope = serde_json::from_slice(&body).with_context(|| {
            format!(
                "{} answered {status} with a body that is not JSON; is it a Weft server?",
                self.server
            )
        })?;
        Ok(Reply { headers, envelope })
    }

    /// [`Client::url`] with a query string.
    pub fn url_with_query(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.url(segments);
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        url
    }

    /// `GET` and return `data`.
    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Value> {
        let url = self.url_with_query(segments, query);
        Ok(self.send(self.request(Method::GET, url)).await?.data())
    }

    /// `GET` a paginated list and return every item, following
    /// `meta.pagination` a page of a hundred at a time (a server without
    /// pagination answers in one go).
    pub async fn get_all(&self, segments: &[&str]) -> Result<Vec<Value>> {
        // A list that keeps growing while it is read must still end.
        const MAX_PAGES: u64 = 10_000;
        let mut items = Vec::new();
        let mut page: u64 = 1;
        loop {
            let query = [("page", page.to_string()), ("pageSize", "100".to_owned())];
            let url = self.url_with_query(segments, &query);
            let reply = self.send(self.request(Method::GET, url)).await?;
            let pages = reply
                .meta()
                .and_then(|m| m.pagination)
                .map(|p| p.total_pages);
            if let Value::Array(data) = reply.data() {
                items.extend(data);
            }
            match pages {
                Some(n) if page < n && page < MAX_PAGES => page += 1,
                _ => return Ok(items),
            }
        }
    }

    /// `POST` a JSON body (or none) and return `data`.
    pub async fn post(&self, segments: &[&str], body: Option<&Value>) -> Result<Value> {
        let req = self.request(Method::POST, self.url(segments));
        Ok(self
            .send(with_json(req, body.unwrap_or(&Value::Null))?)
            .await?
            .data())
    }

    /// Opens a `text/event-stream` response, resuming after `last_event_id`.
    pub async fn stream(&self, url: Url, last_event_id: Option<u64>) -> Result<reqwest::Response> {
        let mut req = self
            .request(Method::GET, url)
            .header(ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.map_err(|e| self.transport(e))?;
            return Err(self.api_error(status, &body).into());
        }
        Ok(resp)
    }

    /// A transport failure as a readable error (no `reqwest::Error` dump).
    fn transport(&self, e: reqwest::Error) -> anyhow::Error {
        let cause = innermost(&e);
        if e.is_connect() {
            Unreachable {
                server: self.server.clone(),
                cause,
            }
            .into()
        } else if e.is_timeout() {
            anyhow::anyhow!("the Weft server at {} did not answer in time", self.server)
        } else {
            anyhow::anyhow!(
                "talking to the Weft server at {} failed: {cause}",
                self.server
            )
        }
    }

    fn api_error(&self, status: StatusCode, body: &[u8]) -> ApiError {
        let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
        let request_id = parsed.as_ref().map(|b| b.meta.request_id.clone());
        let (code, message, problems, raw) = match parsed.map(|b| b.error) {
            Some(e) => (
                e.code.clone(),
                e.message.clone(),
                e.validation_errors.clone(),
                serde_json::to_value(&e).unwrap_or_default(),
            ),
            None => {
                // Not our envelope (a proxy, another service): show what came back.
                let text = String::from_utf8_lossy(body);
                let snippet: String = text.trim().chars().take(200).collect();
                let message = if snippet.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_owned()
                } else {
                    snippet
                };
                let code = status
                    .canonical_reason()
                    .unwrap_or("ERROR")
                    .to_ascii_uppercase()
                    .replace(' ', "_");
                let raw = serde_json::json!({"code": code, "message": message});
                (code, message, Vec::new(), raw)
            }
        };
        let hint = match status {
            StatusCode::UNAUTHORIZED if self.token.is_none() => Some(
                "no token given: pass --token or set WEFT_TOKEN (the admin token `weft serve` printed on its first start, or WEFT_ADMIN_TOKEN)".to_owned(),
            ),
            StatusCode::UNAUTHORIZED => {
                Some("the server rejected the token given with --token / WEFT_TOKEN".to_owned())
            }
            _ => None,
        };
        ApiError {
            status: status.as_u16(),
            code,
            message,
            problems,
            request_id,
            hint,
            raw,
        }
    }
}

/// Attaches a JSON body.
pub fn with_json(req: RequestBuilder, body: &Value) -> Result<RequestBuilder> {
    Ok(req
        .header(CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body)?))
}

/// The innermost source of an error chain: for connection failures that
/// is the OS message, which is what a person needs.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The [`ApiError`] in an error chain, if the server sent one.
pub fn api_error(e: &anyhow::Error) -> Option<&ApiError> {
    e.chain().find_map(|c| c.downcast_ref::<ApiError>())
}

#[cfg(test)]
mod tests {
    use super::Client;

    #[test]
    fn normalises_the_server_url_and_encodes_segments() {
        let c = Client::new("127.0.0.1:9/api/v1/", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.server(), "http://127.0.0.1:9");
        assert_eq!(
            c.url(&["workflow-runs", "r1", "steps", "fib[0]", "logs"])
                .as_str(),
            "http://127.0.0.1:9/api/v1/workflow-runs/r1/steps/fib[0]/logs"
        );
        // A name with `/` or `?` stays one path segment.
        assert_eq!(
            c.url(&["workflow-templates", "a/b?c"]).as_str(),
            "http://127.0.0.1:9/api/v1/workflow-templates/a%2Fb%3Fc"
        );
        assert!(Client::new("ftp://x", None).is_err());
    }
}
