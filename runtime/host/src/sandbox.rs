//! The per-invocation sandbox: the data every `Store` carries, built from
//! a plugin's effective grants and the invocation's limits.
//!
//! Each invocation gets a fresh store and instance, so no state leaks
//! between invocations or runs. Only what was granted is wired in: no
//! preopened directories, environment or network unless granted.

use crate::egress::{DenialLog, EgressHooks};
use crate::error::InvokeError;
use crate::events::{InvocationObserver, LogLevel, LogSource, PluginEvent};
use crate::net::NetPolicy;
use crate::output::CapturedOutput;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use weft_model::{EffectiveGrants, InvocationLimits};

/// How much of stdout/stderr the host keeps per invocation.
const CAPTURE_BYTES: usize = 16 * 1024;
/// Longest log line kept; longer ones are truncated (and still counted in full).
const MAX_LOG_LINE_BYTES: usize = 16 * 1024;
/// Largest table a plugin may grow to (elements).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Everything a sandbox needs besides the limits.
pub(crate) struct SandboxSpec {
    pub(crate) grants: Arc<EffectiveGrants>,
    pub(crate) secrets: Arc<HashMap<String, String>>,
    pub(crate) observer: Option<Arc<dyn InvocationObserver>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) limits: InvocationLimits,
}

/// The `T` of every plugin `Store<T>`.
pub(crate) struct SandboxState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    egress: EgressHooks,
    /// The socket policy; `None` when nothing outbound is granted.
    pub(crate) net: Option<Arc<NetPolicy>>,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) io: InvocationIo,
    /// Epoch ticks spent executing WebAssembly; compared with `cpu_tick_budget`.
    pub(crate) cpu_ticks: u64,
    pub(crate) cpu_tick_budget: u64,
}

impl SandboxState {
    pub(crate) fn new(spec: SandboxSpec, epoch_tick: Duration) -> Result<Self, InvokeError> {
        let SandboxSpec {
            grants,
            secrets,
            observer,
            cancel,
            limits,
        } = spec;
        let stdout = CapturedOutput::new(CAPTURE_BYTES);
        let stderr = CapturedOutput::new(CAPTURE_BYTES);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        for key in &grants.env {
            if let Ok(value) = std::env::var(key) {
                wasi.env(key, value);
            }
        }
        for dir in &grants.directories {
            let perms = if dir.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            wasi.preopened_dir(&dir.host_path, &dir.guest_path, perms)
                .map_err(|e| {
                    InvokeError::Instantiate(format!(
                        "cannot preopen {} for {}: {e}",
                        dir.host_path.display(),
                        dir.guest_path
                    ))
                })?;
        }
        let denials = DenialLog::default();
        // Sockets are on for every plugin, behind the policy (see `net`):
        // what no grant covers is refused and the refusal recorded, so a
        // plugin that tries an ungranted connection fails with
        // CAPABILITY_DENIED naming the address, even with no grant at all.
        let policy = Arc::new(NetPolicy::new(grants.clone(), denials.clone()));
        let check = policy.clone();
        wasi.allow_tcp(true)
            .allow_ip_name_lookup(true)
            .socket_addr_check(move |addr: SocketAddr, use_: SocketAddrUse| {
                let allowed = check.check(addr, use_);
                Box::pin(async move { allowed })
            });
        let net = Some(policy);
        let ticks = |d: Duration| (d.as_nanos() / epoch_tick.as_nanos().max(1)).max(1) as u64;
        Ok(Self {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            egress: EgressHooks {
                grants: grants.clone(),
                denials: denials.clone(),
                max_timeout: limits.timeout,
            },
            net,
            limiter: MemoryLimiter {
                max_bytes: limits.max_memory_bytes,
                hit: false,
            },
            cpu_ticks: 0,
            cpu_tick_budget: ticks(limits.cpu_time),
            io: InvocationIo {
                observer,
                grants,
                secrets,
                cancel,
                limits,
                log_lines: 0,
                log_bytes: 0,
                artifact_bytes: 0,
                artifacts: 0,
                violation: None,
                denials,
                stdout,
                stderr,
            },
        })
    }
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for SandboxState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

/// Caps linear memory and tables, remembering whether the cap was hit so
/// a subsequent trap can be reported as what it really was.
pub(crate) struct MemoryLimiter {
    max_bytes: u64,
    pub(crate) hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// The invocation's side of the `host` interface: limits, counters and
/// where events go.
pub(crate) struct InvocationIo {
    observer: Option<Arc<dyn InvocationObserver>>,
    grants: Arc<EffectiveGrants>,
    secrets: Arc<HashMap<String, String>>,
    cancel: CancellationToken,
    pub(crate) limits: InvocationLimits,
    log_lines: u32,
    log_bytes: u64,
    artifact_bytes: u64,
    /// Artifacts emitted so far, refused ones included (each call costs the host).
    artifacts: u32,
    /// The first limit the plugin broke through a host call.
    pub(crate) violation: Option<InvokeError>,
    pub(crate) denials: DenialLog,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
}

impl InvocationIo {
    fn emit(&self, event: PluginEvent) {
        if let Some(o) = &self.observer {
            o.on_event(event);
        }
    }

    /// Counts one line of `bytes` against the log budget, or fails the
    /// invocation when the plugin is past it.
    fn count_log_line(&mut self, bytes: usize) -> Result<(), InvokeError> {
        self.log_lines = self.log_lines.saturating_add(1);
        self.log_bytes = self.log_bytes.saturating_add(bytes as u64);
        if self.log_lines > self.limits.max_log_lines {
            return Err(self.violate(InvokeError::LogLimitExceeded(format!(
                "more than {} lines",
                self.limits.max_log_lines
            ))));
        }
        if self.log_bytes > self.limits.max_log_bytes {
            return Err(self.violate(InvokeError::LogLimitExceeded(format!(
                "more than {} bytes",
                self.limits.max_log_bytes
            ))));
        }
        Ok(())
    }

    /// Records a log line, or fails the invocation when the plugin is
    /// past its log budget.
    pub(crate) fn log(
        &mut self,
        level: LogLevel,
        mut message: String,
        context: Option<String>,
    ) -> Result<(), InvokeError> {
        self.count_log_line(message.len() + context.as_ref().map_or(0, String::len))?;
        if self.observer.is_none() {
            return Ok(());
        }
        truncate_utf8(&mut message, MAX_LOG_LINE_BYTES);
        let context = context.map(crate::invoke::side_json);
        self.emit(PluginEvent::Log {
            at: SystemTime::now(),
            level,
            message,
            context,
            source: LogSource::Plugin,
        });
        Ok(())
    }

    /// Records progress. Every report is stored as a log line, so it
    /// counts against the same budget and is truncated like one.
    pub(crate) fn progress(
        &mut self,
        fraction: f32,
        mut message: Option<String>,
    ) -> Result<(), InvokeError> {
        self.count_log_line(message.as_ref().map_or(0, String::len))?;
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if let Some(m) = &mut message {
            truncate_utf8(m, MAX_LOG_LINE_BYTES);
        }
        self.emit(PluginEvent::Progress {
            at: SystemTime::now(),
            fraction,
            message,
        });
        Ok(())
    }

    /// Records an artifact. `Err(InvokeError)` fails the invocation (too
    /// many artifacts); `Ok(Err(_))` is a refusal the plugin may handle.
    pub(crate) fn artifact(
        &mut self,
        name: String,
        media_type: String,
        data: Vec<u8>,
    ) -> Result<Result<(), String>, InvokeError> {
        self.artifacts = self.artifacts.saturating_add(1);
        if self.artifacts > self.limits.max_artifacts {
            return Err(self.violate(InvokeError::ArtifactCountExceeded {
                limit: self.limits.max_artifacts,
            }));
        }
        Ok(self.accept_artifact(name, media_type, data))
    }

    fn accept_artifact(
        &mut self,
        name: String,
        media_type: String,
        data: Vec<u8>,
    ) -> Result<(), String> {
        if name.is_empty() || name.len() > 255 || name.contains(['/', '\\', '\0']) {
            return Err("artifact names must be 1-255 characters without `/`, `\\` or NUL".into());
        }
        let total = self.artifact_bytes + data.len() as u64;
        if total > self.limits.max_artifact_bytes {
            return Err(format!(
                "artifact budget of {} bytes exceeded",
                self.limits.max_artifact_bytes
            ));
        }
        self.artifact_bytes = total;
        self.emit(PluginEvent::Artifact {
            at: SystemTime::now(),
            name,
            media_type,
            data,
        });
        Ok(())
    }

    pub(crate) fn secret(&self, name: &str) -> Option<String> {
        if !self.grants.allows_secret(name) {
            self.denials
                .record(format!("secret {name:?} is not granted"));
            return None;
        }
        self.secrets.get(name).cloned()
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn violate(&mut self, e: InvokeError) -> InvokeError {
        if self.violation.is_none() {
            self.violation = Some(e.clone());
        }
        e
    }

    /// Forwards what the plugin printed as log lines and returns the tail of
    /// stderr for trap messages.
    pub(crate) fn flush_stdio(&mut self) -> String {
        let (out, out_dropped) = self.stdout.take();
        let (err, err_dropped) = self.stderr.take();
        for (text, dropped, level, source) in [
            (&out, out_dropped, LogLevel::Info, LogSource::Stdout),
            (&err, err_dropped, LogLevel::Warn, LogSource::Stderr),
        ] {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                self.emit(PluginEvent::Log {
                    at: SystemTime::now(),
                    level,
                    message: line.to_owned(),
                    context: None,
                    source,
                });
            }
            if dropped > 0 {
                self.emit(PluginEvent::Log {
                    at: SystemTime::now(),
                    level: LogLevel::Warn,
                    message: format!("{dropped} more bytes of output were dropped"),
                    context: None,
                    source,
                });
            }
        }
        let err = err.trim_end();
        let start = err.len().saturating_sub(2048);
        let start = (start..err.len())
            .find(|i| err.is_char_boundary(*i))
            .unwrap_or(err.len());
        err[start..].to_owned()
    }
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" …[truncated]");
    }
}
