//! The bundled `postgres` connector through the real server against the
//! real test PostgreSQL: a grant through the API, connections and jobs,
//! and SIGKILL of `weft serve` in the middle of a 1 M-row full refresh in
//! each write mode and of an incremental sync; after the restart the sync
//! resumes from its last committed chunk and the destination table equals
//! the source. Rows updated while an incremental sync runs arrive with the
//! next one.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::{Server, start, wait_for_a_commit, wait_for_success};
use weft_tests::pg::{self, PgServer, fingerprint};

const ROWS: u64 = 1_000_000;

async fn create(s: &Server, path: &str, body: Value) -> String {
    let r = s.api("POST", path, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["data"]["id"].as_str().unwrap().to_owned()
}

async fn source_table(server: &PgServer, rows: u64) -> String {
    let src = server.database("api_src").await.unwrap();
    let c = server.connect(&src).await.unwrap();
    c.batch_execute(&format!(
        "CREATE TABLE t (id bigint PRIMARY KEY, a int, label text, amount numeric(12,2), \
           created timestamptz, flag boolean, doc jsonb, note text); \
         INSERT INTO t SELECT i, i % 1000, 'label ' || i, (i % 10000) / 100.0, \
           timestamptz '2026-01-01' + i * interval '1 second', i % 2 = 0, \
           jsonb_build_object('k', i % 10), CASE WHEN i % 3 = 0 THEN NULL ELSE E'n\\t' || i END \
         FROM generate_series(1, {rows}) i"
    ))
    .await
    .unwrap();
    src
}

/// `weft serve` on a fresh store, with the postgres plugin granted the
/// test server (after checking an ungranted test names what to grant).
struct Serving {
    s: Server,
    args: Vec<String>,
    _work: tempfile::TempDir,
}

impl Serving {
    async fn start(server: &PgServer, source_config: &Value) -> Self {
        let work = tempfile::tempdir().unwrap();
        let db = format!("surrealkv://{}", work.path().join("db").display());
        let data = work.path().join("data");
        let args = vec![
            "--db".to_owned(),
            db,
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--data-dir".to_owned(),
            data.to_str().unwrap().to_owned(),
        ];
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let s = start(&argv, &[], None).await;
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
        Serving {
            s,
            args,
            _work: work,
        }
    }

    /// SIGKILL, then a new server on the same store and port.
    async fn kill_and_restart(&mut self) {
        self.s.kill();
        self.args[3] = self.s.addr.to_string();
        let argv: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.s = start(&argv, &[], None).await;
    }

    /// Starts a sync of `job`; its run id.
    async fn sync(&self, job: &str) -> String {
        let r = self.s.api("POST", &format!("/jobs/{job}/sync"), None).await;
        assert_eq!(r.status, 202, "{}", r.text());
        r.json()["data"]["id"].as_str().unwrap().to_owned()
    }
}

async fn assert_same(server: &PgServer, src: &str, dst: &str, table: &str, what: &str) {
    let a = server.connect(src).await.unwrap();
    let b = server.connect(dst).await.unwrap();
    assert_eq!(
        fingerprint(&a, "public.t").await.unwrap(),
        fingerprint(&b, table).await.unwrap(),
        "{what}: the destination equals the source"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_sync_killed_halfway_resumes_and_the_table_equals_the_source() {
    let server = pg::server().unwrap();
    let src = source_table(server, ROWS).await;
    let dst = server.database("api_dst").await.unwrap();
    let mut source_config = server.config(&src);
    source_config["chunkRows"] = json!(50_000);
    let mut serving = Serving::start(server, &source_config).await;
    let s = &serving.s;
    let source = create(
        s,
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
        let s = &serving.s;
        let destination = create(
            s,
            "/connections",
            json!({"name": format!("dst-{mode}"), "role": "destination", "connector": "postgres",
                   "config": config}),
        )
        .await;
        let job = create(
            s,
            "/jobs",
            json!({"name": format!("t-{mode}"), "source": source, "destination": destination,
                   "streamsConfig": [{"name": "t", "namespace": "public",
                                      "syncMode": "full-refresh", "writeMode": mode}]}),
        )
        .await;
        let run = serving.sync(&job).await;
        wait_for_a_commit(&serving.s, &job, &run, Duration::from_secs(120)).await;
        serving.kill_and_restart().await;
        let done = wait_for_success(&serving.s, &run).await;
        let resumed = done["data"]["outputs"]["sync"]["rows"].as_u64().unwrap();
        assert!(
            resumed < ROWS,
            "{mode}: the second attempt re-read everything ({resumed} rows): {done}"
        );
        assert_same(server, &src, &dst, &format!("{mode}.t"), mode).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_sync_killed_halfway_resumes_and_later_changes_arrive_next_time() {
    const INCREMENTAL_ROWS: u64 = 300_000;
    let server = pg::server().unwrap();
    let src = source_table(server, INCREMENTAL_ROWS).await;
    let dst = server.database("api_inc").await.unwrap();
    let mut source_config = server.config(&src);
    source_config["chunkRows"] = json!(20_000);
    let mut serving = Serving::start(server, &source_config).await;
    let s = &serving.s;
    let source = create(
        s,
        "/connections",
        json!({"name": "src", "role": "source", "connector": "postgres", "config": source_config}),
    )
    .await;
    let destination = create(
        s,
        "/connections",
        json!({"name": "dst", "role": "destination", "connector": "postgres",
               "config": server.config(&dst)}),
    )
    .await;
    let job = create(
        s,
        "/jobs",
        json!({"name": "t-inc", "source": source, "destination": destination,
               "streamsConfig": [{"name": "t", "namespace": "public",
                                  "syncMode": "incremental", "cursorField": "created",
                                  "primaryKey": ["id"], "writeMode": "upsert"}]}),
    )
    .await;
    let run = serving.sync(&job).await;
    wait_for_a_commit(&serving.s, &job, &run, Duration::from_secs(120)).await;
    // Written while the sync runs, past the upper bound it fixed at its
    // start: this sync must not half-read them, the next one takes them.
    let writer = server.connect(&src).await.unwrap();
    writer
        .batch_execute(
            "UPDATE t SET created = now(), label = 'changed during the sync' WHERE id % 97 = 0; \
             INSERT INTO t (id, a, label, created) VALUES (-1, 0, 'new', now())",
        )
        .await
        .unwrap();
    serving.kill_and_restart().await;
    let done = wait_for_success(&serving.s, &run).await;
    let resumed = done["data"]["outputs"]["sync"]["rows"].as_u64().unwrap();
    assert!(
        resumed < INCREMENTAL_ROWS,
        "the second attempt re-read everything ({resumed} rows): {done}"
    );

    let next = serving.sync(&job).await;
    let done = wait_for_success(&serving.s, &next).await;
    let picked = done["data"]["outputs"]["sync"]["rows"].as_u64().unwrap();
    let changed = INCREMENTAL_ROWS / 97 + 1;
    assert!(
        picked >= changed && picked < INCREMENTAL_ROWS / 10,
        "the next sync read {picked} rows, {changed} changed: {done}"
    );
    assert_same(server, &src, &dst, "public.t", "incremental").await;
}
