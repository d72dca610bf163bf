//! Installing a plugin: check the bytes, compile (or load from cache),
//! detect the roles from the exports, pre-link, call `describe()` and
//! validate the manifest.

use crate::bindings::{ContractVersion, Interface, latest, v0_1};
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
    EffectiveGrants, PluginDigest, PluginManifest, PluginRoles, RawManifest, RawStepType,
};

/// A compiled, validated, pre-linked plugin ready to invoke.
pub struct LoadedPlugin {
    /// Content digest of the component bytes.
    pub digest: PluginDigest,
    /// The validated manifest.
    pub manifest: PluginManifest,
    /// The contract version the component was built against.
    pub contract: ContractVersion,
    pub(crate) pre: InstancePre<SandboxState>,
    pub(crate) step: Option<StepExport>,
    pub(crate) source: Option<latest::source::GuestIndices>,
    pub(crate) destination: Option<latest::destination::GuestIndices>,
    pub(crate) grants: RwLock<Arc<EffectiveGrants>>,
}

/// Where a plugin's `run` export lives, by contract version.
pub(crate) enum StepExport {
    /// Built against the latest contract.
    Latest(latest::step::GuestIndices),
    /// Built against 0.1.0; called through the `since_v0_1` adapter.
    V0_1(v0_1::step::GuestIndices),
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
    let component = tokio::task::spawn_blocking(move || {
        let compiled = Component::new(&engine, &owned);
        crate::trim::release_freed_memory();
        compiled
    })
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

/// Reads the component's exports to find the contract version it was
/// built against and which Weft roles it plays.
pub(crate) fn detect_roles(
    host: &HostEngine,
    component: &Component,
) -> Result<(ContractVersion, PluginRoles), InstallError> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(&host.engine).map(|(name, _)| name).collect();
    let exports_at =
        |v: ContractVersion, i: Interface| exports.contains(&v.export_name(i).as_str());
    for version in ContractVersion::SUPPORTED {
        if exports_at(version, Interface::Plugin) {
            let roles = PluginRoles {
                step: exports_at(version, Interface::Step),
                source: exports_at(version, Interface::Source),
                destination: exports_at(version, Interface::Destination),
            };
            if version == ContractVersion::V0_1 && (roles.source || roles.destination) {
                return Err(crate::since_v0_1::connector_refused());
            }
            return Ok((version, roles));
        }
    }
    if let Some(other) = exports.iter().find(|n| n.starts_with("weft:plugin/")) {
        let found = other
            .rsplit_once('@')
            .map_or("(unversioned)", |(_, v)| v)
            .to_owned();
        return Err(InstallError::UnsupportedWitVersion {
            found,
            supported: ContractVersion::supported_list(),
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

/// An export of an unexpected shape: the component claims a version but
/// does not follow it.
fn misshapen(version: ContractVersion, what: &str, e: &wasmtime::Error) -> InstallError {
    InstallError::UnsupportedWitVersion {
        found: format!(
            "{} with a `{what}` interface of a different shape ({e:#})",
            version.as_str()
        ),
        supported: ContractVersion::supported_list(),
    }
}

/// Pre-links, calls `describe()` and validates: the expensive half of an install.
pub(crate) async fn load(
    host: &HostEngine,
    digest: PluginDigest,
    component: Component,
) -> Result<LoadedPlugin, InstallError> {
    let (contract, roles) = detect_roles(host, &component)?;
    let pre = host
        .linker
        .instantiate_pre(&component)
        .map_err(|e| InstallError::UnsatisfiedImports(format!("{e:#}")))?;
    let exports = Exports::find(contract, roles, &pre)?;
    let raw = describe(host, &pre, &exports).await?;
    let manifest = raw.validate(roles).map_err(InstallError::InvalidManifest)?;
    Ok(LoadedPlugin {
        digest,
        manifest,
        contract,
        pre,
        step: exports.step,
        source: exports.source,
        destination: exports.destination,
        grants: RwLock::new(Arc::new(EffectiveGrants::default())),
    })
}

/// The export indices of one component, found once at load.
struct Exports {
    plugin: PluginExport,
    step: Option<StepExport>,
    source: Option<latest::source::GuestIndices>,
    destination: Option<latest::destination::GuestIndices>,
}

enum PluginExport {
    Latest(latest::plugin::GuestIndices),
    V0_1(v0_1::plugin::GuestIndices),
}

impl Exports {
    fn find(
        contract: ContractVersion,
        roles: PluginRoles,
        pre: &InstancePre<SandboxState>,
    ) -> Result<Self, InstallError> {
        let v = contract;
        Ok(match contract {
            ContractVersion::V0_2 => Self {
                plugin: PluginExport::Latest(
                    latest::plugin::GuestIndices::new(pre)
                        .map_err(|e| misshapen(v, "plugin", &e))?,
                ),
                step: roles
                    .step
                    .then(|| latest::step::GuestIndices::new(pre).map(StepExport::Latest))
                    .transpose()
                    .map_err(|e| misshapen(v, "step", &e))?,
                source: roles
                    .source
                    .then(|| latest::source::GuestIndices::new(pre))
                    .transpose()
                    .map_err(|e| misshapen(v, "source", &e))?,
                destination: roles
                    .destination
                    .then(|| latest::destination::GuestIndices::new(pre))
                    .transpose()
                    .map_err(|e| misshapen(v, "destination", &e))?,
            },
            ContractVersion::V0_1 => Self {
                plugin: PluginExport::V0_1(
                    v0_1::plugin::GuestIndices::new(pre).map_err(|e| misshapen(v, "plugin", &e))?,
                ),
                step: roles
                    .step
                    .then(|| v0_1::step::GuestIndices::new(pre).map(StepExport::V0_1))
                    .transpose()
                    .map_err(|e| misshapen(v, "step", &e))?,
                source: None,
                destination: None,
            },
        })
    }
}

/// Calls `describe()` and, for connectors, `spec()` of each role, all in one instance.
async fn describe(
    host: &HostEngine,
    pre: &InstancePre<SandboxState>,
    exports: &Exports,
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
        describe_in(&mut store, pre, exports),
        deadline,
        &cancel,
        Duration::ZERO,
    )
    .await;
    let stderr = store.data_mut().io.flush_stdio();
    match finish {
        Finish::Done(Ok(m)) => m,
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

/// The calls of [`describe`] inside its sandbox.
async fn describe_in(
    store: &mut wasmtime::Store<SandboxState>,
    pre: &InstancePre<SandboxState>,
    exports: &Exports,
) -> wasmtime::Result<Result<RawManifest, InstallError>> {
    let instance = pre.instantiate_async(&mut *store).await?;
    match &exports.plugin {
        PluginExport::V0_1(idx) => {
            let m = idx
                .load(&mut *store, &instance)?
                .call_describe(&mut *store)
                .await?;
            Ok(crate::since_v0_1::manifest(m))
        }
        PluginExport::Latest(idx) => {
            let m = idx
                .load(&mut *store, &instance)?
                .call_describe(&mut *store)
                .await?;
            let mut raw = raw_manifest(m);
            if let Some(idx) = &exports.source {
                let spec = idx
                    .load(&mut *store, &instance)?
                    .call_spec(&mut *store)
                    .await?;
                raw.source = Some(crate::convert::raw_source_spec(spec));
            }
            if let Some(idx) = &exports.destination {
                let spec = idx
                    .load(&mut *store, &instance)?
                    .call_spec(&mut *store)
                    .await?;
                raw.destination = Some(crate::convert::raw_destination_spec(spec));
            }
            Ok(Ok(raw))
        }
    }
}

fn raw_manifest(m: latest::types::Manifest) -> RawManifest {
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
        source: None,
        destination: None,
        outbound_hosts: m.requested.outbound_hosts,
        directories: m.requested.directories,
        env: m.requested.env,
        secrets: m.requested.secrets,
    }
}
