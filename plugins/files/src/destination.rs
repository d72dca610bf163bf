//! The files destination: exactly-once, one output file per stream and sync.
//!
//! Rows go to a staging file per stream (`.weft-<sync>-<stream>.part`). A
//! commit syncs the staging files to disk, then replaces the marker
//! `.weft-commit.json` (written beside and renamed over, so it is either the
//! old or the new one) holding the seq, the state and each staging file's
//! committed length. The final commit marks the sync done and renames each
//! staging file to its output: `<stream>-<sync>.<ext>` when appending,
//! `<stream>.<ext>` (replaced whole) when overwriting.
//!
//! On open, bytes past a committed length are cut off; a sync that stopped
//! after a commit is resumed when the same sync id comes back, and its
//! committed rows are published when another sync starts, whose host then
//! adopts the marker's state; staging files nobody committed are removed.
//! So each row lands once. Use one directory per job: the marker is per directory.

use crate::config::{DestinationConfig, FileFormat, directory, file_safe, io_error};
use crate::schema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use weft_plugin_sdk::PluginError;
use weft_plugin_sdk::batch::{self, BatchExt};
use weft_plugin_sdk::connector::{Destination, Writer};
use weft_plugin_sdk::wit::{
    Batch, BatchFormat, Checkpoint, CommitMarker, Delivery, WriteMode, WriteRequest,
};

/// The marker's file name.
const MARKER: &str = ".weft-commit.json";

/// CSV or NDJSON files in a granted directory.
pub struct FilesDestination;

/// One stream's files in the marker.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Output {
    /// The staging file's name.
    part: String,
    /// The output file's name.
    target: String,
    /// Bytes of the staging file that are committed.
    length: u64,
}

/// A saved checkpoint, as the marker holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedCheckpoint {
    stream: Option<String>,
    state: String,
}

/// What `.weft-commit.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Marker {
    seq: u64,
    state: Vec<SavedCheckpoint>,
    sync_id: String,
    outputs: BTreeMap<String, Output>,
    /// The final commit: the outputs are (being) published.
    done: bool,
}

impl Marker {
    fn read(dir: &Path) -> Result<Option<Marker>, PluginError> {
        let path = dir.join(MARKER);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| PluginError::data(format!("{} is damaged: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(path.display(), e)),
        }
    }

    /// Replaces the marker atomically and durably.
    fn write(&self, dir: &Path) -> Result<(), PluginError> {
        let tmp = dir.join(".weft-commit.json.tmp");
        let bytes = serde_json::to_vec(self).map_err(|e| PluginError::internal(e.to_string()))?;
        let mut file = File::create(&tmp).map_err(|e| io_error(tmp.display(), e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(tmp.display(), e))?;
        std::fs::rename(&tmp, dir.join(MARKER)).map_err(|e| io_error(MARKER, e))
    }

    /// Moves committed staging files to their outputs (again, after a crash).
    fn publish(&mut self, dir: &Path) -> Result<(), PluginError> {
        if !self.done {
            for out in self.outputs.values() {
                truncate(&dir.join(&out.part), out.length)?;
            }
            self.done = true;
            self.write(dir)?;
        }
        for out in self.outputs.values() {
            let part = dir.join(&out.part);
            if part.exists() {
                std::fs::rename(&part, dir.join(&out.target))
                    .map_err(|e| io_error(part.display(), e))?;
            }
        }
        Ok(())
    }

    fn commit_marker(&self) -> CommitMarker {
        CommitMarker {
            seq: self.seq,
            state: self
                .state
                .iter()
                .map(|c| Checkpoint {
                    stream_name: c.stream.clone(),
                    state: c.state.clone(),
                })
                .collect(),
        }
    }
}

/// Cuts a staging file back to its committed length, when it exists.
fn truncate(path: &Path, length: u64) -> Result<(), PluginError> {
    match OpenOptions::new().write(true).open(path) {
        Ok(file) => file
            .set_len(length)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(path.display(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path.display(), e)),
    }
}

impl Destination for FilesDestination {
    type Config = DestinationConfig;

    fn formats(&self) -> Vec<BatchFormat> {
        vec![batch::ndjson(), BatchFormat::ArrowIpc]
    }

    fn write_modes(&self) -> Vec<WriteMode> {
        vec![WriteMode::Append, WriteMode::Overwrite]
    }

    fn delivery(&self) -> Delivery {
        Delivery::ExactlyOnce
    }

    fn check(&self, config: &DestinationConfig) -> Result<(), PluginError> {
        config.csv.bytes()?;
        let dir = directory(&config.path)?;
        std::fs::create_dir_all(&dir).map_err(|e| io_error(dir.display(), e))?;
        let probe = dir.join(".weft-check");
        File::create(&probe).map_err(|e| io_error(dir.display(), e))?;
        std::fs::remove_file(&probe).map_err(|e| io_error(probe.display(), e))
    }

    fn open(
        &self,
        config: DestinationConfig,
        request: WriteRequest,
    ) -> Result<Box<dyn Writer>, PluginError> {
        Ok(Box::new(FilesWriter::open(config, request)?))
    }
}

/// One stream's open staging file.
struct StreamFile {
    part: String,
    target: String,
    file: File,
    length: u64,
    columns: Vec<String>,
}

/// An open write of the files destination.
pub struct FilesWriter {
    dir: PathBuf,
    sync_id: String,
    format: FileFormat,
    csv: (u8, u8),
    streams: BTreeMap<String, StreamFile>,
    marker: Option<Marker>,
}

impl FilesWriter {
    fn open(config: DestinationConfig, request: WriteRequest) -> Result<Self, PluginError> {
        let csv = config.csv.bytes()?;
        let dir = directory(&config.path)?;
        std::fs::create_dir_all(&dir).map_err(|e| io_error(dir.display(), e))?;
        let sync = file_safe(&request.sync_id);
        let mut marker = Marker::read(&dir)?;
        if let Some(m) = marker.as_mut()
            && (m.done || m.sync_id != request.sync_id)
        {
            m.publish(&dir)?;
        }
        let resumed = marker
            .as_ref()
            .filter(|m| !m.done && m.sync_id == request.sync_id);
        remove_stale_parts(&dir, resumed)?;

        let ext = config.format.extension();
        let mut streams = BTreeMap::new();
        for s in &request.streams {
            let name = file_safe(&s.name);
            let target = match s.write_mode {
                WriteMode::Append => {
                    // A sync id seen again after its outputs were published
                    // (a retry) must not replace them.
                    let mut target = format!("{name}-{sync}.{ext}");
                    let mut n = 2;
                    while dir.join(&target).exists() {
                        target = format!("{name}-{sync}-{n}.{ext}");
                        n += 1;
                    }
                    target
                }
                WriteMode::Overwrite => format!("{name}.{ext}"),
                WriteMode::Upsert => {
                    return Err(PluginError::config(format!(
                        "stream {:?}: the files destination appends or overwrites; it cannot upsert",
                        s.name
                    )));
                }
            };
            let part = format!(".weft-{sync}-{name}.part");
            let length = resumed
                .and_then(|m| m.outputs.get(&s.name))
                .map_or(0, |o| o.length);
            let path = dir.join(&part);
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| io_error(path.display(), e))?;
            file.set_len(length)
                .and_then(|()| file.seek(SeekFrom::End(0)).map(drop))
                .map_err(|e| io_error(path.display(), e))?;
            let schema: Value = serde_json::from_str(&s.json_schema)
                .map_err(|e| PluginError::config(format!("stream {:?} schema: {e}", s.name)))?;
            let columns = if s.fields.is_empty() {
                schema::columns(&schema)
            } else {
                s.fields.clone()
            };
            streams.insert(
                s.name.clone(),
                StreamFile {
                    part,
                    target,
                    file,
                    length,
                    columns,
                },
            );
        }
        Ok(Self {
            dir,
            sync_id: request.sync_id,
            format: config.format,
            csv,
            streams,
            marker,
        })
    }

    /// The rows of `batch` as bytes of the output format.
    fn encode(
        stream: &StreamFile,
        format: FileFormat,
        (delimiter, quote): (u8, u8),
        batch: &Batch,
    ) -> Result<Vec<u8>, PluginError> {
        match format {
            FileFormat::Ndjson => {
                let mut bytes = batch.to_ndjson()?;
                if !bytes.is_empty() && !bytes.ends_with(b"\n") {
                    bytes.push(b'\n');
                }
                Ok(bytes)
            }
            FileFormat::Csv => {
                let mut out = csv::WriterBuilder::new()
                    .delimiter(delimiter)
                    .quote(quote)
                    .from_writer(Vec::new());
                let fail = |e: csv::Error| PluginError::internal(format!("csv: {e}"));
                if stream.length == 0 {
                    out.write_record(&stream.columns).map_err(fail)?;
                }
                for row in batch.json_rows()? {
                    if let Some(extra) = row.keys().find(|k| !stream.columns.contains(k)) {
                        return Err(PluginError::data(format!(
                            "stream {:?}: a row has column {extra:?}, which its schema lacks (CSV columns are fixed)",
                            batch.stream_name
                        )));
                    }
                    let cells = stream.columns.iter().map(|c| match row.get(c) {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                    });
                    out.write_record(cells).map_err(fail)?;
                }
                out.into_inner()
                    .map_err(|e| PluginError::internal(format!("csv: {e}")))
            }
        }
    }
}

/// Removes staging files that no marker of a resumable sync covers.
fn remove_stale_parts(dir: &Path, resumed: Option<&Marker>) -> Result<(), PluginError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir.display(), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let kept = resumed.is_some_and(|m| m.outputs.values().any(|o| o.part == name));
        if name.starts_with(".weft-") && name.ends_with(".part") && !kept {
            std::fs::remove_file(entry.path()).map_err(|e| io_error(&name, e))?;
        }
    }
    Ok(())
}

impl Writer for FilesWriter {
    fn last_commit(&mut self) -> Result<Option<CommitMarker>, PluginError> {
        Ok(self.marker.as_ref().map(Marker::commit_marker))
    }

    fn write(&mut self, batch: Batch) -> Result<(), PluginError> {
        let Some(stream) = self.streams.get_mut(&batch.stream_name) else {
            return Err(PluginError::data(format!(
                "a batch of stream {:?}, which this write did not open",
                batch.stream_name
            )));
        };
        let bytes = Self::encode(stream, self.format, self.csv, &batch)?;
        stream
            .file
            .write_all(&bytes)
            .map_err(|e| io_error(&stream.part, e))?;
        stream.length += bytes.len() as u64;
        Ok(())
    }

    fn commit(&mut self, marker: CommitMarker, last: bool) -> Result<(), PluginError> {
        if last && self.format == FileFormat::Csv {
            // An empty stream still gets its header.
            let empty: Vec<String> = self
                .streams
                .iter()
                .filter(|(_, s)| s.length == 0)
                .map(|(n, _)| n.clone())
                .collect();
            for name in empty {
                self.write(Batch {
                    stream_name: name,
                    format: batch::ndjson(),
                    data: Vec::new(),
                    rows: 0,
                })?;
            }
        }
        let mut outputs = BTreeMap::new();
        for (name, s) in &self.streams {
            s.file.sync_data().map_err(|e| io_error(&s.part, e))?;
            outputs.insert(
                name.clone(),
                Output {
                    part: s.part.clone(),
                    target: s.target.clone(),
                    length: s.length,
                },
            );
        }
        let mut next = Marker {
            seq: marker.seq,
            state: marker
                .state
                .into_iter()
                .map(|c| SavedCheckpoint {
                    stream: c.stream_name,
                    state: c.state,
                })
                .collect(),
            sync_id: self.sync_id.clone(),
            outputs,
            done: false,
        };
        if last {
            next.publish(&self.dir)?;
        } else {
            next.write(&self.dir)?;
        }
        self.marker = Some(next);
        Ok(())
    }

    fn abort(&mut self) {
        let committed = self
            .marker
            .as_ref()
            .filter(|m| !m.done && m.sync_id == self.sync_id);
        for (name, s) in &self.streams {
            match committed.and_then(|m| m.outputs.get(name)) {
                Some(out) => {
                    let _ = s.file.set_len(out.length);
                }
                None => {
                    let _ = std::fs::remove_file(self.dir.join(&s.part));
                }
            }
        }
    }
}
