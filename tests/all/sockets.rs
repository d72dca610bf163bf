//! `wasi:sockets` under the outbound grants: TCP connects to granted
//! destinations work, everything else is denied and recorded, and DNS is
//! limited to granted names.

use serde_json::json;
use weft_host::InvokeError;
use weft_model::{CapabilityGrants, HostPattern, PluginDigest, StepOutcome};
use weft_tests::{host_with, request, serve_tcp_echo};

fn grant(hosts: &[String]) -> CapabilityGrants {
    CapabilityGrants {
        outbound_hosts: hosts
            .iter()
            .map(|h| HostPattern::parse(h).unwrap())
            .collect(),
        ..Default::default()
    }
}

fn echo(p: &PluginDigest, address: &str) -> weft_host::InvokeStepRequest {
    request(
        p,
        "tcp-echo",
        json!({"address": address, "message": "ping"}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_tcp_connect_works_and_an_ungranted_one_is_denied() -> anyhow::Result<()> {
    let (host, d) = host_with(&["hostile"]).await?;
    let p = &d[0];
    let granted = serve_tcp_echo().await?;
    let other = serve_tcp_echo().await?;
    host.set_grants(p, &grant(&[format!("127.0.0.1:{granted}")]))?;

    assert_eq!(
        host.invoke_step(echo(p, &format!("127.0.0.1:{granted}")))
            .await?,
        StepOutcome::Success(json!({"reply": "echo:ping"}))
    );
    let r = host
        .invoke_step(echo(p, &format!("127.0.0.1:{other}")))
        .await;
    assert!(
        matches!(&r, Err(InvokeError::CapabilityDenied(m))
            if m.contains(&format!("socket connection to 127.0.0.1:{other} is not granted"))),
        "{r:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_is_limited_to_granted_names() -> anyhow::Result<()> {
    let (host, d) = host_with(&["hostile"]).await?;
    let p = &d[0];
    host.set_grants(p, &grant(&["api.example.com".to_owned()]))?;
    let r = host
        .invoke_step(request(
            p,
            "resolve",
            json!({"name": "exfil.attacker.test"}),
        ))
        .await;
    assert!(
        matches!(&r, Err(InvokeError::CapabilityDenied(m))
            if m.contains("DNS lookup of \"exfil.attacker.test\" is not granted")),
        "{r:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_name_resolves_and_its_addresses_connect() -> anyhow::Result<()> {
    let (host, d) = host_with(&["hostile"]).await?;
    let p = &d[0];
    let port = serve_tcp_echo().await?;
    host.set_grants(p, &grant(&[format!("localhost:{port}")]))?;

    match host
        .invoke_step(request(p, "resolve", json!({"name": "localhost"})))
        .await?
    {
        StepOutcome::Success(v) => assert!(
            v["addresses"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("127.0.0.1"))),
            "{v}"
        ),
        other => panic!("expected localhost to resolve, got {other:?}"),
    }
    assert_eq!(
        host.invoke_step(echo(p, &format!("localhost:{port}")))
            .await?,
        StepOutcome::Success(json!({"reply": "echo:ping"}))
    );
    // The resolved address is allowed on the granted port only; the IP is
    // not granted by itself either.
    let elsewhere = serve_tcp_echo().await?;
    let r = host
        .invoke_step(echo(p, &format!("localhost:{elsewhere}")))
        .await;
    assert!(
        matches!(&r, Err(InvokeError::CapabilityDenied(m)) if m.contains(&format!(":{elsewhere}"))),
        "{r:?}"
    );
    let r = host
        .invoke_step(echo(p, &format!("127.0.0.1:{port}")))
        .await;
    assert!(
        matches!(&r, Err(InvokeError::CapabilityDenied(_))),
        "a fresh invocation has resolved nothing: {r:?}"
    );
    Ok(())
}
