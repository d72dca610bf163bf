//! Every template in `examples/` validates and runs to the documented result.

use serde_json::json;
use std::time::Duration;
use weft_engine::StartRunRequest;
use weft_model::template::WorkflowTemplate;
use weft_model::{EventKind, RunStatus};
use weft_tests::{admin, key};

fn example(name: &str) -> anyhow::Result<serde_json::Value> {
    let path = format!("{}/../examples/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path)?;
    WorkflowTemplate::from_yaml(&text).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    Ok(serde_yaml_ng::from_str(&text)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_run() -> anyhow::Result<()> {
    let engine = weft_tests::engine_with(&["core"]).await?;
    for name in [
        "hello",
        "fan-out",
        "approval",
        "http-fetch",
        "retry-compensation",
    ] {
        engine.create_template(admin(), &example(name)?).await?;
    }
    let wait = Duration::from_secs(30);
    let start = |t: &str, inputs: serde_json::Value| {
        engine.start_run(
            admin(),
            StartRunRequest {
                template: t.into(),
                inputs,
                idempotency_key: None,
            },
        )
    };

    let run = start("hello", json!({"name": "Ada"})).await?;
    let done = engine.wait_for(admin(), &run.run_id, &[], wait).await?;
    assert_eq!(
        done.outputs.unwrap_or_default()["welcome"],
        json!({"result": "Hello, Ada! Welcome to Weft."}),
        "{:?}",
        done.error
    );

    let run = start("fan-out", json!({"ns": [1, 2, 10]})).await?;
    let done = engine.wait_for(admin(), &run.run_id, &[], wait).await?;
    assert_eq!(done.status, RunStatus::Success, "{done:?}");
    assert_eq!(
        done.outputs.unwrap_or_default()["big"],
        json!({"result": [55]})
    );

    let run = start("approval", json!({})).await?;
    engine
        .wait_for(admin(), &run.run_id, &[RunStatus::AwaitingInput], wait)
        .await?;
    engine
        .answer(
            admin(),
            &run.run_id,
            &key("approve"),
            json!({"approved": true, "comment": "go"}),
        )
        .await?;
    let done = engine.wait_for(admin(), &run.run_id, &[], wait).await?;
    assert_eq!(
        done.outputs.unwrap_or_default()["deploy"],
        json!({"deployed": true, "comment": "go"})
    );

    // Not granted any host: the fetch fails and is not retried forever.
    let run = start("http-fetch", json!({"url": "http://example.com/"})).await?;
    assert_eq!(
        engine
            .wait_for(admin(), &run.run_id, &[], wait)
            .await?
            .status,
        RunStatus::Failed
    );

    let run = start("retry-compensation", json!({})).await?;
    let done = engine.wait_for(admin(), &run.run_id, &[], wait).await?;
    assert_eq!(done.status, RunStatus::Failed);
    let events = engine.run_events(admin(), &run.run_id, 0, 200).await?;
    let undone: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::StepCompensated)
        .filter_map(|e| e.step.clone())
        .collect();
    assert_eq!(undone, ["database", "network"]);
    Ok(())
}
