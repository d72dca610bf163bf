//! Row schemas: inferred from sample rows, and used to type CSV cells.

use serde_json::{Map, Value, json};
use weft_plugin_sdk::PluginError;

/// The JSON type of a column, as far as the sample shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nothing,
    Integer,
    Number,
    Boolean,
    String,
    Object,
    Array,
    /// Values of incompatible types: kept as any JSON.
    Mixed,
}

impl Seen {
    fn merge(self, other: Seen) -> Seen {
        use Seen::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Nothing, b) => b,
            (a, Nothing) => a,
            (Integer, Number) | (Number, Integer) => Number,
            _ => Mixed,
        }
    }

    fn of_json(v: &Value) -> Seen {
        match v {
            Value::Null => Seen::Nothing,
            Value::Bool(_) => Seen::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => Seen::Integer,
            Value::Number(_) => Seen::Number,
            Value::String(_) => Seen::String,
            Value::Array(_) => Seen::Array,
            Value::Object(_) => Seen::Object,
        }
    }

    fn of_cell(cell: &str) -> Seen {
        if cell.is_empty() {
            Seen::Nothing
        } else if cell.parse::<i64>().is_ok() {
            Seen::Integer
        } else if cell.parse::<f64>().is_ok_and(f64::is_finite) {
            Seen::Number
        } else if parse_bool(cell).is_some() {
            Seen::Boolean
        } else {
            Seen::String
        }
    }

    fn schema(self, from_csv: bool) -> Value {
        let t = match self {
            Seen::Integer => "integer",
            Seen::Number => "number",
            Seen::Boolean => "boolean",
            Seen::Object => "object",
            Seen::Array => "array",
            // CSV cells are text; nothing seen yet is text too.
            Seen::String | Seen::Nothing => "string",
            Seen::Mixed if from_csv => "string",
            Seen::Mixed => return json!({}),
        };
        json!({"type": [t, "null"]})
    }
}

/// Collects column types from sample rows, keeping the order columns first appear in.
#[derive(Debug, Default)]
pub struct Inference {
    columns: Vec<(String, Seen)>,
    from_csv: bool,
}

impl Inference {
    /// An inference over CSV cells (text that may hold numbers and booleans).
    pub fn csv(header: &[String]) -> Self {
        Self {
            columns: header.iter().map(|h| (h.clone(), Seen::Nothing)).collect(),
            from_csv: true,
        }
    }

    fn column(&mut self, name: &str) -> &mut Seen {
        let idx = match self.columns.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.columns.push((name.to_owned(), Seen::Nothing));
                self.columns.len() - 1
            }
        };
        &mut self.columns[idx].1
    }

    /// Adds one JSON row.
    pub fn json_row(&mut self, row: &Map<String, Value>) {
        for (k, v) in row {
            let seen = self.column(k);
            *seen = seen.merge(Seen::of_json(v));
        }
    }

    /// Adds one CSV record, cells in header order.
    pub fn csv_record(&mut self, cells: &csv::StringRecord) {
        for (i, cell) in cells.iter().enumerate() {
            if let Some((_, seen)) = self.columns.get_mut(i) {
                *seen = seen.merge(Seen::of_cell(cell));
            }
        }
    }

    /// The JSON Schema of the rows seen.
    pub fn schema(&self) -> Value {
        let properties: Map<String, Value> = self
            .columns
            .iter()
            .map(|(n, s)| (n.clone(), s.schema(self.from_csv)))
            .collect();
        json!({"type": "object", "properties": properties})
    }
}

fn parse_bool(cell: &str) -> Option<bool> {
    match cell.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

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

    #[test]
    fn infers_json_types_and_widens_integers() {
        let mut inf = Inference::default();
        for row in [
            json!({"id": 1, "score": 1, "name": "a", "tags": [1]}),
            json!({"id": 2, "score": 2.5, "name": null, "extra": {"x": 1}}),
            json!({"id": "three"}),
        ] {
            inf.json_row(row.as_object().unwrap());
        }
        let s = inf.schema();
        assert_eq!(s["properties"]["id"], json!({}));
        assert_eq!(s["properties"]["score"]["type"][0], "number");
        assert_eq!(s["properties"]["name"]["type"][0], "string");
        assert_eq!(s["properties"]["tags"]["type"][0], "array");
        assert_eq!(s["properties"]["extra"]["type"][0], "object");
    }

    #[test]
    fn infers_csv_types() {
        let header = vec!["n".to_string(), "x".into(), "b".into(), "s".into()];
        let mut inf = Inference::csv(&header);
        inf.csv_record(&csv::StringRecord::from(vec!["1", "1.5", "true", "a"]));
        inf.csv_record(&csv::StringRecord::from(vec!["", "2", "FALSE", "3"]));
        let s = inf.schema();
        let types: Vec<_> = header
            .iter()
            .map(|h| s["properties"][h]["type"][0].clone())
            .collect();
        assert_eq!(
            types,
            [
                json!("integer"),
                "number".into(),
                "boolean".into(),
                "string".into()
            ]
        );
    }

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
