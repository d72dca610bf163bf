//! Test fixture: a source whose reader misbehaves the way its config's
//! `mode` says, after one good batch. Only for the host's tests.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use serde::Deserialize;
use serde_json::json;
use weft_plugin_sdk::PluginError;
use weft_plugin_sdk::batch::BatchBuilder;
use weft_plugin_sdk::connector::{Reader, Source, stream_info};
use weft_plugin_sdk::wit::{Batch, ReadItem, ReadLimits, ReadRequest, StreamInfo, SyncMode};

/// How the reader misbehaves.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Panics (a trap).
    Trap,
    /// Loops forever without returning.
    Spin,
    /// Allocates until memory runs out.
    Alloc,
    /// Returns a batch larger than any host accepts.
    Oversize,
    /// Sends a batch of a stream nobody selected.
    UnknownStream,
    /// Claims a format other than the agreed one.
    WrongFormat,
    /// Never says `done`: endless empty statuses are not rows.
    Endless,
}

/// The configuration.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Config {
    /// How to misbehave.
    pub mode: Mode,
}

/// The fixture source.
pub struct Hostile;

fn schema() -> serde_json::Value {
    json!({"type": "object", "properties": {"id": {"type": "integer"}}})
}

impl Source for Hostile {
    type Config = Config;

    fn check(&self, _config: &Config) -> Result<(), PluginError> {
        Ok(())
    }

    fn discover(&self, _config: &Config) -> Result<Vec<StreamInfo>, PluginError> {
        Ok(vec![stream_info(
            "rows",
            &schema(),
            vec![SyncMode::FullRefresh],
        )])
    }

    fn read(&self, config: Config, request: ReadRequest) -> Result<Box<dyn Reader>, PluginError> {
        let mut builder = BatchBuilder::new("rows", &schema(), &request.format)?;
        builder.push(&json!({"id": 1}))?;
        Ok(Box::new(HostileReader {
            mode: config.mode,
            first: Some(builder.finish()?),
        }))
    }
}

struct HostileReader {
    mode: Mode,
    first: Option<Batch>,
}

impl Reader for HostileReader {
    fn next(&mut self, _limits: &ReadLimits) -> Result<ReadItem, PluginError> {
        if let Some(batch) = self.first.take() {
            return Ok(ReadItem::Batch(batch));
        }
        match self.mode {
            Mode::Trap => panic!("the hostile source traps on purpose"),
            Mode::Spin => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            Mode::Alloc => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Mode::Oversize => Ok(ReadItem::Batch(Batch {
                stream_name: "rows".into(),
                format: weft_plugin_sdk::wit::BatchFormat::ArrowIpc,
                data: vec![b' '; 8 << 20],
                rows: 1,
            })),
            Mode::UnknownStream => Ok(ReadItem::Batch(Batch {
                stream_name: "secret_table".into(),
                format: weft_plugin_sdk::wit::BatchFormat::ArrowIpc,
                data: b"{}\n".to_vec(),
                rows: 1,
            })),
            Mode::WrongFormat => Ok(ReadItem::Batch(Batch {
                stream_name: "rows".into(),
                format: weft_plugin_sdk::wit::BatchFormat::Other("csv".into()),
                data: b"id\n1\n".to_vec(),
                rows: 1,
            })),
            Mode::Endless => Ok(ReadItem::StreamStatus(
                weft_plugin_sdk::wit::StreamProgress {
                    stream_name: "rows".into(),
                    status: weft_plugin_sdk::wit::StreamStatus::Running,
                    estimated_rows: None,
                },
            )),
        }
    }
}

weft_plugin_sdk::export_plugin! {
    name: "hostile-source",
    version: env!("CARGO_PKG_VERSION"),
    description: "A source that misbehaves on purpose (test fixture).",
    source: Hostile,
}
