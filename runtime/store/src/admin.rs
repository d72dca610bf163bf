//! Queries for operators rather than for the engine's hot path: run
//! counts by status (Prometheus scrapes), the active runs that pin a
//! plugin (refusing to uninstall it), and artifact listings with their
//! content digests.

use crate::runs::rows;
use crate::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use weft_model::RunStatus;
use weft_model::{ArtifactInfo, PluginDigest, RunId, StepKey};

/// The statuses of a run that has not finished, as stored.
const ACTIVE: &str = "['PENDING', 'RUNNING', 'PAUSED', 'AWAITING_INPUT']";

/// An artifact's metadata with the sha256 of its bytes, when it was
/// stored by a version of the store that records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactEntry {
    /// The metadata the engine wrote.
    #[serde(flatten)]
    pub record: ArtifactInfo,
    /// Lowercase hex sha256 of the bytes.
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Deserialize)]
struct StatusCount {
    status: RunStatus,
    n: u64,
}

impl Store {
    /// How many runs are in each status. Statuses with no run are absent.
    ///
    /// One grouped scan of the `run` table: cheap next to a scrape
    /// interval for the run counts a single node holds, and always right
    /// after a restart (nothing is kept in memory).
    pub async fn count_runs_by_status(&self) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        let mut res = self
            .run(
                "SELECT status, count() AS n FROM run GROUP BY status;",
                json!({}),
            )
            .await?;
        Ok(rows::<StatusCount>(&mut res, 0)?
            .into_iter()
            .map(|c| (c.status, c.n))
            .collect())
    }

    /// Ids of unfinished runs (PENDING, RUNNING, PAUSED, AWAITING_INPUT)
    /// that pinned the plugin with this digest, oldest first.
    pub async fn active_runs_pinning(
        &self,
        digest: &PluginDigest,
    ) -> Result<Vec<RunId>, StoreError> {
        let sql = format!(
            "SELECT runId, createdAt FROM run WHERE status IN {ACTIVE} \
             AND $d IN object::values(pinnedPlugins) ORDER BY createdAt;"
        );
        let mut res = self.run(&sql, json!({"d": digest})).await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Row {
            run_id: RunId,
        }
        Ok(rows::<Row>(&mut res, 0)?
            .into_iter()
            .map(|r| r.run_id)
            .collect())
    }

    /// A step's artifacts with their digests, by attempt then name.
    pub async fn artifact_entries(
        &self,
        run_id: &RunId,
        step_key: &StepKey,
    ) -> Result<Vec<ArtifactEntry>, StoreError> {
        let mut res = self
            .run(
                "SELECT * OMIT id FROM artifact WHERE runId = $id AND stepKey = $step ORDER BY attempt, name;",
                json!({"id": run_id, "step": step_key}),
            )
            .await?;
        rows(&mut res, 0)
    }

    /// One artifact of a step by name: of `attempt` when given, otherwise
    /// of the latest attempt that emitted that name.
    pub async fn artifact_entry(
        &self,
        run_id: &RunId,
        step_key: &StepKey,
        name: &str,
        attempt: Option<u32>,
    ) -> Result<ArtifactEntry, StoreError> {
        crate::check_key("artifact", name)?;
        let of_attempt = if attempt.is_some() {
            " AND attempt = $attempt"
        } else {
            ""
        };
        let sql = format!(
            "SELECT * OMIT id FROM artifact WHERE runId = $id AND stepKey = $step AND name = $name{of_attempt} \
             ORDER BY attempt DESC LIMIT 1;"
        );
        let mut res = self
            .run(
                &sql,
                json!({"id": run_id, "step": step_key, "name": name, "attempt": attempt}),
            )
            .await?;
        rows(&mut res, 0)?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("artifact {name:?}")))
    }
}
