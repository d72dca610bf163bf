//! The webhook destination: records are posted as JSON, at most
//! `batchSize` per request, each request retried on network errors, 5xx
//! and 429. A commit returns once everything before it was accepted (2xx).
//!
//! Delivery is at-least-once: a sync that stopped between a post and its
//! commit posts those records again. Each request carries an
//! `Idempotency-Key` (`<sync id>:<stream>:<first record's offset>`) that is
//! the same for the same records of the same sync, so a receiver can drop
//! repeats across retries and resumed attempts of one sync.

use crate::client::{Client, ClientConfig};
use crate::config::{BodyShape, WebhookConfig, check_webhook};
use crate::url::Origin;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use url::Url;
use weft_plugin_sdk::PluginError;
use weft_plugin_sdk::batch::BatchExt;
use weft_plugin_sdk::connector::{Destination, Writer, stream_schema};
use weft_plugin_sdk::wit::{
    Batch, BatchFormat, CommitMarker, ConfiguredStream, Delivery, WriteMode, WriteRequest,
};

/// Posts batches to a webhook.
pub struct WebhookDestination;

fn prepare(config: &WebhookConfig) -> Result<(Url, Client), PluginError> {
    check_webhook(config)?;
    let url = Origin::parse(&config.url)?.url().clone();
    let client = Client::new(ClientConfig {
        headers: &config.headers,
        auth_header: &config.auth_header,
        auth_token: config.auth_token.as_deref(),
        retry: &config.retry,
    });
    Ok((url, client))
}

impl Destination for WebhookDestination {
    type Config = WebhookConfig;

    /// NDJSON is read as rows as well as Arrow.
    fn formats(&self) -> Vec<BatchFormat> {
        vec![weft_plugin_sdk::batch::ndjson(), BatchFormat::ArrowIpc]
    }

    fn write_modes(&self) -> Vec<WriteMode> {
        vec![WriteMode::Append]
    }

    fn delivery(&self) -> Delivery {
        Delivery::AtLeastOnce
    }

    /// Posts an empty batch: a receiver that takes it is reachable and
    /// accepts the credentials.
    fn check(&self, config: &WebhookConfig) -> Result<(), PluginError> {
        let (url, client) = prepare(config)?;
        let body = match config.body {
            BodyShape::Envelope => json!({"stream": null, "check": true, "records": []}),
            BodyShape::Array => json!([]),
        };
        client.post_json(&url, body.to_string().into_bytes(), &[])?;
        Ok(())
    }

    fn open(
        &self,
        config: WebhookConfig,
        request: WriteRequest,
    ) -> Result<Box<dyn Writer>, PluginError> {
        let (url, client) = prepare(&config)?;
        let streams = request
            .streams
            .iter()
            .map(|s| Ok((s.name.clone(), Outbox::new(s)?)))
            .collect::<Result<BTreeMap<_, _>, PluginError>>()?;
        Ok(Box::new(WebhookWriter {
            url,
            client,
            shape: config.body,
            batch_size: config.batch_size.max(1) as usize,
            sync_id: request.sync_id,
            streams,
        }))
    }
}

/// One stream's records not yet posted.
struct Outbox {
    namespace: Option<String>,
    /// Fields the schema declares as objects or arrays: the batch carries
    /// them as JSON text, the webhook gets them as JSON again.
    json_fields: Vec<String>,
    pending: Vec<Map<String, Value>>,
    /// Records of this stream posted so far in this attempt.
    posted: u64,
}

impl Outbox {
    fn new(stream: &ConfiguredStream) -> Result<Self, PluginError> {
        let schema = stream_schema(stream)?;
        let json_fields = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .filter(|(_, p)| declares_json(p))
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            namespace: stream.namespace.clone(),
            json_fields,
            pending: Vec::new(),
            posted: 0,
        })
    }
}

/// Whether a property's type is `object` or `array` (alone or with `null`).
fn declares_json(prop: &Value) -> bool {
    let is_json = |t: &str| t == "object" || t == "array";
    match prop.get("type") {
        Some(Value::String(t)) => is_json(t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).any(is_json),
        _ => false,
    }
}

/// An open write.
struct WebhookWriter {
    url: Url,
    client: Client,
    shape: BodyShape,
    batch_size: usize,
    sync_id: String,
    streams: BTreeMap<String, Outbox>,
}

impl WebhookWriter {
    /// Posts `stream`'s pending records, `batch_size` at a time; with
    /// `all` false, leaves a short tail for the next write.
    fn flush(&mut self, stream: &str, all: bool) -> Result<(), PluginError> {
        let Some(outbox) = self.streams.get_mut(stream) else {
            return Ok(());
        };
        while outbox.pending.len() >= self.batch_size || (all && !outbox.pending.is_empty()) {
            let take = outbox.pending.len().min(self.batch_size);
            let records: Vec<Value> = outbox.pending.drain(..take).map(Value::Object).collect();
            let key = format!("{}:{stream}:{}", self.sync_id, outbox.posted);
            let body = match self.shape {
                BodyShape::Envelope => json!({
                    "stream": stream,
                    "namespace": outbox.namespace,
                    "syncId": self.sync_id,
                    "offset": outbox.posted,
                    "records": records,
                }),
                BodyShape::Array => Value::Array(records),
            };
            self.client.post_json(
                &self.url,
                body.to_string().into_bytes(),
                &[("idempotency-key".to_owned(), key)],
            )?;
            outbox.posted += take as u64;
        }
        Ok(())
    }
}

impl Writer for WebhookWriter {
    fn last_commit(&mut self) -> Result<Option<CommitMarker>, PluginError> {
        // A webhook keeps no marker: the host's saved state is the truth.
        Ok(None)
    }

    fn write(&mut self, batch: Batch) -> Result<(), PluginError> {
        let stream = batch.stream_name.clone();
        let Some(outbox) = self.streams.get_mut(&stream) else {
            return Err(PluginError::internal(format!(
                "a batch for stream `{stream}`, which the write was not opened for"
            )));
        };
        for mut row in batch.json_rows()? {
            for field in &outbox.json_fields {
                if let Some(Value::String(text)) = row.get(field)
                    && let Ok(parsed) = serde_json::from_str::<Value>(text)
                {
                    row.insert(field.clone(), parsed);
                }
            }
            outbox.pending.push(row);
        }
        self.flush(&stream, false)
    }

    fn commit(&mut self, _marker: CommitMarker, _last: bool) -> Result<(), PluginError> {
        let names: Vec<String> = self.streams.keys().cloned().collect();
        for name in names {
            self.flush(&name, true)?;
        }
        Ok(())
    }

    fn abort(&mut self) {
        for outbox in self.streams.values_mut() {
            outbox.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_and_array_fields_are_json_again() {
        assert!(declares_json(&json!({"type": ["array", "null"]})));
        assert!(declares_json(&json!({"type": "object"})));
        assert!(!declares_json(&json!({"type": "string"})));
        assert!(!declares_json(&json!({})));
    }
}
