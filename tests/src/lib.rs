//! Shared helpers for Weft's end-to-end tests: locating the compiled guest
//! components, building hosts with a shared compile cache, a tiny
//! loopback HTTP server for capability tests, and the test PostgreSQL.

pub mod fake_http;
pub mod pg;

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use weft_host::{HostConfig, InvokeStepRequest, PluginEvent, PluginHost};
use weft_model::{InvocationLimits, PluginDigest, RunId, StepId};

/// Directory holding the compiled guests (`scripts/build-guests.sh`).
pub fn wasm_dir() -> PathBuf {
    std::env::var_os("WEFT_WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../build/wasm")))
}

/// The bytes of a compiled guest, e.g. `core` or `hostile`.
pub fn wasm(name: &str) -> Result<Vec<u8>> {
    let path = wasm_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).with_context(|| {
        format!(
            "missing {}: build the guests first with `scripts/build-guests.sh` (or `make test`)",
            path.display()
        )
    })
}

/// A host for tests: a small instance pool and a compile cache shared by
/// every test, so each component is compiled once per cache directory.
pub fn test_host() -> Result<PluginHost> {
    Ok(PluginHost::new(test_host_config())?)
}

/// The configuration of [`test_host`], for tests that change a setting.
pub fn test_host_config() -> HostConfig {
    HostConfig {
        cache_dir: Some(std::env::temp_dir().join("weft-test-compile-cache")),
        max_concurrent_instances: 64,
        memory_ceiling_bytes: 256 << 20,
        ..HostConfig::default()
    }
}

/// A TCP server on loopback that reads each connection to its end and
/// answers `echo:` followed by what it read. Returns its port; it runs
/// until the runtime shuts down.
pub async fn serve_tcp_echo() -> Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                if sock.read_to_end(&mut seen).await.is_err() {
                    return;
                }
                let mut reply = b"echo:".to_vec();
                reply.extend_from_slice(&seen);
                let _ = sock.write_all(&reply).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(port)
}

/// A host with `names` installed; returns the host and their digests in order.
pub async fn host_with(names: &[&str]) -> Result<(Arc<PluginHost>, Vec<PluginDigest>)> {
    let host = Arc::new(test_host()?);
    let mut digests = Vec::new();
    for name in names {
        let installed = host
            .install(&wasm(name)?)
            .await
            .with_context(|| format!("installing {name}"))?;
        digests.push(installed.plugin.digest.clone());
    }
    Ok((host, digests))
}

/// A step request with test ids.
pub fn request(
    plugin: &PluginDigest,
    step_type: &str,
    input: serde_json::Value,
) -> InvokeStepRequest {
    #[allow(clippy::unwrap_used)] // constant, valid ids
    InvokeStepRequest::new(
        plugin.clone(),
        step_type,
        input,
        RunId::new("run-test").unwrap(),
        StepId::new("step-test").unwrap(),
    )
}

/// What a plugin reports during one invocation, as it happens: lets a test
/// wait for a real sign that the plugin is running (its first log line)
/// instead of sleeping a guessed time.
pub struct Events(tokio::sync::mpsc::UnboundedReceiver<PluginEvent>);

/// Makes `req` report its events to the returned [`Events`].
pub fn observe(req: &mut InvokeStepRequest) -> Events {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    req.observer = Some(Arc::new(tx));
    Events(rx)
}

impl Events {
    /// Waits up to `deadline` for a log line containing `text`. Fails when
    /// the deadline passes, or when the invocation ends first (the host
    /// drops the request, and with it the sender).
    pub async fn log_containing(&mut self, text: &str, deadline: Duration) -> Result<()> {
        let wait = async {
            while let Some(event) = self.0.recv().await {
                if let PluginEvent::Log { message, .. } = event
                    && message.contains(text)
                {
                    return Ok(());
                }
            }
            anyhow::bail!("the invocation ended without logging `{text}`")
        };
        tokio::time::timeout(deadline, wait)
            .await
            .with_context(|| format!("no log line `{text}` within {deadline:?}"))?
    }
}

/// Limits with a short timeout for misbehaving plugins.
pub fn tight_limits(timeout: Duration) -> InvocationLimits {
    InvocationLimits {
        timeout,
        cpu_time: timeout,
        cancel_grace: Duration::from_millis(200),
        ..InvocationLimits::default()
    }
}

/// A one-shot-per-connection HTTP/1.1 server on loopback that answers every
/// request with `200` and `body`. Returns its port; it runs until the
/// runtime shuts down.
pub async fn serve_http(body: &'static str) -> Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-test: yes\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(port)
}

/// The bootstrap admin, whom the engine tests act as.
pub fn admin() -> &'static weft_model::Principal {
    weft_model::Principal::bootstrap_admin()
}

/// An engine on a fresh in-memory store with `names` installed and enabled.
pub async fn engine_with(names: &[&str]) -> Result<weft_engine::Engine> {
    engine_on("mem://", names, weft_engine::EngineConfig::default()).await
}

/// An engine on the store at `url` with `names` installed and enabled.
pub async fn engine_on(
    url: &str,
    names: &[&str],
    config: weft_engine::EngineConfig,
) -> Result<weft_engine::Engine> {
    Ok(engine_and_store(url, names, config).await?.0)
}

/// An engine on the store at `url`, and a handle on that store for tests
/// that check what was written (the engine itself offers no raw access).
pub async fn engine_and_store(
    url: &str,
    names: &[&str],
    config: weft_engine::EngineConfig,
) -> Result<(weft_engine::Engine, weft_store::Store)> {
    let store = weft_store::Store::connect(url).await?;
    let engine = weft_engine::Engine::start(config, Arc::new(test_host()?), store.clone()).await?;
    for name in names {
        engine
            .install_plugin(admin(), &wasm(name)?, true)
            .await
            .with_context(|| format!("installing {name}"))?;
    }
    Ok((engine, store))
}

/// Asserts that `events` are numbered 1, 2, 3… with no gap or repeat.
pub fn assert_dense_sequence(events: &[weft_model::RunEvent], what: &str) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "{what}: {events:?}"
    );
}

/// `s` as a step key (tests name steps with literals).
pub fn key(s: &str) -> weft_model::StepKey {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} is not a step key: {e}"))
}

/// `s` as a run id (tests name runs with literals).
pub fn run_id(s: &str) -> weft_model::RunId {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} is not a run id: {e}"))
}
