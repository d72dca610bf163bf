//! What a database holds: tables, views and their columns, read from
//! `pg_catalog`, with each column's type mapped to JSON Schema (and to the
//! [`Kind`] its COPY text is read with).

use crate::config::{NumericAs, PgConfig};
use crate::copy_text::Kind;
use crate::wire::{Client, TextRow};
use postgres_protocol::escape::{escape_identifier, escape_literal};
use serde_json::{Map, Value, json};
use weft_plugin_sdk::PluginError;
use weft_plugin_sdk::wit::{StreamInfo, SyncMode};

/// A column and how it maps.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// `format_type` of its type, e.g. `character varying(20)`.
    pub pg_type: String,
    /// How its text is read, or why it cannot be.
    pub kind: Result<Kind, String>,
    /// Its JSON Schema, when mapped.
    pub schema: Value,
    /// The first column of some index.
    pub indexed: bool,
    /// Filled from a sequence or an identity.
    pub sequenced: bool,
    /// A timestamp or date.
    pub temporal: bool,
}

/// A table or view.
#[derive(Debug, Clone)]
pub struct Table {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// A view or materialised view (no chunking by key or page).
    pub is_view: bool,
    /// The planner's row estimate, once analysed.
    pub estimated_rows: Option<u64>,
    /// Its columns, in order.
    pub columns: Vec<Column>,
    /// The primary key's columns, in key order.
    pub primary_key: Vec<String>,
}

impl Table {
    /// `"schema"."name"`, quoted.
    pub fn qualified(&self) -> String {
        format!(
            "{}.{}",
            escape_identifier(&self.schema),
            escape_identifier(&self.name)
        )
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The stream the table is.
    pub fn stream_info(&self) -> StreamInfo {
        let mut properties = Map::new();
        let mut unsupported = Map::new();
        for c in &self.columns {
            match &c.kind {
                Ok(_) => {
                    properties.insert(c.name.clone(), c.schema.clone());
                }
                Err(reason) => {
                    unsupported.insert(c.name.clone(), Value::String(reason.clone()));
                }
            }
        }
        let mut schema = json!({"type": "object", "properties": properties});
        if !unsupported.is_empty() {
            schema["x-unsupported-columns"] = Value::Object(unsupported);
        }
        let mapped = |c: &&Column| c.kind.is_ok();
        // Indexed timestamps first: the usual `updated_at`.
        let mut cursors: Vec<&Column> = self.columns.iter().filter(mapped).collect();
        cursors.retain(|c| c.indexed || c.temporal || c.sequenced);
        cursors.sort_by_key(|c| (!(c.indexed && c.temporal), !c.sequenced, !c.indexed));
        let cursor_candidates: Vec<String> = cursors.iter().map(|c| c.name.clone()).collect();
        let mut sync_modes = vec![SyncMode::FullRefresh];
        if !cursor_candidates.is_empty() {
            sync_modes.push(SyncMode::Incremental);
        }
        StreamInfo {
            name: self.name.clone(),
            namespace: Some(self.schema.clone()),
            json_schema: schema.to_string(),
            sync_modes,
            cursor_candidates,
            primary_key_candidates: if self.primary_key.is_empty() {
                Vec::new()
            } else {
                vec![self.primary_key.clone()]
            },
            estimated_rows: self.estimated_rows,
        }
    }
}

/// A SQL `text[]` literal of `items`.
pub fn text_array(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| escape_literal(s)).collect();
    format!("ARRAY[{}]::text[]", inner.join(","))
}

/// The tables and views of `config.schemas` (or only `only`) the role may
/// select from.
pub fn tables(
    client: &mut Client,
    config: &PgConfig,
    only: Option<(&str, &str)>,
) -> Result<Vec<Table>, PluginError> {
    let filter = match only {
        Some((schema, name)) => format!(
            "n.nspname = {} AND c.relname = {}",
            escape_literal(schema),
            escape_literal(name)
        ),
        None => format!("n.nspname = ANY({})", text_array(&config.schemas)),
    };
    let columns = client
        .query(&format!(
            "SELECT n.nspname, c.relname, c.relkind, c.reltuples::bigint, a.attname, \
                    format_type(a.atttypid, a.atttypmod), t.typname, t.typtype, t.typcategory, \
                    (t.typnamespace = 'pg_catalog'::regnamespace), \
                    coalesce(et.typname, ''), coalesce(et.typtype::text, ''), \
                    coalesce(et.typcategory::text, ''), \
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum), \
                    (a.attidentity <> '' OR coalesce(pg_get_expr(d.adbin, d.adrelid), '') LIKE 'nextval(%') \
             FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A' \
             LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum \
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition \
               AND {filter} AND has_table_privilege(c.oid, 'SELECT') \
             ORDER BY n.nspname, c.relname, a.attnum"
        ))
        .map_err(|e| config.error(e))?;
    let keys = client
        .query(&format!(
            "SELECT n.nspname, c.relname, a.attname \
             FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
             WHERE i.indisprimary AND {filter} \
             ORDER BY n.nspname, c.relname, k.ord"
        ))
        .map_err(|e| config.error(e))?;
    let mut out: Vec<Table> = Vec::new();
    for row in &columns {
        let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let (schema, name) = (get(0), get(1));
        if out
            .last()
            .is_none_or(|t| t.schema != schema || t.name != name)
        {
            out.push(Table {
                schema: schema.clone(),
                name: name.clone(),
                is_view: matches!(get(2).as_str(), "v" | "m"),
                estimated_rows: get(3)
                    .parse::<i64>()
                    .ok()
                    .and_then(|n| u64::try_from(n).ok()),
                columns: Vec::new(),
                primary_key: Vec::new(),
            });
        }
        let t = TypeInfo {
            name: get(6),
            typtype: get(7),
            category: get(8),
            builtin: get(9) == "t",
            elem_name: get(10),
            elem_typtype: get(11),
            elem_category: get(12),
        };
        let pg_type = get(5);
        let mapped = map_type(&t, config.numeric_as);
        let temporal = matches!(t.name.as_str(), "timestamptz" | "timestamp" | "date");
        let schema = match &mapped {
            Ok((_, s)) => {
                let mut s = s.clone();
                if t.builtin {
                    s["x-pg-type"] = Value::String(pg_type.clone());
                }
                s
            }
            Err(_) => Value::Null,
        };
        if let Some(table) = out.last_mut() {
            table.columns.push(Column {
                name: get(4),
                pg_type,
                kind: mapped.map(|(k, _)| k),
                schema,
                indexed: get(13) == "t",
                sequenced: get(14) == "t",
                temporal,
            });
        }
    }
    for row in keys {
        let get = |row: &TextRow, i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let (schema, name, column) = (get(&row, 0), get(&row, 1), get(&row, 2));
        if let Some(t) = out
            .iter_mut()
            .find(|t| t.schema == schema && t.name == name)
        {
            t.primary_key.push(column);
        }
    }
    Ok(out)
}

/// What `pg_type` says of a column's type.
struct TypeInfo {
    name: String,
    typtype: String,
    category: String,
    builtin: bool,
    elem_name: String,
    elem_typtype: String,
    elem_category: String,
}

/// A type's kind and JSON Schema, or why it has none.
fn map_type(t: &TypeInfo, numeric: NumericAs) -> Result<(Kind, Value), String> {
    if t.category == "A" {
        let elem = TypeInfo {
            name: t.elem_name.clone(),
            typtype: t.elem_typtype.clone(),
            category: t.elem_category.clone(),
            builtin: t.builtin,
            elem_name: String::new(),
            elem_typtype: String::new(),
            elem_category: String::new(),
        };
        let (kind, items) = scalar_type(&elem, numeric)
            .map_err(|why| format!("an array of {}: {why}", t.elem_name))?;
        return Ok((
            Kind::Array(Box::new(kind)),
            json!({"type": ["array", "null"], "items": items}),
        ));
    }
    scalar_type(t, numeric)
}

fn scalar_type(t: &TypeInfo, numeric: NumericAs) -> Result<(Kind, Value), String> {
    let typed = |ty: &str| json!({"type": [ty, "null"]});
    let formatted = |f: &str| json!({"type": ["string", "null"], "format": f});
    Ok(match t.name.as_str() {
        "int2" | "int4" | "int8" | "oid" => (Kind::Integer, typed("integer")),
        "float4" | "float8" => (Kind::Float, typed("number")),
        "numeric" => match numeric {
            NumericAs::String => (Kind::Numeric { as_number: false }, formatted("decimal")),
            NumericAs::Number => (Kind::Numeric { as_number: true }, typed("number")),
        },
        "bool" => (Kind::Boolean, typed("boolean")),
        "json" | "jsonb" => (Kind::Json, json!({})),
        "timestamptz" => (Kind::TimestampTz, formatted("date-time")),
        "timestamp" => (Kind::Timestamp, typed("string")),
        "date" => (Kind::Text, formatted("date")),
        "time" => (Kind::Text, formatted("time")),
        "interval" => (Kind::Text, formatted("duration")),
        "uuid" => (Kind::Text, formatted("uuid")),
        "bytea" => (
            Kind::Bytea,
            json!({"type": ["string", "null"], "contentEncoding": "base16"}),
        ),
        "point" | "line" | "lseg" | "box" | "path" | "polygon" | "circle" => {
            return Err(format!("geometric type {} has no JSON mapping", t.name));
        }
        "tsvector" | "tsquery" => {
            return Err(format!("text-search type {} has no JSON mapping", t.name));
        }
        _ => match t.typtype.as_str() {
            "c" => return Err(format!("composite type {} has no JSON mapping", t.name)),
            "r" | "m" => return Err(format!("range type {} has no JSON mapping", t.name)),
            "p" => return Err(format!("pseudo-type {} cannot be read", t.name)),
            // Base types, enums and domains all have a text form.
            _ => (Kind::Text, typed("string")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, typtype: &str, category: &str) -> TypeInfo {
        TypeInfo {
            name: name.into(),
            typtype: typtype.into(),
            category: category.into(),
            builtin: true,
            elem_name: String::new(),
            elem_typtype: String::new(),
            elem_category: String::new(),
        }
    }

    #[test]
    fn types_map_to_json_schema() {
        let m = |n: &str| map_type(&info(n, "b", "N"), NumericAs::String).map(|(_, s)| s);
        assert_eq!(m("int8").unwrap()["type"][0], "integer");
        assert_eq!(m("numeric").unwrap()["format"], "decimal");
        assert_eq!(m("timestamptz").unwrap()["format"], "date-time");
        assert_eq!(m("uuid").unwrap()["format"], "uuid");
        assert_eq!(m("jsonb").unwrap(), json!({}));
        assert!(m("point").unwrap_err().contains("geometric"));
        let number = map_type(&info("numeric", "b", "N"), NumericAs::Number).unwrap();
        assert_eq!(number.0, Kind::Numeric { as_number: true });
        let mut array = info("_int4", "b", "A");
        array.elem_name = "int4".into();
        array.elem_typtype = "b".into();
        let (kind, schema) = map_type(&array, NumericAs::String).unwrap();
        assert_eq!(kind, Kind::Array(Box::new(Kind::Integer)));
        assert_eq!(schema["items"]["type"][0], "integer");
        assert!(map_type(&info("money_range", "r", "R"), NumericAs::String).is_err());
    }
}
