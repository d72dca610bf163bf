//! Syncs through the real host with the real `files` connector and the
//! example generator source: pass-through and Arrow batches, exactly-once
//! across a failed commit, failures on either side, cancellation, grants.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_host::{
    ConnectorCallRequest, ConnectorFailure, PluginHost, ReadLimits, SyncRequest, SyncSide, SyncSink,
};
use weft_model::{
    BatchFormat, CapabilityGrants, Checkpoint, CommitMarker, ConfiguredStream, ConnectorRole,
    DirectoryGrant, PluginDigest, PluginErrorKind, StreamInfo, SyncMode, WriteMode,
};
use weft_tests::{test_host, wasm};

/// Keeps every commit; fails the commit with seq `fail_at`, if set.
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) commits: Mutex<Vec<CommitMarker>>,
    pub(crate) fail_at: Option<u64>,
}

impl Recorder {
    fn failing_at(seq: u64) -> Self {
        Self {
            fail_at: Some(seq),
            ..Default::default()
        }
    }

    fn commits(&self) -> Vec<CommitMarker> {
        self.commits.lock().unwrap().clone()
    }
}

impl SyncSink for Recorder {
    fn committed<'a>(
        &'a self,
        marker: &'a CommitMarker,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            if self.fail_at == Some(marker.seq) {
                return Err("the state store is down".into());
            }
            self.commits.lock().unwrap().push(marker.clone());
            Ok(())
        })
    }
}

/// Installs the compiled guest `name` into `host`.
pub(crate) async fn install(host: &PluginHost, name: &str) -> anyhow::Result<PluginDigest> {
    Ok(host.install(&wasm(name)?).await?.plugin.digest.clone())
}

/// A host with `files` installed, `/data` granted read-write as `dir`.
pub(crate) async fn files_host(dir: &Path) -> anyhow::Result<(PluginHost, PluginDigest)> {
    let host = test_host()?;
    let files = install(&host, "files").await?;
    host.set_grants(
        &files,
        &CapabilityGrants {
            directories: vec![DirectoryGrant {
                guest_path: "/data".into(),
                host_path: dir.to_owned(),
                read_only: false,
            }],
            ..Default::default()
        },
    )?;
    Ok((host, files))
}

/// Checks the source `config`, then discovers its streams.
pub(crate) async fn discover(
    host: &PluginHost,
    plugin: &PluginDigest,
    config: Value,
) -> Result<Vec<StreamInfo>, ConnectorFailure> {
    let req = || ConnectorCallRequest::new(plugin.clone(), ConnectorRole::Source, config.clone());
    host.check_connector(req()).await?;
    Ok(host.discover(req()).await?.streams)
}

/// A stream selected whole, without cursor or key.
pub(crate) fn configured(
    name: &str,
    json_schema: Value,
    mode: SyncMode,
    write: WriteMode,
) -> ConfiguredStream {
    ConfiguredStream {
        name: name.into(),
        namespace: None,
        json_schema,
        fields: Vec::new(),
        sync_mode: mode,
        cursor_field: None,
        primary_key: Vec::new(),
        write_mode: write,
    }
}

pub(crate) fn select(
    streams: &[StreamInfo],
    mode: SyncMode,
    write: WriteMode,
) -> Vec<ConfiguredStream> {
    streams
        .iter()
        .map(|s| configured(&s.name, s.json_schema.clone(), mode, write))
        .collect()
}

/// A sync without state, in batches of at most 500 rows, committing at every checkpoint.
pub(crate) fn sync_request(
    id: &str,
    source: (&PluginDigest, Value),
    destination: (&PluginDigest, Value),
    streams: Vec<ConfiguredStream>,
) -> SyncRequest {
    let mut req = SyncRequest::new(
        id,
        SyncSide::new(source.0.clone(), source.1),
        SyncSide::new(destination.0.clone(), destination.1),
        streams,
    );
    req.read_limits = ReadLimits {
        max_rows: 500,
        ..ReadLimits::default()
    };
    req.commit_interval = Duration::ZERO;
    req
}

/// The file names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn json_lines(path: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `users.ndjson` (spaced, so a re-encoding would show) and `orders.csv`.
fn write_inputs(dir: &Path, users: u32, orders: u32) -> anyhow::Result<String> {
    let input = dir.join("in");
    std::fs::create_dir_all(&input)?;
    let mut ndjson = String::new();
    for i in 1..=users {
        ndjson.push_str(&format!(
            "{{\"id\": {i},  \"name\": \"user {i}\", \"tags\": [\"a\"]}}\n"
        ));
    }
    std::fs::write(input.join("users.ndjson"), &ndjson)?;
    let mut csv = String::from("id,amount,paid,note\n");
    for i in 1..=orders {
        let note = if i % 3 == 0 {
            String::new()
        } else {
            format!("\"n{i}, with comma\"")
        };
        csv.push_str(&format!("{i},{}.5,{},{note}\n", i * 2, i % 2 == 0));
    }
    std::fs::write(input.join("orders.csv"), csv)?;
    Ok(ndjson)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_to_files_passes_ndjson_through_and_types_csv_cells() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let users = write_inputs(dir.path(), 3000, 1200)?;
    let (host, files) = files_host(dir.path()).await?;

    let streams = discover(&host, &files, json!({"path": "/data/in"})).await?;
    let names: Vec<_> = streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["orders", "users"]);
    let orders = &streams[0].json_schema["properties"];
    assert_eq!(orders["id"]["type"][0], "integer", "{orders}");
    assert_eq!(orders["amount"]["type"][0], "number");
    assert_eq!(orders["paid"]["type"][0], "boolean");
    assert_eq!(orders["note"]["type"][0], "string");

    let sink = Arc::new(Recorder::default());
    let mut req = sync_request(
        "s1",
        (&files, json!({"path": "/data/in"})),
        (&files, json!({"path": "/data/out"})),
        select(&streams, SyncMode::FullRefresh, WriteMode::Append),
    );
    req.sink = sink.clone();
    let report = host.sync(req).await?;
    assert_eq!(report.format, BatchFormat::Other("ndjson".into()));
    let out = dir.path().join("out");
    assert_eq!(
        listing(&out),
        [".weft-commit.json", "orders-s1.ndjson", "users-s1.ndjson"],
        "staging files are gone, outputs published"
    );
    // Pass-through: the bytes arrive untouched.
    assert_eq!(std::fs::read_to_string(out.join("users-s1.ndjson"))?, users);
    let rows = json_lines(&out.join("orders-s1.ndjson"));
    assert_eq!(rows.len(), 1200);
    assert_eq!(
        rows[0],
        json!({"id": 1, "amount": 2.5, "paid": false, "note": "n1, with comma"})
    );
    assert_eq!(rows[2]["note"], Value::Null);

    let commits = sink.commits();
    assert!(
        commits.len() >= 8,
        "a commit per checkpoint: {}",
        commits.len()
    );
    assert!(commits.windows(2).all(|w| w[0].seq < w[1].seq));
    let last = commits.last().unwrap();
    let users_state = state_of(&last.state, "users").unwrap();
    assert_eq!(users_state["complete"], true);
    assert_eq!(users_state["files"]["users.ndjson"], users.len() as u64);
    let counted: u64 = report.progress.streams.iter().map(|s| s.rows).sum();
    assert_eq!(counted, 4200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arrow_only_source_writes_csv_and_resumes_incrementally() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (host, files) = files_host(dir.path()).await?;
    let generator = install(&host, "generator-source").await?;
    let streams = discover(&host, &generator, json!({"rows": 2500, "seed": 3})).await?;
    assert_eq!(streams[0].estimated_rows, Some(2500));
    let selected = select(&streams, SyncMode::Incremental, WriteMode::Append);
    let csv_out = json!({"path": "/data/out", "format": "csv"});

    let sink = Arc::new(Recorder::default());
    let mut req = sync_request(
        "g1",
        (&generator, json!({"rows": 2500, "seed": 3})),
        (&files, csv_out.clone()),
        selected.clone(),
    );
    req.sink = sink.clone();
    let report = host.sync(req).await?;
    assert_eq!(report.format, BatchFormat::ArrowIpc);
    let text = std::fs::read_to_string(dir.path().join("out/numbers-g1.csv"))?;
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], "id,value,label,even");
    assert_eq!(lines.len(), 2501);
    assert!(lines[2].starts_with("2,") && lines[2].ends_with(",row-2,true"));

    // The next sync starts from the saved state and reads only new rows.
    let mut req = sync_request(
        "g2",
        (&generator, json!({"rows": 2600, "seed": 3})),
        (&files, csv_out),
        selected,
    );
    req.state = report.state;
    req.committed_seq = sink.commits().last().unwrap().seq;
    let second = host.sync(req).await?;
    assert!(second.adopted.is_none());
    let text = std::fs::read_to_string(dir.path().join("out/numbers-g2.csv"))?;
    assert_eq!(text.lines().count(), 101);
    assert!(text.lines().nth(1).unwrap().starts_with("2501,"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_weft_did_not_save_is_adopted_and_no_row_lands_twice() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let users = write_inputs(dir.path(), 3000, 0)?;
    let (host, files) = files_host(dir.path()).await?;
    let source = json!({"path": "/data/in", "glob": "*.ndjson"});
    let streams = discover(&host, &files, source.clone()).await?;
    let selected = select(&streams, SyncMode::FullRefresh, WriteMode::Overwrite);
    let destination = json!({"path": "/data/out"});

    // Saving the third commit fails: the destination holds it, Weft does not.
    let sink = Arc::new(Recorder::failing_at(3));
    let mut req = sync_request(
        "r1",
        (&files, source.clone()),
        (&files, destination.clone()),
        selected.clone(),
    );
    req.sink = sink.clone();
    let err = host.sync(req).await.unwrap_err();
    assert_eq!(err.side, None, "{err}");
    assert!(err.to_string().contains("state store is down"), "{err}");
    let saved = sink.commits();
    assert_eq!(saved.len(), 2);
    assert!(!dir.path().join("out/users.ndjson").exists());

    // The retry of the same sync adopts the destination's commit 3 and
    // carries on from there.
    let sink = Arc::new(Recorder::default());
    let mut req = sync_request("r1", (&files, source), (&files, destination), selected);
    req.state = saved[1].state.clone();
    req.committed_seq = saved[1].seq;
    req.sink = sink.clone();
    let report = host.sync(req).await?;
    assert_eq!(report.adopted.as_ref().map(|m| m.seq), Some(3));
    assert_eq!(
        sink.commits()[0].seq,
        3,
        "the adopted marker is saved first"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/users.ndjson"))?,
        users,
        "every row exactly once"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_fails_the_source_and_the_destination_publishes_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("in"))?;
    let mut text = String::new();
    for i in 1..=1200 {
        text.push_str(&format!("{{\"id\":{i}}}\n"));
    }
    let good = text.len() as u64;
    text.push_str("[1, 2]\n");
    std::fs::write(dir.path().join("in/events.ndjson"), text)?;
    let (host, files) = files_host(dir.path()).await?;
    let source = json!({"path": "/data/in", "sample_rows": 10});
    let streams = discover(&host, &files, source.clone()).await?;
    let sink = Arc::new(Recorder::default());
    let mut req = sync_request(
        "bad",
        (&files, source),
        (&files, json!({"path": "/data/out"})),
        select(&streams, SyncMode::FullRefresh, WriteMode::Append),
    );
    req.sink = sink.clone();
    let err = host.sync(req).await.unwrap_err();
    assert_eq!(err.side, Some(ConnectorRole::Source), "{err}");
    match &err.failure {
        ConnectorFailure::Plugin(e) => {
            assert_eq!(e.kind, PluginErrorKind::Data);
            assert!(e.message.contains("events.ndjson at byte"), "{}", e.message);
        }
        other => panic!("expected the plugin's data error, got {other:?}"),
    }
    // The rows before the bad one were committed (and their state saved);
    // nothing was published, and the saved offset stops before the bad line.
    let out = dir.path().join("out");
    assert!(listing(&out).iter().all(|n| n.starts_with(".weft-")));
    let last = sink.commits().last().cloned().unwrap();
    assert_eq!(err.committed_seq, last.seq);
    let offset = last.state[0].state["files"]["events.ndjson"]
        .as_u64()
        .unwrap();
    assert!(offset > 0 && offset <= good, "{offset} of {good}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_is_cancelled_within_a_second() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (host, files) = files_host(dir.path()).await?;
    let generator = install(&host, "generator-source").await?;
    let config = json!({"rows": 1_000_000_000u64});
    let streams = discover(&host, &generator, config.clone()).await?;
    let sink = Arc::new(Recorder::default());
    let mut req = sync_request(
        "forever",
        (&generator, config),
        (&files, json!({"path": "/data/out"})),
        select(&streams, SyncMode::FullRefresh, WriteMode::Append),
    );
    req.sink = sink.clone();
    let cancel = req.cancel.clone();
    let host = Arc::new(host);
    let running = tokio::spawn({
        let host = host.clone();
        async move { host.sync(req).await }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.commits().len() < 2 {
        assert!(Instant::now() < deadline, "no commit within 30 s");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let asked = Instant::now();
    cancel.cancel();
    let err = tokio::time::timeout(Duration::from_secs(5), running)
        .await??
        .unwrap_err();
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(1), "cancelling took {took:?}");
    assert_eq!(err.side, None, "{err}");
    assert!(
        listing(&dir.path().join("out"))
            .iter()
            .all(|n| n.starts_with(".weft-")),
        "a cancelled sync publishes nothing"
    );
    Ok(())
}

#[tokio::test]
async fn without_a_directory_grant_the_files_connector_cannot_read() -> anyhow::Result<()> {
    let host = test_host()?;
    let files = install(&host, "files").await?;
    let failure = host
        .check_connector(ConnectorCallRequest::new(
            files,
            ConnectorRole::Source,
            json!({"path": "/data"}),
        ))
        .await
        .unwrap_err();
    match failure {
        ConnectorFailure::Plugin(e) => {
            assert_eq!(e.kind, PluginErrorKind::Config);
            assert!(e.message.contains("granted"), "{}", e.message);
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_configuration_that_escapes_the_directory_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (host, files) = files_host(dir.path()).await?;
    for path in ["/etc", "/data/../etc", "../x"] {
        let failure = host
            .check_connector(ConnectorCallRequest::new(
                files.clone(),
                ConnectorRole::Destination,
                json!({ "path": path }),
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(&failure, ConnectorFailure::Plugin(e) if e.kind == PluginErrorKind::Config),
            "{path}: {failure:?}"
        );
    }
    let unknown = host
        .check_connector(ConnectorCallRequest::new(
            files,
            ConnectorRole::Source,
            json!({"path": "/data", "globb": "*"}),
        ))
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("globb"), "{unknown}");
    Ok(())
}

/// The saved state of `stream`.
fn state_of<'a>(state: &'a [Checkpoint], stream: &str) -> Option<&'a Value> {
    state
        .iter()
        .find(|c| c.stream.as_deref() == Some(stream))
        .map(|c| &c.state)
}
