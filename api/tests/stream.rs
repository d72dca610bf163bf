//! The WebSocket run feed against the real binary: auth (header and
//! subprotocol), backlog then live frames, resumption, normal close.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use support::{Server, TOKEN, server};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(s: &Server, path: &str, headers: &[(&str, &str)]) -> Result<Socket, Error> {
    let mut req = format!("ws://127.0.0.1:{}/api/v1{path}", s.port)
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes());
        req.headers_mut().insert(name.unwrap(), v.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// Reads frames until the server closes; returns the JSON frames and the close code.
async fn until_close(
    ws: &mut Socket,
    mut on_frame: impl AsyncFnMut(&Value),
) -> (Vec<Value>, CloseCode) {
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the server closes the socket once the run has finished")
            .expect("no close frame before the end of the stream")
            .unwrap();
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                on_frame(&v).await;
                frames.push(v);
            }
            Message::Close(Some(f)) => return (frames, f.code),
            Message::Close(None) => panic!("close frame without a code"),
            _ => {}
        }
    }
}

fn kinds(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f["type"] == "event")
        .map(|f| f["data"]["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_streams_backlog_then_live_until_a_normal_close() {
    let s = server().await;
    s.template(include_str!("../../examples/approval.yaml"))
        .await;
    let run = s.start_run("approval", json!({})).await;
    s.wait_status(&run, "AWAITING_INPUT").await;
    let path = format!("/workflow-runs/{run}/stream");

    // No token: the handshake is refused with the usual 401.
    match connect(&s, &path, &[]).await {
        Err(Error::Http(resp)) => assert_eq!(resp.status(), 401),
        Err(e) => panic!("expected a 401, got {e}"),
        Ok(_) => panic!("connected without a token"),
    }
    assert_eq!(
        s.call(
            "GET",
            &format!("/api/v1{path}"),
            &[("authorization", &format!("Bearer {TOKEN}"))],
            None
        )
        .await
        .unwrap()
        .status,
        400,
        "a plain GET is not an upgrade"
    );
    match connect(
        &s,
        "/workflow-runs/nope/stream",
        &[("authorization", &format!("Bearer {TOKEN}"))],
    )
    .await
    {
        Err(Error::Http(resp)) => assert_eq!(resp.status(), 404),
        other => panic!("expected a 404, got {:?}", other.map(|_| ())),
    }

    let auth = format!("Bearer {TOKEN}");
    let mut ws = connect(&s, &path, &[("authorization", &auth)])
        .await
        .unwrap();
    let mut answered = false;
    let (frames, code) = until_close(&mut ws, async |f: &Value| {
        // Answer once the backlog showed the step waiting: the rest arrives live.
        if !answered && f["data"]["kind"] == "step.awaiting_input" {
            answered = true;
            let r = s
                .api(
                    "POST",
                    &format!("/workflow-runs/{run}/input"),
                    Some(
                        json!({"stepId": "approve", "values": {"approved": true, "comment": "ok"}}),
                    ),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
    })
    .await;
    assert_eq!(code, CloseCode::Normal);
    assert_eq!(frames[0]["type"], "run");
    assert_eq!(frames[0]["data"]["status"], "AWAITING_INPUT");
    let last = frames.last().unwrap();
    assert_eq!(last["type"], "run");
    assert_eq!(last["data"]["status"], "SUCCESS");
    assert_eq!(last["data"]["outputs"]["deploy"]["comment"], "ok");
    let kinds = kinds(&frames);
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("run.created"),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"step.awaiting_input".to_owned()),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("run.success"),
        "{kinds:?}"
    );
    // Run events that change the status say which, as data.
    let statuses: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "event" && f["data"]["kind"] == "run.status")
        .filter_map(|f| f["data"]["status"].as_str())
        .collect();
    assert!(statuses.contains(&"AWAITING_INPUT"), "{statuses:?}");
    let ended = frames
        .iter()
        .rfind(|f| f["type"] == "event" && f["data"]["kind"] == "run.success");
    assert_eq!(ended.map(|f| &f["data"]["status"]), Some(&json!("SUCCESS")));
    let seqs: Vec<u64> = frames
        .iter()
        .filter(|f| f["type"] == "event")
        .map(|f| f["data"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "dense, in order, no duplicates"
    );

    // Resuming a finished run: only the events after `after`, then close.
    let after = seqs[seqs.len() - 3];
    let mut ws = connect(
        &s,
        &format!("{path}?after={after}&logs=false"),
        &[("authorization", &auth)],
    )
    .await
    .unwrap();
    let (frames, code) = until_close(&mut ws, async |_: &Value| {}).await;
    assert_eq!(code, CloseCode::Normal);
    let resumed: Vec<u64> = frames
        .iter()
        .filter(|f| f["type"] == "event")
        .map(|f| f["data"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(resumed, seqs[seqs.len() - 2..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_authenticate_with_a_subprotocol_and_get_log_lines() {
    let s = server().await;
    s.install("hostile.wasm").await;
    s.template(
        "name: report\nsteps:\n  - id: emit\n    uses: hostile/artifact\n    with: {name: r.txt, text: hi}\n",
    )
    .await;
    let run = s.start_run("report", json!({})).await;
    s.wait_status(&run, "SUCCESS").await;

    let offered = format!("weft.v1, weft.bearer.{TOKEN}");
    let mut req = format!(
        "ws://127.0.0.1:{}/api/v1/workflow-runs/{run}/stream",
        s.port
    )
    .into_client_request()
    .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", offered.parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "weft.v1",
        "the token is never echoed"
    );
    let (frames, code) = until_close(&mut ws, async |_: &Value| {}).await;
    assert_eq!(code, CloseCode::Normal);
    let logs: Vec<&Value> = frames.iter().filter(|f| f["type"] == "log").collect();
    assert!(
        logs.iter()
            .any(|l| l["step"] == "emit" && l["data"]["message"] == "artifact emitted"),
        "{frames:?}"
    );
    assert!(
        logs.iter().any(|l| l["data"]["level"] == "progress"),
        "progress lines are log frames: {frames:?}"
    );
    let _ = ws.close(None).await;

    let wrong = "weft.v1, weft.bearer.wrong";
    let mut req = format!(
        "ws://127.0.0.1:{}/api/v1/workflow-runs/{run}/stream",
        s.port
    )
    .into_client_request()
    .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", wrong.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected a 401, got {:?}", other.map(|_| ())),
    }
}
