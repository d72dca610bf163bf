//! `GET /workflow-runs/{id}/stream`: a run's live feed over WebSocket.
//!
//! Frames are JSON text, one object each, `type` first:
//!
//! - `{"type":"run","data":Run}`: a snapshot, first and again just before
//!   the server closes the socket (then with the outputs);
//! - `{"type":"event","data":Event}`: run events, as in `/events` (status
//!   changes, step transitions), backlog after `after` first, then live;
//! - `{"type":"log","step":"<key>","data":LogLine}`: log and progress
//!   lines of every step (with `logs=false`, none).
//!
//! The socket closes with a normal close frame (1000) once the run has
//! finished and everything was sent, or with 1011 when the feed broke
//! (reconnect with `after` = the last event `seq` received). Pings every
//! 20 s keep idle connections open through proxies.

use super::auth::{StreamAuth, WS_PROTOCOL};
use super::envelope::{ApiResult, path_id};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use poem::web::websocket::{BoxWebSocketUpgraded, CloseCode, Message, WebSocket, WebSocketStream};
use poem_openapi::param::{Path, Query};
use poem_openapi::{OpenApi, Tags};
use std::time::Duration;
use weft_api_types::{EventView, LogView, RunView};
use weft_engine::Engine;
use weft_engine::{FeedItem, FeedSpec, Logs};
use weft_model::{Principal, RunId};

/// How often an idle socket is pinged.
const PING_EVERY: Duration = Duration::from_secs(20);

#[derive(Tags)]
enum Tag {
    /// Start, watch and control workflow runs.
    WorkflowRuns,
}

/// The WebSocket endpoint.
pub struct StreamApi {
    /// The engine.
    pub engine: Engine,
}

#[OpenApi]
impl StreamApi {
    /// A run's live feed over WebSocket (upgrade with `GET`; subprotocol
    /// `weft.v1`). Text frames carry JSON: `{"type":"run"|"event"|"log", …}`;
    /// run events after `after` and, unless `logs=false`, every step's log
    /// lines (stored ones first when `after` is 0), then live ones; the
    /// server closes normally (1000) when the run has finished.
    /// Authenticate with `Authorization: Bearer <token>`, or, from a
    /// browser, by offering the subprotocols `weft.v1` and `weft.bearer.<token>`.
    #[oai(
        path = "/workflow-runs/:id/stream",
        method = "get",
        tag = "Tag::WorkflowRuns",
        operation_id = "streamRun"
    )]
    async fn stream(
        &self,
        auth: StreamAuth,
        id: Path<String>,
        /// Resume after this run event sequence number.
        #[oai(
            default,
            validator(minimum(value = "0"), maximum(value = "9007199254740991"))
        )]
        after: Query<u64>,
        /// Whether to include log lines.
        #[oai(default = "yes")]
        logs: Query<bool>,
        ws: WebSocket,
    ) -> ApiResult<BoxWebSocketUpgraded> {
        let id: RunId = path_id(&id, "run")?;
        let caller = auth.principal();
        let run = self.engine.run(caller, &id).await?;
        tracing::debug!(run = %id, by = %auth.principal().name, "run stream opened");
        let spec = FeedSpec {
            run_id: id,
            events_after: Some(after.0),
            logs: if logs.0 {
                Logs::All {
                    backlog: after.0 == 0,
                }
            } else {
                Logs::None
            },
        };
        let feed = Feed {
            run_id: spec.run_id.clone(),
            items: self.engine.feed(caller, spec).await?,
            engine: self.engine.clone(),
            caller: caller.clone(),
        };
        // The upgrade callback must be `Sync`; a boxed stream is only `Send`.
        let feed = std::sync::Mutex::new(feed);
        Ok(ws
            .protocols([WS_PROTOCOL])
            .on_upgrade(move |socket| async move {
                let feed = feed.into_inner().unwrap_or_else(|e| e.into_inner());
                serve_socket(feed, RunView::from(run), socket).await;
            })
            .boxed())
    }
}

fn yes() -> bool {
    true
}

/// The client went away (or the connection broke).
struct Gone;

/// A run's feed and what is needed to read the run again when it ends.
struct Feed {
    run_id: RunId,
    items: BoxStream<'static, FeedItem>,
    engine: Engine,
    caller: Principal,
}

async fn serve_socket(feed: Feed, run: RunView, socket: WebSocketStream) {
    let Feed {
        run_id,
        items: mut feed,
        engine,
        caller,
    } = feed;
    let (mut sink, mut incoming) = socket.split();
    if send_json(
        &mut sink,
        serde_json::json!({"type": "run", "data": run_json(run)}),
    )
    .await
    .is_err()
    {
        return;
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            item = feed.next() => {
                let Some(item) = item else { break };
                if send_json(&mut sink, frame(item)).await.is_err() {
                    return;
                }
            }
            msg = incoming.next() => match msg {
                // The client closed (the library answers its close frame) or vanished.
                None | Some(Err(_) | Ok(Message::Close(_))) => return,
                // Nothing to read from clients; pongs are handled by the library.
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if sink.send(Message::Ping(Vec::new())).await.is_err() {
                    return;
                }
            }
        }
    }
    // The feed ends when the run has finished, or when reading it failed.
    let close = match engine.run(&caller, &run_id).await {
        Ok(run) if run.status.is_terminal() => {
            let snapshot = serde_json::json!({"type": "run", "data": run_json(RunView::from(run))});
            if send_json(&mut sink, snapshot).await.is_err() {
                return;
            }
            (CloseCode::Normal, "run finished".to_owned())
        }
        _ => (
            CloseCode::Error,
            "feed interrupted; reconnect with ?after=<last event seq>".to_owned(),
        ),
    };
    let _ = sink.send(Message::Close(Some(close))).await;
    // Wait (briefly) for the client's close frame so the TCP connection
    // ends cleanly on its side.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = incoming.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

fn run_json(run: RunView) -> serde_json::Value {
    poem_openapi::types::ToJSON::to_json(&run).unwrap_or_default()
}

fn frame(item: FeedItem) -> serde_json::Value {
    match item {
        FeedItem::Event(e) => serde_json::json!({"type": "event", "data": EventView::from(e)}),
        FeedItem::Log(l) => {
            let step = l.step_key.clone();
            serde_json::json!({"type": "log", "step": step, "data": LogView::from(l)})
        }
    }
}

async fn send_json<S>(sink: &mut S, value: serde_json::Value) -> Result<(), Gone>
where
    S: futures::Sink<Message> + Unpin,
{
    sink.send(Message::Text(value.to_string()))
        .await
        .map_err(|_| Gone)
}
