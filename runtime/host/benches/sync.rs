//! Sync benchmark: rows through the real `files` connector, against `cat`
//! copying the same file, in one run. Prints a Markdown table.
//!
//! Run with `cargo bench -p weft-host --bench sync` after
//! `scripts/build-guests.sh`. `WEFT_BENCH_ROWS=<n>` sets the rows
//! (default 1 000 000); `WEFT_BENCH_QUICK=1` uses 100 000.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use anyhow::{Context, Result};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use weft_host::{HostConfig, PluginHost, ReadLimits, SyncRequest, SyncSide};
use weft_model::{
    CapabilityGrants, ConfiguredStream, DirectoryGrant, PluginDigest, SyncMode, WriteMode,
};

fn guest(name: &str) -> Result<Vec<u8>> {
    let path = format!(
        "{}/../../build/wasm/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).with_context(|| format!("{path} missing: run scripts/build-guests.sh"))
}

/// The process's peak resident set so far (`VmHWM`), in MiB; 0 off Linux.
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

fn stream(name: &str) -> ConfiguredStream {
    ConfiguredStream {
        name: name.into(),
        namespace: None,
        json_schema: json!({"type": "object", "properties": {
            "id": {"type": "integer"}, "value": {"type": "integer"},
            "label": {"type": "string"}, "even": {"type": "boolean"}
        }}),
        fields: Vec::new(),
        sync_mode: SyncMode::FullRefresh,
        cursor_field: None,
        primary_key: Vec::new(),
        write_mode: WriteMode::Append,
    }
}

async fn sync(
    host: &PluginHost,
    id: &str,
    source: (&PluginDigest, serde_json::Value),
    files: &PluginDigest,
    stream_name: &str,
) -> Result<(Duration, u64, String)> {
    let mut req = SyncRequest::new(
        id,
        SyncSide::new(source.0.clone(), source.1),
        SyncSide::new(files.clone(), json!({"path": format!("/data/out-{id}")})),
        vec![stream(stream_name)],
    );
    req.read_limits = ReadLimits::default();
    let started = Instant::now();
    let report = host.sync(req).await?;
    Ok((
        started.elapsed(),
        report.progress.streams[0].rows,
        report.format.to_string(),
    ))
}

fn main() -> Result<()> {
    let rows: u64 = std::env::var("WEFT_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::var_os("WEFT_BENCH_QUICK").is_some() {
            100_000
        } else {
            1_000_000
        });
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input)?;
    let file = input.join("numbers.ndjson");
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for id in 1..=rows {
            writeln!(
                out,
                r#"{{"id":{id},"value":{},"label":"row-{id}","even":{}}}"#,
                id.wrapping_mul(2_654_435_761) % 1_000_000,
                id % 2 == 0
            )?;
        }
    }
    let bytes = std::fs::metadata(&file)?.len();

    let cat = {
        let started = Instant::now();
        let status = std::process::Command::new("cat")
            .arg(&file)
            .stdout(std::fs::File::create(dir.path().join("cat.out"))?)
            .status()?;
        anyhow::ensure!(status.success(), "cat failed");
        started.elapsed()
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let host = PluginHost::new(HostConfig::default())?;
        let files = host.install(&guest("files")?).await?.plugin.digest.clone();
        let generator = host
            .install(&guest("generator-source")?)
            .await?
            .plugin
            .digest
            .clone();
        host.set_grants(
            &files,
            &CapabilityGrants {
                directories: vec![grant(dir.path())],
                ..Default::default()
            },
        )?;
        let rss_before = peak_rss_mib();
        let pass = sync(&host, "pass", (&files, json!({"path": "/data/in"})), &files, "numbers")
            .await?;
        let copied = std::fs::metadata(dir.path().join("out-pass/numbers-pass.ndjson"))?.len();
        anyhow::ensure!(copied == bytes, "pass-through wrote {copied} of {bytes} bytes");
        let arrow = sync(
            &host,
            "arrow",
            (&generator, json!({"rows": rows})),
            &files,
            "numbers",
        )
        .await?;

        println!(
            "{rows} rows, {:.1} MiB of NDJSON; {} cores; peak RSS {} MiB before the syncs, {} MiB after\n",
            bytes as f64 / (1 << 20) as f64,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            rss_before,
            peak_rss_mib()
        );
        println!("| path | format | time | rows/s | MiB/s | × cat |");
        println!("|---|---|---:|---:|---:|---:|");
        let line = |name: &str, format: &str, t: Duration, n: u64| {
            println!(
                "| {name} | {format} | {:.0} ms | {:.0} | {:.0} | {:.1} |",
                t.as_secs_f64() * 1e3,
                n as f64 / t.as_secs_f64(),
                bytes as f64 / (1 << 20) as f64 / t.as_secs_f64(),
                t.as_secs_f64() / cat.as_secs_f64()
            );
        };
        line("cat file > copy", "bytes", cat, rows);
        line("files → files", &pass.2, pass.0, pass.1);
        line("generator → files", &arrow.2, arrow.0, arrow.1);
        anyhow::Ok(())
    })
}

fn grant(dir: &Path) -> DirectoryGrant {
    DirectoryGrant {
        guest_path: "/data".into(),
        host_path: dir.to_owned(),
        read_only: false,
    }
}
