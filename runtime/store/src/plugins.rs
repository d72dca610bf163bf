//! Installed plugins: manifest, enabled flag and grants, with the
//! component bytes stored by reference (content-addressed by digest).

use crate::records::PluginRecord;
use crate::runs::{rows, to_json};
use crate::{Store, StoreError};
use base64::Engine as _;
use serde_json::json;
use weft_model::{CapabilityGrants, PluginDigest};

pub(crate) fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub(crate) fn unb64(s: &str) -> Result<Vec<u8>, StoreError> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| StoreError::Codec(format!("bad blob: {e}")))
}

impl Store {
    /// Stores (or replaces) a plugin and its component bytes.
    pub async fn put_plugin(&self, rec: &PluginRecord, bytes: &[u8]) -> Result<(), StoreError> {
        self.run(
            "BEGIN TRANSACTION;\
             UPSERT type::record('plugin_blob', $p.digest) CONTENT { data: $data } RETURN NONE;\
             UPSERT type::record('plugin', $p.digest) CONTENT $p RETURN NONE;\
             COMMIT TRANSACTION;",
            json!({"p": to_json(rec)?, "data": b64(bytes)}),
        )
        .await
        .map(drop)
    }

    /// All plugins, by name then install time.
    pub async fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
        let mut res = self
            .run(
                "SELECT * OMIT id FROM plugin ORDER BY name, installedAt;",
                json!({}),
            )
            .await?;
        rows(&mut res, 0)
    }

    /// A plugin by digest.
    pub async fn plugin(&self, digest: &PluginDigest) -> Result<PluginRecord, StoreError> {
        let mut res = self
            .run(
                "SELECT * OMIT id FROM type::record('plugin', $d);",
                json!({"d": digest}),
            )
            .await?;
        rows(&mut res, 0)?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("plugin {}", digest.as_str())))
    }

    /// A plugin's component bytes.
    pub async fn plugin_bytes(&self, digest: &PluginDigest) -> Result<Vec<u8>, StoreError> {
        let mut res = self
            .run(
                "SELECT VALUE data FROM type::record('plugin_blob', $d);",
                json!({"d": digest}),
            )
            .await?;
        let data: Vec<String> = res.take(0).map_err(|e| StoreError::Codec(e.to_string()))?;
        unb64(
            data.first()
                .ok_or_else(|| StoreError::NotFound(format!("plugin bytes {digest}")))?,
        )
    }

    /// Enables or disables a plugin and replaces its grants.
    pub async fn set_plugin_state(
        &self,
        digest: &PluginDigest,
        enabled: bool,
        grants: &CapabilityGrants,
    ) -> Result<(), StoreError> {
        let mut res = self
            .run(
                "UPDATE type::record('plugin', $d) SET enabled = $enabled, grants = $grants RETURN VALUE digest;",
                json!({"d": digest, "enabled": enabled, "grants": to_json(grants)?}),
            )
            .await?;
        let updated: Vec<String> = res.take(0).map_err(|e| StoreError::Codec(e.to_string()))?;
        if updated.is_empty() {
            return Err(StoreError::NotFound(format!("plugin {}", digest.as_str())));
        }
        Ok(())
    }

    /// Deletes a plugin and its bytes.
    pub async fn delete_plugin(&self, digest: &PluginDigest) -> Result<(), StoreError> {
        self.run(
            "BEGIN TRANSACTION; DELETE type::record('plugin', $d); DELETE type::record('plugin_blob', $d); COMMIT TRANSACTION;",
            json!({"d": digest}),
        )
        .await
        .map(drop)
    }
}
