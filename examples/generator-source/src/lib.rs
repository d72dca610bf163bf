//! # generator-source
//!
//! An example third-party Weft source: deterministic generated rows, read
//! in batches with a checkpoint after each one. See the README.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use serde::Deserialize;
use serde_json::{Value, json};
use weft_plugin_sdk::PluginError;
use weft_plugin_sdk::batch::BatchBuilder;
use weft_plugin_sdk::connector::{Reader, Source, saved_state, stream_info};
use weft_plugin_sdk::wit::{
    Checkpoint, ReadItem, ReadLimits, ReadRequest, StreamInfo, StreamProgress, StreamStatus,
    SyncMode,
};

/// The connection's configuration.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many rows the stream has.
    pub rows: u64,
    /// The stream's name.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Seeds the `value` column.
    #[serde(default)]
    pub seed: u64,
}

fn default_stream() -> String {
    "numbers".into()
}

/// The generator.
pub struct Generator;

fn row_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "value": {"type": "integer"},
            "label": {"type": "string"},
            "even": {"type": "boolean"}
        }
    })
}

/// The `value` column: a SplitMix64 step of `seed` and `id`, cut to 32 bits.
pub fn value(seed: u64, id: u64) -> u64 {
    let mut z = seed.wrapping_add(id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) >> 32
}

impl Source for Generator {
    type Config = Config;

    fn check(&self, config: &Config) -> Result<(), PluginError> {
        if config.stream.is_empty() {
            return Err(PluginError::config("stream must not be empty"));
        }
        Ok(())
    }

    fn discover(&self, config: &Config) -> Result<Vec<StreamInfo>, PluginError> {
        let mut info = stream_info(
            &config.stream,
            &row_schema(),
            vec![SyncMode::FullRefresh, SyncMode::Incremental],
        );
        info.cursor_candidates = vec!["id".into()];
        info.primary_key_candidates = vec![vec!["id".into()]];
        info.estimated_rows = Some(config.rows);
        Ok(vec![info])
    }

    fn read(&self, config: Config, request: ReadRequest) -> Result<Box<dyn Reader>, PluginError> {
        let Some(stream) = request.streams.iter().find(|s| s.name == config.stream) else {
            return Ok(Box::new(Generated::empty()));
        };
        // Where the last read got to: `{"next": id}`; a finished full
        // refresh starts over.
        let saved: Option<Value> = saved_state(&request.state, &config.stream)?;
        let next = saved
            .as_ref()
            .filter(|s| stream.sync_mode == SyncMode::Incremental || s["complete"] != json!(true))
            .and_then(|s| s["next"].as_u64())
            .unwrap_or(1);
        Ok(Box::new(Generated {
            builder: Some(BatchBuilder::new(
                &config.stream,
                &row_schema(),
                &request.format,
            )?),
            stream: config.stream,
            seed: config.seed,
            next,
            last: config.rows,
            started: false,
            pending: None,
        }))
    }
}

/// An open read.
struct Generated {
    builder: Option<BatchBuilder>,
    stream: String,
    seed: u64,
    next: u64,
    last: u64,
    started: bool,
    pending: Option<ReadItem>,
}

impl Generated {
    fn empty() -> Self {
        Self {
            builder: None,
            stream: String::new(),
            seed: 0,
            next: 1,
            last: 0,
            started: true,
            pending: None,
        }
    }

    fn checkpoint(&self, complete: bool) -> ReadItem {
        ReadItem::Checkpoint(Checkpoint {
            stream_name: Some(self.stream.clone()),
            state: json!({"next": self.next, "complete": complete}).to_string(),
        })
    }

    fn status(&self, status: StreamStatus) -> ReadItem {
        ReadItem::StreamStatus(StreamProgress {
            stream_name: self.stream.clone(),
            status,
            estimated_rows: Some(self.last.saturating_sub(self.next - 1)),
        })
    }
}

impl Reader for Generated {
    fn next(&mut self, limits: &ReadLimits) -> Result<ReadItem, PluginError> {
        if let Some(item) = self.pending.take() {
            return Ok(item);
        }
        let Some(builder) = self.builder.as_mut() else {
            return Ok(ReadItem::Done);
        };
        if !self.started {
            self.started = true;
            return Ok(self.status(StreamStatus::Started));
        }
        if self.next > self.last {
            self.builder = None;
            self.pending = Some(self.status(StreamStatus::Complete));
            return Ok(self.checkpoint(true));
        }
        // A row takes about 40 bytes as Arrow; stay within both bounds.
        let rows = u64::from(limits.max_rows).min(limits.max_bytes / 40).max(1);
        let end = self.last.min(self.next.saturating_add(rows) - 1);
        for id in self.next..=end {
            builder.push(&json!({
                "id": id,
                "value": value(self.seed, id),
                "label": format!("row-{id}"),
                "even": id % 2 == 0,
            }))?;
        }
        let batch = builder.finish()?;
        self.next = end + 1;
        self.pending = Some(self.checkpoint(false));
        Ok(ReadItem::Batch(batch))
    }
}

weft_plugin_sdk::export_plugin! {
    name: "generator",
    version: env!("CARGO_PKG_VERSION"),
    description: "Deterministic generated rows: an example third-party source.",
    source: Generator,
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_plugin_sdk::testing;
    use weft_plugin_sdk::wit::BatchFormat;

    fn limits(max_rows: u32) -> ReadLimits {
        ReadLimits {
            max_rows,
            max_bytes: 1 << 20,
            max_millis: 1000,
        }
    }

    #[test]
    fn reads_every_row_once_in_batches_and_resumes_incrementally() {
        let config = json!({"rows": 25, "seed": 7});
        let streams = testing::discover(&Generator, config.clone()).unwrap();
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].estimated_rows, Some(25));
        let selected = vec![testing::configure(&streams[0], Some(SyncMode::Incremental))];
        let request = |config: Value, state| ReadRequest {
            config: config.to_string(),
            streams: selected.clone(),
            state,
            format: BatchFormat::ArrowIpc,
        };
        let out = testing::read_all(&Generator, request(config, Vec::new()), limits(10)).unwrap();
        assert_eq!(out.batches.len(), 3);
        let rows = out.rows("numbers").unwrap();
        let ids: Vec<_> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, (1..=25).collect::<Vec<_>>());
        assert_eq!(rows[6]["value"], json!(value(7, 7)));
        assert_eq!(rows[6]["even"], json!(false));
        assert_eq!(
            out.statuses.last(),
            Some(&("numbers".to_string(), StreamStatus::Complete))
        );

        // Five more rows later: an incremental read yields only them.
        let more = testing::read_all(
            &Generator,
            request(json!({"rows": 30, "seed": 7}), out.state()),
            limits(10),
        )
        .unwrap();
        let ids: Vec<_> = more
            .rows("numbers")
            .unwrap()
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, (26..=30).collect::<Vec<_>>());
    }

    #[test]
    fn a_bad_config_is_a_config_error() {
        let err = testing::discover(&Generator, json!({"rows": "many"})).unwrap_err();
        assert_eq!(err.kind, weft_plugin_sdk::ErrorKind::Config);
    }
}
