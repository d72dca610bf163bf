//! The process-wide wasmtime engine: configuration, the linker every plugin
//! is instantiated against, and the epoch ticker that drives timeouts,
//! CPU budgets and cooperative yielding.

use crate::budget::MemoryBudget;
use crate::sandbox::SandboxState;
use std::path::PathBuf;
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use weft_model::InvocationLimits;

/// How the host is set up. One per process.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Interval of the epoch ticker: the granularity of timeouts, CPU
    /// accounting and yielding to other tasks.
    pub epoch_tick: Duration,
    /// Largest component accepted for install.
    pub max_component_bytes: usize,
    /// Plugin instances that may exist at once (size of the instance pool).
    pub max_concurrent_instances: u32,
    /// Largest linear memory any plugin may be given; per-invocation
    /// limits are clamped to it.
    pub memory_ceiling_bytes: u64,
    /// Limits used when an invocation does not bring its own.
    pub default_limits: InvocationLimits,
    /// How long `describe()` may take on install.
    pub describe_timeout: Duration,
    /// Memory all running invocations together may reserve: each reserves
    /// its `max_memory_bytes` before it starts and waits while the budget
    /// is spent. Defaults to half of the machine's memory
    /// ([`default_memory_budget_bytes`](crate::default_memory_budget_bytes)).
    pub memory_budget_bytes: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            epoch_tick: Duration::from_millis(1),
            max_component_bytes: 64 << 20,
            max_concurrent_instances: 1000,
            memory_ceiling_bytes: 1 << 30,
            default_limits: InvocationLimits::default(),
            describe_timeout: Duration::from_secs(10),
            memory_budget_bytes: crate::budget::default_memory_budget_bytes(),
        }
    }
}

/// Why the host could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HostSetupError {
    /// wasmtime rejected the configuration (or the platform lacks support).
    #[error("cannot create the wasmtime engine: {0}")]
    Engine(String),
    /// WASI or the host interface could not be linked.
    #[error("cannot link host interfaces: {0}")]
    Linker(String),
    /// The cache directory could not be created.
    #[error("cannot create cache directory: {0}")]
    Cache(#[from] std::io::Error),
}

/// The engine, its linker and its epoch ticker.
pub(crate) struct HostEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<SandboxState>,
    pub(crate) config: HostConfig,
    pub(crate) budget: MemoryBudget,
}

impl HostEngine {
    pub(crate) fn new(config: HostConfig) -> Result<Self, HostSetupError> {
        let n = config.max_concurrent_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(8))
            .total_stacks(n)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_core_instances_per_component(16)
            .max_memory_size(usize::try_from(config.memory_ceiling_bytes).unwrap_or(usize::MAX))
            // Resetting a slot with madvise costs a TLB shootdown on every
            // core, which dominated short invocations. Where the kernel has
            // PAGEMAP_SCAN (Linux 6.7+) only the pages a plugin dirtied are
            // reset with memset and stay resident.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(16 << 20)
            .table_keep_resident(1 << 20)
            // With PAGEMAP_SCAN a reset normally leaves nothing to decommit
            // (an empty region), and a batch size of 1 then returns the slot
            // to the pool at once without a syscall. Larger batches park every
            // slot in a shared, locked queue until the batch fills and then
            // issue a `process_madvise` of empty regions: measured ~10% more
            // CPU per invocation and a bimodal sequential latency.
            .decommit_batch_size(1);
        let mut cfg = Config::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg).map_err(|e| HostSetupError::Engine(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| HostSetupError::Linker(format!("{e:#}")))?;
        crate::net::shadow_ip_name_lookup(&mut linker)
            .map_err(|e| HostSetupError::Linker(format!("{e:#}")))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| HostSetupError::Linker(format!("{e:#}")))?;
        // The latest `host` and, for older plugins, each adapter's `host`.
        crate::bindings::latest::step_plugin::StepPlugin::add_to_linker::<
            _,
            wasmtime::component::HasSelf<_>,
        >(&mut linker, |s: &mut SandboxState| s)
        .map_err(|e| HostSetupError::Linker(format!("{e:#}")))?;
        crate::bindings::v0_1::StepPlugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s: &mut SandboxState| s,
        )
        .map_err(|e| HostSetupError::Linker(format!("{e:#}")))?;

        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir)?;
        }
        spawn_epoch_ticker(&engine, config.epoch_tick);
        Ok(Self {
            engine,
            linker,
            budget: MemoryBudget::new(config.memory_budget_bytes),
            config,
        })
    }
}

/// Ticks the engine's epoch until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("weft-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        });
    if let Err(e) = spawned {
        // Without a ticker timeouts still fire (tokio timers) but CPU-bound
        // plugins cannot be interrupted; make that loud.
        tracing::error!("cannot start the epoch ticker thread: {e}");
    }
}
