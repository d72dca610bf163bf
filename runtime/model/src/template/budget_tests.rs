#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::template::expr::{CompiledExpr, CompiledValue, ExprContext, ExprError};
use serde_json::json;

fn ctx() -> ExprContext {
    ExprContext {
        inputs: json!({"name": "weft", "big": "x".repeat(100_000), "n": 3}),
        ..Default::default()
    }
}

/// Cost or time, whichever runs out first (debug builds are slow).
const RUNAWAY: [BudgetLimit; 2] = [BudgetLimit::Cost, BudgetLimit::Time];

fn budget_error(src: &str) -> BudgetLimit {
    let started = Instant::now();
    let e = CompiledExpr::compile(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    let got = e.evaluate_with(&ctx(), &ExprBudget::default());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{src} took {took:?}");
    match got {
        Err(ExprError::BudgetExceeded { limit, .. }) => limit,
        other => panic!("{src}: expected a budget error, got {other:?}"),
    }
}

/// Deep expressions of every shape are refused before parsing, with a
/// clear message, on a test thread's ordinary stack.
#[test]
fn deep_expressions_are_refused_before_parsing() {
    let shapes = [
        "1+".repeat(10_000) + "1",
        "a".to_owned() + &".b".repeat(3_000),
        "x".to_owned() + &"[0]".repeat(2_000),
        "(".repeat(2_000) + "1" + &")".repeat(2_000),
        "!".repeat(5_000) + "true",
        "-".repeat(5_000) + "1",
        "true ? 1 : ".repeat(1_000) + "2",
        "size(".repeat(1_500) + "'a'" + &")".repeat(1_500),
        "[".repeat(1_000) + &"]".repeat(1_000),
        "{'a': ".repeat(1_000) + "1" + &"}".repeat(1_000),
        "x in ".repeat(1_500) + "y",
        "a && ".repeat(1_600) + "b",
    ];
    for src in shapes {
        let err = CompiledExpr::compile(&src).expect_err(&src[..40.min(src.len())]);
        assert!(
            err.message.contains("nested too deeply") || err.message.contains("bytes"),
            "{}: {}",
            &src[..40.min(src.len())],
            err.message
        );
    }
    let long = format!("'{}'", "x".repeat(MAX_EXPRESSION_BYTES));
    assert!(
        CompiledExpr::compile(&long)
            .expect_err("long")
            .message
            .contains("bytes")
    );
}

/// What the scan lets through is evaluated safely on an ordinary stack,
/// in debug builds too.
#[test]
fn expressions_at_the_limits_evaluate() {
    let n = MAX_EXPRESSION_NESTING - 2;
    let cases = [
        ("1+".repeat(n) + "1", json!(n + 1)),
        ("(".repeat(n / 2) + "1" + &")".repeat(n / 2), json!(1)),
        ("[".repeat(n / 2) + &"]".repeat(n / 2), {
            let mut v = json!([]);
            for _ in 1..n / 2 {
                v = json!([v]);
            }
            v
        }),
        ("!".repeat(n) + "true", json!(true)),
    ];
    for (src, want) in cases {
        let e = CompiledExpr::compile(&src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(e.evaluate(&ctx()).unwrap(), want, "{src}");
    }
    // Nested comprehensions: macros deepen the tree beyond the source.
    let mut src = "1".to_owned();
    for i in 0..12 {
        src = format!("[1, 2].map(x{i}, {src})");
    }
    let e = CompiledExpr::compile(&src).unwrap_or_else(|e| panic!("{src}: {e}"));
    assert!(e.evaluate(&ctx()).is_ok());
}

#[test]
fn runaway_evaluation_runs_out_of_budget() {
    // Nested comprehensions: a billion iterations.
    assert!(RUNAWAY.contains(&budget_error(
        "lists.range(1000).map(a, lists.range(1000).map(b, lists.range(1000).map(c, c)))"
    )));
    assert!(RUNAWAY.contains(&budget_error(
        "lists.range(1000).all(a, lists.range(1000).all(b, lists.range(100).all(c, c >= 0)))"
    )));
    // String quadrupling, 14 times: a gigabyte.
    let mut src = "s14".to_owned();
    for i in (0..14).rev() {
        src = format!("[s{i} + s{i} + s{i} + s{i}].map(s{}, {src})", i + 1);
    }
    let src = format!("[inputs.name].map(s0, {src})");
    assert!(RUNAWAY.contains(&budget_error(&src)));
    // One call whose output outgrows its input.
    assert!(RUNAWAY.contains(&budget_error("inputs.big.replace('', inputs.big)")));
    assert!(RUNAWAY.contains(&budget_error(
        "lists.range(100000).map(x, inputs.big).join(inputs.big)"
    )));
    assert!(RUNAWAY.contains(&budget_error("lists.range(1000000).map(x, x).distinct()")));
    // A result that shares one large string thousands of times.
    assert_eq!(
        budget_error("lists.range(2000).map(x, [inputs.big])"),
        BudgetLimit::ResultSize
    );
    // Linear work repeated in a loop: `in` over a list, per item.
    assert!(RUNAWAY.contains(&budget_error(
        "lists.range(100000).filter(x, x in lists.range(100000)).size() > 0"
    )));
}

#[test]
fn time_is_a_budget_too() {
    let e = CompiledExpr::compile("lists.range(1000).map(a, lists.range(1000).map(b, b))").unwrap();
    let budget = ExprBudget {
        max_cost: u64::MAX,
        max_time: Duration::from_millis(20),
        max_result_bytes: u64::MAX,
    };
    match e.evaluate_with(&ctx(), &budget) {
        Err(ExprError::BudgetExceeded { limit, .. }) => assert_eq!(limit, BudgetLimit::Time),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ordinary_expressions_fit_a_small_budget() {
    let small = ExprBudget::default().with_max_cost(10_000);
    for src in [
        "inputs.name + '-' + string(inputs.n)",
        "[1, 2, 3].map(x, x * 2).filter(x, x > 2)",
        "inputs.name.replace('w', 'W').upperAscii()",
        "['a', 'b'].join(', ')",
        "lists.range(10).exists(x, x == 3)",
        "math.greatest([1, 5, 3])",
    ] {
        let e = CompiledExpr::compile(src).unwrap();
        assert!(e.evaluate_with(&ctx(), &small).is_ok(), "{src}");
    }
}

#[test]
fn a_value_shares_one_budget_and_for_each_is_capped() {
    let v = CompiledValue::compile(
        &json!({"a": "${{ lists.range(600).map(x, x) }}", "b": "${{ lists.range(600).map(x, x) }}"}),
        "",
    )
    .unwrap();
    let budget = ExprBudget::default().with_max_cost(1_500);
    assert!(matches!(
        v.evaluate_with(&ctx(), &budget),
        Err(ExprError::BudgetExceeded {
            limit: BudgetLimit::Cost,
            ..
        })
    ));
    let e = CompiledExpr::compile("lists.range(20000)").unwrap();
    assert!(matches!(
        e.evaluate_list_with(&ctx(), &ExprBudget::default(), 10_000),
        Err(ExprError::TooManyItems { max: 10_000, .. })
    ));
    assert_eq!(
        e.evaluate_list_with(&ctx(), &ExprBudget::default(), 20_000)
            .unwrap()
            .len(),
        20_000
    );
}

#[test]
fn nesting_bound_counts_chains_and_groups() {
    assert_eq!(nesting_bound("x"), 1);
    assert_eq!(nesting_bound("a + b"), 2);
    assert_eq!(nesting_bound("a == 1 && b == 2"), 4);
    assert_eq!(nesting_bound("f(g(h(x)))"), 4);
    assert_eq!(nesting_bound("[1, 2, 3, 4, 5, 6, 7]"), 2);
    assert_eq!(nesting_bound("'((((((' + x"), 2);
    assert_eq!(nesting_bound("!!!x"), 4);
    assert!(nesting_bound(&"1+".repeat(100)) > 100);
    assert!(nesting_bound(&format!("{}x{}", "(".repeat(70), ")".repeat(70))) > 70);
    assert!(nesting_bound(&"a.".repeat(80)) > 80);
    assert!(nesting_bound(&"x[0]".repeat(80)) > 80);
    assert!(nesting_bound(&"c ? 1 : ".repeat(80)) > 80);
}
