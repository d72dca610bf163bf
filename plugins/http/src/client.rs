//! Requests with the connection's headers, retried on network errors, 5xx
//! and 429 with back-off, honouring `Retry-After`.

use crate::config::RetryConfig;
use std::collections::BTreeMap;
use std::time::Duration;
use url::Url;
use weft_plugin_sdk::http::{Request, Response};
use weft_plugin_sdk::{ErrorKind, PluginError, host};

/// Longest back-off between two attempts.
const MAX_BACKOFF_MS: u64 = 30_000;
/// Bytes of an error response quoted in the error message.
const QUOTED_BODY: usize = 300;

/// The headers and retry policy of one connection.
#[derive(Debug, Clone)]
pub struct Client {
    headers: Vec<(String, String)>,
    retry: RetryConfig,
}

/// What a client needs from a configuration.
pub struct ClientConfig<'a> {
    /// Plain headers.
    pub headers: &'a BTreeMap<String, String>,
    /// The auth header's name.
    pub auth_header: &'a str,
    /// The auth header's value.
    pub auth_token: Option<&'a str>,
    /// Timeouts and retries.
    pub retry: &'a RetryConfig,
}

/// How one attempt went.
enum Attempt {
    /// A 2xx response.
    Done(Response),
    /// Worth another attempt after this long.
    Again(PluginError, u64),
    /// Final.
    Fail(PluginError),
}

impl Client {
    /// A client sending `config`'s headers.
    pub fn new(config: ClientConfig<'_>) -> Self {
        let mut headers: Vec<(String, String)> = config
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(token) = config.auth_token.filter(|t| !t.is_empty()) {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(config.auth_header));
            headers.push((config.auth_header.to_owned(), token.to_owned()));
        }
        Self {
            headers,
            retry: config.retry.clone(),
        }
    }

    /// `GET url`, accepting only a 2xx response.
    pub fn get(&self, url: &Url) -> Result<Response, PluginError> {
        self.send("GET", url, None, &[])
    }

    /// `POST url` with a JSON body and extra headers, accepting only 2xx.
    pub fn post_json(
        &self,
        url: &Url,
        body: Vec<u8>,
        extra: &[(String, String)],
    ) -> Result<Response, PluginError> {
        self.send("POST", url, Some(body), extra)
    }

    fn send(
        &self,
        method: &str,
        url: &Url,
        body: Option<Vec<u8>>,
        extra: &[(String, String)],
    ) -> Result<Response, PluginError> {
        let mut request = Request::new(method, url.as_str())
            .timeout(Duration::from_millis(self.retry.timeout_ms));
        request.headers = self.headers.clone();
        request.headers.extend(extra.iter().cloned());
        request
            .headers
            .push(("accept".into(), "application/json".into()));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let attempts = self.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let error = match self.attempt(&request, url, attempt) {
                Attempt::Done(response) => return Ok(response),
                Attempt::Fail(e) => return Err(e),
                Attempt::Again(e, _) if attempt >= attempts => e,
                Attempt::Again(e, wait_ms) => {
                    host::debug(&format!(
                        "{method} {} failed ({}); attempt {} in {wait_ms} ms",
                        redacted(url),
                        e.message,
                        attempt + 1
                    ));
                    if !host::sleep(Duration::from_millis(wait_ms)) {
                        return Err(PluginError::transient("cancelled while waiting to retry")
                            .retryable(false));
                    }
                    attempt += 1;
                    continue;
                }
            };
            let mut e = error;
            e.message = format!("{} (after {attempts} attempts)", e.message);
            return Err(e);
        }
    }

    fn attempt(&self, request: &Request, url: &Url, attempt: u32) -> Attempt {
        let backoff = self.backoff_ms(attempt);
        let response = match request.send() {
            Ok(r) => r,
            Err(e) if e.kind == ErrorKind::Transient && e.retryable => {
                return Attempt::Again(e, backoff);
            }
            Err(e) => return Attempt::Fail(e),
        };
        if response.is_success() {
            return Attempt::Done(response);
        }
        let status = response.status;
        let what = format!("{} {} returned {status}", request.method, redacted(url));
        let quoted = quote(&response.body);
        match status {
            429 | 503 => {
                let after = retry_after_ms(&response);
                let wait = after.unwrap_or(backoff);
                if wait > self.retry.max_wait_ms {
                    return Attempt::Fail(PluginError::rate_limited(
                        format!(
                            "{what}: asked to wait {wait} ms, more than retry.maxWaitMs ({} ms)",
                            self.retry.max_wait_ms
                        ),
                        Some(wait),
                    ));
                }
                let e = if status == 429 {
                    PluginError::rate_limited(format!("{what}{quoted}"), after)
                } else {
                    PluginError::transient(format!("{what}{quoted}"))
                };
                Attempt::Again(e, wait)
            }
            401 | 403 => Attempt::Fail(
                PluginError::auth(format!(
                    "{what}: the credentials were rejected; check authToken and authHeader{quoted}"
                ))
                .with_details(serde_json::json!({"status": status})),
            ),
            408 | 425 | 500..=599 => {
                Attempt::Again(PluginError::transient(format!("{what}{quoted}")), backoff)
            }
            _ => Attempt::Fail(
                PluginError::config(format!("{what}{quoted}"))
                    .with_details(serde_json::json!({"status": status})),
            ),
        }
    }

    fn backoff_ms(&self, attempt: u32) -> u64 {
        let factor = 1u64 << attempt.saturating_sub(1).min(16);
        self.retry
            .backoff_ms
            .saturating_mul(factor)
            .min(MAX_BACKOFF_MS)
    }
}

/// The URL without its query, which may carry anything.
pub fn redacted(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// `: <start of body>` for an error message, or nothing.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let cut: String = text.chars().take(QUOTED_BODY).collect();
    let more = if cut.len() < text.len() { "…" } else { "" };
    format!(": {cut}{more}")
}

/// `Retry-After` in milliseconds (RFC 9110 §10.2.3): delay seconds, or an
/// HTTP date measured against the wall clock.
fn retry_after_ms(response: &Response) -> Option<u64> {
    let value = response.header("retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let at = http_date_secs(value)?;
    let now = wasi::clocks::wall_clock::now().seconds;
    Some(at.saturating_sub(now).saturating_mul(1000))
}

/// Seconds since the Unix epoch of an IMF-fixdate such as
/// `Wed, 21 Oct 2015 07:28:00 GMT` (the form RFC 9110 says to send).
fn http_date_secs(text: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = text.split_ascii_whitespace();
    let (_weekday, day, month, year, time, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if zone != "GMT" || parts.next().is_some() {
        return None;
    }
    let day: u64 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    let year: u64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || year < 1970 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), March-based years.
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y % 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds() {
        let r = |v: &str| Response {
            status: 429,
            headers: vec![("Retry-After".into(), v.into())],
            body: Vec::new(),
        };
        assert_eq!(retry_after_ms(&r("2")), Some(2000));
        assert_eq!(retry_after_ms(&r("-1")), None);
        assert_eq!(retry_after_ms(&r("soon")), None);
    }

    #[test]
    fn http_dates_are_read_as_epoch_seconds() {
        assert_eq!(
            http_date_secs("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480)
        );
        assert_eq!(http_date_secs("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date_secs("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
        assert_eq!(http_date_secs("Wed, 21 Oct 2015 07:28:00 PST"), None);
        assert_eq!(http_date_secs("Wed, 32 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(http_date_secs("Wed, 21 Foo 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let c = Client::new(ClientConfig {
            headers: &BTreeMap::new(),
            auth_header: "Authorization",
            auth_token: Some("Bearer s3cret"),
            retry: &RetryConfig::default(),
        });
        assert_eq!(c.backoff_ms(1), 500);
        assert_eq!(c.backoff_ms(2), 1000);
        assert_eq!(c.backoff_ms(40), MAX_BACKOFF_MS);
        assert_eq!(
            c.headers,
            [("Authorization".into(), "Bearer s3cret".into())]
        );
    }

    #[test]
    fn error_bodies_are_quoted_short_and_queries_dropped() {
        assert_eq!(quote(b"  "), "");
        assert!(quote(&[b'x'; 1000]).ends_with('…'));
        let u = Url::parse("https://h/p?token=abc").unwrap();
        assert_eq!(redacted(&u), "https://h/p");
    }
}
