#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::ids::PluginDigest;
use crate::template::spec::TemplateParseError;
use TemplateProblemCode as C;
use serde_json::json;

/// One installed plugin: (name, version, enabled, step types with input schemas).
type FakePlugin = (&'static str, &'static str, bool, Vec<(&'static str, Value)>);

struct FakeCatalog(Vec<FakePlugin>);

impl StepTypeCatalog for FakeCatalog {
    fn resolve(&self, r: &StepTypeRef) -> Result<ResolvedStepType, CatalogMiss> {
        let versions: Vec<_> = self.0.iter().filter(|p| p.0 == r.plugin).collect();
        if versions.is_empty() {
            return Err(CatalogMiss::UnknownPlugin);
        }
        let parsed = |v: &str| semver::Version::parse(v).unwrap();
        let matching: Vec<_> = versions
            .iter()
            .filter(|p| {
                r.version
                    .as_ref()
                    .is_none_or(|req| req.matches(&parsed(p.1)))
            })
            .collect();
        if matching.is_empty() {
            return Err(CatalogMiss::NoMatchingVersion {
                available: versions.iter().map(|p| parsed(p.1)).collect(),
            });
        }
        let best = matching
            .iter()
            .filter(|p| p.2)
            .max_by_key(|p| parsed(p.1))
            .ok_or(CatalogMiss::Disabled)?;
        let (_, schema) = best
            .3
            .iter()
            .find(|(n, _)| *n == r.step_type)
            .ok_or_else(|| CatalogMiss::UnknownStepType {
                available: best.3.iter().map(|(n, _)| (*n).to_owned()).collect(),
            })?;
        Ok(ResolvedStepType {
            plugin: best.0.to_owned(),
            version: parsed(best.1),
            digest: PluginDigest::from_sha256([best.1.len() as u8; 32]),
            step_type: r.step_type.clone(),
            input_schema: schema.clone(),
            output_schema: json!(true),
        })
    }
}

fn catalog() -> FakeCatalog {
    let fibo = json!({
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 0}},
        "required": ["n"],
        "additionalProperties": false
    });
    let echo = json!({
        "type": "object",
        "properties": {
            "message": {"type": "string", "pattern": "^[a-z =0-9]*$"},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
            "mode": {"enum": ["a", "b"]}
        }
    });
    FakeCatalog(vec![
        (
            "core",
            "0.1.0",
            true,
            vec![("fibo", fibo.clone()), ("echo", echo.clone())],
        ),
        ("core", "0.2.0", true, vec![("fibo", fibo), ("echo", echo)]),
        ("old", "1.0.0", false, vec![("noop", json!({}))]),
    ])
}

fn template(v: Value) -> WorkflowTemplate {
    WorkflowTemplate::from_value(&v).unwrap_or_else(|e| panic!("{e}"))
}

fn problems(v: Value) -> Vec<TemplateProblem> {
    match validate_template(&template(v), &catalog()) {
        Ok(_) => panic!("expected problems"),
        Err(p) => p,
    }
}

fn has(problems: &[TemplateProblem], pointer: &str, code: TemplateProblemCode) -> bool {
    problems
        .iter()
        .any(|p| p.pointer == pointer && p.code == code)
}

fn good() -> Value {
    json!({
        "name": "fib-then-echo",
        "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        "schedule": {"cron": "*/5 * * * *", "timezone": "America/New_York"},
        "steps": [
            {"id": "echo", "uses": "core/echo", "needs": ["fib"],
             "with": {"message": "fib=${{ steps.fib.output.value }}", "tags": ["${{ item }}", "x"]},
             "forEach": "${{ ['a', 'b'] }}",
             "if": "steps.fib.status == 'SUCCESS'",
             "onFailure": {"uses": "core/echo", "with": {"message": "${{ steps.echo.status }}"}}},
            {"id": "fib", "uses": "core/fibo@^0.1", "with": {"n": "${{ inputs.n }}"},
             "retry": {"maxAttempts": 3}}
        ]
    })
}

#[test]
fn a_good_template_validates() {
    let v = validate_template(&template(good()), &catalog()).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(v.order(), ["fib", "echo"]);
    let fib = v.step("fib").unwrap();
    assert_eq!(
        fib.resolved.version,
        semver::Version::new(0, 1, 0),
        "^0.1 pins 0.1.x"
    );
    assert_eq!(fib.index, 1);
    assert!(v.dag().upstream_of("fib").is_empty());
    let echo = v.step("echo").unwrap();
    assert_eq!(
        echo.resolved.version,
        semver::Version::new(0, 2, 0),
        "highest version"
    );
    assert_eq!(
        v.dag().upstream_of("echo"),
        BTreeSet::from(["fib".to_owned()])
    );
    assert!(v.dag().is_upstream("fib", "echo") && !v.dag().is_upstream("echo", "fib"));
    assert!(echo.condition.is_some() && echo.for_each.is_some() && echo.compensation.is_some());
    assert_eq!(
        v.steps().map(|s| s.spec.id.as_str()).collect::<Vec<_>>(),
        ["fib", "echo"]
    );

    assert!(v.validate_input("fib", &json!({"n": 4})).is_ok());
    let errs = v
        .validate_input("fib", &json!({"n": -1, "x": 1}))
        .unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("/n: ")), "{errs:?}");
    assert!(v.validate_input("ghost", &json!({})).is_err());
    assert!(
        v.validate_compensation_input("echo", &json!({"message": "ok"}))
            .is_ok()
    );
    assert!(v.validate_compensation_input("fib", &json!({})).is_err());

    assert!(v.validate_run_inputs(&json!({"n": 5})).is_ok());
    let bad = v.validate_run_inputs(&json!({"n": "five"})).unwrap_err();
    assert_eq!(bad[0].pointer, "/inputs/n");
    assert_eq!(bad[0].code, C::InputSchemaMismatch);
    let missing = v.validate_run_inputs(&json!({})).unwrap_err();
    assert_eq!(missing[0].pointer, "/inputs");

    fn shared<T: Send + Sync + 'static>(_: &T) {}
    shared(&v);
    let shared_v = std::sync::Arc::new(v);
    let t = std::thread::spawn({
        let v = shared_v.clone();
        move || {
            v.step("fib").map(|s| {
                s.with.evaluate(&crate::template::ExprContext {
                    inputs: json!({"n": 7}),
                    ..Default::default()
                })
            })
        }
    });
    assert_eq!(t.join().unwrap().unwrap().unwrap(), json!({"n": 7}));
}

#[test]
fn template_level_problems() {
    let p = problems(json!({
        "name": "bad name!",
        "inputs": {"type": 12},
        "schedule": {"cron": "61 * * * *", "timezone": "Mars/Olympus"},
        "steps": []
    }));
    assert!(has(&p, "/name", C::InvalidName), "{p:#?}");
    assert!(has(&p, "/steps", C::NoSteps), "{p:#?}");
    assert!(has(&p, "/inputs", C::InvalidInputsSchema), "{p:#?}");
    assert!(has(&p, "/schedule/cron", C::InvalidCron), "{p:#?}");
    assert!(has(&p, "/schedule/timezone", C::InvalidTimezone), "{p:#?}");
    assert_eq!(p.len(), 5, "{p:#?}");
}

#[test]
fn step_identity_and_uses_problems() {
    let p = problems(json!({
        "name": "t",
        "steps": [
            {"id": "bad id", "uses": "core/fibo", "with": {"n": 1}},
            {"id": "a", "uses": "core", "with": {}},
            {"id": "a", "uses": "nope/x"},
            {"id": "c", "uses": "core/missing"},
            {"id": "d", "uses": "old/noop"},
            {"id": "e", "uses": "core/fibo@^9", "with": {"n": 1}},
            {"id": "f", "uses": "core/fibo", "with": {"n": 1}, "needs": ["ghost"],
             "onFailure": {"uses": "core/fibo@banana"}}
        ]
    }));
    assert!(has(&p, "/steps/0/id", C::InvalidStepId), "{p:#?}");
    assert!(has(&p, "/steps/1/uses", C::InvalidUses), "{p:#?}");
    assert!(has(&p, "/steps/2/id", C::DuplicateStepId), "{p:#?}");
    assert!(has(&p, "/steps/2/uses", C::UnknownStepType), "{p:#?}");
    assert!(has(&p, "/steps/3/uses", C::UnknownStepType), "{p:#?}");
    assert!(
        p.iter().any(|x| x.message.contains("it has: fibo, echo")),
        "{p:#?}"
    );
    assert!(has(&p, "/steps/4/uses", C::StepTypeDisabled), "{p:#?}");
    assert!(has(&p, "/steps/5/uses", C::UnsatisfiableVersion), "{p:#?}");
    assert!(
        p.iter()
            .any(|x| x.message.contains("installed: 0.1.0, 0.2.0")),
        "{p:#?}"
    );
    assert!(has(&p, "/steps/6/needs/0", C::UnknownNeeds), "{p:#?}");
    assert!(has(&p, "/steps/6/onFailure/uses", C::InvalidUses), "{p:#?}");
    assert_eq!(p.len(), 9, "{p:#?}");
}

#[test]
fn cycles_are_named() {
    let p = problems(json!({
        "name": "t",
        "steps": [
            {"id": "a", "uses": "core/fibo", "with": {"n": 1}, "needs": ["c"]},
            {"id": "b", "uses": "core/fibo", "with": {"n": 1}, "needs": ["a"]},
            {"id": "c", "uses": "core/fibo", "with": {"n": 1}, "needs": ["b"]}
        ]
    }));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].pointer, "/steps/0/needs");
    assert_eq!(p[0].code, C::Cycle);
    assert!(
        p[0].message.contains("a -> c -> b -> a"),
        "{}",
        p[0].message
    );
}

#[test]
fn expressions_may_only_read_upstream_steps() {
    let p = problems(json!({
        "name": "t",
        "steps": [
            {"id": "a", "uses": "core/fibo", "with": {"n": 1}},
            {"id": "b", "uses": "core/fibo", "with": {"n": "${{ steps.a.output.value + steps.c.output.value }}"}, "needs": ["a"]},
            {"id": "c", "uses": "core/fibo", "with": {"n": "${{ steps.c.output.value }}"},
             "if": "steps.ghost.status == 'SUCCESS'", "forEach": "steps[inputs.which].output"}
        ]
    }));
    assert!(has(&p, "/steps/1/with/n", C::NotUpstream), "{p:#?}");
    assert!(
        p.iter()
            .any(|x| x.message.contains("\"c\" is not upstream of \"b\"")),
        "{p:#?}"
    );
    assert!(
        has(&p, "/steps/2/with/n", C::NotUpstream),
        "self reference: {p:#?}"
    );
    assert!(
        has(&p, "/steps/2/if", C::NotUpstream),
        "unknown step: {p:#?}"
    );
    assert!(
        has(&p, "/steps/2/forEach", C::NotUpstream),
        "dynamic: {p:#?}"
    );
    assert_eq!(p.len(), 4, "{p:#?}");
}

#[test]
fn expression_syntax_problems() {
    let p = problems(json!({
        "name": "t",
        "steps": [
            {"id": "a", "uses": "core/fibo", "with": {"n": "${{ 1 + }}"}, "if": "inputs.n >",
             "forEach": "${{ [1] "},
            {"id": "b", "uses": "core/fibo", "with": {"n": "${{ input.n }}"}},
            {"id": "c", "uses": "core/fibo", "with": {"n": "${{ index }}"}, "if": "item > 1"}
        ]
    }));
    assert!(has(&p, "/steps/0/with/n", C::ExpressionSyntax), "{p:#?}");
    assert!(has(&p, "/steps/0/if", C::ExpressionSyntax), "{p:#?}");
    assert!(has(&p, "/steps/0/forEach", C::ExpressionSyntax), "{p:#?}");
    assert!(has(&p, "/steps/1/with/n", C::ExpressionSyntax), "{p:#?}");
    assert!(
        p.iter()
            .any(|x| x.message.contains("unknown variable `input`")),
        "{p:#?}"
    );
    assert!(
        has(&p, "/steps/2/with/n", C::ExpressionSyntax),
        "index without forEach: {p:#?}"
    );
    assert!(
        has(&p, "/steps/2/if", C::ExpressionSyntax),
        "item in if: {p:#?}"
    );
    assert_eq!(p.len(), 6, "{p:#?}");
}

#[test]
fn literal_inputs_must_match_the_schema_but_expressions_are_deferred() {
    let p = problems(json!({
        "name": "t",
        "steps": [
            {"id": "a", "uses": "core/fibo", "with": {"n": "five", "extra": true}},
            {"id": "b", "uses": "core/fibo", "with": {}},
            {"id": "c", "uses": "core/echo", "with": {"message": 5, "tags": [1]}},
            // Deferred: whole expressions, interpolated strings (except their
            // type), and value-dependent keywords on their parents.
            {"id": "d", "uses": "core/fibo", "with": {"n": "${{ inputs.n }}"}},
            {"id": "e", "uses": "core/echo", "with": {
                "message": "UPPER ${{ inputs.n }}",
                "tags": ["${{ inputs.t }}", "${{ inputs.t }}"],
                "mode": "${{ inputs.m }}"}},
            {"id": "f", "uses": "core/echo", "with": "${{ inputs.all }}"},
            {"id": "g", "uses": "core/fibo", "with": {"n": "n=${{ inputs.n }}"}}
        ]
    }));
    assert!(has(&p, "/steps/0/with/n", C::InputSchemaMismatch), "{p:#?}");
    assert!(
        has(&p, "/steps/0/with", C::InputSchemaMismatch),
        "additionalProperties: {p:#?}"
    );
    assert!(
        has(&p, "/steps/1/with", C::InputSchemaMismatch),
        "required: {p:#?}"
    );
    assert!(
        has(&p, "/steps/2/with/message", C::InputSchemaMismatch),
        "{p:#?}"
    );
    assert!(
        has(&p, "/steps/2/with/tags/0", C::InputSchemaMismatch),
        "{p:#?}"
    );
    assert!(
        has(&p, "/steps/6/with/n", C::InputSchemaMismatch),
        "an interpolation is a string: {p:#?}"
    );
    assert_eq!(p.len(), 6, "{p:#?}");
}

#[test]
fn retry_problems_point_into_the_policy() {
    let p = problems(json!({
        "name": "t",
        "steps": [
            {"id": "a", "uses": "core/fibo", "with": {"n": 1},
             "retry": {"maxAttempts": 0, "backoff": {"jitter": 2, "initial": "2m", "max": "1m"}}}
        ]
    }));
    assert!(
        has(&p, "/steps/0/retry/maxAttempts", C::InvalidRetry),
        "{p:#?}"
    );
    assert!(
        has(&p, "/steps/0/retry/backoff/jitter", C::InvalidRetry),
        "{p:#?}"
    );
    assert!(
        has(&p, "/steps/0/retry/backoff/initial", C::InvalidRetry),
        "{p:#?}"
    );
    assert_eq!(p.len(), 3, "{p:#?}");
}

#[test]
fn parse_errors_become_problems_and_codes_serialize() {
    let e: TemplateParseError = WorkflowTemplate::from_json("{").unwrap_err();
    let p = TemplateProblem::from(e);
    assert_eq!(p.code, C::InvalidTemplate);
    assert_eq!(
        serde_json::to_value(C::NotUpstream).unwrap(),
        json!("NOT_UPSTREAM")
    );
    assert_eq!(
        serde_json::to_value(C::InvalidInputsSchema).unwrap(),
        json!("INVALID_INPUTS_SCHEMA")
    );
    let problem = TemplateProblem {
        pointer: "/steps/0/id".into(),
        code: C::InvalidStepId,
        message: "m".into(),
    };
    assert_eq!(
        serde_json::to_value(&problem).unwrap(),
        json!({"pointer": "/steps/0/id", "code": "INVALID_STEP_ID", "message": "m"})
    );
    assert_eq!(problem.to_string(), "/steps/0/id: m");
}

#[test]
fn names_and_ids() {
    assert!(is_valid_template_name("Nightly.report_v2-x"));
    assert!(
        !is_valid_template_name("-x")
            && !is_valid_template_name("")
            && !is_valid_template_name("a b")
    );
    assert!(is_valid_step_id("Step_1-a") && is_valid_step_id(&"x".repeat(64)));
    assert!(
        !is_valid_step_id(&"x".repeat(65)) && !is_valid_step_id("a.b") && !is_valid_step_id("")
    );
}

/// A small deterministic fuzzer: random templates (as JSON text, with
/// random expressions built from CEL fragments — long chains, deep
/// brackets, nested comprehensions, string growth, junk) go through
/// parsing, validation and evaluation under a small budget. Nothing may
/// panic, abort or run long. `WEFT_FUZZ_ITERS` sets the number of cases
/// (default 300; the README has a longer run), `WEFT_FUZZ_SEED` the seed.
#[test]
fn fuzz_parse_validate_evaluate() {
    use crate::template::budget::ExprBudget;
    use crate::template::expr::ExprContext;
    use std::time::{Duration, Instant};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.below(xs.len())]
        }
    }

    const ATOMS: &[&str] = &[
        "1",
        "-2",
        "3.5",
        "'s'",
        "\"q\"",
        "true",
        "null",
        "[]",
        "{}",
        "b'x'",
        "inputs",
        "inputs.n",
        "inputs.list",
        "inputs.name",
        "steps.fib.output",
        "run.id",
        "item",
        "index",
        "x",
        "lists.range(100)",
        "lists.range(1000000)",
        "duration('1s')",
        "timestamp('2020-01-01T00:00:00Z')",
    ];
    const BINARY: &[&str] = &[
        " + ", " - ", " * ", " / ", " % ", " == ", " != ", " < ", " >= ", " && ", " || ", " in ",
    ];
    const WRAP: &[&str] = &[
        "({})",
        "[{}]",
        "{{'k': {}}}",
        "size({})",
        "!{}",
        "-{}",
        "string({})",
        "{}.map(x, {})",
        "{}.filter(x, x == x)",
        "{}.all(x, {})",
        "{}.exists(x, true)",
        "{}[0]",
        "{}.a",
        "{} ? {} : {}",
        "[{}, {}].join('-')",
        "{}.replace('', {})",
        "{}.distinct()",
        "{}.split('')",
        "has({}.a)",
        "math.greatest([{}])",
        "{}.sortBy(x, x)",
        "dyn({})",
        "type({})",
        "{}.?a",
    ];
    const JUNK: &[&str] = &[
        "(", ")", "[", "]", "{", "}", "'", "\"", "${{", "}}", ".", ",", "?", "\\",
    ];

    fn expr(r: &mut Rng, depth: usize) -> String {
        if depth == 0 || r.below(4) == 0 {
            return r.pick(ATOMS).to_owned();
        }
        match r.below(10) {
            0..=3 => {
                let w = r.pick(WRAP);
                let mut out = String::new();
                for (i, part) in w.split("{}").enumerate() {
                    if i > 0 {
                        out.push_str(&expr(r, depth - 1));
                    }
                    out.push_str(&part.replace("{{", "{").replace("}}", "}"));
                }
                out
            }
            4..=6 => format!(
                "{}{}{}",
                expr(r, depth - 1),
                r.pick(BINARY),
                expr(r, depth - 1)
            ),
            7 => {
                // A long chain, sometimes past the limits.
                let n = [10, 60, 200, 5_000][r.below(4)];
                let op = r.pick(&[" + 1", ".a", "[0]", " && true"]);
                format!("{}{}", expr(r, 0), op.repeat(n))
            }
            8 => {
                let n = [5, 40, 2_000][r.below(3)];
                let open = r.pick(&["(", "[", "size("]);
                let close = match open {
                    "[" => "]",
                    _ => ")",
                };
                format!(
                    "{}{}{}",
                    open.repeat(n),
                    expr(r, depth - 1),
                    close.repeat(n)
                )
            }
            _ => {
                let mut s = expr(r, depth - 1);
                let at = r.below(s.len() + 1);
                if s.is_char_boundary(at) {
                    s.insert_str(at, r.pick(JUNK));
                }
                s
            }
        }
    }

    let iters: usize = std::env::var("WEFT_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("WEFT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_CAFE);
    let mut r = Rng(seed | 1);
    let budget = ExprBudget {
        max_cost: 200_000,
        max_time: Duration::from_millis(200),
        max_result_bytes: 1 << 20,
    };
    let ctx = ExprContext {
        inputs: json!({"n": 5, "list": [1, 2, 3], "name": "weft"}),
        ..Default::default()
    };
    let mut compiled = 0usize;
    for case in 0..iters {
        let e = expr(&mut r, 6);
        let field = r.pick(&["if", "forEach", "with"]);
        let mut step = json!({"id": "fib", "uses": "core/fibo"});
        step[field] = if field == "with" {
            json!({"n": format!("${{{{ {e} }}}}")})
        } else {
            json!(e)
        };
        let text = json!({"name": "fuzz", "steps": [step]}).to_string();
        let started = Instant::now();
        let parsed = WorkflowTemplate::from_json(&text);
        if let Ok(t) = parsed {
            let _ = validate_template(&t, &catalog());
        }
        if let Ok(c) = CompiledExpr::compile(&e) {
            compiled += 1;
            let _ = c.evaluate_with(&ctx, &budget);
            let _ = c.evaluate_bool_with(&ctx, &budget);
            let _ = c.evaluate_list_with(&ctx, &budget, 1_000);
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "case {case} (seed {seed}) took {took:?}: {}",
            &e[..e.len().min(200)]
        );
    }
    // The generator must reach the evaluator, not just the parser's errors.
    assert!(
        compiled * 10 >= iters,
        "only {compiled} of {iters} compiled"
    );
}
