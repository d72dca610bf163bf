//! The postgres destination: exactly-once in every write mode.
//!
//! A write runs in one open transaction from commit to commit. Batches are
//! loaded with `COPY … FROM STDIN`; `commit(seq, state)` merges what upsert
//! streams staged, swaps overwrite tables in on the final commit, writes
//! the marker row into `_weft_sync_state` and commits, all in that one
//! transaction. A crash anywhere loses only the open transaction, and
//! `last-commit` reads the marker back, so the host resumes the source
//! exactly after the rows the destination holds.
//!
//! - `append` loads into the table.
//! - `upsert` loads into a temporary staging table, and each commit runs
//!   `INSERT … SELECT DISTINCT ON (key) … ON CONFLICT (key) DO UPDATE`
//!   (the latest row of a key wins). Tables it creates get the key as
//!   their primary key; an existing table needs a unique index on it.
//! - `overwrite` loads into `<table>__weft_load` (a real table, so its
//!   committed rows survive a crash) and the final commit drops the old
//!   table and renames the new one: readers never see a half-loaded table.
//!
//! Tables are created from the stream's JSON Schema (the exact column types
//! when the source is postgres too), and columns the source grew are added.

use crate::config::{PgConfig, SchemaEvolution};
use crate::copy_text::{self, Kind};
use crate::ndjson;
use crate::source::PG_COPY;
use crate::wire::{Client, WireError};
use postgres_protocol::escape::{escape_identifier, escape_literal};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use weft_plugin_sdk::PluginError;
use weft_plugin_sdk::batch::{self, BatchExt};
use weft_plugin_sdk::connector::{Destination, Writer, stream_schema};
use weft_plugin_sdk::schema::json_type;
use weft_plugin_sdk::wit::{
    Batch, BatchFormat, Checkpoint, CommitMarker, Delivery, WriteMode, WriteRequest,
};

/// The marker table, in the destination schema.
const MARKER_TABLE: &str = "_weft_sync_state";
/// Suffix of an overwrite's load table.
const LOAD_SUFFIX: &str = "__weft_load";

/// Tables in a PostgreSQL database.
pub struct PgDestination;

impl Destination for PgDestination {
    type Config = PgConfig;

    fn formats(&self) -> Vec<BatchFormat> {
        vec![
            BatchFormat::Other(PG_COPY.into()),
            batch::ndjson(),
            BatchFormat::ArrowIpc,
        ]
    }

    fn write_modes(&self) -> Vec<WriteMode> {
        vec![WriteMode::Append, WriteMode::Overwrite, WriteMode::Upsert]
    }

    fn delivery(&self) -> Delivery {
        Delivery::ExactlyOnce
    }

    fn check(&self, config: &PgConfig) -> Result<(), PluginError> {
        let mut client = config.connect()?;
        // Creating the schema is what a write does first; in a transaction
        // rolled back, so a check leaves nothing behind.
        let result = client.execute(&format!(
            "BEGIN; CREATE SCHEMA IF NOT EXISTS {}; ROLLBACK",
            escape_identifier(&config.schema)
        ));
        client.close();
        result.map_err(|e| config.error(e))
    }

    fn open(
        &self,
        config: PgConfig,
        request: WriteRequest,
    ) -> Result<Box<dyn Writer>, PluginError> {
        PgWriter::open(config, request).map(|w| Box::new(w) as Box<dyn Writer>)
    }
}

/// One stream's table.
struct Target {
    stream: String,
    mode: WriteMode,
    /// Quoted `schema.table`.
    table: String,
    /// The table's bare name.
    name: String,
    /// Where COPY goes: the table, the staging table or the load table.
    load: String,
    columns: Vec<String>,
    kinds: Vec<Kind>,
    key: Vec<String>,
    /// The stream's columns that are written, when not all are (COPY text
    /// passed through is cut down to them).
    projection: Option<Vec<usize>>,
}

/// The marker row's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    state: Vec<SavedCheckpoint>,
    /// Overwrite loads not yet swapped in, by table name.
    #[serde(default)]
    loading: BTreeSet<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedCheckpoint {
    stream: Option<String>,
    state: String,
}

/// An open write.
pub struct PgWriter {
    config: PgConfig,
    client: Client,
    targets: Vec<Target>,
    format: BatchFormat,
    /// Which marker row is this write's: the tables it writes.
    scope: String,
    marker: String,
    loading: BTreeSet<String>,
}

impl PgWriter {
    fn open(config: PgConfig, request: WriteRequest) -> Result<Self, PluginError> {
        let mut client = config.connect()?;
        let err = |e| config.error(e);
        let schema = escape_identifier(&config.schema);
        let marker = format!("{schema}.{}", escape_identifier(MARKER_TABLE));
        client
            .execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; \
                 CREATE TABLE IF NOT EXISTS {marker} (\
                   scope text PRIMARY KEY, seq bigint NOT NULL, saved jsonb NOT NULL, \
                   committed_at timestamptz NOT NULL DEFAULT now())"
            ))
            .map_err(err)?;
        let mut names: Vec<String> = request.streams.iter().map(|s| s.name.clone()).collect();
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(PluginError::config(
                "two streams would write the same table; sync them in separate jobs",
            ));
        }
        let scope = format!("{}:{}", config.schema, names.join(","));
        let saved = read_marker(&mut client, &config, &marker, &scope)?
            .map(|(_, s)| s)
            .unwrap_or_default();
        let mut targets = Vec::new();
        for (i, stream) in request.streams.iter().enumerate() {
            let json_schema = stream_schema(stream)?;
            let all = columns_of(&json_schema)?;
            let table = format!("{schema}.{}", escape_identifier(&stream.name));
            let key = stream.primary_key.clone();
            let keep = ensure_table(
                &mut client,
                &config,
                &TableSpec {
                    table: &table,
                    columns: &all,
                    mode: stream.write_mode,
                    key: &key,
                },
            )?;
            let projection = (keep.len() < all.len()).then(|| keep.clone());
            let columns: Vec<DestColumn> = all
                .into_iter()
                .enumerate()
                .filter(|(i, _)| keep.contains(i))
                .map(|(_, c)| c)
                .collect();
            let load = match stream.write_mode {
                WriteMode::Append => table.clone(),
                WriteMode::Upsert => {
                    let stage = format!("weft_stage_{i}");
                    client
                        .execute(&format!(
                            "CREATE TEMP TABLE IF NOT EXISTS {stage} \
                             (LIKE {table} INCLUDING DEFAULTS, _weft_ord bigserial)"
                        ))
                        .map_err(err)?;
                    stage
                }
                WriteMode::Overwrite => {
                    let load = format!(
                        "{schema}.{}",
                        escape_identifier(&format!("{}{LOAD_SUFFIX}", stream.name))
                    );
                    // A load an earlier sync committed part of is continued
                    // (the host resumes the source after it); else a fresh one.
                    if !saved.loading.contains(&stream.name) {
                        client
                            .execute(&format!(
                                "DROP TABLE IF EXISTS {load}; \
                                 CREATE TABLE {load} (LIKE {table} INCLUDING ALL)"
                            ))
                            .map_err(err)?;
                    }
                    load
                }
            };
            targets.push(Target {
                stream: stream.name.clone(),
                mode: stream.write_mode,
                name: stream.name.clone(),
                table,
                load,
                kinds: columns.iter().map(|c| c.kind.clone()).collect(),
                columns: columns.into_iter().map(|c| c.name).collect(),
                key,
                projection,
            });
        }
        client.execute("BEGIN").map_err(err)?;
        Ok(PgWriter {
            config,
            client,
            targets,
            format: request.format,
            scope,
            marker,
            loading: saved.loading,
        })
    }
}

impl Writer for PgWriter {
    fn last_commit(&mut self) -> Result<Option<CommitMarker>, PluginError> {
        let found = read_marker(&mut self.client, &self.config, &self.marker, &self.scope)?;
        Ok(found.map(|(seq, saved)| CommitMarker {
            seq,
            state: saved
                .state
                .into_iter()
                .map(|c| Checkpoint {
                    stream_name: c.stream,
                    state: c.state,
                })
                .collect(),
        }))
    }

    fn write(&mut self, batch: Batch) -> Result<(), PluginError> {
        let target = self
            .targets
            .iter()
            .find(|t| t.stream == batch.stream_name)
            .ok_or_else(|| {
                PluginError::internal(format!("no open stream {:?}", batch.stream_name))
            })?;
        if !same_format(&batch.format, &self.format) {
            return Err(PluginError::internal(format!(
                "a batch came as {:?}, not the agreed {:?}",
                batch.format, self.format
            )));
        }
        let data = match (&batch.format, &target.projection) {
            (BatchFormat::Other(f), None) if f == PG_COPY => batch.data,
            (BatchFormat::Other(f), Some(keep)) if f == PG_COPY => project(&batch.data, keep),
            _ => encode_rows(target, &batch)?,
        };
        if data.is_empty() {
            return Ok(());
        }
        let cols: Vec<String> = target
            .columns
            .iter()
            .map(|c| escape_identifier(c))
            .collect();
        let err = |e| self.config.error(e);
        self.client
            .copy_in(&format!(
                "COPY {} ({}) FROM STDIN",
                target.load,
                cols.join(", ")
            ))
            .map_err(err)?;
        self.client.copy_in_write(&data).map_err(err)?;
        self.client.copy_in_finish().map_err(err)
    }

    fn commit(&mut self, marker: CommitMarker, last: bool) -> Result<(), PluginError> {
        let mut sql = String::new();
        for t in &self.targets {
            match t.mode {
                WriteMode::Upsert => merge(&mut self.client, &self.config, t)?,
                WriteMode::Overwrite if last => {
                    sql.push_str(&format!(
                        "DROP TABLE {table}; ALTER TABLE {load} RENAME TO {name}; ",
                        table = t.table,
                        load = t.load,
                        name = escape_identifier(&t.name)
                    ));
                }
                WriteMode::Overwrite => {
                    self.loading.insert(t.name.clone());
                }
                WriteMode::Append => {}
            }
        }
        if last {
            self.loading.clear();
        }
        let saved = Saved {
            state: marker
                .state
                .into_iter()
                .map(|c| SavedCheckpoint {
                    stream: c.stream_name,
                    state: c.state,
                })
                .collect(),
            loading: self.loading.clone(),
        };
        let saved = serde_json::to_string(&saved)
            .map_err(|e| PluginError::internal(format!("the marker does not serialise: {e}")))?;
        sql.push_str(&format!(
            "INSERT INTO {m} (scope, seq, saved) VALUES ({scope}, {seq}, {saved}::jsonb) \
             ON CONFLICT (scope) DO UPDATE SET seq = EXCLUDED.seq, saved = EXCLUDED.saved, \
             committed_at = now(); COMMIT; BEGIN",
            m = self.marker,
            scope = escape_literal(&self.scope),
            seq = marker.seq,
            saved = escape_literal(&saved),
        ));
        self.client
            .execute(&sql)
            .map_err(|e| self.config.error(e))?;
        if last {
            // The load tables were renamed: later writes (none in this
            // sync) would go to the table itself.
            for t in &mut self.targets {
                if t.mode == WriteMode::Overwrite {
                    t.load = t.table.clone();
                }
            }
        }
        Ok(())
    }

    fn abort(&mut self) {
        let _ = self.client.execute("ROLLBACK");
    }
}

fn same_format(a: &BatchFormat, b: &BatchFormat) -> bool {
    match (a, b) {
        (BatchFormat::ArrowIpc, BatchFormat::ArrowIpc) => true,
        (BatchFormat::Other(x), BatchFormat::Other(y)) => x == y,
        _ => false,
    }
}

/// `INSERT … ON CONFLICT` from an upsert stream's staging table, the
/// latest row of each key winning, then emptying the staging table.
/// Merges an upsert's staged rows into its table. Most batches hold each
/// key once, so they are merged as they are, without sorting; PostgreSQL
/// refuses a statement that would touch a row twice (21000), and only
/// then is the latest row of each key picked out first.
fn merge(client: &mut Client, config: &PgConfig, t: &Target) -> Result<(), PluginError> {
    match client.execute(&format!(
        "SAVEPOINT weft_merge; {} RELEASE SAVEPOINT weft_merge",
        merge_sql(t, false)
    )) {
        Err(WireError::Server(e)) if e.code == "21000" => client.execute(&format!(
            "ROLLBACK TO SAVEPOINT weft_merge; {}",
            merge_sql(t, true)
        )),
        other => other,
    }
    .map_err(|e| config.error(e))
}

/// The merge of `t`'s staging table: `deduplicate` keeps the latest row of
/// each key (the highest `_weft_ord`). Without it, the staging table is
/// read in the order COPY wrote it (a fresh heap, a sequential scan), so a
/// repeated key still fails with 21000 rather than merging out of order.
fn merge_sql(t: &Target, deduplicate: bool) -> String {
    let cols: Vec<String> = t.columns.iter().map(|c| escape_identifier(c)).collect();
    let key: Vec<String> = t.key.iter().map(|c| escape_identifier(c)).collect();
    let (mut updates, mut current, mut incoming) = (Vec::new(), Vec::new(), Vec::new());
    for (c, kind) in t.columns.iter().zip(&t.kinds) {
        if t.key.contains(c) {
            continue;
        }
        let c = escape_identifier(c);
        updates.push(format!("{c} = EXCLUDED.{c}"));
        // json, arrays of it and types outside the kinds have no equality
        // operator; their text does.
        let cast = match kind {
            Kind::Json | Kind::Array(_) | Kind::Text => "::text",
            _ => "",
        };
        current.push(format!("t.{c}{cast}"));
        incoming.push(format!("EXCLUDED.{c}{cast}"));
    }
    // A row that is already as it would become is not written again: a
    // re-sync of mostly unchanged rows leaves no dead tuples behind.
    let action = if updates.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!(
            "DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})",
            updates.join(", "),
            current.join(", "),
            incoming.join(", ")
        )
    };
    let select = if deduplicate {
        format!(
            "SELECT DISTINCT ON ({key}) {cols} FROM {stage} ORDER BY {key}, _weft_ord DESC",
            key = key.join(", "),
            cols = cols.join(", "),
            stage = t.load,
        )
    } else {
        format!("SELECT {} FROM {}", cols.join(", "), t.load)
    };
    format!(
        "INSERT INTO {table} AS t ({cols}) {select} ON CONFLICT ({key}) {action}; TRUNCATE {stage}; ",
        table = t.table,
        cols = cols.join(", "),
        key = key.join(", "),
        stage = t.load,
    )
}

fn read_marker(
    client: &mut Client,
    config: &PgConfig,
    marker: &str,
    scope: &str,
) -> Result<Option<(u64, Saved)>, PluginError> {
    let rows = client
        .query(&format!(
            "SELECT seq, saved::text FROM {marker} WHERE scope = {}",
            escape_literal(scope)
        ))
        .map_err(|e| config.error(e))?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let seq = row
        .first()
        .cloned()
        .flatten()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| PluginError::data(format!("{marker} holds a marker without a seq")))?;
    let saved: Saved = row
        .get(1)
        .cloned()
        .flatten()
        .and_then(|s| serde_json::from_str(&s).ok())
        .ok_or_else(|| PluginError::data(format!("{marker} holds a marker that does not parse")))?;
    Ok(Some((seq, saved)))
}

/// A column to write: its name, SQL type and how values are encoded.
struct DestColumn {
    name: String,
    sql_type: String,
    kind: Kind,
}

fn columns_of(schema: &Value) -> Result<Vec<DestColumn>, PluginError> {
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| PluginError::config("the stream's schema has no properties to write"))?;
    Ok(props
        .iter()
        .map(|(name, prop)| {
            let (sql_type, kind) = sql_type(prop);
            DestColumn {
                name: name.clone(),
                sql_type,
                kind,
            }
        })
        .collect())
}

/// The SQL type for a property: the source's own `x-pg-type` when it is a
/// plain built-in type name, else one mapped from the JSON Schema.
fn sql_type(prop: &Value) -> (String, Kind) {
    let declared = prop
        .get("x-pg-type")
        .and_then(Value::as_str)
        .filter(|t| is_plain_type(t));
    let format = prop.get("format").and_then(Value::as_str);
    let kind_of = |t: &str| -> Kind {
        if t.ends_with("[]") {
            Kind::Array(Box::new(Kind::Text))
        } else if t == "json" || t == "jsonb" {
            Kind::Json
        } else if t == "bytea" {
            Kind::Bytea
        } else {
            Kind::Text
        }
    };
    if let Some(t) = declared {
        return (t.to_owned(), kind_of(t));
    }
    let t = match (json_type(prop), format) {
        (Some("integer"), _) => "bigint",
        (Some("number"), _) => "double precision",
        (Some("boolean"), _) => "boolean",
        (Some("string"), Some("date-time")) => "timestamptz",
        (Some("string"), Some("date")) => "date",
        (Some("string"), Some("time")) => "time",
        (Some("string"), Some("uuid")) => "uuid",
        (Some("string"), Some("decimal")) => "numeric",
        (Some("string"), _)
            if prop.get("contentEncoding").and_then(Value::as_str) == Some("base16") =>
        {
            "bytea"
        }
        (Some("string"), _) => "text",
        _ => "jsonb",
    };
    (t.to_owned(), kind_of(t))
}

/// A type name safe to splice into DDL: lowercase words, an optional
/// `(n[,m])` and `[]` suffixes (`character varying(20)`, `integer[]`).
fn is_plain_type(t: &str) -> bool {
    let base = t.trim_end_matches("[]");
    let (words, args) = match base.split_once('(') {
        Some((w, rest)) => (w, Some(rest)),
        None => (base, None),
    };
    let words_ok = !words.is_empty()
        && words
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b' ' || b == b'_');
    let args_ok = args.is_none_or(|a| {
        a.strip_suffix(')').is_some_and(|inner| {
            !inner.is_empty()
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b',' || b == b' ')
        })
    });
    words_ok && args_ok && t.len() <= 64
}

/// The table a stream is written to.
struct TableSpec<'a> {
    /// Quoted `schema.table`.
    table: &'a str,
    columns: &'a [DestColumn],
    mode: WriteMode,
    key: &'a [String],
}

/// Creates the table when missing (with the key as primary key for
/// upsert), else treats the columns it lacks by the schema evolution
/// policy; the indices of the columns that are written.
fn ensure_table(
    client: &mut Client,
    config: &PgConfig,
    spec: &TableSpec<'_>,
) -> Result<Vec<usize>, PluginError> {
    let TableSpec {
        table,
        columns,
        mode,
        key,
    } = *spec;
    let err = |e| config.error(e);
    let existing: Vec<String> = client
        .query(&format!(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass({})              AND attnum > 0 AND NOT attisdropped",
            escape_literal(table)
        ))
        .map_err(err)?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    let all: Vec<usize> = (0..columns.len()).collect();
    if existing.is_empty() {
        let mut defs: Vec<String> = columns
            .iter()
            .map(|c| format!("{} {}", escape_identifier(&c.name), c.sql_type))
            .collect();
        if mode == WriteMode::Upsert && !key.is_empty() {
            let k: Vec<String> = key.iter().map(|c| escape_identifier(c)).collect();
            defs.push(format!("PRIMARY KEY ({})", k.join(", ")));
        }
        client
            .execute(&format!("CREATE TABLE {table} ({})", defs.join(", ")))
            .map_err(err)?;
        return Ok(all);
    }
    let missing: Vec<usize> = all
        .iter()
        .copied()
        .filter(|i| !existing.contains(&columns[*i].name))
        .collect();
    let names =
        |idx: &[usize]| -> Vec<&str> { idx.iter().map(|i| columns[*i].name.as_str()).collect() };
    let keep = match config.schema_evolution {
        SchemaEvolution::Propagate => {
            let mut sql = String::new();
            for i in &missing {
                let c = &columns[*i];
                sql.push_str(&format!(
                    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {} {}; ",
                    escape_identifier(&c.name),
                    c.sql_type
                ));
            }
            if !sql.is_empty() {
                client.execute(&sql).map_err(err)?;
            }
            all
        }
        SchemaEvolution::Ignore => all.into_iter().filter(|i| !missing.contains(i)).collect(),
        SchemaEvolution::Fail if !missing.is_empty() => {
            return Err(PluginError::config(format!(
                "{table} lacks the source's columns {:?} and schemaEvolution is `fail`",
                names(&missing)
            )));
        }
        SchemaEvolution::Fail => all,
    };
    if let Some(k) = key
        .iter()
        .find(|k| !keep.iter().any(|i| &columns[*i].name == *k))
    {
        return Err(PluginError::config(format!(
            "{table} has no key column {k:?} to write"
        )));
    }
    if mode == WriteMode::Upsert && !key.is_empty() {
        ensure_unique_key(client, config, table, key)?;
    }
    Ok(keep)
}

/// COPY text lines cut down to the fields at `keep`.
fn project(data: &[u8], keep: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for line in data.split_inclusive(|b| *b == b'\n') {
        let mut first = true;
        for (i, field) in copy_text::split_fields(line).enumerate() {
            if keep.contains(&i) {
                if !first {
                    out.push(b'\t');
                }
                out.extend_from_slice(field);
                first = false;
            }
        }
        out.push(b'\n');
    }
    out
}

/// Upserts need `ON CONFLICT (key)` to find a unique index on exactly the
/// key; an existing table without one gets it (which fails, naming the
/// table, if it already holds duplicate keys).
fn ensure_unique_key(
    client: &mut Client,
    config: &PgConfig,
    table: &str,
    key: &[String],
) -> Result<(), PluginError> {
    let mut wanted: Vec<String> = key.to_vec();
    wanted.sort();
    let found = client
        .query(&format!(
            "SELECT (SELECT string_agg(a.attname::text, ',' ORDER BY a.attname) FROM pg_attribute a                      WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey))              FROM pg_index i WHERE i.indrelid = {}::regclass AND i.indisunique                AND i.indpred IS NULL AND i.indexprs IS NULL",
            escape_literal(table)
        ))
        .map_err(|e| config.error(e))?;
    let joined = wanted.join(",");
    if found
        .iter()
        .any(|r| r.first().cloned().flatten().as_deref() == Some(joined.as_str()))
    {
        return Ok(());
    }
    let cols: Vec<String> = key.iter().map(|c| escape_identifier(c)).collect();
    client
        .execute(&format!(
            "CREATE UNIQUE INDEX ON {table} ({})",
            cols.join(", ")
        ))
        .map_err(|e| {
            let e = config.error(e);
            PluginError::new(
                e.kind,
                format!(
                    "upsert needs a unique key ({}) on {table}, and creating one failed: {}",
                    key.join(", "),
                    e.message
                ),
            )
        })
}

/// A batch's rows as COPY text, columns in the target's order.
fn encode_rows(target: &Target, batch: &Batch) -> Result<Vec<u8>, PluginError> {
    let mut out = Vec::with_capacity(batch.data.len());
    if batch::is_ndjson(&batch.format) {
        ndjson::encode_lines(
            &batch.data,
            &target.columns,
            &target.kinds,
            &batch.stream_name,
            &mut out,
        )?;
        return Ok(out);
    }
    for row in batch.json_rows()? {
        for (i, (col, kind)) in target.columns.iter().zip(&target.kinds).enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            copy_text::encode_into(row.get(col).unwrap_or(&Value::Null), kind, &mut out);
        }
        out.push(b'\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_come_from_the_source_or_the_json_schema() {
        let t = |p: Value| sql_type(&p).0;
        assert_eq!(t(json!({"type": ["integer", "null"]})), "bigint");
        assert_eq!(
            t(json!({"type": "string", "format": "date-time"})),
            "timestamptz"
        );
        assert_eq!(t(json!({"type": "array"})), "jsonb");
        assert_eq!(t(json!({})), "jsonb");
        assert_eq!(
            t(json!({"type": "string", "x-pg-type": "character varying(20)"})),
            "character varying(20)"
        );
        assert_eq!(t(json!({"x-pg-type": "numeric(12,2)"})), "numeric(12,2)");
        assert_eq!(t(json!({"x-pg-type": "integer[]"})), "integer[]");
        // Anything that could smuggle SQL falls back to the mapping.
        assert_eq!(
            t(json!({"type": "string", "x-pg-type": "text); DROP TABLE x; --"})),
            "text"
        );
        assert_eq!(
            t(json!({"type": "string", "x-pg-type": "\"Evil\""})),
            "text"
        );
    }

    #[test]
    fn projected_copy_text_keeps_the_chosen_fields() {
        let data = b"1\ta\\tb\tx\n2\t\\N\ty\n";
        assert_eq!(project(data, &[0, 2]), b"1\tx\n2\ty\n");
        assert_eq!(project(data, &[1]), b"a\\tb\n\\N\n");
    }

    #[test]
    fn upserts_merge_the_latest_row_of_each_key() {
        let t = Target {
            stream: "s".into(),
            mode: WriteMode::Upsert,
            table: "\"public\".\"s\"".into(),
            name: "s".into(),
            load: "weft_stage_0".into(),
            columns: vec!["id".into(), "v".into()],
            kinds: vec![Kind::Integer, Kind::Text],
            key: vec!["id".into()],
            projection: None,
        };
        assert!(!merge_sql(&t, false).contains("DISTINCT ON"));
        let sql = merge_sql(&t, true);
        assert!(sql.contains("DISTINCT ON (\"id\")"));
        assert!(sql.contains("ORDER BY \"id\", _weft_ord DESC"));
        assert!(sql.contains("DO UPDATE SET \"v\" = EXCLUDED.\"v\""));
    }
}
