//! Installing a plugin: check the bytes, compile (or load from cache),
//! detect the roles from the exports, pre-link, call `describe()` and
//! validate the manifest.

use crate::bindings::names;
use crate::bindings::step_plugin::exports::weft::plugin::{plugin, step};
use crate::bindings::step_plugin::weft::plugin::types;
use crate::cache::{CompileSource, CompiledCache};
use crate::engine::HostEngine;
use crate::error::InstallError;
use crate::invoke::{Finish, new_store, race};
use crate::sandbox::{SandboxSpec, SandboxState};
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, InstancePre};
use weft_model::{
    EffectiveGrants, PluginDigest, PluginManifest, PluginRoles, RawConnectorSpec, RawManifest,
    RawStepType,
};

/// A compiled, validated, pre-linked plugin ready to invoke.
pub struct LoadedPlugin {
    /// Content digest of the component bytes.
    pub digest: PluginDigest,
    /// The validated manifest.
    pub manifest: PluginManifest,
    pub(crate) pre: InstancePre<SandboxState>,
    pub(crate) step: Option<step::GuestIndices>,
    pub(crate) grants: RwLock<Arc<EffectiveGrants>>,
}

impl LoadedPlugin {
    /// The capabilities currently enforced for this plugin.
    pub fn grants(&self) -> Arc<EffectiveGrants> {
        self.grants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("digest", &self.digest)
            .field("name", &self.manifest.name)
            .finish()
    }
}

/// The result of an install: the plugin plus how it was obtained.
#[derive(Debug, Clone)]
pub struct InstalledPlugin {
    /// The loaded plugin.
    pub plugin: Arc<LoadedPlugin>,
    /// Whether it was compiled, loaded from the disk cache or already loaded.
    pub source: CompileSource,
    /// Time spent compiling or loading the artifact.
    pub compile_time: Duration,
    /// Total install time including `describe()`.
    pub total_time: Duration,
}

/// The sha256 digest of component bytes.
pub fn digest_of(bytes: &[u8]) -> PluginDigest {
    PluginDigest::from_sha256(Sha256::digest(bytes).into())
}

const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// Cheap structural check before anything is compiled.
pub(crate) fn check_bytes(bytes: &[u8], max: usize) -> Result<(), InstallError> {
    if bytes.len() > max {
        return Err(InstallError::TooLarge {
            size: bytes.len(),
            limit: max,
        });
    }
    if bytes.len() < 8 || bytes[..4] != COMPONENT_HEADER[..4] {
        return Err(InstallError::NotWasm);
    }
    if bytes[4..8] == [0x01, 0x00, 0x00, 0x00] {
        return Err(InstallError::CoreModule);
    }
    if bytes[4..8] != COMPONENT_HEADER[4..8] {
        return Err(InstallError::Invalid(format!(
            "unsupported WebAssembly encoding version {:02x?}",
            &bytes[4..8]
        )));
    }
    Ok(())
}

/// Compiles `bytes`, using the on-disk cache when possible.
pub(crate) async fn compile(
    host: &HostEngine,
    cache: Option<&CompiledCache>,
    digest: &PluginDigest,
    bytes: &[u8],
) -> Result<(Component, CompileSource), InstallError> {
    if let Some(c) = cache.and_then(|c| c.load(&host.engine, digest)) {
        return Ok((c, CompileSource::Cache));
    }
    let engine = host.engine.clone();
    let owned = bytes.to_vec();
    // Cranelift is CPU-bound for tens of milliseconds or more: keep it off the async workers.
    let component = tokio::task::spawn_blocking(move || Component::new(&engine, &owned))
        .await
        .map_err(|e| InstallError::Invalid(format!("compiler task failed: {e}")))?
        .map_err(|e| InstallError::Invalid(format!("{e:#}")))?;
    if let Some(cache) = cache
        && let Err(e) = cache.store(digest, &component)
    {
        tracing::warn!(%digest, "could not cache compiled component: {e}");
    }
    Ok((component, CompileSource::Compiled))
}

/// Reads the component's exports to find which Weft roles it plays.
pub(crate) fn detect_roles(
    host: &HostEngine,
    component: &Component,
) -> Result<PluginRoles, InstallError> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(&host.engine).map(|(name, _)| name).collect();
    if exports.contains(&names::PLUGIN) {
        return Ok(PluginRoles {
            step: exports.contains(&names::STEP),
            source: exports.contains(&names::SOURCE),
            destination: exports.contains(&names::DESTINATION),
        });
    }
    if let Some(other) = exports.iter().find(|n| n.starts_with("weft:plugin/")) {
        let found = other
            .rsplit_once('@')
            .map_or("(unversioned)", |(_, v)| v)
            .to_owned();
        return Err(InstallError::UnsupportedWitVersion {
            found,
            supported: names::VERSION.to_owned(),
        });
    }
    Err(InstallError::NotAPlugin {
        exports: if exports.is_empty() {
            "none".into()
        } else {
            exports.join(", ")
        },
    })
}

/// Pre-links, calls `describe()` and validates: the expensive half of an install.
pub(crate) async fn load(
    host: &HostEngine,
    digest: PluginDigest,
    component: Component,
) -> Result<LoadedPlugin, InstallError> {
    let roles = detect_roles(host, &component)?;
    let pre = host
        .linker
        .instantiate_pre(&component)
        .map_err(|e| InstallError::UnsatisfiedImports(format!("{e:#}")))?;
    let plugin_idx = plugin::GuestIndices::new(&pre)
        .map_err(|e| InstallError::DescribeFailed(format!("{e:#}")))?;
    let step = if roles.step {
        Some(
            step::GuestIndices::new(&pre).map_err(|e| InstallError::UnsupportedWitVersion {
                found: format!("a `step` interface of a different shape ({e:#})"),
                supported: names::VERSION.to_owned(),
            })?,
        )
    } else {
        None
    };
    let raw = describe(host, &pre, &plugin_idx).await?;
    let manifest = raw.validate(roles).map_err(InstallError::InvalidManifest)?;
    Ok(LoadedPlugin {
        digest,
        manifest,
        pre,
        step,
        grants: RwLock::new(Arc::new(EffectiveGrants::default())),
    })
}

async fn describe(
    host: &HostEngine,
    pre: &InstancePre<SandboxState>,
    idx: &plugin::GuestIndices,
) -> Result<RawManifest, InstallError> {
    let mut limits = host.config.default_limits.clone();
    limits.timeout = host.config.describe_timeout;
    limits.cpu_time = host.config.describe_timeout;
    let spec = SandboxSpec {
        grants: Arc::new(EffectiveGrants::default()),
        secrets: Arc::default(),
        observer: None,
        cancel: CancellationToken::new(),
        limits,
    };
    let state = SandboxState::new(spec, host.config.epoch_tick)
        .map_err(|e| InstallError::DescribeFailed(e.to_string()))?;
    let mut store = new_store(host, state);
    let deadline = Instant::now() + host.config.describe_timeout;
    let cancel = CancellationToken::new();
    let finish = race(
        async {
            let instance = pre.instantiate_async(&mut store).await?;
            idx.load(&mut store, &instance)?
                .call_describe(&mut store)
                .await
        },
        deadline,
        &cancel,
        Duration::ZERO,
    )
    .await;
    let stderr = store.data_mut().io.flush_stdio();
    match finish {
        Finish::Done(Ok(m)) => Ok(raw_manifest(m)),
        Finish::Done(Err(e)) => {
            let mut msg = format!("{e:#}");
            if !stderr.is_empty() {
                msg.push_str(&format!("; stderr: {stderr}"));
            }
            Err(InstallError::DescribeFailed(msg))
        }
        Finish::TimedOut | Finish::Cancelled => Err(InstallError::DescribeFailed(format!(
            "did not return within {:?}",
            host.config.describe_timeout
        ))),
    }
}

fn raw_manifest(m: types::Manifest) -> RawManifest {
    RawManifest {
        name: m.name,
        version: m.version,
        description: m.description,
        step_types: m
            .step_types
            .into_iter()
            .map(|s| RawStepType {
                name: s.name,
                description: s.description,
                input_schema: s.input_schema,
                output_schema: s.output_schema,
            })
            .collect(),
        connector: m.connector.map(|c| RawConnectorSpec {
            config_schema: c.config_schema,
            secret_fields: c.secret_fields,
            source: c.source,
            destination: c.destination,
        }),
        outbound_hosts: m.requested.outbound_hosts,
        directories: m.requested.directories,
        env: m.requested.env,
        secrets: m.requested.secrets,
    }
}
