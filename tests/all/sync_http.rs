//! The real `http` connector through the real host, against a scripted
//! loopback API and webhook: offset, cursor and `Link` pagination, an auth
//! header from the config, 429 with `Retry-After`, incremental reads, and
//! the failures a user must be able to act on.

use crate::sync::{configured, files_host, install};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use weft_host::{ConnectorCallRequest, ConnectorFailure, InvokeError, PluginHost, SyncRequest};
use weft_model::{
    CapabilityGrants, Checkpoint, ConfiguredStream, ConnectorRole, HostPattern, PluginDigest,
    PluginErrorKind, StreamInfo, SyncMode, WriteMode,
};
use weft_tests::fake_http::{Exchange, FakeHttp, Reply};

const TOKEN: &str = "Bearer s3cret-token";

/// Order `i`: `seq` is the cursor, `tags` an array.
fn order(i: u64) -> Value {
    json!({
        "id": i,
        "seq": i,
        "updated_at": format!("2026-01-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60),
        "total": i as f64 * 1.5,
        "tags": ["t", i.to_string()],
    })
}

/// The scripted API: `count` orders, readable three ways; the first
/// request for offset 100 gets a 429 with `Retry-After: 1`.
async fn fake_api(count: Arc<AtomicU64>) -> anyhow::Result<FakeHttp> {
    let throttled = AtomicBool::new(false);
    FakeHttp::start(move |r: &Exchange| {
        if r.header("authorization") != Some(TOKEN) {
            return Reply::status(401, "bad token");
        }
        let n = count.load(Ordering::SeqCst);
        let since: u64 = r.param("since").and_then(|s| s.parse().ok()).unwrap_or(0);
        let all: Vec<u64> = (1..=n).filter(|i| *i >= since).collect();
        let page = |from: usize, size: usize| -> Vec<Value> {
            all.iter()
                .skip(from)
                .take(size)
                .map(|i| order(*i))
                .collect()
        };
        let num = |name: &str, default: usize| {
            r.param(name)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(default)
        };
        match r.path() {
            "/v1/orders" => {
                let offset = num("offset", 0);
                if offset == 100 && !throttled.swap(true, Ordering::SeqCst) {
                    return Reply::status(429, "slow down").header("retry-after", "1");
                }
                Reply::json(&json!({"data": page(offset, num("limit", 10))}))
            }
            "/v1/cursor" => {
                let at = r
                    .param("cursor")
                    .and_then(|c| c.trim_start_matches('c').parse().ok())
                    .unwrap_or(0);
                let next = (at + 70 < all.len()).then(|| format!("c{}", at + 70));
                Reply::json(&json!({"result": {"items": page(at, 70)}, "meta": {"next": next}}))
            }
            "/v1/link" => {
                let p = num("page", 1).max(1);
                let reply = Reply::json(&Value::Array(page((p - 1) * 40, 40)));
                if p * 40 < all.len() {
                    reply.header(
                        "link",
                        &format!(
                            r#"</v1/link?page={}>; rel="next", </v1/link?page=1>; rel="first""#,
                            p + 1
                        ),
                    )
                } else {
                    reply
                }
            }
            _ => Reply::status(404, "no such endpoint"),
        }
    })
    .await
}

fn source_config(api: &FakeHttp) -> Value {
    json!({
        "baseUrl": format!("{}/v1", api.base_url()),
        "authToken": TOKEN,
        "retry": {"backoffMs": 50},
        "streams": [
            {
                "name": "orders", "path": "/orders", "recordsPointer": "/data",
                "pagination": {"type": "offset", "pageSize": 50},
                "cursorField": "seq", "cursorParam": "since", "primaryKey": ["id"]
            },
            {
                "name": "by_cursor", "path": "/cursor", "recordsPointer": "/result/items",
                "pagination": {"type": "cursor", "cursorPointer": "/meta/next"}
            },
            {"name": "by_link", "path": "/link", "pagination": {"type": "link"}}
        ]
    })
}

/// A host with `http` (granted `ports`) and `files` (`/data` as `dir`).
async fn host(
    dir: &Path,
    ports: &[u16],
) -> anyhow::Result<(PluginHost, PluginDigest, PluginDigest)> {
    let (host, files) = files_host(dir).await?;
    let http = install(&host, "http").await?;
    host.set_grants(
        &http,
        &CapabilityGrants {
            outbound_hosts: ports
                .iter()
                .map(|p| HostPattern::parse(&format!("127.0.0.1:{p}")))
                .collect::<Result<_, _>>()?,
            ..Default::default()
        },
    )?;
    Ok((host, http, files))
}

fn call(plugin: &PluginDigest, role: ConnectorRole, config: &Value) -> ConnectorCallRequest {
    ConnectorCallRequest::new(plugin.clone(), role, config.clone())
}

/// The shared sync request, from `state`, in batches of at most 30 rows
/// (so a page of records spans several).
fn sync_request(
    id: &str,
    source: (&PluginDigest, Value),
    destination: (&PluginDigest, Value),
    streams: Vec<ConfiguredStream>,
    state: Vec<Checkpoint>,
) -> SyncRequest {
    let mut req = crate::sync::sync_request(id, source, destination, streams);
    req.state = state;
    req.read_limits.max_rows = 30;
    req
}

fn select(streams: &[StreamInfo], mode: SyncMode) -> Vec<ConfiguredStream> {
    crate::sync::select(streams, mode, WriteMode::Append)
}

/// The rows of every output file of `stream` in `dir`.
fn output_rows(dir: &Path, stream: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{stream}-")) && name.ends_with(".ndjson") {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap();
            rows.extend(
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()),
            );
        }
    }
    rows
}

fn ids(rows: &[Value]) -> Vec<u64> {
    let mut ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_is_read_through_three_paginations_and_then_incrementally() -> anyhow::Result<()> {
    let count = Arc::new(AtomicU64::new(250));
    let api = fake_api(count.clone()).await?;
    let dir = tempfile::tempdir()?;
    let (host, http, files) = host(dir.path(), &[api.port]).await?;
    let config = source_config(&api);

    host.check_connector(call(&http, ConnectorRole::Source, &config))
        .await?;
    let streams = host
        .discover(call(&http, ConnectorRole::Source, &config))
        .await?
        .streams;
    let names: Vec<_> = streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["orders", "by_cursor", "by_link"]);
    let props = &streams[0].json_schema["properties"];
    assert_eq!(props["id"]["type"][0], "integer", "{props}");
    assert_eq!(props["total"]["type"][0], "number");
    assert_eq!(props["tags"]["type"][0], "array");
    assert_eq!(streams[0].cursor_candidates, ["seq", "updated_at"]);
    assert_eq!(streams[0].primary_key_candidates, [vec!["id".to_string()]]);

    let out = json!({"path": "/data/out", "format": "ndjson"});
    let before_sync = api.requests().len();
    let started = Instant::now();
    let report = host
        .sync(sync_request(
            "full",
            (&http, config.clone()),
            (&files, out.clone()),
            select(&streams, SyncMode::FullRefresh),
            Vec::new(),
        ))
        .await?;
    let out_dir = dir.path().join("out");
    for stream in ["orders", "by_cursor", "by_link"] {
        let rows = output_rows(&out_dir, stream);
        assert_eq!(ids(&rows), (1..=250).collect::<Vec<_>>(), "{stream}");
    }
    let first = &output_rows(&out_dir, "orders")[0];
    assert_eq!(
        first["tags"],
        json!(["t", "1"]),
        "arrays stay arrays through Arrow"
    );

    // Every request carried the token; the 429 was waited out in place.
    let requests = api.requests()[before_sync..].to_vec();
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some(TOKEN))
    );
    let at_100 = requests
        .iter()
        .filter(|r| r.path() == "/v1/orders" && r.param("offset").as_deref() == Some("100"))
        .count();
    assert_eq!(at_100, 2, "the throttled page was asked for again");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    // Offset pages of 50: 0..=250, the short last page ends the stream.
    let offsets: Vec<_> = requests
        .iter()
        .filter(|r| r.path() == "/v1/orders")
        .filter_map(|r| r.param("offset"))
        .collect();
    assert_eq!(offsets, ["0", "50", "100", "100", "150", "200", "250"]);

    // 20 more orders; an incremental read asks from the saved cursor.
    count.store(270, Ordering::SeqCst);
    let orders = vec![ConfiguredStream {
        cursor_field: Some("seq".into()),
        ..configured(
            "orders",
            streams[0].json_schema.clone(),
            SyncMode::Incremental,
            WriteMode::Append,
        )
    }];
    let first_inc = host
        .sync(sync_request(
            "inc-1",
            (&http, config.clone()),
            (&files, json!({"path": "/data/inc", "format": "ndjson"})),
            orders.clone(),
            Vec::new(),
        ))
        .await?;
    assert_eq!(
        ids(&output_rows(&dir.path().join("inc"), "orders")).len(),
        270
    );
    let saved = first_inc.state[0].state.clone();
    assert_eq!(saved, json!({"cursor": 270}));

    count.store(275, Ordering::SeqCst);
    let before = api.requests().len();
    host.sync(sync_request(
        "inc-2",
        (&http, config.clone()),
        (&files, json!({"path": "/data/inc2", "format": "ndjson"})),
        orders,
        first_inc.state.clone(),
    ))
    .await?;
    let new = api.requests()[before..].to_vec();
    assert_eq!(
        new[0].param("since").as_deref(),
        Some("270"),
        "{:?}",
        new[0]
    );
    assert_eq!(
        ids(&output_rows(&dir.path().join("inc2"), "orders")),
        (270..=275).collect::<Vec<_>>(),
        "the boundary row again (at-least-once), then the new ones"
    );
    assert_eq!(report.progress.streams.len(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_say_what_to_fix() -> anyhow::Result<()> {
    let api = fake_api(Arc::new(AtomicU64::new(10))).await?;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let dated_once = AtomicBool::new(false);
    let hostile = FakeHttp::start(move |r: &Exchange| match r.path() {
        "/dated" if !dated_once.swap(true, Ordering::SeqCst) => {
            let at = std::time::SystemTime::now() + Duration::from_secs(2);
            Reply::status(429, "later").header("retry-after", &httpdate::fmt_http_date(at))
        }
        "/dated" => Reply::json(&json!([{"id": 1}])),
        "/escape" => Reply::json(&json!([{"id": 1}]))
            .header("link", r#"<http://attacker.example/steal>; rel="next""#),
        "/stuck" => Reply::json(&json!({"items": [{"id": 1}], "next": "same"})),
        "/later" => Reply::status(429, "come back tomorrow").header("retry-after", "3600"),
        "/scalar" => Reply::json(&json!({"items": 5})),
        _ => Reply::status(404, "nothing here"),
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let (host, http, files) = host(dir.path(), &[api.port, closed, hostile.port]).await?;
    let check = |config: Value| host.check_connector(call(&http, ConnectorRole::Source, &config));
    let plugin_error = |r: Result<(), ConnectorFailure>| match r {
        Err(ConnectorFailure::Plugin(e)) => e,
        other => panic!("expected a plugin error, got {other:?}"),
    };
    let one_stream = |base: String, stream: Value| json!({"baseUrl": base, "streams": [stream], "retry": {"maxAttempts": 2, "backoffMs": 10}});

    // A wrong token is `auth`, and the token is not in the message.
    let mut wrong = source_config(&api);
    wrong["authToken"] = json!("Bearer wrong-token");
    let e = plugin_error(check(wrong).await);
    assert_eq!(e.kind, PluginErrorKind::Auth, "{e:?}");
    assert!(!e.message.contains("wrong-token"), "{}", e.message);

    // Nothing listening: transient, naming the address.
    let e = plugin_error(
        check(one_stream(
            format!("http://127.0.0.1:{closed}"),
            json!({"name": "x", "path": "/"}),
        ))
        .await,
    );
    assert_eq!(e.kind, PluginErrorKind::Transient, "{e:?}");
    assert!(
        e.message.contains(&format!("127.0.0.1:{closed}")),
        "{}",
        e.message
    );

    // A host not granted: the host's denial, naming what to grant.
    let ungranted = FakeHttp::start(|_: &Exchange| Reply::json(&json!([]))).await?;
    match check(one_stream(
        ungranted.base_url(),
        json!({"name": "x", "path": "/"}),
    ))
    .await
    {
        Err(ConnectorFailure::Host(InvokeError::CapabilityDenied(msg))) => {
            assert!(
                msg.contains(&format!("127.0.0.1:{}", ungranted.port)),
                "{msg}"
            )
        }
        other => panic!("expected CapabilityDenied, got {other:?}"),
    }
    assert!(ungranted.requests().is_empty(), "stopped at egress");

    // A 404 is a config error quoting the API.
    let e = plugin_error(
        check(one_stream(
            hostile.base_url(),
            json!({"name": "x", "path": "/missing"}),
        ))
        .await,
    );
    assert_eq!(e.kind, PluginErrorKind::Config);
    assert!(
        e.message.contains("404") && e.message.contains("nothing here"),
        "{}",
        e.message
    );

    // Records that are not an array.
    let e = plugin_error(
        check(one_stream(
            hostile.base_url(),
            json!({"name": "x", "path": "/scalar", "recordsPointer": "/items"}),
        ))
        .await,
    );
    assert_eq!(e.kind, PluginErrorKind::Data);

    // A Retry-After longer than allowed: rate-limited with the delay, at once.
    let started = Instant::now();
    let e = plugin_error(
        check(one_stream(
            hostile.base_url(),
            json!({"name": "x", "path": "/later"}),
        ))
        .await,
    );
    assert_eq!(e.kind, PluginErrorKind::RateLimited, "{e:?}");
    assert_eq!(e.retry_after_ms, Some(3_600_000));
    assert!(started.elapsed() < Duration::from_secs(30));

    // A Retry-After given as an HTTP date is waited out too.
    let started = Instant::now();
    check(one_stream(
        hostile.base_url(),
        json!({"name": "x", "path": "/dated"}),
    ))
    .await?;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let dated = hostile
        .requests()
        .iter()
        .filter(|r| r.path() == "/dated")
        .count();
    assert_eq!(dated, 2);

    // Pages that lead off the origin or nowhere fail the read.
    // (A schema is given, so discover needs no page.)
    let read = |mut stream: Value| {
        stream["schema"] = json!({"type": "object", "properties": {"id": {"type": "integer"}}});
        let config = one_stream(hostile.base_url(), stream);
        let host = &host;
        let http = &http;
        let files = &files;
        async move {
            let streams = host
                .discover(call(http, ConnectorRole::Source, &config))
                .await?
                .streams;
            let req = sync_request(
                "hostile",
                (http, config.clone()),
                (files, json!({"path": "/data/h", "format": "ndjson"})),
                select(&streams, SyncMode::FullRefresh),
                Vec::new(),
            );
            anyhow::Ok(host.sync(req).await)
        }
    };
    let escaped =
        read(json!({"name": "x", "path": "/escape", "pagination": {"type": "link"}})).await?;
    let err = escaped.unwrap_err();
    assert!(err.to_string().contains("leaves"), "{err}");
    assert!(hostile.requests().iter().all(|r| r.path() != "/steal"));
    let stuck = read(json!({
        "name": "x", "path": "/stuck", "recordsPointer": "/items",
        "pagination": {"type": "cursor", "cursorPointer": "/next"}
    }))
    .await?;
    let err = stuck.unwrap_err();
    assert!(err.to_string().contains("does not advance"), "{err}");
    let out = dir.path().join("h");
    assert!(
        !out.exists() || output_rows(&out, "x").is_empty(),
        "nothing published"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_every_record_in_batches_through_a_failure() -> anyhow::Result<()> {
    let failed_once = AtomicBool::new(false);
    let hook = FakeHttp::start(move |r: &Exchange| {
        if r.header("x-hook-key") != Some("k3y") {
            return Reply::status(403, "no");
        }
        let body = r.json();
        let offset = body["offset"].as_u64().unwrap_or(0);
        if offset == 500 && !failed_once.swap(true, Ordering::SeqCst) {
            return Reply::status(502, "bad gateway");
        }
        Reply::status(204, "")
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input)?;
    let lines: String = (1..=1234)
        .map(|i| format!("{{\"id\": {i}, \"tags\": [\"a\", {i}]}}\n"))
        .collect();
    std::fs::write(input.join("events.ndjson"), lines)?;
    let (host, http, files) = host(dir.path(), &[hook.port]).await?;
    let webhook = json!({
        "url": format!("{}/hook", hook.base_url()),
        "authHeader": "x-hook-key", "authToken": "k3y",
        "batchSize": 500, "retry": {"backoffMs": 20}
    });
    host.check_connector(call(&http, ConnectorRole::Destination, &webhook))
        .await?;
    let streams = host
        .discover(call(
            &files,
            ConnectorRole::Source,
            &json!({"path": "/data/in"}),
        ))
        .await?
        .streams;
    let mut req = sync_request(
        "hook-sync",
        (&files, json!({"path": "/data/in"})),
        (&http, webhook),
        select(&streams, SyncMode::FullRefresh),
        Vec::new(),
    );
    // A commit posts what is pending: commit only at the end here, so the
    // batches are full.
    req.commit_interval = Duration::from_secs(3600);
    let report = host.sync(req).await?;
    assert_eq!(report.progress.streams[0].rows, 1234);

    let posts: Vec<Exchange> = hook
        .requests()
        .into_iter()
        .filter(|r| r.json()["check"] != json!(true))
        .collect();
    let mut by_key = std::collections::BTreeMap::new();
    for post in &posts {
        assert_eq!(post.method, "POST");
        assert_eq!(post.header("content-type"), Some("application/json"));
        let key = post.header("idempotency-key").unwrap().to_string();
        let body = post.json();
        assert!(body["records"].as_array().unwrap().len() <= 500);
        if let Some(previous) = by_key.insert(key.clone(), body.clone()) {
            assert_eq!(previous, body, "a retry under {key} sends the same records");
        }
    }
    assert_eq!(posts.len(), 4, "three batches, one retried");
    assert_eq!(
        by_key.keys().cloned().collect::<Vec<_>>(),
        [
            "hook-sync:events:0",
            "hook-sync:events:1000",
            "hook-sync:events:500"
        ]
    );
    let mut ids: Vec<u64> = by_key
        .values()
        .flat_map(|b| b["records"].as_array().unwrap().clone())
        .map(|r| {
            assert!(r["tags"].is_array(), "{r}");
            r["id"].as_u64().unwrap()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=1234).collect::<Vec<_>>());
    Ok(())
}
