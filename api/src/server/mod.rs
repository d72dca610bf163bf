//! The HTTP server: poem-openapi routes under `/api/v1`, one envelope and
//! error shape everywhere, `X-Request-Id` on every response, bearer auth,
//! OpenAPI at `/api/v1/openapi.json`, Swagger UI at `/docs`, and
//! `/health`, `/ready`, `/metrics`.

// `ApiError` *is* the HTTP response (envelope included), built once per
// failed request; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod artifacts_api;
pub mod auth;
pub mod body_limit;
pub mod envelope;
pub mod metrics;
mod plugins_api;
mod runs_api;
pub mod spec;
mod stream_api;
mod sync_api;
mod sync_views;
mod templates_api;
pub mod views;

use body_limit::{BodyLimits, Outcome};
use envelope::{ApiError, REQUEST_ID, error_body};
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, handler, web::Data};
use poem_openapi::OpenApiService;
use std::sync::Arc;
use std::time::Instant;
use weft_engine::Engine;

/// Builds the whole application; request bodies are held to `limits`.
pub fn app(engine: Engine, public_url: &str, limits: BodyLimits) -> impl Endpoint + 'static {
    let api = OpenApiService::new(
        (
            plugins_api::PluginsApi {
                engine: engine.clone(),
            },
            templates_api::TemplatesApi {
                engine: engine.clone(),
            },
            runs_api::RunsApi {
                engine: engine.clone(),
            },
            artifacts_api::ArtifactsApi {
                engine: engine.clone(),
            },
            stream_api::StreamApi {
                engine: engine.clone(),
            },
            sync_api::SyncApi {
                engine: engine.clone(),
            },
        ),
        "Weft",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Workflows whose every step is a sandboxed WebAssembly component.")
    .server(format!("{public_url}/api/v1"));
    let allow = Arc::new(AllowTable::from_spec(&api.spec()));
    // The links table is checked against the document in tests; should it
    // ever go stale, serving the plain document beats not starting.
    let document = spec::with_links(&api.spec()).unwrap_or_else(|e| {
        tracing::error!("API document served without links: {e}");
        api.spec()
    });
    let spec = poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(document.clone())
    });
    let docs = api.swagger_ui();
    metrics::install();
    Route::new()
        .nest("/api/v1", api)
        .at("/api/v1/openapi.json", spec)
        .nest("/docs", docs)
        .at("/health", health)
        .at("/ready", ready)
        .at("/metrics", metrics::endpoint)
        .catch_all_error(error_to_envelope)
        .around(move |ep, req| {
            let allow = allow.clone();
            async move { with_request_id(ep, req, allow, limits).await }
        })
        .data(engine)
}

/// The documented paths: which methods each accepts, for the `Allow`
/// header of 405 responses (RFC 9110), and its template (e.g.
/// `/api/v1/workflow-runs/{id}`), the `route` label of HTTP metrics.
struct AllowTable(Vec<(Vec<String>, String)>);

impl AllowTable {
    fn from_spec(spec: &str) -> Self {
        let spec: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let paths = spec["paths"].as_object().cloned().unwrap_or_default();
        Self(
            paths
                .into_iter()
                .map(|(path, ops)| {
                    let segments = format!("/api/v1{path}")
                        .split('/')
                        .map(str::to_owned)
                        .collect();
                    let methods: Vec<String> = ops
                        .as_object()
                        .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                        .unwrap_or_default();
                    (segments, methods.join(", "))
                })
                .collect(),
        )
    }

    /// The documented path matching `path`; literal segments win over
    /// parameters (`/workflow-templates/validate` over `/workflow-templates/{id}`).
    fn matching(&self, path: &str) -> Option<&(Vec<String>, String)> {
        let parts: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .filter(|(segs, _)| {
                segs.len() == parts.len()
                    && segs
                        .iter()
                        .zip(&parts)
                        .all(|(s, p)| s.starts_with('{') || s == p)
            })
            .max_by_key(|(segs, _)| segs.iter().filter(|s| !s.starts_with('{')).count())
    }

    fn allowed(&self, path: &str) -> Option<&str> {
        self.matching(path).map(|(_, m)| m.as_str())
    }

    /// The route template for metrics: a documented path's template, one
    /// of the fixed routes, or `unmatched` (never the raw path, whose
    /// values are unbounded).
    fn route(&self, path: &str) -> String {
        if let Some((segs, _)) = self.matching(path) {
            return segs.join("/");
        }
        match path {
            "/health" | "/ready" | "/metrics" | "/api/v1/openapi.json" => path.to_owned(),
            p if p == "/docs" || p.starts_with("/docs/") => "/docs".to_owned(),
            _ => "unmatched".to_owned(),
        }
    }
}

async fn with_request_id<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    allow: Arc<AllowTable>,
    limits: BodyLimits,
) -> poem::Result<Response> {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
    let method = req.method().as_str().to_owned();
    let route = allow.route(&path);
    let limit = limits.for_route(req.method(), &route);
    let mut req = req;
    // A declared length over the limit is refused before the endpoint
    // runs; any other body is counted as it is read (chunked included).
    let declared_over = match body_limit::declared_length(&req) {
        Some(n) if n > u64::try_from(limit).unwrap_or(u64::MAX) => {
            Some(body_limit::discard(&mut req, n, limit).await)
        }
        _ => None,
    };
    let watch = declared_over
        .is_none()
        .then(|| body_limit::limit_body(&mut req, limit));
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let resp = if declared_over.is_some() {
        Err(poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE))
    } else {
        REQUEST_ID
            .scope(id.clone(), async move {
                ep.call(req).await.map(IntoResponse::into_response)
            })
            .await
    };
    // Whatever the endpoint made of a cut-off body (a parse error, say),
    // the answer is 413.
    let over =
        declared_over.or_else(|| watch.map(|w| w.outcome()).filter(|o| *o != Outcome::Within));
    let mut resp = match (over, resp) {
        (Some(outcome), _) => {
            let mut r = REQUEST_ID.sync_scope(id.clone(), || {
                ApiError::payload_too_large(limit).into_response()
            });
            if outcome == Outcome::OverUndrained {
                r.headers_mut()
                    .insert("connection", poem::http::HeaderValue::from_static("close"));
            }
            r
        }
        (None, Ok(r)) => r,
        (None, Err(e)) => {
            REQUEST_ID
                .scope(id.clone(), async move { error_to_envelope(e).await })
                .await
        }
    };
    if let Ok(v) = id.parse() {
        resp.headers_mut().insert("x-request-id", v);
    }
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(v) = allow.allowed(&path).and_then(|m| m.parse().ok())
    {
        resp.headers_mut().insert("allow", v);
    }
    metrics::http_request(&method, &route, resp.status().as_u16(), started.elapsed());
    Ok(resp)
}

/// Turns any error poem or poem-openapi raised (bad JSON, unknown route,
/// wrong method, missing token, body too large…) into the error envelope.
async fn error_to_envelope(err: poem::Error) -> Response {
    // Our own `ApiError`s arrive already enveloped: keep them as they are.
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let code = match status {
        StatusCode::BAD_REQUEST => "BAD_REQUEST",
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::NOT_ACCEPTABLE => "NOT_ACCEPTABLE",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::UNPROCESSABLE_ENTITY => "UNPROCESSABLE",
        StatusCode::CONFLICT => "CONFLICT",
        StatusCode::PRECONDITION_FAILED => "PRECONDITION_FAILED",
        StatusCode::LENGTH_REQUIRED => "LENGTH_REQUIRED",
        StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
        s if s.is_server_error() => "INTERNAL",
        _ => "ERROR",
    };
    let message = if status.is_server_error() {
        tracing::error!("internal error: {err}");
        "internal error".to_owned()
    } else if status == StatusCode::UNAUTHORIZED {
        "missing or invalid bearer token: send `Authorization: Bearer <token>`".to_owned()
    } else {
        err.to_string()
    };
    let body = error_body(code, message);
    let json =
        serde_json::to_string(&poem_openapi::types::ToJSON::to_json(&body)).unwrap_or_default();
    let mut resp = Response::builder()
        .status(status)
        .content_type("application/json")
        .body(json);
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            "www-authenticate",
            poem::http::HeaderValue::from_static("Bearer"),
        );
    }
    resp
}

#[handler]
fn health() -> poem::web::Json<serde_json::Value> {
    poem::web::Json(
        serde_json::json!({"success": true, "data": {"status": "ok"}, "meta": envelope::meta_now().to_json_value()}),
    )
}

#[handler]
async fn ready(engine: Data<&Engine>) -> Response {
    let store_ok = engine.store_ready().await;
    let plugins = engine
        .plugins(weft_model::Principal::system())
        .map(|p| p.len())
        .unwrap_or(0);
    let ok = store_ok && plugins > 0;
    let body = serde_json::json!({
        "success": ok,
        "data": {"store": if store_ok { "ok" } else { "unavailable" }, "plugins": plugins},
        "meta": envelope::meta_now().to_json_value(),
    });
    Response::builder()
        .status(if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        })
        .content_type("application/json")
        .body(body.to_string())
}

/// Serves until SIGINT/SIGTERM, then shuts down gracefully: stop
/// accepting, finish open requests, give in-flight steps up to `grace` to
/// finish and commit, and leave the rest to recovery at the next start.
pub async fn serve(
    engine: Engine,
    listen: &str,
    grace: std::time::Duration,
    limits: BodyLimits,
) -> anyhow::Result<()> {
    // Bind before announcing, and announce the bound address rather than the
    // configured one, so `--listen 127.0.0.1:0` (a port the OS picks) can be
    // found by whoever started the server (the tests do this).
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let public = format!("http://{}", listener.local_addr()?);
    let app = app(engine.clone(), &public, limits);
    metrics::spawn_upkeep();
    tracing::info!("weft listening on {public} (API docs at {public}/docs)");
    // The one machine-readable line of stdout: `listening on http://ADDR`.
    println!("listening on {public}");
    poem::Server::new_with_acceptor(TcpAcceptor::from_tokio(listener)?)
        .run_with_graceful_shutdown(
            app,
            shutdown_signal(),
            Some(std::time::Duration::from_secs(10)),
        )
        .await?;
    tracing::info!(grace = ?grace, "stopped accepting requests; waiting for in-flight steps");
    let report = engine.shutdown(grace).await;
    if report.drained {
        tracing::info!("every in-flight step finished; shut down cleanly");
    } else {
        tracing::warn!(
            steps = report.left_running,
            "grace period over; steps still running are left to recovery (they re-run at the next start)"
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            return;
        }
    }
    let _ = ctrl_c.await;
}

trait MetaJson {
    fn to_json_value(&self) -> serde_json::Value;
}

impl MetaJson for weft_api_types::Meta {
    fn to_json_value(&self) -> serde_json::Value {
        poem_openapi::types::ToJSON::to_json(self).unwrap_or_default()
    }
}
