//! The Weft plugin host: runs plugins — WebAssembly components targeting
//! `weft:plugin@0.2.0`, or 0.1.0 through an adapter — in wasmtime sandboxes.
//!
//! One [`PluginHost`] per process owns the engine (async, pooling
//! allocator, epoch interruption ticking in the background), the linker,
//! the on-disk cache of compiled components and the loaded plugins.
//!
//! ```no_run
//! # async fn demo(bytes: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! use weft_host::{HostConfig, InvokeStepRequest, PluginHost};
//! use weft_model::{RunId, StepId};
//!
//! let host = PluginHost::new(HostConfig::default())?;
//! let installed = host.install(&bytes).await?;
//! let req = InvokeStepRequest::new(
//!     installed.plugin.digest.clone(),
//!     "fibo",
//!     serde_json::json!({"n": 10}),
//!     RunId::new("run-1")?,
//!     StepId::new("fib")?,
//! );
//! let outcome = host.invoke_step(req).await?;
//! # Ok(()) }
//! ```
//!
//! Isolation: every invocation gets a fresh store and instance; a plugin
//! gets only the capabilities it requested *and* an admin granted
//! ([`PluginHost::set_grants`]), enforced where traffic leaves the sandbox.
//! Misbehaviour (timeouts, memory, CPU, stack, output and log floods,
//! traps) fails that invocation with a specific [`InvokeError`]; the host
//! and other invocations carry on.

mod bindings;
mod budget;
mod cache;
mod connector;
mod convert;
mod egress;
mod engine;
mod error;
mod events;
mod imports;
mod install;
mod invoke;
mod net;
mod output;
mod sandbox;
mod session;
mod since_v0_1;
mod sync;
mod trim;

pub use bindings::ContractVersion;
pub use budget::default_memory_budget_bytes;
pub use cache::CompileSource;
pub use connector::ConnectorCallRequest;
pub use engine::{HostConfig, HostSetupError};
pub use error::{InstallError, InvokeError};
pub use events::{InvocationObserver, LogLevel, LogSource, PluginEvent};
pub use install::{InstalledPlugin, LoadedPlugin, digest_of};
pub use invoke::InvokeStepRequest;
pub use session::{ConnectorFailure, SessionOptions};
pub use sync::{
    ReadLimits, StreamCounters, SyncError, SyncProgress, SyncReport, SyncRequest, SyncSide,
    SyncSink,
};

use cache::CompiledCache;
use engine::HostEngine;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use weft_model::{CapabilityGrants, EffectiveGrants, PluginDigest, StepOutcome};

/// The plugin host. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct PluginHost {
    engine: Arc<HostEngine>,
    cache: Option<CompiledCache>,
    plugins: RwLock<HashMap<PluginDigest, Arc<LoadedPlugin>>>,
}

impl PluginHost {
    /// Creates the engine, links WASI, `wasi:http` and the host interface,
    /// and starts the epoch ticker.
    pub fn new(config: HostConfig) -> Result<Self, HostSetupError> {
        let engine = Arc::new(HostEngine::new(config)?);
        let cache = engine
            .config
            .cache_dir
            .as_deref()
            .map(|d| CompiledCache::new(d, &engine.engine));
        Ok(Self {
            engine,
            cache,
            plugins: RwLock::default(),
        })
    }

    /// The configuration the host was created with.
    pub fn config(&self) -> &HostConfig {
        &self.engine.config
    }

    /// Installs (or re-loads) a plugin from its component bytes: validates
    /// them, compiles or loads the cached artifact, calls `describe()` and
    /// validates the manifest. Installing the same bytes twice returns the
    /// already loaded plugin.
    pub async fn install(&self, bytes: &[u8]) -> Result<InstalledPlugin, InstallError> {
        let start = Instant::now();
        install::check_bytes(bytes, self.engine.config.max_component_bytes)?;
        let digest = digest_of(bytes);
        if let Some(plugin) = self.plugin(&digest) {
            let t = start.elapsed();
            return Ok(InstalledPlugin {
                plugin,
                source: CompileSource::Memory,
                compile_time: t,
                total_time: t,
            });
        }
        let (component, source) =
            install::compile(&self.engine, self.cache.as_ref(), &digest, bytes).await?;
        let compile_time = start.elapsed();
        let plugin = Arc::new(install::load(&self.engine, digest.clone(), component).await?);
        self.plugins
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest, plugin.clone());
        Ok(InstalledPlugin {
            plugin,
            source,
            compile_time,
            total_time: start.elapsed(),
        })
    }

    /// A loaded plugin by digest.
    pub fn plugin(&self, digest: &PluginDigest) -> Option<Arc<LoadedPlugin>> {
        self.plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
    }

    /// All loaded plugins.
    pub fn plugins(&self) -> Vec<Arc<LoadedPlugin>> {
        self.plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Unloads a plugin; in-flight invocations finish. Returns whether it was loaded.
    pub fn unload(&self, digest: &PluginDigest) -> bool {
        self.plugins
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest)
            .is_some()
    }

    /// Replaces what an admin granted a plugin; returns what is enforced
    /// from now on (the intersection with what the plugin requested).
    pub fn set_grants(
        &self,
        digest: &PluginDigest,
        granted: &CapabilityGrants,
    ) -> Result<EffectiveGrants, InvokeError> {
        let plugin = self
            .plugin(digest)
            .ok_or_else(|| InvokeError::UnknownPlugin(digest.clone()))?;
        let effective = EffectiveGrants::intersect(&plugin.manifest.requested, granted);
        *plugin.grants.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(effective.clone());
        Ok(effective)
    }

    /// Runs one attempt of a step. `Ok` carries the plugin's own verdict
    /// (success, failed, awaiting input); `Err` a failure the host imposed.
    pub async fn invoke_step(&self, req: InvokeStepRequest) -> Result<StepOutcome, InvokeError> {
        let plugin = self
            .plugin(&req.plugin)
            .ok_or_else(|| InvokeError::UnknownPlugin(req.plugin.clone()))?;
        invoke::invoke_step(&self.engine, &plugin, req).await
    }
}
