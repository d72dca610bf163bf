//! Stored workflow templates: a template's current head and its
//! immutable revisions.

use crate::ids::TemplateId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A workflow template's current head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateHead {
    /// Template id.
    pub template_id: TemplateId,
    /// Unique name.
    pub name: String,
    /// Latest revision number (from 1).
    pub revision: u32,
    /// The latest revision's body.
    pub body: Value,
    /// Creation time.
    pub created_at: i64,
    /// Time of the latest revision.
    pub updated_at: i64,
}

/// One immutable revision of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRevision {
    /// Template id.
    pub template_id: TemplateId,
    /// Revision number.
    pub revision: u32,
    /// The body.
    pub body: Value,
    /// When it was written.
    pub created_at: i64,
}
