//! The one response envelope and the one error shape, used by every
//! endpoint — including parse errors, unknown routes and auth failures.

use poem_openapi::types::{ParseFromJSON, ToJSON};
use poem_openapi::{ApiResponse, Object, payload::Json};

tokio::task_local! {
    /// The current request's id, set by the request-id middleware.
    pub static REQUEST_ID: String;
}

/// The current request id (empty outside a request).
pub fn request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

fn now_rfc3339() -> String {
    rfc3339_ms(weft_store::now_ms())
}

/// Formats Unix milliseconds as RFC 3339 with milliseconds, UTC.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

/// Page information for list responses.
#[derive(Object, Debug, Clone)]
#[oai(rename_all = "camelCase")]
pub struct Pagination {
    /// Page number, from 1.
    pub page: u32,
    /// Items per page (max 100).
    pub page_size: u32,
    /// Total matching items.
    pub total: u64,
    /// Number of pages.
    pub total_pages: u64,
}

/// Metadata on every response.
#[derive(Object, Debug, Clone)]
#[oai(rename_all = "camelCase")]
pub struct Meta {
    /// The request id (also in the `X-Request-Id` header).
    pub request_id: String,
    /// When the response was produced (RFC 3339).
    pub timestamp: String,
    /// Present on list responses.
    #[oai(skip_serializing_if_is_none)]
    pub pagination: Option<Pagination>,
}

impl Meta {
    /// Metadata for the current request.
    pub fn now() -> Self {
        Self {
            request_id: request_id(),
            timestamp: now_rfc3339(),
            pagination: None,
        }
    }
}

/// A successful response.
#[derive(Object, Debug)]
pub struct Envelope<T: ParseFromJSON + ToJSON> {
    /// Always true.
    pub success: bool,
    /// The payload.
    pub data: T,
    /// Metadata.
    pub meta: Meta,
}

/// Wraps `data` in the envelope.
pub fn ok<T: ParseFromJSON + ToJSON>(data: T) -> Json<Envelope<T>> {
    Json(Envelope {
        success: true,
        data,
        meta: Meta::now(),
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
    let mut meta = Meta::now();
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

/// One field-level validation problem.
#[derive(Object, Debug, Clone)]
#[oai(rename_all = "camelCase")]
pub struct ValidationError {
    /// JSON pointer to the offending value.
    pub pointer: String,
    /// Machine-readable code.
    pub code: String,
    /// Explanation.
    pub message: String,
}

/// What went wrong.
#[derive(Object, Debug, Clone)]
#[oai(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `NOT_FOUND`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Extra details.
    #[oai(skip_serializing_if_is_none)]
    pub details: Option<serde_json::Value>,
    /// Per-field problems (422).
    #[oai(default, skip_serializing_if_is_empty)]
    pub validation_errors: Vec<ValidationError>,
}

/// The error envelope.
#[derive(Object, Debug, Clone)]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    /// The error.
    pub error: ErrorDetail,
    /// Metadata.
    pub meta: Meta,
}

impl ErrorBody {
    /// An error body for the current request.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            success: false,
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                details: None,
                validation_errors: Vec::new(),
            },
            meta: Meta::now(),
        }
    }
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
    /// Something broke on our side.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency (the store) is unavailable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

impl ApiError {
    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(Json(ErrorBody::new("BAD_REQUEST", message)))
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(Json(ErrorBody::new("NOT_FOUND", message)))
    }

    /// 409 with a message.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(Json(ErrorBody::new("CONFLICT", message)))
    }

    /// 413: the body is over the route's `limit` (bytes), given in
    /// `details.limitBytes` so a client can tell how far over it is.
    pub fn payload_too_large(limit: usize) -> Self {
        let mut body = ErrorBody::new(
            "PAYLOAD_TOO_LARGE",
            format!("the request body exceeds this route's limit of {limit} bytes"),
        );
        body.error.details = Some(serde_json::json!({ "limitBytes": limit }));
        Self::PayloadTooLarge(Json(body))
    }

    /// 503 with a message: retry later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(Json(ErrorBody::new("UNAVAILABLE", message)))
    }

    /// 422 with per-field problems.
    pub fn validation(
        code: &str,
        message: impl Into<String>,
        problems: Vec<ValidationError>,
    ) -> Self {
        let mut body = ErrorBody::new(code, message);
        body.error.validation_errors = problems;
        Self::Unprocessable(Json(body))
    }

    /// 500, logged.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(request_id = %request_id(), "internal error: {message}");
        Self::Internal(Json(ErrorBody::new(
            "INTERNAL",
            "internal error; see the server log for the request id",
        )))
    }
}

impl ValidationError {
    /// One problem, its code written as the enum serialises (e.g.
    /// `LIMIT_EXCEEDED`), so the envelope and the model agree.
    fn of(pointer: &str, code: impl serde::Serialize, message: &str) -> Self {
        Self {
            pointer: pointer.to_owned(),
            code: serde_json::to_value(code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            message: message.to_owned(),
        }
    }
}

impl From<weft_engine::EngineError> for ApiError {
    fn from(e: weft_engine::EngineError) -> Self {
        use weft_engine::EngineError as E;
        let problems = |ps: &[weft_model::template::TemplateProblem]| {
            ps.iter()
                .map(|p| ValidationError::of(&p.pointer, p.code, &p.message))
                .collect()
        };
        match &e {
            E::NotFound(m) => Self::not_found(format!("{m} not found")),
            E::Forbidden { needed, .. } => {
                let mut body = ErrorBody::new("FORBIDDEN", e.to_string());
                body.error.details = Some(serde_json::json!({ "needs": needed }));
                Self::Forbidden(Json(body))
            }
            E::Conflict(m) => Self::conflict(m.clone()),
            E::PluginInUse { plugin, runs } => plugin_in_use(plugin, runs),
            E::InvalidTemplate(ps) => {
                Self::validation("INVALID_TEMPLATE", e.to_string(), problems(ps))
            }
            E::InvalidInputs(ps) => Self::validation("INVALID_INPUTS", e.to_string(), problems(ps)),
            E::ValueLimit { error, .. } => {
                Self::BadRequest(Json(ErrorBody::new(error.code(), e.to_string())))
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
            E::Install(weft_host::InstallError::InvalidManifest(ps)) => Self::validation(
                "INVALID_PLUGIN",
                e.to_string(),
                ps.iter()
                    .map(|p| ValidationError::of(&p.pointer, p.code, &p.message))
                    .collect(),
            ),
            E::Install(i) => Self::validation("INVALID_PLUGIN", i.to_string(), Vec::new()),
            E::Host(h) => Self::conflict(h.to_string()),
            E::Store(weft_store::StoreError::NotFound(m)) => {
                Self::not_found(format!("{m} not found"))
            }
            E::Store(weft_store::StoreError::Conflict(m)) => Self::conflict(m.clone()),
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
fn plugin_in_use(plugin: &str, runs: &[String]) -> ApiError {
    let shown: Vec<&str> = runs.iter().take(10).map(String::as_str).collect();
    let more = if runs.len() > shown.len() {
        ", …"
    } else {
        ""
    };
    let mut body = ErrorBody::new(
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
