//! Row schemas used to type CSV cells (inference is the SDK's).

use serde_json::Value;
use weft_plugin_sdk::PluginError;
use weft_plugin_sdk::schema::parse_bool;

/// The declared type of each of `columns` in `schema` (`None`: text).
pub fn column_types(schema: &Value, columns: &[String]) -> Vec<Option<String>> {
    let props = schema.get("properties").and_then(Value::as_object);
    columns
        .iter()
        .map(|c| {
            let prop = props.and_then(|p| p.get(c))?;
            match prop.get("type")? {
                Value::String(t) => Some(t.clone()),
                Value::Array(ts) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|t| *t != "null")
                    .map(str::to_owned),
                _ => None,
            }
        })
        .collect()
}

/// A CSV cell as the JSON value its column's type says; an empty cell is null.
pub fn typed_cell(cell: &str, ty: Option<&str>) -> Result<Value, String> {
    if cell.is_empty() {
        return Ok(Value::Null);
    }
    match ty {
        Some("integer") => cell
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("{cell:?} is not an integer")),
        Some("number") => cell
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("{cell:?} is not a number")),
        Some("boolean") => parse_bool(cell)
            .map(Value::Bool)
            .ok_or_else(|| format!("{cell:?} is not a boolean")),
        Some("object" | "array") => {
            serde_json::from_str(cell).map_err(|e| format!("{cell:?} is not JSON: {e}"))
        }
        _ => Ok(Value::String(cell.to_owned())),
    }
}

/// The column names of a stream schema, in order.
pub fn columns(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// Checks a configured schema is an object schema with properties.
pub fn check_configured(schema: &Value) -> Result<(), PluginError> {
    if schema
        .get("properties")
        .and_then(Value::as_object)
        .is_none()
    {
        return Err(PluginError::config(
            "schema must be a JSON Schema object with `properties`",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_follow_their_column_type() {
        assert_eq!(typed_cell("42", Some("integer")), Ok(json!(42)));
        assert_eq!(typed_cell("", Some("integer")), Ok(Value::Null));
        assert!(typed_cell("4x", Some("integer")).is_err());
        assert_eq!(typed_cell("True", Some("boolean")), Ok(json!(true)));
        assert_eq!(typed_cell("007", None), Ok(json!("007")));
        assert!(typed_cell("NaN", Some("number")).is_err());
    }
}
