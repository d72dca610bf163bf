//! The `weft` command-line client against a real `weft serve`: both are
//! the built binary, run as subprocesses, talking over loopback HTTP. What
//! is asserted is what a user sees: exit codes, stdout and stderr.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;

const TOKEN: &str = "cli-test-token";
const BIN: &str = env!("CARGO_BIN_EXE_weft");
/// Upper bound for any one CLI invocation (a hung `--follow` fails the test).
const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

struct Server {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// A `weft` command with no ambient configuration from the environment.
fn weft_cmd() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "WEFT_SERVER",
        "WEFT_TOKEN",
        "WEFT_LISTEN",
        "WEFT_DB",
        "WEFT_DATA_DIR",
        "WEFT_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("WEFT_LOG", "warn").env("NO_COLOR", "1");
    cmd
}

/// Runs a command to completion within [`COMMAND_DEADLINE`].
fn output(mut cmd: Command, stdin: Option<&str>) -> Out {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + COMMAND_DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish in {COMMAND_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = weft_cmd();
        cmd.args(["serve", "--db", "mem://", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path())
            .current_dir(dir.path())
            .env("WEFT_ADMIN_TOKEN", TOKEN)
            .stderr(Stdio::null());
        let (child, addr) = support::spawn_serve(cmd);
        let s = Self {
            child,
            url: format!("http://{addr}"),
            dir,
        };
        // Ready once the CLI itself sees the bundled plugin.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = s.weft(&["plugin", "list", "--json"]);
            if out.code == 0 && out.stdout.contains("\"core\"") {
                return s;
            }
            assert!(Instant::now() < deadline, "server not ready: {out:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `weft` pointed at this server through the environment.
    fn cmd(&self) -> Command {
        let mut cmd = weft_cmd();
        cmd.env("WEFT_SERVER", &self.url).env("WEFT_TOKEN", TOKEN);
        cmd
    }

    fn weft(&self, args: &[&str]) -> Out {
        let mut cmd = self.cmd();
        cmd.args(args);
        output(cmd, None)
    }

    fn file(&self, name: &str, contents: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p.to_string_lossy().into_owned()
    }

    fn apply_example(&self, name: &str) {
        let file = examples().join(format!("{name}.yaml"));
        self.weft(&["template", "apply", "-f", file.to_str().unwrap()])
            .ok();
    }

    /// Polls `runs show --json` until the run has `status`.
    fn wait_for(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let run = self.weft(&["runs", "show", id, "--json"]).ok().json();
            if run["status"] == status {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} never reached {status}: {run}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn templates_validate_and_apply_idempotently() {
    let s = Server::start();
    let bad = s.file(
        "bad.yaml",
        "name: bad\nsteps:\n  - id: a\n    uses: core/nope\n  - id: b\n    uses: core/noop\n    needs: [zzz]\n",
    );
    let out = s.weft(&["template", "validate", "-f", &bad]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("invalid"), "{out:?}");
    assert!(out.stdout.contains("/steps/0/uses"), "{out:?}");
    assert!(out.stdout.contains("/steps/1/needs"), "{out:?}");
    let out = s.weft(&["template", "validate", "-f", &bad, "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let j = out.json();
    assert_eq!(j["valid"], false);
    assert_eq!(j["problems"][0]["pointer"], "/steps/0/uses");

    let hello = std::fs::read_to_string(examples().join("hello.yaml")).unwrap();
    let file = s.file("hello.yaml", &hello);
    let out = s.weft(&["template", "validate", "-f", &file]).ok();
    assert!(out.stdout.contains("valid"), "{out:?}");

    let out = s.weft(&["template", "apply", "-f", &file]).ok();
    assert!(out.stdout.contains("hello created (revision 1)"), "{out:?}");
    let out = s.weft(&["template", "apply", "-f", &file]).ok();
    assert!(
        out.stdout.contains("hello unchanged (revision 1)"),
        "{out:?}"
    );
    s.file(
        "hello.yaml",
        &hello.replace("Greets someone", "Greets anyone"),
    );
    let out = s.weft(&["template", "apply", "-f", &file]).ok();
    assert!(out.stdout.contains("hello updated (revision 2)"), "{out:?}");
    let shown = s.weft(&["template", "show", "hello", "--json"]).ok().json();
    assert_eq!(shown["revision"], 2);
    assert!(
        shown["body"]["description"]
            .as_str()
            .unwrap()
            .starts_with("Greets anyone")
    );

    // JSON on stdin, through `-f -`.
    let mut body = shown["body"].clone();
    body["description"] = "from stdin".into();
    let mut cmd = s.cmd();
    cmd.args(["template", "apply", "-f", "-", "--json"]);
    let out = output(cmd, Some(&body.to_string())).ok();
    assert_eq!(out.json()["revision"], 3, "{out:?}");

    // Applying an invalid template fails with the problems and their pointers.
    let out = s.weft(&["template", "apply", "-f", &bad]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("422 INVALID_TEMPLATE"), "{out:?}");
    assert!(out.stderr.contains("/steps/0/uses"), "{out:?}");

    let out = s.weft(&["template", "list"]).ok();
    assert!(out.stdout.contains("hello"), "{out:?}");
}

#[test]
fn runs_follow_list_show_and_exit_codes() {
    let s = Server::start();
    s.apply_example("hello");
    let out = s.weft(&["run", "hello", "-i", "name=Ada", "--follow"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("Hello, Ada! Welcome to Weft."),
        "{out:?}"
    );
    assert!(out.stdout.contains("SUCCESS"), "{out:?}");
    assert!(out.stdout.contains("▶ greet"), "{out:?}");

    // The schema says `name` is a string, so `42` stays a string.
    let out = s.weft(&["run", "hello", "-i", "name=42", "--follow", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["outputs"]["greet"]["greeting"], "Hello, 42!");

    // Missing input: the server's 422 with its pointer, exit 1.
    let out = s.weft(&["run", "hello"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("INVALID_INPUTS"), "{out:?}");

    let broken = s.file(
        "broken.yaml",
        "name: broken\nsteps:\n  - id: boom\n    uses: core/transform\n    retry: {maxAttempts: 1}\n    with: {expression: \"data.missing.field\", data: {}}\n",
    );
    s.weft(&["template", "apply", "-f", &broken]).ok();
    let out = s.weft(&["run", "broken", "--follow"]);
    assert_eq!(out.code, 1, "a failed run exits 1: {out:?}");
    assert!(out.stdout.contains("FAILED"), "{out:?}");
    assert!(out.stdout.contains("step boom failed"), "{out:?}");

    // Without --follow: only the id on stdout.
    let out = s.weft(&["run", "hello", "-i", "name=Bob"]).ok();
    let id = out.stdout.trim().to_owned();
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "{out:?}"
    );
    let run = s.wait_for(&id, "SUCCESS");
    assert_eq!(run["steps"].as_array().unwrap().len(), 2, "{run}");

    let listed = s.weft(&["runs", "list", "--json"]).ok().json();
    let runs = listed.as_array().unwrap();
    assert!(runs.iter().any(|r| r["id"] == id.as_str()), "{listed}");
    assert_eq!(runs.len(), 4, "{listed}");
    let limited = s
        .weft(&["runs", "list", "--json", "--limit", "1"])
        .ok()
        .json();
    assert_eq!(limited.as_array().unwrap().len(), 1);
    let failed = s.weft(&["runs", "list", "--status", "failed"]).ok();
    assert!(
        failed.stdout.contains("broken") && failed.stdout.contains("FAILED"),
        "{failed:?}"
    );
    assert!(!failed.stdout.contains("hello"), "{failed:?}");

    let shown = s.weft(&["runs", "show", &id]).ok();
    for needle in ["greet", "welcome", "SUCCESS", "Bob"] {
        assert!(shown.stdout.contains(needle), "{needle}: {shown:?}");
    }
    let missing = s.weft(&["runs", "show", "no-such-run"]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.contains("404 NOT_FOUND"), "{missing:?}");
    assert!(!missing.stderr.contains("panicked"), "{missing:?}");
}

#[test]
fn approval_answered_from_the_cli() {
    let s = Server::start();
    s.apply_example("approval");

    let id = s.weft(&["run", "approval"]).ok().stdout.trim().to_owned();
    let waiting = s.wait_for(&id, "AWAITING_INPUT");
    assert_eq!(
        waiting["steps"][0]["inputRequest"]["prompt"],
        "Deploy to production?"
    );
    let shown = s.weft(&["runs", "show", &id]).ok();
    assert!(shown.stdout.contains("runs answer"), "{shown:?}");
    let out = s
        .weft(&[
            "runs",
            "answer",
            &id,
            "--step",
            "approve",
            "-v",
            "approved=true",
            "-v",
            "comment=ship it",
        ])
        .ok();
    assert!(out.stdout.contains("answered approve"), "{out:?}");
    let done = s.wait_for(&id, "SUCCESS");
    assert_eq!(done["outputs"]["deploy"]["comment"], "ship it", "{done}");
    let logs = s.weft(&["runs", "logs", &id, "--step", "approve"]).ok();
    assert!(logs.stdout.contains("input received"), "{logs:?}");
    // Following a finished run replays its events and ends by itself.
    let logs = s.weft(&["runs", "logs", &id, "--follow", "--json"]).ok();
    let line: Value = serde_json::from_str(logs.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["step"], "approve", "{logs:?}");
    let out = s.weft(&["runs", "answer", &id, "-v", "approved=true"]);
    assert_eq!(out.code, 1, "nothing is waiting any more: {out:?}");

    // Following: the input request comes with the exact command to answer it.
    let mut cmd = s.cmd();
    cmd.args(["run", "approval", "--follow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut follower = cmd.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let command = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no answer command printed"));
        if let Some(c) = line.split("answer with:").nth(1) {
            break c.trim().to_owned();
        }
    };
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[0], "weft", "{command}");
    assert!(
        command.contains("--step approve -v approved=true"),
        "{command}"
    );
    let mut answer = s.cmd();
    answer.args(&words[1..]);
    output(answer, None).ok();
    let status = loop {
        if let Some(st) = follower.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = follower.kill();
            panic!("the follower did not end after the answer");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let printed = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{printed}");
    assert!(printed.contains("SUCCESS"), "{printed}");
}

#[test]
fn plugins_auth_and_usage_errors() {
    let s = Server::start();
    let out = s.weft(&["plugin", "list"]).ok();
    assert!(
        out.stdout.contains("core") && out.stdout.contains("ENABLED"),
        "{out:?}"
    );
    let plugins = s.weft(&["plugin", "list", "--json"]).ok().json();
    assert_eq!(plugins[0]["name"], "core", "{plugins}");

    let out = s
        .weft(&["plugin", "enable", "core", "--allow-host", "example.com"])
        .ok();
    assert!(out.stdout.contains("hosts: example.com"), "{out:?}");
    let out = s
        .weft(&[
            "plugin",
            "enable",
            "core",
            "--allow-host",
            "*.example.org:8443",
        ])
        .ok();
    assert!(
        out.stdout
            .contains("hosts: example.com, *.example.org:8443"),
        "grants are added to: {out:?}"
    );
    let out = s.weft(&["plugin", "disable", "core"]).ok();
    assert!(out.stdout.contains("disabled"), "{out:?}");
    assert!(s.weft(&["plugin", "list"]).ok().stdout.contains("DISABLED"));
    let out = s
        .weft(&["plugin", "enable", "core", "--replace", "--json"])
        .ok();
    let p = out.json();
    assert_eq!(p["enabled"], true);
    assert_eq!(p["grants"]["outboundHosts"], serde_json::json!([]), "{p}");
    let out = s.weft(&[
        "plugin",
        "enable",
        "core",
        "--allow-host",
        "https://example.com",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("/outboundHosts/0"), "{out:?}");
    let out = s.weft(&["plugin", "enable", "nope"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no installed plugin"), "{out:?}");

    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/wasm/hello-plugin.wasm");
    let out = s.weft(&["plugin", "install", wasm.to_str().unwrap()]).ok();
    assert!(out.stdout.contains("installed"), "{out:?}");
    assert_eq!(
        s.weft(&["plugin", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        5,
        "the bundled core, files, http and postgres, and hello"
    );

    // A wrong token, no token, no server: readable errors and exit 1.
    let mut cmd = s.cmd();
    cmd.args(["runs", "list"]).env("WEFT_TOKEN", "wrong");
    let out = output(cmd, None);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("401 UNAUTHORIZED"), "{out:?}");
    assert!(out.stderr.contains("rejected the token"), "{out:?}");
    let mut cmd = s.cmd();
    cmd.args(["runs", "list"]).env_remove("WEFT_TOKEN");
    let out = output(cmd, None);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no token given"), "{out:?}");
    // Port 0 is never listened on: connecting to it is always refused.
    let nowhere = "http://127.0.0.1:0";
    let out = s.weft(&["--server", nowhere, "runs", "list"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("cannot reach the Weft server"),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("reqwest") && !out.stderr.contains("panicked"),
        "{out:?}"
    );

    // Usage errors are clap's exit code 2.
    let out = s.weft(&["runs", "list", "--status", "bogus"]);
    assert_eq!(out.code, 2, "{out:?}");
    let out = s.weft(&["run", "hello", "-i", "no-equals-sign"]);
    assert_eq!(out.code, 2, "{out:?}");

    // `plugin inspect` is local: it works with no server at all.
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/wasm/core.wasm");
    let out = s.weft(&[
        "--server",
        nowhere,
        "plugin",
        "inspect",
        core.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["manifest"]["name"], "core");
}
