//! Capabilities granted per plugin (env, secrets, directories) and the
//! events a plugin reports while it runs.

use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use weft_host::PluginEvent;
use weft_model::{CapabilityGrants, DirectoryGrant, StepOutcome};
use weft_tests::{host_with, request};

fn value(outcome: StepOutcome) -> serde_json::Value {
    match outcome {
        StepOutcome::Success(v) => v["value"].clone(),
        other => panic!("expected success, got {other:?}"),
    }
}

#[tokio::test]
async fn env_and_secrets_need_a_request_and_a_grant() -> anyhow::Result<()> {
    // SAFETY: no other thread of this test binary reads or writes these variables.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("WEFT_TEST_ALLOWED", "visible");
        std::env::set_var("WEFT_TEST_NOT_REQUESTED", "hidden");
    }
    let (host, d) = host_with(&["hostile"]).await?;
    let p = &d[0];
    let secrets = Arc::new(HashMap::from([
        ("token".to_owned(), "s3cr3t".to_owned()),
        ("other".to_owned(), "x".to_owned()),
    ]));
    let secret = |name: &str| {
        let mut r = request(p, "secret", json!({"name": name}));
        r.secrets = secrets.clone();
        r
    };

    assert_eq!(
        value(
            host.invoke_step(request(p, "env", json!({"name": "WEFT_TEST_ALLOWED"})))
                .await?
        ),
        json!(null)
    );
    assert_eq!(value(host.invoke_step(secret("token")).await?), json!(null));

    host.set_grants(
        p,
        &CapabilityGrants {
            env: vec!["WEFT_TEST_ALLOWED".into(), "WEFT_TEST_NOT_REQUESTED".into()],
            secrets: vec!["token".into(), "other".into()],
            ..Default::default()
        },
    )?;
    assert_eq!(
        value(
            host.invoke_step(request(p, "env", json!({"name": "WEFT_TEST_ALLOWED"})))
                .await?
        ),
        json!("visible")
    );
    assert_eq!(
        value(
            host.invoke_step(request(
                p,
                "env",
                json!({"name": "WEFT_TEST_NOT_REQUESTED"})
            ))
            .await?
        ),
        json!(null)
    );
    assert_eq!(
        value(host.invoke_step(secret("token")).await?),
        json!("s3cr3t")
    );
    assert_eq!(
        value(host.invoke_step(secret("other")).await?),
        json!(null),
        "granted but never requested"
    );
    Ok(())
}

#[tokio::test]
async fn granted_directories_are_readable_and_nothing_outside_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("hello.txt"), "inside the grant")?;
    let (host, d) = host_with(&["hostile"]).await?;
    let p = &d[0];
    host.set_grants(
        p,
        &CapabilityGrants {
            directories: vec![DirectoryGrant {
                guest_path: "/data".into(),
                host_path: dir.path().to_owned(),
                read_only: true,
            }],
            ..Default::default()
        },
    )?;
    let read = |path: &str| request(p, "read-file", json!({"path": path}));
    match host.invoke_step(read("/data/hello.txt")).await? {
        StepOutcome::Success(v) => assert_eq!(v["content"], "inside the grant"),
        other => panic!("expected the granted file, got {other:?}"),
    }
    for escape in [
        "/data/../etc/passwd",
        "/etc/passwd",
        "/data/../../../../etc/hostname",
    ] {
        match host.invoke_step(read(escape)).await? {
            StepOutcome::Failed(e) => assert!(!e.message.contains("root:"), "{escape}: {e:?}"),
            other => panic!("{escape}: expected a failure, got {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn logs_progress_and_artifacts_reach_the_observer_in_order() -> anyhow::Result<()> {
    let (host, d) = host_with(&["hostile"]).await?;
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let mut req = request(
        &d[0],
        "artifact",
        json!({"name": "report.txt", "text": "42 rows"}),
    );
    req.observer = Some(Arc::new(move |e: PluginEvent| sink.lock().unwrap().push(e)));
    assert!(matches!(
        host.invoke_step(req).await?,
        StepOutcome::Success(_)
    ));
    let events = events.lock().unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e {
            PluginEvent::Artifact {
                name,
                media_type,
                data,
                ..
            } => format!(
                "artifact {name} {media_type} {}",
                String::from_utf8_lossy(data)
            ),
            PluginEvent::Progress { fraction, .. } => format!("progress {fraction}"),
            PluginEvent::Log { message, .. } => format!("log {message}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "artifact report.txt text/plain 42 rows",
            "progress 0.5",
            "progress 1",
            "log artifact emitted"
        ]
    );
    Ok(())
}
