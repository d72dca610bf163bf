//! The response envelope and the error shape every endpoint uses.

use poem_openapi::Object;
use poem_openapi::types::{ParseFromJSON, ToJSON};

/// Page information for list responses.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
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
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The request id (also in the `X-Request-Id` header).
    pub request_id: String,
    /// When the response was produced (RFC 3339).
    pub timestamp: String,
    /// Present on list responses.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

/// A successful response.
#[derive(Object, Debug, serde::Serialize, serde::Deserialize)]
pub struct Envelope<T: ParseFromJSON + ToJSON> {
    /// Always true.
    pub success: bool,
    /// The payload.
    pub data: T,
    /// Metadata.
    pub meta: Meta,
}

/// One field-level validation problem.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ValidationError {
    /// JSON pointer to the offending value.
    pub pointer: String,
    /// Machine-readable code.
    pub code: String,
    /// Explanation.
    pub message: String,
}

/// What went wrong.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `NOT_FOUND`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Extra details.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// Per-field problems (422).
    #[oai(default, skip_serializing_if_is_empty)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_errors: Vec<ValidationError>,
}

/// The error envelope.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    /// The error.
    pub error: ErrorDetail,
    /// Metadata.
    pub meta: Meta,
}
