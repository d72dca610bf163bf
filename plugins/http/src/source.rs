//! The source: each configured endpoint a stream, read page by page with a
//! checkpoint after each page, so a stopped sync resumes at the next page.
//!
//! State per stream: `{"cursor": v}` after a complete incremental read (the
//! highest cursor seen), `{"reading": {"next", "since", "max"}}` in the
//! middle of one. Incremental reads send the saved cursor as `cursorParam`
//! when configured and keep records whose cursor is at least the saved
//! one: the boundary's records come again (at-least-once; upsert by
//! primary key drops the repeats).

use crate::client::{Client, ClientConfig, redacted};
use crate::config::{Pagination, SourceConfig, StreamConfig, check_source};
use crate::url::{Origin, link_next, with_param};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::collections::VecDeque;
use url::Url;
use weft_plugin_sdk::PluginError;
use weft_plugin_sdk::batch::BatchBuilder;
use weft_plugin_sdk::connector::{Reader, Source, saved_state, stream_info, stream_schema};
use weft_plugin_sdk::schema::Inference;
use weft_plugin_sdk::wit::{
    Checkpoint, ConfiguredStream, ReadItem, ReadLimits, ReadRequest, StreamInfo, StreamProgress,
    StreamStatus, SyncMode,
};

/// Fields offered as cursors when present, best first.
const CURSOR_NAMES: &[&str] = &[
    "updated_at",
    "updatedAt",
    "modified_at",
    "modifiedAt",
    "created_at",
    "createdAt",
];
/// Records of the first page used to infer a schema.
const SAMPLE: usize = 200;

/// Paginated JSON APIs.
pub struct HttpSource;

/// Where a stream's next page is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Position {
    Offset(u64),
    Page(u64),
    Cursor(String),
    Url(String),
}

/// A read in progress.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reading {
    /// The next page; none for the first.
    #[serde(default)]
    next: Option<Position>,
    /// The cursor the read started from.
    #[serde(default)]
    since: Option<Value>,
    /// The highest cursor seen so far.
    #[serde(default)]
    max: Option<Value>,
}

/// A stream's saved state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StreamState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cursor: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reading: Option<Reading>,
}

/// One endpoint: its origin, client and configuration.
struct Endpoint<'a> {
    origin: &'a Origin,
    client: &'a Client,
    stream: &'a StreamConfig,
}

/// One page's records and where the next page is.
struct Page {
    records: Vec<Map<String, Value>>,
    next: Option<Position>,
}

impl Endpoint<'_> {
    /// The URL of the page at `position` (none: the first).
    fn url(&self, position: Option<&Position>, since: Option<&Value>) -> Result<Url, PluginError> {
        if let Some(Position::Url(url)) = position {
            // A saved URL may have been edited: it must stay on the origin.
            return self.origin.next_page(self.origin.url(), url);
        }
        let since_text = since.map(cursor_text);
        let mut params: Vec<(&str, &str)> = self
            .stream
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let (Some(param), Some(since)) = (&self.stream.cursor_param, &since_text) {
            params.push((param, since));
        }
        let first = self.origin.endpoint(&self.stream.path, params)?;
        Ok(match (&self.stream.pagination, position) {
            (Pagination::Offset(o), p) => {
                let offset = match p {
                    Some(Position::Offset(k)) => *k,
                    _ => 0,
                };
                let url = with_param(&first, &o.limit_param, &o.page_size.to_string());
                with_param(&url, &o.offset_param, &offset.to_string())
            }
            (Pagination::Page(p), position) => {
                let page = match position {
                    Some(Position::Page(n)) => *n,
                    _ => p.first_page,
                };
                let mut url = with_param(&first, &p.page_param, &page.to_string());
                if let (Some(param), Some(size)) = (&p.size_param, p.page_size) {
                    url = with_param(&url, param, &size.to_string());
                }
                url
            }
            (Pagination::Cursor(c), Some(Position::Cursor(cursor))) => {
                with_param(&first, &c.cursor_param, cursor)
            }
            _ => first,
        })
    }

    /// Fetches the page at `position`.
    fn fetch(
        &self,
        position: Option<&Position>,
        since: Option<&Value>,
    ) -> Result<Page, PluginError> {
        let url = self.url(position, since)?;
        let response = self.client.get(&url)?;
        let body: Value = serde_json::from_slice(&response.body).map_err(|e| {
            PluginError::data(format!("GET {} did not return JSON: {e}", redacted(&url)))
        })?;
        let records = records(&body, &self.stream.records_pointer, &url)?;
        let n = records.len() as u64;
        let next = match &self.stream.pagination {
            Pagination::None => None,
            Pagination::Offset(o) => {
                let at = match position {
                    Some(Position::Offset(k)) => *k,
                    _ => 0,
                };
                (n >= u64::from(o.page_size) && n > 0).then(|| Position::Offset(at + n))
            }
            Pagination::Page(p) => {
                let at = match position {
                    Some(Position::Page(k)) => *k,
                    _ => p.first_page,
                };
                let last = match p.page_size {
                    Some(size) => n < u64::from(size),
                    None => n == 0,
                };
                (!last).then(|| Position::Page(at.saturating_add(1)))
            }
            Pagination::Cursor(c) => match body.pointer(&c.cursor_pointer) {
                Some(Value::String(s)) if !s.is_empty() => Some(Position::Cursor(s.clone())),
                Some(Value::Number(n)) => Some(Position::Cursor(n.to_string())),
                _ => None,
            },
            Pagination::NextUrl(p) => match body.pointer(&p.next_pointer) {
                Some(Value::String(s)) if !s.is_empty() => {
                    Some(Position::Url(self.origin.next_page(&url, s)?.to_string()))
                }
                _ => None,
            },
            Pagination::Link => match response.header("link").and_then(link_next) {
                Some(link) => Some(Position::Url(
                    self.origin.next_page(&url, link)?.to_string(),
                )),
                None => None,
            },
        };
        if next.is_some() && next.as_ref() == position {
            return Err(PluginError::data(format!(
                "GET {}: the next page is the page just read; the API's pagination does not advance",
                redacted(&url)
            )));
        }
        if let Some(Position::Url(next_url)) = &next
            && next_url == url.as_str()
        {
            return Err(PluginError::data(format!(
                "GET {}: the next-page link points at the same page",
                redacted(&url)
            )));
        }
        Ok(Page { records, next })
    }
}

/// The records at `pointer` of `body`.
fn records(body: &Value, pointer: &str, url: &Url) -> Result<Vec<Map<String, Value>>, PluginError> {
    let at = if pointer.is_empty() {
        Some(body)
    } else {
        body.pointer(pointer)
    };
    let items = match at {
        Some(Value::Array(items)) => items,
        Some(Value::Null) => return Ok(Vec::new()),
        Some(other) => {
            return Err(PluginError::data(format!(
                "GET {}: `{pointer}` holds {}, not an array of records",
                redacted(url),
                kind(other)
            )));
        }
        None => {
            return Err(PluginError::data(format!(
                "GET {}: the response has nothing at recordsPointer `{pointer}`",
                redacted(url)
            )));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(map) => Ok(map.clone()),
            other => Err(PluginError::data(format!(
                "GET {}: record {i} at `{pointer}` is {}, not an object",
                redacted(url),
                kind(other)
            ))),
        })
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The cursor as a query parameter.
fn cursor_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Orders two cursor values: numbers by value, strings (ISO-8601 times,
/// say) by text; anything else does not compare.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Everything a source call needs, from a configuration.
struct Prepared {
    origin: Origin,
    client: Client,
}

fn prepare(config: &SourceConfig) -> Result<Prepared, PluginError> {
    check_source(config)?;
    Ok(Prepared {
        origin: Origin::parse(&config.base_url)?,
        client: Client::new(ClientConfig {
            headers: &config.headers,
            auth_header: &config.auth_header,
            auth_token: config.auth_token.as_deref(),
            retry: &config.retry,
        }),
    })
}

impl Prepared {
    fn endpoint<'a>(&'a self, stream: &'a StreamConfig) -> Endpoint<'a> {
        Endpoint {
            origin: &self.origin,
            client: &self.client,
            stream,
        }
    }
}

impl Source for HttpSource {
    type Config = SourceConfig;

    fn check(&self, config: &SourceConfig) -> Result<(), PluginError> {
        let prepared = prepare(config)?;
        for stream in &config.streams {
            prepared
                .endpoint(stream)
                .fetch(None, None)
                .map_err(|mut e| {
                    e.message = format!("stream `{}`: {}", stream.name, e.message);
                    e
                })?;
        }
        Ok(())
    }

    fn discover(&self, config: &SourceConfig) -> Result<Vec<StreamInfo>, PluginError> {
        let prepared = prepare(config)?;
        config
            .streams
            .iter()
            .map(|stream| {
                let schema = match &stream.schema {
                    Some(schema) => schema.clone(),
                    None => {
                        let page = prepared.endpoint(stream).fetch(None, None)?;
                        let mut inference = Inference::default();
                        for record in page.records.iter().take(SAMPLE) {
                            inference.json_row(record);
                        }
                        inference.schema()
                    }
                };
                Ok(describe(stream, &schema))
            })
            .collect()
    }

    fn read(
        &self,
        config: SourceConfig,
        request: ReadRequest,
    ) -> Result<Box<dyn Reader>, PluginError> {
        let prepared = prepare(&config)?;
        let mut plans = VecDeque::new();
        for configured in &request.streams {
            let Some(stream) = config.streams.iter().find(|s| s.name == configured.name) else {
                return Err(PluginError::config(format!(
                    "the connection has no stream `{}`",
                    configured.name
                )));
            };
            let saved: StreamState =
                saved_state(&request.state, &configured.name)?.unwrap_or_default();
            plans.push_back(Plan::new(stream.clone(), configured, saved, &request)?);
        }
        Ok(Box::new(HttpReader {
            prepared,
            plans,
            queue: VecDeque::new(),
        }))
    }
}

/// A stream's catalog entry.
fn describe(stream: &StreamConfig, schema: &Value) -> StreamInfo {
    let mut info = stream_info(
        &stream.name,
        schema,
        vec![SyncMode::FullRefresh, SyncMode::Incremental],
    );
    let props = schema.get("properties").and_then(Value::as_object);
    let has = |f: &str| props.is_some_and(|p| p.contains_key(f));
    info.cursor_candidates = stream
        .cursor_field
        .iter()
        .cloned()
        .chain(
            CURSOR_NAMES
                .iter()
                .filter(|n| has(n) && stream.cursor_field.as_deref() != Some(**n))
                .map(|n| (*n).to_owned()),
        )
        .collect();
    info.primary_key_candidates = if !stream.primary_key.is_empty() {
        vec![stream.primary_key.clone()]
    } else if has("id") {
        vec![vec!["id".to_owned()]]
    } else {
        Vec::new()
    };
    info
}

/// One stream of a read.
struct Plan {
    stream: StreamConfig,
    builder: BatchBuilder,
    /// The cursor field, for incremental reads.
    cursor_field: Option<String>,
    reading: Reading,
    started: bool,
    done: bool,
}

impl Plan {
    fn new(
        stream: StreamConfig,
        configured: &ConfiguredStream,
        saved: StreamState,
        request: &ReadRequest,
    ) -> Result<Plan, PluginError> {
        let schema = stream_schema(configured)?;
        let incremental = configured.sync_mode == SyncMode::Incremental;
        let cursor_field = if incremental {
            let field = configured
                .cursor_field
                .clone()
                .or_else(|| stream.cursor_field.clone())
                .ok_or_else(|| {
                    PluginError::config(format!(
                        "stream `{}` is read incrementally but has no cursor field: set one in the job or as the stream's cursorField",
                        stream.name
                    ))
                })?;
            Some(field)
        } else {
            None
        };
        let reading = match saved.reading {
            Some(reading) => reading,
            None if incremental => Reading {
                next: None,
                since: saved.cursor.clone(),
                max: saved.cursor,
            },
            None => Reading::default(),
        };
        Ok(Plan {
            builder: BatchBuilder::new(&stream.name, &schema, &request.format)?,
            stream,
            cursor_field,
            reading,
            started: false,
            done: false,
        })
    }

    fn checkpoint(&self) -> ReadItem {
        let state = if self.done {
            StreamState {
                cursor: self.reading.max.clone(),
                reading: None,
            }
        } else {
            StreamState {
                cursor: None,
                reading: Some(self.reading.clone()),
            }
        };
        ReadItem::Checkpoint(Checkpoint {
            stream_name: Some(self.stream.name.clone()),
            state: json!(state).to_string(),
        })
    }

    fn status(&self, status: StreamStatus) -> ReadItem {
        ReadItem::StreamStatus(StreamProgress {
            stream_name: self.stream.name.clone(),
            status,
            estimated_rows: None,
        })
    }

    /// Keeps the records at or past the saved cursor, and notes the highest.
    fn filter(&mut self, records: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
        let Some(field) = &self.cursor_field else {
            return records;
        };
        let since = self.reading.since.clone();
        records
            .into_iter()
            .filter(|r| {
                let Some(value) = r.get(field).filter(|v| !v.is_null()) else {
                    return true;
                };
                let higher = match &self.reading.max {
                    None => true,
                    Some(max) => compare(value, max) == Some(Ordering::Greater),
                };
                if higher {
                    self.reading.max = Some(value.clone());
                }
                since
                    .as_ref()
                    .is_none_or(|s| compare(value, s) != Some(Ordering::Less))
            })
            .collect()
    }
}

/// An open read.
struct HttpReader {
    prepared: Prepared,
    plans: VecDeque<Plan>,
    queue: VecDeque<ReadItem>,
}

impl HttpReader {
    /// Reads the current stream's next page into the queue.
    fn read_page(&mut self, limits: &ReadLimits) -> Result<(), PluginError> {
        let Some(plan) = self.plans.front_mut() else {
            return Ok(());
        };
        let endpoint = Endpoint {
            origin: &self.prepared.origin,
            client: &self.prepared.client,
            stream: &plan.stream,
        };
        let page = endpoint.fetch(plan.reading.next.as_ref(), plan.reading.since.as_ref())?;
        let records = plan.filter(page.records);
        let max_rows = usize::try_from(limits.max_rows.max(1)).unwrap_or(usize::MAX);
        let mut bytes = 0u64;
        for record in records {
            bytes += serde_json::to_vec(&record).map_or(0, |v| v.len() as u64);
            plan.builder.push_value(Value::Object(record))?;
            if plan.builder.len() as usize >= max_rows || bytes >= limits.max_bytes {
                self.queue
                    .push_back(ReadItem::Batch(plan.builder.finish()?));
                bytes = 0;
            }
        }
        if !plan.builder.is_empty() {
            self.queue
                .push_back(ReadItem::Batch(plan.builder.finish()?));
        }
        plan.reading.next = page.next;
        plan.done = plan.reading.next.is_none();
        self.queue.push_back(plan.checkpoint());
        if plan.done {
            self.queue.push_back(plan.status(StreamStatus::Complete));
        }
        Ok(())
    }
}

impl Reader for HttpReader {
    fn next(&mut self, limits: &ReadLimits) -> Result<ReadItem, PluginError> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Ok(item);
            }
            let Some(plan) = self.plans.front_mut() else {
                return Ok(ReadItem::Done);
            };
            if plan.done {
                self.plans.pop_front();
                continue;
            }
            if !plan.started {
                plan.started = true;
                return Ok(plan.status(StreamStatus::Started));
            }
            self.read_page(limits)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_from_the_pointer() {
        let url = Url::parse("http://h/x?k=secret").unwrap();
        let body = json!({"data": {"items": [{"id": 1}, {"id": 2}]}});
        assert_eq!(records(&body, "/data/items", &url).unwrap().len(), 2);
        assert!(
            records(&json!({"data": null}), "/data", &url)
                .unwrap()
                .is_empty()
        );
        let err = records(&body, "/nope", &url).unwrap_err();
        assert!(err.message.contains("nothing at"), "{}", err.message);
        assert!(
            !err.message.contains("secret"),
            "queries stay out of messages"
        );
        let err = records(&json!([1]), "", &url).unwrap_err();
        assert!(err.message.contains("record 0"), "{}", err.message);
        assert!(records(&json!({"data": "x"}), "/data", &url).is_err());
    }

    #[test]
    fn cursors_compare_as_numbers_or_text() {
        assert_eq!(compare(&json!(2), &json!(10)), Some(Ordering::Less));
        assert_eq!(compare(&json!(2.5), &json!(2)), Some(Ordering::Greater));
        assert_eq!(
            compare(
                &json!("2026-01-02T00:00:00Z"),
                &json!("2026-01-01T23:59:59Z")
            ),
            Some(Ordering::Greater)
        );
        assert_eq!(compare(&json!("1"), &json!(1)), None);
    }

    #[test]
    fn catalog_offers_cursors_and_keys() {
        let stream: StreamConfig = serde_json::from_value(json!({
            "name": "orders", "path": "/orders", "cursorField": "seq"
        }))
        .unwrap();
        let schema = json!({"type": "object", "properties": {
            "id": {"type": "integer"}, "seq": {"type": "integer"}, "updated_at": {"type": "string"}
        }});
        let info = describe(&stream, &schema);
        assert_eq!(info.cursor_candidates, ["seq", "updated_at"]);
        assert_eq!(info.primary_key_candidates, [vec!["id".to_string()]]);
    }
}
