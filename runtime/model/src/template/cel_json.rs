//! Conversions between JSON and CEL values.
//!
//! JSON becomes CEL values that borrow the JSON's strings, so binding a
//! variable copies no text. CEL results become JSON: ints stay ints, floats
//! stay floats, timestamps become RFC 3339 strings, durations CEL's own
//! `"1.5s"` form, bytes base64, and an optional its value (or `null`).

use crate::json_limits::MAX_JSON_DEPTH;
use base64::Engine as _;
use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull,
    CelOptional, CelString, CelTimestamp, CelType, CelUInt, Kind,
};
use cel::common::value::Val;
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

/// Why a CEL value was not converted to JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToJsonError {
    /// It has no JSON form (a NaN, an opaque value…).
    NotJson(String),
    /// Its JSON would be larger than allowed.
    TooLarge,
    /// It is nested deeper than [`MAX_JSON_DEPTH`].
    TooDeep,
}

/// A CEL value as JSON, within a size bound, without first copying it into
/// an owned `cel::Value`: a result that shares one large string many times
/// over costs only what its JSON would, and is refused before that JSON is
/// built when it would exceed `max_bytes`.
pub(crate) fn val_to_json(v: &dyn Val, max_bytes: u64) -> Result<Value, ToJsonError> {
    let mut left = max_bytes;
    val_to_json_in(v, &mut left, 0)
}

fn spend(left: &mut u64, n: usize) -> Result<(), ToJsonError> {
    *left = left.checked_sub(n as u64).ok_or(ToJsonError::TooLarge)?;
    Ok(())
}

fn val_to_json_in(v: &dyn Val, left: &mut u64, depth: usize) -> Result<Value, ToJsonError> {
    let not_json = || {
        ToJsonError::NotJson(format!(
            "a value of type {} has no JSON form",
            v.get_type().name()
        ))
    };
    let kind = v.get_type().kind();
    if matches!(kind, Kind::List | Kind::Map) && depth >= MAX_JSON_DEPTH {
        return Err(ToJsonError::TooDeep);
    }
    Ok(match kind {
        Kind::NullType => {
            spend(left, 4)?;
            Value::Null
        }
        Kind::Boolean => {
            spend(left, 5)?;
            Value::Bool(*v.downcast_ref::<CelBool>().ok_or_else(not_json)?.inner())
        }
        Kind::Int => {
            spend(left, 20)?;
            Value::from(*v.downcast_ref::<CelInt>().ok_or_else(not_json)?.inner())
        }
        Kind::UInt => {
            spend(left, 20)?;
            Value::from(*v.downcast_ref::<CelUInt>().ok_or_else(not_json)?.inner())
        }
        Kind::Double => {
            spend(left, 24)?;
            let f = *v.downcast_ref::<CelDouble>().ok_or_else(not_json)?.inner();
            Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| ToJsonError::NotJson(format!("{f} is not a finite number")))?
        }
        Kind::String => {
            let s = v.downcast_ref::<CelString>().ok_or_else(not_json)?.inner();
            spend(left, s.len() + 2)?;
            Value::String(s.to_owned())
        }
        Kind::Bytes => {
            let b = v.downcast_ref::<CelBytes>().ok_or_else(not_json)?.inner();
            spend(left, b.len().div_ceil(3) * 4 + 2)?;
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Kind::Duration => {
            let d = v
                .downcast_ref::<CelDuration>()
                .ok_or_else(not_json)?
                .inner();
            spend(left, 24)?;
            Value::String(format_duration(d.num_seconds(), d.subsec_nanos()))
        }
        Kind::Timestamp => {
            let ts = v
                .downcast_ref::<CelTimestamp>()
                .ok_or_else(not_json)?
                .inner();
            spend(left, 36)?;
            Value::String(ts.to_rfc3339())
        }
        Kind::Type => {
            let t = v.downcast_ref::<CelType>().ok_or_else(not_json)?;
            spend(left, t.name().len() + 2)?;
            Value::String(t.name().to_string())
        }
        Kind::List => {
            let list = v.downcast_ref::<CelList>().ok_or_else(not_json)?.inner();
            spend(left, 2 + list.len())?;
            let mut out = Vec::with_capacity(list.len());
            for item in list {
                out.push(val_to_json_in(item.as_ref(), left, depth + 1)?);
            }
            Value::Array(out)
        }
        Kind::Map => {
            let map = v.downcast_ref::<CelMap>().ok_or_else(not_json)?.inner();
            spend(left, 2)?;
            let mut out = Map::new();
            for (k, item) in map {
                let key = match k {
                    CelMapKey::String(s) => s.inner().to_owned(),
                    other => val_to_json_in(other.inner(), left, depth + 1)?.to_string(),
                };
                spend(left, key.len() + 4)?;
                let value = val_to_json_in(item.as_ref(), left, depth + 1)?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Kind::Opaque => match v.downcast_ref::<CelOptional>() {
            Some(opt) => match opt.option() {
                Some(inner) => val_to_json_in(inner, left, depth)?,
                None => {
                    spend(left, 4)?;
                    Value::Null
                }
            },
            None => return Err(not_json()),
        },
        _ => return Err(not_json()),
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
            assert_eq!(val_to_json(val.as_ref(), u64::MAX).unwrap(), json);
            assert_eq!(
                val_to_json(val.as_ref(), 3),
                Err(ToJsonError::TooLarge),
                "{json}"
            );
        }
    }

    #[test]
    fn non_json_values_are_described() {
        assert!(val_to_json(&CelDouble::from(f64::NAN), 100).is_err());
        assert_eq!(
            val_to_json(&CelBytes::from(vec![0xff, 0x00]), 100).unwrap(),
            serde_json::json!("/wA=")
        );
    }
}
