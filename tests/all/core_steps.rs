//! The first-party `core` plugin's step types, run through the real host.

use serde_json::json;
use std::time::{Duration, Instant};
use weft_host::InvokeError;
use weft_model::{CapabilityGrants, HostPattern, PluginErrorKind, StepOutcome};
use weft_tests::{host_with, observe, request, serve_http};

fn success(outcome: StepOutcome) -> serde_json::Value {
    match outcome {
        StepOutcome::Success(v) => v,
        other => panic!("expected success, got {other:?}"),
    }
}

fn failure(outcome: StepOutcome) -> weft_model::PluginError {
    match outcome {
        StepOutcome::Failed(e) => e,
        other => panic!("expected a plugin failure, got {other:?}"),
    }
}

#[tokio::test]
async fn noop_fibo_and_transform_compute() -> anyhow::Result<()> {
    let (host, d) = host_with(&["core"]).await?;
    let core = &d[0];
    let input = json!({"a": [1, 2, {"b": null}], "s": "x"});
    assert_eq!(
        success(
            host.invoke_step(request(core, "noop", input.clone()))
                .await?
        ),
        input
    );
    assert_eq!(
        success(
            host.invoke_step(request(core, "fibo", json!({"n": 10})))
                .await?
        ),
        json!({"value": 55})
    );
    assert_eq!(
        success(
            host.invoke_step(request(core, "fibo", json!({"n": 0})))
                .await?
        ),
        json!({"value": 0})
    );
    let t = host
        .invoke_step(request(core, "transform", json!({"expression": "data.items.map(i, i.price * 2).filter(p, p > 3)", "data": {"items": [{"price": 1}, {"price": 2}, {"price": 5}]}})))
        .await?;
    assert_eq!(success(t), json!({"result": [4, 10]}));
    let t = host
        .invoke_step(request(core, "transform", json!({"expression": "{'name': data.first + ' ' + data.last, 'adult': data.age >= 18}", "data": {"first": "Ada", "last": "Lovelace", "age": 36}})))
        .await?;
    assert_eq!(
        success(t),
        json!({"result": {"name": "Ada Lovelace", "adult": true}})
    );
    Ok(())
}

#[tokio::test]
async fn bad_input_is_a_config_error_not_a_crash() -> anyhow::Result<()> {
    let (host, d) = host_with(&["core"]).await?;
    let core = &d[0];
    let e = failure(
        host.invoke_step(request(core, "fibo", json!({"n": "ten"})))
            .await?,
    );
    assert_eq!(e.kind, PluginErrorKind::Config);
    assert!(!e.retryable);
    let e = failure(
        host.invoke_step(request(core, "fibo", json!({"n": 93})))
            .await?,
    );
    assert_eq!(e.kind, PluginErrorKind::Config);
    let e = failure(
        host.invoke_step(request(core, "transform", json!({"expression": "1 +* 2"})))
            .await?,
    );
    assert_eq!(e.kind, PluginErrorKind::Config, "{e:?}");
    let e = failure(
        host.invoke_step(request(
            core,
            "transform",
            json!({"expression": "data.missing.field", "data": {}}),
        ))
        .await?,
    );
    assert_eq!(e.kind, PluginErrorKind::Data, "{e:?}");
    match host.invoke_step(request(core, "nope", json!({}))).await {
        Err(InvokeError::UnknownStepType { step_type, .. }) => assert_eq!(step_type, "nope"),
        other => panic!("expected UnknownStepType, got {other:?}"),
    }
    let unknown = weft_model::PluginDigest::from_sha256([7; 32]);
    assert!(matches!(
        host.invoke_step(request(&unknown, "noop", json!({}))).await,
        Err(InvokeError::UnknownPlugin(_))
    ));
    Ok(())
}

#[tokio::test]
async fn approval_waits_for_input_then_returns_the_answer() -> anyhow::Result<()> {
    let (host, d) = host_with(&["core"]).await?;
    let core = &d[0];
    let asked = host
        .invoke_step(request(
            core,
            "approval",
            json!({"prompt": "Deploy?", "secretFields": ["otp"]}),
        ))
        .await?;
    let StepOutcome::AwaitingInput(req) = asked else {
        panic!("expected awaiting input, got {asked:?}")
    };
    assert_eq!(req.prompt, "Deploy?");
    assert_eq!(req.secret_fields, ["otp"]);
    assert!(
        req.schema["properties"]["approved"].is_object(),
        "{}",
        req.schema
    );
    let mut answered = request(core, "approval", json!({"prompt": "Deploy?"}));
    answered.answer = Some(json!({"approved": true, "comment": "ship it"}));
    answered.attempt = 2;
    assert_eq!(
        success(host.invoke_step(answered).await?),
        json!({"approved": true, "comment": "ship it"})
    );
    Ok(())
}

#[tokio::test]
async fn sleep_finishes_and_returns_early_when_cancelled() -> anyhow::Result<()> {
    let (host, d) = host_with(&["core"]).await?;
    let core = &d[0];
    let out = success(
        host.invoke_step(request(core, "sleep", json!({"ms": 30})))
            .await?,
    );
    assert_eq!(out["cancelled"], false);

    let mut req = request(core, "sleep", json!({"ms": 60_000}));
    let cancel = req.cancel.clone();
    let mut events = observe(&mut req);
    let task = tokio::spawn({
        let host = host.clone();
        async move { host.invoke_step(req).await }
    });
    // Cancel once the plugin is asleep, so it is the plugin that notices.
    events
        .log_containing("sleeping 60000 ms", Duration::from_secs(30))
        .await?;
    let started = Instant::now();
    cancel.cancel();
    let result = task.await?;
    assert!(matches!(result, Err(InvokeError::Cancelled)), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cancel took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn http_reaches_granted_hosts_only() -> anyhow::Result<()> {
    let (host, d) = host_with(&["core"]).await?;
    let core = &d[0];
    let port = serve_http("hello from loopback").await?;
    let url = format!("http://127.0.0.1:{port}/path?q=1");

    // Nothing granted yet: denied at the egress point.
    match host
        .invoke_step(request(core, "http", json!({"url": url})))
        .await
    {
        Err(InvokeError::CapabilityDenied(msg)) => {
            assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}")
        }
        other => panic!("expected CapabilityDenied, got {other:?}"),
    }

    // Granting a different port is still a denial.
    let other_port = CapabilityGrants {
        outbound_hosts: vec![HostPattern::parse(&format!(
            "127.0.0.1:{}",
            port.wrapping_add(1)
        ))?],
        ..Default::default()
    };
    host.set_grants(core, &other_port)?;
    assert!(matches!(
        host.invoke_step(request(core, "http", json!({"url": url})))
            .await,
        Err(InvokeError::CapabilityDenied(_))
    ));

    let grants = CapabilityGrants {
        outbound_hosts: vec![HostPattern::parse(&format!("127.0.0.1:{port}"))?],
        ..Default::default()
    };
    let effective = host.set_grants(core, &grants)?;
    assert_eq!(effective.outbound_hosts.len(), 1);
    let out = success(
        host.invoke_step(request(
            core,
            "http",
            json!({"url": url, "headers": {"x-req": "1"}}),
        ))
        .await?,
    );
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], "hello from loopback");
    assert_eq!(out["headers"]["x-test"], "yes");
    Ok(())
}
