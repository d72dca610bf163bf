//! Hostile plugins: each misbehaviour fails its own invocation with a
//! specific error while a well-behaved invocation on the same engine
//! succeeds, and the host stays healthy afterwards.

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_host::{InvokeError, PluginHost};
use weft_model::{FailureCode, InvocationLimits, PluginDigest, StepOutcome};
use weft_tests::{host_with, observe, request, tight_limits};

/// How long a plugin may take to start (instantiation included) on a
/// loaded machine before a test gives up waiting for its first log line.
const STARTED_WITHIN: Duration = Duration::from_secs(30);

async fn run(
    host: &Arc<PluginHost>,
    plugin: &PluginDigest,
    step: &str,
    input: serde_json::Value,
    limits: InvocationLimits,
) -> Result<StepOutcome, InvokeError> {
    let mut req = request(plugin, step, input);
    req.limits = Some(limits);
    host.invoke_step(req).await
}

/// Runs `fibo(25)` on the same host while `hostile` misbehaves, and
/// checks both results.
async fn alongside_a_good_invocation(
    host: &Arc<PluginHost>,
    core: &PluginDigest,
    hostile: impl Future<Output = Result<StepOutcome, InvokeError>>,
) -> Result<StepOutcome, InvokeError> {
    let good = {
        let host = host.clone();
        let core = core.clone();
        tokio::spawn(async move {
            host.invoke_step(request(&core, "fibo", json!({"n": 25})))
                .await
        })
    };
    let bad = hostile.await;
    let good = good.await.expect("good invocation task");
    assert_eq!(
        good,
        Ok(StepOutcome::Success(json!({"value": 75025}))),
        "the well-behaved invocation was disturbed"
    );
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_misbehaviour_fails_with_a_specific_error() -> anyhow::Result<()> {
    let (host, d) = host_with(&["core", "hostile"]).await?;
    let (core, hostile) = (&d[0], &d[1]);
    let t = Duration::from_millis(400);

    let started = Instant::now();
    let r = alongside_a_good_invocation(
        &host,
        core,
        run(&host, hostile, "spin", json!({}), tight_limits(t)),
    )
    .await;
    assert_eq!(r, Err(InvokeError::Timeout(t)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "timeout took {:?}",
        started.elapsed()
    );

    let cpu = InvocationLimits {
        cpu_time: Duration::from_millis(100),
        ..tight_limits(Duration::from_secs(30))
    };
    let r =
        alongside_a_good_invocation(&host, core, run(&host, hostile, "spin", json!({}), cpu)).await;
    assert_eq!(
        r,
        Err(InvokeError::CpuLimitExceeded(Duration::from_millis(100)))
    );

    let mem = InvocationLimits {
        max_memory_bytes: 32 << 20,
        ..tight_limits(Duration::from_secs(30))
    };
    let r =
        alongside_a_good_invocation(&host, core, run(&host, hostile, "membomb", json!({}), mem))
            .await;
    assert_eq!(
        r,
        Err(InvokeError::MemoryLimitExceeded {
            limit_bytes: 32 << 20
        })
    );

    let r = alongside_a_good_invocation(
        &host,
        core,
        run(
            &host,
            hostile,
            "recurse",
            json!({}),
            tight_limits(Duration::from_secs(30)),
        ),
    )
    .await;
    assert_eq!(r, Err(InvokeError::StackOverflow));

    let r = alongside_a_good_invocation(
        &host,
        core,
        run(
            &host,
            hostile,
            "panic",
            json!({}),
            tight_limits(Duration::from_secs(30)),
        ),
    )
    .await;
    match r {
        Err(InvokeError::Trap { message }) => assert!(
            message.contains("hostile plugin panicked on purpose"),
            "{message}"
        ),
        other => panic!("expected a trap carrying the panic message, got {other:?}"),
    }

    let out = InvocationLimits {
        max_output_bytes: 1 << 20,
        ..tight_limits(Duration::from_secs(30))
    };
    let r = alongside_a_good_invocation(
        &host,
        core,
        run(&host, hostile, "big-output", json!({"bytes": 2 << 20}), out),
    )
    .await;
    assert!(
        matches!(r, Err(InvokeError::OutputTooLarge { limit, size }) if limit == 1 << 20 && size > 2 << 20),
        "{r:?}"
    );

    let logs = InvocationLimits {
        max_log_lines: 1_000,
        ..tight_limits(Duration::from_secs(30))
    };
    let r = alongside_a_good_invocation(
        &host,
        core,
        run(
            &host,
            hostile,
            "log-flood",
            json!({"lines": 1_000_000}),
            logs,
        ),
    )
    .await;
    assert!(
        matches!(&r, Err(InvokeError::LogLimitExceeded(m)) if m.contains("1000 lines")),
        "{r:?}"
    );

    let r = alongside_a_good_invocation(
        &host,
        core,
        run(
            &host,
            hostile,
            "http-get",
            json!({"url": "http://192.0.2.1/steal"}),
            tight_limits(Duration::from_secs(30)),
        ),
    )
    .await;
    assert!(
        matches!(&r, Err(InvokeError::CapabilityDenied(m)) if m.contains("192.0.2.1:80")),
        "{r:?}"
    );

    // No directory is preopened, so there is nothing to read.
    let r = alongside_a_good_invocation(
        &host,
        core,
        run(
            &host,
            hostile,
            "read-file",
            json!({"path": "/etc/passwd"}),
            tight_limits(Duration::from_secs(30)),
        ),
    )
    .await;
    match r {
        Ok(StepOutcome::Failed(e)) => {
            assert!(!e.message.contains("root:"), "file content leaked: {e:?}")
        }
        other => panic!("expected the read to fail inside the plugin, got {other:?}"),
    }

    // Still healthy: a normal invocation works after all of that.
    assert_eq!(
        host.invoke_step(request(core, "fibo", json!({"n": 12})))
            .await,
        Ok(StepOutcome::Success(json!({"value": 144})))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_ignores_cancellation_is_stopped_after_the_grace_period() -> anyhow::Result<()>
{
    let (host, d) = host_with(&["hostile"]).await?;
    let mut req = request(&d[0], "ignore-cancel", json!({}));
    req.limits = Some(InvocationLimits {
        cancel_grace: Duration::from_millis(100),
        ..tight_limits(Duration::from_secs(60))
    });
    let cancel = req.cancel.clone();
    let mut events = observe(&mut req);
    let task = tokio::spawn({
        let host = host.clone();
        async move { host.invoke_step(req).await }
    });
    // Cancel only once the plugin runs, so it is the grace period that stops it.
    events.log_containing("started", STARTED_WITHIN).await?;
    let cancelled_at = Instant::now();
    cancel.cancel();
    assert_eq!(task.await?, Err(InvokeError::Cancelled));
    let took = cancelled_at.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(3),
        "stopped after {took:?}"
    );

    let mut spin = request(&d[0], "spin", json!({}));
    spin.limits = Some(InvocationLimits {
        cancel_grace: Duration::ZERO,
        ..tight_limits(Duration::from_secs(60))
    });
    let cancel = spin.cancel.clone();
    let mut events = observe(&mut spin);
    let task = tokio::spawn({
        let host = host.clone();
        async move { host.invoke_step(spin).await }
    });
    events.log_containing("started", STARTED_WITHIN).await?;
    cancel.cancel();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(3), task).await??,
        Err(InvokeError::Cancelled)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_hostile_invocations_at_once_leave_the_host_healthy() -> anyhow::Result<()> {
    let (host, d) = host_with(&["core", "hostile"]).await?;
    let (core, hostile) = (d[0].clone(), d[1].clone());
    let mut tasks = Vec::new();
    for i in 0..24 {
        let host = host.clone();
        let (core, hostile) = (core.clone(), hostile.clone());
        tasks.push(tokio::spawn(async move {
            let limits = InvocationLimits {
                max_memory_bytes: 16 << 20,
                ..tight_limits(Duration::from_millis(300))
            };
            match i % 4 {
                0 => run(&host, &hostile, "spin", json!({}), limits)
                    .await
                    .err()
                    .map(|e| e.code()),
                1 => run(&host, &hostile, "membomb", json!({}), limits)
                    .await
                    .err()
                    .map(|e| e.code()),
                2 => run(&host, &hostile, "panic", json!({}), limits)
                    .await
                    .err()
                    .map(|e| e.code()),
                _ => host
                    .invoke_step(request(&core, "fibo", json!({"n": 20})))
                    .await
                    .err()
                    .map(|e| e.code()),
            }
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await?);
    }
    for (i, code) in codes.iter().enumerate() {
        let expected = match i % 4 {
            0 => Some(FailureCode::Timeout),
            1 => Some(FailureCode::MemoryLimitExceeded),
            2 => Some(FailureCode::Trap),
            _ => None,
        };
        assert_eq!(*code, expected, "invocation {i}");
    }
    assert_eq!(
        host.invoke_step(request(&core, "noop", json!(1))).await,
        Ok(StepOutcome::Success(json!(1)))
    );
    Ok(())
}
