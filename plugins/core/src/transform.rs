//! `transform`: evaluates a CEL expression over `data`.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use cel::objects::{Key, Map};
use cel::{Context, Env, Value as Cel};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use weft_plugin_sdk::prelude::*;

/// Evaluates a [CEL](https://cel.dev) expression with the variable `data`
/// bound to the input's `data`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Transform;

/// Input of `transform`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransformInput {
    /// A CEL expression, e.g. `data.items.filter(i, i.price > 10).map(i, i.name)`.
    pub expression: String,
    /// The value bound to the variable `data` (default `null`).
    #[serde(default)]
    pub data: Json,
}

/// Output of `transform`.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransformOutput {
    /// The expression's value as JSON.
    pub result: Json,
}

impl Step for Transform {
    const NAME: &'static str = "transform";
    const DESCRIPTION: &'static str = "Evaluates a CEL expression with the variable `data` bound to the input's `data`, and outputs its value as JSON.";
    type Input = TransformInput;
    type Output = TransformOutput;

    fn run(
        &self,
        _ctx: &StepContext,
        input: TransformInput,
    ) -> Result<Outcome<TransformOutput>, PluginError> {
        let result = evaluate(&input.expression, &input.data)?;
        Ok(Outcome::Done(TransformOutput { result }))
    }
}

/// Compiles and evaluates `expression` with `data` bound to the variable
/// `data`. A parse error is a `config` error; an evaluation error or a value
/// that has no JSON form is a `data` error.
pub fn evaluate(expression: &str, data: &Json) -> Result<Json, PluginError> {
    check_complexity(expression)?;
    let env = Arc::new(Env::stdlib());
    let program = env
        .compile(expression)
        .map_err(|err| PluginError::config(format!("invalid CEL expression: {err}")))?;
    let mut context = Context::with_env(env);
    context.add_variable_from_value("data", json_to_cel(data));
    let value = program
        .execute(&context)
        .map_err(|err| PluginError::data(format!("CEL evaluation failed: {err}")))?;
    cel_to_json(&value)
}

/// Deepest bracket nesting accepted in an expression.
pub const MAX_NESTING: usize = 64;
/// Most operators and member accesses accepted in an expression.
pub const MAX_OPERATORS: usize = 256;
/// Longest expression accepted, in bytes.
pub const MAX_LENGTH: usize = 16 * 1024;

/// Rejects expressions whose parse tree would be deep enough to exhaust the
/// component's stack (the CEL parser and interpreter recurse over it): a
/// `config` error instead of a crash. A lexical estimate: bracket nesting
/// and operator count outside string literals.
fn check_complexity(expression: &str) -> Result<(), PluginError> {
    let too_complex =
        |what: String| PluginError::config(format!("CEL expression is too complex: {what}"));
    if expression.len() > MAX_LENGTH {
        return Err(too_complex(format!(
            "{} bytes (at most {MAX_LENGTH})",
            expression.len()
        )));
    }
    let bytes = expression.as_bytes();
    let (mut depth, mut max_depth, mut operators) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                let raw = i > 0 && matches!(bytes[i - 1], b'r' | b'R');
                let delimiter = if bytes[i..].starts_with(&[quote; 3]) {
                    &[quote; 3][..]
                } else {
                    &[quote; 3][..1]
                };
                i += delimiter.len();
                while i < bytes.len() {
                    if bytes[i] == b'\\' && !raw {
                        i += 2;
                    } else if bytes[i..].starts_with(delimiter) {
                        i += delimiter.len();
                        break;
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                max_depth = max_depth.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'=' | b'!' | b'?' | b'&' | b'|' => {
                operators += 1;
            }
            b'.' if !(i > 0 && bytes[i - 1].is_ascii_digit()) => operators += 1,
            _ => {}
        }
        i += 1;
    }
    if max_depth > MAX_NESTING {
        return Err(too_complex(format!(
            "brackets nest {max_depth} deep (at most {MAX_NESTING})"
        )));
    }
    if operators > MAX_OPERATORS {
        return Err(too_complex(format!(
            "about {operators} operators and member accesses (at most {MAX_OPERATORS})"
        )));
    }
    Ok(())
}

/// Converts JSON to CEL: integers become `int` (or `uint` above `i64::MAX`),
/// other numbers `double`; objects become maps with string keys.
pub fn json_to_cel(value: &Json) -> Cel {
    match value {
        Json::Null => Cel::Null,
        Json::Bool(b) => Cel::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Cel::Int(i)
            } else if let Some(u) = n.as_u64() {
                Cel::UInt(u)
            } else {
                Cel::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Cel::String(Arc::new(s.clone())),
        Json::Array(items) => Cel::List(Arc::new(items.iter().map(json_to_cel).collect())),
        Json::Object(fields) => {
            let map: HashMap<Key, Cel> = fields
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), json_to_cel(v)))
                .collect();
            Cel::Map(Map { map: Arc::new(map) })
        }
    }
}

/// Converts a CEL value to JSON: `bytes` become base64 strings, timestamps
/// RFC 3339 strings, durations seconds strings like `"90s"` or `"1.5s"` (the
/// protobuf JSON form), and map keys strings. Non-finite doubles, functions
/// and other values without a JSON form are `data` errors.
pub fn cel_to_json(value: &Cel) -> Result<Json, PluginError> {
    Ok(match value {
        Cel::Null => Json::Null,
        Cel::Bool(b) => Json::Bool(*b),
        Cel::Int(i) => Json::from(*i),
        Cel::UInt(u) => Json::from(*u),
        Cel::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .ok_or_else(|| {
                PluginError::data(format!(
                    "the result contains {f}, which JSON cannot represent"
                ))
            })?,
        Cel::String(s) => Json::String(s.as_str().to_owned()),
        Cel::Bytes(bytes) => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(bytes.as_slice()))
        }
        Cel::List(items) => Json::Array(items.iter().map(cel_to_json).collect::<Result<_, _>>()?),
        Cel::Map(map) => {
            let mut object = serde_json::Map::new();
            for (key, item) in map.map.iter() {
                let key = match key {
                    Key::String(s) => s.as_str().to_owned(),
                    Key::Int(i) => i.to_string(),
                    Key::Uint(u) => u.to_string(),
                    Key::Bool(b) => b.to_string(),
                };
                object.insert(key, cel_to_json(item)?);
            }
            Json::Object(object)
        }
        Cel::Timestamp(ts) => Json::String(ts.to_rfc3339()),
        Cel::Duration(d) => Json::String(duration_string(d.num_seconds(), d.subsec_nanos())),
        Cel::Opaque(opaque) => opaque.json().ok_or_else(|| {
            PluginError::data(format!(
                "the result contains a value of type `{}`, which has no JSON form",
                opaque.runtime_type_name()
            ))
        })?,
        other => {
            return Err(PluginError::data(format!(
                "the result contains a value of type `{}`, which has no JSON form",
                other.type_of()
            )));
        }
    })
}

/// Formats a duration as protobuf JSON does: `"90s"`, `"1.5s"`, `"-0.25s"`.
fn duration_string(seconds: i64, subsec_nanos: i32) -> String {
    if subsec_nanos == 0 {
        return format!("{seconds}s");
    }
    let negative = seconds < 0 || subsec_nanos < 0;
    let nanos = subsec_nanos.unsigned_abs();
    let fraction = format!("{nanos:09}");
    let fraction = fraction.trim_end_matches('0');
    let sign = if negative { "-" } else { "" };
    format!("{sign}{}.{fraction}s", seconds.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Evaluates on a thread with a big stack: unoptimised native builds use
    /// far more stack per parser frame than the optimised component does.
    fn eval(expression: &str, data: Json) -> Result<Json, PluginError> {
        let expression = expression.to_string();
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || evaluate(&expression, &data))
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn evaluates_over_data() {
        let data = json!({
            "items": [
                {"name": "a", "price": 5},
                {"name": "b", "price": 15},
                {"name": "c", "price": 25.5}
            ],
            "user": {"first": "Ada", "last": "Lovelace"}
        });
        assert_eq!(
            eval(
                "data.items.filter(i, i.price > 10).map(i, i.name)",
                data.clone()
            ),
            Ok(json!(["b", "c"]))
        );
        assert_eq!(
            eval("data.user.first + ' ' + data.user.last", data.clone()),
            Ok(json!("Ada Lovelace"))
        );
        assert_eq!(eval("size(data.items) * 2", data.clone()), Ok(json!(6)));
        assert_eq!(
            eval(
                "{'count': size(data.items), 'ok': true, 'none': null}",
                data
            ),
            Ok(json!({"count": 3, "ok": true, "none": null}))
        );
        assert_eq!(eval("data", Json::Null), Ok(Json::Null));
        assert_eq!(eval("1 + 2", Json::Null), Ok(json!(3)));
    }

    #[test]
    fn converts_every_kind_of_value() {
        assert_eq!(eval("2u", Json::Null), Ok(json!(2)));
        assert_eq!(eval("1.5 * 2.0", Json::Null), Ok(json!(3.0)));
        assert_eq!(eval("b'hi'", Json::Null), Ok(json!("aGk=")));
        assert_eq!(
            eval("{1: 'one', true: 'yes'}", Json::Null),
            Ok(json!({"1": "one", "true": "yes"}))
        );
        assert_eq!(
            eval("timestamp('2024-01-02T03:04:05Z')", Json::Null),
            Ok(json!("2024-01-02T03:04:05+00:00"))
        );
        assert_eq!(eval("duration('90s')", Json::Null), Ok(json!("90s")));
        assert_eq!(eval("duration('1.5s')", Json::Null), Ok(json!("1.5s")));
        assert_eq!(duration_string(0, -250_000_000), "-0.25s");
        assert_eq!(duration_string(-3, -500_000_000), "-3.5s");
        // Large integers keep their precision.
        assert_eq!(eval("data", json!(u64::MAX)), Ok(json!(u64::MAX)));
        assert_eq!(eval("data + 1", json!(41)), Ok(json!(42)));
    }

    #[test]
    fn parse_errors_are_config_errors() {
        let err = eval("data.items.filter(", Json::Null).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(
            err.message.starts_with("invalid CEL expression: "),
            "{}",
            err.message
        );
        assert!(err.message.len() > "invalid CEL expression: ".len());
    }

    #[test]
    fn overly_complex_expressions_are_config_errors() {
        let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        let long_chain = vec!["1"; 1000].join(" + ");
        let members = format!("data{}", ".a".repeat(500));
        let huge = "x".repeat(MAX_LENGTH + 1);
        for expression in [&deep, &long_chain, &members, &huge] {
            let err = eval(expression, json!({})).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Config);
            assert!(err.message.contains("too complex"), "{}", err.message);
        }
        // Brackets and operators inside string literals do not count.
        let quoted = format!(
            "size('{}') + size(\"{}\")",
            "(".repeat(100),
            "+".repeat(200)
        );
        assert_eq!(eval(&quoted, Json::Null), Ok(json!(300)));
        let raw = format!("size(r'\\') + size('''{}''')", "[".repeat(100));
        assert_eq!(eval(&raw, Json::Null), Ok(json!(101)));
        let nested = format!("{}1{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert_eq!(eval(&nested, Json::Null), Ok(json!(1)));
        assert_eq!(eval("1.5 + 2.25", Json::Null), Ok(json!(3.75)));
    }

    #[test]
    fn odd_expressions_fail_cleanly() {
        let deep = format!("{}1{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        for expression in [
            "",
            "   ",
            "(",
            "'unterminated",
            "1 +* 2",
            "[1, 2][5]",
            "{'a': 1}['b']",
            "int('x')",
            "'abc'.matches('[')",
            "9223372036854775807 + 1",
            "-9223372036854775808 / -1",
            "1 % 0",
            "duration('x')",
            "timestamp('x')",
            "1 ? 2 : 3",
            "size(1)",
            "data.a.b.c",
            "\u{0}",
            "dyn(1) == 'a'",
            deep.as_str(),
        ] {
            match eval(expression, json!({"a": 1})) {
                Ok(_) => {}
                Err(err) => assert!(
                    matches!(err.kind, ErrorKind::Config | ErrorKind::Data),
                    "{expression}: {err}"
                ),
            }
        }
    }

    #[test]
    fn evaluation_errors_are_data_errors() {
        for expression in ["data.missing", "1 / 0", "'a' + 1", "no_such_variable"] {
            let err = eval(expression, json!({})).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Data, "{expression}: {}", err.message);
            assert!(
                err.message.starts_with("CEL evaluation failed: "),
                "{}",
                err.message
            );
        }
        let err = eval("1.0 / 0.0", Json::Null).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Data, "{}", err.message);
    }
}
