//! PostgreSQL's COPY text format: rows are lines, fields are separated by
//! tabs, `\N` is NULL, and backslash escapes the rest. Decoding turns a
//! field into a JSON value by its column's [`Kind`]; encoding turns a JSON
//! value into a field for a column of a given kind.

use serde_json::{Number, Value};
use std::borrow::Cow;

/// How a column's text is read and written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// int2, int4, int8, oid.
    Integer,
    /// float4, float8.
    Float,
    /// numeric, as a JSON string (exact) or number.
    Numeric {
        /// As a JSON number.
        as_number: bool,
    },
    /// bool.
    Boolean,
    /// json, jsonb.
    Json,
    /// timestamptz, shown as RFC 3339 in UTC.
    TimestampTz,
    /// timestamp without zone, shown as `YYYY-MM-DDTHH:MM:SS[.f]`.
    Timestamp,
    /// bytea, shown as lowercase hex without the `\x`.
    Bytea,
    /// A one-dimensional array of the element kind.
    Array(Box<Kind>),
    /// Everything else with a text form: text, varchar, uuid, date, time…
    Text,
}

/// The fields of one COPY text line (without its newline), still escaped.
pub fn split_fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.split(|b| *b == b'\t')
}

/// A field's text, or `None` for NULL.
pub fn unescape(field: &[u8]) -> Option<Cow<'_, str>> {
    if field == b"\\N" {
        return None;
    }
    if !field.contains(&b'\\') {
        return Some(String::from_utf8_lossy(field));
    }
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let next = field[i + 1];
        i += 2;
        match next {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(next - b'0');
                let mut n = 1;
                while n < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    v = v * 8 + u32::from(field[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push((v & 0xff) as u8);
            }
            b'x' if i < field.len() && field[i].is_ascii_hexdigit() => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                    v = v * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    Some(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

/// Appends `text` escaped as a COPY text field.
pub fn escape_into(text: &str, out: &mut Vec<u8>) {
    for b in text.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(b),
        }
    }
}

/// A field's JSON value for a column of `kind`.
pub fn decode(text: &str, kind: &Kind) -> Value {
    match kind {
        Kind::Integer => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.into())),
        Kind::Float | Kind::Numeric { as_number: true } => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            // NaN and ±Infinity have no JSON number.
            .unwrap_or_else(|| Value::String(text.into())),
        Kind::Numeric { as_number: false } | Kind::Text => Value::String(text.into()),
        Kind::Boolean => Value::Bool(text == "t"),
        Kind::Json => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())),
        Kind::TimestampTz => Value::String(rfc3339(text, true)),
        Kind::Timestamp => Value::String(rfc3339(text, false)),
        Kind::Bytea => Value::String(text.strip_prefix("\\x").unwrap_or(text).into()),
        Kind::Array(elem) => match parse_array(text) {
            Some(items) => Value::Array(
                items
                    .into_iter()
                    .map(|i| i.map_or(Value::Null, |t| decode(&t, elem)))
                    .collect(),
            ),
            None => Value::String(text.into()),
        },
    }
}

/// `2024-01-02 03:04:05.6+00` → `2024-01-02T03:04:05.6Z` (the session is
/// in UTC); `infinity` and other specials stay as they are.
fn rfc3339(text: &str, zoned: bool) -> String {
    if !text.as_bytes().first().is_some_and(u8::is_ascii_digit) || text.ends_with(" BC") {
        return text.into();
    }
    let mut s = text.replacen(' ', "T", 1);
    if zoned {
        if let Some(base) = s.strip_suffix("+00") {
            s = format!("{base}Z");
        } else if s.len() > 3 && !s.ends_with('Z') {
            // `+05:30`-style offsets are already RFC 3339; `+05` is not.
            let tail = &s[s.len() - 3..];
            if (tail.starts_with('+') || tail.starts_with('-'))
                && tail[1..].bytes().all(|b| b.is_ascii_digit())
            {
                s.push_str(":00");
            }
        }
    }
    s
}

/// The elements of a one-dimensional array literal (`{1,2,"a b",NULL}`),
/// or `None` for anything else (nested arrays, explicit bounds).
pub fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        if chars.peek() == Some(&'{') {
            return None;
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut item = String::new();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            out.push(Some(item));
        } else {
            let mut item = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
            let item = item.trim().to_owned();
            out.push((!item.eq_ignore_ascii_case("NULL")).then_some(item));
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// Appends `value` as a COPY text field for a column of `kind` (already
/// escaped); JSON null is `\N`.
pub fn encode_into(value: &Value, kind: &Kind, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"\\N"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"t" } else { b"f" }),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => encode_str_into(s, kind, out),
        Value::Array(items) if matches!(kind, Kind::Array(_)) => {
            let mut literal = String::from("{");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    literal.push(',');
                }
                array_element(item, &mut literal);
            }
            literal.push('}');
            escape_into(&literal, out);
        }
        Value::Array(_) | Value::Object(_) => escape_into(&value.to_string(), out),
    }
}

/// Appends a JSON string's text as a COPY text field for a column of
/// `kind` (already escaped).
pub fn encode_str_into(s: &str, kind: &Kind, out: &mut Vec<u8>) {
    match kind {
        // A string for a json column is JSON text when it parses as an
        // object or array (it crossed Arrow as text), else a JSON string.
        Kind::Json if !looks_like_json_container(s) => {
            escape_into(&Value::String(s.to_owned()).to_string(), out)
        }
        Kind::Bytea if !s.starts_with("\\x") => {
            out.extend_from_slice(b"\\\\x");
            escape_into(s, out);
        }
        _ => escape_into(s, out),
    }
}

fn looks_like_json_container(s: &str) -> bool {
    let t = s.trim_start();
    (t.starts_with('{') || t.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
}

fn array_element(item: &Value, literal: &mut String) {
    match item {
        Value::Null => literal.push_str("NULL"),
        Value::Array(inner) => {
            literal.push('{');
            for (i, x) in inner.iter().enumerate() {
                if i > 0 {
                    literal.push(',');
                }
                array_element(x, literal);
            }
            literal.push('}');
        }
        other => {
            let text = match other {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            literal.push('"');
            for c in text.chars() {
                if c == '"' || c == '\\' {
                    literal.push('\\');
                }
                literal.push(c);
            }
            literal.push('"');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_split_and_unescape() {
        let line = b"1\ta\\tb\\\\c\t\\N\tline\\nbreak\n";
        let fields: Vec<_> = split_fields(line).map(unescape).collect();
        assert_eq!(fields[0].as_deref(), Some("1"));
        assert_eq!(fields[1].as_deref(), Some("a\tb\\c"));
        assert_eq!(fields[2], None);
        assert_eq!(fields[3].as_deref(), Some("line\nbreak"));
        assert_eq!(unescape(b"\\101\\x42").as_deref(), Some("AB"));
    }

    #[test]
    fn escaping_round_trips() {
        let text = "tab\there\nnew \\ slash\rcr";
        let mut out = Vec::new();
        escape_into(text, &mut out);
        assert!(!out.contains(&b'\t') && !out.contains(&b'\n'));
        assert_eq!(unescape(&out).as_deref(), Some(text));
    }

    #[test]
    fn values_decode_by_kind() {
        assert_eq!(decode("42", &Kind::Integer), json!(42));
        assert_eq!(decode("1.5", &Kind::Float), json!(1.5));
        assert_eq!(decode("NaN", &Kind::Float), json!("NaN"));
        assert_eq!(
            decode(
                "12345678901234567890.12",
                &Kind::Numeric { as_number: false }
            ),
            json!("12345678901234567890.12")
        );
        assert_eq!(decode("t", &Kind::Boolean), json!(true));
        assert_eq!(decode("{\"a\": 1}", &Kind::Json), json!({"a": 1}));
        assert_eq!(
            decode("2024-01-02 03:04:05.25+00", &Kind::TimestampTz),
            json!("2024-01-02T03:04:05.25Z")
        );
        assert_eq!(decode("infinity", &Kind::TimestampTz), json!("infinity"));
        assert_eq!(
            decode("2024-01-02 03:04:05", &Kind::Timestamp),
            json!("2024-01-02T03:04:05")
        );
        assert_eq!(decode("\\x0aff", &Kind::Bytea), json!("0aff"));
        assert_eq!(
            decode("{1,NULL,3}", &Kind::Array(Box::new(Kind::Integer))),
            json!([1, null, 3])
        );
        assert_eq!(
            decode(r#"{"a b","c\"d",e}"#, &Kind::Array(Box::new(Kind::Text))),
            json!(["a b", "c\"d", "e"])
        );
        assert_eq!(
            decode("{{1,2},{3,4}}", &Kind::Array(Box::new(Kind::Integer))),
            json!("{{1,2},{3,4}}")
        );
    }

    fn encoded(v: Value, kind: Kind) -> String {
        let mut out = Vec::new();
        encode_into(&v, &kind, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_encode_by_kind() {
        assert_eq!(encoded(json!(null), Kind::Text), "\\N");
        assert_eq!(encoded(json!("a\tb"), Kind::Text), "a\\tb");
        assert_eq!(encoded(json!(true), Kind::Boolean), "t");
        assert_eq!(encoded(json!({"k": [1]}), Kind::Json), r#"{"k":[1]}"#);
        assert_eq!(encoded(json!(r#"{"k":1}"#), Kind::Json), r#"{"k":1}"#);
        assert_eq!(encoded(json!("plain"), Kind::Json), r#""plain""#);
        assert_eq!(encoded(json!("0aff"), Kind::Bytea), "\\\\x0aff");
        assert_eq!(
            encoded(json!(["a\"b", null, 3]), Kind::Array(Box::new(Kind::Text))),
            r#"{"a\\"b",NULL,"3"}"#
        );
    }
}
