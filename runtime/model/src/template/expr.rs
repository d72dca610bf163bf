//! CEL expressions in templates.
//!
//! A string that is exactly `${{ expr }}` is replaced by the expression's
//! value, with its JSON type; `${{ expr }}` inside a longer string is
//! interpolated as text (strings raw, anything else as compact JSON).
//! `$${{` writes a literal `${{`. Conditions (`if`) and fan-outs (`forEach`)
//! are bare expressions, optionally wrapped in `${{ }}`.
//!
//! Expressions are parsed once, by the `cel` crate, and evaluated many
//! times against an [`ExprContext`] that exposes the variables `inputs`,
//! `steps` (id → `{output, status}`), `run`, `secrets`, `item` and `index`.
//! Only the variables an expression mentions are converted, and of `steps`
//! only the steps it names.

use super::budget::{self, BudgetLimit, ExprBudget};
use super::cel_json::{ToJsonError, json_to_val, object_to_val, val_to_json};
use crate::failure::FailureCode;
use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators};
use cel::common::types::{CelBool, CelInt, CelString, CelUInt};
use cel::common::value::Val;
use cel::{Context, Env};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, LazyLock};

pub use super::value::CompiledValue;
pub(crate) use super::value::{ExprSite, escape_pointer};

/// The CEL environment: the standard library plus the `strings`, `lists`,
/// `math` and `base64` extensions. Built once; every evaluation shares it.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    type Ext = fn(&mut Env) -> Result<(), cel::DeclarationError>;
    let mut env = Env::stdlib();
    let extensions: [Ext; 4] = [
        cel::extensions::strings,
        cel::extensions::lists,
        cel::extensions::math,
        cel::extensions::encoders,
    ];
    for ext in extensions {
        // The extensions are disjoint from each other and from the standard
        // library, so this cannot fail; if a future version made them
        // overlap, expressions would merely lack that extension.
        let _ = env.add_extension(ext);
    }
    // Names no other declaration can use (they start with `@`); without
    // them an instrumented expression fails rather than running unmetered.
    let _ = budget::register(&mut env);
    Arc::new(env)
});

/// The variables an expression can read.
pub const VARIABLES: [&str; 6] = ["inputs", "steps", "run", "secrets", "item", "index"];

/// One finished (or skipped) step as expressions see it: `steps.<id>`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResultView {
    /// The step's output (`null` when it has none).
    pub output: Value,
    /// The step's status, e.g. `SUCCESS` or `SKIPPED`.
    pub status: String,
}

/// What expressions are evaluated against. Its `Debug` output shows the
/// names of the secrets, never their values.
#[derive(Clone, PartialEq, Default)]
pub struct ExprContext {
    /// The run's inputs: `inputs`.
    pub inputs: Value,
    /// Step results by step id: `steps`.
    pub steps: BTreeMap<String, StepResultView>,
    /// Facts about the run (`id`, `template`, `revision`, `attempt`…): `run`.
    pub run: Value,
    /// Secret values by name: `secrets`.
    pub secrets: BTreeMap<String, String>,
    /// The current `forEach` item: `item`; unbound outside a fan-out.
    pub item: Option<Value>,
    /// The current `forEach` index: `index`; unbound outside a fan-out.
    pub index: Option<u64>,
}

impl fmt::Debug for ExprContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExprContext")
            .field("inputs", &self.inputs)
            .field("steps", &self.steps)
            .field("run", &self.run)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("item", &self.item)
            .field("index", &self.index)
            .finish()
    }
}

/// An expression failed at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// CEL reported an error (missing key, no such overload, …).
    #[error("`{expr}` failed: {message}")]
    Evaluation {
        /// The expression source.
        expr: String,
        /// CEL's explanation.
        message: String,
    },
    /// The value has the wrong type for where it is used.
    #[error("`{expr}` returned {got}, expected {expected}")]
    WrongType {
        /// The expression source.
        expr: String,
        /// The type needed, e.g. `bool`.
        expected: &'static str,
        /// The JSON of what was returned.
        got: String,
    },
    /// The value cannot be represented in JSON.
    #[error("`{expr}` returned a value JSON cannot hold: {message}")]
    NotJson {
        /// The expression source.
        expr: String,
        /// Why.
        message: String,
    },
    /// Evaluation ran out of its [`ExprBudget`].
    #[error("`{expr}` exceeded its {limit} budget")]
    BudgetExceeded {
        /// The expression source.
        expr: String,
        /// Which limit.
        limit: BudgetLimit,
    },
    /// A `forEach` list longer than allowed.
    #[error("`{expr}` returned more than {max} items")]
    TooManyItems {
        /// The expression source.
        expr: String,
        /// The limit.
        max: usize,
    },
}

impl ExprError {
    /// A stable machine-readable code for the failure.
    pub fn code(&self) -> FailureCode {
        match self {
            Self::Evaluation { .. } | Self::WrongType { .. } | Self::NotJson { .. } => {
                FailureCode::Expression
            }
            Self::BudgetExceeded {
                limit: BudgetLimit::Cost | BudgetLimit::Time,
                ..
            } => FailureCode::ExpressionBudgetExceeded,
            Self::BudgetExceeded {
                limit: BudgetLimit::ResultSize,
                ..
            } => FailureCode::ExpressionResultTooLarge,
            Self::TooManyItems { .. } => FailureCode::ForEachTooManyItems,
        }
    }

    /// Whether the budget's cost or time ran out (a larger budget might
    /// let the same evaluation finish).
    pub fn is_budget(&self) -> bool {
        matches!(
            self,
            Self::BudgetExceeded {
                limit: BudgetLimit::Cost | BudgetLimit::Time,
                ..
            }
        )
    }
}

/// An expression that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprSyntaxError {
    /// What is wrong, with the position within the expression.
    pub message: String,
}

/// A problem compiling the expressions inside a JSON value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExprProblem {
    /// JSON pointer of the string holding the expression.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ExprProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pointer, self.message)
    }
}

/// What an expression mentions, found by walking its syntax tree.
#[derive(Debug, Default)]
struct Refs {
    /// Step ids named as `steps.x`, `steps['x']`, `steps.?x`, `has(steps.x)`.
    steps: BTreeSet<String>,
    /// `steps` is used other than with a literal name, so all are needed.
    all_steps: bool,
    /// Every free identifier, call namespaces (`math` in `math.abs(x)`) included.
    bind: BTreeSet<String>,
    /// Free identifiers read as values.
    read: BTreeSet<String>,
}

struct Inner {
    source: String,
    /// The parsed tree with metering calls (see [`budget::instrument`]):
    /// what is evaluated.
    instrumented: IdedExpr,
    refs: Refs,
}

/// One compiled CEL expression. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct CompiledExpr(Arc<Inner>);

impl fmt::Debug for CompiledExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CompiledExpr").field(&self.0.source).finish()
    }
}

impl PartialEq for CompiledExpr {
    fn eq(&self, other: &Self) -> bool {
        self.0.source == other.0.source
    }
}

impl CompiledExpr {
    /// Compiles a bare expression, or one wrapped in `${{ }}`.
    pub fn compile(src: &str) -> Result<Self, ExprSyntaxError> {
        let trimmed = src.trim();
        let inner = match trimmed.strip_prefix("${{") {
            Some(rest) => match find_close(rest) {
                Ok(end) if end + 2 == rest.len() => &rest[..end],
                Ok(_) => {
                    return Err(ExprSyntaxError {
                        message: "text after the closing `}}`; write a single expression".into(),
                    });
                }
                Err(e) => return Err(ExprSyntaxError { message: e }),
            },
            None => trimmed,
        };
        Self::compile_bare(inner)
    }

    pub(crate) fn compile_bare(src: &str) -> Result<Self, ExprSyntaxError> {
        let source = src.trim();
        if source.is_empty() {
            return Err(ExprSyntaxError {
                message: "empty expression".into(),
            });
        }
        budget::check_source(source).map_err(|message| ExprSyntaxError { message })?;
        budget::with_stack(|| Self::parse(source))
    }

    fn parse(source: &str) -> Result<Self, ExprSyntaxError> {
        let program = ENV.compile(source).map_err(|errs| ExprSyntaxError {
            message: errs
                .errors
                .iter()
                .map(|e| {
                    format!(
                        "syntax error in `{source}` at {}:{}: {}",
                        e.pos.0, e.pos.1, e.msg
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        let mut refs = Refs::default();
        walk(program.expression(), &mut Vec::new(), &mut refs);
        Ok(Self(Arc::new(Inner {
            source: source.to_owned(),
            instrumented: budget::instrument(program.expression()),
            refs,
        })))
    }

    /// The expression source, without `${{ }}`.
    pub fn source(&self) -> &str {
        &self.0.source
    }

    /// The step ids the expression names (`steps.x`, `steps['x']`, …).
    pub fn referenced_steps(&self) -> BTreeSet<String> {
        self.0.refs.steps.clone()
    }

    /// Whether the expression uses `steps` other than with a literal step
    /// id (e.g. `steps[name]` or `steps.all(…)`), so which steps it reads
    /// cannot be known before it runs.
    pub fn references_all_steps(&self) -> bool {
        self.0.refs.all_steps
    }

    /// The free variables the expression reads (`inputs`, `steps`, …);
    /// names only used as function namespaces, like `math` in
    /// `math.greatest(…)`, are left out.
    pub fn variables(&self) -> BTreeSet<&str> {
        self.0.refs.read.iter().map(String::as_str).collect()
    }

    /// Evaluates to JSON within the default [`ExprBudget`].
    pub fn evaluate(&self, ctx: &ExprContext) -> Result<Value, ExprError> {
        self.evaluate_with(ctx, &ExprBudget::default())
    }

    /// Evaluates to JSON within `budget`.
    pub fn evaluate_with(
        &self,
        ctx: &ExprContext,
        budget: &ExprBudget,
    ) -> Result<Value, ExprError> {
        self.metered(budget, || self.to_json(ctx, budget))
    }

    /// Evaluates to a boolean within `budget`; any other type is an error.
    pub fn evaluate_bool_with(
        &self,
        ctx: &ExprContext,
        budget: &ExprBudget,
    ) -> Result<bool, ExprError> {
        self.metered(budget, || {
            self.execute(ctx, |v| match v.downcast_ref::<CelBool>() {
                Some(b) => Ok(*b.inner()),
                None => Err(self.wrong_type("bool", v)),
            })
        })
    }

    /// Evaluates to a boolean within the default budget.
    pub fn evaluate_bool(&self, ctx: &ExprContext) -> Result<bool, ExprError> {
        self.evaluate_bool_with(ctx, &ExprBudget::default())
    }

    /// Evaluates to a list of at most `max_items` JSON values within
    /// `budget`; any other type is an error. The length is checked before
    /// the items are converted.
    pub fn evaluate_list_with(
        &self,
        ctx: &ExprContext,
        budget: &ExprBudget,
        max_items: usize,
    ) -> Result<Vec<Value>, ExprError> {
        self.metered(budget, || {
            self.execute(ctx, |v| {
                if v.get_type().kind() != cel::common::types::Kind::List {
                    return Err(self.wrong_type("list", v));
                }
                let len = v.as_sizer().map_or(0, |s| {
                    usize::try_from(*s.size().inner()).unwrap_or(usize::MAX)
                });
                if len > max_items {
                    return Err(ExprError::TooManyItems {
                        expr: self.0.source.clone(),
                        max: max_items,
                    });
                }
                match self.convert(v, budget)? {
                    Value::Array(items) => Ok(items),
                    other => Err(ExprError::WrongType {
                        expr: self.0.source.clone(),
                        expected: "list",
                        got: other.to_string(),
                    }),
                }
            })
        })
    }

    /// Evaluates to a list within the default budget and no item limit.
    pub fn evaluate_list(&self, ctx: &ExprContext) -> Result<Vec<Value>, ExprError> {
        self.evaluate_list_with(ctx, &ExprBudget::default(), usize::MAX)
    }

    /// Runs `f` under a fresh meter for `budget`, unless one is already
    /// running (a [`CompiledValue`] meters all its expressions as one).
    fn metered<T>(
        &self,
        budget: &ExprBudget,
        f: impl FnOnce() -> Result<T, ExprError>,
    ) -> Result<T, ExprError> {
        let (out, exhausted) = budget::metered(budget, f);
        match exhausted {
            Some(limit) => Err(ExprError::BudgetExceeded {
                expr: self.0.source.clone(),
                limit,
            }),
            None => out,
        }
    }

    pub(crate) fn to_json(
        &self,
        ctx: &ExprContext,
        budget: &ExprBudget,
    ) -> Result<Value, ExprError> {
        self.execute(ctx, |v| self.convert(v, budget))
    }

    fn convert(&self, v: &dyn Val, budget: &ExprBudget) -> Result<Value, ExprError> {
        val_to_json(v, budget.max_result_bytes).map_err(|e| match e {
            ToJsonError::TooLarge => ExprError::BudgetExceeded {
                expr: self.0.source.clone(),
                limit: BudgetLimit::ResultSize,
            },
            ToJsonError::TooDeep => ExprError::NotJson {
                expr: self.0.source.clone(),
                message: format!(
                    "nested deeper than {} levels",
                    crate::json_limits::MAX_JSON_DEPTH
                ),
            },
            ToJsonError::NotJson(message) => ExprError::NotJson {
                expr: self.0.source.clone(),
                message,
            },
        })
    }

    fn wrong_type(&self, expected: &'static str, got: &dyn Val) -> ExprError {
        ExprError::WrongType {
            expr: self.0.source.clone(),
            expected,
            got: val_to_json(got, 1024)
                .map(|j| j.to_string())
                .unwrap_or_else(|_| got.get_type().name().to_string()),
        }
    }

    /// Evaluates the instrumented tree and hands the value to `finish`
    /// while it still borrows the context. A panic inside the CEL
    /// interpreter fails this evaluation, not the caller.
    fn execute<T>(
        &self,
        ctx: &ExprContext,
        finish: impl FnOnce(&dyn Val) -> Result<T, ExprError>,
    ) -> Result<T, ExprError> {
        let run = || {
            let c = self.bind(ctx);
            match cel::Value::resolve_val(&self.0.instrumented, &c) {
                Ok(v) => finish(v.as_ref()),
                Err(e) => Err(ExprError::Evaluation {
                    expr: self.0.source.clone(),
                    message: e.to_string(),
                }),
            }
        };
        let run = || budget::with_stack(run);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| {
            Err(ExprError::Evaluation {
                expr: self.0.source.clone(),
                message: "the CEL interpreter failed on this expression".into(),
            })
        })
    }

    fn bind<'c>(&self, ctx: &'c ExprContext) -> Context<'c, 'c> {
        let refs = &self.0.refs;
        let mut c = Context::with_env(Arc::clone(&ENV));
        for var in &refs.bind {
            let val: Box<dyn Val + '_> = match var.as_str() {
                "inputs" => json_to_val(&ctx.inputs),
                "run" => json_to_val(&ctx.run),
                "secrets" => Box::new(object_to_val(ctx.secrets.iter().map(|(k, v)| {
                    let v: Box<dyn Val + '_> = Box::new(CelString::from(v.as_str()));
                    (k.as_str(), v)
                }))),
                "steps" => Box::new(if refs.all_steps {
                    object_to_val(ctx.steps.iter().map(step_view))
                } else {
                    object_to_val(
                        refs.steps
                            .iter()
                            .filter_map(|id| ctx.steps.get_key_value(id))
                            .map(step_view),
                    )
                }),
                "item" => match &ctx.item {
                    Some(item) => json_to_val(item),
                    None => continue,
                },
                "index" => match ctx.index {
                    Some(i) => match i64::try_from(i) {
                        Ok(i) => Box::new(CelInt::from(i)),
                        Err(_) => Box::new(CelUInt::from(i)),
                    },
                    None => continue,
                },
                _ => continue,
            };
            c.add_variable_as_val(var.as_str(), val);
        }
        c
    }
}

/// `steps.<id>` as CEL: `{output, status}`.
fn step_view<'v>((id, s): (&'v String, &'v StepResultView)) -> (&'v str, Box<dyn Val + 'v>) {
    let fields: [(&str, Box<dyn Val + 'v>); 2] = [
        ("output", json_to_val(&s.output)),
        ("status", Box::new(CelString::from(s.status.as_str()))),
    ];
    (id.as_str(), Box::new(object_to_val(fields)))
}

/// Records what `e` mentions; `bound` holds comprehension variables in scope.
fn walk(e: &IdedExpr, bound: &mut Vec<String>, refs: &mut Refs) {
    let free = |name: &str, bound: &[String]| !bound.iter().any(|b| b == name);
    let is_steps = |e: &IdedExpr, bound: &[String]| matches!(&e.expr, Expr::Ident(n) if n == "steps" && free(n, bound));
    match &e.expr {
        Expr::Unspecified | Expr::Literal(_) => {}
        Expr::Ident(name) => {
            if free(name, bound) {
                refs.bind.insert(name.clone());
                refs.read.insert(name.clone());
                if name == "steps" {
                    refs.all_steps = true;
                }
            }
        }
        Expr::Select(s) => {
            if is_steps(&s.operand, bound) {
                refs.bind.insert("steps".into());
                refs.read.insert("steps".into());
                refs.steps.insert(s.field.clone());
            } else {
                walk(&s.operand, bound, refs);
            }
        }
        Expr::Call(call) => {
            let by_name = matches!(
                call.func_name.as_str(),
                operators::INDEX | operators::OPT_INDEX | operators::OPT_SELECT
            );
            if let (true, None, [target, key]) = (by_name, &call.target, call.args.as_slice())
                && is_steps(target, bound)
                && let Expr::Literal(LiteralValue::String(id)) = &key.expr
            {
                refs.bind.insert("steps".into());
                refs.read.insert("steps".into());
                refs.steps.insert(id.inner().to_owned());
                return;
            }
            if let Some(target) = &call.target {
                match &target.expr {
                    // `ns.f(…)`: `ns` may be a function namespace, not a variable.
                    Expr::Ident(name) if free(name, bound) => {
                        refs.bind.insert(name.clone());
                        if name == "steps" {
                            refs.read.insert(name.clone());
                            refs.all_steps = true;
                        }
                    }
                    _ => walk(target, bound, refs),
                }
            }
            for arg in &call.args {
                walk(arg, bound, refs);
            }
        }
        Expr::Comprehension(c) => {
            walk(&c.iter_range, bound, refs);
            walk(&c.accu_init, bound, refs);
            let depth = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.iter().cloned());
            bound.push(c.accu_var.clone());
            walk(&c.loop_cond, bound, refs);
            walk(&c.loop_step, bound, refs);
            walk(&c.result, bound, refs);
            bound.truncate(depth);
        }
        Expr::List(l) => {
            for item in &l.elements {
                walk(item, bound, refs);
            }
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                walk_entry(&entry.expr, bound, refs);
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                walk_entry(&entry.expr, bound, refs);
            }
        }
    }
}

fn walk_entry(entry: &EntryExpr, bound: &mut Vec<String>, refs: &mut Refs) {
    match entry {
        EntryExpr::MapEntry(m) => {
            walk(&m.key, bound, refs);
            walk(&m.value, bound, refs);
        }
        EntryExpr::StructField(f) => walk(&f.value, bound, refs),
    }
}

/// The byte offset of the `}}` closing an expression that starts at the
/// beginning of `s` (just after `${{`). Braces and string literals inside
/// the expression are skipped, so `${{ {'a': {'b': '}}'}} }}` works.
pub(crate) fn find_close(s: &str) -> Result<usize, String> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                let raw = i > 0 && matches!(b[i - 1], b'r' | b'R');
                i = skip_string(b, i, q, raw).ok_or("unterminated string literal")?;
                continue;
            }
            b'{' => depth += 1,
            b'}' if depth > 0 => depth -= 1,
            b'}' if b.get(i + 1) == Some(&b'}') => return Ok(i),
            _ => {}
        }
        i += 1;
    }
    Err("`${{` without a closing `}}`".into())
}

/// The index just past the string literal opening at `start`.
pub(crate) fn skip_string(b: &[u8], start: usize, q: u8, raw: bool) -> Option<usize> {
    let triple = b.get(start..start + 3) == Some(&[q, q, q][..]);
    let mut i = start + if triple { 3 } else { 1 };
    while i < b.len() {
        if b[i] == b'\\' && !raw {
            i += 2;
            continue;
        }
        if triple {
            if b.get(i..i + 3) == Some(&[q, q, q][..]) {
                return Some(i + 3);
            }
        } else if b[i] == q {
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
#[path = "expr_tests.rs"]
mod tests;
