//! A real `weft serve` process on a loopback port, and a minimal HTTP/1.1
//! client for it (raw sockets: what is on the wire is what is asserted).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TOKEN: &str = "test-token";

pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server with an in-memory store.
pub async fn server() -> Server {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    start(&["--db", "mem://", "--listen", &listen], &[], port, None).await
}

/// Starts `weft serve` with `args` (plus `--data-dir` when none is given)
/// and `env`, in `cwd` if given, and waits until `port` answers `/ready`.
pub async fn start(args: &[&str], env: &[(&str, &str)], port: u16, cwd: Option<&Path>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.arg("serve").args(args);
    if !args.contains(&"--data-dir") {
        cmd.arg("--data-dir").arg(dir.path());
    }
    for var in ["WEFT_LISTEN", "WEFT_DB", "WEFT_DATA_DIR", "WEFT_CONFIG"] {
        cmd.env_remove(var);
    }
    cmd.env("WEFT_ADMIN_TOKEN", TOKEN)
        .env("WEFT_LOG", "warn")
        .envs(env.iter().copied())
        .current_dir(cwd.unwrap_or(dir.path()))
        .stdout(Stdio::null());
    let child = cmd.spawn().unwrap();
    let mut s = Server { child, port, dir };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(r) = s.call("GET", "/ready", &[], None).await
            && r.status == 200
        {
            return s;
        }
        if let Ok(Some(status)) = s.child.try_wait() {
            panic!("weft serve exited with {status}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server did not become ready on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes a `transfer-encoding: chunked` body.
fn unchunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        raw = &raw[end + 2..];
        if size == 0 || raw.len() < size {
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
    out
}

impl Server {
    pub async fn call(
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
        if let Some((ct, _)) = body {
            req.push_str(&format!("content-type: {ct}\r\n"));
        }
        req.push_str(&format!(
            "content-length: {}\r\n\r\n",
            body.map_or(0, |(_, b)| b.len())
        ));
        sock.write_all(req.as_bytes()).await?;
        if let Some((_, b)) = body {
            sock.write_all(b).await?;
        }
        let mut raw = Vec::new();
        sock.read_to_end(&mut raw).await?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(raw.len());
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        if headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        }) {
            body = unchunk(&body);
        }
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// An authenticated `/api/v1` call with an optional JSON body.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
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

    /// An authenticated `/api/v1` call with a raw body.
    pub async fn api_raw(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Resp {
        let auth = format!("Bearer {TOKEN}");
        self.call(
            method,
            &format!("/api/v1{path}"),
            &[("authorization", &auth)],
            Some((content_type, body)),
        )
        .await
        .unwrap()
    }

    /// Sends SIGTERM and waits (60 s deadline) for the process to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "weft serve did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls a step until its status is `status` (30 s deadline).
    pub async fn wait_step(&self, run: &str, step: &str, status: &str) -> Value {
        self.poll_status(&format!("/workflow-runs/{run}/steps/{step}"), status)
            .await
    }

    /// GETs `path` until its `data.status` is `status` (30 s deadline).
    async fn poll_status(&self, path: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.api("GET", path, None).await.json();
            if r["data"]["status"] == status {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never reached {status}: {r}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates a template from YAML; panics unless 201.
    pub async fn template(&self, yaml: &str) {
        let r = self
            .api_raw(
                "POST",
                "/workflow-templates",
                "application/yaml",
                yaml.as_bytes(),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }

    /// Starts a run; returns its id.
    pub async fn start_run(&self, template: &str, inputs: Value) -> String {
        let r = self
            .api(
                "POST",
                "/workflow-runs",
                Some(serde_json::json!({"template": template, "inputs": inputs})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["data"]["id"].as_str().unwrap().to_owned()
    }

    /// Polls a run until its status is `status` (30 s deadline).
    pub async fn wait_status(&self, run: &str, status: &str) -> Value {
        self.poll_status(&format!("/workflow-runs/{run}"), status)
            .await
    }

    /// Installs a component from `build/wasm/`; returns the plugin id.
    pub async fn install(&self, file: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../build/wasm")
            .join(file);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-guests.sh)", path.display()));
        let r = self
            .api_raw("POST", "/plugins", "application/octet-stream", &bytes)
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["data"]["id"].as_str().unwrap().to_owned()
    }
}

pub fn assert_error_shape(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let j = r.json();
    assert_eq!(j["success"], false, "{j}");
    assert_eq!(j["error"]["code"], code, "{j}");
    assert!(j["meta"]["requestId"].is_string(), "{j}");
}
