//! Paged lists of plugins, step types, templates, revisions, a run's steps
//! and a step's attempts: each can grow without bound (a plugin may offer
//! hundreds of step types, templates and their revisions accumulate, a
//! `forEach` fans out to thousands of items, a step retries), so none is
//! answered whole.

use crate::{Engine, EngineError, PluginEntry};
use weft_model::{PluginDigest, StepTypeInfo};

/// Largest page size of any list.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Which page of a list: `page` from 1, `page_size` in 1..=[`MAX_PAGE_SIZE`]
/// (out-of-range values are clamped, as the store does for runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Page number from 1.
    pub page: u32,
    /// Items per page.
    pub page_size: u32,
}

impl PageRequest {
    /// The page, clamped into range.
    pub fn new(page: u32, page_size: u32) -> Self {
        Self {
            page: page.max(1),
            page_size: page_size.clamp(1, MAX_PAGE_SIZE),
        }
    }

    /// This page's slice of `all`, with the total.
    fn slice<T>(self, all: Vec<T>) -> Page<T> {
        let total = all.len() as u64;
        let skip = usize::try_from(u64::from(self.page - 1) * u64::from(self.page_size))
            .unwrap_or(usize::MAX);
        let items = all
            .into_iter()
            .skip(skip)
            .take(self.page_size as usize)
            .collect();
        Page { items, total }
    }
}

/// One page of a list and the size of the whole list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// Items in the whole list.
    pub total: u64,
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
    pub fn list_plugins(&self, page: PageRequest) -> Page<PluginEntry> {
        page.slice(self.registry.list())
    }

    /// A page of the step types of installed plugins.
    pub fn list_step_types(&self, page: PageRequest) -> Page<StepTypeEntry> {
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
        Page { items, total }
    }

    /// One step type by `plugin/step-type`, from the newest installed
    /// version of the plugin that offers it.
    pub fn step_type(&self, full_name: &str) -> Option<StepTypeEntry> {
        let (plugin, step) = full_name.split_once('/')?;
        let plugins: Vec<PluginEntry> = self
            .registry
            .list()
            .into_iter()
            .filter(|p| p.manifest.name == plugin && p.manifest.step_type(step).is_some())
            .collect();
        step_types(&plugins).filter(|s| s.step.name == step).last()
    }

    /// A page of templates, by name.
    pub async fn list_templates(
        &self,
        page: PageRequest,
    ) -> Result<Page<weft_store::TemplateRecord>, EngineError> {
        let p = self
            .shared
            .store
            .list_templates(page.page, page.page_size)
            .await?;
        Ok(Page {
            items: p.templates,
            total: p.total,
        })
    }

    /// A page of a run's steps (and `forEach` items), in key order.
    pub async fn list_steps(
        &self,
        run_id: &str,
        page: PageRequest,
    ) -> Result<Page<weft_store::StepRecord>, EngineError> {
        self.run(run_id).await?;
        Ok(page.slice(self.shared.store.steps(run_id).await?))
    }

    /// One step (or `forEach` item, `id[i]`) of a run.
    pub async fn step(
        &self,
        run_id: &str,
        key: &str,
    ) -> Result<weft_store::StepRecord, EngineError> {
        self.run(run_id).await?;
        self.shared
            .store
            .steps(run_id)
            .await?
            .into_iter()
            .find(|s| s.key == key)
            .ok_or_else(|| EngineError::NotFound(format!("step {key} of run {run_id}")))
    }

    /// A page of a step's attempts, oldest first.
    pub async fn list_step_attempts(
        &self,
        run_id: &str,
        key: &str,
        page: PageRequest,
    ) -> Result<Page<weft_store::AttemptRecord>, EngineError> {
        let step = self.step(run_id, key).await?;
        let p = self
            .shared
            .store
            .step_attempts(&step, page.page, page.page_size)
            .await?;
        Ok(Page {
            items: p.attempts,
            total: p.total,
        })
    }

    /// A page of a template's revisions (by id or name), oldest first.
    pub async fn list_template_revisions(
        &self,
        id_or_name: &str,
        page: PageRequest,
    ) -> Result<Page<weft_store::TemplateRevisionRecord>, EngineError> {
        let t = self.shared.store.template(id_or_name).await?;
        let p = self
            .shared
            .store
            .list_template_revisions(&t.template_id, page.page, page.page_size)
            .await?;
        Ok(Page {
            items: p.revisions,
            total: p.total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::PageRequest;

    #[test]
    fn pages_slice_and_clamp() {
        let all: Vec<u32> = (1..=7).collect();
        let p = PageRequest::new(2, 3).slice(all.clone());
        assert_eq!((p.items, p.total), (vec![4, 5, 6], 7));
        let p = PageRequest::new(3, 3).slice(all.clone());
        assert_eq!(p.items, vec![7]);
        let p = PageRequest::new(9, 3).slice(all.clone());
        assert!(p.items.is_empty());
        assert_eq!(p.total, 7);
        assert_eq!(PageRequest::new(0, 0), PageRequest::new(1, 1));
        assert_eq!(PageRequest::new(1, 1000).page_size, 100);
        let p = PageRequest::new(u32::MAX, 100).slice(all);
        assert!(p.items.is_empty(), "a huge page number does not overflow");
    }
}
