//! PostgreSQL sync benchmark: the real `postgres` connector through the
//! real host against a real PostgreSQL (`scripts/pg.sh`, one server on
//! loopback holding both databases), beside the native COPY pipe
//! `psql -c "\copy t to stdout" | psql -c "\copy t from stdin"` in the same
//! run. Prints a Markdown table with wall time, rows/s, the ratio to the
//! native pipe, and CPU seconds of this process and of PostgreSQL.
//!
//! Run with `cargo bench -p weft-host --bench sync_postgres` after
//! `scripts/build-guests.sh`. `WEFT_BENCH_ROWS=<n>` sets the rows (default
//! 1 000 000); `WEFT_BENCH_QUICK=1` uses 100 000.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weft_host::{
    ConnectorCallRequest, HostConfig, PluginHost, ReadLimits, SyncReport, SyncRequest, SyncSide,
};
use weft_model::{
    CapabilityGrants, Checkpoint, ConfiguredStream, ConnectorRole, DirectoryGrant, HostPattern,
    PluginDigest, SyncMode, WriteMode,
};

fn guest(name: &str) -> Result<Vec<u8>> {
    let path = format!(
        "{}/../../build/wasm/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).with_context(|| format!("{path} missing: run scripts/build-guests.sh"))
}

/// The test cluster's settings, from `scripts/pg.sh start`.
struct Pg {
    vars: HashMap<String, String>,
}

impl Pg {
    fn start() -> Result<Self> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg.sh");
        let out = Command::new(script).arg("start").output()?;
        ensure!(
            out.status.success(),
            "pg.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vars = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.trim_start_matches("export ").split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect();
        Ok(Pg { vars })
    }

    fn var(&self, k: &str) -> &str {
        self.vars.get(k).map_or("", String::as_str)
    }

    fn port(&self) -> u16 {
        self.var("WEFT_TEST_PG_PORT").parse().unwrap_or(5432)
    }

    fn psql(&self, db: &str) -> Command {
        let mut c = Command::new(format!("{}/psql", self.var("WEFT_TEST_PG_BIN")));
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.var("WEFT_TEST_PG_SOCKET_DIR"))
            .args(["-p", self.var("WEFT_TEST_PG_PORT"), "-U", "weft", "-d", db]);
        c
    }

    /// Runs `sql` in `db`; its output.
    fn sql(&self, db: &str, sql: &str) -> Result<String> {
        let out = self.psql(db).args(["-At", "-c", sql]).output()?;
        if !out.status.success() {
            bail!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Plain TCP, as the native pipe's Unix socket is; one row measures TLS.
    fn config(&self, db: &str) -> Value {
        json!({
            "host": "127.0.0.1", "port": self.port(), "database": db,
            "user": "weft", "password": self.var("WEFT_TEST_PG_PASSWORD"),
            "sslMode": "disable",
        })
    }

    /// CPU seconds of the server so far: the postmaster, the children it
    /// reaped, and the live ones.
    fn cpu(&self) -> f64 {
        let data = self
            .var("WEFT_TEST_PG_SOCKET_DIR")
            .trim_end_matches("/sock")
            .to_owned()
            + "/data";
        let Some(pid) = std::fs::read_to_string(format!("{data}/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
        else {
            return 0.0;
        };
        let mut ticks = stat_ticks(&pid, true);
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            for child in children.split_whitespace() {
                ticks += stat_ticks(child, false);
            }
        }
        ticks as f64 / 100.0
    }
}

/// utime + stime (and the reaped children's, with `children`) of `pid`, in ticks.
fn stat_ticks(pid: &str, children: bool) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields after the command: state is 0, utime 11, stime 12, cutime 13, cstime 14.
    let own = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    if children {
        own + f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0)
    } else {
        own
    }
}

fn own_cpu() -> f64 {
    stat_ticks("self", false) as f64 / 100.0
}

/// Starts a new peak for [`peak_rss_mib`] (`clear_refs` 5 resets `VmHWM`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident set since the last reset (`VmHWM`), in MiB.
fn peak_rss_mib() -> u64 {
    status_mib("VmHWM:")
}

/// A `/proc/self/status` size field, in MiB.
fn status_mib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// One measured workload.
struct Measured {
    name: String,
    rows: u64,
    wall: Duration,
    own_cpu: f64,
    pg_cpu: f64,
    /// Peak RSS of this process during the workload, for weft's syncs.
    peak_rss: Option<u64>,
}

fn measure<T>(
    pg: &Pg,
    name: &str,
    rows: u64,
    f: impl FnOnce() -> Result<T>,
) -> Result<(Measured, T)> {
    let (cpu0, pg0, t0) = (own_cpu(), pg.cpu(), Instant::now());
    let out = f()?;
    Ok((
        Measured {
            name: name.into(),
            rows,
            wall: t0.elapsed(),
            own_cpu: own_cpu() - cpu0,
            pg_cpu: pg.cpu() - pg0,
            peak_rss: None,
        },
        out,
    ))
}

/// `psql \copy t to stdout | psql \copy t from stdin`, with `options`.
fn native_pipe(pg: &Pg, from: &str, to: (&str, &str), options: &str) -> Result<()> {
    let mut out = pg
        .psql(from)
        .args(["-c", &format!("\\copy t to stdout {options}")])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = out.stdout.take().context("no stdout")?;
    let status_in = pg
        .psql(to.0)
        .args(["-c", &format!("\\copy {} from stdin {options}", to.1)])
        .stdin(stdout)
        .status()?;
    ensure!(
        out.wait()?.success() && status_in.success(),
        "the native pipe failed"
    );
    Ok(())
}

const TABLE: &str = "CREATE TABLE t (id bigint PRIMARY KEY, a integer, b integer, \
    label text, amount numeric(12,2), created timestamptz, updated timestamptz, \
    flag boolean, doc jsonb, note text)";

fn main() -> Result<()> {
    let rows: u64 = std::env::var("WEFT_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::var_os("WEFT_BENCH_QUICK").is_some() {
            100_000
        } else {
            1_000_000
        });
    let pg = Pg::start()?;
    let run = std::process::id();
    let (src, native, dst) = (
        format!("bench_src_{run}"),
        format!("bench_native_{run}"),
        format!("bench_dst_{run}"),
    );
    for db in [&src, &native, &dst] {
        pg.sql("postgres", &format!("CREATE DATABASE {db}"))?;
    }
    pg.sql(&src, TABLE)?;
    pg.sql(
        &src,
        &format!(
            "INSERT INTO t SELECT i, i % 1000, (i * 7) % 100000, 'label number ' || i, \
             (i % 100000) / 100.0, timestamptz '2026-01-01' + i * interval '1 second', \
             timestamptz '2026-01-01' + i * interval '1 second', i % 2 = 0, \
             jsonb_build_object('k', i % 10, 'tag', 'x' || (i % 100)), \
             CASE WHEN i % 3 = 0 THEN NULL ELSE 'a note of some length ' || i END \
             FROM generate_series(1, {rows}) i; \
             CREATE INDEX ON t (updated, id); ANALYZE t"
        ),
    )?;
    pg.sql(&native, TABLE)?;
    let size = pg.sql(&src, "SELECT pg_total_relation_size('t')")?;
    let mut results = Vec::new();

    // The native floors.
    for (label, options) in [("text", ""), ("binary", "(format binary)")] {
        pg.sql(&native, "TRUNCATE t")?;
        let (m, ()) = measure(&pg, &format!("native \\copy pipe ({label})"), rows, || {
            native_pipe(&pg, &src, (&native, "t"), options)
        })?;
        results.push(m);
    }
    let native_rate = results[0].rows as f64 / results[0].wall.as_secs_f64();
    // Upsert floor: the same pipe into a staging table and one merge.
    let (m, ()) = measure(&pg, "native \\copy + INSERT … ON CONFLICT", rows, || {
        pg.sql(&native, "CREATE TABLE s (LIKE t)")?;
        native_pipe(&pg, &src, (&native, "s"), "")?;
        pg.sql(
            &native,
            "INSERT INTO t SELECT * FROM s ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a, \
             b = EXCLUDED.b, label = EXCLUDED.label, amount = EXCLUDED.amount, \
             created = EXCLUDED.created, updated = EXCLUDED.updated, flag = EXCLUDED.flag, \
             doc = EXCLUDED.doc, note = EXCLUDED.note; DROP TABLE s",
        )?;
        Ok(())
    })?;
    let native_upsert = m.rows as f64 / m.wall.as_secs_f64();
    results.push(m);
    // NDJSON and CSV files of the table, for the file → PG rows.
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("in"))?;
    let ndjson = dir.path().join("in/t.ndjson");
    let csv = dir.path().join("t.csv");
    pg.sql(
        &src,
        &format!(
            "\\copy (SELECT row_to_json(t) FROM t) to '{}'",
            ndjson.display()
        ),
    )?;
    pg.sql(&src, &format!("\\copy t to '{}' csv", csv.display()))?;
    pg.sql(&native, "TRUNCATE t")?;
    let (m, ()) = measure(&pg, "native \\copy from CSV file", rows, || {
        pg.sql(&native, &format!("\\copy t from '{}' csv", csv.display()))?;
        Ok(())
    })?;
    let native_csv = m.rows as f64 / m.wall.as_secs_f64();
    results.push(m);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rss_installed = (0, 0, 0);
    let mut ratios: Vec<(String, f64)> = Vec::new();
    rt.block_on(async {
        let host = PluginHost::new(HostConfig::default())?;
        let postgres = host
            .install(&guest("postgres")?)
            .await?
            .plugin
            .digest
            .clone();
        let files = host.install(&guest("files")?).await?.plugin.digest.clone();
        host.set_grants(
            &postgres,
            &CapabilityGrants {
                outbound_hosts: vec![HostPattern::parse(&format!("127.0.0.1:{}", pg.port()))?],
                ..Default::default()
            },
        )?;
        host.set_grants(
            &files,
            &CapabilityGrants {
                directories: vec![DirectoryGrant {
                    guest_path: "/data".into(),
                    host_path: dir.path().to_owned(),
                    read_only: false,
                }],
                ..Default::default()
            },
        )?;
        if let Some(path) = std::env::var_os("WEFT_BENCH_SMAPS") {
            std::fs::copy("/proc/self/smaps", path)?;
        }
        rss_installed = (
            status_mib("VmRSS:"),
            status_mib("RssAnon:"),
            status_mib("RssFile:"),
        );
        let streams = host
            .discover(ConnectorCallRequest::new(
                postgres.clone(),
                ConnectorRole::Source,
                pg.config(&src),
            ))
            .await?
            .streams;
        let info = streams
            .iter()
            .find(|s| s.name == "t")
            .context("no stream t")?;
        let stream = |mode: SyncMode, write: WriteMode| ConfiguredStream {
            name: "t".into(),
            namespace: info.namespace.clone(),
            json_schema: info.json_schema.clone(),
            fields: Vec::new(),
            sync_mode: mode,
            cursor_field: (mode == SyncMode::Incremental).then(|| "updated".to_owned()),
            primary_key: vec!["id".into()],
            write_mode: write,
        };
        let sync = |id: &str,
                    source: (&PluginDigest, Value),
                    s: ConfiguredStream,
                    state: Vec<Checkpoint>| {
            let mut req = SyncRequest::new(
                id,
                SyncSide::new(source.0.clone(), source.1),
                SyncSide::new(postgres.clone(), pg.config(&dst)),
                vec![s],
            );
            req.read_limits = ReadLimits::default();
            req.state = state;
            req
        };
        let timed = |name: &str, n: u64, req: SyncRequest| {
            let host = &host;
            let pg = &pg;
            let name = name.to_owned();
            async move {
                reset_peak_rss();
                let (cpu0, pg0, t0) = (own_cpu(), pg.cpu(), Instant::now());
                let report: SyncReport = host.sync(req).await?;
                let m = Measured {
                    name: format!("{name} [{}]", report.format),
                    rows: n,
                    wall: t0.elapsed(),
                    own_cpu: own_cpu() - cpu0,
                    pg_cpu: pg.cpu() - pg0,
                    peak_rss: Some(peak_rss_mib()),
                };
                let written: u64 = report.progress.streams.iter().map(|s| s.rows).sum();
                ensure!(written == n, "{name}: {written} rows written, {n} expected");
                anyhow::Ok((m, report))
            }
        };

        let (m, _) = timed(
            "weft PG → PG full refresh",
            rows,
            sync(
                "full",
                (&postgres, pg.config(&src)),
                stream(SyncMode::FullRefresh, WriteMode::Append),
                Vec::new(),
            ),
        )
        .await?;
        ratios.push((
            m.name.clone(),
            m.rows as f64 / m.wall.as_secs_f64() / native_rate,
        ));
        results.push(m);
        // The same full refresh over TLS (rustls, RustCrypto in the guest).
        pg.sql(&dst, "TRUNCATE t")?;
        let mut tls = pg.config(&src);
        tls["sslMode"] = json!("require");
        let (m, _) = timed(
            "weft PG → PG full refresh, source over TLS",
            rows,
            sync(
                "full-tls",
                (&postgres, tls),
                stream(SyncMode::FullRefresh, WriteMode::Append),
                Vec::new(),
            ),
        )
        .await?;
        ratios.push((
            m.name.clone(),
            m.rows as f64 / m.wall.as_secs_f64() / native_rate,
        ));
        results.push(m);
        // As in the native upsert, the table has its key already.
        pg.sql(&dst, "ALTER TABLE t ADD PRIMARY KEY (id)")?;
        let (m, _) = timed(
            "weft PG → PG upsert into the full table",
            rows,
            sync(
                "upsert",
                (&postgres, pg.config(&src)),
                stream(SyncMode::FullRefresh, WriteMode::Upsert),
                Vec::new(),
            ),
        )
        .await?;
        ratios.push((
            m.name.clone(),
            m.rows as f64 / m.wall.as_secs_f64() / native_upsert,
        ));
        ratios.push((
            format!("{} (to the plain pipe)", m.name),
            m.rows as f64 / m.wall.as_secs_f64() / native_rate,
        ));
        results.push(m);
        // The same upsert when every row changed: each is written again.
        pg.sql(&src, "UPDATE t SET a = a + 1")?;
        pg.sql(&src, "VACUUM ANALYZE t")?;
        let (m, _) = timed(
            "weft PG → PG upsert, every row changed",
            rows,
            sync(
                "upsert-changed",
                (&postgres, pg.config(&src)),
                stream(SyncMode::FullRefresh, WriteMode::Upsert),
                Vec::new(),
            ),
        )
        .await?;
        ratios.push((
            m.name.clone(),
            m.rows as f64 / m.wall.as_secs_f64() / native_upsert,
        ));
        results.push(m);
        // Incremental: a first full pass, then 10 k changed rows.
        let (_, first) = timed(
            "incremental (initial)",
            rows,
            sync(
                "inc0",
                (&postgres, pg.config(&src)),
                stream(SyncMode::Incremental, WriteMode::Upsert),
                Vec::new(),
            ),
        )
        .await?;
        let changed = (rows / 100).max(1);
        pg.sql(
            &src,
            &format!(
                "UPDATE t SET updated = now(), a = a + 1 WHERE id % {} = 0",
                rows / changed
            ),
        )?;
        let (m, _) = timed(
            "weft PG → PG incremental, changed rows",
            changed,
            sync(
                "inc1",
                (&postgres, pg.config(&src)),
                stream(SyncMode::Incremental, WriteMode::Upsert),
                first.state.clone(),
            ),
        )
        .await?;
        results.push(m);
        let checksum = |db: &str| pg.sql(db, "SELECT count(*), sum(hashtext(t::text)) FROM t");
        let (a, b) = (checksum(&src)?, checksum(&dst)?);
        ensure!(
            a == b,
            "the destination differs from the source: {a} vs {b}"
        );
        // NDJSON file → PG, into a new table.
        pg.sql(&dst, "DROP TABLE t")?;
        let (m, _) = timed(
            "weft NDJSON file → PG",
            rows,
            sync(
                "file",
                (&files, json!({"path": "/data/in", "glob": "*.ndjson"})),
                stream(SyncMode::FullRefresh, WriteMode::Append),
                Vec::new(),
            ),
        )
        .await?;
        ratios.push((
            m.name.clone(),
            m.rows as f64 / m.wall.as_secs_f64() / native_csv,
        ));
        results.push(m);
        anyhow::Ok(())
    })?;
    println!(
        "{rows} rows, table {:.0} MiB; {} cores; PostgreSQL on 127.0.0.1 (fsync off); \
         RSS of this process with the plugins installed {} MiB ({} MiB anonymous, {} MiB file; peak RSS per sync below)\n",
        size.parse::<f64>().unwrap_or(0.0) / (1 << 20) as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        rss_installed.0,
        rss_installed.1,
        rss_installed.2,
    );
    println!(
        "| workload | rows | wall | rows/s | CPU s (this process) | CPU s (PostgreSQL) | peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for m in &results {
        println!(
            "| {} | {} | {:.2} s | {:.0} | {:.2} | {:.2} | {} |",
            m.name,
            m.rows,
            m.wall.as_secs_f64(),
            m.rows as f64 / m.wall.as_secs_f64(),
            m.own_cpu,
            m.pg_cpu,
            m.peak_rss.map_or("".to_owned(), |r| format!("{r} MiB"))
        );
    }
    println!("\n| ratio to its native floor | × |\n|---|---:|");
    for (name, r) in ratios {
        println!("| {name} | {r:.2} |");
    }
    for db in [&src, &native, &dst] {
        let _ = pg.sql("postgres", &format!("DROP DATABASE {db}"));
    }
    Ok(())
}
