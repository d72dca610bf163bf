//! NDJSON batches straight to COPY text. Each line is read once into
//! borrowed slices of its own bytes (`RawValue`s for the target's columns,
//! other keys skipped), so no JSON tree is built for a row: numbers and
//! booleans are copied as they are, strings unescaped only when they hold
//! an escape. This is the destination's hot loop for a file → PostgreSQL
//! sync.

use crate::copy_text::{self, Kind};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use weft_plugin_sdk::PluginError;

/// Appends the rows of NDJSON `data` to `out` as COPY text with `columns`
/// in order, each written as its `kinds` entry says; a missing key is NULL.
pub fn encode_lines(
    data: &[u8],
    columns: &[String],
    kinds: &[Kind],
    stream: &str,
    out: &mut Vec<u8>,
) -> Result<(), PluginError> {
    let index: HashMap<&str, usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut slots: Vec<Option<&RawValue>> = vec![None; columns.len()];
    for (n, line) in data.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        slots.iter_mut().for_each(|s| *s = None);
        let mut de = serde_json::Deserializer::from_slice(line);
        let read = RowSeed {
            index: &index,
            slots: &mut slots,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        if let Err(e) = read {
            return Err(PluginError::data(format!(
                "line {} of a batch of {stream:?} is not a JSON object: {e}",
                n + 1
            )));
        }
        for (i, (slot, kind)) in slots.iter().zip(kinds).enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            encode_raw(*slot, kind, out);
        }
        out.push(b'\n');
    }
    Ok(())
}

/// One value as a COPY text field, from its JSON text.
fn encode_raw(raw: Option<&RawValue>, kind: &Kind, out: &mut Vec<u8>) {
    let Some(raw) = raw else {
        out.extend_from_slice(b"\\N");
        return;
    };
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'n') => out.extend_from_slice(b"\\N"),
        Some(b't') => out.push(b't'),
        Some(b'f') => out.push(b'f'),
        // A JSON number is a PostgreSQL numeric literal as it stands.
        Some(b'-' | b'0'..=b'9') => out.extend_from_slice(text.as_bytes()),
        Some(b'"') => match serde_json::from_str::<&str>(text) {
            Ok(s) => copy_text::encode_str_into(s, kind, out),
            // It holds escapes, so it cannot be borrowed.
            Err(_) => match serde_json::from_str::<String>(text) {
                Ok(s) => copy_text::encode_str_into(&s, kind, out),
                Err(_) => out.extend_from_slice(b"\\N"),
            },
        },
        // A json column takes the text as it came.
        _ if *kind == Kind::Json => copy_text::escape_into(text, out),
        _ => match serde_json::from_str(text) {
            Ok(value) => copy_text::encode_into(&value, kind, out),
            Err(_) => out.extend_from_slice(b"\\N"),
        },
    }
}

/// Fills `slots` from one JSON object; the last of repeated keys wins.
struct RowSeed<'a, 'de> {
    index: &'a HashMap<&'a str, usize>,
    slots: &'a mut [Option<&'de RawValue>],
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key()? {
            match self.index.get(key.as_ref()) {
                Some(&i) => self.slots[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// An object key, borrowed from the line unless it holds an escape.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn encoded(data: &str, columns: &[&str], kinds: Vec<Kind>) -> Result<String, PluginError> {
        let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
        let mut out = Vec::new();
        encode_lines(data.as_bytes(), &columns, &kinds, "s", &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn lines_become_copy_rows_in_column_order() {
        let data =
            "{\"b\":\"x\\ty\",\"a\":1,\"skip\":{\"deep\":[1]}}\n\n{\"a\":-2.5e3,\"c\":true}\n";
        let got = encoded(
            data,
            &["a", "b", "c"],
            vec![Kind::Float, Kind::Text, Kind::Boolean],
        );
        assert_eq!(got.unwrap(), "1\tx\\ty\t\\N\n-2.5e3\t\\N\tt\n");
    }

    #[test]
    fn escaped_keys_nested_json_and_arrays_are_encoded() {
        let data = r#"{"k\u0065y":"v","j":{"a":[1,"\n"]},"arr":[1,null,"q\""],"n":null}"#;
        let got = encoded(
            data,
            &["key", "j", "arr", "n"],
            vec![
                Kind::Text,
                Kind::Json,
                Kind::Array(Box::new(Kind::Text)),
                Kind::Integer,
            ],
        );
        assert_eq!(
            got.unwrap(),
            "v\t{\"a\":[1,\"\\\\n\"]}\t{\"1\",NULL,\"q\\\\\"\"}\t\\N\n"
        );
    }

    #[test]
    fn the_same_rows_encode_as_through_a_json_tree() {
        let rows = [
            json!({"a": 1, "b": "é\\", "c": {"x": 1}, "d": "deadbeef"}),
            json!({"a": null, "b": "", "c": "[1]", "d": "\\x00"}),
        ];
        let kinds = vec![Kind::Integer, Kind::Text, Kind::Json, Kind::Bytea];
        let data: String = rows.iter().map(|r| format!("{r}\n")).collect();
        let mut through_tree = Vec::new();
        for row in &rows {
            for (i, (c, k)) in ["a", "b", "c", "d"].iter().zip(&kinds).enumerate() {
                if i > 0 {
                    through_tree.push(b'\t');
                }
                copy_text::encode_into(row.get(*c).unwrap_or(&Value::Null), k, &mut through_tree);
            }
            through_tree.push(b'\n');
        }
        let got = encoded(&data, &["a", "b", "c", "d"], kinds).unwrap();
        assert_eq!(got, String::from_utf8(through_tree).unwrap());
    }

    #[test]
    fn a_line_that_is_not_an_object_names_its_line() {
        for bad in [
            "{\"a\":1}\n[1,2]\n",
            "{\"a\":1}\n{\"a\":\n",
            "{\"a\":1}\n{\"a\":1} x\n",
        ] {
            let e = encoded(bad, &["a"], vec![Kind::Integer]).unwrap_err();
            assert!(e.message.contains("line 2"), "{bad:?}: {}", e.message);
        }
    }
}
