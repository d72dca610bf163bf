//! Settings of `weft serve`, from (highest precedence first) command-line
//! flags, environment variables, the `weft.toml` file, and defaults.
//!
//! The file is `--config <path>` / `WEFT_CONFIG`, else `./weft.toml` when
//! it exists. Unknown keys are errors, so a typo is not silently ignored:
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! db = "surrealkv://./weft-data/db"
//! data_dir = "./weft-data"          # relative paths are from the working directory
//!
//! [http]                            # request body limits (bytes), per kind of route
//! max_body_bytes = 1048576          # run creation, answers, grants and the rest
//! max_template_body_bytes = 1048576 # workflow template create, update, validate
//! max_plugin_body_bytes = 67108864  # plugin upload (also the largest component installed)
//!
//! [engine]
//! max_concurrent_steps = 256        # step invocations at once, all runs together
//! shutdown_grace_ms = 30000         # on SIGTERM, time in-flight steps get to finish
//! min_retry_backoff_ms = 100        # shortest wait before a retry, whatever a template says
//!
//! [engine.templates]
//! max_steps = 1000
//! max_needs = 10000                 # `needs` entries, all steps together
//! max_attempts = 100                # a step's retry.maxAttempts
//!
//! [engine.step_limits]              # per invocation; a step's `timeout` overrides timeout_ms
//! timeout_ms = 300000
//! cpu_time_ms = 300000
//! max_memory_bytes = 268435456
//! max_output_bytes = 4194304
//! max_log_lines = 10000
//! max_log_bytes = 4194304
//! max_artifact_bytes = 67108864
//! cancel_grace_ms = 1000
//!
//! [engine.expressions]              # `if`, `forEach`, `with`: evaluated by the host
//! max_cost = 10000000               # cost units (one per call or iteration, plus sizes)
//! max_time_ms = 2000
//! max_result_bytes = 4194304
//! max_for_each_items = 10000
//! inline_cost = 100000              # spent on the async worker before moving off it
//! heavy_slots = 1                   # expensive evaluations at once (default: half the cores)
//! ```

use crate::server::body_limit::BodyLimits;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weft_engine::{EngineConfig, ExpressionSettings};
use weft_model::InvocationLimits;
use weft_model::template::TemplateLimits;

/// The file read when neither `--config` nor `WEFT_CONFIG` is given.
pub const DEFAULT_FILE: &str = "weft.toml";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default store URL.
pub const DEFAULT_DB: &str = "surrealkv://./weft-data/db";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./weft-data";
/// Default time in-flight steps get to finish on shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("invalid {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation (with line and column).
        message: String,
    },
    /// A value is out of range.
    #[error("invalid {path}: `{key}` {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, dotted (`engine.step_limits.timeout_ms`).
        key: &'static str,
        /// What is wrong.
        message: &'static str,
    },
}

/// The contents of `weft.toml`; every key is optional.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Store URL.
    pub db: Option<String>,
    /// Compile cache and admin token hash.
    pub data_dir: Option<PathBuf>,
    /// HTTP settings.
    #[serde(default)]
    pub http: HttpSection,
    /// Engine settings.
    #[serde(default)]
    pub engine: EngineSection,
}

/// `[http]`: request body limits; unset keys keep the defaults of
/// [`BodyLimits`].
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Body limit of every route without a limit of its own (bytes).
    pub max_body_bytes: Option<usize>,
    /// Body limit of template create, update and validate (bytes).
    pub max_template_body_bytes: Option<usize>,
    /// Body limit of a plugin upload, and the largest component the host
    /// installs (bytes).
    pub max_plugin_body_bytes: Option<usize>,
}

/// `[engine]`.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Step invocations running at once across all runs.
    pub max_concurrent_steps: Option<usize>,
    /// On SIGTERM/SIGINT, how long in-flight steps get to finish (ms).
    pub shutdown_grace_ms: Option<u64>,
    /// Memory for finished runs' records served without a store read
    /// (MiB; 0 turns the cache off).
    pub finished_run_cache_mb: Option<u64>,
    /// Memory all running step invocations together may reserve (MiB);
    /// each reserves its `max_memory_bytes` before it starts.
    pub memory_budget_mb: Option<u64>,
    /// Limits of every step invocation.
    #[serde(default)]
    pub step_limits: LimitsSection,
    /// Budgets of the expressions the host evaluates.
    #[serde(default)]
    pub expressions: ExpressionSettings,
    /// How large a template may be.
    #[serde(default)]
    pub templates: TemplateLimits,
    /// The shortest wait before a retry (ms), whatever a template asks for.
    pub min_retry_backoff_ms: Option<u64>,
}

/// `[engine.step_limits]`; unset keys keep the built-in defaults.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Wall-clock limit (ms).
    pub timeout_ms: Option<u64>,
    /// CPU-time limit (ms).
    pub cpu_time_ms: Option<u64>,
    /// Linear memory cap (bytes).
    pub max_memory_bytes: Option<u64>,
    /// Output cap (JSON bytes).
    pub max_output_bytes: Option<u64>,
    /// Log lines per invocation.
    pub max_log_lines: Option<u32>,
    /// Log bytes per invocation.
    pub max_log_bytes: Option<u64>,
    /// Artifact bytes per invocation.
    pub max_artifact_bytes: Option<u64>,
    /// Artifacts per invocation.
    pub max_artifacts: Option<u32>,
    /// Time a cancelled plugin gets to return on its own (ms).
    pub cancel_grace_ms: Option<u64>,
}

/// What flags and environment variables gave (clap already applied
/// flag-over-environment precedence between the two).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config` / `WEFT_CONFIG`.
    pub config: Option<PathBuf>,
    /// `--listen` / `WEFT_LISTEN`.
    pub listen: Option<String>,
    /// `--db` / `WEFT_DB`.
    pub db: Option<String>,
    /// `--data-dir` / `WEFT_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
}

/// The effective settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on.
    pub listen: String,
    /// Store URL.
    pub db: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Request body limits.
    pub body_limits: BodyLimits,
    /// Engine configuration.
    pub engine: EngineConfig,
    /// The plugin host's memory budget for running invocations (bytes).
    pub memory_budget_bytes: u64,
    /// On SIGTERM/SIGINT, how long in-flight steps get to finish.
    pub shutdown_grace: Duration,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
}

/// Reads the file (if any) and merges it under the overrides.
pub fn resolve(overrides: Overrides) -> Result<Settings, ConfigError> {
    let path = match &overrides.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.is_file()),
    };
    let file = match &path {
        Some(p) => load(p)?,
        None => FileConfig::default(),
    };
    merge(overrides, file, path)
}

/// Parses a `weft.toml` file.
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Applies precedence: override > file > default.
pub fn merge(
    o: Overrides,
    file: FileConfig,
    path: Option<PathBuf>,
) -> Result<Settings, ConfigError> {
    let where_ = path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
    let invalid = |key, message| ConfigError::Invalid {
        path: where_.clone(),
        key,
        message,
    };
    let mut body_limits = BodyLimits::default();
    let h = &file.http;
    let nonzero = |v: Option<usize>, key| match v {
        Some(0) => Err(invalid(key, "must be greater than 0")),
        other => Ok(other),
    };
    if let Some(b) = nonzero(h.max_body_bytes, "http.max_body_bytes")? {
        body_limits.request = b;
    }
    if let Some(b) = nonzero(h.max_template_body_bytes, "http.max_template_body_bytes")? {
        body_limits.template = b;
    }
    if let Some(b) = nonzero(h.max_plugin_body_bytes, "http.max_plugin_body_bytes")? {
        body_limits.plugin = b;
    }
    let mut engine = EngineConfig::default();
    if let Some(n) = file.engine.max_concurrent_steps {
        if n == 0 {
            return Err(invalid("engine.max_concurrent_steps", "must be at least 1"));
        }
        engine.max_concurrent_steps = n;
    }
    let x = &file.engine.expressions;
    if x.max_cost == 0 || x.max_time_ms == 0 || x.max_result_bytes == 0 || x.heavy_slots == 0 {
        return Err(invalid(
            "engine.expressions",
            "max_cost, max_time_ms, max_result_bytes and heavy_slots must be greater than 0",
        ));
    }
    engine.expressions = x.clone();
    let t = &file.engine.templates;
    if t.max_steps == 0 || t.max_attempts == 0 {
        return Err(invalid(
            "engine.templates",
            "max_steps and max_attempts must be at least 1",
        ));
    }
    engine.templates = *t;
    if let Some(ms) = file.engine.min_retry_backoff_ms {
        engine.min_retry_backoff = Duration::from_millis(ms);
    }
    if let Some(mb) = file.engine.finished_run_cache_mb {
        engine.finished_run_cache_bytes = mb.saturating_mul(1024 * 1024);
    }
    let memory_budget_bytes = match file.engine.memory_budget_mb {
        Some(0) => return Err(invalid("engine.memory_budget_mb", "must be greater than 0")),
        Some(mb) => mb.saturating_mul(1024 * 1024),
        None => weft_host::default_memory_budget_bytes(),
    };
    let l = &file.engine.step_limits;
    let limits: &mut InvocationLimits = &mut engine.step_limits;
    let positive = |v: Option<u64>, key| match v {
        Some(0) => Err(invalid(key, "must be greater than 0")),
        other => Ok(other),
    };
    if let Some(ms) = positive(l.timeout_ms, "engine.step_limits.timeout_ms")? {
        limits.timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = positive(l.cpu_time_ms, "engine.step_limits.cpu_time_ms")? {
        limits.cpu_time = Duration::from_millis(ms);
    }
    if let Some(b) = positive(l.max_memory_bytes, "engine.step_limits.max_memory_bytes")? {
        limits.max_memory_bytes = b;
    }
    if let Some(b) = positive(l.max_output_bytes, "engine.step_limits.max_output_bytes")? {
        limits.max_output_bytes = b;
    }
    if let Some(n) = l.max_log_lines {
        limits.max_log_lines = n;
    }
    if let Some(b) = l.max_log_bytes {
        limits.max_log_bytes = b;
    }
    if let Some(b) = l.max_artifact_bytes {
        limits.max_artifact_bytes = b;
    }
    if let Some(n) = l.max_artifacts {
        limits.max_artifacts = n;
    }
    if let Some(ms) = l.cancel_grace_ms {
        limits.cancel_grace = Duration::from_millis(ms);
    }
    Ok(Settings {
        listen: o
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
        db: o.db.or(file.db).unwrap_or_else(|| DEFAULT_DB.to_owned()),
        data_dir: o
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        body_limits,
        engine,
        memory_budget_bytes,
        shutdown_grace: file
            .engine
            .shutdown_grace_ms
            .map_or(DEFAULT_SHUTDOWN_GRACE, Duration::from_millis),
        file: path,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_without_file_or_overrides() {
        let s = merge(Overrides::default(), FileConfig::default(), None).unwrap();
        assert_eq!(s.listen, DEFAULT_LISTEN);
        assert_eq!(s.db, DEFAULT_DB);
        assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(
            s.engine.max_concurrent_steps,
            EngineConfig::default().max_concurrent_steps
        );
        assert_eq!(s.engine.step_limits, InvocationLimits::default());
        assert_eq!(s.body_limits, BodyLimits::default());
    }

    #[test]
    fn file_beats_defaults_and_overrides_beat_file() {
        let file = parse(
            r#"
            listen = "0.0.0.0:9000"
            db = "mem://"
            data_dir = "/var/lib/weft"
            [http]
            max_body_bytes = 2048
            max_plugin_body_bytes = 1000000
            [engine]
            max_concurrent_steps = 8
            finished_run_cache_mb = 0
            memory_budget_mb = 2048
            [engine.step_limits]
            timeout_ms = 1500
            max_log_lines = 50
            max_artifacts = 7
            "#,
        );
        let s = merge(Overrides::default(), file.clone(), None).unwrap();
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(s.db, "mem://");
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/weft"));
        assert_eq!(s.body_limits.request, 2048);
        assert_eq!(s.body_limits.plugin, 1_000_000);
        assert_eq!(
            s.body_limits.template,
            BodyLimits::default().template,
            "unset keys keep their defaults"
        );
        assert_eq!(s.engine.max_concurrent_steps, 8);
        assert_eq!(s.engine.finished_run_cache_bytes, 0);
        assert_eq!(s.engine.step_limits.timeout, Duration::from_millis(1500));
        assert_eq!(s.engine.step_limits.max_log_lines, 50);
        assert_eq!(s.engine.step_limits.max_artifacts, 7);
        assert_eq!(s.memory_budget_bytes, 2048 << 20);
        // Keys the file leaves out keep their defaults.
        assert_eq!(
            s.engine.step_limits.cpu_time,
            InvocationLimits::default().cpu_time
        );

        let o = Overrides {
            listen: Some("127.0.0.1:1".into()),
            db: Some("ws://db:8000".into()),
            data_dir: None,
            config: None,
        };
        let s = merge(o, file, None).unwrap();
        assert_eq!(s.listen, "127.0.0.1:1");
        assert_eq!(s.db, "ws://db:8000");
        assert_eq!(
            s.data_dir,
            PathBuf::from("/var/lib/weft"),
            "file still applies"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
        assert!(toml::from_str::<FileConfig>("[engine]\nmax_steps = 1").is_err());
        assert!(toml::from_str::<FileConfig>("[engine]\nmax_concurrent_steps = -1").is_err());
        let zero = parse("[engine]\nmax_concurrent_steps = 0");
        let e = merge(Overrides::default(), zero, None).unwrap_err();
        assert!(e.to_string().contains("engine.max_concurrent_steps"), "{e}");
        let zero = parse("[engine]\nmemory_budget_mb = 0");
        let e = merge(Overrides::default(), zero, None).unwrap_err();
        assert!(e.to_string().contains("engine.memory_budget_mb"), "{e}");
        let zero = parse("[engine.step_limits]\ntimeout_ms = 0");
        assert!(merge(Overrides::default(), zero, None).is_err());
        let zero = parse("[http]\nmax_template_body_bytes = 0");
        let e = merge(Overrides::default(), zero, None).unwrap_err();
        assert!(
            e.to_string().contains("http.max_template_body_bytes"),
            "{e}"
        );
        assert!(toml::from_str::<FileConfig>("[http]\nmax_bytes = 1").is_err());
    }

    #[test]
    fn explicit_file_must_exist_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let e = resolve(Overrides {
            config: Some(missing),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "listen = ").unwrap();
        let e = resolve(Overrides {
            config: Some(bad),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");

        let good = dir.path().join("weft.toml");
        std::fs::write(&good, "listen = \"127.0.0.1:7\"\n").unwrap();
        let s = resolve(Overrides {
            config: Some(good.clone()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(s.listen, "127.0.0.1:7");
        assert_eq!(s.file, Some(good));
    }
}
