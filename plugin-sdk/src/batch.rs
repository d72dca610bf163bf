//! Batches: a connector writes rows and reads rows; this module encodes
//! and decodes the bytes (Arrow IPC, or NDJSON passed through).
//!
//! ```
//! use weft_plugin_sdk::batch::{BatchBuilder, BatchExt};
//! use weft_plugin_sdk::wit::BatchFormat;
//!
//! let schema = serde_json::json!({
//!     "type": "object",
//!     "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}
//! });
//! let mut b = BatchBuilder::new("users", &schema, &BatchFormat::ArrowIpc).unwrap();
//! b.push(&serde_json::json!({"id": 1, "name": "Ada"})).unwrap();
//! b.push(&serde_json::json!({"id": 2, "name": null})).unwrap();
//! let batch = b.finish().unwrap();
//! assert_eq!(batch.rows, 2);
//! let rows = batch.json_rows().unwrap();
//! assert_eq!(rows[0]["name"], "Ada");
//! ```

use crate::PluginError;
use crate::schema::json_type;
use crate::wit::{Batch, BatchFormat};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The name of the NDJSON pass-through format: one JSON object per line.
pub const NDJSON: &str = "ndjson";

/// The NDJSON pass-through format.
pub fn ndjson() -> BatchFormat {
    BatchFormat::Other(NDJSON.into())
}

/// Whether `format` is NDJSON.
pub fn is_ndjson(format: &BatchFormat) -> bool {
    matches!(format, BatchFormat::Other(name) if name == NDJSON)
}

/// Arrow field metadata marking a Utf8 field whose values are JSON text
/// (objects, arrays, anything untyped); readers parse them back.
pub const JSON_FIELD_METADATA: &str = "weft:json";

/// The Arrow schema for a stream's JSON Schema: `integer` → Int64,
/// `number` → Float64, `boolean` → Boolean, `string` → Utf8; objects,
/// arrays and untyped fields travel as JSON text (Utf8, marked with
/// [`JSON_FIELD_METADATA`]) and come back as JSON from
/// [`BatchExt::json_rows`]. Every field is nullable, and a field missing
/// from a row is null.
pub fn arrow_schema(json_schema: &Value) -> Schema {
    let fields: Vec<Field> = json_schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, prop)| {
                    let field = Field::new(name, arrow_type(prop), true);
                    if carries_json(prop) {
                        field.with_metadata(std::collections::HashMap::from([(
                            JSON_FIELD_METADATA.to_owned(),
                            "true".to_owned(),
                        )]))
                    } else {
                        field
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Schema::new(fields)
}

/// Whether a property's values travel as JSON text: neither a scalar type
/// nor `string`.
fn carries_json(prop: &Value) -> bool {
    !matches!(
        json_type(prop),
        Some("integer" | "number" | "boolean" | "string")
    )
}

fn arrow_type(prop: &Value) -> DataType {
    match json_type(prop) {
        Some("integer") => DataType::Int64,
        Some("number") => DataType::Float64,
        Some("boolean") => DataType::Boolean,
        _ => DataType::Utf8,
    }
}

/// Collects rows of one stream and encodes them as one [`Batch`].
pub struct BatchBuilder {
    stream: String,
    format: BatchFormat,
    schema: SchemaRef,
    /// Fields carried as text: non-string values are serialised.
    text_fields: Vec<String>,
    /// Of those, fields carrying JSON: every value (strings too) is serialised.
    json_fields: Vec<String>,
    rows: Vec<Value>,
    ndjson: Vec<u8>,
    count: u32,
}

impl BatchBuilder {
    /// A builder for `stream`, whose rows follow `json_schema`, encoding as `format`.
    pub fn new(
        stream: impl Into<String>,
        json_schema: &Value,
        format: &BatchFormat,
    ) -> Result<Self, PluginError> {
        if !matches!(format, BatchFormat::ArrowIpc) && !is_ndjson(format) {
            return Err(PluginError::config(format!(
                "the SDK cannot encode batches as {format:?}; use arrow-ipc or ndjson"
            )));
        }
        let schema = Arc::new(arrow_schema(json_schema));
        let text_fields = json_schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .filter(|(_, p)| {
                        !matches!(json_type(p), Some("integer" | "number" | "boolean"))
                    })
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default();
        let json_fields = json_schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .filter(|(_, p)| carries_json(p))
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            stream: stream.into(),
            format: format.clone(),
            schema,
            text_fields,
            json_fields,
            rows: Vec::new(),
            ndjson: Vec::new(),
            count: 0,
        })
    }

    /// Adds one row (anything that serialises to a JSON object).
    pub fn push<T: Serialize + ?Sized>(&mut self, row: &T) -> Result<(), PluginError> {
        let value = serde_json::to_value(row)
            .map_err(|e| PluginError::data(format!("a row does not serialise: {e}")))?;
        self.push_value(value)
    }

    /// Adds one row given as JSON.
    pub fn push_value(&mut self, mut row: Value) -> Result<(), PluginError> {
        let Some(obj) = row.as_object_mut() else {
            return Err(PluginError::data("a row must be a JSON object"));
        };
        if is_ndjson(&self.format) {
            serde_json::to_writer(&mut self.ndjson, obj)
                .map_err(|e| PluginError::internal(e.to_string()))?;
            self.ndjson.push(b'\n');
        } else {
            for name in &self.text_fields {
                if let Some(v) = obj.get_mut(name)
                    && !matches!(v, Value::Null)
                    && (!matches!(v, Value::String(_)) || self.json_fields.contains(name))
                {
                    *v = Value::String(v.to_string());
                }
            }
            self.rows.push(row);
        }
        self.count += 1;
        Ok(())
    }

    /// Adds NDJSON lines as they are (pass-through): each non-empty line is one row.
    /// Only for the NDJSON format.
    pub fn push_ndjson_lines(&mut self, lines: &[u8], rows: u32) -> Result<(), PluginError> {
        if !is_ndjson(&self.format) {
            return Err(PluginError::internal(
                "raw NDJSON lines need the ndjson format",
            ));
        }
        self.ndjson.extend_from_slice(lines);
        if !lines.ends_with(b"\n") && !lines.is_empty() {
            self.ndjson.push(b'\n');
        }
        self.count += rows;
        Ok(())
    }

    /// Rows collected so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether no row was collected.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encodes the collected rows and starts over.
    pub fn finish(&mut self) -> Result<Batch, PluginError> {
        let rows = std::mem::take(&mut self.count);
        let data = if is_ndjson(&self.format) {
            std::mem::take(&mut self.ndjson)
        } else {
            let values = std::mem::take(&mut self.rows);
            encode_arrow(&self.schema, &values)?
        };
        Ok(Batch {
            stream_name: self.stream.clone(),
            format: self.format.clone(),
            data,
            rows,
        })
    }
}

fn encode_arrow(schema: &SchemaRef, rows: &[Value]) -> Result<Vec<u8>, PluginError> {
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .with_coerce_primitive(true)
        .build_decoder()
        .map_err(|e| PluginError::internal(format!("arrow decoder: {e}")))?;
    decoder
        .serialize(rows)
        .map_err(|e| PluginError::data(format!("a row does not match the stream's schema: {e}")))?;
    let batch = decoder
        .flush()
        .map_err(|e| PluginError::data(format!("a row does not match the stream's schema: {e}")))?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), schema)
        .map_err(|e| PluginError::internal(format!("arrow ipc: {e}")))?;
    writer
        .write(&batch)
        .and_then(|()| writer.finish())
        .map_err(|e| PluginError::internal(format!("arrow ipc: {e}")))?;
    writer
        .into_inner()
        .map_err(|e| PluginError::internal(format!("arrow ipc: {e}")))
}

/// Reading a received [`Batch`].
pub trait BatchExt {
    /// The Arrow record batches (for an `arrow-ipc` batch).
    fn record_batches(&self) -> Result<Vec<RecordBatch>, PluginError>;
    /// The rows as NDJSON bytes, whatever the format.
    fn to_ndjson(&self) -> Result<Vec<u8>, PluginError>;
    /// The rows as JSON objects, whatever the format.
    fn json_rows(&self) -> Result<Vec<Map<String, Value>>, PluginError>;
}

impl BatchExt for Batch {
    fn record_batches(&self) -> Result<Vec<RecordBatch>, PluginError> {
        if !matches!(self.format, BatchFormat::ArrowIpc) {
            return Err(PluginError::data("the batch is not arrow-ipc"));
        }
        let reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(&self.data), None)
                .map_err(|e| {
                    PluginError::data(format!("the batch is not an Arrow IPC stream: {e}"))
                })?;
        reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PluginError::data(format!("the batch is not an Arrow IPC stream: {e}")))
    }

    fn to_ndjson(&self) -> Result<Vec<u8>, PluginError> {
        if is_ndjson(&self.format) {
            return Ok(self.data.clone());
        }
        let batches = self.record_batches()?;
        if batches.first().is_some_and(|b| !json_columns(b).is_empty()) {
            let mut out = Vec::new();
            for row in self.json_rows()? {
                serde_json::to_writer(&mut out, &row)
                    .map_err(|e| PluginError::data(format!("encoding rows as JSON: {e}")))?;
                out.push(b'\n');
            }
            return Ok(out);
        }
        arrow_ndjson(&batches)
    }

    fn json_rows(&self) -> Result<Vec<Map<String, Value>>, PluginError> {
        let (text, json) = if is_ndjson(&self.format) {
            (self.data.clone(), Vec::new())
        } else {
            let batches = self.record_batches()?;
            let json = batches.first().map(json_columns).unwrap_or_default();
            (arrow_ndjson(&batches)?, json)
        };
        text.split(|b| *b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(|line| {
                let mut row: Map<String, Value> = serde_json::from_slice(line)
                    .map_err(|e| PluginError::data(format!("a row is not a JSON object: {e}")))?;
                for name in &json {
                    if let Some(v) = row.get_mut(name)
                        && let Value::String(text) = v
                        && let Ok(parsed) = serde_json::from_str::<Value>(text)
                    {
                        *v = parsed;
                    }
                }
                Ok(row)
            })
            .collect()
    }
}

/// The names of a batch's fields that carry JSON text.
fn json_columns(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .filter(|f| f.metadata().contains_key(JSON_FIELD_METADATA))
        .map(|f| f.name().clone())
        .collect()
}

/// Arrow record batches as NDJSON, values as Arrow holds them.
fn arrow_ndjson(batches: &[RecordBatch]) -> Result<Vec<u8>, PluginError> {
    let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| PluginError::data(format!("encoding rows as JSON: {e}")))?;
    }
    writer
        .finish()
        .map_err(|e| PluginError::data(format!("encoding rows as JSON: {e}")))?;
    Ok(writer.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "id": {"type": "integer"},
            "score": {"type": ["number", "null"]},
            "ok": {"type": "boolean"},
            "name": {"type": "string"},
            "tags": {"type": "array"}
        }})
    }

    #[test]
    fn rows_round_trip_through_arrow_ipc() {
        let mut b = BatchBuilder::new("s", &schema(), &BatchFormat::ArrowIpc).unwrap();
        b.push(&json!({"id": 1, "score": 1.5, "ok": true, "name": "a", "tags": ["x"]}))
            .unwrap();
        b.push(&json!({"id": 2, "extra": "ignored"})).unwrap();
        let batch = b.finish().unwrap();
        assert_eq!(batch.rows, 2);
        let arrow = batch.record_batches().unwrap();
        assert_eq!(arrow[0].num_rows(), 2);
        assert_eq!(arrow[0].schema().field(0).data_type(), &DataType::Int64);
        let rows = batch.json_rows().unwrap();
        assert_eq!(
            arrow[0].column_by_name("tags").unwrap().data_type(),
            &DataType::Utf8
        );
        assert_eq!(
            rows[0]["tags"],
            json!(["x"]),
            "arrays travel as JSON text and come back"
        );
        assert_eq!(rows[1]["id"], 2);
        assert!(rows[1].get("score").is_none(), "nulls are left out");
        assert!(b.is_empty(), "finish starts over");
    }

    #[test]
    fn a_row_of_the_wrong_type_is_a_data_error() {
        let mut b = BatchBuilder::new("s", &schema(), &BatchFormat::ArrowIpc).unwrap();
        b.push(&json!({"id": "not a number"})).unwrap();
        let err = b.finish().unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Data);
        assert!(
            BatchBuilder::new("s", &schema(), &BatchFormat::ArrowIpc)
                .unwrap()
                .push(&json!([1]))
                .is_err()
        );
    }

    #[test]
    fn json_columns_come_back_as_json_through_arrow() {
        let schema = json!({"type": "object", "properties": {
            "id": {"type": "integer"},
            "meta": {},
            "tags": {"type": ["array", "null"]},
        }});
        let mut b = BatchBuilder::new("s", &schema, &BatchFormat::ArrowIpc).unwrap();
        b.push(&json!({"id": 1, "meta": {"a": [1, 2]}, "tags": ["x"]}))
            .unwrap();
        b.push(&json!({"id": 2, "meta": "plain", "tags": null}))
            .unwrap();
        b.push(&json!({"id": 3, "meta": "{\"not\": \"parsed\"}"}))
            .unwrap();
        let batch = b.finish().unwrap();
        let rows = batch.json_rows().unwrap();
        assert_eq!(rows[0]["meta"], json!({"a": [1, 2]}));
        assert_eq!(rows[0]["tags"], json!(["x"]));
        assert_eq!(rows[1]["meta"], "plain", "a JSON string stays a string");
        assert!(rows[1].get("tags").is_none(), "nulls are left out");
        assert_eq!(rows[2]["meta"], "{\"not\": \"parsed\"}");
        let ndjson = String::from_utf8(batch.to_ndjson().unwrap()).unwrap();
        assert!(
            ndjson.starts_with(r#"{"id":1,"meta":{"a":[1,2]},"tags":["x"]}"#),
            "{ndjson}"
        );
    }

    #[test]
    fn ndjson_passes_through_untouched() {
        let mut b = BatchBuilder::new("s", &schema(), &ndjson()).unwrap();
        b.push_ndjson_lines(b"{\"id\":1}\n{\"id\":2}", 2).unwrap();
        let batch = b.finish().unwrap();
        assert_eq!(batch.data, b"{\"id\":1}\n{\"id\":2}\n");
        assert_eq!(batch.json_rows().unwrap().len(), 2);
    }
}
