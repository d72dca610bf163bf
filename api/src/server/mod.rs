//! The HTTP server: poem-openapi routes under `/api/v1`, one envelope and
//! error shape everywhere, `X-Request-Id` on every response, bearer auth,
//! OpenAPI at `/api/v1/openapi.json`, Swagger UI at `/docs`, and
//! `/health`, `/ready`, `/metrics`.

// `ApiError` *is* the HTTP response (envelope included), built once per
// failed request; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod envelope;
mod plugins_api;
mod runs_api;
mod templates_api;
pub mod views;

use envelope::{ErrorBody, REQUEST_ID};
use poem::http::StatusCode;
use poem::listener::TcpListener;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, handler, web::Data};
use poem_openapi::OpenApiService;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use weft_engine::Engine;

/// Largest request body accepted (plugin uploads included).
const MAX_BODY: usize = 64 << 20;

/// Request counters for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    requests: AtomicU64,
    errors: AtomicU64,
}

/// Builds the whole application.
pub fn app(engine: Engine, public_url: &str) -> impl Endpoint + 'static {
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
        ),
        "Weft",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Workflows whose every step is a sandboxed WebAssembly component.")
    .server(format!("{public_url}/api/v1"));
    let allow = Arc::new(AllowTable::from_spec(&api.spec()));
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let metrics = Arc::new(Metrics::default());
    Route::new()
        .nest("/api/v1", api)
        .at("/api/v1/openapi.json", spec)
        .nest("/docs", docs)
        .at("/health", health)
        .at("/ready", ready)
        .at("/metrics", metrics_endpoint)
        .catch_all_error(error_to_envelope)
        .around(move |ep, req| {
            let metrics = metrics.clone();
            let allow = allow.clone();
            async move { with_request_id(ep, req, metrics, allow).await }
        })
        .data(engine)
}

/// Which methods each documented path accepts, for the `Allow` header of
/// 405 responses (RFC 9110).
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

    fn allowed(&self, path: &str) -> Option<&str> {
        let parts: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .find(|(segs, _)| {
                segs.len() == parts.len()
                    && segs
                        .iter()
                        .zip(&parts)
                        .all(|(s, p)| s.starts_with('{') || s == p)
            })
            .map(|(_, m)| m.as_str())
    }
}

async fn with_request_id<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    metrics: Arc<Metrics>,
    allow: Arc<AllowTable>,
) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let too_large = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY);
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    req.extensions_mut().insert(metrics.clone());
    let resp = if too_large {
        Err(poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE))
    } else {
        REQUEST_ID
            .scope(id.clone(), async move {
                ep.call(req).await.map(IntoResponse::into_response)
            })
            .await
    };
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => {
            REQUEST_ID
                .scope(id.clone(), async move { error_to_envelope(e).await })
                .await
        }
    };
    metrics.requests.fetch_add(1, Ordering::Relaxed);
    if resp.status().is_server_error() {
        metrics.errors.fetch_add(1, Ordering::Relaxed);
    }
    if let Ok(v) = id.parse() {
        resp.headers_mut().insert("x-request-id", v);
    }
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(v) = allow.allowed(&path).and_then(|m| m.parse().ok())
    {
        resp.headers_mut().insert("allow", v);
    }
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
    let body = ErrorBody::new(code, message);
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
        serde_json::json!({"success": true, "data": {"status": "ok"}, "meta": envelope::Meta::now().to_json_value()}),
    )
}

#[handler]
async fn ready(engine: Data<&Engine>) -> Response {
    let store_ok = engine.store().ping().await.is_ok();
    let plugins = engine.plugins().len();
    let ok = store_ok && plugins > 0;
    let body = serde_json::json!({
        "success": ok,
        "data": {"store": if store_ok { "ok" } else { "unavailable" }, "plugins": plugins},
        "meta": envelope::Meta::now().to_json_value(),
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

#[handler]
async fn metrics_endpoint(engine: Data<&Engine>, req: &Request) -> Response {
    let mut out = String::new();
    if let Some(m) = req.extensions().get::<Arc<Metrics>>() {
        out.push_str("# HELP weft_http_requests_total HTTP requests served.\n# TYPE weft_http_requests_total counter\n");
        out.push_str(&format!(
            "weft_http_requests_total {}\n",
            m.requests.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP weft_http_server_errors_total HTTP 5xx responses.\n# TYPE weft_http_server_errors_total counter\n");
        out.push_str(&format!(
            "weft_http_server_errors_total {}\n",
            m.errors.load(Ordering::Relaxed)
        ));
    }
    out.push_str("# HELP weft_plugins Installed plugins.\n# TYPE weft_plugins gauge\n");
    out.push_str(&format!("weft_plugins {}\n", engine.plugins().len()));
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}

/// Starts serving until SIGINT/SIGTERM.
pub async fn serve(engine: Engine, listen: &str) -> anyhow::Result<()> {
    let public = format!("http://{listen}");
    let app = app(engine, &public);
    tracing::info!("weft listening on {public} (API docs at {public}/docs)");
    poem::Server::new(TcpListener::bind(listen))
        .run_with_graceful_shutdown(
            app,
            shutdown_signal(),
            Some(std::time::Duration::from_secs(10)),
        )
        .await?;
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

impl MetaJson for envelope::Meta {
    fn to_json_value(&self) -> serde_json::Value {
        poem_openapi::types::ToJSON::to_json(self).unwrap_or_default()
    }
}
