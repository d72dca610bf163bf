//! The bundled `postgres` connector through the real server against the
//! real test PostgreSQL: a grant through the API, connections and jobs,
//! and SIGKILL of `weft serve` in the middle of a full refresh in each
//! write mode; after the restart the sync resumes from its last committed
//! chunk and the destination table equals the source.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::{Server, start};
use weft_tests::pg::{self, PgServer, fingerprint};

const ROWS: u64 = 400_000;

async fn create(s: &Server, path: &str, body: Value) -> String {
    let r = s.api("POST", path, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["data"]["id"].as_str().unwrap().to_owned()
}

/// Polls the run until it is no longer running, or a commit was saved.
async fn wait_for_a_commit(s: &Server, job: &str, run: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let j = s.api("GET", &format!("/jobs/{job}"), None).await.json();
        let r = s
            .api("GET", &format!("/workflow-runs/{run}"), None)
            .await
            .json();
        assert_eq!(
            r["data"]["status"], "RUNNING",
            "the sync ended before it could be killed: make the table larger: {r}"
        );
        if j["data"]["stateSeq"].as_u64().unwrap_or(0) >= 1 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no commit: {j}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_success(s: &Server, run: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let r = s
            .api("GET", &format!("/workflow-runs/{run}"), None)
            .await
            .json();
        match r["data"]["status"].as_str() {
            Some("SUCCESS") => return r,
            Some("FAILED" | "CANCELLED") => panic!("the resumed sync did not succeed: {r}"),
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sync did not finish: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn source_table(server: &PgServer) -> String {
    let src = server.database("api_src").await.unwrap();
    let c = server.connect(&src).await.unwrap();
    c.batch_execute(&format!(
        "CREATE TABLE t (id bigint PRIMARY KEY, a int, label text, amount numeric(12,2), \
           created timestamptz, flag boolean, doc jsonb, note text); \
         INSERT INTO t SELECT i, i % 1000, 'label ' || i, (i % 10000) / 100.0, \
           timestamptz '2026-01-01' + i * interval '1 second', i % 2 = 0, \
           jsonb_build_object('k', i % 10), CASE WHEN i % 3 = 0 THEN NULL ELSE E'n\\t' || i END \
         FROM generate_series(1, {ROWS}) i"
    ))
    .await
    .unwrap();
    src
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_sync_killed_halfway_resumes_and_the_table_equals_the_source() {
    let server = pg::server().unwrap();
    let src = source_table(server).await;
    let dst = server.database("api_dst").await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = format!("surrealkv://{}", work.path().join("db").display());
    let data = work.path().join("data");
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

    // Not granted yet: the test names the address to grant.
    let mut source_config = server.config(&src);
    source_config["chunkRows"] = json!(20_000);
    let probe = s
        .api(
            "POST",
            "/connections/test",
            Some(
                json!({"name": "probe", "role": "source", "connector": "postgres",
                        "config": source_config}),
            ),
        )
        .await
        .json();
    assert_eq!(
        probe["data"]["failure"]["code"], "CAPABILITY_DENIED",
        "{probe}"
    );
    let plugins = s.api("GET", "/plugins", None).await.json();
    let plugin = plugins["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "postgres")
        .unwrap_or_else(|| panic!("postgres is not bundled: {plugins}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .api(
            "POST",
            &format!("/plugins/{plugin}/enable"),
            Some(json!({"outboundHosts": [server.address()]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let source = create(
        &s,
        "/connections",
        json!({"name": "src", "role": "source", "connector": "postgres", "config": source_config}),
    )
    .await;
    let shown = s.api("GET", &format!("/connections/{source}"), None).await;
    assert!(!shown.text().contains(&server.password), "{}", shown.text());
    let streams = s
        .api("POST", &format!("/connections/{source}/discover"), None)
        .await
        .json();
    assert!(streams.to_string().contains("\"t\""), "{streams}");

    for mode in ["append", "upsert", "overwrite"] {
        let mut config = server.config(&dst);
        config["schema"] = json!(mode);
        let destination = create(
            &s,
            "/connections",
            json!({"name": format!("dst-{mode}"), "role": "destination", "connector": "postgres",
                   "config": config}),
        )
        .await;
        let job = create(
            &s,
            "/jobs",
            json!({"name": format!("t-{mode}"), "source": source, "destination": destination,
                   "streamsConfig": [{"name": "t", "namespace": "public",
                                      "syncMode": "full-refresh", "writeMode": mode}]}),
        )
        .await;
        let r = s.api("POST", &format!("/jobs/{job}/sync"), None).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let run = r.json()["data"]["id"].as_str().unwrap().to_owned();
        wait_for_a_commit(&s, &job, &run).await;
        s.kill();

        args[3] = s.addr.to_string();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        s = start(&argv, &[], None).await;
        let done = wait_for_success(&s, &run).await;
        let resumed = done["data"]["outputs"]["sync"]["rows"].as_u64().unwrap();
        assert!(
            resumed < ROWS,
            "{mode}: the second attempt re-read everything ({resumed} rows): {done}"
        );
        let a = server.connect(&src).await.unwrap();
        let b = server.connect(&dst).await.unwrap();
        assert_eq!(
            fingerprint(&a, "public.t").await.unwrap(),
            fingerprint(&b, &format!("{mode}.t")).await.unwrap(),
            "{mode}: the destination equals the source"
        );
    }
}
