//! Engine benchmark: the Windmill workloads with `core/fibo` (start to
//! SUCCESS), 1,000 concurrent one-step runs, the per-step overhead against
//! one host invocation plus one store commit, and the memory of runs
//! waiting for input. Everything runs in one process on an embedded
//! `surrealkv://` store in a temp dir with the default durability (fsync
//! on every commit). Prints Markdown tables.
//!
//! Run with `cargo bench -p weft-engine --bench engine` after
//! `scripts/build-guests.sh`. Knobs: `WEFT_BENCH_QUICK=1` shrinks counts
//! (1 repetition per workload, fewer samples, 500 waiting runs);
//! `WEFT_BENCH_WASM=<file>` uses another build of the core plugin;
//! `WEFT_BENCH_ONLY=windmill,many,memory` (any subset) picks the sections
//! (the raw invocation and commit costs are always measured; the full
//! memory section re-runs this binary for a fresh process);
//! `WEFT_BENCH_STORE=mem://` (or any store URL) replaces the durable
//! store, to tell the engine's own cost from the store's.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, broadcast};
use weft_engine::{Engine, EngineConfig, LiveEvent, StartRunRequest};
use weft_host::{HostConfig, InvokeStepRequest, PluginHost};
use weft_model::{Principal, RunId, RunStatus, StepId, StepStatus, WorkflowRun};
use weft_store::{Store, Transition};

/// The store commit bench's records: the reference transition is the same.
#[path = "../../store/benches/fixtures/mod.rs"]
mod fixtures;

/// How long one workload run may take before it is reported as stuck.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

fn core_wasm() -> Result<Vec<u8>> {
    let path = std::env::var("WEFT_BENCH_WASM").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../build/wasm/core.wasm").to_owned()
    });
    std::fs::read(&path).with_context(|| format!("{path} missing: run scripts/build-guests.sh"))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() as f64 - 1.0) * 0.99).round() as usize]
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 10_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else if us >= 1_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

fn fmt_all(samples: &[Duration]) -> String {
    samples
        .iter()
        .map(|d| fmt(*d))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resident set size of this process, from `/proc/self/status`.
fn rss_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS in /proc/self/status")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed VmRSS")?
        .parse()?;
    Ok(kb * 1024)
}

fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "✅" } else { "❌" }
}

/// Waits until `run_id` reaches one of `statuses` (any terminal status when
/// empty). Unlike `Engine::wait_for`, the run record is re-read only on
/// run-level events, so a waiter does not add one store read per step
/// event to the engine's load.
async fn wait_run(
    engine: &Engine,
    run_id: &RunId,
    statuses: &[RunStatus],
    timeout: Duration,
) -> Result<WorkflowRun> {
    let mut rx = engine.subscribe(Principal::bootstrap_admin(), run_id)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let hit = |r: &WorkflowRun| {
        if statuses.is_empty() {
            r.status.is_terminal()
        } else {
            statuses.contains(&r.status) || r.status.is_terminal()
        }
    };
    // Events published before the subscription are missed: read once.
    let mut run = engine.run(Principal::bootstrap_admin(), run_id).await?;
    loop {
        if hit(&run) {
            return Ok(run);
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => bail!("run {run_id} still {} after {timeout:?}", run.status),
            // Run-level events say the new status; no store read needed.
            Ok(Ok(LiveEvent::Event(e))) if !e.kind.is_step() => {
                if let Some(status) = e.run_status() {
                    run.status = status;
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                run = engine.run(Principal::bootstrap_admin(), run_id).await?
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                rx = engine.subscribe(Principal::bootstrap_admin(), run_id)?;
                run = engine.run(Principal::bootstrap_admin(), run_id).await?;
            }
        }
    }
}

/// A description of a run that did not end as expected: its status, error
/// and a per-status count of its steps with the unfinished ones listed.
async fn diagnose(engine: &Engine, run_id: &RunId) -> String {
    let run = match engine.run(Principal::bootstrap_admin(), run_id).await {
        Ok(r) => r,
        Err(e) => return format!("run {run_id}: cannot read: {e}"),
    };
    let mut out = format!(
        "run {run_id}: status {} error {} progress {:?}",
        run.status,
        run.error.as_ref().map_or("-".into(), ToString::to_string),
        run.progress
    );
    match engine.steps(Principal::bootstrap_admin(), run_id).await {
        Err(e) => out.push_str(&format!("; steps: cannot read: {e}")),
        Ok(steps) => {
            let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
            for s in &steps {
                *by_status.entry(format!("{:?}", s.status)).or_default() += 1;
            }
            out.push_str(&format!("; {} steps {by_status:?}", steps.len()));
            for s in steps
                .iter()
                .filter(|s| s.status != StepStatus::Success)
                .take(5)
            {
                out.push_str(&format!(
                    "\n    step {} status {:?} attempt {} error {}",
                    s.key,
                    s.status,
                    s.attempt,
                    s.error.as_ref().map_or("-".into(), ToString::to_string)
                ));
            }
        }
    }
    out
}

/// Starts a run of `template` and waits for SUCCESS; the wall time from
/// just before `start_run` to the observed SUCCESS.
async fn timed_run(engine: &Engine, template: &str) -> Result<Duration> {
    let t = Instant::now();
    let run = engine
        .start_run(
            Principal::bootstrap_admin(),
            StartRunRequest {
                template: template.into(),
                inputs: json!({}),
                idempotency_key: None,
            },
        )
        .await?;
    let done = match wait_run(engine, &run.run_id, &[], RUN_TIMEOUT).await {
        Ok(done) => done,
        Err(e) => bail!("{e}\n  {}", diagnose(engine, &run.run_id).await),
    };
    let elapsed = t.elapsed();
    if done.status != RunStatus::Success {
        bail!(
            "run ended {}\n  {}",
            done.status,
            diagnose(engine, &run.run_id).await
        );
    }
    Ok(elapsed)
}

fn chain(name: &str, n: usize, fibo: u32) -> Value {
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            let mut s = json!({"id": format!("s{i}"), "uses": "core/fibo", "with": {"n": fibo}});
            if i > 0 {
                s["needs"] = json!([format!("s{}", i - 1)]);
            }
            s
        })
        .collect();
    json!({"name": name, "steps": steps})
}

fn fan_out(name: &str, n: usize, fibo: u32) -> Value {
    let list = format!("[{}]", vec![fibo.to_string(); n].join(", "));
    json!({
        "name": name,
        "steps": [{"id": "fib", "uses": "core/fibo", "forEach": list, "with": {"n": "${{ item }}"}}]
    })
}

/// Starts `n` runs of `template` with at most `in_flight` start/wait pairs
/// at once, each waiting until `statuses`; the time from the first start to
/// the last run reaching it.
async fn many_runs(
    engine: &Engine,
    template: &str,
    n: usize,
    in_flight: usize,
    statuses: &'static [RunStatus],
    want: RunStatus,
) -> Result<(Duration, Vec<RunId>)> {
    let slots = Arc::new(Semaphore::new(in_flight));
    let t = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let engine = engine.clone();
        let template = template.to_owned();
        let permit = slots.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let run = engine
                .start_run(
                    Principal::bootstrap_admin(),
                    StartRunRequest {
                        template,
                        inputs: json!({}),
                        idempotency_key: None,
                    },
                )
                .await?;
            let done = wait_run(&engine, &run.run_id, statuses, RUN_TIMEOUT).await;
            anyhow::Ok((run.run_id, done))
        }));
    }
    let mut ids = Vec::with_capacity(n);
    let mut failures = Vec::new();
    for task in tasks {
        let (id, done) = task.await??;
        match done {
            Ok(r) if r.status == want => {}
            Ok(r) => failures.push((id.clone(), format!("ended {}", r.status))),
            Err(e) => failures.push((id.clone(), e.to_string())),
        }
        ids.push(id);
    }
    let elapsed = t.elapsed();
    if let Some((id, why)) = failures.first() {
        bail!(
            "{} of {n} runs did not reach {want}; first: {why}\n  {}",
            failures.len(),
            diagnose(engine, id).await
        );
    }
    Ok((elapsed, ids))
}

fn main() -> Result<()> {
    // SAFETY: first statement of `main`; no other thread exists yet.
    #[allow(unsafe_code)]
    unsafe {
        weft_engine::process::prepare_process();
    }
    let quick = std::env::var_os("WEFT_BENCH_QUICK").is_some();
    let only = std::env::var("WEFT_BENCH_ONLY").ok();
    let wants = |section: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|s| s.trim() == section))
    };
    let reps = if quick { 1 } else { 3 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(weft_engine::WORKER_STACK_BYTES)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let bytes = core_wasm()?;
        let dir = tempfile::tempdir()?;
        let url = std::env::var("WEFT_BENCH_STORE")
            .unwrap_or_else(|_| format!("surrealkv://{}", dir.path().join("db").display()));
        let store = Store::connect(&url).await?;
        let host = Arc::new(PluginHost::new(HostConfig {
            // Compiled plugins are cached across bench runs (keyed by digest
            // and engine): compiling is not what this bench measures.
            cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("weft-bench-cache")),
            ..HostConfig::default()
        })?);
        let engine = Engine::start(EngineConfig::default(), host.clone(), store.clone()).await?;
        let core = engine.install_plugin(Principal::bootstrap_admin(), &bytes, true).await?.digest;
        let rss_at_start = rss_bytes()?;
        println!(
            "core.wasm: {} KiB; {} cores; store {url} (default durability); {}",
            bytes.len() / 1024,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            if quick { "QUICK" } else { "full" }
        );
        println!();

        // ---- 3 (first, on a quiet store): the raw costs ------------------
        let req = || {
            InvokeStepRequest::new(
                core.clone(),
                "fibo",
                json!({"n": 10}),
                RunId::new("bench").unwrap(),
                StepId::new("s").unwrap(),
            )
        };
        for _ in 0..200 {
            host.invoke_step(req()).await?;
        }
        let mut invoke = Vec::new();
        for _ in 0..if quick { 500 } else { 2_000 } {
            let t = Instant::now();
            host.invoke_step(req()).await?;
            invoke.push(t.elapsed());
        }
        let mut record = WorkflowRun {
            run_id: RunId::generate(),
            template_id: "bench".parse()?,
            template_name: "bench".into(),
            revision: 1,
            status: RunStatus::Success,
            inputs: json!({}),
            outputs: None,
            error: None,
            pinned_plugins: BTreeMap::new(),
            idempotency_key: None,
            progress: Default::default(),
            created_at: weft_store::now_ms(),
            started_at: None,
            ended_at: None,
            next_event_seq: 1,
            next_log_seq: 1,
            next_journal_seq: 1,
        };
        // The reference commit updates an existing run record.
        store
            .create_run(&Transition {
                run: Some(record.clone()),
                ..Default::default()
            })
            .await?;
        let mut commit = Vec::new();
        for i in 0..if quick { 150 } else { 550 } {
            record.next_event_seq = i + 1;
            let t = Instant::now();
            store
                .commit(&[Transition {
                    run: Some(record.clone()),
                    ..Default::default()
                }])
                .await?;
            if i >= 50 {
                commit.push(t.elapsed());
            }
        }
        let mut step_commit = Vec::new();
        for i in 0..if quick { 150u64 } else { 550 } {
            let t = fixtures::step_transition("bench-step", i);
            let started = Instant::now();
            store.commit(&[t]).await?;
            if i >= 50 {
                step_commit.push(started.elapsed());
            }
        }
        let step_commit_n = step_commit.len();
        let step_commit_p99 = p99(step_commit.clone());
        let step_commit = median(step_commit);
        let (invoke_n, commit_n) = (invoke.len(), commit.len());
        let (invoke_p99, commit_p99) = (p99(invoke.clone()), p99(commit.clone()));
        let invoke = median(invoke);
        let commit = median(commit);

        // ---- 1: the Windmill workloads ------------------------------------
        if wants("windmill") {
        let workloads = [
            ("40 × fibo(10) sequential", chain("seq-40-fibo10", 40, 10), 40, Some(Duration::from_millis(50))),
            ("10 × fibo(33) sequential", chain("seq-10-fibo33", 10, 33), 10, None),
            ("400 × fibo(10) sequential", chain("seq-400-fibo10", 400, 10), 400, None),
            ("400 × fibo(10) fan-out (forEach)", fan_out("fan-400-fibo10", 400, 10), 400, None),
        ];
        println!("### Windmill workloads (start → SUCCESS, median of {reps})");
        println!();
        println!("| workload | median | per step | runs | target |");
        println!("|---|---|---|---|---|");
        let mut medians = Vec::new();
        for (label, template, steps, target) in &workloads {
            let name = template["name"].as_str().unwrap().to_owned();
            engine.create_template(Principal::bootstrap_admin(), template).await?;
            let mut samples = Vec::new();
            let mut failed = None;
            for _ in 0..reps {
                match timed_run(&engine, &name).await {
                    Ok(d) => samples.push(d),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                eprintln!("workload `{label}` FAILED: {e:#}");
                println!("| {label} | FAILED (see stderr) | | {} | |", fmt_all(&samples));
                medians.push(None);
                continue;
            }
            let m = median(samples.clone());
            let target = target.map_or(String::new(), |t| {
                format!("≤ {} {}", fmt(t), verdict(m <= t))
            });
            println!(
                "| {label} | {} | {} | {} | {target} |",
                fmt(m),
                fmt(m / *steps as u32),
                fmt_all(&samples)
            );
            medians.push(Some(m));
        }
        println!();

        // ---- 3: per-step overhead ratio -----------------------------------
        println!("### Per sequential step vs. one invocation + one commit");
        println!();
        println!("| measurement | p50 | p99 | n |");
        println!("|---|---|---|---|");
        println!("| host: core/fibo(10) invocation | {} | {} | {invoke_n} |", fmt(invoke), fmt(invoke_p99));
        println!("| store: commit of one WorkflowRun update (surrealkv, fsync) | {} | {} | {commit_n} |", fmt(commit), fmt(commit_p99));
        println!("| invocation + commit | {} | | |", fmt(invoke + commit));
        println!("| store: commit of one sequential-step transition (2 steps, 2 events) | {} | {} | {step_commit_n} |", fmt(step_commit), fmt(step_commit_p99));
        println!();
        println!("| ratio (engine time per sequential step) / (invocation + commit) | per step | ratio | target | per step / (invocation + step-transition commit) |");
        println!("|---|---|---|---|---|");
        for (i, n) in [(0usize, 40u32), (2, 400)] {
            let label = format!("{n} × fibo(10) sequential");
            match medians[i] {
                Some(m) => {
                    let per = m / n;
                    let ratio = per.as_secs_f64() / (invoke + commit).as_secs_f64();
                    let vs_step = per.as_secs_f64() / (invoke + step_commit).as_secs_f64();
                    println!("| {label} | {} | {ratio:.2} | ≤ 1.5 {} | {vs_step:.2} |", fmt(per), verdict(ratio <= 1.5));
                }
                None => println!("| {label} | FAILED | | ≤ 1.5 | |"),
            }
        }
        println!();

        }
        // ---- 2: 1,000 concurrent one-step runs ----------------------------
        if wants("many") {
        engine
            .create_template(Principal::bootstrap_admin(), &json!({"name": "one-noop", "steps": [{"id": "a", "uses": "core/noop", "with": {"x": 1}}]}))
            .await?;
        let n_runs = 1_000;
        println!("### {n_runs} one-step `core/noop` runs started concurrently");
        println!();
        println!("| measurement | result | target |");
        println!("|---|---|---|");
        match many_runs(&engine, "one-noop", n_runs, n_runs, &[], RunStatus::Success).await {
            Ok((elapsed, _)) => {
                let rate = n_runs as f64 / elapsed.as_secs_f64();
                println!(
                    "| first start → last SUCCESS | {} ({rate:.0} runs/s) | ≥ 2,000 runs/s {} |",
                    fmt(elapsed),
                    verdict(rate >= 2_000.0)
                );
            }
            Err(e) => {
                eprintln!("{n_runs} concurrent runs FAILED: {e:#}");
                println!("| first start → last SUCCESS | FAILED (see stderr) | ≥ 2,000 runs/s |");
            }
        }
        println!();

        }
        // ---- 4: memory of runs waiting for input --------------------------
        // The store keeps in memory what the earlier sections wrote (its
        // memtable), so after them the full 10k-run section runs in a fresh
        // process. (QUICK's 500 runs are too few to measure from a cold
        // start: allocator warm-up would dominate, so they stay in-process.)
        let earlier_sections = !quick && (wants("windmill") || wants("many"));
        if wants("memory") && earlier_sections {
            let out = std::process::Command::new(std::env::current_exe()?)
                .args(std::env::args().skip(1))
                .env("WEFT_BENCH_ONLY", "memory")
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let section = text
                .lines()
                .skip_while(|l| !l.starts_with("### Memory"))
                .take_while(|l| !l.starts_with("Peers"));
            for line in section {
                println!("{}", line.replace("### Memory:", "### Memory (fresh process):"));
            }
            if !out.status.success() {
                eprintln!("memory section FAILED: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        if wants("memory") && !earlier_sections {
        engine
            .create_template(Principal::bootstrap_admin(), &json!({"name": "one-approval", "steps": [{"id": "ask", "uses": "core/approval", "with": {"prompt": "Ship it?"}}]}))
            .await?;
        let m = if quick { 500 } else { 10_000 };
        let in_flight = 64;
        println!("### Memory: {m} runs waiting in AWAITING_INPUT ({in_flight} starts in flight)");
        println!();
        println!("| measurement | result | target |");
        println!("|---|---|---|");
        let before = rss_bytes()?;
        println!(
            "| RSS at start (engine up, core plugin installed, no run yet) | {} | |",
            mb(rss_at_start as f64)
        );
        println!(
            "| RSS before (after the workloads above) | {} | |",
            mb(before as f64)
        );
        match many_runs(&engine, "one-approval", m, in_flight, &[RunStatus::AwaitingInput], RunStatus::AwaitingInput).await {
            Ok((elapsed, ids)) => {
                // Spot-check from the store that they are still waiting.
                let step = (ids.len() / 50).max(1);
                for id in ids.iter().step_by(step) {
                    let r = engine.run(Principal::bootstrap_admin(), id).await?;
                    if r.status != RunStatus::AwaitingInput {
                        eprintln!("run {id} is {} after waiting", r.status);
                    }
                }
                let after = rss_bytes()?;
                let delta = after.saturating_sub(before) as f64;
                let per_run = delta / m as f64;
                // 200 MB for 10k runs: the total RSS with 10k runs waiting,
                // or (QUICK) the per-run delta that budget allows.
                let per_run_budget = 200e6 / 10_000.0;
                println!(
                    "| time to start all and see them waiting | {} ({:.0} runs/s) | |",
                    fmt(elapsed),
                    m as f64 / elapsed.as_secs_f64()
                );
                if m >= 10_000 {
                    println!("| RSS after | {} | ≤ 200 MB {} |", mb(after as f64), verdict(after as f64 <= 200e6));
                } else {
                    println!("| RSS after | {} | (200 MB target is for 10k runs) |", mb(after as f64));
                }
                println!("| RSS delta | {} | |", mb(delta));
                println!(
                    "| delta per waiting run | {:.1} kB | ≤ {:.1} kB (200 MB / 10k) {} |",
                    per_run / 1e3,
                    per_run_budget / 1e3,
                    verdict(per_run <= per_run_budget)
                );
                if m < 10_000 {
                    let at_10k = before as f64 + per_run * 10_000.0;
                    println!(
                        "| RSS extrapolated to 10k waiting runs | {} | ≤ 200 MB {} |",
                        mb(at_10k),
                        verdict(at_10k <= 200e6)
                    );
                }
            }
            Err(e) => {
                eprintln!("{m} waiting runs FAILED: {e:#}");
                println!("| RSS after | FAILED (see stderr) | ≤ 200 MB |");
            }
        }
        println!();
        }
        println!(
            "Peers on the same machine (from FACTS.md, medians of 3): Prefect 3.8.8 (local server, SQLite) \
             1.31 s / 5.3 s / 4.3 s and Airflow 3.3.2 `dags test` 10.5 s / 10.7 s / 170 s for \
             40 × fibo(10), 10 × fibo(33) and 400 × fibo(10); plain Python 0.4 ms / 4.6 s / 3.7 ms."
        );
        anyhow::Ok(())
    })
}
