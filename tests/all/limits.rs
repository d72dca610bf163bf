//! Limits on what a plugin reports through the host: progress counts as
//! log lines, artifacts are counted, and the host-wide memory budget.

use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft_host::{InvokeError, PluginEvent, PluginHost};
use weft_model::{InvocationLimits, StepOutcome};
use weft_tests::{host_with, request, test_host_config, tight_limits, wasm};

fn limits() -> InvocationLimits {
    tight_limits(Duration::from_secs(30))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_floods_hit_the_log_limits_and_long_messages_are_truncated() -> anyhow::Result<()>
{
    let (host, d) = host_with(&["hostile"]).await?;
    let p = &d[0];
    let flood = |input, limits| {
        let mut r = request(p, "progress-flood", input);
        r.limits = Some(limits);
        r
    };

    let r = host
        .invoke_step(flood(
            json!({"reports": 1_000_000}),
            InvocationLimits {
                max_log_lines: 100,
                ..limits()
            },
        ))
        .await;
    assert!(
        matches!(&r, Err(InvokeError::LogLimitExceeded(m)) if m.contains("100 lines")),
        "{r:?}"
    );

    let r = host
        .invoke_step(flood(
            json!({"reports": 100, "messageBytes": 1000}),
            InvocationLimits {
                max_log_bytes: 10_000,
                ..limits()
            },
        ))
        .await;
    assert!(
        matches!(&r, Err(InvokeError::LogLimitExceeded(m)) if m.contains("10000 bytes")),
        "{r:?}"
    );

    // Under the limits: delivered, with the message cut to the line limit.
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let mut req = flood(json!({"reports": 1, "messageBytes": 100_000}), limits());
    req.observer = Some(Arc::new(move |e: PluginEvent| sink.lock().unwrap().push(e)));
    assert!(matches!(
        host.invoke_step(req).await?,
        StepOutcome::Success(_)
    ));
    let events = events.lock().unwrap();
    match events.as_slice() {
        [
            PluginEvent::Progress {
                message: Some(m), ..
            },
        ] => {
            assert!(m.len() < 17 * 1024, "{} bytes kept", m.len());
            assert!(m.ends_with("[truncated]"));
        }
        other => panic!("expected one progress event, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_artifacts_fail_the_invocation() -> anyhow::Result<()> {
    let (host, d) = host_with(&["hostile"]).await?;
    let few = InvocationLimits {
        max_artifacts: 10,
        ..limits()
    };
    let mut req = request(&d[0], "artifact-flood", json!({"count": 10}));
    req.limits = Some(few.clone());
    assert!(matches!(
        host.invoke_step(req).await?,
        StepOutcome::Success(_)
    ));
    let mut req = request(&d[0], "artifact-flood", json!({"count": 50_000}));
    req.limits = Some(few);
    let r = host.invoke_step(req).await;
    assert_eq!(r, Err(InvokeError::ArtifactCountExceeded { limit: 10 }));
    assert_eq!(
        r.unwrap_err().code().as_str(),
        "ARTIFACT_COUNT_EXCEEDED",
        "a machine-readable code"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_larger_than_the_memory_budget_fails_at_once() -> anyhow::Result<()> {
    let host = PluginHost::new(weft_host::HostConfig {
        memory_budget_bytes: 64 << 20,
        ..test_host_config()
    })?;
    let digest = host.install(&wasm("core")?).await?.plugin.digest.clone();
    let mut req = request(&digest, "noop", json!(1));
    req.limits = Some(InvocationLimits {
        max_memory_bytes: 128 << 20,
        ..limits()
    });
    let r = host.invoke_step(req).await;
    assert_eq!(
        r,
        Err(InvokeError::MemoryBudgetExceeded {
            limit_bytes: 128 << 20,
            budget_bytes: 64 << 20,
        })
    );
    // One that fits runs.
    let mut req = request(&digest, "noop", json!(1));
    req.limits = Some(InvocationLimits {
        max_memory_bytes: 32 << 20,
        ..limits()
    });
    assert_eq!(
        host.invoke_step(req).await,
        Ok(StepOutcome::Success(json!(1)))
    );
    Ok(())
}
