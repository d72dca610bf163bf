//! Operating Weft through the real binary: Prometheus metrics, plugin
//! uninstall (refused while pinned), step artifacts and `weft.toml`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::{Server, assert_error_shape, server, start};

const FIBO: &str = "name: fib\nsteps:\n  - id: fib\n    uses: core/fibo\n    with: {n: 10}\n";
const BROKEN: &str = "name: broken\nsteps:\n  - id: calc\n    uses: core/transform\n    with: {expression: 'data.nope.deeper', data: {}}\n";

/// The value of the first sample whose line starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn scrape(s: &Server) -> String {
    let r = s.call("GET", "/metrics", &[], None).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    r.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_cover_runs_plugins_and_http_routes() {
    let s = server().await;
    s.template(FIBO).await;
    s.template(BROKEN).await;
    let ok = s.start_run("fib", json!({})).await;
    s.wait_status(&ok, "SUCCESS").await;
    let failed = s.start_run("broken", json!({})).await;
    s.wait_status(&failed, "FAILED").await;
    assert_eq!(s.api("GET", "/nope/1234", None).await.status, 404);

    let text = scrape(&s).await;
    assert_eq!(
        sample(&text, r#"weft_runs{status="SUCCESS"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"weft_runs{status="FAILED"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"weft_runs{status="RUNNING"}"#),
        Some(0.0),
        "{text}"
    );
    assert!(text.contains("# TYPE weft_runs gauge"), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"weft_plugin_invocations_total{plugin="core",outcome="success"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with(r#"weft_plugin_invocation_failures_total{plugin="core",kind=""#)),
        "{text}"
    );
    // Step durations by step type and outcome, with the step buckets.
    assert_eq!(
        sample(
            &text,
            r#"weft_step_duration_seconds_count{step_type="core/fibo",outcome="success"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"weft_step_duration_seconds_count{step_type="core/transform",outcome="failed"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains(r#"weft_step_duration_seconds_bucket{step_type="core/fibo",outcome="success",le="1800"} 1"#),
        "{text}"
    );
    // Route templates, never raw paths.
    let get_run = r#"weft_http_request_duration_seconds_count{method="GET",route="/api/v1/workflow-runs/{id}",status="2xx"}"#;
    let polled = sample(&text, get_run).unwrap_or_else(|| panic!("{text}"));
    assert!(polled >= 2.0, "{text}");
    assert!(
        text.contains(r#"route="unmatched",status="4xx""#),
        "unknown paths are one series: {text}"
    );
    assert!(
        text.contains(r#"weft_http_request_duration_seconds_bucket{method="POST",route="/api/v1/workflow-runs",status="2xx",le="0.0005"}"#),
        "HTTP buckets start below a millisecond: {text}"
    );
    assert!(!text.contains(&ok), "no run id in any label");

    // Values move.
    s.api("GET", &format!("/workflow-runs/{ok}"), None).await;
    let again = scrape(&s).await;
    assert_eq!(sample(&again, get_run), Some(polled + 1.0), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_plugin_is_refused_while_a_run_pins_it() {
    let s = server().await;
    let core = s.api("GET", "/plugins", None).await.json()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.template(include_str!("../../examples/approval.yaml"))
        .await;
    let run = s.start_run("approval", json!({})).await;
    s.wait_status(&run, "AWAITING_INPUT").await;

    let refused = s.api("DELETE", &format!("/plugins/{core}"), None).await;
    assert_error_shape(&refused, 409, "CONFLICT");
    let body = refused.json();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("1 active run") && message.contains(&run),
        "{message}"
    );
    assert_eq!(body["error"]["details"]["activeRuns"], json!([run]));
    assert_eq!(
        s.api("GET", &format!("/plugins/{core}"), None).await.status,
        200
    );

    s.api(
        "POST",
        &format!("/workflow-runs/{run}/input"),
        Some(json!({"stepId": "approve", "values": {"approved": true, "comment": "go"}})),
    )
    .await;
    s.wait_status(&run, "SUCCESS").await;
    let deleted = s.api("DELETE", &format!("/plugins/{core}"), None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["data"]["name"], "core");
    assert_error_shape(
        &s.api("GET", &format!("/plugins/{core}"), None).await,
        404,
        "NOT_FOUND",
    );
    assert_error_shape(
        &s.api("DELETE", &format!("/plugins/{core}"), None).await,
        404,
        "NOT_FOUND",
    );
    assert_eq!(
        s.api("GET", "/step-types", None).await.json()["data"],
        json!([])
    );
    // Templates that use it stay, and fail validation at their next run.
    let r = s
        .api(
            "POST",
            "/workflow-runs",
            Some(json!({"template": "approval"})),
        )
        .await;
    assert_error_shape(&r, 422, "INVALID_TEMPLATE");
    // The finished run is still readable.
    assert_eq!(
        s.api("GET", &format!("/workflow-runs/{run}"), None)
            .await
            .json()["data"]["status"],
        "SUCCESS"
    );

    // A plugin nothing uses goes at once.
    let hello = s.install("hello-plugin.wasm").await;
    assert_eq!(
        s.api("DELETE", &format!("/plugins/{hello}"), None)
            .await
            .status,
        200
    );
    assert_error_shape(
        &s.api("DELETE", "/plugins/sha256:0000", None).await,
        404,
        "NOT_FOUND",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_are_listed_and_downloaded() {
    let s = server().await;
    s.install("hostile.wasm").await;
    s.template(
        "name: report\nsteps:\n  - id: emit\n    uses: hostile/artifact\n    with: {name: 'report 1.txt', text: '42 rows'}\n",
    )
    .await;
    let run = s.start_run("report", json!({})).await;
    s.wait_status(&run, "SUCCESS").await;
    let list_path = format!("/workflow-runs/{run}/steps/emit/artifacts");
    // The engine stores artifacts beside the run's transitions: poll.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let listed: Value = loop {
        let r = s.api("GET", &list_path, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        if j["data"].as_array().is_some_and(|a| !a.is_empty()) {
            break j;
        }
        assert!(tokio::time::Instant::now() < deadline, "no artifact: {j}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let a = &listed["data"][0];
    assert_eq!(a["name"], "report 1.txt");
    assert_eq!(a["contentType"], "text/plain");
    assert_eq!(a["size"], 7);
    assert_eq!(a["attempt"], 1);
    assert!(a["createdAt"].as_str().unwrap().ends_with('Z'));
    let sha = a["sha256"].as_str().unwrap().to_owned();
    assert_eq!(sha.len(), 64);

    let got = s
        .api("GET", &format!("{list_path}/report%201.txt"), None)
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"42 rows");
    assert_eq!(got.header("content-type"), Some("text/plain"));
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        got.header("etag"),
        Some(format!("\"sha256:{sha}\"").as_str())
    );
    assert_eq!(
        got.header("content-disposition"),
        Some("attachment; filename*=UTF-8''report%201.txt")
    );
    let first = s
        .api(
            "GET",
            &format!("{list_path}/report%201.txt?attempt=1"),
            None,
        )
        .await;
    assert_eq!(first.body, b"42 rows");

    assert_error_shape(
        &s.api("GET", &format!("{list_path}/nope.txt"), None).await,
        404,
        "NOT_FOUND",
    );
    assert_error_shape(
        &s.api(
            "GET",
            &format!("{list_path}/report%201.txt?attempt=2"),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    );
    assert_error_shape(
        &s.api(
            "GET",
            &format!("/workflow-runs/{run}/steps/nope/artifacts"),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    );
    assert_error_shape(
        &s.api("GET", "/workflow-runs/nope/steps/emit/artifacts", None)
            .await,
        404,
        "NOT_FOUND",
    );

    // A step that emitted nothing lists nothing.
    s.template(FIBO).await;
    let plain = s.start_run("fib", json!({})).await;
    s.wait_status(&plain, "SUCCESS").await;
    let empty = s
        .api(
            "GET",
            &format!("/workflow-runs/{plain}/steps/fib/artifacts"),
            None,
        )
        .await;
    assert_eq!(empty.json()["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_toml_applies_under_env_and_flags() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let data = data.to_str().unwrap();
    let settings = |listen: &str| {
        format!(
            "listen = \"{listen}\"\ndb = \"mem://\"\n\n[engine]\nmax_concurrent_steps = 4\n\n[engine.step_limits]\ntimeout_ms = 300\n"
        )
    };
    std::fs::write(work.path().join("weft.toml"), settings("127.0.0.1:0")).unwrap();

    // ./weft.toml is read by default: its listen address and its step timeout apply.
    let s = start(&["--data-dir", data], &[], Some(work.path())).await;
    assert_ne!(
        s.port, 8080,
        "the file's listen address applies, not the default"
    );
    s.template("name: slow\nsteps:\n  - id: nap\n    uses: core/sleep\n    with: {ms: 20000}\n")
        .await;
    let run = s.start_run("slow", json!({})).await;
    let failed = s.wait_status(&run, "FAILED").await;
    let step = s
        .api("GET", &format!("/workflow-runs/{run}/steps/nap"), None)
        .await
        .json();
    assert_eq!(step["data"]["error"]["code"], "TIMEOUT", "{failed} {step}");
    drop(s);

    // From here on the file names a port that is taken (held by this test
    // for its whole length), so a server that used the file's address
    // would fail to start: each start below proves its address won.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap();
    std::fs::write(work.path().join("weft.toml"), settings(&taken.to_string())).unwrap();

    // The environment beats the file; WEFT_CONFIG names the file.
    let elsewhere = tempfile::tempdir().unwrap();
    let config = work.path().join("weft.toml");
    let s = start(
        &["--data-dir", data],
        &[
            ("WEFT_CONFIG", config.to_str().unwrap()),
            ("WEFT_LISTEN", "127.0.0.1:0"),
        ],
        Some(elsewhere.path()),
    )
    .await;
    assert_ne!(s.addr, taken, "the file's address is overridden");
    drop(s);

    // A flag beats the environment.
    let taken_listen = taken.to_string();
    let s = start(
        &[
            "--data-dir",
            data,
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[("WEFT_LISTEN", &taken_listen)],
        Some(elsewhere.path()),
    )
    .await;
    assert_ne!(s.addr, taken, "the environment's address is overridden");
    drop(s);

    // A broken file stops the server with a message naming the key.
    std::fs::write(
        elsewhere.path().join("weft.toml"),
        "[engine]\nmax_steps = 3\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--db", "mem://", "--data-dir", data])
        .current_dir(elsewhere.path())
        .env_remove("WEFT_CONFIG")
        .env("WEFT_ADMIN_TOKEN", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_steps"), "{err}");
}

/// `args` as the `&str`s [`start`] takes.
fn arg_refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// SIGTERM lets the step in flight finish and commits it, starts nothing
/// new, and exits 0; the next start carries on without re-running it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_steps_and_the_run_resumes_after_restart() {
    let work = tempfile::tempdir().unwrap();
    let db = format!("surrealkv://{}", work.path().join("db").display());
    let data = work.path().join("data");
    let mut args = vec![
        "--db".to_owned(),
        db.clone(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--data-dir".to_owned(),
        data.to_str().unwrap().to_owned(),
    ];
    let mut s = start(&arg_refs(&args), &[], None).await;
    s.template(
        "name: two-naps\nsteps:\n  - id: first\n    uses: core/sleep\n    with: {ms: 1500}\n  - id: second\n    uses: core/noop\n    needs: [first]\n",
    )
    .await;
    let run = s.start_run("two-naps", json!({})).await;
    s.wait_step(&run, "first", "RUNNING").await;
    let asked = std::time::Instant::now();
    let status = s.terminate().await;
    assert!(status.success(), "exit status {status}");
    assert!(
        asked.elapsed() >= Duration::from_millis(500),
        "exited after {:?}, before the sleeping step could finish",
        asked.elapsed()
    );

    // The restart listens where the first start did, as a restarted server would.
    args[3] = s.addr.to_string();
    let s = start(&arg_refs(&args), &[], None).await;
    let first = s
        .api("GET", &format!("/workflow-runs/{run}/steps/first"), None)
        .await
        .json();
    assert_eq!(first["data"]["status"], "SUCCESS", "{first}");
    assert_eq!(
        first["data"]["lastAttempt"]["attempt"], 1,
        "the finished step is not re-run: {first}"
    );
    let attempts = s
        .api(
            "GET",
            &format!("/workflow-runs/{run}/steps/first/attempts"),
            None,
        )
        .await
        .json();
    assert_eq!(
        attempts["data"].as_array().map(Vec::len),
        Some(1),
        "the finished step is not re-run: {attempts}"
    );
    s.wait_status(&run, "SUCCESS").await;
    let second = s
        .api("GET", &format!("/workflow-runs/{run}/steps/second"), None)
        .await
        .json();
    assert_eq!(second["data"]["attempt"], 1, "{second}");
    assert_eq!(second["data"]["lastAttempt"]["attempt"], 1, "{second}");
}

/// Run commands answer with the state they caused, already durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_cancel_answer_with_the_new_status() {
    let s = server().await;
    s.template(
        "name: naps\nsteps:\n  - id: nap\n    uses: core/sleep\n    with: {ms: 20000}\n  - id: after\n    uses: core/noop\n    needs: [nap]\n",
    )
    .await;
    let run = s.start_run("naps", json!({})).await;
    s.wait_step(&run, "nap", "RUNNING").await;
    let command = |what: &'static str| {
        let path = format!("/workflow-runs/{run}/{what}");
        let s = &s;
        async move { s.api("POST", &path, None).await }
    };
    let paused = command("pause").await;
    assert_eq!(paused.status, 200, "{}", paused.text());
    assert_eq!(paused.json()["data"]["status"], "PAUSED");
    assert_error_shape(&command("pause").await, 409, "CONFLICT");
    let resumed = command("resume").await;
    assert_eq!(
        resumed.json()["data"]["status"],
        "RUNNING",
        "{}",
        resumed.text()
    );
    assert_error_shape(&command("resume").await, 409, "CONFLICT");
    let cancelled = command("cancel").await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text());
    let status = cancelled.json()["data"]["status"].clone();
    assert!(status == "RUNNING" || status == "CANCELLED", "{status}");
    s.wait_status(&run, "CANCELLED").await;
    assert_error_shape(&command("cancel").await, 409, "CONFLICT");
    let after = s
        .api("GET", &format!("/workflow-runs/{run}/steps/after"), None)
        .await
        .json();
    assert_ne!(after["data"]["status"], "SUCCESS", "{after}");
}
