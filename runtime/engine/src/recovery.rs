//! Recovery at start-up: every unfinished run gets its actor back, and a
//! run that cannot be loaded is failed (see `Store::quarantine_run`)
//! instead of stopping the server.

use crate::actor::{self, RunActor};
use crate::plan::RunPlan;
use crate::registry::Registry;
use crate::shared::RunSlot;
use crate::templates::parse_template;
use crate::{Engine, EngineError};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use weft_model::PluginDigest;
use weft_model::template::validate_template_with;
use weft_model::{RunId, WorkflowRun};
use weft_store::StoreError;

impl Engine {
    /// Starts an actor for every unfinished run, failing those that cannot be loaded.
    pub(crate) async fn recover(&self) -> Result<(), EngineError> {
        let ids = self.shared.store.unfinished_run_ids().await?;
        let n = ids.len();
        for id in ids {
            match self.recover_run(&id).await {
                Ok(()) => {}
                // The store is unreachable: the run may well recover next
                // start. Any other error is about this run's own records,
                // since listing the runs just worked.
                Err(
                    e @ (EngineError::Store(StoreError::Connect(_)) | EngineError::ShuttingDown),
                ) => {
                    tracing::error!(run = %id, "cannot recover run now: {e}");
                }
                // The run itself cannot go on: fail it, keep what it was.
                Err(e) => {
                    tracing::error!(run = %id, "run cannot be recovered, failing it: {e}");
                    let reason = format!("the run could not be recovered after a restart: {e}");
                    if let Err(q) = self.shared.store.quarantine_run(&id, &reason).await {
                        tracing::error!(run = %id, "cannot mark the run failed: {q}");
                    }
                }
            }
        }
        if n > 0 {
            tracing::info!(runs = n, "recovered unfinished runs");
        }
        Ok(())
    }

    /// Loads one unfinished run and starts its actor.
    async fn recover_run(&self, id: &RunId) -> Result<(), EngineError> {
        let run = self.shared.store.get_run(id).await?;
        let (run, steps) = self.shared.load_run(run).await?;
        let plan = self.plan_for(&run).await?;
        let (tx, rx) = mpsc::channel(actor::COMMAND_QUEUE);
        self.shared
            .lock_runs()
            .insert(run.run_id.clone(), RunSlot::Active(tx));
        let mut actor = RunActor::new(self.shared.clone(), plan, run, steps, rx);
        actor.recover();
        tokio::spawn(actor.run());
        Ok(())
    }

    /// Rebuilds a run's plan from its pinned revision and plugin digests.
    pub(crate) async fn plan_for(&self, run: &WorkflowRun) -> Result<Arc<RunPlan>, EngineError> {
        let rev = self
            .shared
            .store
            .template_revision(&run.template_id, run.revision)
            .await?;
        let template = parse_template(&rev.body)?;
        let pinned = PinnedCatalog {
            registry: &self.registry,
            pinned: &run.pinned_plugins,
        };
        let validated = validate_template_with(&template, &pinned, &self.shared.config.templates)
            .map_err(EngineError::InvalidTemplate)?;
        Ok(RunPlan::new(
            validated,
            self.shared.evaluator.clone(),
            self.shared.config.min_retry_backoff,
        ))
    }
}

/// Resolves step types to the digests a run pinned, so a recovered run
/// keeps using exactly the plugins it started with.
struct PinnedCatalog<'a> {
    registry: &'a Registry,
    pinned: &'a BTreeMap<String, PluginDigest>,
}

impl weft_model::template::StepTypeCatalog for PinnedCatalog<'_> {
    fn resolve(
        &self,
        r: &weft_model::StepTypeRef,
    ) -> Result<weft_model::template::ResolvedStepType, weft_model::template::CatalogMiss> {
        let mut pinned_for_plugin = self
            .pinned
            .values()
            .filter_map(|d| self.registry.get(d))
            .filter(|e| e.manifest.name == r.plugin);
        match pinned_for_plugin.next() {
            Some(e) => e.resolve_step(&r.step_type),
            // Compensation step types were not pinned: resolve them normally.
            None => self.registry.resolve(r),
        }
    }
}
