//! The files source: streams are the matching files (each its own stream,
//! or all of them as one), read in order and checkpointed by byte offset.
//!
//! State per stream is `{"files": {"<name>": <bytes read>}, "complete": bool}`.
//! Incremental reads skip what the offsets cover, so new files and lines
//! appended since the last sync are read; a file that shrank is read again
//! from the start. A full refresh honours the offsets only while the last
//! read of the stream is not `complete` (a sync stopped halfway resumes).

use crate::config::{FileFormat, SourceConfig, directory, io_error};
use crate::schema;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use weft_plugin_sdk::PluginError;
use weft_plugin_sdk::batch::{self, BatchBuilder};
use weft_plugin_sdk::connector::{Reader, Source, saved_state, stream_info, stream_schema};
use weft_plugin_sdk::schema::Inference;
use weft_plugin_sdk::wit::{
    BatchFormat, Checkpoint, ReadItem, ReadLimits, ReadRequest, StreamInfo, StreamProgress,
    StreamStatus, SyncMode,
};

/// CSV and NDJSON files in a granted directory.
pub struct FilesSource;

/// One stream and the files it reads, in name order.
#[derive(Debug, Clone)]
struct StreamFiles {
    name: String,
    files: Vec<(String, PathBuf)>,
}

/// The matching files, grouped into streams.
fn streams(config: &SourceConfig) -> Result<Vec<StreamFiles>, PluginError> {
    let dir = directory(&config.path)?;
    let pattern = glob::Pattern::new(&config.glob)
        .map_err(|e| PluginError::config(format!("glob {:?}: {e}", config.glob)))?;
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| io_error(format_args!("reading {}", dir.display()), e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(format_args!("reading {}", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Our own staging files and markers are never input.
        if name.starts_with(".weft-") || !pattern.matches(&name) {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    if let Some(stream) = &config.stream {
        return Ok(vec![StreamFiles {
            name: stream.clone(),
            files,
        }]);
    }
    let mut out: Vec<StreamFiles> = Vec::new();
    for (name, path) in files {
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        let stream = if out.iter().any(|s| s.name == stem) {
            name.clone()
        } else {
            stem.to_owned()
        };
        out.push(StreamFiles {
            name: stream,
            files: vec![(name, path)],
        });
    }
    Ok(out)
}

/// How a source reads CSV, fixed for a read.
#[derive(Debug, Clone, Copy)]
struct Dialect {
    delimiter: u8,
    quote: u8,
    header: bool,
}

impl Dialect {
    fn of(config: &SourceConfig) -> Result<Self, PluginError> {
        let (delimiter, quote) = config.csv.bytes()?;
        Ok(Self {
            delimiter,
            quote,
            header: config.csv.header,
        })
    }

    fn reader(self, file: File) -> csv::Reader<File> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(self.delimiter)
            .quote(self.quote)
            .from_reader(file)
    }

    /// The file's column names: its header row, or `column_1`... from the first row.
    fn header(self, path: &PathBuf) -> Result<Vec<String>, PluginError> {
        let file = File::open(path).map_err(|e| io_error(path.display(), e))?;
        let mut reader = self.reader(file);
        let mut first = csv::StringRecord::new();
        reader
            .read_record(&mut first)
            .map_err(|e| PluginError::data(format!("{}: {e}", path.display())))?;
        Ok(if self.header {
            first.iter().map(str::to_owned).collect()
        } else {
            (1..=first.len()).map(|i| format!("column_{i}")).collect()
        })
    }
}

fn format_of(config: &SourceConfig, file: &str) -> FileFormat {
    config.format.unwrap_or_else(|| FileFormat::from_name(file))
}

/// Infers a stream's schema from its first `sample_rows` rows.
fn infer(config: &SourceConfig, stream: &StreamFiles) -> Result<Value, PluginError> {
    let dialect = Dialect::of(config)?;
    let mut left = config.sample_rows.max(1);
    let mut inference: Option<Inference> = None;
    for (name, path) in &stream.files {
        if left == 0 {
            break;
        }
        let file = File::open(path).map_err(|e| io_error(name, e))?;
        match format_of(config, name) {
            FileFormat::Ndjson => {
                let inf = inference.get_or_insert_with(Inference::default);
                for line in BufReader::new(file).lines() {
                    let line = line.map_err(|e| io_error(name, e))?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let row: Map<String, Value> = serde_json::from_str(&line).map_err(|e| {
                        PluginError::data(format!("{name}: a line is not a JSON object: {e}"))
                    })?;
                    inf.json_row(&row);
                    left -= 1;
                    if left == 0 {
                        break;
                    }
                }
            }
            FileFormat::Csv => {
                let header = dialect.header(path)?;
                let inf = inference.get_or_insert_with(|| Inference::text_columns(&header));
                let mut reader = dialect.reader(file);
                let mut record = csv::StringRecord::new();
                if dialect.header {
                    let _ = reader.read_record(&mut record);
                }
                while left > 0
                    && reader
                        .read_record(&mut record)
                        .map_err(|e| PluginError::data(format!("{name}: {e}")))?
                {
                    inf.text_row(&record);
                    left -= 1;
                }
            }
        }
    }
    Ok(inference.unwrap_or_default().schema())
}

impl Source for FilesSource {
    type Config = SourceConfig;

    fn formats(&self) -> Vec<BatchFormat> {
        vec![batch::ndjson(), BatchFormat::ArrowIpc]
    }

    fn check(&self, config: &SourceConfig) -> Result<(), PluginError> {
        Dialect::of(config)?;
        if let Some(s) = &config.schema {
            schema::check_configured(s)?;
        }
        let found = streams(config)?;
        if found.iter().all(|s| s.files.is_empty()) {
            return Err(PluginError::config(format!(
                "no file in {} matches {:?}",
                config.path, config.glob
            )));
        }
        Ok(())
    }

    fn discover(&self, config: &SourceConfig) -> Result<Vec<StreamInfo>, PluginError> {
        streams(config)?
            .iter()
            .map(|s| {
                let schema = match &config.schema {
                    Some(schema) => {
                        schema::check_configured(schema)?;
                        schema.clone()
                    }
                    None => infer(config, s)?,
                };
                Ok(stream_info(
                    &s.name,
                    &schema,
                    vec![SyncMode::FullRefresh, SyncMode::Incremental],
                ))
            })
            .collect()
    }

    fn read(
        &self,
        config: SourceConfig,
        request: ReadRequest,
    ) -> Result<Box<dyn Reader>, PluginError> {
        let dialect = Dialect::of(&config)?;
        let found = streams(&config)?;
        let mut plans = VecDeque::new();
        for configured in &request.streams {
            let files = found
                .iter()
                .find(|s| s.name == configured.name)
                .map(|s| s.files.clone())
                .unwrap_or_default();
            let schema = stream_schema(configured)?;
            let saved: StreamState =
                saved_state(&request.state, &configured.name)?.unwrap_or_default();
            let state = match configured.sync_mode {
                SyncMode::FullRefresh if saved.complete => StreamState::default(),
                _ => StreamState {
                    complete: false,
                    ..saved
                },
            };
            plans.push_back(Plan {
                builder: BatchBuilder::new(&configured.name, &schema, &request.format)?,
                name: configured.name.clone(),
                files,
                schema,
                state,
            });
        }
        Ok(Box::new(FilesReader {
            config,
            dialect,
            pass_through: batch::is_ndjson(&request.format),
            plans,
            current: None,
            pending: VecDeque::new(),
        }))
    }
}

/// What a checkpoint of one stream holds.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct StreamState {
    /// Bytes read of each file.
    #[serde(default)]
    files: BTreeMap<String, u64>,
    /// Whether the stream was read to the end.
    #[serde(default)]
    complete: bool,
}

/// A stream still to read.
struct Plan {
    name: String,
    files: Vec<(String, PathBuf)>,
    schema: Value,
    state: StreamState,
    builder: BatchBuilder,
}

/// The file being read.
struct OpenFile {
    name: String,
    offset: u64,
    rows: RowSource,
}

enum RowSource {
    Ndjson {
        reader: BufReader<File>,
        /// The line being read, reused from row to row.
        line: Vec<u8>,
    },
    Csv {
        reader: csv::Reader<File>,
        base: u64,
        header: Vec<String>,
        types: Vec<Option<String>>,
    },
}

/// The stream being read.
struct Current {
    plan: Plan,
    next_file: usize,
    open: Option<OpenFile>,
}

/// An open read of the files source.
pub struct FilesReader {
    config: SourceConfig,
    dialect: Dialect,
    pass_through: bool,
    plans: VecDeque<Plan>,
    current: Option<Current>,
    pending: VecDeque<ReadItem>,
}

impl Reader for FilesReader {
    fn next(&mut self, limits: &ReadLimits) -> Result<ReadItem, PluginError> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(item);
            }
            let Some(current) = self.current.as_mut() else {
                let Some(plan) = self.plans.pop_front() else {
                    return Ok(ReadItem::Done);
                };
                self.pending
                    .push_back(status(&plan.name, StreamStatus::Started));
                self.current = Some(Current {
                    plan,
                    next_file: 0,
                    open: None,
                });
                continue;
            };
            let ended = fill(
                current,
                &self.config,
                self.dialect,
                self.pass_through,
                limits,
            )?;
            if !current.plan.builder.is_empty() {
                let batch = current.plan.builder.finish()?;
                self.pending.push_back(ReadItem::Batch(batch));
                self.pending.push_back(checkpoint(&current.plan)?);
            }
            if ended {
                current.plan.state.complete = true;
                self.pending.push_back(checkpoint(&current.plan)?);
                self.pending
                    .push_back(status(&current.plan.name, StreamStatus::Complete));
                self.current = None;
            }
        }
    }
}

fn status(stream: &str, status: StreamStatus) -> ReadItem {
    ReadItem::StreamStatus(StreamProgress {
        stream_name: stream.to_owned(),
        status,
        estimated_rows: None,
    })
}

fn checkpoint(plan: &Plan) -> Result<ReadItem, PluginError> {
    let state =
        serde_json::to_string(&plan.state).map_err(|e| PluginError::internal(e.to_string()))?;
    Ok(ReadItem::Checkpoint(Checkpoint {
        stream_name: Some(plan.name.clone()),
        state,
    }))
}

/// Reads rows into the stream's builder until a limit is reached or the
/// stream ends; returns whether it ended.
fn fill(
    current: &mut Current,
    config: &SourceConfig,
    dialect: Dialect,
    pass_through: bool,
    limits: &ReadLimits,
) -> Result<bool, PluginError> {
    let started = Instant::now();
    let max_time = Duration::from_millis(u64::from(limits.max_millis.max(1)));
    let max_rows = limits.max_rows.max(1);
    let mut bytes = 0u64;
    while current.plan.builder.len() < max_rows
        && bytes < limits.max_bytes.max(1)
        && started.elapsed() < max_time
    {
        if current.open.is_none() {
            match open_next(current, config, dialect)? {
                Some(open) => current.open = Some(open),
                None => return Ok(true),
            }
        }
        let Some(open) = current.open.as_mut() else {
            continue;
        };
        match read_row(open, &mut current.plan, pass_through)? {
            Some(n) => bytes += n,
            None => {
                current.open = None;
                current.next_file += 1;
            }
        }
    }
    Ok(false)
}

/// Opens the next file with something left to read, at its saved offset.
fn open_next(
    current: &mut Current,
    config: &SourceConfig,
    dialect: Dialect,
) -> Result<Option<OpenFile>, PluginError> {
    while let Some((name, path)) = current.plan.files.get(current.next_file) {
        let mut file = File::open(path).map_err(|e| io_error(name, e))?;
        let len = file.metadata().map_err(|e| io_error(name, e))?.len();
        let mut offset = current.plan.state.files.get(name).copied().unwrap_or(0);
        if offset > len {
            // The file was replaced by a shorter one: read it anew.
            offset = 0;
        }
        current.plan.state.files.insert(name.clone(), offset);
        if offset == len {
            current.next_file += 1;
            continue;
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error(name, e))?;
        let rows = match format_of(config, name) {
            FileFormat::Ndjson => RowSource::Ndjson {
                reader: BufReader::with_capacity(256 * 1024, file),
                line: Vec::new(),
            },
            FileFormat::Csv => {
                let header = dialect.header(path)?;
                let mut reader = dialect.reader(file);
                if offset == 0 && dialect.header {
                    let mut skip = csv::ByteRecord::new();
                    reader
                        .read_byte_record(&mut skip)
                        .map_err(|e| PluginError::data(format!("{name}: {e}")))?;
                }
                let types = schema::column_types(&current.plan.schema, &header);
                RowSource::Csv {
                    reader,
                    base: offset,
                    header,
                    types,
                }
            }
        };
        let mut open = OpenFile {
            name: name.clone(),
            offset,
            rows,
        };
        if let RowSource::Csv { reader, base, .. } = &open.rows {
            open.offset = base + reader.position().byte();
        }
        return Ok(Some(open));
    }
    Ok(None)
}

/// Reads one row into the builder: the bytes it took, or `None` at the end of the file.
fn read_row(
    open: &mut OpenFile,
    plan: &mut Plan,
    pass_through: bool,
) -> Result<Option<u64>, PluginError> {
    let at = open.offset;
    let bad = |what: String| PluginError::data(format!("{} at byte {at}: {what}", open.name));
    let consumed = match &mut open.rows {
        RowSource::Ndjson { reader, line } => loop {
            line.clear();
            let n = reader
                .read_until(b'\n', line)
                .map_err(|e| io_error(&open.name, e))? as u64;
            if n == 0 {
                return Ok(None);
            }
            open.offset += n;
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            if pass_through {
                // The bytes go through untouched, but only JSON objects pass.
                if !text.starts_with(b"{")
                    || serde_json::from_slice::<serde::de::IgnoredAny>(text).is_err()
                {
                    return Err(bad("the line is not a JSON object".into()));
                }
                plan.builder.push_ndjson_lines(text, 1)?;
            } else {
                let row: Value = serde_json::from_slice(text)
                    .map_err(|e| bad(format!("the line is not JSON: {e}")))?;
                plan.builder.push_value(row).map_err(|e| bad(e.message))?;
            }
            break n;
        },
        RowSource::Csv {
            reader,
            base,
            header,
            types,
        } => {
            let mut record = csv::StringRecord::new();
            let more = reader
                .read_record(&mut record)
                .map_err(|e| bad(e.to_string()))?;
            if !more {
                return Ok(None);
            }
            if record.len() != header.len() {
                return Err(bad(format!(
                    "a row has {} fields, the header {}",
                    record.len(),
                    header.len()
                )));
            }
            let mut row = Map::new();
            for ((cell, name), ty) in record.iter().zip(header.iter()).zip(types.iter()) {
                let value = schema::typed_cell(cell, ty.as_deref())
                    .map_err(|e| bad(format!("{name}: {e}")))?;
                row.insert(name.clone(), value);
            }
            plan.builder
                .push_value(json!(row))
                .map_err(|e| bad(e.message))?;
            let now = *base + reader.position().byte();
            let n = now - open.offset;
            open.offset = now;
            n
        }
    };
    if let Some(saved) = plan.state.files.get_mut(&open.name) {
        *saved = open.offset;
    }
    Ok(Some(consumed))
}
