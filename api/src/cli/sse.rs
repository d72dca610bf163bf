//! A small Server-Sent Events reader: the parser is a pure state machine
//! (fed byte chunks, yields complete events) so it can be tested without a
//! server, and [`SseStream`] drives it from a streaming HTTP response.

use anyhow::Result;
use std::collections::VecDeque;

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id:` field, when the event had one.
    pub id: Option<String>,
    /// The `event:` field (`message` when absent, as the spec says).
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Incremental parser for the `text/event-stream` format.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of an incomplete line carried over to the next chunk.
    partial: Vec<u8>,
    /// Whether the previous chunk ended on `\r`: a following `\n` belongs
    /// to the same line break and must not end an empty line.
    after_cr: bool,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Feeds a chunk; returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.partial);
                    if let Some(e) = self.line(&String::from_utf8_lossy(&line)) {
                        out.push(e);
                    }
                }
                _ => self.partial.push(b),
            }
        }
        out
    }

    /// Handles one complete line; an empty line dispatches the event.
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            // The spec keeps the last event id across events; we only
            // report it on the event that carried it, which is what a
            // resuming client needs.
            let id = self.id.take();
            return data.map(|data| SseEvent {
                id,
                event: event.unwrap_or_else(|| "message".to_owned()),
                data,
            });
        }
        if line.starts_with(':') {
            return None; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {} // `retry` and unknown fields: nothing to do for us
        }
        None
    }
}

/// Events read from a streaming HTTP response.
pub struct SseStream {
    response: reqwest::Response,
    parser: SseParser,
    ready: VecDeque<SseEvent>,
}

impl SseStream {
    /// Reads events from `response` (already checked for success).
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            parser: SseParser::default(),
            ready: VecDeque::new(),
        }
    }

    /// The next event; `None` when the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Ok(Some(e));
            }
            match self.response.chunk().await? {
                Some(chunk) => self.ready.extend(self.parser.push(&chunk)),
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SseEvent, SseParser};

    fn ev(id: Option<&str>, event: &str, data: &str) -> SseEvent {
        SseEvent {
            id: id.map(str::to_owned),
            event: event.to_owned(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn parses_events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"id: 1\nevent: run.sta").is_empty());
        assert_eq!(
            p.push(b"rted\ndata: {\"seq\":1}\n\nid: 2\ndata: a\ndata: b\n\n"),
            vec![
                ev(Some("1"), "run.started", "{\"seq\":1}"),
                ev(Some("2"), "message", "a\nb")
            ]
        );
    }

    #[test]
    fn handles_crlf_comments_and_events_without_data() {
        let mut p = SseParser::default();
        let got = p.push(b": keep-alive\r\n\r\nevent: ping\r\n\r\ndata:x\r");
        assert!(got.is_empty(), "{got:?}");
        // The `\n` of a `\r\n` split across chunks is not a second line break.
        assert_eq!(p.push(b"\n\r\n"), vec![ev(None, "message", "x")]);
    }
}
