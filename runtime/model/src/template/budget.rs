//! Bounds on what one CEL expression may cost.
//!
//! Expressions come from users, and the host evaluates them, so each is
//! bounded twice:
//!
//! - **Before parsing**, by its length and by an upper bound on the depth of
//!   its syntax tree found with a linear scan of the text ([`check_source`]).
//!   The parser, the evaluator and dropping the tree all recurse on that
//!   depth; a long chain such as `1+1+…+1` would otherwise overflow the
//!   stack and abort the process.
//! - **While evaluating**, by a cost meter ([`ExprBudget`]): the compiled
//!   tree is instrumented ([`instrument`]) with calls to internal functions
//!   that charge the meter for every function or operator applied (by the
//!   size of its operands), every comprehension iteration (by the size of
//!   what it produced), and — before they run — for the few functions whose
//!   output can outgrow their input (`replace`, `join`, `distinct`,
//!   `lists.range`). The meter also watches the wall clock. Once it runs out
//!   every further charge fails, so the evaluation unwinds quickly, and the
//!   result is discarded whatever it was.

use cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, operators};
use cel::common::types::{CelBytes, CelInt, CelString, DYN_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{Env, ExecutionError};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// Longest expression source accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 8 * 1024;

/// Largest bound on an expression's syntax-tree depth accepted (see
/// [`check_source`]). Generous for real expressions: `a && b && c` counts
/// 3, `f(g(h(x)))` counts 4.
pub const MAX_EXPRESSION_NESTING: usize = 64;

/// What evaluating one expression may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExprBudget {
    /// Cost units: one per function applied or comprehension iteration,
    /// plus one per byte or element of the values involved.
    pub max_cost: u64,
    /// Wall-clock time.
    #[serde(with = "duration_ms", rename = "maxTimeMs")]
    pub max_time: Duration,
    /// Largest result, as compact JSON bytes.
    pub max_result_bytes: u64,
}

impl Default for ExprBudget {
    fn default() -> Self {
        Self {
            max_cost: 10_000_000,
            max_time: Duration::from_secs(2),
            max_result_bytes: 4 << 20,
        }
    }
}

impl ExprBudget {
    /// The same budget with at most `cost` units.
    pub fn with_max_cost(self, cost: u64) -> Self {
        Self {
            max_cost: self.max_cost.min(cost),
            ..self
        }
    }
}

/// Which part of a budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BudgetLimit {
    /// [`ExprBudget::max_cost`].
    Cost,
    /// [`ExprBudget::max_time`].
    Time,
    /// [`ExprBudget::max_result_bytes`].
    ResultSize,
}

impl std::fmt::Display for BudgetLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cost => "cost",
            Self::Time => "time",
            Self::ResultSize => "result size",
        })
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Checks an expression's source before it is parsed: its length, and an
/// upper bound on the depth of the tree it parses to. The bound is the
/// largest, over every point of the text, of the operators chained before
/// it in each enclosing bracket group, plus the groups themselves; commas
/// start a new chain. Every operator may deepen the tree by one, so the
/// real depth never exceeds it.
pub(crate) fn check_source(src: &str) -> Result<(), String> {
    if src.len() > MAX_EXPRESSION_BYTES {
        return Err(format!(
            "expression is {} bytes; the limit is {MAX_EXPRESSION_BYTES}",
            src.len()
        ));
    }
    let bound = nesting_bound(src);
    if bound > MAX_EXPRESSION_NESTING {
        return Err(format!(
            "expression is nested too deeply (about {bound} levels; the limit is \
             {MAX_EXPRESSION_NESTING}): split it into steps or simplify it"
        ));
    }
    Ok(())
}

fn nesting_bound(src: &str) -> usize {
    let b = src.as_bytes();
    // Operators chained so far in each enclosing group, innermost last.
    let mut groups: Vec<usize> = Vec::new();
    let mut chain = 0usize;
    let mut enclosing = 0usize;
    let mut max = 0usize;
    let mut i = 0;
    let mut prev_op = false;
    while i < b.len() {
        let c = b[i];
        let mut op = false;
        match c {
            b'\'' | b'"' => {
                let raw = i > 0 && matches!(b[i - 1], b'r' | b'R');
                i = super::expr::skip_string(b, i, c, raw).unwrap_or(b.len());
                prev_op = false;
                continue;
            }
            b'(' | b'[' | b'{' => {
                groups.push(chain);
                enclosing += chain + 1;
                chain = 0;
            }
            b')' | b']' | b'}' => {
                // A call or an index applied to what precedes the group
                // deepens the tree like an operator; a parenthesised
                // operand is counted the same, which only overestimates.
                if let Some(outer) = groups.pop() {
                    enclosing -= outer + 1;
                    chain = outer + 1;
                }
            }
            b',' => chain = 0,
            // `!` and `-` may be unary, so each counts; in any other run of
            // operator characters (`==`, `&&`, `<=`) only the first does.
            b'!' | b'-' => {
                chain += 1;
                op = true;
            }
            b'+' | b'*' | b'/' | b'%' | b'<' | b'>' | b'=' | b'&' | b'|' | b'?' | b'.' => {
                if !prev_op {
                    chain += 1;
                }
                op = true;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if &b[start..i] == b"in" {
                    chain += 1;
                }
                max = max.max(enclosing + chain + 1);
                prev_op = false;
                continue;
            }
            _ => {}
        }
        prev_op = op;
        max = max.max(enclosing + chain + 1);
        i += 1;
    }
    max
}

/// Stack the parser and evaluator may need at the nesting limit, measured
/// (62 levels: under 16 MiB in debug builds, under 1 MiB in release).
const RED_ZONE: usize = if cfg!(debug_assertions) {
    24 << 20
} else {
    3 << 19
};
/// The stack given to them when less than [`RED_ZONE`] is left.
const NEW_STACK: usize = if cfg!(debug_assertions) {
    48 << 20
} else {
    8 << 20
};

/// Runs `f` (parsing or evaluating an expression) with enough stack for
/// anything [`check_source`] lets through, on whichever thread calls it:
/// on a fresh segment when the caller's stack is short.
pub(crate) fn with_stack<T>(f: impl FnOnce() -> T) -> T {
    stacker::maybe_grow(RED_ZONE, NEW_STACK, f)
}

/// The meter of the evaluation running on this thread.
struct Meter {
    remaining: u64,
    deadline: Instant,
    /// Charges since the clock was last read.
    since_clock: u32,
    exhausted: Option<BudgetLimit>,
}

thread_local! {
    static METER: RefCell<Option<Meter>> = const { RefCell::new(None) };
}

/// How often (in charges) the meter reads the clock.
const CLOCK_EVERY: u32 = 256;

/// Runs `f` with a meter for `budget` on this thread; returns its result and
/// which limit ran out, if one did (the result is then meaningless).
pub(crate) fn metered<T>(budget: &ExprBudget, f: impl FnOnce() -> T) -> (T, Option<BudgetLimit>) {
    let meter = Meter {
        remaining: budget.max_cost,
        deadline: Instant::now() + budget.max_time,
        since_clock: 0,
        exhausted: None,
    };
    let outer = METER.with(|m| m.replace(Some(meter)));
    let out = f();
    let meter = METER.with(|m| m.replace(outer));
    (out, meter.and_then(|m| m.exhausted))
}

/// Charges the current meter; fails once it has run out. Without a meter
/// (nothing evaluates outside [`metered`]) it charges nothing.
fn charge(units: u64) -> Result<(), ExecutionError> {
    METER.with(|m| {
        let mut m = m.borrow_mut();
        let Some(meter) = m.as_mut() else {
            return Ok(());
        };
        if meter.exhausted.is_none() {
            meter.since_clock += 1;
            if meter.since_clock >= CLOCK_EVERY {
                meter.since_clock = 0;
                if Instant::now() >= meter.deadline {
                    meter.exhausted = Some(BudgetLimit::Time);
                }
            }
            match meter.remaining.checked_sub(units) {
                Some(rest) if meter.exhausted.is_none() => meter.remaining = rest,
                Some(_) => {}
                None => meter.exhausted = Some(BudgetLimit::Cost),
            }
        }
        match meter.exhausted {
            None => Ok(()),
            Some(limit) => Err(ExecutionError::function_error(
                "budget",
                format!("expression exceeded its {limit} budget"),
            )),
        }
    })
}

/// The shallow size of a value: bytes of a string, elements of a list or
/// entries of a map, else 0.
fn size_of(v: &dyn Val) -> u64 {
    if let Some(s) = v.downcast_ref::<CelString>() {
        return s.inner().len() as u64;
    }
    if let Some(b) = v.downcast_ref::<CelBytes>() {
        return b.inner().len() as u64;
    }
    v.as_sizer()
        .map(|s| u64::try_from(*s.size().inner()).unwrap_or(0))
        .unwrap_or(0)
}

const COST: &str = "@weft_cost";
const GUARD_REPLACE: &str = "@weft_guard_replace";
const GUARD_JOIN: &str = "@weft_guard_join";
const GUARD_SQUARE: &str = "@weft_guard_square";
const GUARD_COUNT: &str = "@weft_guard_count";

/// Registers the metering functions. Their names start with `@`, which
/// CEL source cannot spell, so only [`instrument`] can call them.
pub(crate) fn register(env: &mut Env) -> Result<(), cel::DeclarationError> {
    env.add_overload(COST, "weft_cost", vec![DYN_TYPE], cost)?;
    for n in 1..=3 {
        env.add_overload(
            GUARD_REPLACE,
            &format!("weft_guard_replace_{n}"),
            (0..n).map(|_| DYN_TYPE).collect(),
            guard_replace,
        )?;
    }
    for n in 1..=2 {
        env.add_overload(
            GUARD_JOIN,
            &format!("weft_guard_join_{n}"),
            (0..n).map(|_| DYN_TYPE).collect(),
            guard_join,
        )?;
    }
    env.add_overload(
        GUARD_SQUARE,
        "weft_guard_square",
        vec![DYN_TYPE],
        guard_square,
    )?;
    env.add_overload(GUARD_COUNT, "weft_guard_count", vec![DYN_TYPE], guard_count)?;
    Ok(())
}

fn first<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    args.into_iter()
        .next()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))
}

/// Charges `1 + size` of its argument and returns it.
fn cost<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let units = args.first().map_or(0, |a| size_of(a.as_ref()));
    charge(1 + units)?;
    first(args)
}

/// Before `s.replace(from, to[, n])`: charges the size of the result.
fn guard_replace<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let text = |i: usize| {
        args.get(i)
            .and_then(|a| a.as_ref().downcast_ref::<CelString>())
            .map(|s| s.inner())
    };
    if let (Some(s), Some(from), Some(to)) = (text(0), text(1), text(2)) {
        let hits = if from.is_empty() {
            s.chars().count() + 1
        } else {
            s.matches(from).count()
        };
        charge(1 + s.len() as u64 + (hits as u64).saturating_mul(to.len() as u64))?;
    }
    first(args)
}

/// Before `list.join([sep])`: charges the size of the result.
fn guard_join<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let sep = args
        .get(1)
        .and_then(|a| a.as_ref().downcast_ref::<CelString>())
        .map_or(0, |s| s.inner().len() as u64);
    if let Some(list) = args
        .first()
        .and_then(|a| a.as_ref().downcast_ref::<cel::common::types::CelList>())
    {
        let mut units = 1 + (list.inner().len() as u64).saturating_mul(sep + 1);
        for item in list.inner() {
            units = units.saturating_add(size_of(item.as_ref()));
        }
        charge(units)?;
    }
    first(args)
}

/// Before `list.distinct()`, quadratic in the list's size.
fn guard_square<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let n = args.first().map_or(0, |a| size_of(a.as_ref()));
    charge(1u64.saturating_add(n.saturating_mul(n)))?;
    first(args)
}

/// Before `lists.range(n)`: charges `n`.
fn guard_count<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    if let Some(n) = args
        .first()
        .and_then(|a| a.as_ref().downcast_ref::<CelInt>())
    {
        charge(1 + u64::try_from(*n.inner()).unwrap_or(0))?;
    }
    first(args)
}

/// Calls whose operands are not charged: they are constant-time, or their
/// shape is recognised by the evaluator (logic, conditionals, indexing).
fn uncharged(func: &str) -> bool {
    matches!(
        func,
        operators::LOGICAL_AND
            | operators::LOGICAL_OR
            | operators::LOGICAL_NOT
            | operators::CONDITIONAL
            | operators::NOT_STRICTLY_FALSE
            | operators::INDEX
            | operators::OPT_INDEX
            | operators::OPT_SELECT
            | "size"
            | "has"
    )
}

fn call(func: &str, args: Vec<IdedExpr>) -> IdedExpr {
    IdedExpr {
        id: 0,
        expr: Expr::Call(CallExpr {
            func_name: func.to_owned(),
            target: None,
            args,
        }),
    }
}

fn charged(e: IdedExpr) -> IdedExpr {
    match e.expr {
        Expr::Literal(_) => e,
        _ => call(COST, vec![e]),
    }
}

/// The expression with metering calls inserted (see the module docs). Its
/// value is the same as the original's.
pub(crate) fn instrument(e: &IdedExpr) -> IdedExpr {
    let expr = match &e.expr {
        Expr::Call(c) => Expr::Call(instrument_call(c)),
        Expr::Comprehension(c) => Expr::Comprehension(Box::new(instrument_comprehension(c))),
        Expr::List(l) => {
            let mut l = l.clone();
            for item in &mut l.elements {
                *item = instrument(item);
            }
            Expr::List(l)
        }
        Expr::Map(m) => {
            let mut m = m.clone();
            for entry in &mut m.entries {
                instrument_entry(&mut entry.expr);
            }
            Expr::Map(m)
        }
        Expr::Struct(s) => {
            let mut s = s.clone();
            for entry in &mut s.entries {
                instrument_entry(&mut entry.expr);
            }
            Expr::Struct(s)
        }
        Expr::Select(s) => {
            let mut s = s.clone();
            s.operand = Box::new(instrument(&s.operand));
            Expr::Select(s)
        }
        Expr::Unspecified | Expr::Literal(_) | Expr::Ident(_) => e.expr.clone(),
    };
    IdedExpr { id: e.id, expr }
}

fn instrument_entry(entry: &mut EntryExpr) {
    match entry {
        EntryExpr::MapEntry(m) => {
            m.key = instrument(&m.key);
            m.value = instrument(&m.value);
        }
        EntryExpr::StructField(f) => f.value = instrument(&f.value),
    }
}

fn instrument_call(c: &CallExpr) -> CallExpr {
    let args: Vec<IdedExpr> = c.args.iter().map(instrument).collect();
    let target = c.target.as_ref().map(|t| instrument(t));
    let charge_args = !uncharged(&c.func_name);
    let mut args: Vec<IdedExpr> = if charge_args {
        args.into_iter().map(charged).collect()
    } else {
        args
    };
    // A target is never wrapped in general: `math.abs(x)` must still see the
    // namespace `math`. The guarded functions take theirs through a guard
    // that returns it unchanged.
    let target = match (c.func_name.as_str(), target) {
        ("replace", Some(t)) if (2..=3).contains(&c.args.len()) => {
            let mut guard_args = vec![t];
            guard_args.extend(c.args.iter().take(2).map(instrument));
            Some(Box::new(call(GUARD_REPLACE, guard_args)))
        }
        ("join", Some(t)) if c.args.len() <= 1 => {
            let mut guard_args = vec![t];
            guard_args.extend(c.args.iter().map(instrument));
            Some(Box::new(call(GUARD_JOIN, guard_args)))
        }
        ("distinct", Some(t)) => Some(Box::new(call(GUARD_SQUARE, vec![t]))),
        ("range", Some(t)) => {
            if matches!(&t.expr, Expr::Ident(ns) if ns == "lists")
                && let Some(n) = args.pop()
            {
                args.push(call(GUARD_COUNT, vec![n]));
            }
            Some(Box::new(t))
        }
        (_, t) => t.map(Box::new),
    };
    CallExpr {
        func_name: c.func_name.clone(),
        target,
        args,
    }
}

/// Charges each iteration where the evaluator's fast paths still see the
/// shape they recognise: the appended item of `map`/`filter`
/// (`@result + [item]`), the predicate of `all`/`exists`
/// (`@result && p`), else the whole step.
fn instrument_comprehension(c: &ComprehensionExpr) -> ComprehensionExpr {
    let accu = c.accu_var.as_str();
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if n == accu);
    let append = |step: &IdedExpr| -> Option<IdedExpr> {
        let Expr::Call(call) = &step.expr else {
            return None;
        };
        match (call.func_name.as_str(), &call.target, call.args.as_slice()) {
            (operators::ADD, None, [lhs, rhs]) if is_accu(lhs) => {
                let Expr::List(list) = &rhs.expr else {
                    return None;
                };
                let mut list = list.clone();
                for item in &mut list.elements {
                    *item = charged(instrument(item));
                }
                Some(IdedExpr {
                    id: step.id,
                    expr: Expr::Call(CallExpr {
                        func_name: call.func_name.clone(),
                        target: None,
                        args: vec![
                            lhs.clone(),
                            IdedExpr {
                                id: rhs.id,
                                expr: Expr::List(list),
                            },
                        ],
                    }),
                })
            }
            _ => None,
        }
    };
    let step = &c.loop_step;
    let loop_step = match &step.expr {
        Expr::Call(call) => match (call.func_name.as_str(), &call.target, call.args.as_slice()) {
            (operators::ADD, None, _) => append(step),
            (operators::CONDITIONAL, None, [guard, then, otherwise]) if is_accu(otherwise) => {
                append(then).map(|then| IdedExpr {
                    id: step.id,
                    expr: Expr::Call(CallExpr {
                        func_name: call.func_name.clone(),
                        target: None,
                        args: vec![instrument(guard), then, otherwise.clone()],
                    }),
                })
            }
            (operators::LOGICAL_AND | operators::LOGICAL_OR, None, [lhs, p]) if is_accu(lhs) => {
                Some(IdedExpr {
                    id: step.id,
                    expr: Expr::Call(CallExpr {
                        func_name: call.func_name.clone(),
                        target: None,
                        args: vec![lhs.clone(), charged(instrument(p))],
                    }),
                })
            }
            _ => None,
        },
        _ => None,
    }
    .unwrap_or_else(|| call(COST, vec![instrument(step)]));
    ComprehensionExpr {
        iter_range: instrument(&c.iter_range),
        iter_var: c.iter_var.clone(),
        iter_var2: c.iter_var2.clone(),
        accu_var: c.accu_var.clone(),
        accu_init: instrument(&c.accu_init),
        loop_cond: c.loop_cond.clone(),
        loop_step,
        result: instrument(&c.result),
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
