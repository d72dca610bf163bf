//! Installing plugins: good components, the compile cache, and every kind
//! of bad upload getting a specific error.

use std::sync::Arc;
use std::time::Duration;
use weft_host::{CompileSource, InstallError, digest_of};
use weft_model::{ManifestProblemCode, StepOutcome};
use weft_tests::{test_host, wasm};

#[tokio::test]
async fn core_plugin_installs_with_its_manifest() -> anyhow::Result<()> {
    let host = test_host()?;
    let bytes = wasm("core")?;
    let installed = host.install(&bytes).await?;
    let m = &installed.plugin.manifest;
    assert_eq!(m.name, "core");
    assert_eq!(installed.plugin.digest, digest_of(&bytes));
    assert!(m.roles.step && !m.roles.source && !m.roles.destination);
    let mut names: Vec<_> = m.step_types.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["approval", "fibo", "http", "noop", "sleep", "transform"]
    );
    let fibo = m.step_type("fibo").unwrap();
    assert_eq!(
        fibo.input_schema["properties"]["n"]["type"], "integer",
        "{}",
        fibo.input_schema
    );

    let again = host.install(&bytes).await?;
    assert_eq!(again.source, CompileSource::Memory);
    assert_eq!(host.plugins().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_second_host_loads_from_the_disk_cache_without_recompiling() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = || weft_host::HostConfig {
        cache_dir: Some(dir.path().to_owned()),
        max_concurrent_instances: 8,
        ..Default::default()
    };
    let bytes = wasm("core")?;
    let first = weft_host::PluginHost::new(config())?
        .install(&bytes)
        .await?;
    assert_eq!(first.source, CompileSource::Compiled);
    let second = weft_host::PluginHost::new(config())?
        .install(&bytes)
        .await?;
    assert_eq!(second.source, CompileSource::Cache);
    assert!(
        second.compile_time < first.compile_time,
        "cache load {:?} should beat compile {:?}",
        second.compile_time,
        first.compile_time
    );
    // A corrupt cache entry is ignored and replaced, not trusted. (Drop the
    // plugin first: its code is mapped from that file.)
    drop(second);
    for entry in std::fs::read_dir(dir.path())? {
        std::fs::write(entry?.path(), b"garbage")?;
    }
    let third = weft_host::PluginHost::new(config())?
        .install(&bytes)
        .await?;
    assert_eq!(third.source, CompileSource::Compiled);
    Ok(())
}

#[tokio::test]
async fn bytes_that_are_not_a_component_are_rejected() -> anyhow::Result<()> {
    let host = test_host()?;
    assert!(matches!(
        host.install(b"").await,
        Err(InstallError::NotWasm)
    ));
    assert!(matches!(
        host.install(b"hello, world, not wasm").await,
        Err(InstallError::NotWasm)
    ));
    let module = wat::parse_str("(module (func (export \"f\")))")?;
    assert!(matches!(
        host.install(&module).await,
        Err(InstallError::CoreModule)
    ));
    let mut truncated = wasm("core")?;
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        host.install(&truncated).await,
        Err(InstallError::Invalid(_))
    ));
    let empty_component = wat::parse_str("(component)")?;
    assert!(matches!(
        host.install(&empty_component).await,
        Err(InstallError::NotAPlugin { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn components_for_other_contracts_are_rejected() -> anyhow::Result<()> {
    let host = test_host()?;
    match host.install(&wasm("wrong-version")?).await {
        Err(InstallError::UnsupportedWitVersion { found, supported }) => {
            assert_eq!(found, "9.0.0");
            assert_eq!(supported, "0.2.0, 0.1.0");
        }
        other => panic!("expected UnsupportedWitVersion, got {other:?}"),
    }
    match host.install(&wasm("unknown-world")?).await {
        Err(InstallError::NotAPlugin { exports }) => {
            assert!(exports.contains("acme:thing/greet"), "{exports}")
        }
        other => panic!("expected NotAPlugin, got {other:?}"),
    }
    Ok(())
}

async fn manifest_problems(name: &str) -> anyhow::Result<Vec<(String, ManifestProblemCode)>> {
    match test_host()?.install(&wasm(name)?).await {
        Err(InstallError::InvalidManifest(problems)) => {
            Ok(problems.into_iter().map(|p| (p.pointer, p.code)).collect())
        }
        other => panic!("{name}: expected InvalidManifest, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_manifests_are_rejected_with_pointers() -> anyhow::Result<()> {
    let schema = manifest_problems("bad-schema").await?;
    assert!(
        schema.contains(&(
            "/stepTypes/0/inputSchema".into(),
            ManifestProblemCode::InvalidJsonSchema
        )),
        "{schema:?}"
    );
    let version = manifest_problems("bad-version").await?;
    assert!(
        version.contains(&("/version".into(), ManifestProblemCode::InvalidVersion)),
        "{version:?}"
    );
    let dup = manifest_problems("dup-steps").await?;
    assert!(
        dup.contains(&(
            "/stepTypes/1/name".into(),
            ManifestProblemCode::DuplicateStepType
        )),
        "{dup:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_standalone_example_plugin_installs_and_runs() -> anyhow::Result<()> {
    let (host, digests) = weft_tests::host_with(&["hello-plugin"]).await?;
    let m = &host.plugin(&digests[0]).unwrap().manifest;
    assert_eq!(m.name, "hello");
    let out = host
        .invoke_step(weft_tests::request(
            &digests[0],
            "greet",
            serde_json::json!({"name": "Ada"}),
        ))
        .await?;
    assert_eq!(
        out,
        weft_model::StepOutcome::Success(serde_json::json!({"greeting": "Hello, Ada!"}))
    );
    let bad = host
        .invoke_step(weft_tests::request(
            &digests[0],
            "greet",
            serde_json::json!({"name": ""}),
        ))
        .await?;
    assert!(
        matches!(bad, weft_model::StepOutcome::Failed(e) if e.kind == weft_model::PluginErrorKind::Config)
    );
    Ok(())
}

/// `examples/hello-plugin` exactly as it was built before 0.2.0 (committed
/// in `tests/components/prebuilt/`), and a fixture built with wit-bindgen
/// from the frozen 0.1.0 WIT: both load through the `since_v0_1` adapter
/// and run, logs and typed errors included.
#[tokio::test]
async fn plugins_built_against_0_1_0_install_and_run_through_the_adapter() -> anyhow::Result<()> {
    let host = Arc::new(weft_tests::test_host()?);
    let prebuilt = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("components/prebuilt/hello-plugin-0.1.0.wasm"),
    )?;
    let hello = host.install(&prebuilt).await?.plugin;
    assert_eq!(hello.contract, weft_host::ContractVersion::V0_1);
    let out = host
        .invoke_step(weft_tests::request(
            &hello.digest,
            "greet",
            serde_json::json!({"name": "Ada"}),
        ))
        .await?;
    assert_eq!(
        out,
        StepOutcome::Success(serde_json::json!({"greeting": "Hello, Ada!"}))
    );

    let legacy = host.install(&weft_tests::wasm("v0-1-step")?).await?.plugin;
    assert_eq!(legacy.contract, weft_host::ContractVersion::V0_1);
    let mut req = weft_tests::request(&legacy.digest, "echo", serde_json::json!({"x": 1}));
    let mut events = weft_tests::observe(&mut req);
    assert_eq!(
        host.invoke_step(req).await?,
        StepOutcome::Success(serde_json::json!({"x": 1}))
    );
    events
        .log_containing("echo from 0.1.0", Duration::from_secs(5))
        .await?;
    let failed = host
        .invoke_step(weft_tests::request(
            &legacy.digest,
            "fail",
            serde_json::json!({}),
        ))
        .await?;
    let StepOutcome::Failed(e) = failed else {
        anyhow::bail!("expected a failure, got {failed:?}");
    };
    assert_eq!(e.kind, weft_model::PluginErrorKind::Data);
    assert_eq!(e.details, Some(serde_json::json!({"attempt": 1})));

    let core = host.install(&weft_tests::wasm("core")?).await?.plugin;
    assert_eq!(core.contract, weft_host::ContractVersion::V0_2);
    Ok(())
}
