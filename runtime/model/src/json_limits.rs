//! Bounds on JSON that users and plugins control.
//!
//! Every JSON value that enters Weft — request bodies, run inputs, answers,
//! plugin outputs and errors, expression results — passes one check before
//! it is stored, so nothing is kept that a reader (SurrealDB, serde, a
//! client) cannot read back. The checks never recurse: a hostile value
//! cannot overflow the stack of the code that rejects it.

use serde_json::Value;

/// Deepest nesting accepted (arrays and objects); `1` is a flat array or
/// object. SurrealDB and serde both stop well above this, so anything that
/// passes can be stored and read back.
pub const MAX_JSON_DEPTH: usize = 64;

/// Limits a JSON value must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
    /// Largest compact encoding, in bytes.
    pub max_bytes: usize,
}

impl JsonLimits {
    /// `max_bytes` with the standard depth limit.
    pub const fn bytes(max_bytes: usize) -> Self {
        Self {
            max_depth: MAX_JSON_DEPTH,
            max_bytes,
        }
    }
}

/// A JSON value outside its limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonLimitError {
    /// Nested deeper than allowed.
    #[error("JSON nested deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Larger than allowed.
    #[error("JSON larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// Not JSON at all.
    #[error("invalid JSON: {0}")]
    Invalid(String),
}

impl JsonLimitError {
    /// A stable machine-readable code: `JSON_TOO_DEEP`, `JSON_TOO_LARGE`
    /// or `INVALID_JSON`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooDeep { .. } => "JSON_TOO_DEEP",
            Self::TooLarge { .. } => "JSON_TOO_LARGE",
            Self::Invalid(_) => "INVALID_JSON",
        }
    }
}

/// Checks a parsed value: its depth and (an upper bound of) its compact
/// encoded size. Iterative, linear in the value's size, stops at the first
/// limit crossed.
pub fn check_json(value: &Value, limits: JsonLimits) -> Result<(), JsonLimitError> {
    let mut bytes = 0usize;
    // (value, depth of the container holding it)
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        bytes = bytes.saturating_add(match v {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 24,
            // Quotes, escapes counted as one byte: an upper bound within 2×
            // is enough for a limit, and exact escaping would cost a pass.
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                check_depth(depth + 1, limits)?;
                stack.extend(items.iter().map(|i| (i, depth + 1)));
                2 + items.len()
            }
            Value::Object(map) => {
                check_depth(depth + 1, limits)?;
                let mut keys = 0usize;
                for (k, item) in map {
                    keys = keys.saturating_add(k.len() + 4);
                    stack.push((item, depth + 1));
                }
                2 + keys
            }
        });
        if bytes > limits.max_bytes {
            return Err(JsonLimitError::TooLarge {
                max: limits.max_bytes,
            });
        }
    }
    Ok(())
}

fn check_depth(depth: usize, limits: JsonLimits) -> Result<(), JsonLimitError> {
    if depth > limits.max_depth {
        Err(JsonLimitError::TooDeep {
            max: limits.max_depth,
        })
    } else {
        Ok(())
    }
}

/// The deepest nesting of arrays and objects in JSON text, found without
/// parsing it (strings skipped). Used before parsing, so a hostile text is
/// rejected with a clear error instead of serde's recursion limit.
pub fn text_depth(text: &str) -> usize {
    let mut depth = 0usize;
    let mut max = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses JSON text within limits: size and depth are checked on the text
/// first, so nothing over the limits is ever built.
pub fn parse_json(text: &str, limits: JsonLimits) -> Result<Value, JsonLimitError> {
    if text.len() > limits.max_bytes {
        return Err(JsonLimitError::TooLarge {
            max: limits.max_bytes,
        });
    }
    if text_depth(text) > limits.max_depth {
        return Err(JsonLimitError::TooDeep {
            max: limits.max_depth,
        });
    }
    serde_json::from_str(text).map_err(|e| JsonLimitError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn nested(depth: usize, open: &str, close: &str) -> String {
        format!("{}1{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn depth_is_bounded_in_every_shape() {
        let limits = JsonLimits::bytes(1 << 20);
        for (open, close) in [("[", "]"), ("{\"a\":", "}"), ("[{\"k\":[", "]}]")] {
            let ok = nested(64 / open.matches(['[', '{']).count(), open, close);
            assert!(parse_json(&ok, limits).is_ok(), "{ok}");
            let v: Value = serde_json::from_str(&ok).unwrap();
            assert!(check_json(&v, limits).is_ok());
            let deep = nested(65, open, close);
            assert_eq!(
                parse_json(&deep, limits).unwrap_err(),
                JsonLimitError::TooDeep { max: 64 }
            );
        }
        // A value built in memory (not parsed) deeper than serde would parse.
        let mut v = json!(1);
        for _ in 0..100 {
            v = json!([v]);
        }
        assert_eq!(
            check_json(&v, limits).unwrap_err(),
            JsonLimitError::TooDeep { max: 64 }
        );
        // Drop a deep value iteratively-enough for the test thread.
        drop(v);
    }

    #[test]
    fn brackets_in_strings_do_not_count() {
        assert_eq!(text_depth(r#"["[[[[", "\"[[[", {"]]]]": "{"}]"#), 2);
    }

    #[test]
    fn size_is_bounded() {
        let limits = JsonLimits::bytes(100);
        assert!(check_json(&json!({"a": "x".repeat(50)}), limits).is_ok());
        assert_eq!(
            check_json(&json!({"a": "x".repeat(200)}), limits).unwrap_err(),
            JsonLimitError::TooLarge { max: 100 }
        );
        assert_eq!(
            check_json(&json!(vec![0; 50]), limits).unwrap_err(),
            JsonLimitError::TooLarge { max: 100 }
        );
        assert!(matches!(
            parse_json(&"1".repeat(200), limits),
            Err(JsonLimitError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_json("{", JsonLimits::bytes(100)),
            Err(JsonLimitError::Invalid(_))
        ));
    }
}
