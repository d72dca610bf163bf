//! The real `postgres` connector through the real host against the real
//! test PostgreSQL (`scripts/pg.sh`): discovery and type mapping, COPY
//! text passed through PG → PG, Arrow to and from files, exactly-once in
//! every write mode across a commit Weft did not save, incremental reads
//! with a key tie-break, and the errors a user must be able to act on.

use crate::sync::{Recorder, configured, discover, install, sync_request};
use serde_json::{Value, json};
use std::sync::Arc;
use weft_host::{ConnectorCallRequest, ConnectorFailure, InvokeError, PluginHost, SyncRequest};
use weft_model::{
    BatchFormat, CapabilityGrants, ConfiguredStream, ConnectorRole, HostPattern, PluginDigest,
    PluginErrorKind, StreamInfo, SyncMode, WriteMode,
};
use weft_tests::pg::{self, PgServer, fingerprint};
use weft_tests::test_host;

/// The source table: every mapped type, text that needs COPY escaping,
/// NULLs, and a column (`spot`, a point) the connector cannot map.
pub(crate) const ORDERS: &str = "
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    qty integer NOT NULL,
    note text,
    amount numeric(12,2),
    placed timestamptz NOT NULL,
    local_at timestamp,
    paid boolean,
    meta jsonb,
    tags text[],
    blob bytea,
    ref uuid,
    day date,
    spot point
);
CREATE INDEX orders_placed ON orders (placed);
";

pub(crate) fn fill_sql(from: i64, to: i64) -> String {
    format!(
        "INSERT INTO orders SELECT i, i % 7, \
           CASE WHEN i % 5 = 0 THEN NULL ELSE 'row ' || i || E'\\ttab\\nline \\\\ slash' END, \
           (i * 1.25)::numeric(12,2), \
           timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second', \
           timestamp '2026-01-01 00:00:00' + i * interval '1 minute', \
           i % 2 = 0, jsonb_build_object('i', i, 'k', ARRAY['a', 'b']), \
           ARRAY['x' || i, 'y \"q\"'], decode(lpad(to_hex(i), 8, '0'), 'hex'), \
           md5(i::text)::uuid, date '2026-01-01' + (i % 300), point(i, i) \
         FROM generate_series({from}, {to}) i"
    )
}

/// A host with `postgres` installed and the test server granted.
pub(crate) async fn pg_host() -> anyhow::Result<(PluginHost, PluginDigest, &'static PgServer)> {
    let server = pg::server()?;
    let host = test_host()?;
    let plugin = install(&host, "postgres").await?;
    grant(&host, &plugin, &server.address())?;
    Ok((host, plugin, server))
}

pub(crate) fn grant(host: &PluginHost, plugin: &PluginDigest, pattern: &str) -> anyhow::Result<()> {
    host.set_grants(
        plugin,
        &CapabilityGrants {
            outbound_hosts: vec![HostPattern::parse(pattern)?],
            ..Default::default()
        },
    )?;
    Ok(())
}

/// The stream `name`, with the unmappable columns left out as a job does.
pub(crate) fn stream(
    streams: &[StreamInfo],
    name: &str,
    mode: SyncMode,
    write: WriteMode,
) -> ConfiguredStream {
    let info = streams.iter().find(|s| s.name == name).expect("the stream");
    let mut c = configured(name, info.json_schema.clone(), mode, write);
    c.namespace = info.namespace.clone();
    c.primary_key = info
        .primary_key_candidates
        .first()
        .cloned()
        .unwrap_or_default();
    c
}

pub(crate) fn pg_sync(
    id: &str,
    plugin: &PluginDigest,
    source: Value,
    destination: Value,
    streams: Vec<ConfiguredStream>,
) -> SyncRequest {
    sync_request(id, (plugin, source), (plugin, destination), streams)
}

/// `count(*)` and checksum of `orders` without the column nobody syncs.
pub(crate) async fn orders_fingerprint(
    server: &PgServer,
    db: &str,
    table: &str,
) -> anyhow::Result<(i64, i64)> {
    let client = server.connect(db).await?;
    let view = format!(
        "(SELECT id, qty, note, amount, placed, local_at, paid, meta, tags, blob, ref, day FROM {table})"
    );
    fingerprint(&client, &view).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_maps_types_and_lists_what_it_cannot_map() -> anyhow::Result<()> {
    let (host, plugin, server) = pg_host().await?;
    let db = server.database("discover").await?;
    let client = server.connect(&db).await?;
    client.batch_execute(ORDERS).await?;
    client
        .batch_execute("CREATE VIEW big_orders AS SELECT id, amount FROM orders WHERE amount > 10")
        .await?;
    let streams = discover(&host, &plugin, server.config(&db)).await?;
    let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["big_orders", "orders"]);
    let orders = &streams[1];
    assert_eq!(orders.namespace.as_deref(), Some("public"));
    let props = &orders.json_schema["properties"];
    assert_eq!(props["id"]["type"], json!(["integer", "null"]));
    assert_eq!(props["id"]["x-pg-type"], "bigint");
    assert_eq!(props["amount"]["format"], "decimal");
    assert_eq!(props["placed"]["format"], "date-time");
    assert_eq!(props["tags"]["items"]["type"][0], "string");
    assert_eq!(props["blob"]["contentEncoding"], "base16");
    assert_eq!(props["ref"]["format"], "uuid");
    assert_eq!(props["meta"].get("type"), None, "json is any JSON");
    assert!(props.get("spot").is_none());
    let why = orders.json_schema["x-unsupported-columns"]["spot"]
        .as_str()
        .unwrap();
    assert!(why.contains("geometric"), "{why}");
    assert_eq!(orders.primary_key_candidates, vec![vec!["id".to_owned()]]);
    assert_eq!(
        orders.cursor_candidates[0], "placed",
        "{:?}",
        orders.cursor_candidates
    );
    assert!(orders.sync_modes.contains(&SyncMode::Incremental));

    // numericAs: number.
    let mut config = server.config(&db);
    config["numericAs"] = json!("number");
    let streams = discover(&host, &plugin, config).await?;
    assert_eq!(
        streams[1].json_schema["properties"]["amount"]["type"][0],
        "number"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_to_pg_passes_copy_text_through_in_resumable_chunks() -> anyhow::Result<()> {
    let (host, plugin, server) = pg_host().await?;
    let (src, dst) = (server.database("src").await?, server.database("dst").await?);
    let client = server.connect(&src).await?;
    client.batch_execute(ORDERS).await?;
    client.batch_execute(&fill_sql(1, 5000)).await?;
    let streams = discover(&host, &plugin, server.config(&src)).await?;
    let selected = vec![stream(
        &streams,
        "orders",
        SyncMode::FullRefresh,
        WriteMode::Append,
    )];
    let mut source = server.config(&src);
    source["chunkRows"] = json!(700);
    let sink = Arc::new(Recorder::default());
    let mut req = pg_sync("s1", &plugin, source, server.config(&dst), selected);
    req.sink = sink.clone();
    let report = host.sync(req).await?;
    assert!(
        matches!(&report.format, BatchFormat::Other(f) if f == "postgres-copy-text"),
        "{:?}",
        report.format
    );
    // 5000 rows in chunks of 700: 8 chunks, each a checkpoint.
    let commits = sink.commits.lock().unwrap().clone();
    assert!(commits.len() >= 8, "{} commits", commits.len());
    assert_eq!(
        orders_fingerprint(server, &src, "orders").await?,
        orders_fingerprint(server, &dst, "orders").await?
    );
    // The destination has the source's own column types.
    let d = server.connect(&dst).await?;
    let types: Vec<String> = d
        .query(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'orders'::regclass AND attnum > 0 ORDER BY attnum",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(types[3], "numeric(12,2)");
    assert_eq!(types[8], "text[]");
    let marker: i64 = d
        .query_one("SELECT seq FROM _weft_sync_state", &[])
        .await?
        .get(0);
    assert_eq!(marker as u64, commits.last().unwrap().seq);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_mode_lands_each_row_once_across_a_commit_weft_did_not_save()
-> anyhow::Result<()> {
    let (host, plugin, server) = pg_host().await?;
    let src = server.database("src").await?;
    let client = server.connect(&src).await?;
    client.batch_execute(ORDERS).await?;
    client.batch_execute(&fill_sql(1, 3000)).await?;
    let streams = discover(&host, &plugin, server.config(&src)).await?;
    let mut source = server.config(&src);
    source["chunkRows"] = json!(400);
    for mode in [WriteMode::Append, WriteMode::Upsert, WriteMode::Overwrite] {
        let dst = server.database("dst").await?;
        let d = server.connect(&dst).await?;
        if mode != WriteMode::Append {
            // A table that is already there, with rows an overwrite replaces
            // and an upsert updates.
            d.batch_execute(ORDERS).await?;
            d.batch_execute(&fill_sql(1, 10)).await?;
            d.batch_execute("UPDATE orders SET qty = -1").await?;
        }
        let selected = vec![stream(&streams, "orders", SyncMode::FullRefresh, mode)];
        let sink = Arc::new(Recorder {
            fail_at: Some(3),
            ..Default::default()
        });
        let mut req = pg_sync(
            "s1",
            &plugin,
            source.clone(),
            server.config(&dst),
            selected.clone(),
        );
        req.sink = sink.clone();
        let err = host.sync(req).await.unwrap_err();
        assert!(
            err.to_string().contains("state store is down"),
            "{mode:?}: {err}"
        );
        let saved = sink.commits.lock().unwrap().clone();
        assert_eq!(saved.len(), 2, "{mode:?}");
        if mode == WriteMode::Overwrite {
            let (n, _) = fingerprint(&d, "orders").await?;
            assert_eq!(n, 10, "readers see the old table until the final commit");
        }

        let sink = Arc::new(Recorder::default());
        let mut req = pg_sync("s1", &plugin, source.clone(), server.config(&dst), selected);
        req.state = saved[1].state.clone();
        req.committed_seq = saved[1].seq;
        req.sink = sink.clone();
        let report = host.sync(req).await?;
        assert_eq!(report.adopted.as_ref().map(|m| m.seq), Some(3), "{mode:?}");
        assert_eq!(
            orders_fingerprint(server, &src, "orders").await?,
            orders_fingerprint(server, &dst, "orders").await?,
            "{mode:?}: the destination equals the source"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_reads_pick_up_changed_rows_with_a_key_tie_break() -> anyhow::Result<()> {
    let (host, plugin, server) = pg_host().await?;
    let (src, dst) = (server.database("src").await?, server.database("dst").await?);
    let client = server.connect(&src).await?;
    client
        .batch_execute(
            "CREATE TABLE events (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL); \
             CREATE INDEX ON events (updated_at, id); \
             INSERT INTO events SELECT i, 'v' || i, timestamptz '2026-01-01' + (i / 100) * interval '1 hour' \
             FROM generate_series(1, 1000) i",
        )
        .await?;
    let streams = discover(&host, &plugin, server.config(&src)).await?;
    let mut selected = stream(&streams, "events", SyncMode::Incremental, WriteMode::Upsert);
    selected.cursor_field = Some("updated_at".into());
    let mut source = server.config(&src);
    // Chunks end inside runs of equal cursor values: the key breaks the tie.
    source["chunkRows"] = json!(130);
    let req = pg_sync(
        "i1",
        &plugin,
        source.clone(),
        server.config(&dst),
        vec![selected.clone()],
    );
    let first = host.sync(req).await?;
    let fp = |db: String| async move {
        let c = server.connect(&db).await?;
        fingerprint(&c, "events").await
    };
    assert_eq!(fp(src.clone()).await?, fp(dst.clone()).await?);
    let total: u64 = first.progress.streams.iter().map(|s| s.rows).sum();
    assert_eq!(total, 1000);

    client
        .batch_execute(
            "UPDATE events SET v = 'changed', updated_at = now() WHERE id % 100 = 7; \
             INSERT INTO events VALUES (1001, 'new', now())",
        )
        .await?;
    let mut req = pg_sync("i2", &plugin, source, server.config(&dst), vec![selected]);
    req.state = first.state.clone();
    let second = host.sync(req).await?;
    let rows: u64 = second.progress.streams.iter().map(|s| s.rows).sum();
    assert_eq!(rows, 11, "only the changed and new rows are read");
    assert_eq!(fp(src).await?, fp(dst).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_carries_rows_from_postgres_to_files_and_back() -> anyhow::Result<()> {
    let (host, plugin, server) = pg_host().await?;
    let dir = tempfile::tempdir()?;
    let files = install(&host, "files").await?;
    host.set_grants(
        &files,
        &CapabilityGrants {
            directories: vec![weft_model::DirectoryGrant {
                guest_path: "/data".into(),
                host_path: dir.path().to_owned(),
                read_only: false,
            }],
            ..Default::default()
        },
    )?;
    let (src, dst) = (server.database("src").await?, server.database("dst").await?);
    let client = server.connect(&src).await?;
    client.batch_execute(ORDERS).await?;
    client.batch_execute(&fill_sql(1, 1200)).await?;
    let streams = discover(&host, &plugin, server.config(&src)).await?;
    let orders = stream(
        &streams,
        "orders",
        SyncMode::FullRefresh,
        WriteMode::Overwrite,
    );

    let out = json!({"path": "/data/out", "format": "ndjson"});
    let req = sync_request(
        "a1",
        (&plugin, server.config(&src)),
        (&files, out),
        vec![orders.clone()],
    );
    let report = host.sync(req).await?;
    assert!(
        matches!(report.format, BatchFormat::ArrowIpc),
        "{:?}",
        report.format
    );
    let text = std::fs::read_to_string(dir.path().join("out/orders.ndjson"))?;
    let rows: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(rows.len(), 1200);
    let r = rows.iter().find(|r| r["id"] == 4).unwrap();
    assert_eq!(r["note"], "row 4\ttab\nline \\ slash");
    assert_eq!(r["amount"], "5.00");
    assert_eq!(r["placed"], "2026-01-01T00:00:04Z");
    assert_eq!(r["local_at"], "2026-01-01T00:04:00");
    assert_eq!(r["paid"], true);
    assert_eq!(r["meta"], json!({"i": 4, "k": ["a", "b"]}));
    assert_eq!(r["tags"], json!(["x4", "y \"q\""]));
    assert_eq!(r["blob"], "00000004");
    assert_eq!(
        rows.iter().find(|r| r["id"] == 5).unwrap()["note"],
        Value::Null
    );

    // And back: the files source's NDJSON into a table created from the schema.
    let back = json!({"path": "/data/out", "glob": "*.ndjson"});
    let file_streams = {
        let req = || ConnectorCallRequest::new(files.clone(), ConnectorRole::Source, back.clone());
        host.discover(req()).await?.streams
    };
    let mut incoming = configured(
        "orders",
        orders.json_schema.clone(),
        SyncMode::FullRefresh,
        WriteMode::Append,
    );
    incoming.name = file_streams[0].name.clone();
    let req = sync_request(
        "a2",
        (&files, back),
        (&plugin, server.config(&dst)),
        vec![incoming],
    );
    host.sync(req).await?;
    let d = server.connect(&dst).await?;
    let table = format!("\"{}\"", file_streams[0].name.replace('"', "\"\""));
    assert_eq!(
        orders_fingerprint(server, &src, "orders").await?,
        orders_fingerprint(server, &dst, &table).await?,
        "every value survives the round trip through NDJSON"
    );
    drop(d);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_what_to_fix() -> anyhow::Result<()> {
    let (host, plugin, server) = pg_host().await?;
    let db = server.database("errors").await?;
    let check = |config: Value| {
        let host = &host;
        let plugin = plugin.clone();
        async move {
            host.check_connector(ConnectorCallRequest::new(
                plugin,
                ConnectorRole::Source,
                config,
            ))
            .await
        }
    };
    let plugin_error = |r: Result<(), ConnectorFailure>| match r {
        Err(ConnectorFailure::Plugin(e)) => e,
        other => panic!("expected a connector error, got {other:?}"),
    };

    // md5 and SCRAM both log in.
    let mut md5 = server.config(&db);
    md5["user"] = json!(server.md5_user);
    md5["password"] = json!(server.md5_password);
    check(md5).await?;
    check(server.config(&db)).await?;

    let mut wrong = server.config(&db);
    wrong["password"] = json!("not-the-password");
    let e = plugin_error(check(wrong).await);
    assert_eq!(e.kind, PluginErrorKind::Auth, "{e:?}");
    assert!(
        e.message.contains(&server.user) && e.message.contains(&server.address()),
        "{}",
        e.message
    );
    assert!(!e.message.contains("not-the-password"));

    let mut missing = server.config(&db);
    missing["database"] = json!("no_such_db");
    let e = plugin_error(check(missing).await);
    assert_eq!(e.kind, PluginErrorKind::Config, "{e:?}");
    assert!(e.message.contains("no_such_db"), "{}", e.message);

    // A port nobody listens on, granted: transient, with the address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = closed.local_addr()?.port();
    drop(closed);
    grant(&host, &plugin, &format!("127.0.0.1:{port}"))?;
    let mut down = server.config(&db);
    down["port"] = json!(port);
    let e = plugin_error(check(down).await);
    assert_eq!(e.kind, PluginErrorKind::Transient, "{e:?}");
    assert!(
        e.message.contains(&format!("127.0.0.1:{port}")),
        "{}",
        e.message
    );

    // The server's own port is not granted any more.
    match check(server.config(&db)).await {
        Err(ConnectorFailure::Host(InvokeError::CapabilityDenied(msg))) => {
            assert!(msg.contains(&server.port.to_string()), "{msg}");
        }
        other => panic!("expected CapabilityDenied, got {other:?}"),
    }
    grant(&host, &plugin, &server.address())?;

    // A column that cannot be mapped, selected anyway.
    let client = server.connect(&db).await?;
    client.batch_execute(ORDERS).await?;
    let streams = discover(&host, &plugin, server.config(&db)).await?;
    let mut orders = stream(&streams, "orders", SyncMode::FullRefresh, WriteMode::Append);
    orders.json_schema["properties"]["spot"] = json!({"type": "string"});
    let dst = server.database("dst").await?;
    let err = host
        .sync(pg_sync(
            "e1",
            &plugin,
            server.config(&db),
            server.config(&dst),
            vec![orders],
        ))
        .await
        .unwrap_err();
    let ConnectorFailure::Plugin(e) = &err.failure else {
        panic!("{err}")
    };
    assert_eq!(e.kind, PluginErrorKind::Config);
    assert!(
        e.message.contains("spot") && e.message.contains("geometric"),
        "{}",
        e.message
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_the_source_grew_are_added_ignored_or_refused_by_policy() -> anyhow::Result<()> {
    let (host, plugin, server) = pg_host().await?;
    let src = server.database("src").await?;
    let client = server.connect(&src).await?;
    client
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, name text, added text); \
             INSERT INTO items SELECT i, 'n' || i, 'a' || i FROM generate_series(1, 50) i",
        )
        .await?;
    let streams = discover(&host, &plugin, server.config(&src)).await?;
    let items = stream(&streams, "items", SyncMode::FullRefresh, WriteMode::Upsert);
    for (policy, outcome) in [("propagate", Some(50)), ("ignore", Some(0)), ("fail", None)] {
        let dst = server.database("dst").await?;
        let d = server.connect(&dst).await?;
        d.batch_execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
            .await?;
        let mut config = server.config(&dst);
        config["schemaEvolution"] = json!(policy);
        let result = host
            .sync(pg_sync(
                policy,
                &plugin,
                server.config(&src),
                config,
                vec![items.clone()],
            ))
            .await;
        match outcome {
            Some(with_added) => {
                result?;
                let n: i64 = d.query_one("SELECT count(*) FROM items", &[]).await?.get(0);
                assert_eq!(n, 50, "{policy}");
                let has_added: i64 = d
                    .query_one(
                        "SELECT count(*) FROM information_schema.columns \
                         WHERE table_name = 'items' AND column_name = 'added'",
                        &[],
                    )
                    .await?
                    .get(0);
                assert_eq!(has_added > 0, with_added > 0, "{policy}");
            }
            None => {
                let err = result.unwrap_err();
                let ConnectorFailure::Plugin(e) = &err.failure else {
                    panic!("{err}")
                };
                assert_eq!(e.kind, PluginErrorKind::Config);
                assert!(e.message.contains("added"), "{}", e.message);
            }
        }
    }
    Ok(())
}
