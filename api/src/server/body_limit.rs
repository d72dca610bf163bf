//! Request body limits per route, enforced on the bytes as they arrive so
//! a body sent chunked (no `Content-Length`) is cut off just like a
//! declared one. An over-limit request gets 413 `PAYLOAD_TOO_LARGE` in the
//! error envelope.
//!
//! The rest of an over-limit body is read and discarded (up to
//! [`DRAIN_MAX`]) before answering: a server that answers and closes with
//! unread bytes in its socket makes the kernel send a reset, and the
//! client then often never sees the 413. Draining keeps the connection
//! usable for the next request, too.

use futures::StreamExt;
use poem::http::Method;
use poem::{Body, Request};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Default limit of a plugin upload (`POST /plugins`).
pub const DEFAULT_PLUGIN_BYTES: usize = 64 << 20;
/// Default limit of a template body (create, update, validate).
pub const DEFAULT_TEMPLATE_BYTES: usize = 1 << 20;
/// Default limit of every other body (run creation, answers, grants…).
pub const DEFAULT_REQUEST_BYTES: usize = 1 << 20;

/// Over-limit bytes read and thrown away so the client can read its 413
/// on a live connection; past this the connection is closed instead.
pub const DRAIN_MAX: usize = 16 << 20;

/// The body limit of each kind of route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// `POST /plugins` (the component's bytes).
    pub plugin: usize,
    /// `POST`/`PUT` of workflow templates, and template validation.
    pub template: usize,
    /// Every other route.
    pub request: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            plugin: DEFAULT_PLUGIN_BYTES,
            template: DEFAULT_TEMPLATE_BYTES,
            request: DEFAULT_REQUEST_BYTES,
        }
    }
}

impl BodyLimits {
    /// The limit for `method` on a documented route template (as
    /// `/api/v1/workflow-templates/{id}`).
    pub fn for_route(&self, method: &Method, route: &str) -> usize {
        if method == Method::POST && route == "/api/v1/plugins" {
            self.plugin
        } else if route.starts_with("/api/v1/workflow-templates") {
            self.template
        } else {
            self.request
        }
    }
}

/// What became of a request's body, as seen after the endpoint ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Within the limit (or not read at all).
    Within,
    /// Over the limit; the rest of the body was drained, the connection
    /// can be kept.
    OverDrained,
    /// Over the limit and still sending past [`DRAIN_MAX`]: close the
    /// connection.
    OverUndrained,
}

/// Shared between the body wrapper and the middleware that answers 413.
#[derive(Debug, Clone, Default)]
pub struct Watch(Arc<AtomicU8>);

impl Watch {
    fn set(&self, o: Outcome) {
        let v = match o {
            Outcome::Within => 0,
            Outcome::OverDrained => 1,
            Outcome::OverUndrained => 2,
        };
        self.0.store(v, Ordering::Release);
    }

    /// The body's fate so far.
    pub fn outcome(&self) -> Outcome {
        match self.0.load(Ordering::Acquire) {
            0 => Outcome::Within,
            1 => Outcome::OverDrained,
            _ => Outcome::OverUndrained,
        }
    }
}

/// The `Content-Length` a request declares, if any (and parseable).
pub fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Reads and discards a body whose declared length is over the limit,
/// when that is cheap enough (see [`DRAIN_MAX`]); says whether the
/// connection can be kept.
pub async fn discard(req: &mut Request, declared: u64, limit: usize) -> Outcome {
    let budget = u64::try_from(limit.saturating_add(DRAIN_MAX)).unwrap_or(u64::MAX);
    // A client waiting for `100 Continue` has not sent the body: asking
    // for it just to throw it away would be worse than answering now.
    let waits_for_continue = req
        .headers()
        .get("expect")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if declared > budget || waits_for_continue {
        return Outcome::OverUndrained;
    }
    let mut stream = req.take_body().into_bytes_stream();
    while let Some(chunk) = stream.next().await {
        if chunk.is_err() {
            return Outcome::OverUndrained;
        }
    }
    Outcome::OverDrained
}

/// Replaces the request's body with one that fails once more than
/// `limit` bytes arrived (after draining what it may) and records that in
/// the returned [`Watch`].
pub fn limit_body(req: &mut Request, limit: usize) -> Watch {
    let watch = Watch::default();
    let inner = req.take_body().into_bytes_stream().boxed();
    let state = (inner, 0usize, false, watch.clone());
    let stream = futures::stream::unfold(state, move |(mut inner, seen, done, watch)| async move {
        if done {
            return None;
        }
        match inner.next().await {
            None => None,
            Some(Err(e)) => Some((Err(e), (inner, seen, true, watch))),
            Some(Ok(chunk)) => {
                let seen = seen.saturating_add(chunk.len());
                if seen <= limit {
                    return Some((Ok(chunk), (inner, seen, false, watch)));
                }
                let mut drained = 0usize;
                let mut outcome = Outcome::OverUndrained;
                while drained <= DRAIN_MAX {
                    match inner.next().await {
                        Some(Ok(c)) => drained = drained.saturating_add(c.len()),
                        Some(Err(_)) => break,
                        None => {
                            outcome = Outcome::OverDrained;
                            break;
                        }
                    }
                }
                watch.set(outcome);
                let err = std::io::Error::other(format!(
                    "request body exceeds the limit of {limit} bytes"
                ));
                Some((Err(err), (inner, seen, true, watch)))
            }
        }
    });
    req.set_body(Body::from_bytes_stream(stream));
    watch
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn routes_get_their_own_limits() {
        let l = BodyLimits {
            plugin: 3,
            template: 2,
            request: 1,
        };
        assert_eq!(l.for_route(&Method::POST, "/api/v1/plugins"), 3);
        assert_eq!(l.for_route(&Method::GET, "/api/v1/plugins"), 1);
        assert_eq!(l.for_route(&Method::POST, "/api/v1/workflow-templates"), 2);
        assert_eq!(
            l.for_route(&Method::PUT, "/api/v1/workflow-templates/{id}"),
            2
        );
        assert_eq!(l.for_route(&Method::POST, "/api/v1/workflow-runs"), 1);
        assert_eq!(l.for_route(&Method::POST, "unmatched"), 1);
    }

    #[tokio::test]
    async fn a_body_within_the_limit_passes_and_one_over_is_cut_and_drained() {
        let mut req = Request::builder().body("12345");
        let w = limit_body(&mut req, 5);
        assert_eq!(req.take_body().into_vec().await.unwrap(), b"12345");
        assert_eq!(w.outcome(), Outcome::Within);

        let chunks = futures::stream::iter(vec![
            Ok::<_, std::io::Error>(b"1234".to_vec()),
            Ok(b"5678".to_vec()),
            Ok(b"9".to_vec()),
        ]);
        let mut req = Request::builder().body(Body::from_bytes_stream(chunks));
        let w = limit_body(&mut req, 5);
        assert!(req.take_body().into_vec().await.is_err());
        assert_eq!(w.outcome(), Outcome::OverDrained);
    }
}
