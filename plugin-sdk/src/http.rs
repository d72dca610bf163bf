//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! The host only lets requests through to the hosts an admin granted the
//! plugin; anything else fails with a `config` [`PluginError`] whose message
//! says the request was denied. Network failures and timeouts are
//! `transient` (retryable). A response with any status, including 4xx and
//! 5xx, is an `Ok(Response)`: deciding what a status means is up to you.
//!
//! ```no_run
//! use std::time::Duration;
//! use weft_plugin_sdk::http::Request;
//!
//! # fn demo() -> Result<(), weft_plugin_sdk::PluginError> {
//! let response = Request::post("https://api.example.com/items", br#"{"name":"x"}"#.to_vec())
//!     .header("content-type", "application/json")
//!     .timeout(Duration::from_secs(10))
//!     .send()?;
//! if response.status >= 400 {
//!     return Err(weft_plugin_sdk::PluginError::transient(format!("status {}", response.status)));
//! }
//! let item: serde_json::Value = response.json()?;
//! # let _ = item;
//! # Ok(())
//! # }
//! ```
//!
//! These functions call the component's `wasi:http` imports, so they only
//! work inside a Weft host.

use std::time::Duration;

use serde::de::DeserializeOwned;
use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::poll::{Pollable, poll};
use wasi::io::streams::StreamError;

use crate::PluginError;

/// How often a blocked request wakes up to check for cancellation.
const CANCEL_CHECK_INTERVAL_NS: u64 = 100_000_000;
/// Bytes asked for per read of the response body.
const READ_CHUNK: u64 = 64 * 1024;
/// Most bytes `blocking-write-and-flush` accepts per call.
const WRITE_CHUNK: usize = 4096;

/// An HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `GET` (case-insensitive for the standard methods).
    pub method: String,
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    /// Request headers, in order; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// The request body, if any.
    pub body: Option<Vec<u8>>,
    /// Time limit for the whole exchange (connect, first byte, body). Also
    /// passed to the host as the connect, first-byte and between-bytes timeouts.
    pub timeout: Option<Duration>,
}

impl Request {
    /// A request with `method` to `url`, without headers, body or timeout.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request with `body`.
    pub fn post(url: impl Into<String>, body: Vec<u8>) -> Self {
        Self::new("POST", url).body(body)
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }

    /// Sets a JSON body and the `content-type: application/json` header.
    #[must_use]
    pub fn json(self, body: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string().into_bytes())
    }

    /// Sets the time limit for the whole exchange.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and reads the whole response; see [`send`].
    pub fn send(&self) -> Result<Response, PluginError> {
        send(self)
    }
}

/// An HTTP response with its whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Response headers, in order (values decoded as lossy UTF-8).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (invalid UTF-8 is replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body deserialized from JSON; failure is a `data` error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            PluginError::data(format!("response body is not the expected JSON: {err}"))
        })
    }
}

/// Sends a `GET` request to `url`.
pub fn get(url: &str) -> Result<Response, PluginError> {
    send(&Request::get(url))
}

/// Sends `request` and reads the whole response.
///
/// Errors: a malformed request (URL, method, header) or a host that is not
/// granted is `config`; network failures, timeouts and malformed responses
/// are `transient`; a request abandoned because the step was cancelled is a
/// non-retryable `transient` error.
pub fn send(request: &Request) -> Result<Response, PluginError> {
    let mut target = Target::parse(&request.url)?;
    target.timeout = request.timeout;
    let method = parse_method(&request.method)?;
    let deadline = request
        .timeout
        .map(|timeout| monotonic_clock::now().saturating_add(duration_ns(timeout)));

    let headers = Fields::new();
    for (name, value) in &request.headers {
        headers.append(name, value.as_bytes()).map_err(|err| {
            PluginError::config(format!("invalid request header `{name}`: {err:?}"))
        })?;
    }
    let outgoing = OutgoingRequest::new(headers);
    outgoing
        .set_method(&method)
        .map_err(|()| PluginError::config(format!("invalid HTTP method `{}`", request.method)))?;
    outgoing.set_scheme(Some(&target.scheme)).map_err(|()| {
        PluginError::config(format!("invalid URL scheme in `{}`", target.authority))
    })?;
    outgoing
        .set_authority(Some(&target.authority))
        .map_err(|()| {
            PluginError::config(format!("invalid URL authority `{}`", target.authority))
        })?;
    outgoing
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| PluginError::config("invalid URL path or query"))?;
    let outgoing_body = outgoing
        .body()
        .map_err(|()| PluginError::internal("could not open the request body"))?;

    let options = request.timeout.map(|timeout| {
        let options = RequestOptions::new();
        let ns = Some(duration_ns(timeout));
        // A host that does not support a timeout rejects it; the overall
        // deadline below still applies.
        let _ = options.set_connect_timeout(ns);
        let _ = options.set_first_byte_timeout(ns);
        let _ = options.set_between_bytes_timeout(ns);
        options
    });

    let future = outgoing_handler::handle(outgoing, options).map_err(|code| target.error(&code))?;

    let sent = send_body(outgoing_body, request.body.as_deref(), &target);
    let resolved = {
        let ready = future.subscribe();
        wait(&ready, deadline, &target)
    };
    if let Err(err) = sent {
        // When the host refused the request (e.g. a host that is not
        // granted), writing the body fails too; report the refusal.
        if resolved.is_ok()
            && let Some(Ok(Err(code))) = future.get()
        {
            return Err(target.error(&code));
        }
        return Err(err);
    }
    resolved?;
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(target.error(&code)),
        Some(Err(())) | None => {
            return Err(PluginError::internal(
                "the HTTP response future was not ready or was consumed twice",
            ));
        }
    };
    let status = response.status();
    let headers = {
        let fields = response.headers();
        fields
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect()
    };
    let incoming = response
        .consume()
        .map_err(|()| PluginError::internal("could not read the response body"))?;
    let body = read_body(&incoming, deadline, &target)?;
    drop(IncomingBody::finish(incoming));
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Writes `body` (if any) to the request body and finishes it.
fn send_body(
    outgoing_body: OutgoingBody,
    body: Option<&[u8]>,
    target: &Target,
) -> Result<(), PluginError> {
    if let Some(body) = body {
        let stream = outgoing_body
            .write()
            .map_err(|()| PluginError::internal("could not write the request body"))?;
        for chunk in body.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|err| target.stream_error(err, "writing the request body"))?;
        }
        // The stream must be dropped before the body is finished.
        drop(stream);
    }
    OutgoingBody::finish(outgoing_body, None).map_err(|code| target.error(&code))
}

fn read_body(
    incoming: &IncomingBody,
    deadline: Option<u64>,
    target: &Target,
) -> Result<Vec<u8>, PluginError> {
    let stream = incoming
        .stream()
        .map_err(|()| PluginError::internal("could not open the response body"))?;
    let mut body = Vec::new();
    loop {
        match stream.read(READ_CHUNK) {
            Ok(chunk) if chunk.is_empty() => {
                let ready = stream.subscribe();
                wait(&ready, deadline, target)?;
            }
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(body),
            Err(err) => return Err(target.stream_error(err, "reading the response body")),
        }
    }
}

/// Blocks until `pollable` is ready, the deadline passes (a `transient`
/// timeout error) or the step is cancelled.
fn wait(pollable: &Pollable, deadline: Option<u64>, target: &Target) -> Result<(), PluginError> {
    loop {
        if pollable.ready() {
            return Ok(());
        }
        let now = monotonic_clock::now();
        let slice = match deadline {
            Some(deadline) if now >= deadline => {
                let after = target
                    .timeout
                    .map(|t| format!(" after {} ms", t.as_millis()))
                    .unwrap_or_default();
                return Err(PluginError::transient(format!(
                    "HTTP request to `{}` timed out{after}",
                    target.authority
                ))
                .with_details(serde_json::json!({ "host": target.host })));
            }
            Some(deadline) => (deadline - now).min(CANCEL_CHECK_INTERVAL_NS),
            None => CANCEL_CHECK_INTERVAL_NS,
        };
        let timer = monotonic_clock::subscribe_duration(slice);
        poll(&[pollable, &timer]);
        if crate::host::cancelled() {
            return Err(PluginError::transient(format!(
                "HTTP request to `{}` abandoned: the step was cancelled",
                target.authority
            ))
            .retryable(false));
        }
    }
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn parse_method(method: &str) -> Result<Method, PluginError> {
    let upper = method.trim().to_ascii_uppercase();
    Ok(match upper.as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        _ if is_token(method) => Method::Other(method.to_string()),
        _ => {
            return Err(PluginError::config(format!(
                "invalid HTTP method `{method}`"
            )));
        }
    })
}

/// An RFC 9110 token: what a method name may consist of.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The parts of a URL that `wasi:http` needs.
#[derive(Debug)]
struct Target {
    scheme: Scheme,
    /// `host[:port]`.
    authority: String,
    /// The host without the port.
    host: String,
    /// `/path?query`, without the fragment.
    path_with_query: String,
    /// The request's overall time limit, for error messages.
    timeout: Option<Duration>,
}

impl Target {
    fn parse(url: &str) -> Result<Target, PluginError> {
        let url = url.trim();
        let invalid = |why: &str| PluginError::config(format!("invalid URL `{url}`: {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected an absolute http:// or https:// URL"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(invalid("only http and https are supported")),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() {
            return Err(invalid("missing host"));
        }
        if authority.contains('@') {
            return Err(invalid(
                "credentials in URLs are not supported; send an Authorization header",
            ));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("contains whitespace"));
        }
        let host = if authority.starts_with('[') {
            match authority.find(']') {
                Some(close) => &authority[..=close],
                None => return Err(invalid("unterminated IPv6 address")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
                _ => authority,
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(invalid("missing host"));
        }
        let path_with_query = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(Target {
            scheme,
            authority: authority.to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            path_with_query,
            timeout: None,
        })
    }

    /// Maps a `wasi:http` error code to a [`PluginError`].
    fn error(&self, code: &ErrorCode) -> PluginError {
        let authority = &self.authority;
        let debug = format!("{code:?}");
        let name = debug.trim_start_matches("ErrorCode::");
        let err = match code {
            ErrorCode::HttpRequestDenied => PluginError::config(format!(
                "HTTP request to `{authority}` was denied: host `{}` is not in the plugin's granted outbound hosts",
                self.host
            )),
            ErrorCode::DestinationIpProhibited => PluginError::config(format!(
                "HTTP request to `{authority}` was denied: the destination address of `{}` is prohibited",
                self.host
            )),
            ErrorCode::HttpRequestUriInvalid
            | ErrorCode::HttpRequestUriTooLong
            | ErrorCode::HttpRequestMethodInvalid
            | ErrorCode::HttpRequestLengthRequired
            | ErrorCode::HttpRequestBodySize(_)
            | ErrorCode::HttpRequestHeaderSectionSize(_)
            | ErrorCode::HttpRequestHeaderSize(_)
            | ErrorCode::HttpRequestTrailerSectionSize(_)
            | ErrorCode::HttpRequestTrailerSize(_)
            | ErrorCode::LoopDetected
            | ErrorCode::ConfigurationError => {
                PluginError::config(format!("HTTP request to `{authority}` is invalid: {name}"))
            }
            ErrorCode::TlsCertificateError => PluginError::config(format!(
                "HTTP request to `{authority}` failed: the server's TLS certificate was rejected"
            )),
            ErrorCode::HttpResponseHeaderSectionSize(_)
            | ErrorCode::HttpResponseHeaderSize(_)
            | ErrorCode::HttpResponseBodySize(_)
            | ErrorCode::HttpResponseTrailerSectionSize(_)
            | ErrorCode::HttpResponseTrailerSize(_)
            | ErrorCode::HttpResponseTransferCoding(_)
            | ErrorCode::HttpResponseContentCoding(_) => PluginError::data(format!(
                "HTTP response from `{authority}` could not be read: {name}"
            )),
            ErrorCode::DnsTimeout
            | ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout => {
                PluginError::transient(format!("HTTP request to `{authority}` timed out: {name}"))
            }
            _ => PluginError::transient(format!("HTTP request to `{authority}` failed: {name}")),
        };
        err.with_details(serde_json::json!({
            "host": self.host,
            "errorCode": name,
        }))
    }

    /// Maps a stream failure while `doing` something to a [`PluginError`].
    fn stream_error(&self, err: StreamError, doing: &str) -> PluginError {
        match err {
            StreamError::Closed => PluginError::transient(format!(
                "HTTP connection to `{}` closed while {doing}",
                self.authority
            )),
            StreamError::LastOperationFailed(io) => match wasi::http::types::http_error_code(&io) {
                Some(code) => self.error(&code),
                None => PluginError::transient(format!(
                    "HTTP request to `{}` failed while {doing}: {}",
                    self.authority,
                    io.to_debug_string()
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<(String, String, String, bool), PluginError> {
        Target::parse(url).map(|t| {
            (
                t.authority,
                t.host,
                t.path_with_query,
                matches!(t.scheme, Scheme::Https),
            )
        })
    }

    fn s(text: &str) -> String {
        text.to_string()
    }

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse("https://Example.com/a/b?x=1#frag"),
            Ok((s("example.com"), s("example.com"), s("/a/b?x=1"), true))
        );
        assert_eq!(
            parse("http://127.0.0.1:9000"),
            Ok((s("127.0.0.1:9000"), s("127.0.0.1"), s("/"), false))
        );
        assert_eq!(
            parse("http://host?q=1"),
            Ok((s("host"), s("host"), s("/?q=1"), false))
        );
        assert_eq!(
            parse("http://[::1]:8080/x"),
            Ok((s("[::1]:8080"), s("[::1]"), s("/x"), false))
        );
    }

    #[test]
    fn rejects_bad_urls_as_config_errors() {
        for url in [
            "example.com/x",
            "ftp://example.com/",
            "http:///path",
            "http://user:pw@example.com/",
            "http://exa mple.com/",
            "http://[::1/",
            "",
        ] {
            match parse(url) {
                Err(err) => assert_eq!(err.kind, crate::ErrorKind::Config, "{url}"),
                Ok(parsed) => panic!("{url} parsed as {parsed:?}"),
            }
        }
    }

    #[test]
    fn maps_error_codes() {
        let target = Target::parse("https://api.example.com:8443/v1").unwrap();
        let denied = target.error(&ErrorCode::HttpRequestDenied);
        assert_eq!(denied.kind, crate::ErrorKind::Config);
        assert!(!denied.retryable);
        assert!(denied.message.contains("denied"), "{}", denied.message);
        assert!(
            denied.message.contains("api.example.com"),
            "{}",
            denied.message
        );

        let refused = target.error(&ErrorCode::ConnectionRefused);
        assert_eq!(refused.kind, crate::ErrorKind::Transient);
        assert!(refused.retryable);
        assert_eq!(
            target.error(&ErrorCode::HttpResponseTimeout).kind,
            crate::ErrorKind::Transient
        );
        assert_eq!(
            target.error(&ErrorCode::HttpRequestUriInvalid).kind,
            crate::ErrorKind::Config
        );
    }

    #[test]
    fn parses_methods() {
        assert!(matches!(parse_method("get"), Ok(Method::Get)));
        assert!(matches!(parse_method("PATCH"), Ok(Method::Patch)));
        assert!(matches!(parse_method("PROPFIND"), Ok(Method::Other(m)) if m == "PROPFIND"));
        assert!(parse_method("BAD METHOD").is_err());
        assert!(parse_method("").is_err());
    }
}
