//! A misbehaving source fails its sync with the same specific errors as a
//! misbehaving step; the destination publishes nothing and the host carries on.

use crate::sync::{configured, files_host, install};
use serde_json::json;
use std::time::Duration;
use weft_host::{
    ConnectorFailure, InvokeError, PluginHost, SessionOptions, SyncError, SyncRequest, SyncSide,
};
use weft_model::{
    ConfiguredStream, ConnectorRole, InvocationLimits, PluginDigest, SyncMode, WriteMode,
};

struct Fixture {
    host: PluginHost,
    hostile: PluginDigest,
    files: PluginDigest,
    dir: tempfile::TempDir,
}

async fn fixture() -> anyhow::Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let (host, files) = files_host(dir.path()).await?;
    let hostile = install(&host, "hostile-source").await?;
    Ok(Fixture {
        host,
        hostile,
        files,
        dir,
    })
}

fn one_column_stream(name: &str) -> ConfiguredStream {
    configured(
        name,
        json!({"type": "object", "properties": {"id": {"type": "integer"}}}),
        SyncMode::FullRefresh,
        WriteMode::Append,
    )
}

impl Fixture {
    /// Syncs the hostile source in `mode` into the files destination.
    async fn sync(&self, mode: &str) -> SyncError {
        let limits = InvocationLimits {
            timeout: Duration::from_secs(3),
            cpu_time: Duration::from_secs(2),
            max_memory_bytes: 64 << 20,
            ..InvocationLimits::default()
        };
        let source = SyncSide {
            options: SessionOptions {
                limits: Some(limits),
                ..SessionOptions::default()
            },
            ..SyncSide::new(self.hostile.clone(), json!({ "mode": mode }))
        };
        let mut req = SyncRequest::new(
            format!("hostile-{mode}"),
            source,
            SyncSide::new(self.files.clone(), json!({"path": "/data/out"})),
            vec![one_column_stream("rows")],
        );
        req.max_batch_bytes = 1 << 20;
        let err = self.host.sync(req).await.unwrap_err();
        assert_eq!(err.side, Some(ConnectorRole::Source), "{mode}: {err}");
        let out = self.dir.path().join("out");
        for entry in std::fs::read_dir(&out).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(name.starts_with(".weft-"), "{mode}: {name} was published");
        }
        err
    }
}

fn host_error(err: &SyncError) -> &InvokeError {
    match &err.failure {
        ConnectorFailure::Host(e) => e,
        other => panic!("expected a host-imposed failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_source_fails_the_sync_with_a_specific_error() -> anyhow::Result<()> {
    let f = fixture().await?;
    let err = f.sync("trap").await;
    assert!(
        matches!(host_error(&err), InvokeError::Trap { message } if message.contains("traps on purpose")),
        "{err:?}"
    );
    let err = f.sync("spin").await;
    assert!(
        matches!(
            host_error(&err),
            InvokeError::CpuLimitExceeded(_) | InvokeError::Timeout(_)
        ),
        "{err:?}"
    );
    let err = f.sync("alloc").await;
    assert!(
        matches!(host_error(&err), InvokeError::MemoryLimitExceeded { .. }),
        "{err:?}"
    );
    let err = f.sync("oversize").await;
    assert!(
        matches!(host_error(&err), InvokeError::OutputTooLarge { .. }),
        "{err:?}"
    );
    for mode in ["unknown-stream", "wrong-format"] {
        let err = f.sync(mode).await;
        assert!(
            matches!(host_error(&err), InvokeError::Protocol(_)),
            "{mode}: {err:?}"
        );
    }
    // Endless statuses are stopped by the session's clocks (pulling costs CPU too).
    let err = f.sync("endless").await;
    assert!(
        matches!(
            host_error(&err),
            InvokeError::CpuLimitExceeded(_) | InvokeError::Timeout(_)
        ),
        "{err:?}"
    );

    // The host carries on: a good sync still runs after all of that.
    let generator = install(&f.host, "generator-source").await?;
    let report = f
        .host
        .sync(SyncRequest::new(
            "after",
            SyncSide::new(generator, json!({"rows": 10})),
            SyncSide::new(f.files.clone(), json!({"path": "/data/out"})),
            vec![one_column_stream("numbers")],
        ))
        .await?;
    assert_eq!(report.progress.streams[0].rows, 10);
    Ok(())
}
