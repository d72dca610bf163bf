//! A Weft engine process for crash tests: starts 50 runs on a surrealkv
//! store, waits until they are mid-flight (sleeping, awaiting input,
//! between retries), prints `READY <json>` and then waits to be killed.

use anyhow::{Context, Result};
use serde_json::json;
use std::time::Duration;
use weft_engine::{Engine, StartRunRequest};
use weft_model::StepStatus;
use weft_tests::admin;

/// Runs per template: sleeping in `core/sleep`, awaiting input, between retries.
const SLEEPY: usize = 20;
const APPROVE: usize = 15;
const FLAKY: usize = 15;

#[tokio::main]
async fn main() -> Result<()> {
    let url = std::env::args()
        .nth(1)
        .context("usage: weft-test-node <surrealkv://dir>")?;
    let engine = weft_tests::engine_on(
        &url,
        &["core", "hostile"],
        weft_engine::EngineConfig::default(),
    )
    .await?;
    for t in templates() {
        engine.create_template(admin(), &t).await?;
    }
    let mut runs = json!({"sleepy": [], "approve": [], "flaky": []});
    for (name, n) in [("sleepy", SLEEPY), ("approve", APPROVE), ("flaky", FLAKY)] {
        for _ in 0..n {
            let run = engine
                .start_run(
                    admin(),
                    StartRunRequest {
                        template: name.into(),
                        inputs: json!({}),
                        idempotency_key: None,
                    },
                )
                .await?;
            if let Some(list) = runs[name].as_array_mut() {
                list.push(json!(run.run_id));
            }
        }
    }
    wait_until_mid_flight(&engine, &runs).await?;
    println!("READY {runs}");
    std::future::pending::<()>().await;
    Ok(())
}

/// The templates the crash test uses.
fn templates() -> Vec<serde_json::Value> {
    vec![
        json!({"name": "sleepy", "steps": [
            {"id": "a", "uses": "core/noop", "with": {"step": "a"}},
            {"id": "b", "uses": "core/sleep", "needs": ["a"], "with": {"ms": 3000}},
            {"id": "c", "uses": "core/noop", "needs": ["b"], "with": {"slept": "${{ steps.b.output.sleptMs }}"}}
        ]}),
        json!({"name": "approve", "steps": [
            {"id": "ask", "uses": "core/approval", "with": {"prompt": "ok?"}},
            {"id": "after", "uses": "core/noop", "needs": ["ask"], "with": {"approved": "${{ steps.ask.output.approved }}"}}
        ]}),
        json!({"name": "flaky", "steps": [
            {"id": "f", "uses": "hostile/flaky", "with": {"succeedOnAttempt": 3},
             "retry": {"maxAttempts": 5, "retryOn": ["transient"], "backoff": {"kind": "fixed", "initial": "1500ms", "max": "1500ms", "jitter": 0}}}
        ]}),
    ]
}

async fn wait_until_mid_flight(engine: &Engine, runs: &serde_json::Value) -> Result<()> {
    let wanted = [
        ("sleepy", "b", StepStatus::Running),
        ("approve", "ask", StepStatus::AwaitingInput),
        ("flaky", "f", StepStatus::Retrying),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (name, step, status) in wanted {
        for id in runs[name]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str()?.parse::<weft_model::RunId>().ok())
        {
            loop {
                let steps = engine.steps(admin(), &id).await?;
                if steps.iter().any(|s| s.key == step && s.status == status) {
                    break;
                }
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "run {id} never reached {step} {status}: {steps:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    Ok(())
}
