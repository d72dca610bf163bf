//! Plugins: installing, enabling with grants, uninstalling, and listing
//! them and their step types.

use crate::{Engine, EngineError, Operation, Page, PageRequest, PluginEntry};
use weft_model::{
    CapabilityGrants, ConfigProblem, ConfigProblemCode, PluginDigest, Principal, StepTypeInfo,
};

impl Engine {
    /// Installs a plugin from its component bytes.
    pub async fn install_plugin(
        &self,
        caller: &Principal,
        bytes: &[u8],
        enabled: bool,
    ) -> Result<PluginEntry, EngineError> {
        self.authorize(caller, Operation::InstallPlugin)?;
        self.registry.install(bytes, enabled).await
    }

    /// Enables or disables a plugin and replaces its grants.
    pub async fn set_plugin_state(
        &self,
        caller: &Principal,
        digest: &PluginDigest,
        enabled: bool,
        grants: CapabilityGrants,
    ) -> Result<PluginEntry, EngineError> {
        self.authorize(caller, Operation::SetPluginState)?;
        if let Some(entry) = self.registry.get(digest) {
            check_directories(&entry, &grants)?;
        }
        self.registry.set_state(digest, enabled, grants).await
    }

    /// Uninstalls a plugin: removes it from the registry, the host and the
    /// store. Refused with [`EngineError::PluginInUse`] while an unfinished
    /// run pinned it. Templates that use it are left alone; they fail
    /// validation (unknown step type) when a run of them next starts.
    pub async fn uninstall_plugin(
        &self,
        caller: &Principal,
        digest: &PluginDigest,
    ) -> Result<PluginEntry, EngineError> {
        self.authorize(caller, Operation::UninstallPlugin)?;
        let _exclusive = self.plugin_gate.write().await;
        let entry = self
            .registry
            .get(digest)
            .ok_or_else(|| EngineError::NotFound(format!("plugin {digest}")))?;
        let runs = self.shared.store.active_runs_pinning(digest).await?;
        if !runs.is_empty() {
            return Err(EngineError::PluginInUse {
                plugin: format!("{}@{}", entry.manifest.name, entry.manifest.version),
                runs,
            });
        }
        self.registry.remove(digest).await?;
        Ok(entry)
    }

    /// Installed plugins.
    pub fn plugins(&self, caller: &Principal) -> Result<Vec<PluginEntry>, EngineError> {
        self.authorize(caller, Operation::ReadPlugins)?;
        Ok(self.registry.list())
    }

    /// One installed plugin by digest; `None` when none has it.
    pub fn plugin(
        &self,
        caller: &Principal,
        digest: &PluginDigest,
    ) -> Result<Option<PluginEntry>, EngineError> {
        self.authorize(caller, Operation::ReadPlugins)?;
        Ok(self.registry.get(digest))
    }
}

/// A step type as offered by one installed plugin version.
#[derive(Debug, Clone)]
pub struct StepTypeEntry {
    /// The plugin's name.
    pub plugin: String,
    /// The plugin's version (semver).
    pub version: String,
    /// The plugin's digest.
    pub plugin_id: PluginDigest,
    /// Whether the plugin is enabled.
    pub enabled: bool,
    /// The step type.
    pub step: StepTypeInfo,
}

impl StepTypeEntry {
    /// `plugin/step-type`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.plugin, self.step.name)
    }
}

/// Every step type of every plugin, by plugin name and version, then in
/// manifest order.
fn step_types(plugins: &[PluginEntry]) -> impl Iterator<Item = StepTypeEntry> + '_ {
    plugins.iter().flat_map(|p| {
        p.manifest.step_types.iter().map(|s| StepTypeEntry {
            plugin: p.manifest.name.clone(),
            version: p.manifest.version.to_string(),
            plugin_id: p.digest.clone(),
            enabled: p.enabled,
            step: s.clone(),
        })
    })
}

impl Engine {
    /// A page of installed plugins, by name then version.
    pub fn list_plugins(
        &self,
        caller: &Principal,
        page: PageRequest,
    ) -> Result<Page<PluginEntry>, EngineError> {
        self.authorize(caller, Operation::ReadPlugins)?;
        Ok(page.slice(self.registry.list()))
    }

    /// A page of the step types of installed plugins.
    pub fn list_step_types(
        &self,
        caller: &Principal,
        page: PageRequest,
    ) -> Result<Page<StepTypeEntry>, EngineError> {
        self.authorize(caller, Operation::ReadPlugins)?;
        let plugins = self.registry.list();
        let total = plugins
            .iter()
            .map(|p| p.manifest.step_types.len() as u64)
            .sum();
        let skip = usize::try_from(u64::from(page.page - 1) * u64::from(page.page_size))
            .unwrap_or(usize::MAX);
        // Only the page's entries are built (and their schemas cloned).
        let items = step_types(&plugins)
            .skip(skip)
            .take(page.page_size as usize)
            .collect();
        Ok(Page { items, total })
    }

    /// One step type by `plugin/step-type`, from the newest installed
    /// version of the plugin that offers it; `None` when none does.
    pub fn step_type(
        &self,
        caller: &Principal,
        full_name: &str,
    ) -> Result<Option<StepTypeEntry>, EngineError> {
        self.authorize(caller, Operation::ReadPlugins)?;
        let Some((plugin, step)) = full_name.split_once('/') else {
            return Ok(None);
        };
        let plugins: Vec<PluginEntry> = self
            .registry
            .list()
            .into_iter()
            .filter(|p| p.manifest.name == plugin && p.manifest.step_type(step).is_some())
            .collect();
        Ok(step_types(&plugins).filter(|s| s.step.name == step).last())
    }
}

/// A directory grant must map a path the plugin requested to an existing
/// absolute host directory: a typo would otherwise surface only when a run
/// fails to start.
fn check_directories(entry: &PluginEntry, grants: &CapabilityGrants) -> Result<(), EngineError> {
    let requested = &entry.manifest.requested.directories;
    let mut problems = Vec::new();
    for (i, dir) in grants.directories.iter().enumerate() {
        let pointer = format!("/directories/{i}");
        if !requested.contains(&dir.guest_path) {
            problems.push(ConfigProblem::new(
                format!("{pointer}/guestPath"),
                ConfigProblemCode::InvalidDirectory,
                format!(
                    "the plugin did not request `{}`; it requests {}",
                    dir.guest_path,
                    if requested.is_empty() {
                        "no directory".to_owned()
                    } else {
                        requested.join(", ")
                    }
                ),
            ));
        }
        if !dir.host_path.is_absolute() || !dir.host_path.is_dir() {
            problems.push(ConfigProblem::new(
                format!("{pointer}/hostPath"),
                ConfigProblemCode::InvalidDirectory,
                format!(
                    "`{}` is not an existing absolute directory on the server",
                    dir.host_path.display()
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::InvalidGrants(problems))
    }
}
