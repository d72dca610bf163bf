//! Store commit costs: what one engine transition costs in SurrealDB, by
//! shape, on `mem://` (no disk) and `surrealkv://` (fsync per commit).
//! Prints a Markdown table. Run with `cargo bench -p weft-store --bench commit`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use anyhow::Result;
use std::time::{Duration, Instant};
use weft_model::StepStatus;
use weft_store::{Store, Transition};

mod fixtures;
use fixtures::{event, run, step, step_transition};

type Shape = fn(u64) -> Transition;

fn shapes() -> Vec<(&'static str, Shape)> {
    vec![
        ("run update only (the engine bench's reference)", |i| {
            let mut r = run("r");
            r.next_event_seq = i;
            Transition {
                run: Some(r),
                ..Default::default()
            }
        }),
        ("one event (journal record)", |i| Transition {
            events: vec![event("r", i)],
            journal_seq: i + 1,
            ..Default::default()
        }),
        ("one step change (journal record)", |i| Transition {
            steps: vec![step("r", &format!("s{}", i % 2), StepStatus::Running)],
            journal_seq: i + 1,
            ..Default::default()
        }),
        ("sequential step: 2 steps + 2 events", |i| {
            step_transition("r", i)
        }),
        ("step with a status change: run + 2 steps + 2 events", |i| {
            let mut t = step_transition("r", i);
            let mut r = run("r");
            r.next_event_seq = 2 * i + 2;
            t.run = Some(r);
            t
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
        // The reference shape updates run `r`, which must exist.
        for store in [&kv, &mem] {
            store
                .create_run(&Transition {
                    run: Some(run("r")),
                    ..Default::default()
                })
                .await?;
        }
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
