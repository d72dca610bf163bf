//! The postgres source: each table or view of the configured schemas is a
//! stream, read with `COPY (SELECT …) TO STDOUT` in chunks.
//!
//! - **Full refresh** of a table with a primary key reads keyset chunks
//!   (`WHERE (k) > (last) ORDER BY k LIMIT chunkRows`); a table without one
//!   reads `ctid` page ranges; a view is one chunk. Each chunk ends with a
//!   checkpoint (`afterKey` / `nextPage`), so a stopped sync resumes at the
//!   next chunk, and each stream is read in one `REPEATABLE READ`
//!   transaction: one consistent snapshot per stream.
//! - **Incremental** reads rows past the saved cursor with the key as a
//!   tie-break, `(cursor, k) > (c, p)`, up to an upper bound fixed when the
//!   stream's read starts (kept in the state while it runs), so rows
//!   written during the sync wait for the next one instead of being half
//!   read. Rows whose cursor is NULL are not read incrementally.
//!
//! Batches are the COPY text itself when the destination takes it
//! ([`PG_COPY`], no row is decoded), else Arrow IPC.

use crate::catalog::{self, Table};
use crate::config::PgConfig;
use crate::copy_text::{self, Kind};
use crate::wire::Client;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use weft_plugin_sdk::PluginError;
use weft_plugin_sdk::batch::BatchBuilder;
use weft_plugin_sdk::connector::{Reader, Source, saved_state, stream_schema};
use weft_plugin_sdk::wit::{
    Batch, BatchFormat, Checkpoint, ConfiguredStream, ReadItem, ReadLimits, ReadRequest,
    StreamInfo, StreamProgress, StreamStatus, SyncMode,
};

/// The pass-through format: COPY text rows, columns in the stream schema's order.
pub const PG_COPY: &str = "postgres-copy-text";

/// Tables and views of a PostgreSQL database.
pub struct PgSource;

impl Source for PgSource {
    type Config = PgConfig;

    fn formats(&self) -> Vec<BatchFormat> {
        vec![BatchFormat::Other(PG_COPY.into()), BatchFormat::ArrowIpc]
    }

    fn check(&self, config: &PgConfig) -> Result<(), PluginError> {
        let mut client = config.connect()?;
        let found = client
            .query(&format!(
                "SELECT s FROM unnest({}) s WHERE NOT EXISTS \
                 (SELECT 1 FROM pg_namespace n WHERE n.nspname = s)",
                catalog::text_array(&config.schemas)
            ))
            .map_err(|e| config.error(e))?;
        client.close();
        let missing: Vec<String> = found
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(PluginError::config(format!(
                "database {:?} at {} has no schema {}",
                config.database,
                config.address(),
                missing.join(", ")
            )))
        }
    }

    fn discover(&self, config: &PgConfig) -> Result<Vec<StreamInfo>, PluginError> {
        let mut client = config.connect()?;
        let tables = catalog::tables(&mut client, config, None)?;
        client.close();
        Ok(tables.iter().map(Table::stream_info).collect())
    }

    fn read(&self, config: PgConfig, request: ReadRequest) -> Result<Box<dyn Reader>, PluginError> {
        let mut client = config.connect()?;
        let mut plans = VecDeque::new();
        for stream in &request.streams {
            plans.push_back(plan(&mut client, &config, stream, &request.state)?);
        }
        Ok(Box::new(PgReader {
            config,
            client,
            format: request.format,
            plans,
            queue: VecDeque::new(),
        }))
    }
}

/// A stream's position, as its checkpoints hold it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamState {
    /// Full refresh by key: the last key read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after_key: Option<Vec<Option<String>>>,
    /// Full refresh by page: the next page to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_page: Option<u64>,
    /// Incremental: the cursor value of the last row read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    /// Incremental: the key of the last row read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cursor_key: Option<Vec<Option<String>>>,
    /// Incremental: the bound fixed when the current read began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upper: Option<String>,
    /// The last read reached the end.
    #[serde(default)]
    complete: bool,
}

/// How a stream is cut into chunks.
#[derive(Debug, Clone)]
enum Strategy {
    /// Keyset chunks; indices of the key columns among the fields.
    Key(Vec<usize>),
    /// `ctid` page ranges.
    Pages,
    /// One chunk (views).
    Whole,
    /// Incremental: the cursor's index and the key's indices.
    Cursor { cursor: usize, key: Vec<usize> },
}

/// One stream's read.
struct StreamPlan {
    stream: ConfiguredStream,
    schema: Value,
    table: Table,
    fields: Vec<String>,
    kinds: Vec<Kind>,
    strategy: Strategy,
    state: StreamState,
    started: bool,
    copying: bool,
    finished: bool,
    chunk_rows: u64,
    last_line: Option<bytes::Bytes>,
    /// Pages: the table's size when the read began, and pages per chunk.
    pages: (u64, u64),
}

fn plan(
    client: &mut Client,
    config: &PgConfig,
    stream: &ConfiguredStream,
    saved: &[Checkpoint],
) -> Result<StreamPlan, PluginError> {
    let namespace = stream.namespace.as_deref().unwrap_or("public");
    let table = catalog::tables(client, config, Some((namespace, &stream.name)))?
        .into_iter()
        .next()
        .ok_or_else(|| {
            PluginError::config(format!(
                "database {:?} has no table or view {namespace}.{} the role can read",
                config.database, stream.name
            ))
        })?;
    let schema = stream_schema(stream)?;
    let fields: Vec<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let mut kinds = Vec::new();
    for f in &fields {
        let column = table.column(f).ok_or_else(|| {
            PluginError::config(format!(
                "{}.{} has no column {f:?} any more; update the job",
                table.schema, table.name
            ))
        })?;
        kinds.push(column.kind.clone().map_err(|why| {
            PluginError::config(format!(
                "column {f:?} of {}.{} cannot be synced: {why}; leave it out of the job's fields",
                table.schema, table.name
            ))
        })?);
    }
    let index = |name: &String| fields.iter().position(|f| f == name);
    let key: Option<Vec<usize>> = {
        let pk = if stream.primary_key.is_empty() {
            &table.primary_key
        } else {
            &stream.primary_key
        };
        (!pk.is_empty())
            .then(|| pk.iter().map(index).collect::<Option<Vec<_>>>())
            .flatten()
    };
    let strategy = match stream.sync_mode {
        SyncMode::Incremental => {
            let cursor = stream.cursor_field.as_ref().ok_or_else(|| {
                PluginError::config(format!(
                    "stream {:?} is incremental but has no cursor field",
                    stream.name
                ))
            })?;
            Strategy::Cursor {
                cursor: index(cursor).ok_or_else(|| {
                    PluginError::config(format!(
                        "the cursor {cursor:?} is not among the fields of {:?}",
                        stream.name
                    ))
                })?,
                key: key.unwrap_or_default(),
            }
        }
        SyncMode::FullRefresh => match key {
            Some(k) if !table.is_view => Strategy::Key(k),
            _ if table.is_view => Strategy::Whole,
            _ => Strategy::Pages,
        },
    };
    let mut state: StreamState = saved_state(saved, &stream.name)?.unwrap_or_default();
    if state.complete && stream.sync_mode == SyncMode::FullRefresh {
        state = StreamState::default();
    }
    Ok(StreamPlan {
        stream: stream.clone(),
        schema,
        table,
        fields,
        kinds,
        strategy,
        state,
        started: false,
        copying: false,
        finished: false,
        chunk_rows: 0,
        last_line: None,
        pages: (0, 1),
    })
}

/// An open read.
pub struct PgReader {
    config: PgConfig,
    client: Client,
    format: BatchFormat,
    plans: VecDeque<StreamPlan>,
    queue: VecDeque<ReadItem>,
}

impl Reader for PgReader {
    fn next(&mut self, limits: &ReadLimits) -> Result<ReadItem, PluginError> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Ok(item);
            }
            let Some(plan) = self.plans.front_mut() else {
                return Ok(ReadItem::Done);
            };
            if !plan.started {
                start(&mut self.client, &self.config, plan)?;
                self.queue.push_back(status(plan, StreamStatus::Started));
                continue;
            }
            if !plan.copying {
                if plan.finished {
                    self.client
                        .execute("COMMIT")
                        .map_err(|e| self.config.error(e))?;
                    self.queue.push_back(status(plan, StreamStatus::Complete));
                    self.plans.pop_front();
                    continue;
                }
                let sql = chunk_sql(&self.config, plan);
                self.client
                    .copy_out(&sql)
                    .map_err(|e| self.config.error(e))?;
                plan.copying = true;
                plan.chunk_rows = 0;
                plan.last_line = None;
            }
            if let Some(batch) = fill(&mut self.client, &self.config, plan, &self.format, limits)? {
                if !plan.copying {
                    end_chunk(&self.config, plan, &mut self.queue)?;
                }
                return Ok(ReadItem::Batch(batch));
            }
            if !plan.copying {
                end_chunk(&self.config, plan, &mut self.queue)?;
            }
        }
    }
}

fn status(plan: &StreamPlan, status: StreamStatus) -> ReadItem {
    ReadItem::StreamStatus(StreamProgress {
        stream_name: plan.stream.name.clone(),
        status,
        estimated_rows: plan.table.estimated_rows,
    })
}

/// Opens the stream's snapshot and fixes what the read is bounded by.
fn start(client: &mut Client, config: &PgConfig, plan: &mut StreamPlan) -> Result<(), PluginError> {
    client
        .execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .map_err(|e| config.error(e))?;
    plan.started = true;
    let table = plan.table.qualified();
    match &plan.strategy {
        Strategy::Pages => {
            let rows = client
                .query(&format!(
                    "SELECT pg_relation_size({lit}::regclass) / current_setting('block_size')::bigint, \
                            greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = {lit}::regclass",
                    lit = escape_literal(&table)
                ))
                .map_err(|e| config.error(e))?;
            let num = |i: usize| {
                rows.first()
                    .and_then(|r| r.get(i).cloned().flatten())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let (pages, tuples) = (num(0), num(1));
            let per_page = tuples.checked_div(pages).unwrap_or(1).max(1);
            plan.pages = (pages, (plan_chunk_rows(config) / per_page).max(1));
            if plan.state.next_page.is_none() {
                plan.state.next_page = Some(0);
            }
        }
        Strategy::Cursor { cursor, .. } => {
            if plan.state.upper.is_none() {
                let c = escape_identifier(&plan.fields[*cursor]);
                let rows = client
                    .query(&format!("SELECT max({c})::text FROM {table}"))
                    .map_err(|e| config.error(e))?;
                plan.state.upper = rows.first().and_then(|r| r.first().cloned().flatten());
                if plan.state.upper.is_none() {
                    // Nothing to read (empty, or every cursor is NULL).
                    plan.finished = true;
                    plan.state.complete = true;
                }
            }
        }
        Strategy::Key(_) | Strategy::Whole => {}
    }
    plan.state.complete = plan.finished;
    Ok(())
}

fn plan_chunk_rows(config: &PgConfig) -> u64 {
    config.chunk_rows.max(1)
}

/// The next chunk's `COPY … TO STDOUT`.
fn chunk_sql(config: &PgConfig, plan: &StreamPlan) -> String {
    let cols: Vec<String> = plan.fields.iter().map(|f| escape_identifier(f)).collect();
    let table = plan.table.qualified();
    let limit = plan_chunk_rows(config);
    let names = |idx: &[usize]| -> String {
        idx.iter()
            .map(|i| escape_identifier(&plan.fields[*i]))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let literals = |values: &[Option<String>]| -> String {
        values
            .iter()
            .map(|v| v.as_deref().map_or("NULL".to_owned(), escape_literal))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let select = format!("SELECT {} FROM {table}", cols.join(", "));
    let query = match &plan.strategy {
        Strategy::Key(key) => {
            let k = names(key);
            match &plan.state.after_key {
                Some(after) => format!(
                    "{select} WHERE ({k}) > ({}) ORDER BY {k} LIMIT {limit}",
                    literals(after)
                ),
                None => format!("{select} ORDER BY {k} LIMIT {limit}"),
            }
        }
        Strategy::Pages => {
            let from = plan.state.next_page.unwrap_or(0);
            let to = from.saturating_add(plan.pages.1);
            format!("{select} WHERE ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid")
        }
        Strategy::Whole => select,
        Strategy::Cursor { cursor, key } => {
            let c = escape_identifier(&plan.fields[*cursor]);
            let upper = plan
                .state
                .upper
                .as_deref()
                .map_or("NULL".to_owned(), escape_literal);
            let mut order = vec![c.clone()];
            if !key.is_empty() {
                order.push(names(key));
            }
            let order = order.join(", ");
            let past = match (&plan.state.cursor, &plan.state.cursor_key) {
                (Some(last), Some(last_key)) if !key.is_empty() => {
                    let mut values = vec![Some(last.clone())];
                    values.extend(last_key.iter().cloned());
                    format!(" AND ({order}) > ({})", literals(&values))
                }
                (Some(last), _) => format!(" AND {c} > {}", escape_literal(last)),
                (None, _) => String::new(),
            };
            // Without a key, rows sharing a cursor value cannot be split
            // between chunks: read them all at once.
            let limit = if key.is_empty() {
                String::new()
            } else {
                format!(" LIMIT {limit}")
            };
            format!("{select} WHERE {c} <= {upper}{past} ORDER BY {order}{limit}")
        }
    };
    format!("COPY ({query}) TO STDOUT")
}

/// Reads rows of the open chunk into one batch, within `limits`; the chunk
/// is over when `plan.copying` turns false.
fn fill(
    client: &mut Client,
    config: &PgConfig,
    plan: &mut StreamPlan,
    format: &BatchFormat,
    limits: &ReadLimits,
) -> Result<Option<Batch>, PluginError> {
    let deadline = Instant::now() + Duration::from_millis(u64::from(limits.max_millis.max(1)));
    let max_rows = limits.max_rows.max(1);
    let pass_through = matches!(format, BatchFormat::Other(f) if f == PG_COPY);
    let mut raw: Vec<u8> = Vec::new();
    let mut builder = if pass_through {
        None
    } else {
        Some(BatchBuilder::new(
            plan.stream.name.clone(),
            &plan.schema,
            format,
        )?)
    };
    let mut rows: u32 = 0;
    let mut bytes: u64 = 0;
    loop {
        let Some(line) = client.copy_out_next().map_err(|e| config.error(e))? else {
            plan.copying = false;
            break;
        };
        bytes += line.len() as u64;
        match &mut builder {
            None => raw.extend_from_slice(&line),
            Some(b) => b.push_value(decode_row(plan, &line))?,
        }
        rows += 1;
        plan.chunk_rows += 1;
        plan.last_line = Some(line);
        if rows >= max_rows || bytes >= limits.max_bytes || Instant::now() >= deadline {
            break;
        }
    }
    if rows == 0 {
        return Ok(None);
    }
    Ok(Some(match builder {
        None => Batch {
            stream_name: plan.stream.name.clone(),
            format: format.clone(),
            data: raw,
            rows,
        },
        Some(mut b) => b.finish()?,
    }))
}

fn decode_row(plan: &StreamPlan, line: &[u8]) -> Value {
    let mut row = Map::with_capacity(plan.fields.len());
    for ((field, kind), text) in plan
        .fields
        .iter()
        .zip(&plan.kinds)
        .zip(copy_text::split_fields(line))
    {
        let value = match copy_text::unescape(text) {
            None => Value::Null,
            Some(t) => copy_text::decode(&t, kind),
        };
        row.insert(field.clone(), value);
    }
    Value::Object(row)
}

/// The values at `idx` of the chunk's last row, unescaped.
fn values_at(plan: &StreamPlan, idx: &[usize]) -> Option<Vec<Option<String>>> {
    let line = plan.last_line.as_ref()?;
    let fields: Vec<&[u8]> = copy_text::split_fields(line).collect();
    idx.iter()
        .map(|i| {
            fields
                .get(*i)
                .map(|f| copy_text::unescape(f).map(|t| t.into_owned()))
        })
        .collect()
}

/// Records where the finished chunk leaves the stream and queues its checkpoint.
fn end_chunk(
    config: &PgConfig,
    plan: &mut StreamPlan,
    queue: &mut VecDeque<ReadItem>,
) -> Result<(), PluginError> {
    let full = plan.chunk_rows >= plan_chunk_rows(config);
    match plan.strategy.clone() {
        Strategy::Key(key) => {
            if let Some(after) = values_at(plan, &key) {
                plan.state.after_key = Some(after);
            }
            plan.finished = !full;
        }
        Strategy::Pages => {
            let next = plan
                .state
                .next_page
                .unwrap_or(0)
                .saturating_add(plan.pages.1);
            plan.state.next_page = Some(next);
            plan.finished = next >= plan.pages.0;
        }
        Strategy::Whole => plan.finished = true,
        Strategy::Cursor { cursor, key } => {
            if let Some(mut values) = values_at(plan, &[cursor]) {
                plan.state.cursor = values.pop().flatten();
                plan.state.cursor_key = if key.is_empty() {
                    None
                } else {
                    values_at(plan, &key)
                };
            }
            plan.finished = key.is_empty() || !full;
            if plan.finished {
                plan.state.upper = None;
            }
        }
    }
    plan.state.complete = plan.finished;
    let state = serde_json::to_string(&plan.state)
        .map_err(|e| PluginError::internal(format!("a checkpoint does not serialise: {e}")))?;
    queue.push_back(ReadItem::Checkpoint(Checkpoint {
        stream_name: Some(plan.stream.name.clone()),
        state,
    }));
    Ok(())
}
