//! Store commit costs: what one engine transition costs in SurrealDB, by
//! shape, on `mem://` (no disk) and `surrealkv://` (fsync per commit).
//! Prints a Markdown table. Run with `cargo bench -p weft-store --bench commit`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use anyhow::Result;
use serde_json::json;
use std::time::{Duration, Instant};
use weft_model::{RunStatus, StepStatus};
use weft_store::{AttemptRecord, RunEvent, RunRecord, StepRecord, Store, Transition, now_ms};

fn run(id: &str) -> RunRecord {
    RunRecord {
        run_id: id.into(),
        template_id: "t".into(),
        template_name: "t".into(),
        revision: 1,
        status: RunStatus::Running,
        inputs: json!({}),
        outputs: None,
        error: None,
        pinned_plugins: Default::default(),
        idempotency_key: None,
        progress: Default::default(),
        created_at: now_ms(),
        started_at: Some(now_ms()),
        ended_at: None,
        next_event_seq: 1,
        next_log_seq: 1,
    }
}

fn step(run: &str, key: &str, status: StepStatus) -> StepRecord {
    StepRecord {
        run_id: run.into(),
        key: key.into(),
        step_id: key.into(),
        item: None,
        status,
        attempt: 1,
        input: Some(json!({"n": 10})),
        output: Some(json!({"value": 55})),
        error: None,
        input_request: None,
        answer: None,
        answer_has_secrets: false,
        next_attempt_at: None,
        attempts: vec![AttemptRecord {
            attempt: 1,
            started_at: now_ms(),
            ended_at: Some(now_ms()),
            status,
            error: None,
        }],
        ended_at: None,
        completion_seq: Some(1),
    }
}

fn event(run: &str, seq: u64) -> RunEvent {
    RunEvent {
        run_id: run.into(),
        seq,
        at: now_ms(),
        kind: "step.started".into(),
        step: Some("s".into()),
        attempt: Some(1),
        message: "attempt 1 started".into(),
        data: None,
    }
}

type Shape = fn(u64) -> Transition;

fn shapes() -> Vec<(&'static str, Shape)> {
    vec![
        ("run upsert only (the engine bench's reference)", |i| {
            let mut r = run("r");
            r.next_event_seq = i;
            Transition {
                run: Some(r),
                ..Default::default()
            }
        }),
        ("one event insert", |i| Transition {
            events: vec![event("r", i)],
            ..Default::default()
        }),
        ("one step upsert", |i| Transition {
            steps: vec![step("r", &format!("s{}", i % 2), StepStatus::Running)],
            ..Default::default()
        }),
        ("step transition: run + 2 steps + 2 events", |i| {
            let mut r = run("r");
            r.next_event_seq = i;
            Transition {
                run: Some(r),
                steps: vec![
                    step("r", &format!("s{i}"), StepStatus::Success),
                    step("r", &format!("s{}", i + 1), StepStatus::Running),
                ],
                events: vec![event("r", 2 * i), event("r", 2 * i + 1)],
                logs: vec![],
                creates_run: false,
            }
        }),
        ("2 steps + 2 events (no run)", |i| Transition {
            run: None,
            steps: vec![
                step("r", &format!("s{i}"), StepStatus::Success),
                step("r", &format!("s{}", i + 1), StepStatus::Running),
            ],
            events: vec![event("r", 2 * i), event("r", 2 * i + 1)],
            logs: vec![],
            creates_run: false,
        }),
    ]
}

async fn measure(store: &Store, shape: Shape, n: u64, base: u64) -> Result<(Duration, Duration)> {
    let mut samples = Vec::new();
    for i in 0..n {
        let t = shape(base + i);
        let start = Instant::now();
        store.commit(&[t]).await?;
        samples.push(start.elapsed());
    }
    samples.sort_unstable();
    Ok((
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    ))
}

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let kv =
            Store::connect(&format!("surrealkv://{}", dir.path().join("db").display())).await?;
        let mem = Store::connect("mem://").await?;
        let n = std::env::var("WEFT_BENCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(400);
        println!("| transition shape | mem:// p50 | mem:// p99 | surrealkv p50 | surrealkv p99 |");
        println!("|---|---|---|---|---|");
        for (k, (label, shape)) in shapes().into_iter().enumerate() {
            let base = (k as u64 + 1) * 1_000_000;
            measure(&mem, shape, 50, base + 900_000).await?;
            measure(&kv, shape, 50, base + 900_000).await?;
            let (m50, m99) = measure(&mem, shape, n, base).await?;
            let (k50, k99) = measure(&kv, shape, n, base).await?;
            println!("| {label} | {m50:.0?} | {m99:.0?} | {k50:.0?} | {k99:.0?} |");
        }
        anyhow::Ok(())
    })
}
