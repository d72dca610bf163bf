//! The one response envelope and the one error shape, used by every
//! endpoint — including parse errors, unknown routes and auth failures.

use poem_openapi::types::{ParseFromJSON, ToJSON};
use poem_openapi::{ApiResponse, payload::Json};
use weft_api_types::rfc3339_ms;
use weft_api_types::{Envelope, ErrorBody, ErrorDetail, Meta, Pagination, ValidationError};

tokio::task_local! {
    /// The current request's id, set by the request-id middleware.
    pub static REQUEST_ID: String;
}

/// The current request id (empty outside a request).
pub fn request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

fn now_rfc3339() -> String {
    rfc3339_ms(weft_engine::now_ms())
}

/// Metadata for the current request.
pub fn meta_now() -> Meta {
    Meta {
        request_id: request_id(),
        timestamp: now_rfc3339(),
        pagination: None,
    }
}

/// An error body for the current request.
pub fn error_body(code: &str, message: impl Into<String>) -> ErrorBody {
    ErrorBody {
        success: false,
        error: ErrorDetail {
            code: code.into(),
            message: message.into(),
            details: None,
            validation_errors: Vec::new(),
        },
        meta: meta_now(),
    }
}

/// Wraps `data` in the envelope.
pub fn ok<T: ParseFromJSON + ToJSON>(data: T) -> Json<Envelope<T>> {
    Json(Envelope {
        success: true,
        data,
        meta: meta_now(),
    })
}

/// One page of an engine list as views, with its pagination.
pub fn paged<T, V: ParseFromJSON + ToJSON>(
    p: weft_engine::Page<T>,
    req: weft_engine::PageRequest,
    view: impl FnMut(T) -> V,
) -> Json<Envelope<Vec<V>>> {
    page(
        p.items.into_iter().map(view).collect(),
        req.page,
        req.page_size,
        p.total,
    )
}

/// Wraps a page of `data` in the envelope with pagination.
pub fn page<T: ParseFromJSON + ToJSON>(
    data: T,
    page: u32,
    page_size: u32,
    total: u64,
) -> Json<Envelope<T>> {
    let mut meta = meta_now();
    meta.pagination = Some(Pagination {
        page,
        page_size,
        total,
        total_pages: total.div_ceil(u64::from(page_size.max(1))),
    });
    Json(Envelope {
        success: true,
        data,
        meta,
    })
}

/// Every error an endpoint can return.
#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or bad credentials.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The caller's role does not allow the operation.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// Not found (or another tenant's).
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Conflicts with the current state.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// `If-Match` does not match the current revision.
    #[oai(status = 412)]
    PreconditionFailed(Json<ErrorBody>),
    /// The request body is larger than this route accepts.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The body's media type is not accepted.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// Validation failed.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// The resource is busy (a job's state while it syncs).
    #[oai(status = 423)]
    Locked(Json<ErrorBody>),
    /// Something broke on our side.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency (the store) is unavailable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

/// A path parameter as a typed id. Text that cannot be an id names
/// nothing that exists, so it answers 404 like an unknown id would.
pub fn path_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("{what} {raw:?} not found")))
}

impl ApiError {
    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(Json(error_body("BAD_REQUEST", message)))
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(Json(error_body("NOT_FOUND", message)))
    }

    /// 409 with a message.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(Json(error_body("CONFLICT", message)))
    }

    /// 413: the body is over the route's `limit` (bytes), given in
    /// `details.limitBytes` so a client can tell how far over it is.
    pub fn payload_too_large(limit: usize) -> Self {
        let mut body = error_body(
            "PAYLOAD_TOO_LARGE",
            format!("the request body exceeds this route's limit of {limit} bytes"),
        );
        body.error.details = Some(serde_json::json!({ "limitBytes": limit }));
        Self::PayloadTooLarge(Json(body))
    }

    /// 503 with a message: retry later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(Json(error_body("UNAVAILABLE", message)))
    }

    /// 422 with per-field problems.
    pub fn validation(
        code: &str,
        message: impl Into<String>,
        problems: Vec<ValidationError>,
    ) -> Self {
        let mut body = error_body(code, message);
        body.error.validation_errors = problems;
        Self::Unprocessable(Json(body))
    }

    /// 500, logged.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(request_id = %request_id(), "internal error: {message}");
        Self::Internal(Json(error_body(
            "INTERNAL",
            "internal error; see the server log for the request id",
        )))
    }
}

/// One problem, its code written as the enum serialises (e.g.
/// `LIMIT_EXCEEDED`), so the envelope and the model agree.
fn problem(pointer: &str, code: impl serde::Serialize, message: &str) -> ValidationError {
    ValidationError {
        pointer: pointer.to_owned(),
        code: serde_json::to_value(code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        message: message.to_owned(),
    }
}

impl From<weft_engine::EngineError> for ApiError {
    fn from(e: weft_engine::EngineError) -> Self {
        use weft_engine::EngineError as E;
        let problems = |ps: &[weft_model::template::TemplateProblem]| {
            ps.iter()
                .map(|p| problem(&p.pointer, p.code, &p.message))
                .collect()
        };
        match &e {
            E::NotFound(m) => Self::not_found(format!("{m} not found")),
            E::Forbidden { needed, .. } => {
                let mut body = error_body("FORBIDDEN", e.to_string());
                body.error.details = Some(serde_json::json!({ "needs": needed }));
                Self::Forbidden(Json(body))
            }
            E::Conflict(m) => Self::conflict(m.clone()),
            E::RevisionMismatch { .. } => {
                Self::PreconditionFailed(Json(error_body("PRECONDITION_FAILED", e.to_string())))
            }
            E::PluginInUse { plugin, runs } => plugin_in_use(plugin, runs),
            E::InvalidTemplate(ps) => {
                Self::validation("INVALID_TEMPLATE", e.to_string(), problems(ps))
            }
            E::InvalidInputs(ps) => Self::validation("INVALID_INPUTS", e.to_string(), problems(ps)),
            E::ValueLimit { error, .. } => {
                Self::BadRequest(Json(error_body(error.code(), e.to_string())))
            }
            E::InvalidAnswer(ps) => Self::validation(
                "INVALID_ANSWER",
                e.to_string(),
                ps.iter()
                    .map(|m| ValidationError {
                        pointer: String::new(),
                        code: "SCHEMA".into(),
                        message: m.clone(),
                    })
                    .collect(),
            ),
            E::Install(weft_engine::InstallError::InvalidManifest(ps)) => Self::validation(
                "INVALID_PLUGIN",
                e.to_string(),
                ps.iter()
                    .map(|p| problem(&p.pointer, p.code, &p.message))
                    .collect(),
            ),
            E::Install(i) => Self::validation("INVALID_PLUGIN", i.to_string(), Vec::new()),
            E::Host(h) => Self::conflict(h.to_string()),
            E::InvalidConnection(ps) => Self::validation(
                "INVALID_CONNECTION",
                e.to_string(),
                ps.iter()
                    .map(|p| problem(&p.pointer, p.code, &p.message))
                    .collect(),
            ),
            E::InvalidGrants(ps) => Self::validation(
                "INVALID_GRANTS",
                e.to_string(),
                ps.iter()
                    .map(|p| problem(&p.pointer, p.code, &p.message))
                    .collect(),
            ),
            E::InvalidJob(ps) => Self::validation(
                "INVALID_JOB",
                e.to_string(),
                ps.iter()
                    .map(|p| problem(&p.pointer, p.code, &p.message))
                    .collect(),
            ),
            E::Connector(f) => {
                let failure = weft_engine::connector_failure(f);
                let mut body = error_body("CONNECTOR_FAILED", failure.message.clone());
                body.error.details = serde_json::to_value(&failure).ok();
                Self::Unprocessable(Json(body))
            }
            E::Locked(m) => Self::Locked(Json(error_body("LOCKED", m.clone()))),
            E::Store(weft_engine::StoreError::NotFound(m)) => {
                Self::not_found(format!("{m} not found"))
            }
            E::Store(weft_engine::StoreError::Conflict(m)) => Self::conflict(m.clone()),
            E::ShuttingDown => Self::unavailable("the server is shutting down; retry later"),
            E::Store(s) if s.is_retryable() => {
                Self::unavailable("the store is unavailable; retry later")
            }
            _ => Self::internal(&e),
        }
    }
}

/// 409 naming the runs that pin a plugin (the first ten in the message,
/// up to a hundred in `details.activeRuns`, all of them counted).
fn plugin_in_use(plugin: &str, runs: &[weft_model::RunId]) -> ApiError {
    let shown: Vec<&str> = runs.iter().take(10).map(|r| r.as_str()).collect();
    let more = if runs.len() > shown.len() {
        ", …"
    } else {
        ""
    };
    let mut body = error_body(
        "CONFLICT",
        format!(
            "plugin {plugin} is pinned by {} active run(s): {}{more}; cancel them or wait until they finish",
            runs.len(),
            shown.join(", ")
        ),
    );
    body.error.details = Some(serde_json::json!({
        "plugin": plugin,
        "activeRunCount": runs.len(),
        "activeRuns": runs.iter().take(100).collect::<Vec<_>>(),
    }));
    ApiError::Conflict(Json(body))
}

/// The result type of every endpoint.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::rfc3339_ms;

    #[test]
    fn formats_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
