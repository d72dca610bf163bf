//! Artifacts: files a step attempt emitted (their bytes are stored apart).

use crate::ids::{RunId, StepKey};
use serde::{Deserialize, Serialize};

/// An artifact's metadata (its bytes live in `artifact_blob`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactInfo {
    /// Run id.
    pub run_id: RunId,
    /// Step key.
    pub step_key: StepKey,
    /// Attempt.
    pub attempt: u32,
    /// Name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// When.
    pub at: i64,
}
