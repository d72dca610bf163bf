//! A run's plan: the validated template revision with every step resolved
//! to a pinned plugin digest. The run actor asks the plan to evaluate
//! conditions, fan-outs, inputs and retry decisions.

use crate::evaluate::Evaluator;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use weft_model::template::{ExprContext, ExprError, RetryOn, ValidatedTemplate};
use weft_model::{FailureCode, PluginDigest, StepId};

/// Why a step's expressions gave no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExprFailure {
    /// Not a failure: the evaluation needs more than the inline slice and
    /// was asked not to leave it; try again outside the request.
    Deferred,
    /// The step fails.
    Failed(StepExprError),
}

/// A step failed on its expressions: a code for its error and a message
/// naming what failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepExprError {
    pub(crate) code: FailureCode,
    pub(crate) message: String,
}

impl ExprFailure {
    fn new(what: &str, e: &ExprError) -> Self {
        Self::failed(e.code(), format!("{what} failed: {e}"))
    }

    fn failed(code: FailureCode, message: String) -> Self {
        Self::Failed(StepExprError { code, message })
    }
}

/// The evaluator's answer as the plan's: `None` (deferred) becomes
/// [`ExprFailure::Deferred`].
fn settle<T>(what: &str, out: Option<Result<T, ExprError>>) -> Result<T, ExprFailure> {
    match out {
        None => Err(ExprFailure::Deferred),
        Some(r) => r.map_err(|e| ExprFailure::new(what, &e)),
    }
}

/// The validated template revision a run executes. Immutable and shared
/// by every run of the same revision (see the engine's plan cache).
pub(crate) struct RunPlan {
    pub(crate) validated: ValidatedTemplate,
    /// Topological position of each step id.
    position: HashMap<StepId, usize>,
    /// Steps that list each step in their `needs`.
    dependents: HashMap<String, Vec<StepId>>,
    /// Pinned plugin digests by `plugin@version`.
    pinned: BTreeMap<String, PluginDigest>,
    /// Evaluates the plan's expressions under the engine's budgets.
    eval: Arc<Evaluator>,
    /// The shortest wait before a retry.
    min_backoff: Duration,
}

/// A step's fixed facts, looked up once.
pub(crate) struct PlanStep<'a> {
    pub(crate) needs: &'a [String],
    pub(crate) digest: &'a PluginDigest,
    /// The plugin's name, e.g. `core`.
    pub(crate) plugin: &'a str,
    pub(crate) step_type: &'a str,
    pub(crate) timeout: Option<Duration>,
    pub(crate) for_each: bool,
}

impl RunPlan {
    pub(crate) fn new(
        validated: ValidatedTemplate,
        eval: Arc<Evaluator>,
        min_backoff: Duration,
    ) -> Arc<Self> {
        let position = validated
            .order()
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        let mut dependents: HashMap<String, Vec<StepId>> = HashMap::new();
        let mut pinned = BTreeMap::new();
        for (id, step) in validated
            .order()
            .iter()
            .filter_map(|id| Some((id, validated.step(id)?)))
        {
            for need in &step.spec.needs {
                dependents.entry(need.clone()).or_default().push(id.clone());
            }
            // By plugin, not by step: a 400-step run pins one digest.
            pinned.insert(
                format!("{}@{}", step.resolved.plugin, step.resolved.version),
                step.resolved.digest.clone(),
            );
        }
        Arc::new(Self {
            validated,
            position,
            dependents,
            pinned,
            eval,
            min_backoff,
        })
    }

    /// Step ids in topological order.
    pub(crate) fn order(&self) -> &[StepId] {
        self.validated.order()
    }

    /// A step's topological position.
    pub(crate) fn position(&self, id: &str) -> usize {
        self.position.get(id).copied().unwrap_or(usize::MAX)
    }

    /// The steps that need `id`.
    pub(crate) fn dependents(&self, id: &str) -> &[StepId] {
        self.dependents.get(id).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn step(&self, id: &str) -> Option<PlanStep<'_>> {
        let s = self.validated.step(id)?;
        Some(PlanStep {
            needs: &s.spec.needs,
            digest: &s.resolved.digest,
            plugin: &s.resolved.plugin,
            step_type: &s.resolved.step_type,
            timeout: s.spec.timeout.as_ref().map(|d| d.as_duration()),
            for_each: s.for_each.is_some(),
        })
    }

    pub(crate) fn parallel_limit(&self) -> Option<u32> {
        self.validated.template().parallel_limit
    }

    pub(crate) fn run_timeout(&self) -> Option<Duration> {
        self.validated
            .template()
            .timeout
            .as_ref()
            .map(|d| d.as_duration())
    }

    /// Pinned digests by `plugin@version`.
    pub(crate) fn pinned(&self) -> BTreeMap<String, PluginDigest> {
        self.pinned.clone()
    }

    /// Evaluates a step's `if` (`inline_only`: see [`Evaluator::run`]).
    pub(crate) fn condition(
        &self,
        id: &str,
        ctx: &ExprContext,
        inline_only: bool,
    ) -> Result<bool, ExprFailure> {
        match self.validated.step(id).and_then(|s| s.condition.as_ref()) {
            Some(c) => settle(
                "`if`",
                self.eval.run(inline_only, |b| c.evaluate_bool_with(ctx, b)),
            ),
            None => Ok(true),
        }
    }

    /// Evaluates a step's `forEach`, at most the configured item count.
    pub(crate) fn for_each(
        &self,
        id: &str,
        ctx: &ExprContext,
        inline_only: bool,
    ) -> Result<Vec<Value>, ExprFailure> {
        let max = self.eval.max_for_each_items();
        match self.validated.step(id).and_then(|s| s.for_each.as_ref()) {
            Some(f) => settle(
                "`forEach`",
                self.eval
                    .run(inline_only, |b| f.evaluate_list_with(ctx, b, max)),
            ),
            None => Ok(Vec::new()),
        }
    }

    /// Evaluates a step's `with` and validates it against the input schema.
    pub(crate) fn input(
        &self,
        id: &str,
        ctx: &ExprContext,
        inline_only: bool,
    ) -> Result<Value, ExprFailure> {
        let s = self.validated.step(id).ok_or_else(|| {
            ExprFailure::failed(FailureCode::Internal, format!("unknown step {id}"))
        })?;
        let input = settle(
            "evaluating `with`",
            self.eval.run(inline_only, |b| s.with.evaluate_with(ctx, b)),
        )?;
        self.validated.validate_input(id, &input).map_err(|errs| {
            ExprFailure::failed(
                FailureCode::InvalidInput,
                format!(
                    "input does not match the step type's schema: {}",
                    errs.join("; ")
                ),
            )
        })?;
        Ok(input)
    }

    /// The compensation of a step, evaluated: (digest, step type, input).
    pub(crate) fn compensation(
        &self,
        id: &str,
        ctx: &ExprContext,
    ) -> Option<Result<(PluginDigest, String, Value), String>> {
        let c = self.validated.step(id)?.compensation.as_ref()?;
        Some(
            settle(
                "evaluating the compensation's `with`",
                self.eval.run(false, |b| c.with.evaluate_with(ctx, b)),
            )
            .map_err(|e| match e {
                ExprFailure::Failed(e) => e.message,
                // Compensations are never evaluated inline-only.
                ExprFailure::Deferred => "evaluation deferred".to_owned(),
            })
            .map(|input| {
                (
                    c.resolved.digest.clone(),
                    c.resolved.step_type.clone(),
                    input,
                )
            }),
        )
    }

    /// The delay before the next attempt, or `None` when the failure is final.
    pub(crate) fn retry_delay(
        &self,
        id: &str,
        on: RetryOn,
        attempt: u32,
        rand01: f64,
    ) -> Option<Duration> {
        let policy = self.validated.step(id)?.spec.retry.as_ref()?;
        (attempt < policy.max_attempts && policy.retries(on))
            .then(|| policy.delay_for(attempt, rand01).max(self.min_backoff))
    }
}
