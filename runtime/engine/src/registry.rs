//! Installed plugins: the host's loaded components plus what the store
//! knows (enabled, grants), and the step-type catalog templates resolve
//! against.

use crate::EngineError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use weft_host::PluginHost;
use weft_model::template::{CatalogMiss, ResolvedStepType, StepTypeCatalog};
use weft_model::{
    CapabilityGrants, ConfigProblem, ConfigProblemCode, ConnectorRole, PluginDigest,
    PluginManifest, StepTypeRef,
};
use weft_store::{PluginRecord, Store};

/// One installed plugin as the engine sees it.
#[derive(Debug, Clone)]
pub struct PluginEntry {
    /// Content digest.
    pub digest: PluginDigest,
    /// Validated manifest.
    pub manifest: PluginManifest,
    /// Whether new runs may use it.
    pub enabled: bool,
    /// What an admin granted.
    pub grants: CapabilityGrants,
    /// When it was installed (ms).
    pub installed_at: i64,
}

impl PluginEntry {
    /// Resolves one of this plugin's step types for a template.
    pub(crate) fn resolve_step(&self, step_type: &str) -> Result<ResolvedStepType, CatalogMiss> {
        let step =
            self.manifest
                .step_type(step_type)
                .ok_or_else(|| CatalogMiss::UnknownStepType {
                    available: self
                        .manifest
                        .step_types
                        .iter()
                        .map(|s| s.name.clone())
                        .collect(),
                })?;
        Ok(ResolvedStepType {
            plugin: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            digest: self.digest.clone(),
            step_type: step.name.clone(),
            input_schema: step.input_schema.clone(),
            output_schema: step.output_schema.clone(),
        })
    }
}

/// The registry of installed plugins.
#[derive(Clone)]
pub(crate) struct Registry {
    host: Arc<PluginHost>,
    store: Store,
    entries: Arc<RwLock<HashMap<PluginDigest, PluginEntry>>>,
    /// Bumped on every change, so plans resolved against an older state
    /// of the registry are not reused.
    generation: Arc<AtomicU64>,
}

impl Registry {
    pub(crate) fn new(host: Arc<PluginHost>, store: Store) -> Self {
        Self {
            host,
            store,
            entries: Arc::default(),
            generation: Arc::default(),
        }
    }

    /// Changes whenever a plugin is installed, enabled, disabled or removed.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Loads every stored plugin into the host (from the compile cache when warm).
    pub(crate) async fn load_all(&self) -> Result<(), EngineError> {
        for rec in self.store.plugins().await? {
            let bytes = self.store.plugin_bytes(&rec.digest).await?;
            match self.host.install(&bytes).await {
                Ok(installed) => {
                    self.host
                        .set_grants(&installed.plugin.digest, &rec.grants)?;
                    self.insert(PluginEntry {
                        digest: installed.plugin.digest.clone(),
                        manifest: installed.plugin.manifest.clone(),
                        enabled: rec.enabled,
                        grants: rec.grants,
                        installed_at: rec.installed_at,
                    });
                }
                Err(e) => {
                    tracing::error!(digest = %rec.digest, "stored plugin no longer loads: {e}")
                }
            }
        }
        Ok(())
    }

    fn insert(&self, e: PluginEntry) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(e.digest.clone(), e);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Installs component bytes: host validation, then the store. Installing
    /// the same bytes again returns the existing entry.
    pub(crate) async fn install(
        &self,
        bytes: &[u8],
        enabled: bool,
    ) -> Result<PluginEntry, EngineError> {
        let installed = self.host.install(bytes).await?;
        if installed.plugin.manifest.name == crate::sync_step::BUILTIN_PLUGIN {
            return Err(EngineError::Conflict(format!(
                "the plugin name {:?} is reserved for the engine's built-in step types",
                crate::sync_step::BUILTIN_PLUGIN
            )));
        }
        let digest = installed.plugin.digest.clone();
        if let Some(existing) = self.get(&digest) {
            return Ok(existing);
        }
        let entry = PluginEntry {
            digest: digest.clone(),
            manifest: installed.plugin.manifest.clone(),
            enabled,
            grants: CapabilityGrants::default(),
            installed_at: weft_store::now_ms(),
        };
        let rec = PluginRecord {
            digest: digest.clone(),
            name: entry.manifest.name.clone(),
            version: entry.manifest.version.to_string(),
            manifest: serde_json::to_value(&entry.manifest)
                .map_err(|e| EngineError::Internal(e.to_string()))?,
            enabled,
            grants: CapabilityGrants::default(),
            installed_at: entry.installed_at,
        };
        self.store.put_plugin(&rec, bytes).await?;
        self.insert(entry.clone());
        Ok(entry)
    }

    /// Enables or disables a plugin and sets its grants.
    pub(crate) async fn set_state(
        &self,
        digest: &PluginDigest,
        enabled: bool,
        grants: CapabilityGrants,
    ) -> Result<PluginEntry, EngineError> {
        let mut entry = self
            .get(digest)
            .ok_or_else(|| EngineError::NotFound(format!("plugin {digest}")))?;
        self.store
            .set_plugin_state(digest, enabled, &grants)
            .await?;
        self.host.set_grants(digest, &grants)?;
        entry.enabled = enabled;
        entry.grants = grants;
        self.insert(entry.clone());
        Ok(entry)
    }

    /// Removes a plugin from the store, then from memory and the host
    /// (in-flight invocations finish). The on-disk compile cache is kept:
    /// it is keyed by digest, so reinstalling the same bytes is fast.
    pub(crate) async fn remove(&self, digest: &PluginDigest) -> Result<(), EngineError> {
        self.store.delete_plugin(digest).await?;
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.host.unload(digest);
        Ok(())
    }

    pub(crate) fn get(&self, digest: &PluginDigest) -> Option<PluginEntry> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
    }

    pub(crate) fn list(&self) -> Vec<PluginEntry> {
        let mut all: Vec<_> = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| {
            a.manifest
                .name
                .cmp(&b.manifest.name)
                .then(a.manifest.version.cmp(&b.manifest.version))
        });
        all
    }
}

impl Registry {
    /// The newest enabled plugin named `name` that plays `role` and
    /// satisfies `version`.
    pub(crate) fn connector(
        &self,
        name: &str,
        version: Option<&semver::VersionReq>,
        role: ConnectorRole,
    ) -> Result<PluginEntry, ConfigProblem> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let plays = |e: &PluginEntry| match role {
            ConnectorRole::Source => e.manifest.roles.source,
            ConnectorRole::Destination => e.manifest.roles.destination,
        };
        let matching: Vec<&PluginEntry> = entries
            .values()
            .filter(|e| e.manifest.name == name && plays(e))
            .filter(|e| version.is_none_or(|req| req.matches(&e.manifest.version)))
            .collect();
        if matching.is_empty() {
            let mut known: Vec<String> = entries
                .values()
                .filter(|e| plays(e))
                .map(|e| e.manifest.name.clone())
                .collect();
            known.sort();
            known.dedup();
            return Err(ConfigProblem::new(
                "/connector",
                ConfigProblemCode::UnknownConnector,
                format!(
                    "no installed {role} connector {name:?}{}; installed {role} connectors: {known:?}",
                    version
                        .map(|v| format!(" matching {v}"))
                        .unwrap_or_default()
                ),
            ));
        }
        matching
            .into_iter()
            .filter(|e| e.enabled)
            .max_by(|a, b| {
                a.manifest
                    .version
                    .cmp(&b.manifest.version)
                    .then(a.installed_at.cmp(&b.installed_at))
            })
            .cloned()
            .ok_or_else(|| {
                ConfigProblem::new(
                    "/connector",
                    ConfigProblemCode::ConnectorDisabled,
                    format!("every installed version of connector {name:?} is disabled"),
                )
            })
    }
}

impl StepTypeCatalog for Registry {
    fn resolve(&self, r: &StepTypeRef) -> Result<ResolvedStepType, CatalogMiss> {
        if r.plugin == crate::sync_step::BUILTIN_PLUGIN {
            return crate::sync_step::resolve_builtin(r);
        }
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let versions: Vec<&PluginEntry> = entries
            .values()
            .filter(|e| e.manifest.name == r.plugin)
            .collect();
        if versions.is_empty() {
            return Err(CatalogMiss::UnknownPlugin);
        }
        let matching: Vec<&&PluginEntry> = versions
            .iter()
            .filter(|e| {
                r.version
                    .as_ref()
                    .is_none_or(|req| req.matches(&e.manifest.version))
            })
            .collect();
        if matching.is_empty() {
            let mut available: Vec<_> = versions
                .iter()
                .map(|e| e.manifest.version.clone())
                .collect();
            available.sort();
            return Err(CatalogMiss::NoMatchingVersion { available });
        }
        let best = matching.iter().filter(|e| e.enabled).max_by(|a, b| {
            a.manifest
                .version
                .cmp(&b.manifest.version)
                .then(a.installed_at.cmp(&b.installed_at))
        });
        let Some(best) = best else {
            return Err(CatalogMiss::Disabled);
        };
        best.resolve_step(&r.step_type)
    }
}
