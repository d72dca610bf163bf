//! Conversions between JSON and CEL values.
//!
//! JSON becomes CEL values that borrow the JSON's strings, so binding a
//! variable copies no text. CEL results become JSON: ints stay ints, floats
//! stay floats, timestamps become RFC 3339 strings, durations CEL's own
//! `"1.5s"` form, bytes base64, and an optional its value (or `null`).

use base64::Engine as _;
use cel::Value as CelValue;
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::Val;
use cel::objects::{Key, OptionalValue};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// A JSON value as a CEL value borrowing the JSON's strings.
pub(crate) fn json_to_val(v: &Value) -> Box<dyn Val + '_> {
    match v {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => number_to_val(n),
        Value::String(s) => Box::new(CelString::from(s.as_str())),
        Value::Array(items) => Box::new(CelList::from(
            items.iter().map(json_to_val).collect::<Vec<_>>(),
        )),
        Value::Object(map) => Box::new(object_to_val(
            map.iter().map(|(k, v)| (k.as_str(), json_to_val(v))),
        )),
    }
}

fn number_to_val(n: &Number) -> Box<dyn Val + 'static> {
    if let Some(i) = n.as_i64() {
        Box::new(CelInt::from(i))
    } else if let Some(u) = n.as_u64() {
        Box::new(CelUInt::from(u))
    } else {
        Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
    }
}

/// A CEL map with string keys.
pub(crate) fn object_to_val<'v>(
    entries: impl IntoIterator<Item = (&'v str, Box<dyn Val + 'v>)>,
) -> CelMap<'v> {
    let map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::String(CelString::from(k)), v))
        .collect();
    CelMap::from(map)
}

/// A CEL value as JSON, or why it has none.
pub(crate) fn cel_to_json(v: &CelValue) -> Result<Value, String> {
    Ok(match v {
        CelValue::Null => Value::Null,
        CelValue::Bool(b) => Value::Bool(*b),
        CelValue::Int(i) => Value::from(*i),
        CelValue::UInt(u) => Value::from(*u),
        CelValue::Float(f) => Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} is not a finite number"))?,
        CelValue::String(s) => Value::String(s.as_str().to_owned()),
        CelValue::Bytes(b) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_slice()))
        }
        CelValue::List(items) => Value::Array(
            items
                .iter()
                .map(cel_to_json)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        CelValue::Map(map) => {
            let mut out = Map::new();
            for (k, v) in map.map.iter() {
                let key = match k {
                    Key::String(s) => s.as_str().to_owned(),
                    other => other.to_string(),
                };
                out.insert(key, cel_to_json(v)?);
            }
            Value::Object(out)
        }
        CelValue::Timestamp(ts) => Value::String(ts.to_rfc3339()),
        CelValue::Duration(d) => Value::String(format_duration(d.num_seconds(), d.subsec_nanos())),
        CelValue::Opaque(_) => match <&OptionalValue>::try_from(v) {
            Ok(opt) => match opt.value() {
                Some(inner) => cel_to_json(inner)?,
                None => Value::Null,
            },
            Err(_) => return Err(format!("a value of type {} has no JSON form", v.type_of())),
        },
        other => {
            return Err(format!(
                "a value of type {} has no JSON form",
                other.type_of()
            ));
        }
    })
}

/// CEL's duration text: seconds with up to nine fractional digits, e.g.
/// `"1.5s"`, `"-0.25s"`, `"3600s"`. `nanos` has the sign of `secs`.
fn format_duration(secs: i64, nanos: i32) -> String {
    let negative = secs < 0 || nanos < 0;
    let secs = secs.unsigned_abs();
    let nanos = nanos.unsigned_abs();
    let sign = if negative { "-" } else { "" };
    if nanos == 0 {
        return format!("{sign}{secs}s");
    }
    let frac = format!("{nanos:09}");
    format!("{sign}{secs}.{}s", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_format_like_cel() {
        assert_eq!(format_duration(1, 500_000_000), "1.5s");
        assert_eq!(format_duration(3600, 0), "3600s");
        assert_eq!(format_duration(0, -250_000_000), "-0.25s");
        assert_eq!(format_duration(-2, -1), "-2.000000001s");
    }

    #[test]
    fn values_convert_both_ways() {
        let cases = [
            serde_json::json!(null),
            serde_json::json!(true),
            serde_json::json!(-7),
            serde_json::json!(u64::MAX),
            serde_json::json!(2.5),
            serde_json::json!("héllo"),
            serde_json::json!([1, "a", [null]]),
            serde_json::json!({"a": {"b": [1.5, false]}}),
        ];
        for json in cases {
            let val = json_to_val(&json);
            let cel = CelValue::try_from(val.as_ref()).unwrap();
            assert_eq!(cel_to_json(&cel).unwrap(), json);
        }
    }

    #[test]
    fn non_json_values_are_described() {
        assert!(cel_to_json(&CelValue::Float(f64::NAN)).is_err());
        assert_eq!(
            cel_to_json(&CelValue::Bytes(vec![0xff, 0x00].into())).unwrap(),
            serde_json::json!("/wA=")
        );
    }
}
