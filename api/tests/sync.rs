//! Connections, jobs and syncs through the real server, with the bundled
//! `files` connector reading and writing the server's files directory.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use std::path::Path;
use support::{Server, assert_error_shape, start, wait_for_a_commit, wait_for_success};

fn ndjson(from: u64, to: u64) -> String {
    (from..to)
        .map(|i| format!("{{\"id\": {i}, \"name\": \"user {i}\"}}\n"))
        .collect()
}

fn lines_under(dir: &Path) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    for n in names {
        let text = std::fs::read_to_string(dir.join(n)).unwrap();
        rows.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    rows
}

async fn create(s: &Server, path: &str, body: Value) -> String {
    let r = s.api("POST", path, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["data"]["id"].as_str().unwrap().to_owned()
}

/// A source over `files/in` and a destination into `files/out`, and a job
/// between them syncing `users` incrementally.
async fn files_job(s: &Server) -> (String, String, String) {
    let src = create(
        s,
        "/connections",
        json!({"name": "in", "role": "source", "connector": "files",
               "config": {"path": "/data/in", "glob": "*.ndjson"}}),
    )
    .await;
    let dst = create(
        s,
        "/connections",
        json!({"name": "out", "role": "destination", "connector": "files",
               "config": {"path": "/data/out"}}),
    )
    .await;
    let job = create(
        s,
        "/jobs",
        json!({"name": "users", "source": src, "destination": dst,
               "streamsConfig": [{"name": "users", "syncMode": "incremental", "writeMode": "append"}]}),
    )
    .await;
    (src, dst, job)
}

async fn sync_and_wait(s: &Server, job: &str) -> Value {
    let r = s.api("POST", &format!("/jobs/{job}/sync"), None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let run = r.json()["data"]["id"].as_str().unwrap().to_owned();
    s.wait_status(&run, "SUCCESS").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_syncs_files_through_the_server_and_resumes_incrementally() {
    let s = support::server().await;
    let files = s.dir.path().join("files");
    std::fs::create_dir_all(files.join("in")).unwrap();
    std::fs::write(files.join("in/users.ndjson"), ndjson(0, 100)).unwrap();

    let types = s.api("GET", "/connector-types", None).await.json();
    let file_type = types["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "files")
        .unwrap_or_else(|| panic!("no files connector: {types}"));
    assert_eq!(
        file_type["versions"][0]["roles"],
        json!(["source", "destination"])
    );
    let spec = s.api("GET", "/connector-types/files/spec", None).await;
    assert_eq!(spec.status, 200, "{}", spec.text());
    assert!(spec.json()["data"]["source"]["configSchema"]["properties"]["glob"].is_object());

    let (src, dst, job) = files_job(&s).await;
    let test = s
        .api("POST", &format!("/connections/{src}/test"), None)
        .await
        .json();
    assert_eq!(test["data"]["ok"], true, "{test}");
    let catalog = s
        .api("POST", &format!("/connections/{src}/discover"), None)
        .await
        .json();
    assert_eq!(catalog["data"]["streams"][0]["name"], "users", "{catalog}");

    let run = sync_and_wait(&s, &job).await;
    assert_eq!(run["data"]["outputs"]["sync"]["rows"], 100, "{run}");
    let rows = lines_under(&files.join("out"));
    assert_eq!(rows.len(), 100);
    assert_eq!(rows[99]["name"], "user 99");

    // Appended lines are all the next sync reads.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(files.join("in/users.ndjson"))
        .unwrap();
    std::io::Write::write_all(&mut f, ndjson(100, 130).as_bytes()).unwrap();
    let run = sync_and_wait(&s, &job).await;
    assert_eq!(run["data"]["outputs"]["sync"]["rows"], 30, "{run}");
    let rows = lines_under(&files.join("out"));
    let ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (0..130).collect::<Vec<_>>(), "each row exactly once");

    let history = s
        .api("GET", &format!("/jobs/{job}/runs"), None)
        .await
        .json();
    let syncs = history["data"].as_array().unwrap();
    assert_eq!(syncs.len(), 2, "{history}");
    assert_eq!(syncs[0]["rows"], 30);
    assert_eq!(syncs[0]["streams"][0]["stream"], "users");
    let state = s
        .api("GET", &format!("/jobs/{job}/state"), None)
        .await
        .json();
    assert!(state["data"]["seq"].as_u64().unwrap() >= 2, "{state}");
    let view = s.api("GET", &format!("/jobs/{job}"), None).await.json();
    assert_eq!(view["data"]["lastRun"]["status"], "SUCCESS", "{view}");

    // A reset reads everything again, into a file of its own.
    let reset = s.api("DELETE", &format!("/jobs/{job}/state"), None).await;
    assert_eq!(reset.status, 200, "{}", reset.text());
    let run = sync_and_wait(&s, &job).await;
    assert_eq!(run["data"]["outputs"]["sync"]["rows"], 130, "{run}");

    // What the job uses cannot go, and its template changes only through it.
    let del = s.api("DELETE", &format!("/connections/{src}"), None).await;
    assert_error_shape(&del, 409, "CONFLICT");
    let template = view["data"]["templateId"].as_str().unwrap();
    let del = s
        .api("DELETE", &format!("/workflow-templates/{template}"), None)
        .await;
    assert_error_shape(&del, 409, "CONFLICT");
    let listed = s
        .api("GET", "/connections?role=destination", None)
        .await
        .json();
    assert_eq!(listed["data"][0]["id"], dst.as_str(), "{listed}");
    assert_eq!(listed["data"][0]["jobs"][0]["id"], job.as_str(), "{listed}");

    let gone = s.api("DELETE", &format!("/jobs/{job}"), None).await;
    assert_eq!(gone.status, 200, "{}", gone.text());
    let del = s.api("DELETE", &format!("/connections/{src}"), None).await;
    assert_eq!(del.status, 200, "{}", del.text());
    let missing = s.api("GET", &format!("/connections/{src}"), None).await;
    assert_error_shape(&missing, 404, "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connections_and_jobs_get_a_pointer_per_problem() {
    let s = support::server().await;
    std::fs::create_dir_all(s.dir.path().join("files/in")).unwrap();
    std::fs::write(s.dir.path().join("files/in/users.ndjson"), ndjson(0, 3)).unwrap();
    let r = s
        .api(
            "POST",
            "/connections",
            Some(json!({"name": "x", "role": "source", "connector": "files",
                        "config": {"path": 5, "glob": "*"}})),
        )
        .await;
    assert_error_shape(&r, 422, "INVALID_CONNECTION");
    let problems = &r.json()["error"]["validationErrors"];
    assert_eq!(problems[0]["pointer"], "/config/path", "{problems}");
    assert_eq!(problems[0]["code"], "INVALID_CONFIG", "{problems}");

    let r = s
        .api(
            "POST",
            "/connections",
            Some(json!({"name": "x", "role": "source", "connector": "nope", "config": {}})),
        )
        .await;
    assert_error_shape(&r, 422, "INVALID_CONNECTION");
    assert_eq!(
        r.json()["error"]["validationErrors"][0]["code"],
        "UNKNOWN_CONNECTOR"
    );

    // Nested past what the store reads back: refused, not stored.
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let r = s
        .api(
            "POST",
            "/connections",
            Some(
                json!({"name": "deep", "role": "source", "connector": "files",
                        "config": {"path": "/data/in", "schema": deep}}),
            ),
        )
        .await;
    assert_error_shape(&r, 400, "JSON_TOO_DEEP");

    let (src, dst, job) = files_job(&s).await;
    let r = s
        .api(
            "PUT",
            &format!("/jobs/{job}/state"),
            Some(json!({"streams": [{"stream": "users", "state": deep}]})),
        )
        .await;
    assert_error_shape(&r, 400, "JSON_TOO_DEEP");
    let r = s
        .api(
            "PUT",
            &format!("/jobs/{job}/state"),
            Some(json!({"streams": [{"stream": "ghosts", "state": {}}]})),
        )
        .await;
    assert_error_shape(&r, 422, "INVALID_JOB");
    let r = s
        .api(
            "POST",
            "/jobs",
            Some(json!({"name": "bad", "source": dst, "destination": src,
                        "streamsConfig": [{"name": "users", "syncMode": "incremental", "writeMode": "append"}]})),
        )
        .await;
    assert_error_shape(&r, 422, "INVALID_JOB");
    let codes: Vec<Value> = r.json()["error"]["validationErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].clone())
        .collect();
    assert_eq!(codes, [json!("WRONG_ROLE"), json!("WRONG_ROLE")]);

    let r = s
        .api(
            "POST",
            "/jobs",
            Some(json!({"name": "bad", "source": src, "destination": dst,
                        "streamsConfig": [
                            {"name": "ghosts", "syncMode": "full-refresh", "writeMode": "append"},
                            {"name": "users", "syncMode": "full-refresh", "writeMode": "upsert"}]})),
        )
        .await;
    assert_error_shape(&r, 422, "INVALID_JOB");
    let pointers: Vec<Value> = r.json()["error"]["validationErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pointer"].clone())
        .collect();
    assert_eq!(
        pointers,
        [
            json!("/streams/0/name"),
            json!("/streams/1/writeMode"),
            json!("/streams/1/primaryKey")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_key_is_generated_once_private_and_reused_after_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let db = format!("surrealkv://{}", work.path().join("db").display());
    let data = work.path().join("data");
    let args = [
        "--db",
        db.as_str(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let s = start(&args, &[], None).await;
    let key = std::fs::read_to_string(data.join("secret.key")).unwrap();
    assert_eq!(key.trim().len(), 44, "32 bytes of base64");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only its owner reads the key");
    }
    std::fs::create_dir_all(data.join("files/in")).unwrap();
    std::fs::write(data.join("files/in/users.ndjson"), ndjson(0, 3)).unwrap();
    let id = create(
        &s,
        "/connections",
        json!({"name": "in", "role": "source", "connector": "files", "config": {"path": "/data/in"}}),
    )
    .await;
    drop(s);
    let s = start(&args, &[], None).await;
    let test = s
        .api("POST", &format!("/connections/{id}/test"), None)
        .await
        .json();
    assert_eq!(test["data"]["ok"], true, "{test}");
    assert_eq!(
        std::fs::read_to_string(data.join("secret.key")).unwrap(),
        key,
        "the key is not replaced"
    );
}

/// SIGKILL in the middle of a sync: after the restart the run's sync step
/// runs again with the same sync id from the last committed checkpoint (not
/// from zero), and the destination holds each source row exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_halfway_resumes_from_its_last_commit_after_a_restart() {
    const ROWS: u64 = 1_500_000;
    let work = tempfile::tempdir().unwrap();
    let db = format!("surrealkv://{}", work.path().join("db").display());
    let data = work.path().join("data");
    let files = data.join("files");
    std::fs::create_dir_all(files.join("in")).unwrap();
    std::fs::write(files.join("in/users.ndjson"), ndjson(0, ROWS)).unwrap();
    let mut args = [
        "--db".to_owned(),
        db,
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--data-dir".to_owned(),
        data.to_str().unwrap().to_owned(),
    ];
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut s = start(&argv, &[], None).await;
    let (_, _, job) = files_job(&s).await;
    let r = s.api("POST", &format!("/jobs/{job}/sync"), None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let run = r.json()["data"]["id"].as_str().unwrap().to_owned();

    // Wait for a commit while the sync still runs.
    wait_for_a_commit(&s, &job, &run, std::time::Duration::from_secs(60)).await;
    s.kill();

    args[3] = s.addr.to_string();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = start(&argv, &[], None).await;
    let done = wait_for_success(&s, &run).await;
    let resumed_rows = done["data"]["outputs"]["sync"]["rows"].as_u64().unwrap();
    assert!(
        resumed_rows < ROWS,
        "the second attempt re-read everything ({resumed_rows} rows): {done}"
    );
    let step = s
        .api("GET", &format!("/workflow-runs/{run}/steps/sync"), None)
        .await
        .json();
    assert_eq!(step["data"]["attempt"], 2, "{step}");
    let rows = lines_under(&files.join("out"));
    assert_eq!(rows.len() as u64, ROWS, "each row exactly once");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["id"].as_u64(), Some(i as u64), "row {i} out of place");
    }
}

/// The bundled `http` connector against a scripted API: its token is sealed
/// (never in a response, a log or the store's files), kept across a `PUT`
/// that leaves it out, and the sync lands in a directory an admin granted
/// the `files` connector through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_source_keeps_its_token_sealed_and_syncs_into_a_granted_directory() {
    use weft_tests::fake_http::{Exchange, FakeHttp, Reply};
    const SECRET: &str = "Bearer sekrit-7f3a9c";
    let api = FakeHttp::start(|r: &Exchange| {
        if r.header("authorization") != Some(SECRET) {
            return Reply::status(401, "who are you");
        }
        let offset: u64 = r.param("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
        let items: Vec<Value> = (offset + 1..=(offset + 10).min(35))
            .map(|i| json!({"id": i, "name": format!("item {i}")}))
            .collect();
        Reply::json(&json!({"items": items}))
    })
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = format!("surrealkv://{}", work.path().join("db").display());
    let data = work.path().join("data");
    let args = [
        "--db",
        &db,
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let s = start(&args, &[], None).await;
    let plugins = s.api("GET", "/plugins", None).await.json();
    let id_of = |name: &str| {
        plugins["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {plugins}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (http, files) = (id_of("http"), id_of("files"));

    // Without a grant, the test names the host to grant.
    let config = json!({
        "baseUrl": api.base_url(),
        "authToken": SECRET,
        "streams": [{"name": "items", "path": "/items", "recordsPointer": "/items",
                     "pagination": {"type": "offset", "pageSize": 10}}]
    });
    let unsaved = s
        .api(
            "POST",
            "/connections/test",
            Some(json!({"name": "probe", "role": "source", "connector": "http", "config": config})),
        )
        .await
        .json();
    assert_eq!(unsaved["data"]["ok"], false, "{unsaved}");
    assert_eq!(
        unsaved["data"]["failure"]["code"], "CAPABILITY_DENIED",
        "{unsaved}"
    );
    let host = format!("127.0.0.1:{}", api.port);
    assert!(unsaved.to_string().contains(&host), "{unsaved}");
    let r = s
        .api(
            "POST",
            &format!("/plugins/{http}/enable"),
            Some(json!({"outboundHosts": [host]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let r = s
        .api(
            "POST",
            "/connections",
            Some(json!({"name": "api", "role": "source", "connector": "http", "config": config})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let src = r.json()["data"]["id"].as_str().unwrap().to_owned();
    let shown = s.api("GET", &format!("/connections/{src}"), None).await;
    assert_eq!(
        shown.json()["data"]["config"]["authToken"],
        "********",
        "{}",
        shown.text()
    );
    for text in [r.text(), shown.text()] {
        assert!(!text.contains("sekrit"), "{text}");
    }
    let test_path = format!("/connections/{src}/test");
    let test = async |s: &Server| s.api("POST", &test_path, None).await.json();
    assert_eq!(test(&s).await["data"]["ok"], true);

    let put_path = format!("/connections/{src}");
    let put = async |s: &Server, config: Value| {
        let body = json!({"name": "api", "role": "source", "connector": "http", "config": config});
        s.api("PUT", &put_path, Some(body)).await
    };
    // A PUT without the token, or with the mask, keeps it; a new one replaces it.
    let mut without = config.clone();
    without.as_object_mut().unwrap().remove("authToken");
    let mut masked = config.clone();
    masked["authToken"] = json!("********");
    for body in [without, masked] {
        let r = put(&s, body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            test(&s).await["data"]["ok"],
            true,
            "the stored token was kept"
        );
    }
    let mut wrong = config.clone();
    wrong["authToken"] = json!("Bearer nope");
    let r = put(&s, wrong).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let failed = test(&s).await;
    assert_eq!(failed["data"]["failure"]["kind"], "auth", "{failed}");
    let r = put(&s, config).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The files connector gets a directory of the admin's choosing.
    let out = work.path().join("exports");
    let r = s
        .api(
            "POST",
            &format!("/plugins/{files}/enable"),
            Some(json!({"directories": [{"guestPath": "/data", "hostPath": work.path().join("missing").to_str().unwrap(), "readOnly": false}]})),
        )
        .await;
    assert_error_shape(&r, 422, "INVALID_GRANTS");
    assert_eq!(
        r.json()["error"]["validationErrors"][0]["pointer"],
        "/directories/0/hostPath"
    );
    std::fs::create_dir_all(&out).unwrap();
    let r = s
        .api(
            "POST",
            &format!("/plugins/{files}/enable"),
            Some(json!({"directories": [{"guestPath": "/data", "hostPath": out.to_str().unwrap(), "readOnly": false}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let dst = create(
        &s,
        "/connections",
        json!({"name": "out", "role": "destination", "connector": "files",
               "config": {"path": "/data/items"}}),
    )
    .await;
    let job = create(
        &s,
        "/jobs",
        json!({"name": "items", "source": src, "destination": dst,
               "streamsConfig": [{"name": "items", "syncMode": "full-refresh", "writeMode": "overwrite"}]}),
    )
    .await;
    let run = sync_and_wait(&s, &job).await;
    assert_eq!(run["data"]["outputs"]["sync"]["rows"], 35, "{run}");
    let rows = lines_under(&out.join("items"));
    assert_eq!(rows.len(), 35);
    // Re-enabling without `directories` keeps them.
    let r = s
        .api("POST", &format!("/plugins/{files}/enable"), Some(json!({})))
        .await;
    assert_eq!(
        r.json()["data"]["grants"]["directories"],
        json!(["/data"]),
        "{}",
        r.text()
    );

    // Nothing the run shows, and nothing in the store's files, holds the token.
    let run_id = run["data"]["id"].as_str().unwrap();
    let logs = s
        .api(
            "GET",
            &format!("/workflow-runs/{run_id}/steps/sync/logs"),
            None,
        )
        .await;
    assert_eq!(logs.status, 200, "{}", logs.text());
    assert!(!logs.text().contains("sekrit") && !run.to_string().contains("sekrit"));
    drop(s);
    let mut stack = vec![work.path().join("db")];
    let mut scanned = 0;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            scanned += bytes.len();
            assert!(
                !bytes.windows(6).any(|w| w == b"sekrit"),
                "{} holds the token in clear",
                path.display()
            );
        }
    }
    assert!(scanned > 0, "the store wrote files");
}
