//! Hostile input against the real server: values nested too deeply,
//! expressions that would overflow the stack or run for minutes, templates
//! that ask for retry storms, and a store holding a record that no longer
//! decodes. Each gets a specific error, and the server keeps answering.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{Server, assert_error_shape, server, start};

fn nested_array(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

fn nested_object(depth: usize) -> Value {
    let mut v = json!("leaf");
    for _ in 0..depth {
        v = json!({"a": v});
    }
    v
}

/// `/health` answers within a second.
async fn assert_responsive(s: &Server) {
    let t = Instant::now();
    let r = s.call("GET", "/health", &[], None).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "/health took {:?}",
        t.elapsed()
    );
}

async fn hello_still_runs(s: &Server) {
    s.template(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/hello.yaml"
        ))
        .unwrap(),
    )
    .await;
    let run = s.start_run("hello", json!({"name": "Ada"})).await;
    s.wait_status(&run, "SUCCESS").await;
}

fn problem_codes(r: &Value) -> Vec<String> {
    r["error"]["validationErrors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["code"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_values_are_refused_at_every_door() {
    let s = server().await;
    s.template(
        "name: echo\nsteps:\n  - id: a\n    uses: core/noop\n    with: {v: \"${{ inputs }}\"}\n",
    )
    .await;
    // Run inputs (an object), two shapes, deeper than the limit but within
    // what serde parses: refused with a specific code instead of being stored.
    for inputs in [json!({"v": nested_array(100)}), nested_object(100)] {
        let r = s
            .api(
                "POST",
                "/workflow-runs",
                Some(json!({"template": "echo", "inputs": inputs})),
            )
            .await;
        assert_error_shape(&r, 400, "JSON_TOO_DEEP");
    }
    // Deeper than serde itself parses: still a 400 in the envelope.
    let r = s
        .api(
            "POST",
            "/workflow-runs",
            Some(json!({"template": "echo", "inputs": {"v": nested_array(300)}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["success"], false);
    // Literal values in a template.
    let with = serde_json::to_string(&nested_object(80)).unwrap();
    let r = s
        .api_raw(
            "POST",
            "/workflow-templates",
            "application/json",
            format!(r#"{{"name":"deep","steps":[{{"id":"a","uses":"core/noop","with":{with}}}]}}"#)
                .as_bytes(),
        )
        .await;
    assert_error_shape(&r, 422, "INVALID_TEMPLATE");
    assert!(
        problem_codes(&r.json()).contains(&"LIMIT_EXCEEDED".to_owned()),
        "{}",
        r.text()
    );
    // An answer.
    s.template(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/approval.yaml"
        ))
        .unwrap(),
    )
    .await;
    let run = s.start_run("approval", json!({})).await;
    s.wait_step(&run, "approve", "AWAITING_INPUT").await;
    let r = s
        .api(
            "POST",
            &format!("/workflow-runs/{run}/input"),
            Some(json!({"stepId": "approve", "values": {"approved": true, "comment": nested_array(90)}})),
        )
        .await;
    assert_error_shape(&r, 400, "JSON_TOO_DEEP");
    // Everything stored reads back.
    let r = s
        .api("GET", &format!("/workflow-runs/{run}/steps"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_responsive(&s).await;
    hello_still_runs(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expressions_that_would_crash_or_stall_the_server_get_specific_errors() {
    let s = server().await;
    // Deep expressions of several shapes, in every place one is parsed.
    let shapes = [
        "1+".repeat(10_000) + "1",
        "inputs".to_owned() + &".a".repeat(4_000),
        "inputs".to_owned() + &"[0]".repeat(3_000),
        "(".repeat(3_000) + "true" + &")".repeat(3_000),
    ];
    for expr in &shapes {
        for (field, value) in [
            ("if", json!(expr)),
            ("forEach", json!(expr)),
            ("with", json!({"x": format!("${{{{ {expr} }}}}")})),
        ] {
            let mut step = json!({"id": "a", "uses": "core/noop"});
            step[field] = value;
            let body = json!({"name": "deep-expr", "steps": [step]});
            let r = s
                .api("POST", "/workflow-templates/validate", Some(body))
                .await;
            assert!(r.status == 422 || r.status == 200, "{}", r.status);
            let j = r.json();
            let text = j.to_string();
            assert!(
                text.contains("nested too deeply") || text.contains("bytes; the limit"),
                "{field}: {text:.300}"
            );
        }
        assert_responsive(&s).await;
    }

    // Costly expressions evaluated by the host: two at once, while
    // /health keeps answering.
    s.template(
        "name: costly\nsteps:\n  - id: a\n    uses: core/noop\n    with:\n      x: \"${{ lists.range(1000).map(a, lists.range(1000).map(b, lists.range(1000).map(c, c))) }}\"\n",
    )
    .await;
    s.template(
        "name: doubling\nsteps:\n  - id: a\n    uses: core/noop\n    if: \"[inputs.s + inputs.s + inputs.s + inputs.s].map(a, [a + a + a + a].map(b, [b + b + b + b].map(c, [c + c + c + c].map(d, [d + d + d + d].map(e, [e + e + e + e].map(f, [f + f + f + f].map(g, [g + g + g + g].map(h, [h + h + h + h].map(i, [i + i + i + i].map(j, [j + j + j + j].map(k, size(k) > 0))))))))))).all(x, x[0][0][0][0][0][0][0][0][0][0])\"\n",
    )
    .await;
    let started = Instant::now();
    let runs = [
        s.start_run("costly", json!({})).await,
        s.start_run("costly", json!({})).await,
        s.start_run("doubling", json!({"s": "abcdefgh"})).await,
    ];
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "starting runs took {:?}",
        started.elapsed()
    );
    for run in &runs {
        loop {
            assert_responsive(&s).await;
            let r = s
                .api("GET", &format!("/workflow-runs/{run}"), None)
                .await
                .json();
            if r["data"]["status"] == "FAILED" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{r}");
        }
        let step = s
            .api("GET", &format!("/workflow-runs/{run}/steps/a"), None)
            .await
            .json();
        assert_eq!(
            step["data"]["error"]["code"], "EXPRESSION_BUDGET_EXCEEDED",
            "{step}"
        );
    }

    // forEach is capped before the items are allocated.
    s.template(
        "name: wide\nsteps:\n  - id: a\n    uses: core/noop\n    forEach: \"lists.range(50000)\"\n",
    )
    .await;
    let run = s.start_run("wide", json!({})).await;
    s.wait_status(&run, "FAILED").await;
    let step = s
        .api("GET", &format!("/workflow-runs/{run}/steps/a"), None)
        .await
        .json();
    assert_eq!(
        step["data"]["error"]["code"], "FOR_EACH_TOO_MANY_ITEMS",
        "{step}"
    );

    // A retry storm is refused up front.
    let r = s
        .api_raw(
            "POST",
            "/workflow-templates",
            "application/yaml",
            b"name: storm\nsteps:\n  - id: a\n    uses: core/noop\n    retry: {maxAttempts: 1000000}\n",
        )
        .await;
    assert_error_shape(&r, 422, "INVALID_TEMPLATE");
    assert!(problem_codes(&r.json()).contains(&"LIMIT_EXCEEDED".to_owned()));

    // Too many steps, refused before anything else is checked.
    let steps: Vec<Value> = (0..1_500)
        .map(|i| json!({"id": format!("s{i}"), "uses": "core/noop", "needs": if i > 0 { vec![format!("s{}", i - 1)] } else { vec![] }}))
        .collect();
    let r = s
        .api(
            "POST",
            "/workflow-templates/validate",
            Some(json!({"name": "big", "steps": steps})),
        )
        .await;
    let j = r.json();
    assert!(
        j.to_string().contains("LIMIT_EXCEEDED"),
        "{}",
        r.text().chars().take(300).collect::<String>()
    );
    assert_responsive(&s).await;
    hello_still_runs(&s).await;
}

/// Waits until nobody holds the store's lock file. An embedded store closes
/// in a background task after its last handle is dropped, so the lock can
/// outlive the handle by a moment (long on a slow machine); surrealkv takes
/// an exclusive `flock`, which a second open file in this process also
/// contends with, so probing it tells when the store is really free.
async fn wait_store_released(dir: &std::path::Path) {
    let lock = dir.join("LOCK");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let free = match std::fs::OpenOptions::new().write(true).open(&lock) {
            Ok(f) => f.try_lock().is_ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => panic!("{}: {e}", lock.display()),
        };
        if free {
            return;
        }
        assert!(Instant::now() < deadline, "store lock still held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens a stopped server's store and replaces fields of run records with
/// values its decoder cannot read, then waits until the store is closed.
async fn corrupt(dir: &std::path::Path, changes: &[(&str, &str)]) {
    use surrealdb::engine::any::connect;
    wait_store_released(dir).await;
    let db = connect(format!("surrealkv://{}", dir.display()))
        .await
        .unwrap();
    db.use_ns("weft").use_db("main").await.unwrap();
    for (run, sql_set) in changes {
        db.query(format!("UPDATE type::record('run', $id) SET {sql_set};"))
            .bind(("id", (*run).to_owned()))
            .await
            .unwrap()
            .check()
            .unwrap();
    }
    drop(db);
    wait_store_released(dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_no_longer_decodes_is_failed_and_the_server_starts() {
    let data = tempfile::tempdir().unwrap();
    let db_dir = data.path().join("db");
    let url = format!("surrealkv://{}", db_dir.display());
    let args = ["--db", url.as_str(), "--listen", "127.0.0.1:0"];
    let mut s = start(&args, &[], None).await;
    s.template(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/approval.yaml"
        ))
        .unwrap(),
    )
    .await;
    let bad_type = s.start_run("approval", json!({})).await;
    let bad_progress = s.start_run("approval", json!({})).await;
    let good = s.start_run("approval", json!({})).await;
    for run in [&bad_type, &bad_progress, &good] {
        s.wait_step(run, "approve", "AWAITING_INPUT").await;
    }
    assert!(s.terminate().await.success());
    drop(s);
    corrupt(
        &db_dir,
        &[
            (&bad_type, "createdAt = 'yesterday', pinnedPlugins = 42"),
            (&bad_progress, "progress = 'half', status = 'RUNNING'"),
        ],
    )
    .await;

    let s = start(&args, &[], None).await;
    for run in [&bad_type, &bad_progress] {
        let r = s.api("GET", &format!("/workflow-runs/{run}"), None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        assert_eq!(j["data"]["status"], "FAILED", "{j}");
        assert_eq!(j["data"]["error"]["code"], "RUN_UNREADABLE", "{j}");
    }
    let r = s.api("GET", "/workflow-runs", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The healthy run carries on.
    let r = s
        .api(
            "POST",
            &format!("/workflow-runs/{good}/input"),
            Some(json!({"stepId": "approve", "values": {"approved": true, "comment": "ok"}})),
        )
        .await;
    assert!(r.status < 300, "{}", r.text());
    s.wait_status(&good, "SUCCESS").await;
}

/// A step retried a hundred times (the cap) stores each attempt once, and
/// its attempts come back in pages: the step's own view carries only the
/// latest, so neither reading the step nor listing the run's steps grows
/// with the number of retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_retried_to_the_cap_pages_its_attempts() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("weft.toml");
    std::fs::write(&config, "[engine]\nmin_retry_backoff_ms = 1\n").unwrap();
    let args = [
        "--db",
        "mem://",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
    ];
    let s = start(&args, &[], None).await;
    s.install("hostile.wasm").await;
    s.template(
        "name: storm\nsteps:\n  - id: f\n    uses: hostile/fail\n    with: {kind: transient, message: again}\n    retry: {maxAttempts: 100, backoff: {kind: fixed, initial: 1ms, max: 1ms, jitter: 0}}\n",
    )
    .await;
    let run = s.start_run("storm", json!({})).await;
    s.wait_status(&run, "FAILED").await;
    assert_responsive(&s).await;

    let step = s
        .api("GET", &format!("/workflow-runs/{run}/steps/f"), None)
        .await
        .json();
    assert_eq!(step["data"]["attempt"], 100, "{step}");
    assert_eq!(step["data"]["lastAttempt"]["attempt"], 100, "{step}");
    assert_eq!(step["data"]["lastAttempt"]["status"], "FAILED", "{step}");
    assert!(step["data"].get("attempts").is_none(), "{step}");
    assert!(step.to_string().len() < 4096, "{step}");

    let mut seen = Vec::new();
    for page in 1..=4 {
        let p = s
            .api(
                "GET",
                &format!("/workflow-runs/{run}/steps/f/attempts?page={page}&pageSize=30"),
                None,
            )
            .await
            .json();
        assert_eq!(p["meta"]["pagination"]["total"], 100, "{p}");
        assert_eq!(p["meta"]["pagination"]["totalPages"], 4, "{p}");
        for a in p["data"].as_array().unwrap() {
            assert_eq!(a["status"], "FAILED", "{a}");
            assert!(a["endedAt"].is_string(), "{a}");
            assert_eq!(a["error"]["message"], "again", "{a}");
            seen.push(a["attempt"].as_u64().unwrap());
        }
    }
    assert_eq!(seen, (1..=100).collect::<Vec<u64>>());
    let whole = s
        .api(
            "GET",
            &format!("/workflow-runs/{run}/steps/f/attempts"),
            None,
        )
        .await
        .json();
    assert_eq!(whole["data"].as_array().map(Vec::len), Some(100));

    assert_error_shape(
        &s.api(
            "GET",
            &format!("/workflow-runs/{run}/steps/nope/attempts"),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    );
    let r = s
        .api(
            "GET",
            &format!("/workflow-runs/{run}/steps/f/attempts?pageSize=101"),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    hello_still_runs(&s).await;
}

/// Request bodies are read as the API document describes them: a number
/// is not a string, `null` is not "left out", inputs and templates are
/// objects, grant names follow their patterns. Each gets a 400, and
/// nothing is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_read_exactly_as_documented() {
    let s = server().await;
    let plugins = s.api("GET", "/plugins", None).await.json();
    let core = plugins["data"][0]["id"].as_str().unwrap().to_owned();
    let enable = format!("/plugins/{core}/enable");
    for body in [
        json!({"env": [1]}),
        json!({"secrets": null}),
        json!({"outboundHosts": "example.com"}),
        json!({"outboundHosts": [true]}),
        json!({"env": ["NOT A NAME"]}),
        json!({"secrets": ["../etc"]}),
        json!({"outboundHosts": [""]}),
    ] {
        let r = s.api("POST", &enable, Some(body.clone())).await;
        assert_error_shape(&r, 400, "BAD_REQUEST");
    }
    let grants = s.api("GET", &format!("/plugins/{core}"), None).await.json();
    assert_eq!(grants["data"]["grants"]["env"], json!([]), "{grants}");

    for body in [
        json!({"template": 5}),
        json!({"template": "hello", "inputs": 0}),
        json!({"template": "hello", "inputs": null}),
        json!({"template": "hello", "inputs": ["a"]}),
        json!({"template": "hello", "imputs": {"name": "Ada"}}),
    ] {
        let r = s.api("POST", "/workflow-runs", Some(body.clone())).await;
        assert_error_shape(&r, 400, "BAD_REQUEST");
    }
    for body in [json!(null), json!([]), json!("name: x")] {
        let r = s
            .api("POST", "/workflow-templates", Some(body.clone()))
            .await;
        assert_error_shape(&r, 400, "BAD_REQUEST");
    }
    let r = s
        .api(
            "POST",
            "/workflow-runs/r/input",
            Some(json!({"stepId": 7, "values": {}})),
        )
        .await;
    assert_error_shape(&r, 400, "BAD_REQUEST");
    // What the document allows still works: grants given, others left out.
    let r = s.api("POST", &enable, Some(json!({"env": ["HOME"]}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["grants"]["env"], json!(["HOME"]));
}
