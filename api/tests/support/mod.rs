//! A real `weft serve` process on a loopback port the OS picks, the one
//! way every API test starts it ([`spawn_serve`]), and a minimal HTTP/1.1
//! client for it (raw sockets: what is on the wire is what is asserted).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TOKEN: &str = "test-token";

pub struct Server {
    child: Child,
    /// The address the server reported once bound.
    pub addr: SocketAddr,
    /// `addr`'s port (the server listens on 127.0.0.1).
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a `weft serve` may take to bind its port (it migrates the store
/// and installs the bundled plugins first; debug builds are slow).
const BIND_DEADLINE: Duration = Duration::from_secs(90);

/// What `weft serve` prints on stdout once its listener is bound.
const LISTENING: &str = "listening on http://";

/// Spawns `cmd`, a `weft serve`, with its stdout piped, and waits (up to
/// [`BIND_DEADLINE`]) for the `listening on http://ADDR` line it prints once
/// bound; returns the child and the address. Start servers with `--listen
/// 127.0.0.1:0` so the OS picks the port: a port picked in advance (bound,
/// released, then handed over) can be taken by someone else in between.
/// Panics if the server exits or stays silent past the deadline.
pub fn spawn_serve(mut cmd: Command) -> (Child, SocketAddr) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads stdout to its end: after the address, what the server prints
    // still has to be drained, or a full pipe would block it.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix(LISTENING) {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    match rx.recv_timeout(BIND_DEADLINE) {
        Ok(addr) => {
            let addr = addr
                .parse()
                .unwrap_or_else(|e| panic!("weft serve announced `{addr}`: {e}"));
            (child, addr)
        }
        // The reader finished: stdout closed, so the server is exiting.
        Err(RecvTimeoutError::Disconnected) => {
            let status = child.wait().unwrap();
            panic!("weft serve exited with {status} before listening")
        }
        Err(RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("weft serve did not listen within {BIND_DEADLINE:?}")
        }
    }
}

/// A server with an in-memory store.
pub async fn server() -> Server {
    start(&["--db", "mem://", "--listen", "127.0.0.1:0"], &[], None).await
}

/// Starts `weft serve` with `args` (plus `--data-dir` when none is given)
/// and `env`, in `cwd` if given, and waits until it answers `/ready` on the
/// address it reports. The listen address comes from `args`, `env` or a
/// `weft.toml`; give port 0 unless a test needs a port it already knows
/// (a restart reuses the port its first start reported).
pub async fn start(args: &[&str], env: &[(&str, &str)], cwd: Option<&Path>) -> Server {
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
        .current_dir(cwd.unwrap_or(dir.path()));
    // Waiting for the line blocks; keep it off the async workers.
    let (child, addr) = tokio::task::spawn_blocking(move || spawn_serve(cmd))
        .await
        .unwrap();
    let mut s = Server {
        child,
        port: addr.port(),
        addr,
        dir,
    };
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
            "server did not become ready on {addr}"
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
        let mut sock = tokio::net::TcpStream::connect(self.addr).await?;
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
    /// SIGKILLs the server (no shutdown of any kind) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

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

/// Polls until the job `job` saved a commit while its run `run` is
/// `RUNNING`. Panics when the run is anything else (it ended before it
/// could be killed: the source is too small) or past `within`.
pub async fn wait_for_a_commit(s: &Server, job: &str, run: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let j = s.api("GET", &format!("/jobs/{job}"), None).await.json();
        let r = s
            .api("GET", &format!("/workflow-runs/{run}"), None)
            .await
            .json();
        assert_eq!(
            r["data"]["status"], "RUNNING",
            "the sync ended before it could be killed: make the source larger: {r}"
        );
        if j["data"]["stateSeq"].as_u64().unwrap_or(0) >= 1 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no commit: {j}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the run `run` until it succeeds and returns it; panics when it
/// fails, is cancelled or is still going after five minutes.
pub async fn wait_for_success(s: &Server, run: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let r = s
            .api("GET", &format!("/workflow-runs/{run}"), None)
            .await
            .json();
        match r["data"]["status"].as_str() {
            Some("SUCCESS") => return r,
            Some("FAILED" | "CANCELLED") => panic!("the run did not succeed: {r}"),
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not finish: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
