//! On-disk cache of compiled components, keyed by the component's digest
//! and the engine's compatibility hash, so a restart does not recompile
//! and an engine upgrade never loads a stale artifact.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;
use weft_model::PluginDigest;

/// Where compiled artifacts live.
pub(crate) struct CompiledCache {
    dir: PathBuf,
    engine_key: String,
}

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    /// Compiled with cranelift just now.
    Compiled,
    /// Loaded from the on-disk cache.
    Cache,
    /// Already loaded in this process.
    Memory,
}

impl CompiledCache {
    pub(crate) fn new(dir: &Path, engine: &Engine) -> Self {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", h.finish()),
        }
    }

    fn path(&self, digest: &PluginDigest) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", digest.as_str(), self.engine_key))
    }

    /// Loads a cached artifact, or `None` when absent or unusable.
    pub(crate) fn load(&self, engine: &Engine, digest: &PluginDigest) -> Option<Component> {
        let path = self.path(digest);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file is one this host serialized into its own cache
        // directory under the component's content digest, and wasmtime
        // checks the header against this engine's configuration. Anyone
        // able to write there can already replace the server binary.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable cached artifact: {e:#}");
                None
            }
        }
    }

    /// Stores a compiled artifact atomically (write to a temp file, rename).
    pub(crate) fn store(
        &self,
        digest: &PluginDigest,
        component: &Component,
    ) -> std::io::Result<()> {
        let bytes = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        let path = self.path(digest);
        // Unique per write: concurrent installs of the same component must
        // never write through one temp file, or a reader could map a file
        // that is being truncated under it (SIGBUS).
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)
    }
}
