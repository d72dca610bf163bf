//! Field types that read JSON exactly as the API document describes it.
//!
//! poem-openapi's own `String` also accepts a number or a boolean (turning
//! `5` into `"5"`), and its optional fields take `null` for "absent"; the
//! document says neither, so a client that sends them learns nothing and a
//! typo slips through. These types accept only what their schema allows.

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A JSON string, and only a string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text(pub String);

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.0
    }
}

impl Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        String::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => Ok(Self(s)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A JSON object (never `null`, an array or a scalar).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonObject(pub Map<String, Value>);

impl From<JsonObject> for Value {
    fn from(o: JsonObject) -> Self {
        Value::Object(o.0)
    }
}

impl Type for JsonObject {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "object".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("object")))
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ParseFromJSON for JsonObject {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::Object(o)) => Ok(Self(o)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for JsonObject {
    fn to_json(&self) -> Option<Value> {
        Some(Value::Object(self.0.clone()))
    }
}

/// A field that may be left out, but is not `null` when present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Maybe<T>(pub Option<T>);

impl<T> Maybe<T> {
    /// Whether the field was left out (serde's `skip_serializing_if`).
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }
}

impl<T: Default> Maybe<T> {
    /// The value, or its default when left out.
    pub fn or_default(self) -> T {
        self.0.unwrap_or_default()
    }
}

impl<T> From<Option<T>> for Maybe<T> {
    fn from(v: Option<T>) -> Self {
        Self(v)
    }
}

impl<T: Type> Type for Maybe<T> {
    const IS_REQUIRED: bool = false;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("optional_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(T::as_raw_value)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(v) => v.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Maybe<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None => Ok(Self(None)),
            Some(Value::Null) => Err(ParseError::custom(
                "null is not a value here: leave the field out instead",
            )),
            v => T::parse_from_json(v)
                .map(|v| Self(Some(v)))
                .map_err(ParseError::propagate),
        }
    }
}

impl<T: ToJSON> ToJSON for Maybe<T> {
    fn to_json(&self) -> Option<Value> {
        self.0.as_ref().and_then(T::to_json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_takes_strings_only() {
        assert_eq!(
            Text::parse_from_json(Some(json!("a"))).ok(),
            Some(Text::from("a"))
        );
        for v in [json!(5), json!(true), json!(null), json!(["a"])] {
            assert!(Text::parse_from_json(Some(v.clone())).is_err(), "{v}");
        }
        assert!(Text::parse_from_json(None).is_err());
    }

    #[test]
    fn objects_are_objects() {
        assert!(JsonObject::parse_from_json(Some(json!({"a": 1}))).is_ok());
        for v in [json!(null), json!(0), json!([]), json!("{}")] {
            assert!(JsonObject::parse_from_json(Some(v.clone())).is_err(), "{v}");
        }
    }

    #[test]
    fn an_optional_field_may_be_absent_but_not_null() {
        let absent = Maybe::<Vec<Text>>::parse_from_json(None).ok();
        assert_eq!(absent.map(Maybe::or_default), Some(Vec::new()));
        assert!(Maybe::<Vec<Text>>::parse_from_json(Some(json!(null))).is_err());
        assert!(Maybe::<Vec<Text>>::parse_from_json(Some(json!([1]))).is_err());
        let given = Maybe::<Vec<Text>>::parse_from_json(Some(json!(["x"]))).ok();
        assert_eq!(given.map(Maybe::or_default), Some(vec![Text::from("x")]));
    }
}
