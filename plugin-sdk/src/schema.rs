//! Row schemas inferred from sample rows: JSON objects, or text cells such
//! as CSV's, typed as narrowly as every sample allows.
//!
//! ```
//! use weft_plugin_sdk::schema::Inference;
//!
//! let mut inference = Inference::default();
//! for row in [serde_json::json!({"id": 1, "price": 2}), serde_json::json!({"id": 2, "price": 2.5})] {
//!     inference.json_row(row.as_object().unwrap());
//! }
//! let schema = inference.schema();
//! assert_eq!(schema["properties"]["price"]["type"][0], "number");
//! ```

use serde_json::{Map, Value, json};

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

    fn of_text(cell: &str) -> Seen {
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

    fn schema(self, from_text: bool) -> Value {
        let t = match self {
            Seen::Integer => "integer",
            Seen::Number => "number",
            Seen::Boolean => "boolean",
            Seen::Object => "object",
            Seen::Array => "array",
            // Text cells are text; nothing seen yet is text too.
            Seen::String | Seen::Nothing => "string",
            Seen::Mixed if from_text => "string",
            Seen::Mixed => return json!({}),
        };
        json!({"type": [t, "null"]})
    }
}

/// Collects column types from sample rows, keeping the order columns first appear in.
#[derive(Debug, Default)]
pub struct Inference {
    columns: Vec<(String, Seen)>,
    from_text: bool,
}

impl Inference {
    /// An inference over text cells (CSV, say) that may hold numbers and
    /// booleans, in the columns of `header`.
    pub fn text_columns(header: &[String]) -> Self {
        Self {
            columns: header.iter().map(|h| (h.clone(), Seen::Nothing)).collect(),
            from_text: true,
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

    /// Adds one row of text cells, in header order.
    pub fn text_row<'a>(&mut self, cells: impl IntoIterator<Item = &'a str>) {
        for (i, cell) in cells.into_iter().enumerate() {
            if let Some((_, seen)) = self.columns.get_mut(i) {
                *seen = seen.merge(Seen::of_text(cell));
            }
        }
    }

    /// The JSON Schema of the rows seen.
    pub fn schema(&self) -> Value {
        let properties: Map<String, Value> = self
            .columns
            .iter()
            .map(|(n, s)| (n.clone(), s.schema(self.from_text)))
            .collect();
        json!({"type": "object", "properties": properties})
    }
}

/// `true` or `false`, in any case.
pub fn parse_bool(cell: &str) -> Option<bool> {
    match cell.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The one non-null JSON type a JSON Schema property declares (`"integer"`
/// for `{"type": ["integer", "null"]}`), or `None` when it declares none or
/// several.
pub fn json_type(prop: &Value) -> Option<&str> {
    match prop.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(ts)) => {
            let mut non_null = ts.iter().filter_map(Value::as_str).filter(|t| *t != "null");
            match (non_null.next(), non_null.next()) {
                (Some(t), None) => Some(t),
                _ => None,
            }
        }
        _ => None,
    }
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
    fn infers_text_types() {
        let header = vec!["n".to_string(), "x".into(), "b".into(), "s".into()];
        let mut inf = Inference::text_columns(&header);
        inf.text_row(["1", "1.5", "true", "a"]);
        inf.text_row(["", "2", "FALSE", "3"]);
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
}
