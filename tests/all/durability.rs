//! Crash recovery: SIGKILL an engine process with 50 runs in flight,
//! restart on the same surrealkv directory, and check that every run
//! finishes correctly, no completed step ran twice, and interrupted steps
//! re-ran as attempt + 1 with a log line saying why.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use weft_engine::PageRequest;
use weft_model::{LogSource, RunId, RunStatus, RunStep, StepStatus};
use weft_tests::{admin, key};

fn step<'a>(steps: &'a [RunStep], key: &str) -> &'a RunStep {
    steps
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("no step {key} in {steps:?}"))
}

fn ids(runs: &Value, name: &str) -> Vec<RunId> {
    runs[name]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str()?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_50_runs_in_flight_then_recover() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("surrealkv://{}", dir.path().display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft-test-node"))
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("READY ").map(str::to_owned))
    });
    let line = tokio::time::timeout(Duration::from_secs(120), ready)
        .await??
        .expect("node printed READY");
    let runs: Value = serde_json::from_str(&line)?;
    // SIGKILL: no shutdown hooks, no flushing.
    child.kill()?;
    child.wait()?;

    // Restart on the same directory (the kernel released the dead process's lock).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let engine = loop {
        match weft_tests::engine_on(&url, &[], weft_engine::EngineConfig::default()).await {
            Ok(e) => break e,
            Err(e)
                if std::time::Instant::now() < deadline && format!("{e:#}").contains("locked") =>
            {
                tokio::task::yield_now().await
            }
            Err(e) => return Err(e),
        }
    };

    for id in ids(&runs, "approve") {
        engine
            .wait_for(
                admin(),
                &id,
                &[RunStatus::AwaitingInput],
                Duration::from_secs(30),
            )
            .await?;
        engine
            .answer(admin(), &id, &key("ask"), json!({"approved": true}))
            .await?;
    }
    let wait = Duration::from_secs(60);
    for id in ids(&runs, "sleepy") {
        let run = engine.wait_for(admin(), &id, &[], wait).await?;
        assert_eq!(run.status, RunStatus::Success, "{run:?}");
        let steps = engine.steps(admin(), &id).await?;
        assert_eq!(
            step(&steps, "a").attempt,
            1,
            "a completed before the crash and must not re-run"
        );
        let b = step(&steps, "b");
        assert_eq!(
            b.attempt, 2,
            "b was interrupted and re-ran as attempt 2: {b:?}"
        );
        assert_eq!(
            run.outputs.as_ref().map(|o| o["c"].clone()),
            Some(json!({"slept": 3000}))
        );
        let logs = engine.step_logs(admin(), &id, &key("b"), 0, 100).await?;
        assert!(
            logs.iter()
                .any(|l| l.source == LogSource::Engine
                    && l.message.contains("interrupted by a restart")),
            "{logs:?}"
        );
        // A running run's record is not rewritten per step: the counters
        // resume from the events and logs themselves, with no gap or reuse.
        weft_tests::assert_dense_sequence(
            &engine.run_events(admin(), &id, 0, 1000).await?,
            "event sequence is dense across the crash",
        );
        assert!(
            logs.windows(2).all(|w| w[0].seq < w[1].seq),
            "log sequence increases across the crash: {logs:?}"
        );
    }
    for id in ids(&runs, "approve") {
        let run = engine.wait_for(admin(), &id, &[], wait).await?;
        assert_eq!(run.status, RunStatus::Success, "{run:?}");
        assert_eq!(
            run.outputs.as_ref().map(|o| o["after"].clone()),
            Some(json!({"approved": true}))
        );
    }
    for id in ids(&runs, "flaky") {
        let run = engine.wait_for(admin(), &id, &[], wait).await?;
        assert_eq!(run.status, RunStatus::Success, "{run:?}");
        let steps = engine.steps(admin(), &id).await?;
        let f = step(&steps, "f");
        assert_eq!(f.output, Some(json!({"attempt": 3})));
        let attempts = engine
            .list_step_attempts(admin(), &id, &key("f"), PageRequest::new(1, 100))
            .await?;
        assert_eq!(
            attempts.items.iter().map(|a| a.attempt).collect::<Vec<_>>(),
            vec![1, 2, 3],
            "one attempt per try, none lost or doubled: {f:?} {attempts:?}"
        );
        assert_eq!(attempts.total, 3);
        assert_eq!(f.status, StepStatus::Success);
    }
    Ok(())
}
