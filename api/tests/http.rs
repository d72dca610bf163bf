//! The real `weft serve` binary over loopback HTTP: envelope, errors,
//! auth, templates, runs, idempotency, preconditions and SSE.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use serde_json::{Value, json};
use std::process::{Child, Command};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

const TOKEN: &str = "test-token";

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.args([
        "serve",
        "--db",
        "mem://",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(dir.path())
    .env("WEFT_ADMIN_TOKEN", TOKEN)
    .env("WEFT_LOG", "warn");
    // Waiting for the address blocks; keep it off the async workers.
    let (child, addr) = tokio::task::spawn_blocking(move || support::spawn_serve(cmd))
        .await
        .unwrap();
    let s = Server {
        child,
        port: addr.port(),
        _dir: dir,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = s.call("GET", "/ready", &[], None).await
            && r.status == 200
        {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Server {
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> std::io::Result<Resp> {
        let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.map(|(ct, b)| {
            req.push_str(&format!("content-type: {ct}\r\n"));
            b.to_vec()
        });
        req.push_str(&format!(
            "content-length: {}\r\n\r\n",
            body.as_ref().map_or(0, Vec::len)
        ));
        sock.write_all(req.as_bytes()).await?;
        if let Some(b) = body {
            sock.write_all(&b).await?;
        }
        let mut raw = Vec::new();
        sock.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Ok(Resp {
            status,
            headers,
            body: body.to_owned(),
        })
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let auth = format!("Bearer {TOKEN}");
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.call(
            method,
            &format!("/api/v1{path}"),
            &[("authorization", &auth)],
            bytes.as_deref().map(|b| ("application/json", b)),
        )
        .await
        .unwrap()
    }
}

fn assert_error_shape(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let j = r.json();
    assert_eq!(j["success"], false, "{j}");
    assert_eq!(j["error"]["code"], code, "{j}");
    assert!(j["meta"]["requestId"].is_string(), "{j}");
    assert!(r.header("x-request-id").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_use_the_envelope_everywhere() {
    let s = server().await;
    assert_error_shape(
        &s.call("GET", "/api/v1/plugins", &[], None).await.unwrap(),
        401,
        "UNAUTHORIZED",
    );
    assert_error_shape(
        &s.call(
            "GET",
            "/api/v1/plugins",
            &[("authorization", "Bearer wrong")],
            None,
        )
        .await
        .unwrap(),
        401,
        "UNAUTHORIZED",
    );
    assert_error_shape(&s.api("GET", "/nope", None).await, 404, "NOT_FOUND");
    assert_error_shape(
        &s.api("DELETE", "/workflow-runs", None).await,
        405,
        "METHOD_NOT_ALLOWED",
    );
    let auth = format!("Bearer {TOKEN}");
    let bad = s
        .call(
            "POST",
            "/api/v1/workflow-runs",
            &[("authorization", &auth)],
            Some(("application/json", b"{oops")),
        )
        .await
        .unwrap();
    assert_error_shape(&bad, 400, "BAD_REQUEST");
    let echoed = s
        .call("GET", "/health", &[("x-request-id", "my-id-123")], None)
        .await
        .unwrap();
    assert_eq!(echoed.header("x-request-id"), Some("my-id-123"));
    let spec = s
        .call("GET", "/api/v1/openapi.json", &[], None)
        .await
        .unwrap();
    assert_eq!(spec.status, 200);
    assert!(spec.json()["paths"]["/workflow-runs"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_runs_and_state_conflicts() {
    let s = server().await;
    let plugins = s.api("GET", "/plugins", None).await.json();
    assert_eq!(
        plugins["data"][0]["name"], "core",
        "a fresh server has the core plugin: {plugins}"
    );

    let auth = format!("Bearer {TOKEN}");
    let yaml = b"name: hello\ninputs:\n  type: object\n  properties: {n: {type: integer}}\nsteps:\n  - id: fib\n    uses: core/fibo\n    with: {n: '${{ inputs.n }}'}\n";
    let created = s
        .call(
            "POST",
            "/api/v1/workflow-templates",
            &[("authorization", &auth)],
            Some(("application/yaml", yaml)),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        created
            .header("location")
            .is_some_and(|l| l.starts_with("/api/v1/workflow-templates/"))
    );
    assert_eq!(created.header("etag"), Some("\"1\""));

    let stale = s
        .call(
            "PUT",
            "/api/v1/workflow-templates/hello",
            &[("authorization", &auth), ("if-match", "\"7\"")],
            Some(("application/yaml", yaml)),
        )
        .await
        .unwrap();
    assert_error_shape(&stale, 412, "PRECONDITION_FAILED");

    let invalid = s
        .api(
            "POST",
            "/workflow-templates/validate",
            Some(json!({"name": "x", "steps": [{"id": "a", "uses": "core/nope"}]})),
        )
        .await;
    assert_error_shape(&invalid, 422, "INVALID_TEMPLATE");
    assert_eq!(
        invalid.json()["error"]["validationErrors"][0]["pointer"],
        "/steps/0/uses"
    );

    let start = || async {
        let auth = format!("Bearer {TOKEN}");
        let body = json!({"template": "hello", "inputs": {"n": 10}}).to_string();
        s.call(
            "POST",
            "/api/v1/workflow-runs",
            &[("authorization", &auth), ("idempotency-key", "once")],
            Some(("application/json", body.as_bytes())),
        )
        .await
        .unwrap()
    };
    let first = start().await;
    assert_eq!(first.status, 201, "{}", first.body);
    let id = first.json()["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        start().await.json()["data"]["id"],
        id.as_str(),
        "same Idempotency-Key, same run"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let run = loop {
        let r = s
            .api("GET", &format!("/workflow-runs/{id}"), None)
            .await
            .json();
        if r["data"]["status"] == "SUCCESS" {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run did not finish: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(run["data"]["outputs"]["fib"], json!({"value": 55}));
    assert!(
        run["data"]["createdAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('.'))
    );
    assert_error_shape(
        &s.api("POST", &format!("/workflow-runs/{id}/cancel"), None)
            .await,
        409,
        "CONFLICT",
    );
    assert_error_shape(
        &s.api(
            "POST",
            &format!("/workflow-runs/{id}/input"),
            Some(json!({"stepId": "fib", "values": {}})),
        )
        .await,
        409,
        "CONFLICT",
    );
    assert_error_shape(
        &s.api("GET", "/workflow-runs/does-not-exist", None).await,
        404,
        "NOT_FOUND",
    );

    let listed = s
        .api("GET", "/workflow-runs?status=SUCCESS&pageSize=1", None)
        .await
        .json();
    assert_eq!(listed["meta"]["pagination"]["total"], 1);
    let steps = s
        .api("GET", &format!("/workflow-runs/{id}/steps/fib"), None)
        .await
        .json();
    assert_eq!(steps["data"]["lastAttempt"]["status"], "SUCCESS");
    let attempts = s
        .api(
            "GET",
            &format!("/workflow-runs/{id}/steps/fib/attempts"),
            None,
        )
        .await
        .json();
    assert_eq!(attempts["data"][0]["status"], "SUCCESS", "{attempts}");
    assert_eq!(attempts["meta"]["pagination"]["total"], 1, "{attempts}");

    let events = s
        .call(
            "GET",
            &format!("/api/v1/workflow-runs/{id}/events"),
            &[("authorization", &auth), ("accept", "text/event-stream")],
            None,
        )
        .await
        .unwrap();
    assert!(
        events.body.contains("event: run.success"),
        "{}",
        events.body
    );
    assert!(events.body.contains("id: 1"), "{}", events.body);
}
