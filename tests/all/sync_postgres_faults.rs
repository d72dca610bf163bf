//! The `postgres` connector when the network is not friendly: TLS in every
//! mode against the real server (a CA and a certificate made for the test
//! cluster, a role that may only log in over TLS), a PostgreSQL restarted
//! in the middle of a sync, and fake servers that answer with lies.

use crate::sync::{discover, install};
use crate::sync_postgres::{ORDERS, fill_sql, grant, orders_fingerprint, pg_host, pg_sync, stream};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use weft_host::{ConnectorCallRequest, ConnectorFailure, PluginHost, SyncSink};
use weft_model::{
    CapabilityGrants, CommitMarker, ConnectorRole, HostPattern, PluginDigest, PluginError,
    PluginErrorKind, SyncMode, WriteMode,
};
use weft_tests::pg::{PgServer, PrivateServer};
use weft_tests::test_host;

async fn check(
    host: &PluginHost,
    plugin: &PluginDigest,
    config: Value,
) -> Result<(), ConnectorFailure> {
    host.check_connector(ConnectorCallRequest::new(
        plugin.clone(),
        ConnectorRole::Source,
        config,
    ))
    .await
}

fn plugin_error(r: Result<(), ConnectorFailure>) -> PluginError {
    match r {
        Err(ConnectorFailure::Plugin(e)) => e,
        other => panic!("expected a connector error, got {other:?}"),
    }
}

fn grant_all(host: &PluginHost, plugin: &PluginDigest, patterns: &[String]) -> anyhow::Result<()> {
    host.set_grants(
        plugin,
        &CapabilityGrants {
            outbound_hosts: patterns
                .iter()
                .map(|p| HostPattern::parse(p))
                .collect::<Result<_, _>>()?,
            ..Default::default()
        },
    )?;
    Ok(())
}

/// A config for `db` as the role that may only log in over TLS.
fn tls_config(server: &PgServer, db: &str, mode: &str, root: Option<&str>) -> Value {
    let mut c = server.config(db);
    c["user"] = json!(server.tls_user);
    c["sslMode"] = json!(mode);
    if let Some(root) = root {
        c["sslRootCert"] = json!(root);
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_encrypts_in_every_mode_and_checks_the_chain_and_the_name() -> anyhow::Result<()> {
    let (host, plugin, server) = pg_host().await?;
    // The certificate names `localhost`, which the grant must cover too.
    grant_all(
        &host,
        &plugin,
        &[server.address(), format!("localhost:{}", server.port)],
    )?;
    let db = server.database("tls").await?;
    let ca = std::fs::read_to_string(&server.ca_file)?;
    let other_ca = std::fs::read_to_string(&server.other_ca_file)?;
    let by_name = |mut c: Value| {
        c["host"] = json!("localhost");
        c
    };

    // The role is refused without TLS, so each of these ran encrypted.
    check(&host, &plugin, tls_config(server, &db, "prefer", None)).await?;
    check(&host, &plugin, tls_config(server, &db, "require", None)).await?;
    check(
        &host,
        &plugin,
        tls_config(server, &db, "verify-ca", Some(&ca)),
    )
    .await?;
    check(
        &host,
        &plugin,
        by_name(tls_config(server, &db, "verify-full", Some(&ca))),
    )
    .await?;
    check(
        &host,
        &plugin,
        by_name(tls_config(server, &db, "require", Some(&ca))),
    )
    .await?;
    let e = plugin_error(check(&host, &plugin, tls_config(server, &db, "disable", None)).await);
    assert_eq!(e.kind, PluginErrorKind::Auth, "{e:?}");
    assert!(e.message.contains("no encryption"), "{}", e.message);

    // Trusted chain, wrong name: the certificate is for `localhost`.
    let e = plugin_error(
        check(
            &host,
            &plugin,
            tls_config(server, &db, "verify-full", Some(&ca)),
        )
        .await,
    );
    assert_eq!(e.kind, PluginErrorKind::Config, "{e:?}");
    assert!(
        e.message.contains("not valid for name") && e.message.contains("127.0.0.1"),
        "{}",
        e.message
    );
    // A chain that ends in a CA nobody trusts, with each way of trusting.
    for config in [
        tls_config(server, &db, "verify-ca", Some(&other_ca)),
        tls_config(server, &db, "require", Some(&other_ca)),
        by_name(tls_config(server, &db, "verify-full", None)),
    ] {
        let e = plugin_error(check(&host, &plugin, config.clone()).await);
        assert_eq!(e.kind, PluginErrorKind::Config, "{config}: {e:?}");
        assert!(
            e.message.contains("UnknownIssuer"),
            "{config}: {}",
            e.message
        );
        assert!(!e.message.contains(&server.password), "{}", e.message);
    }
    let e = plugin_error(
        check(
            &host,
            &plugin,
            tls_config(server, &db, "verify-ca", Some("-----BEGIN nothing")),
        )
        .await,
    );
    assert_eq!(e.kind, PluginErrorKind::Config, "{e:?}");
    assert!(e.message.contains("sslRootCert"), "{}", e.message);

    // Rows both ways over verify-full.
    let client = server.connect(&db).await?;
    client.batch_execute(ORDERS).await?;
    client.batch_execute(&fill_sql(1, 5000)).await?;
    let dst = server.database("tls_dst").await?;
    let source = by_name(tls_config(server, &db, "verify-full", Some(&ca)));
    let streams = discover(&host, &plugin, source.clone()).await?;
    let selected = vec![stream(
        &streams,
        "orders",
        SyncMode::FullRefresh,
        WriteMode::Append,
    )];
    let destination = by_name(tls_config(server, &dst, "verify-full", Some(&ca)));
    host.sync(pg_sync("tls", &plugin, source, destination, selected))
        .await?;
    assert_eq!(
        orders_fingerprint(server, &db, "orders").await?,
        orders_fingerprint(server, &dst, "orders").await?
    );
    Ok(())
}

/// Keeps every commit, and restarts the server once commit `restart_at`
/// is in.
struct RestartAt {
    server: PgServer,
    restart_at: u64,
    commits: Mutex<Vec<CommitMarker>>,
}

impl SyncSink for RestartAt {
    fn committed<'a>(
        &'a self,
        marker: &'a CommitMarker,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            self.commits.lock().unwrap().push(marker.clone());
            if marker.seq == self.restart_at {
                let server = self.server.clone();
                tokio::task::spawn_blocking(move || server.restart())
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_sync_fails_retryably_and_the_retry_completes() -> anyhow::Result<()>
{
    // A cluster of its own: the restart must not hit the other tests.
    let private = PrivateServer::start("restart")?;
    let server = &private.server;
    let host = test_host()?;
    let plugin = install(&host, "postgres").await?;
    grant(&host, &plugin, &server.address())?;
    let src = server.database("src").await?;
    let client = server.connect(&src).await?;
    client.batch_execute(ORDERS).await?;
    client.batch_execute(&fill_sql(1, 30_000)).await?;
    let mut source = server.config(&src);
    source["chunkRows"] = json!(2000);
    let streams = discover(&host, &plugin, source.clone()).await?;
    for mode in [WriteMode::Append, WriteMode::Upsert, WriteMode::Overwrite] {
        let dst = server.database("dst").await?;
        let selected = vec![stream(&streams, "orders", SyncMode::FullRefresh, mode)];
        let sink = Arc::new(RestartAt {
            server: server.clone(),
            restart_at: 3,
            commits: Mutex::default(),
        });
        let mut req = pg_sync(
            "r",
            &plugin,
            source.clone(),
            server.config(&dst),
            selected.clone(),
        );
        req.sink = sink.clone();
        let err = host.sync(req).await.unwrap_err();
        let ConnectorFailure::Plugin(e) = &err.failure else {
            panic!("{mode:?}: {err}");
        };
        assert_eq!(e.kind, PluginErrorKind::Transient, "{mode:?}: {e:?}");
        assert!(e.retryable, "{mode:?}: {e:?}");

        let saved = sink.commits.lock().unwrap().clone();
        let last = saved.last().expect("commits before the restart");
        let mut retry = pg_sync("r", &plugin, source.clone(), server.config(&dst), selected);
        retry.state = last.state.clone();
        retry.committed_seq = last.seq;
        host.sync(retry).await?;
        assert_eq!(
            orders_fingerprint(server, &src, "orders").await?,
            orders_fingerprint(server, &dst, "orders").await?,
            "{mode:?}: the destination equals the source"
        );
    }
    Ok(())
}

/// A fake server on loopback that answers its first connection with
/// `script` (given what the client sent first); its address.
fn fake_server(
    script: impl FnOnce(&mut std::net::TcpStream) + Send + 'static,
) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            script(&mut conn);
        }
    });
    Ok(port)
}

/// Reads one length-prefixed start-up packet (SSLRequest or StartupMessage).
fn read_packet(conn: &mut std::net::TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    if conn.read_exact(&mut len).is_err() {
        return Vec::new();
    }
    let n = u32::from_be_bytes(len).saturating_sub(4) as usize;
    let mut body = vec![0u8; n.min(1 << 16)];
    let _ = conn.read_exact(&mut body);
    body
}

const SSL_REQUEST: [u8; 4] = [0x04, 0xd2, 0x16, 0x2f];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_servers_that_lie_get_errors_not_hangs_or_crashes() -> anyhow::Result<()> {
    let host = test_host()?;
    let plugin = install(&host, "postgres").await?;
    let config = |port: u16, mode: &str| {
        json!({"host": "127.0.0.1", "port": port, "database": "d", "user": "u",
               "password": "secret-password", "sslMode": mode})
    };
    let attempt = |port: u16, mode: &'static str| {
        let host = &host;
        let plugin = &plugin;
        async move {
            grant(host, plugin, &format!("127.0.0.1:{port}")).unwrap();
            plugin_error(check(host, plugin, config(port, mode)).await)
        }
    };

    // No TLS on offer, but TLS required.
    let port = fake_server(|c| {
        assert_eq!(read_packet(c), SSL_REQUEST);
        let _ = c.write_all(b"N");
    })?;
    let e = attempt(port, "require").await;
    assert_eq!(e.kind, PluginErrorKind::Config, "{e:?}");
    assert!(e.message.contains("does not accept TLS"), "{}", e.message);

    // Agrees to TLS, then sends plaintext garbage instead of a handshake.
    let port = fake_server(|c| {
        read_packet(c);
        let _ = c.write_all(b"SHTTP/1.1 200 OK\r\n\r\nhello");
    })?;
    let e = attempt(port, "require").await;
    assert_eq!(e.kind, PluginErrorKind::Config, "{e:?}");
    assert!(e.message.contains("TLS"), "{}", e.message);

    // Answers the TLS request with neither S nor N.
    let port = fake_server(|c| {
        read_packet(c);
        let _ = c.write_all(b"X");
    })?;
    let e = attempt(port, "prefer").await;
    assert_eq!(e.kind, PluginErrorKind::Internal, "{e:?}");

    // Announces a 1 GiB message after start-up.
    let port = fake_server(|c| {
        read_packet(c);
        let mut huge = vec![b'R'];
        huge.extend_from_slice(&(1u32 << 30).to_be_bytes());
        let _ = c.write_all(&huge);
        let _ = c.write_all(&[0u8; 1024]);
    })?;
    let e = attempt(port, "disable").await;
    assert_eq!(e.kind, PluginErrorKind::Internal, "{e:?}");
    assert!(e.message.contains("bytes"), "{}", e.message);

    // A message of a kind that makes no sense during start-up, then a close.
    let port = fake_server(|c| {
        read_packet(c);
        let _ = c.write_all(&[b'D', 0, 0, 0, 6, 0, 0]);
    })?;
    let e = attempt(port, "disable").await;
    assert_eq!(e.kind, PluginErrorKind::Internal, "{e:?}");

    // Hangs up in the middle of authentication.
    let port = fake_server(|c| {
        read_packet(c);
        let _ = c.write_all(&[b'R', 0, 0, 0]);
    })?;
    let e = attempt(port, "disable").await;
    assert_eq!(e.kind, PluginErrorKind::Transient, "{e:?}");
    assert!(!e.message.contains("secret-password"), "{}", e.message);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_of_repeated_keys_keeps_the_latest_row_of_each() -> anyhow::Result<()> {
    let (host, plugin, server) = pg_host().await?;
    let dir = tempfile::tempdir()?;
    let files = install(&host, "files").await?;
    host.set_grants(
        &files,
        &CapabilityGrants {
            directories: vec![weft_model::DirectoryGrant {
                guest_path: "/data".into(),
                host_path: dir.path().to_owned(),
                read_only: true,
            }],
            ..Default::default()
        },
    )?;
    // Key 1's latest row equals what the table holds, after one that does
    // not: merged out of order, the stale one would win.
    std::fs::write(
        dir.path().join("items.ndjson"),
        "{\"id\":1,\"v\":\"changed\"}\n{\"id\":2,\"v\":\"a\"}\n{\"id\":1,\"v\":\"same\"}\n\
         {\"id\":2,\"v\":\"b\"}\n{\"id\":3,\"v\":\"x\"}\n",
    )?;
    let dst = server.database("dups").await?;
    let d = server.connect(&dst).await?;
    d.batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'same'), (4, 'kept')")
        .await?;
    let source = json!({"path": "/data", "glob": "*.ndjson"});
    let found = host
        .discover(ConnectorCallRequest::new(
            files.clone(),
            ConnectorRole::Source,
            source.clone(),
        ))
        .await?
        .streams;
    assert_eq!(found[0].name, "items");
    let mut items = crate::sync::configured(
        "items",
        json!({"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": "string"}}}),
        SyncMode::FullRefresh,
        WriteMode::Upsert,
    );
    items.primary_key = vec!["id".into()];
    host.sync(crate::sync::sync_request(
        "dups",
        (&files, source),
        (&plugin, server.config(&dst)),
        vec![items],
    ))
    .await?;
    let rows: Vec<(i64, String)> = d
        .query("SELECT id, v FROM items ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want: Vec<(i64, String)> = [(1, "same"), (2, "b"), (3, "x"), (4, "kept")]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
    assert_eq!(rows, want);
    Ok(())
}
