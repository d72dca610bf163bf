//! JSON values whose strings hold `${{ }}` expressions: compiled once
//! (every expression located by a JSON pointer), evaluated against an
//! [`ExprContext`] under one [`ExprBudget`] for the whole value.

use super::budget::{BudgetLimit, ExprBudget};
use super::expr::{CompiledExpr, ExprContext, ExprError, ExprProblem, find_close};
use crate::json_limits::{JsonLimitError, JsonLimits, MAX_JSON_DEPTH, check_json};
use serde_json::Value;
use std::collections::BTreeSet;

/// A piece of a string that may hold expressions.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Expr(CompiledExpr),
}

/// Splits a string into text and `${{ }}` expressions.
fn split(s: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("${{") {
        if rest[..at].ends_with('$') {
            // `$${{` is a literal `${{`.
            text.push_str(&rest[..at - 1]);
            text.push_str("${{");
            rest = &rest[at + 3..];
            continue;
        }
        text.push_str(&rest[..at]);
        let body = &rest[at + 3..];
        let end = find_close(body)?;
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        let expr = CompiledExpr::compile_bare(&body[..end]).map_err(|e| e.message)?;
        parts.push(Part::Expr(expr));
        rest = &body[end + 2..];
    }
    text.push_str(rest);
    if !text.is_empty() || parts.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// No expressions below: used as is.
    Literal(Value),
    /// The whole string was one expression: its value, any JSON type.
    Expr(CompiledExpr),
    /// A string with expressions interpolated as text.
    Interpolated(Vec<Part>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// Where in a value an expression sits.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExprSite {
    /// JSON pointer, including the compile prefix.
    pub(crate) pointer: String,
    /// Whether the whole value is the expression (else it is interpolated
    /// into a string, so the value there is always a string).
    pub(crate) whole: bool,
    pub(crate) expr: CompiledExpr,
}

/// A JSON value whose strings may hold `${{ }}` expressions, compiled once.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledValue {
    root: Node,
    sites: Vec<ExprSite>,
}

/// Escapes one JSON-pointer segment.
pub(crate) fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

impl CompiledValue {
    /// Compiles every `${{ }}` in `value` (object keys are literal).
    /// Problems carry JSON pointers starting with `pointer_prefix`.
    pub fn compile(value: &Value, pointer_prefix: &str) -> Result<Self, Vec<ExprProblem>> {
        let mut sites = Vec::new();
        let mut problems = Vec::new();
        let root = compile_node(value, pointer_prefix.to_owned(), &mut sites, &mut problems);
        if problems.is_empty() {
            Ok(Self { root, sites })
        } else {
            Err(problems)
        }
    }

    /// Evaluates every expression and rebuilds the value, within the
    /// default [`ExprBudget`].
    pub fn evaluate(&self, ctx: &ExprContext) -> Result<Value, ExprError> {
        self.evaluate_with(ctx, &ExprBudget::default())
    }

    /// Evaluates every expression and rebuilds the value; all of them
    /// share one `budget`, and the whole value must fit its result size.
    pub fn evaluate_with(
        &self,
        ctx: &ExprContext,
        budget: &ExprBudget,
    ) -> Result<Value, ExprError> {
        let (out, exhausted) =
            super::budget::metered(budget, || eval_node(&self.root, ctx, budget));
        // Errors name the expression that failed, else the value's first.
        let first = || {
            self.sites
                .first()
                .map(|s| s.expr.source().to_owned())
                .unwrap_or_default()
        };
        if let Some(limit) = exhausted {
            let expr = match out {
                Err(ExprError::Evaluation { expr, .. }) => expr,
                _ => first(),
            };
            return Err(ExprError::BudgetExceeded { expr, limit });
        }
        let value = out?;
        let limits = JsonLimits {
            max_depth: MAX_JSON_DEPTH,
            max_bytes: usize::try_from(budget.max_result_bytes).unwrap_or(usize::MAX),
        };
        match check_json(&value, limits) {
            Ok(()) => Ok(value),
            Err(JsonLimitError::TooDeep { max }) => Err(ExprError::NotJson {
                expr: first(),
                message: format!("the value is nested deeper than {max} levels"),
            }),
            Err(_) => Err(ExprError::BudgetExceeded {
                expr: first(),
                limit: BudgetLimit::ResultSize,
            }),
        }
    }

    /// Every step id named by an expression in the value.
    pub fn referenced_steps(&self) -> BTreeSet<String> {
        self.sites
            .iter()
            .flat_map(|s| s.expr.referenced_steps())
            .collect()
    }

    /// Whether some expression uses `steps` without a literal step id.
    pub fn references_all_steps(&self) -> bool {
        self.sites.iter().any(|s| s.expr.references_all_steps())
    }

    /// Whether the value holds no expressions.
    pub fn is_literal(&self) -> bool {
        self.sites.is_empty()
    }

    /// JSON pointers (with the compile prefix) of the strings holding
    /// expressions, in document order, each once.
    pub fn expression_pointers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(self.sites.len());
        for s in &self.sites {
            if out.last() != Some(&s.pointer) {
                out.push(s.pointer.clone());
            }
        }
        out
    }

    /// Every expression with the pointer of the string holding it.
    pub fn expressions(&self) -> impl Iterator<Item = (&str, &CompiledExpr)> {
        self.sites.iter().map(|s| (s.pointer.as_str(), &s.expr))
    }

    pub(crate) fn sites(&self) -> &[ExprSite] {
        &self.sites
    }
}

fn compile_node(
    v: &Value,
    pointer: String,
    sites: &mut Vec<ExprSite>,
    problems: &mut Vec<ExprProblem>,
) -> Node {
    match v {
        Value::String(s) if s.contains("${{") => match split(s) {
            Ok(parts) => {
                let exprs = parts.iter().filter_map(|p| match p {
                    Part::Expr(e) => Some(e.clone()),
                    Part::Text(_) => None,
                });
                let whole = matches!(parts.as_slice(), [Part::Expr(_)]);
                for expr in exprs {
                    sites.push(ExprSite {
                        pointer: pointer.clone(),
                        whole,
                        expr,
                    });
                }
                match parts.as_slice() {
                    [Part::Expr(e)] => Node::Expr(e.clone()),
                    [Part::Text(t)] => Node::Literal(Value::String(t.clone())),
                    _ => Node::Interpolated(parts),
                }
            }
            Err(message) => {
                problems.push(ExprProblem { pointer, message });
                Node::Literal(v.clone())
            }
        },
        Value::Array(items) => {
            let nodes: Vec<Node> = items
                .iter()
                .enumerate()
                .map(|(i, item)| compile_node(item, format!("{pointer}/{i}"), sites, problems))
                .collect();
            if nodes.iter().all(|n| matches!(n, Node::Literal(_))) {
                Node::Literal(Value::Array(
                    nodes.into_iter().filter_map(literal).collect(),
                ))
            } else {
                Node::Array(nodes)
            }
        }
        Value::Object(map) => {
            let nodes: Vec<(String, Node)> = map
                .iter()
                .map(|(k, item)| {
                    let p = format!("{pointer}/{}", escape_pointer(k));
                    (k.clone(), compile_node(item, p, sites, problems))
                })
                .collect();
            if nodes.iter().all(|(_, n)| matches!(n, Node::Literal(_))) {
                Node::Literal(Value::Object(
                    nodes
                        .into_iter()
                        .filter_map(|(k, n)| Some((k, literal(n)?)))
                        .collect(),
                ))
            } else {
                Node::Object(nodes)
            }
        }
        _ => Node::Literal(v.clone()),
    }
}

fn literal(n: Node) -> Option<Value> {
    match n {
        Node::Literal(v) => Some(v),
        _ => None,
    }
}

fn eval_node(n: &Node, ctx: &ExprContext, budget: &ExprBudget) -> Result<Value, ExprError> {
    Ok(match n {
        Node::Literal(v) => v.clone(),
        Node::Expr(e) => e.to_json(ctx, budget)?,
        Node::Interpolated(parts) => {
            let mut out = String::new();
            for p in parts {
                match p {
                    Part::Text(t) => out.push_str(t),
                    Part::Expr(e) => match e.to_json(ctx, budget)? {
                        Value::String(s) => out.push_str(&s),
                        other => out.push_str(&other.to_string()),
                    },
                }
            }
            Value::String(out)
        }
        Node::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| eval_node(i, ctx, budget))
                .collect::<Result<_, _>>()?,
        ),
        Node::Object(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, n)| Ok((k.clone(), eval_node(n, ctx, budget)?)))
                .collect::<Result<_, ExprError>>()?,
        ),
    })
}
