//! # hostile — a test plugin that misbehaves on purpose
//!
//! Every step type probes one limit or sandbox rule of the host: CPU time
//! (`spin`, `ignore-cancel`), memory (`membomb`), stack (`recurse`), traps
//! (`panic`), output size (`big-output`), log limits (`log-flood`), egress
//! (`http-get`), the filesystem (`read-file`), environment (`env`), secrets
//! (`secret`), host calls (`artifact`, `progress-flood`, `artifact-flood`),
//! sockets and DNS (`tcp-echo`, `resolve`, in [`net`]) and error reporting
//! (`fail`).
//!
//! It requests `outbound_hosts: ["*"]`, `env: ["WEFT_TEST_ALLOWED",
//! "WEFT_TEST_SECRET_ENV"]`, `secrets: ["token"]` and `directories: ["/data"]`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_plugin_sdk::prelude::*;

mod net;

use net::{Resolve, TcpEcho};

weft_plugin_sdk::export_plugin! {
    name: "hostile",
    version: env!("CARGO_PKG_VERSION"),
    description: "Test fixture: step types that misbehave on purpose.",
    capabilities: weft_plugin_sdk::Capabilities {
        outbound_hosts: vec!["*".into()],
        directories: vec!["/data".into()],
        env: vec!["WEFT_TEST_ALLOWED".into(), "WEFT_TEST_SECRET_ENV".into()],
        secrets: vec!["token".into()],
    },
    steps: [
        Spin, Membomb, Recurse, Panic, BigOutput, LogFlood, HttpGet, ReadFile,
        IgnoreCancel, Env, Secret, Artifact, Fail, Flaky, ProgressFlood, ArtifactFlood,
        TcpEcho, Resolve,
    ],
}

/// The output `{}`.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct Empty {}

/// Input `{ "name": string }`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NameInput {
    /// A name.
    pub name: String,
}

/// Output `{ "value": string | null }`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ValueOutput {
    /// The value, or `null` when absent.
    pub value: Option<String>,
}

/// The line `spin` and `ignore-cancel` log before misbehaving, so a test can
/// wait until the plugin really runs instead of sleeping a guessed time.
pub const STARTED: &str = "started";

/// `spin`: logs [`STARTED`], then busy-loops forever without checking for
/// cancellation.
pub struct Spin;

impl Step for Spin {
    const NAME: &'static str = "spin";
    const DESCRIPTION: &'static str =
        "Logs `started`, then loops forever without yielding or checking cancellation.";
    type Input = Value;
    type Output = Value;

    fn run(&self, _: &StepContext, _: Value) -> Result<Outcome<Value>, PluginError> {
        host::info(STARTED);
        let mut counter = 0u64;
        loop {
            counter = black_box(counter.wrapping_add(1));
        }
    }
}

/// `membomb`: allocates and touches 1 MiB chunks forever, keeping them alive.
pub struct Membomb;

impl Step for Membomb {
    const NAME: &'static str = "membomb";
    const DESCRIPTION: &'static str = "Allocates 1 MiB chunks forever, touching every page.";
    type Input = Value;
    type Output = Value;

    fn run(&self, _: &StepContext, _: Value) -> Result<Outcome<Value>, PluginError> {
        const CHUNK: usize = 1 << 20;
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; CHUNK];
            for i in (0..CHUNK).step_by(4096) {
                chunk[i] = black_box(1);
            }
            chunks.push(black_box(chunk));
            black_box(&chunks);
        }
    }
}

/// `recurse`: unbounded non-tail recursion, overflowing the stack.
pub struct Recurse;

/// Recursion depth, updated around every call: the side effects keep the
/// recursion from being turned into a loop or removed.
static DEPTH: AtomicU64 = AtomicU64::new(0);

/// Recurses until wasm's call stack is exhausted. Frames keep nothing in
/// linear memory (no address-taken locals, no `black_box` inside), so it is
/// the engine's call stack that overflows, not Rust's shadow stack in linear
/// memory (which would surface as an out-of-bounds memory access instead).
#[inline(never)]
fn recurse() -> u64 {
    let depth = DEPTH.fetch_add(1, Ordering::Relaxed);
    if depth == u64::MAX {
        return depth;
    }
    let below = recurse();
    DEPTH.fetch_sub(1, Ordering::Relaxed);
    below.wrapping_add(depth)
}

impl Step for Recurse {
    const NAME: &'static str = "recurse";
    const DESCRIPTION: &'static str = "Recurses without bound until the stack overflows.";
    type Input = Value;
    type Output = Value;

    fn run(&self, _: &StepContext, _: Value) -> Result<Outcome<Value>, PluginError> {
        Ok(Outcome::Done(Value::from(black_box(recurse()))))
    }
}

/// `panic`: panics (a trap in the component).
pub struct Panic;

impl Step for Panic {
    const NAME: &'static str = "panic";
    const DESCRIPTION: &'static str = "Panics.";
    type Input = Value;
    type Output = Value;

    fn run(&self, _: &StepContext, _: Value) -> Result<Outcome<Value>, PluginError> {
        panic!("hostile plugin panicked on purpose")
    }
}

/// `big-output`: outputs `{ "blob": "xxxx…" }` with `bytes` bytes of `x`.
pub struct BigOutput;

/// Input of `big-output`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct BigOutputInput {
    /// How many bytes of `x` to output.
    pub bytes: u64,
}

/// Output of `big-output`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BigOutputOutput {
    /// `bytes` times `x`.
    pub blob: String,
}

impl Step for BigOutput {
    const NAME: &'static str = "big-output";
    const DESCRIPTION: &'static str = "Outputs a string of `bytes` bytes.";
    type Input = BigOutputInput;
    type Output = BigOutputOutput;

    fn run(
        &self,
        _: &StepContext,
        input: BigOutputInput,
    ) -> Result<Outcome<BigOutputOutput>, PluginError> {
        let bytes = usize::try_from(input.bytes)
            .map_err(|_| PluginError::config(format!("`bytes` is too large: {}", input.bytes)))?;
        Ok(Outcome::Done(BigOutputOutput {
            blob: "x".repeat(bytes),
        }))
    }
}

/// `log-flood`: writes `lines` info log lines, then outputs `{}`.
pub struct LogFlood;

/// Input of `log-flood`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct LogFloodInput {
    /// How many lines to log.
    pub lines: u64,
}

impl Step for LogFlood {
    const NAME: &'static str = "log-flood";
    const DESCRIPTION: &'static str = "Writes `lines` info log lines.";
    type Input = LogFloodInput;
    type Output = Empty;

    fn run(&self, _: &StepContext, input: LogFloodInput) -> Result<Outcome<Empty>, PluginError> {
        for line in 0..input.lines {
            host::info(&format!("log line {line}"));
        }
        Ok(Outcome::Done(Empty {}))
    }
}

/// `http-get`: `GET url` through the SDK's HTTP client.
pub struct HttpGet;

/// Input of `http-get`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct HttpGetInput {
    /// The URL to fetch.
    pub url: String,
}

/// Output of `http-get`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HttpGetOutput {
    /// The response status.
    pub status: u16,
    /// The response body (lossy UTF-8).
    pub body: String,
}

impl Step for HttpGet {
    const NAME: &'static str = "http-get";
    const DESCRIPTION: &'static str =
        "Fetches `url` with GET; returns the status and body, or the client's error.";
    type Input = HttpGetInput;
    type Output = HttpGetOutput;

    fn run(
        &self,
        _: &StepContext,
        input: HttpGetInput,
    ) -> Result<Outcome<HttpGetOutput>, PluginError> {
        let response = weft_plugin_sdk::http::get(&input.url)?;
        Ok(Outcome::Done(HttpGetOutput {
            status: response.status,
            body: response.text(),
        }))
    }
}

/// `read-file`: reads a file with `std::fs`.
pub struct ReadFile;

/// Input of `read-file`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadFileInput {
    /// The guest path to read, e.g. `/data/hello.txt`.
    pub path: String,
}

/// Output of `read-file`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadFileOutput {
    /// The file's content.
    pub content: String,
}

impl Step for ReadFile {
    const NAME: &'static str = "read-file";
    const DESCRIPTION: &'static str = "Reads `path` as UTF-8 text; an I/O error is a config error.";
    type Input = ReadFileInput;
    type Output = ReadFileOutput;

    fn run(
        &self,
        _: &StepContext,
        input: ReadFileInput,
    ) -> Result<Outcome<ReadFileOutput>, PluginError> {
        match std::fs::read_to_string(&input.path) {
            Ok(content) => Ok(Outcome::Done(ReadFileOutput { content })),
            Err(err) => Err(PluginError::config(format!(
                "cannot read `{}`: {err}",
                input.path
            ))),
        }
    }
}

/// `ignore-cancel`: logs [`STARTED`], then sleeps 10 ms and does busy work,
/// forever, never checking for cancellation.
pub struct IgnoreCancel;

impl Step for IgnoreCancel {
    const NAME: &'static str = "ignore-cancel";
    const DESCRIPTION: &'static str =
        "Logs `started`, then sleeps and works forever, never checking cancellation.";
    type Input = Value;
    type Output = Value;

    fn run(&self, _: &StepContext, _: Value) -> Result<Outcome<Value>, PluginError> {
        host::info(STARTED);
        let mut total = 0u64;
        loop {
            std::thread::sleep(Duration::from_millis(10));
            for i in 0..100_000u64 {
                total = black_box(total.wrapping_add(i));
            }
        }
    }
}

/// `env`: reads an environment variable.
pub struct Env;

impl Step for Env {
    const NAME: &'static str = "env";
    const DESCRIPTION: &'static str = "Reads the environment variable `name`; `null` when unset.";
    type Input = NameInput;
    type Output = ValueOutput;

    fn run(&self, _: &StepContext, input: NameInput) -> Result<Outcome<ValueOutput>, PluginError> {
        Ok(Outcome::Done(ValueOutput {
            value: std::env::var(&input.name).ok(),
        }))
    }
}

/// `secret`: reads a secret through the host.
pub struct Secret;

impl Step for Secret {
    const NAME: &'static str = "secret";
    const DESCRIPTION: &'static str =
        "Reads the secret `name`; `null` when unknown or not granted.";
    type Input = NameInput;
    type Output = ValueOutput;

    fn run(&self, _: &StepContext, input: NameInput) -> Result<Outcome<ValueOutput>, PluginError> {
        Ok(Outcome::Done(ValueOutput {
            value: host::secret(&input.name),
        }))
    }
}

/// `artifact`: emits a text artifact, reports progress and logs a line.
pub struct Artifact;

/// Input of `artifact`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ArtifactInput {
    /// The artifact's name.
    pub name: String,
    /// The artifact's content (stored as `text/plain`).
    pub text: String,
}

impl Step for Artifact {
    const NAME: &'static str = "artifact";
    const DESCRIPTION: &'static str =
        "Emits a text/plain artifact, reports progress 0.5 then 1.0 and logs `artifact emitted`.";
    type Input = ArtifactInput;
    type Output = Empty;

    fn run(&self, _: &StepContext, input: ArtifactInput) -> Result<Outcome<Empty>, PluginError> {
        host::emit_artifact(&input.name, "text/plain", input.text.as_bytes())
            .map_err(|err| PluginError::internal(format!("emit-artifact failed: {err}")))?;
        host::progress(0.5, None);
        host::progress(1.0, None);
        host::info("artifact emitted");
        Ok(Outcome::Done(Empty {}))
    }
}

/// `fail`: returns the error it is asked for.
pub struct Fail;

/// Input of `fail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailInput {
    /// `config`, `auth`, `transient`, `rate-limited`, `data` or `internal`.
    pub kind: String,
    /// The error message.
    pub message: String,
    /// Optional retry delay for `rate-limited`.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    /// Optional structured details.
    #[serde(default)]
    pub details: Option<Value>,
}

impl Step for Fail {
    const NAME: &'static str = "fail";
    const DESCRIPTION: &'static str = "Fails with the given error kind and message.";
    type Input = FailInput;
    type Output = Empty;

    fn run(&self, _: &StepContext, input: FailInput) -> Result<Outcome<Empty>, PluginError> {
        let kind = ErrorKind::parse(&input.kind)
            .ok_or_else(|| PluginError::config(format!("unknown error kind `{}`", input.kind)))?;
        let mut err = PluginError::new(kind, input.message);
        err.retry_after_ms = input.retry_after_ms;
        err.details = input.details;
        Err(err)
    }
}

/// `flaky`: fails with a transient error until the given attempt, then
/// succeeds — exercises retries across restarts.
pub struct Flaky;

/// Input of `flaky`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlakyInput {
    /// The first attempt that succeeds.
    pub succeed_on_attempt: u32,
}

/// Output of `flaky`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FlakyOutput {
    /// The attempt that succeeded.
    pub attempt: u32,
}

impl Step for Flaky {
    const NAME: &'static str = "flaky";
    const DESCRIPTION: &'static str = "Fails transiently until `succeedOnAttempt`, then succeeds.";
    type Input = FlakyInput;
    type Output = FlakyOutput;

    fn run(
        &self,
        ctx: &StepContext,
        input: FlakyInput,
    ) -> Result<Outcome<FlakyOutput>, PluginError> {
        if ctx.attempt() < input.succeed_on_attempt {
            return Err(PluginError::transient(format!(
                "attempt {} fails on purpose",
                ctx.attempt()
            )));
        }
        Ok(Outcome::Done(FlakyOutput {
            attempt: ctx.attempt(),
        }))
    }
}

/// `progress-flood`: reports progress `reports` times, each with a message
/// of `message_bytes` bytes, then outputs `{}`.
pub struct ProgressFlood;

/// Input of `progress-flood`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgressFloodInput {
    /// How many progress reports.
    pub reports: u64,
    /// Length of each report's message.
    #[serde(default)]
    pub message_bytes: usize,
}

impl Step for ProgressFlood {
    const NAME: &'static str = "progress-flood";
    const DESCRIPTION: &'static str =
        "Reports progress `reports` times with `messageBytes`-byte messages.";
    type Input = ProgressFloodInput;
    type Output = Empty;

    fn run(
        &self,
        _: &StepContext,
        input: ProgressFloodInput,
    ) -> Result<Outcome<Empty>, PluginError> {
        let message = "p".repeat(input.message_bytes);
        for i in 0..input.reports {
            host::progress(i as f32 / input.reports as f32, Some(&message));
        }
        Ok(Outcome::Done(Empty {}))
    }
}

/// `artifact-flood`: emits `count` one-byte artifacts, then outputs `{}`.
pub struct ArtifactFlood;

/// Input of `artifact-flood`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ArtifactFloodInput {
    /// How many artifacts.
    pub count: u64,
}

impl Step for ArtifactFlood {
    const NAME: &'static str = "artifact-flood";
    const DESCRIPTION: &'static str = "Emits `count` one-byte artifacts named `a-0`, `a-1`, ...";
    type Input = ArtifactFloodInput;
    type Output = Empty;

    fn run(
        &self,
        _: &StepContext,
        input: ArtifactFloodInput,
    ) -> Result<Outcome<Empty>, PluginError> {
        for i in 0..input.count {
            host::emit_artifact(&format!("a-{i}"), "text/plain", b"x")
                .map_err(|err| PluginError::internal(format!("emit-artifact failed: {err}")))?;
        }
        Ok(Outcome::Done(Empty {}))
    }
}
