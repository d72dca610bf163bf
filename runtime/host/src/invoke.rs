//! Invoking a step: a fresh store and instance per invocation, raced
//! against the wall-clock deadline and cancellation, with every failure
//! classified into a specific [`InvokeError`].

use crate::bindings::latest::types;
use crate::engine::HostEngine;
use crate::error::InvokeError;
use crate::events::InvocationObserver;
use crate::install::{LoadedPlugin, StepExport};
use crate::sandbox::{SandboxSpec, SandboxState};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmtime::{Store, UpdateDeadline};
use weft_model::{
    InputRequest, InvocationLimits, PluginDigest, PluginError, PluginErrorKind, RunId, StepId,
    StepOutcome,
};
use weft_model::{JsonLimits, parse_json};

/// Everything needed to run one attempt of one step.
pub struct InvokeStepRequest {
    /// The plugin, by digest (a run pins digests).
    pub plugin: PluginDigest,
    /// The step type's name within the plugin, e.g. `fibo`.
    pub step_type: String,
    /// The step's input.
    pub input: serde_json::Value,
    /// The run this attempt belongs to.
    pub run_id: RunId,
    /// The step within the run.
    pub step_id: StepId,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// The answer to the step's earlier input request.
    pub answer: Option<serde_json::Value>,
    /// Limits; the host's defaults when `None`.
    pub limits: Option<InvocationLimits>,
    /// Secret values by name; only granted names are readable.
    pub secrets: Arc<HashMap<String, String>>,
    /// Receives logs, progress and artifacts as they happen.
    pub observer: Option<Arc<dyn InvocationObserver>>,
    /// Cancels the invocation: `cancelled()` turns true at once, and the
    /// plugin is stopped after the limits' grace period.
    pub cancel: CancellationToken,
}

impl InvokeStepRequest {
    /// A request with no answer, default limits, no secrets, no observer.
    pub fn new(
        plugin: PluginDigest,
        step_type: impl Into<String>,
        input: serde_json::Value,
        run_id: RunId,
        step_id: StepId,
    ) -> Self {
        Self {
            plugin,
            step_type: step_type.into(),
            input,
            run_id,
            step_id,
            attempt: 1,
            answer: None,
            limits: None,
            secrets: Arc::default(),
            observer: None,
            cancel: CancellationToken::new(),
        }
    }
}

/// Raised from the epoch callback when the CPU budget is spent.
#[derive(Debug)]
struct CpuBudgetExceeded;

impl std::fmt::Display for CpuBudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CPU budget exceeded")
    }
}

impl std::error::Error for CpuBudgetExceeded {}

/// A store wired to the sandbox's limiter and the epoch-driven CPU budget.
pub(crate) fn new_store(host: &HostEngine, state: SandboxState) -> Store<SandboxState> {
    let mut store = Store::new(&host.engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(1);
    // Each tick that lands while WebAssembly runs costs one tick of CPU
    // budget and yields to the executor, so CPU-bound plugins share the
    // runtime and can be timed out or cancelled.
    store.epoch_deadline_callback(|mut ctx| {
        let s = ctx.data_mut();
        s.cpu_ticks += 1;
        if s.cpu_ticks > s.cpu_tick_budget {
            return Err(wasmtime::Error::new(CpuBudgetExceeded));
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store
}

/// How a raced invocation ended.
pub(crate) enum Finish<T> {
    Done(T),
    TimedOut,
    Cancelled,
}

/// Runs `fut` until it finishes, the deadline passes, or `cancel` fires
/// and the grace period runs out. Dropping the future stops the plugin at
/// its next epoch check.
pub(crate) async fn race<F: Future>(
    fut: F,
    deadline: Instant,
    cancel: &CancellationToken,
    grace: Duration,
) -> Finish<F::Output> {
    tokio::pin!(fut);
    tokio::select! {
        biased;
        // A plugin that noticed the cancellation and returned on its own
        // (core/sleep does) was still cancelled.
        r = &mut fut => if cancel.is_cancelled() { Finish::Cancelled } else { Finish::Done(r) },
        () = tokio::time::sleep_until(deadline) => Finish::TimedOut,
        () = cancel.cancelled() => {
            // The plugin sees `cancelled() == true` now; give it a moment to
            // return on its own, then stop it. Either way the step is cancelled.
            let _ = tokio::time::timeout_at((Instant::now() + grace).min(deadline), &mut fut).await;
            Finish::Cancelled
        }
    }
}

/// Runs one invocation and counts it (see [`record_invocation`]).
pub(crate) async fn invoke_step(
    host: &HostEngine,
    plugin: &LoadedPlugin,
    req: InvokeStepRequest,
) -> Result<StepOutcome, InvokeError> {
    let result = invoke_step_uncounted(host, plugin, req).await;
    record_invocation(&plugin.manifest.name, &result);
    result
}

/// Counts an invocation in `weft_plugin_invocations_total{plugin,outcome}`
/// and, when it did not succeed, `weft_plugin_invocation_failures_total{plugin,kind}`.
/// Labels are the plugin's name (bounded by what an admin installed) and
/// fixed vocabularies: no run ids or messages, so cardinality stays bounded.
fn record_invocation(plugin: &str, result: &Result<StepOutcome, InvokeError>) {
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_counter!(
            "weft_plugin_invocations_total",
            "Plugin step invocations by plugin and outcome (success, awaiting_input, failed: the plugin reported an error, error: the host stopped it)."
        );
        metrics::describe_counter!(
            "weft_plugin_invocation_failures_total",
            "Failed plugin invocations by plugin and kind: the plugin's error kind (config, auth, transient, rate_limited, data, internal) or the host's error code (timeout, trap, memory_limit_exceeded…)."
        );
    });
    let (outcome, failure) = match result {
        Ok(StepOutcome::Success(_)) => ("success", None),
        Ok(StepOutcome::AwaitingInput(_)) => ("awaiting_input", None),
        Ok(StepOutcome::Failed(e)) => ("failed", Some(plugin_error_kind(e.kind).to_owned())),
        // The host's stable codes, lowercased: `TIMEOUT` -> `timeout`.
        Err(e) => ("error", Some(e.code().as_str().to_ascii_lowercase())),
    };
    let plugin = plugin.to_owned();
    metrics::counter!("weft_plugin_invocations_total", "plugin" => plugin.clone(), "outcome" => outcome)
        .increment(1);
    if let Some(kind) = failure {
        metrics::counter!("weft_plugin_invocation_failures_total", "plugin" => plugin, "kind" => kind)
            .increment(1);
    }
}

fn plugin_error_kind(kind: PluginErrorKind) -> &'static str {
    match kind {
        PluginErrorKind::Config => "config",
        PluginErrorKind::Auth => "auth",
        PluginErrorKind::Transient => "transient",
        PluginErrorKind::RateLimited => "rate_limited",
        PluginErrorKind::Data => "data",
        PluginErrorKind::Internal => "internal",
    }
}

async fn invoke_step_uncounted(
    host: &HostEngine,
    plugin: &LoadedPlugin,
    req: InvokeStepRequest,
) -> Result<StepOutcome, InvokeError> {
    let indices = plugin
        .step
        .as_ref()
        .ok_or_else(|| InvokeError::NotAStepPlugin(plugin.manifest.name.clone()))?;
    if plugin.manifest.step_type(&req.step_type).is_none() {
        return Err(InvokeError::UnknownStepType {
            plugin: plugin.manifest.name.clone(),
            step_type: req.step_type,
        });
    }
    let mut limits = req
        .limits
        .unwrap_or_else(|| host.config.default_limits.clone());
    limits.max_memory_bytes = limits
        .max_memory_bytes
        .min(host.config.memory_ceiling_bytes);
    let deadline = Instant::now() + limits.timeout;
    // Waiting for memory counts against the invocation's wall clock and
    // ends on cancellation, so a queued invocation is never stuck.
    let _reservation = tokio::select! {
        biased;
        r = host.budget.reserve(limits.max_memory_bytes) => r?,
        () = req.cancel.cancelled() => return Err(InvokeError::Cancelled),
        () = tokio::time::sleep_until(deadline) => return Err(InvokeError::Timeout(limits.timeout)),
    };
    let spec = SandboxSpec {
        grants: plugin.grants(),
        secrets: req.secrets,
        observer: req.observer,
        cancel: req.cancel.clone(),
        limits: limits.clone(),
    };
    let mut store = new_store(host, SandboxState::new(spec, host.config.epoch_tick)?);
    let invocation = types::Invocation {
        step_type: req.step_type,
        input: req.input.to_string(),
        run_id: req.run_id.into(),
        step_id: req.step_id.into(),
        attempt: req.attempt,
        answer: req.answer.map(|a| a.to_string()),
    };
    let finish = race(
        async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            match indices {
                StepExport::Latest(idx) => {
                    idx.load(&mut store, &instance)?
                        .call_run(&mut store, &invocation)
                        .await
                }
                StepExport::V0_1(idx) => idx
                    .load(&mut store, &instance)?
                    .call_run(&mut store, &crate::since_v0_1::invocation(&invocation))
                    .await
                    .map(crate::since_v0_1::outcome),
            }
        },
        deadline,
        &req.cancel,
        limits.cancel_grace,
    )
    .await;
    let stderr = store.data_mut().io.flush_stdio();
    let state = store.data();
    match finish {
        Finish::TimedOut => Err(InvokeError::Timeout(limits.timeout)),
        Finish::Cancelled => Err(InvokeError::Cancelled),
        Finish::Done(Err(e)) => Err(classify_trap(&e, state, &limits, &stderr)),
        Finish::Done(Ok(outcome)) => convert_outcome(outcome, state, &limits),
    }
}

/// Turns a wasmtime error into the most specific reason we know.
pub(crate) fn classify_trap(
    e: &wasmtime::Error,
    state: &SandboxState,
    limits: &InvocationLimits,
    stderr: &str,
) -> InvokeError {
    if let Some(v) = &state.io.violation {
        return v.clone();
    }
    if e.downcast_ref::<CpuBudgetExceeded>().is_some() {
        return InvokeError::CpuLimitExceeded(limits.cpu_time);
    }
    if state.limiter.hit {
        return InvokeError::MemoryLimitExceeded {
            limit_bytes: limits.max_memory_bytes,
        };
    }
    if let Some(wasmtime::Trap::StackOverflow) = e.downcast_ref::<wasmtime::Trap>() {
        return InvokeError::StackOverflow;
    }
    if let Some(t) = e.downcast_ref::<wasmtime::Trap>()
        && matches!(t, wasmtime::Trap::AllocationTooLarge)
    {
        return InvokeError::Instantiate(format!("{e:#}"));
    }
    let root = e.root_cause().to_string();
    let message = if stderr.is_empty() {
        root
    } else {
        format!("{root}; stderr: {stderr}")
    };
    InvokeError::Trap { message }
}

fn convert_outcome(
    outcome: types::Outcome,
    state: &SandboxState,
    limits: &InvocationLimits,
) -> Result<StepOutcome, InvokeError> {
    match outcome {
        types::Outcome::Success(json) => {
            if json.len() as u64 > limits.max_output_bytes {
                return Err(InvokeError::OutputTooLarge {
                    size: json.len() as u64,
                    limit: limits.max_output_bytes,
                });
            }
            let limits =
                JsonLimits::bytes(usize::try_from(limits.max_output_bytes).unwrap_or(usize::MAX));
            parse_json(&json, limits)
                .map(StepOutcome::Success)
                .map_err(|e| {
                    InvokeError::InvalidOutput(format!("output is not acceptable JSON: {e}"))
                })
        }
        types::Outcome::Failed(err) => {
            if let Some(denied) = state.io.denials.first() {
                return Err(InvokeError::CapabilityDenied(format!(
                    "{denied} (the plugin said: {})",
                    err.message
                )));
            }
            Ok(StepOutcome::Failed(plugin_error(err)))
        }
        types::Outcome::AwaitingInput(req) => {
            let schema =
                parse_json(&req.schema, JsonLimits::bytes(MAX_SIDE_JSON_BYTES)).map_err(|e| {
                    InvokeError::InvalidOutput(format!(
                        "input request schema is not acceptable JSON: {e}"
                    ))
                })?;
            if let Err(e) = jsonschema::meta::validate(&schema) {
                return Err(InvokeError::InvalidOutput(format!(
                    "input request schema is not a valid JSON Schema: {e}"
                )));
            }
            Ok(StepOutcome::AwaitingInput(InputRequest {
                prompt: req.prompt,
                schema,
                secret_fields: req.secret_fields,
            }))
        }
    }
}

pub(crate) fn plugin_error(e: types::PluginError) -> PluginError {
    use types::ErrorKind as K;
    PluginError {
        kind: match e.kind {
            K::Config => PluginErrorKind::Config,
            K::Auth => PluginErrorKind::Auth,
            K::Transient => PluginErrorKind::Transient,
            K::RateLimited => PluginErrorKind::RateLimited,
            K::Data => PluginErrorKind::Data,
            K::Internal => PluginErrorKind::Internal,
        },
        message: e.message,
        retryable: e.retryable,
        retry_after_ms: e.retry_after_ms,
        details: e.details.map(side_json),
    }
}

/// Largest JSON a plugin may attach beside its output (error details, log
/// context, an input request's schema).
pub(crate) const MAX_SIDE_JSON_BYTES: usize = 64 << 10;

/// JSON a plugin attached to an error or a log line: kept as JSON when it
/// is within the limits, else as (truncated) text, so nothing stored is
/// deeper or larger than the store and readers accept.
pub(crate) fn side_json(mut text: String) -> serde_json::Value {
    match parse_json(&text, JsonLimits::bytes(MAX_SIDE_JSON_BYTES)) {
        Ok(v) => v,
        Err(_) => {
            let mut end = text.len().min(MAX_SIDE_JSON_BYTES);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            serde_json::Value::String(text)
        }
    }
}
