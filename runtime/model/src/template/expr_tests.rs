#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use serde_json::json;

fn ctx() -> ExprContext {
    let mut steps = BTreeMap::new();
    steps.insert(
        "b".to_owned(),
        StepResultView {
            output: json!({"value": 41, "items": ["x", "y"], "ratio": 0.5}),
            status: "SUCCESS".into(),
        },
    );
    steps.insert(
        "other-step".to_owned(),
        StepResultView {
            output: json!("hi"),
            status: "SKIPPED".into(),
        },
    );
    ExprContext {
        inputs: json!({"n": 5, "name": "weft", "flag": true, "list": [1, 2, 3]}),
        steps,
        run: json!({"id": "r1", "attempt": 2}),
        secrets: BTreeMap::from([("token".to_owned(), "s3cr3t".to_owned())]),
        item: None,
        index: None,
    }
}

fn eval(v: Value) -> Value {
    CompiledValue::compile(&v, "")
        .unwrap_or_else(|e| panic!("{e:?}"))
        .evaluate(&ctx())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn whole_value_keeps_the_json_type() {
    assert_eq!(eval(json!("${{ steps.b.output.value + 1 }}")), json!(42));
    assert_eq!(eval(json!("${{inputs.flag}}")), json!(true));
    assert_eq!(eval(json!("${{ inputs.list }}")), json!([1, 2, 3]));
    assert_eq!(eval(json!("${{ steps.b.output.ratio * 2.0 }}")), json!(1.0));
    assert_eq!(
        eval(json!("${{ {'a': {'b': [1]}} }}")),
        json!({"a": {"b": [1]}})
    );
    assert_eq!(eval(json!("${{ null }}")), json!(null));
    assert_eq!(eval(json!("${{ secrets.token }}")), json!("s3cr3t"));
    assert_eq!(eval(json!("${{ run.attempt }}")), json!(2));
}

#[test]
fn interpolation_renders_text() {
    assert_eq!(eval(json!("n=${{ inputs.n }}")), json!("n=5"));
    assert_eq!(
        eval(json!("${{ inputs.name }}-${{ inputs.list }}!")),
        json!("weft-[1,2,3]!")
    );
    assert_eq!(eval(json!(" ${{ inputs.name }}")), json!(" weft"));
    assert_eq!(
        eval(json!("cost: $${{ not an expr }}")),
        json!("cost: ${{ not an expr }}")
    );
    assert_eq!(eval(json!("a '}}' b ${{ '}}' }}")), json!("a '}}' b }}"));
}

#[test]
fn nested_values_are_rebuilt() {
    let v = json!({"a": [1, "${{ inputs.n * 2 }}", {"s": "x${{ index }}"}], "lit": {"k": "v"}});
    let compiled = CompiledValue::compile(&v, "/steps/0/with").unwrap();
    assert!(!compiled.is_literal());
    assert_eq!(
        compiled.expression_pointers(),
        ["/steps/0/with/a/1", "/steps/0/with/a/2/s"]
    );
    let mut c = ctx();
    c.index = Some(3);
    assert_eq!(
        compiled.evaluate(&c).unwrap(),
        json!({"a": [1, 10, {"s": "x3"}], "lit": {"k": "v"}})
    );
    let lit = CompiledValue::compile(&json!({"k": ["v", 1]}), "").unwrap();
    assert!(lit.is_literal());
}

#[test]
fn compile_problems_carry_pointers() {
    let v = json!({"ok": "${{ 1 }}", "a/b": ["${{ 1 + }}"], "open": "x ${{ inputs.n"});
    let problems = CompiledValue::compile(&v, "/with").unwrap_err();
    let pointers: Vec<_> = problems.iter().map(|p| p.pointer.as_str()).collect();
    assert_eq!(pointers, ["/with/a~1b/0", "/with/open"], "{problems:?}");
    assert!(problems[1].message.contains("closing"), "{problems:?}");
    assert!(CompiledValue::compile(&json!("${{ }}"), "").is_err());
}

#[test]
fn referenced_steps_come_from_the_syntax_tree() {
    let e = CompiledExpr::compile(
        "steps.a.output.x + steps['other-step'].output.size() \
         + (has(steps.c.output) ? 1 : 0) + steps.?d.orValue(0) \
         + [1].map(steps, steps.notastep)[0] + 'steps.e'.size()",
    )
    .unwrap();
    assert_eq!(
        e.referenced_steps(),
        BTreeSet::from(["a", "other-step", "c", "d"].map(String::from))
    );
    assert!(!e.references_all_steps());
    assert!(
        CompiledExpr::compile("steps[inputs.name]")
            .unwrap()
            .references_all_steps()
    );
    assert!(
        CompiledExpr::compile("steps.all(k, k != '')")
            .unwrap()
            .references_all_steps()
    );
    let v = CompiledValue::compile(
        &json!({"x": "${{ steps.a.output }}", "y": "${{ steps.b.status }}"}),
        "",
    )
    .unwrap();
    assert_eq!(
        v.referenced_steps(),
        BTreeSet::from(["a".to_owned(), "b".to_owned()])
    );
}

#[test]
fn free_variables_skip_namespaces_and_bound_names() {
    let e = CompiledExpr::compile("math.greatest(inputs.n, 1) + [1].map(x, x)[0] + size(item)")
        .unwrap();
    assert_eq!(e.variables(), BTreeSet::from(["inputs", "item"]));
}

#[test]
fn bare_and_wrapped_expressions() {
    let c = ctx();
    assert!(
        CompiledExpr::compile("inputs.n > 3")
            .unwrap()
            .evaluate_bool(&c)
            .unwrap()
    );
    assert!(
        !CompiledExpr::compile(" ${{ inputs.n > 30 }} ")
            .unwrap()
            .evaluate_bool(&c)
            .unwrap()
    );
    assert_eq!(
        CompiledExpr::compile("${{ steps.b.output.items }}")
            .unwrap()
            .evaluate_list(&c)
            .unwrap(),
        vec![json!("x"), json!("y")]
    );
    let not_bool = CompiledExpr::compile("inputs.n")
        .unwrap()
        .evaluate_bool(&c)
        .unwrap_err();
    assert!(
        matches!(
            not_bool,
            ExprError::WrongType {
                expected: "bool",
                ..
            }
        ),
        "{not_bool}"
    );
    let not_list = CompiledExpr::compile("inputs.name")
        .unwrap()
        .evaluate_list(&c)
        .unwrap_err();
    assert!(matches!(
        not_list,
        ExprError::WrongType {
            expected: "list",
            ..
        }
    ));
    assert!(CompiledExpr::compile("${{ 1 }} + 2").is_err());
    assert!(CompiledExpr::compile("").is_err());
    let err = CompiledExpr::compile("inputs.n +").unwrap_err();
    assert!(
        err.message.contains("syntax error in `inputs.n +` at 1:"),
        "{err}"
    );
}

#[test]
fn runtime_errors_name_the_expression() {
    let c = ctx();
    let e = CompiledExpr::compile("inputs.missing + 1")
        .unwrap()
        .evaluate(&c)
        .unwrap_err();
    assert!(matches!(e, ExprError::Evaluation { .. }));
    assert!(e.to_string().contains("inputs.missing + 1"), "{e}");
    // `item` is unbound outside a fan-out.
    assert!(CompiledExpr::compile("item").unwrap().evaluate(&c).is_err());
    // Steps not named by the expression are not visible through `steps.x`…
    // …but a dynamic lookup sees them all.
    let dynamic = CompiledExpr::compile("steps['other' + '-step'].status").unwrap();
    assert_eq!(dynamic.evaluate(&c).unwrap(), json!("SKIPPED"));
}

#[test]
fn cel_only_values_become_json() {
    let c = ctx();
    let ev = |s: &str| CompiledExpr::compile(s).unwrap().evaluate(&c).unwrap();
    assert_eq!(ev("duration('1500ms')"), json!("1.5s"));
    assert_eq!(
        ev("timestamp('2024-05-01T10:00:00Z')"),
        json!("2024-05-01T10:00:00+00:00")
    );
    assert_eq!(ev("b'hi'"), json!("aGk="));
    assert_eq!(ev("3u"), json!(3));
    assert_eq!(ev("{1: 'a'}"), json!({"1": "a"}));
    assert_eq!(ev("optional.of(4)"), json!(4));
    assert_eq!(ev("'Weft'.lowerAscii()"), json!("weft"));
    assert_eq!(ev("inputs.list.filter(x, x > 1)"), json!([2, 3]));
}

#[test]
fn item_and_index_are_bound_in_a_fan_out() {
    let mut c = ctx();
    c.item = Some(json!({"name": "a"}));
    c.index = Some(7);
    let v = CompiledValue::compile(&json!("${{ item.name + string(index) }}"), "").unwrap();
    assert_eq!(v.evaluate(&c).unwrap(), json!("a7"));
}

#[test]
fn debug_output_hides_secret_values() {
    let shown = format!("{:?}", ctx());
    assert!(
        shown.contains("token") && !shown.contains("s3cr3t"),
        "{shown}"
    );
}

#[test]
fn compiled_expressions_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<CompiledExpr>();
    check::<CompiledValue>();
    check::<ExprContext>();
}

/// Not a benchmark: a coarse guard that evaluation stays far cheaper than
/// compilation. Run with `--nocapture` to see the numbers.
#[test]
fn evaluation_is_cheap_compared_to_compilation() {
    let src = "steps.b.output.value + inputs.n * 2 > 10 && inputs.name.startsWith('w')";
    let n = 200u32;
    let start = std::time::Instant::now();
    for _ in 0..n {
        CompiledExpr::compile(src).unwrap();
    }
    let compile = start.elapsed() / n;
    let e = CompiledExpr::compile(src).unwrap();
    let c = ctx();
    let start = std::time::Instant::now();
    for _ in 0..n {
        assert!(e.evaluate_bool(&c).unwrap());
    }
    let eval = start.elapsed() / n;
    println!("compile {compile:?}/expr, evaluate {eval:?}/expr");
}
