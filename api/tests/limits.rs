//! Request body limits (413 in the envelope, declared or chunked, the
//! connection kept), `Idempotency-Key` bounds, and pagination of the lists
//! that grow: plugins, step types, templates.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use std::collections::HashSet;
use support::{TOKEN, assert_error_shape, server, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1 << 20;

/// One response read off a kept-alive connection (its body framed by
/// `Content-Length`, which every enveloped answer has).
struct Reply {
    status: u16,
    head: String,
    body: Value,
}

/// Reads one response from `sock`, leaving the connection open.
async fn read_reply(sock: &mut TcpStream) -> Reply {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a response: {raw:?}");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    let mut body = raw[split + 4..].to_vec();
    while body.len() < length {
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&buf[..n]);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    Reply {
        status,
        head,
        body: serde_json::from_slice(&body[..length]).unwrap_or(Value::Null),
    }
}

/// A request head on a keep-alive connection (no `Content-Length`).
fn head(method: &str, path: &str, content_type: &str, extra: &str) -> String {
    format!(
        "{method} /api/v1{path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: {content_type}\r\n{extra}"
    )
}

/// Sends `body` with a `Content-Length`.
async fn send_sized(sock: &mut TcpStream, method: &str, path: &str, ct: &str, body: &[u8]) {
    let h = head(
        method,
        path,
        ct,
        &format!("content-length: {}\r\n\r\n", body.len()),
    );
    sock.write_all(h.as_bytes()).await.unwrap();
    sock.write_all(body).await.unwrap();
}

/// Sends `body` chunked, 64 KiB a chunk, with no `Content-Length`.
async fn send_chunked(sock: &mut TcpStream, method: &str, path: &str, ct: &str, body: &[u8]) {
    let h = head(method, path, ct, "transfer-encoding: chunked\r\n\r\n");
    sock.write_all(h.as_bytes()).await.unwrap();
    for chunk in body.chunks(64 << 10) {
        sock.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        sock.write_all(chunk).await.unwrap();
        sock.write_all(b"\r\n").await.unwrap();
    }
    sock.write_all(b"0\r\n\r\n").await.unwrap();
}

/// The next request on the same connection still gets an answer.
async fn still_usable(sock: &mut TcpStream) {
    let h = head("GET", "/workflow-runs", "application/json", "\r\n");
    sock.write_all(h.as_bytes()).await.unwrap();
    let r = read_reply(sock).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

fn assert_too_large(r: &Reply, limit: usize) {
    assert_eq!(r.status, 413, "{}\n{}", r.head, r.body);
    assert_eq!(r.body["success"], false, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "PAYLOAD_TOO_LARGE", "{}", r.body);
    assert_eq!(
        r.body["error"]["details"]["limitBytes"], limit,
        "{}",
        r.body
    );
    assert!(r.body["meta"]["requestId"].is_string(), "{}", r.body);
}

/// A JSON run request of about `size` bytes (a long template name).
fn big_run(size: usize) -> Vec<u8> {
    json!({"template": "x".repeat(size), "inputs": {}})
        .to_string()
        .into_bytes()
}

/// A YAML template of about `size` bytes (a long description).
fn big_yaml(size: usize) -> Vec<u8> {
    format!(
        "name: big\ndescription: {}\nsteps:\n  - id: fib\n    uses: core/fibo\n    with: {{n: 3}}\n",
        "x".repeat(size)
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_limit_bodies_get_413_declared_or_chunked_and_the_connection_lives() {
    let s = server().await;
    let mut sock = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();

    // JSON run creation with a Content-Length over the 1 MiB default.
    let run = big_run(MIB + 1000);
    send_sized(
        &mut sock,
        "POST",
        "/workflow-runs",
        "application/json",
        &run,
    )
    .await;
    assert_too_large(&read_reply(&mut sock).await, MIB);
    still_usable(&mut sock).await;

    // The same body chunked: nothing declared, cut off as it arrives.
    send_chunked(
        &mut sock,
        "POST",
        "/workflow-runs",
        "application/json",
        &run,
    )
    .await;
    assert_too_large(&read_reply(&mut sock).await, MIB);
    still_usable(&mut sock).await;

    // A YAML template, sized and chunked.
    let yaml = big_yaml(2 * MIB);
    for path in ["/workflow-templates", "/workflow-templates/validate"] {
        send_sized(&mut sock, "POST", path, "application/yaml", &yaml).await;
        assert_too_large(&read_reply(&mut sock).await, MIB);
        send_chunked(&mut sock, "POST", path, "application/yaml", &yaml).await;
        assert_too_large(&read_reply(&mut sock).await, MIB);
    }
    still_usable(&mut sock).await;

    // An answer, and a template update, over the limit.
    let answer = json!({"stepId": "a", "values": {"v": "x".repeat(MIB)}}).to_string();
    send_chunked(
        &mut sock,
        "POST",
        "/workflow-runs/nope/input",
        "application/json",
        answer.as_bytes(),
    )
    .await;
    assert_too_large(&read_reply(&mut sock).await, MIB);
    send_sized(
        &mut sock,
        "PUT",
        "/workflow-templates/big",
        "application/yaml",
        &yaml,
    )
    .await;
    assert_too_large(&read_reply(&mut sock).await, MIB);
    still_usable(&mut sock).await;

    // Under the limit the same routes work as before: nothing was stored.
    let ok = big_yaml(MIB / 2);
    send_chunked(
        &mut sock,
        "POST",
        "/workflow-templates",
        "application/yaml",
        &ok,
    )
    .await;
    let r = read_reply(&mut sock).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let list = s.api("GET", "/workflow-templates", None).await.json();
    assert_eq!(list["meta"]["pagination"]["total"], 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_template_is_refused_from_its_declared_length_alone() {
    let s = server().await;
    let mut sock = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    // Only the head is sent: the answer must not wait for 50 MB.
    let h = head(
        "POST",
        "/workflow-templates",
        "application/yaml",
        &format!("content-length: {}\r\n\r\nname: big\n", 50 * MIB),
    );
    sock.write_all(h.as_bytes()).await.unwrap();
    let r = read_reply(&mut sock).await;
    assert_too_large(&r, MIB);
    // Too much to drain: the server says it closes.
    assert!(
        r.head.to_ascii_lowercase().contains("connection: close"),
        "{}",
        r.head
    );
    let mut rest = Vec::new();
    sock.read_to_end(&mut rest).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_expecting_100_continue_is_refused_without_sending_the_body() {
    let s = server().await;
    let mut sock = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    let h = head(
        "POST",
        "/workflow-runs",
        "application/json",
        &format!(
            "expect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            2 * MIB
        ),
    );
    sock.write_all(h.as_bytes()).await.unwrap();
    // The first answer is the 413 itself, not `100 Continue`.
    let r = read_reply(&mut sock).await;
    assert_too_large(&r, MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_toml_sets_the_limits_per_route() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("weft.toml");
    std::fs::write(
        &config,
        "[http]\nmax_body_bytes = 2000\nmax_template_body_bytes = 100000\n",
    )
    .unwrap();
    let s = start(
        &[
            "--db",
            "mem://",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
        None,
    )
    .await;
    let auth = format!("Bearer {TOKEN}");
    let body = big_run(3000);
    let r = s
        .call(
            "POST",
            "/api/v1/workflow-runs",
            &[("authorization", &auth)],
            Some(("application/json", &body)),
        )
        .await
        .unwrap();
    assert_error_shape(&r, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(r.json()["error"]["details"]["limitBytes"], 2000);
    // 3000 bytes on the template route is within its own, larger limit.
    let yaml = big_yaml(3000);
    let r = s
        .api_raw("POST", "/workflow-templates", "application/yaml", &yaml)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // The bundled core, files, http and postgres plugins still installed:
    // the plugin limit is apart.
    let r = s.api("GET", "/plugins", None).await.json();
    assert_eq!(r["meta"]["pagination"]["total"], 4, "{r}");
    // The document says so.
    let spec = s
        .call("GET", "/api/v1/openapi.json", &[], None)
        .await
        .unwrap()
        .json();
    assert!(
        spec["paths"]["/workflow-runs"]["post"]["responses"]["413"].is_object(),
        "413 is documented"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_bounded() {
    let s = server().await;
    s.template("name: fib\nsteps:\n  - id: fib\n    uses: core/fibo\n    with: {n: 3}\n")
        .await;
    let auth = format!("Bearer {TOKEN}");
    let body = json!({"template": "fib"}).to_string();
    let start_with = |key: String| {
        let auth = auth.clone();
        let body = body.clone();
        let s = &s;
        async move {
            s.call(
                "POST",
                "/api/v1/workflow-runs",
                &[("authorization", &auth), ("idempotency-key", &key)],
                Some(("application/json", body.as_bytes())),
            )
            .await
            .unwrap()
        }
    };
    let long = start_with("k".repeat(256)).await;
    assert_error_shape(&long, 400, "INVALID_IDEMPOTENCY_KEY");
    let first = start_with("k".repeat(255)).await;
    assert_eq!(first.status, 201, "{}", first.text());
    let again = start_with("k".repeat(255)).await;
    assert_eq!(again.status, 201, "{}", again.text());
    assert_eq!(
        first.json()["data"]["id"],
        again.json()["data"]["id"],
        "a key at the limit still deduplicates"
    );
}

/// Every item of a list, a page of `size` at a time, checking the
/// pagination metadata on the way.
async fn walk(s: &support::Server, path: &str, size: u32) -> Vec<Value> {
    let mut all = Vec::new();
    let mut page: u32 = 1;
    loop {
        let r = s
            .api("GET", &format!("{path}?page={page}&pageSize={size}"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        let p = &j["meta"]["pagination"];
        assert_eq!(p["page"], page, "{j}");
        assert_eq!(p["pageSize"], size, "{j}");
        let items = j["data"].as_array().unwrap().clone();
        assert!(items.len() <= size as usize, "{j}");
        all.extend(items);
        if u64::from(page) >= p["totalPages"].as_u64().unwrap() {
            assert_eq!(p["total"].as_u64().unwrap(), all.len() as u64, "{j}");
            return all;
        }
        page += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_step_types_and_templates_are_paginated() {
    let s = server().await;
    s.install("hello-plugin.wasm").await;
    for name in ["c", "a", "e", "b", "d"] {
        s.template(&format!(
            "name: {name}\nsteps:\n  - id: fib\n    uses: core/fibo\n    with: {{n: 3}}\n"
        ))
        .await;
    }

    let plugins = walk(&s, "/plugins", 1).await;
    assert_eq!(plugins.len(), 5, "core, files, http, postgres and hello");
    let ids: HashSet<_> = plugins.iter().map(|p| p["id"].clone()).collect();
    assert_eq!(ids.len(), 5, "no plugin on two pages");

    let types = walk(&s, "/step-types", 2).await;
    let names: HashSet<_> = types.iter().map(|t| t["type"].clone()).collect();
    assert_eq!(names.len(), types.len(), "no step type on two pages");
    let declared: usize = plugins
        .iter()
        .map(|p| p["stepTypes"].as_array().unwrap().len())
        .sum();
    assert_eq!(types.len(), declared);
    assert!(names.contains(&json!("core/fibo")));

    let templates = walk(&s, "/workflow-templates", 2).await;
    let order: Vec<_> = templates.iter().map(|t| t["name"].clone()).collect();
    assert_eq!(order, ["a", "b", "c", "d", "e"], "by name across pages");

    // Every update is a revision: those come in pages too, oldest first.
    for n in 4..7 {
        let yaml =
            format!("name: a\nsteps:\n  - id: fib\n    uses: core/fibo\n    with: {{n: {n}}}\n");
        let r = s
            .api_raw(
                "PUT",
                "/workflow-templates/a",
                "application/yaml",
                yaml.as_bytes(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let revisions = walk(&s, "/workflow-templates/a/revisions", 3).await;
    let numbers: Vec<_> = revisions.iter().map(|r| r["revision"].clone()).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);

    // Without parameters: the first page of 20, with the metadata.
    let j = s.api("GET", "/workflow-templates", None).await.json();
    assert_eq!(j["meta"]["pagination"]["pageSize"], 20, "{j}");
    assert_eq!(j["meta"]["pagination"]["totalPages"], 1, "{j}");
    // A page past the end is empty, not an error.
    let j = s.api("GET", "/plugins?page=9", None).await.json();
    assert_eq!(j["data"], json!([]), "{j}");
    assert_eq!(j["meta"]["pagination"]["total"], 5, "{j}");
    // Out-of-range sizes are refused as on /workflow-runs.
    for path in [
        "/plugins",
        "/step-types",
        "/workflow-templates",
        "/workflow-templates/a/revisions",
    ] {
        let r = s.api("GET", &format!("{path}?pageSize=101"), None).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let r = s.api("GET", &format!("{path}?page=0"), None).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }
}
