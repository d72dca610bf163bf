//! The workflow engine end to end: real SurrealDB (mem://), real host,
//! real compiled plugins.

use serde_json::{Value, json};
use std::time::Duration;
use weft_engine::{Engine, EngineError, PageRequest, StartRunRequest};
use weft_model::template::TemplateProblemCode;
use weft_model::{EventData, EventKind, LogSource, RunId, RunStatus, StepStatus};
use weft_tests::engine_with;
use weft_tests::{admin, key};

const WAIT: Duration = Duration::from_secs(30);

async fn start(engine: &Engine, template: &Value, inputs: Value) -> anyhow::Result<RunId> {
    let name = template["name"].as_str().unwrap_or_default().to_owned();
    if engine.template(admin(), &name).await.is_err() {
        engine.create_template(admin(), template).await?;
    }
    Ok(engine
        .start_run(
            admin(),
            StartRunRequest {
                template: name,
                inputs,
                idempotency_key: None,
            },
        )
        .await?
        .run_id)
}

async fn step_status(engine: &Engine, run: &RunId, key: &str) -> anyhow::Result<StepStatus> {
    Ok(engine
        .steps(admin(), run)
        .await?
        .into_iter()
        .find(|s| s.key == key)
        .map(|s| s.status)
        .unwrap_or(StepStatus::Pending))
}

#[tokio::test]
async fn a_dag_with_expressions_succeeds() -> anyhow::Result<()> {
    let engine = engine_with(&["core"]).await?;
    let t = json!({
        "name": "hello",
        "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        "steps": [
            {"id": "fib", "uses": "core/fibo@^0.1", "with": {"n": "${{ inputs.n }}"}},
            {"id": "double", "uses": "core/transform", "needs": ["fib"],
             "with": {"expression": "data * 2", "data": "${{ steps.fib.output.value }}"}},
            {"id": "say", "uses": "core/noop", "needs": ["double"], "with": {"text": "fib*2 = ${{ steps.double.output.result }}"}},
            {"id": "never", "uses": "core/noop", "if": "inputs.n > 100"}
        ]
    });
    let run = start(&engine, &t, json!({"n": 10})).await?;
    let done = engine.wait_for(admin(), &run, &[], WAIT).await?;
    assert_eq!(done.status, RunStatus::Success, "{done:?}");
    let out = done.outputs.unwrap_or_default();
    assert_eq!(out["fib"], json!({"value": 55}));
    assert_eq!(out["double"], json!({"result": 110}));
    assert_eq!(out["say"], json!({"text": "fib*2 = 110"}));
    assert_eq!(
        step_status(&engine, &run, "never").await?,
        StepStatus::Skipped
    );
    assert_eq!(done.progress.completed, 4);
    let events = engine.run_events(admin(), &run, 0, 100).await?;
    weft_tests::assert_dense_sequence(&events, "event sequence is dense");
    assert!(events.iter().any(|e| e.kind == EventKind::RunSucceeded));

    // Bad inputs are refused before anything runs.
    match engine
        .start_run(
            admin(),
            StartRunRequest {
                template: "hello".into(),
                inputs: json!({"n": "x"}),
                idempotency_key: None,
            },
        )
        .await
    {
        Err(EngineError::InvalidInputs(p)) => assert_eq!(p[0].pointer, "/inputs/n"),
        other => panic!("expected InvalidInputs, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn fan_out_collects_results_in_order() -> anyhow::Result<()> {
    let engine = engine_with(&["core"]).await?;
    let t = json!({
        "name": "fan", "parallelLimit": 3,
        "steps": [{"id": "fib", "uses": "core/fibo", "forEach": "[5, 1, 10, 2, 7]", "with": {"n": "${{ item }}"}}]
    });
    let run = start(&engine, &t, json!({})).await?;
    let done = engine.wait_for(admin(), &run, &[], WAIT).await?;
    assert_eq!(done.status, RunStatus::Success, "{done:?}");
    let values: Vec<Value> = done.outputs.unwrap_or_default()["fib"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|o| o["value"].clone())
        .collect();
    assert_eq!(values, [json!(5), json!(1), json!(55), json!(1), json!(13)]);
    Ok(())
}

#[tokio::test]
async fn approval_waits_validates_the_answer_and_resumes() -> anyhow::Result<()> {
    let engine = engine_with(&["core"]).await?;
    let t = json!({
        "name": "approve",
        "steps": [
            {"id": "ask", "uses": "core/approval", "with": {"prompt": "Ship it?", "secretFields": ["otp"],
             "schema": {"type": "object", "properties": {"approved": {"type": "boolean"}, "otp": {"type": "string"}}, "required": ["approved"]}}},
            {"id": "after", "uses": "core/noop", "needs": ["ask"], "with": {"approved": "${{ steps.ask.output.approved }}"}}
        ]
    });
    let run = start(&engine, &t, json!({})).await?;
    engine
        .wait_for(admin(), &run, &[RunStatus::AwaitingInput], WAIT)
        .await?;
    assert!(matches!(
        engine
            .answer(admin(), &run, &key("ask"), json!({"approved": "yes"}))
            .await,
        Err(EngineError::InvalidAnswer(_))
    ));
    assert!(matches!(
        engine.answer(admin(), &run, &key("after"), json!({})).await,
        Err(EngineError::Conflict(_))
    ));
    engine
        .answer(
            admin(),
            &run,
            &key("ask"),
            json!({"approved": true, "otp": "123456"}),
        )
        .await?;
    let done = engine.wait_for(admin(), &run, &[], WAIT).await?;
    assert_eq!(done.status, RunStatus::Success, "{done:?}");
    assert_eq!(
        done.outputs.unwrap_or_default()["after"],
        json!({"approved": true})
    );
    // The secret field reached the plugin (it echoes the answer) but was never persisted as an answer.
    let ask = engine
        .steps(admin(), &run)
        .await?
        .into_iter()
        .find(|s| s.key == "ask")
        .expect("ask step");
    assert_eq!(ask.answer, Some(json!({"approved": true})));
    assert!(matches!(
        engine
            .answer(admin(), &run, &key("ask"), json!({"approved": true}))
            .await,
        Err(EngineError::Conflict(_))
    ));
    Ok(())
}

#[tokio::test]
async fn retries_then_compensates_in_reverse_order() -> anyhow::Result<()> {
    let engine = engine_with(&["core", "hostile"]).await?;
    let t = json!({
        "name": "provision",
        "steps": [
            {"id": "vpc", "uses": "core/noop", "with": {"made": "vpc"}, "onFailure": {"uses": "core/noop", "with": {"undo": "vpc"}}},
            {"id": "db", "uses": "core/noop", "needs": ["vpc"], "with": {"made": "db"}, "onFailure": {"uses": "core/noop", "with": {"undo": "${{ steps.db.output.made }}"}}},
            {"id": "app", "uses": "hostile/fail", "needs": ["db"], "with": {"kind": "transient", "message": "boom"},
             "retry": {"maxAttempts": 3, "backoff": {"kind": "fixed", "initial": "10ms", "max": "10ms", "jitter": 0}}}
        ]
    });
    let run = start(&engine, &t, json!({})).await?;
    let done = engine.wait_for(admin(), &run, &[], WAIT).await?;
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(
        done.error.as_ref().and_then(|e| e.step.clone()),
        Some("app".to_owned())
    );
    let app = engine
        .steps(admin(), &run)
        .await?
        .into_iter()
        .find(|s| s.key == "app")
        .expect("app");
    assert_eq!(app.attempt, 3);
    let attempts = engine
        .list_step_attempts(admin(), &run, &key("app"), PageRequest::new(1, 100))
        .await?;
    assert_eq!(
        attempts
            .items
            .iter()
            .map(|a| (a.attempt, a.status))
            .collect::<Vec<_>>(),
        vec![
            (1, StepStatus::Failed),
            (2, StepStatus::Failed),
            (3, StepStatus::Failed)
        ],
        "{attempts:?}"
    );
    assert_eq!(app.last_attempt.map(|a| a.attempt), Some(3));
    let events = engine.run_events(admin(), &run, 0, 200).await?;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::StepRetrying)
            .count(),
        2
    );
    let compensated: Vec<(String, Value)> = events
        .iter()
        .filter(|e| e.kind == EventKind::StepCompensated)
        .map(|e| {
            (
                e.step.clone().map(String::from).unwrap_or_default(),
                match e.data.clone() {
                    Some(EventData::Output(v)) => v,
                    other => json!(format!("{other:?}")),
                },
            )
        })
        .collect();
    assert_eq!(
        compensated,
        [
            ("db".to_owned(), json!({"undo": "db"})),
            ("vpc".to_owned(), json!({"undo": "vpc"}))
        ]
    );
    let logs = engine.step_logs(admin(), &run, &key("app"), 0, 100).await?;
    assert!(
        logs.iter()
            .any(|l| l.source == LogSource::Engine && l.message.contains("retrying")),
        "{logs:?}"
    );
    Ok(())
}

#[tokio::test]
async fn cancel_stops_in_flight_plugins_and_pause_holds_new_steps() -> anyhow::Result<()> {
    let engine = engine_with(&["core"]).await?;
    let t = json!({"name": "slow", "steps": [
        {"id": "nap", "uses": "core/sleep", "with": {"ms": 60000}},
        {"id": "after", "uses": "core/noop", "needs": ["nap"]}
    ]});
    let run = start(&engine, &t, json!({})).await?;
    engine
        .wait_for(admin(), &run, &[RunStatus::Running], WAIT)
        .await?;
    let started = std::time::Instant::now();
    engine.cancel_run(admin(), &run).await?;
    let done = engine.wait_for(admin(), &run, &[], WAIT).await?;
    assert_eq!(done.status, RunStatus::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cancel took {:?}",
        started.elapsed()
    );
    assert_eq!(
        step_status(&engine, &run, "nap").await?,
        StepStatus::Cancelled
    );
    assert_eq!(
        step_status(&engine, &run, "after").await?,
        StepStatus::Cancelled
    );
    assert!(matches!(
        engine.cancel_run(admin(), &run).await,
        Err(EngineError::Conflict(_))
    ));

    let t = json!({"name": "two", "steps": [
        {"id": "a", "uses": "core/sleep", "with": {"ms": 200}},
        {"id": "b", "uses": "core/noop", "needs": ["a"]}
    ]});
    let run = start(&engine, &t, json!({})).await?;
    engine.pause_run(admin(), &run).await?;
    assert!(matches!(
        engine.pause_run(admin(), &run).await,
        Err(EngineError::Conflict(_))
    ));
    // `a` finishes while paused, but `b` must not start.
    let mut rx = engine.subscribe(admin(), &run)?;
    let deadline = tokio::time::Instant::now() + WAIT;
    while step_status(&engine, &run, "a").await? != StepStatus::Success {
        tokio::time::timeout_at(deadline, rx.recv()).await??;
    }
    assert_eq!(engine.run(admin(), &run).await?.status, RunStatus::Paused);
    assert_eq!(step_status(&engine, &run, "b").await?, StepStatus::Pending);
    engine.resume_run(admin(), &run).await?;
    assert_eq!(
        engine.wait_for(admin(), &run, &[], WAIT).await?.status,
        RunStatus::Success
    );
    Ok(())
}

#[tokio::test]
async fn progress_of_a_running_run_is_current() -> anyhow::Result<()> {
    let (engine, store) =
        weft_tests::engine_and_store("mem://", &["core"], Default::default()).await?;
    let t = json!({"name": "progress", "steps": [
        {"id": "a", "uses": "core/noop"},
        {"id": "b", "uses": "core/sleep", "needs": ["a"], "with": {"ms": 60000}}
    ]});
    let run = start(&engine, &t, json!({})).await?;
    let mut rx = engine.subscribe(admin(), &run)?;
    let deadline = tokio::time::Instant::now() + WAIT;
    while step_status(&engine, &run, "b").await? != StepStatus::Running {
        tokio::time::timeout_at(deadline, rx.recv()).await??;
    }
    let live = engine.run(admin(), &run).await?;
    assert_eq!(live.status, RunStatus::Running);
    assert_eq!(
        (live.progress.completed, live.progress.total),
        (1, 2),
        "{live:?}"
    );
    assert_eq!(live.progress.running, ["b"]);
    // The stored record was written when the run started and not for
    // the step transition since: readers get progress from the engine.
    let stored = store.get_run(&run).await?;
    assert_eq!(stored.progress.completed, 0, "{stored:?}");
    let listed = engine
        .list_runs(
            admin(),
            &weft_store::RunFilter {
                template_id: Some(live.template_id.clone()),
                page: 1,
                page_size: 10,
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(listed.runs[0].progress, live.progress);

    engine.cancel_run(admin(), &run).await?;
    let done = engine.wait_for(admin(), &run, &[], WAIT).await?;
    assert_eq!(done.status, RunStatus::Cancelled);
    assert_eq!(
        store.get_run(&run).await?.progress,
        done.progress,
        "a finished run's record holds its final progress"
    );
    Ok(())
}

#[tokio::test]
async fn idempotency_keys_and_validation_problems() -> anyhow::Result<()> {
    let engine = engine_with(&["core"]).await?;
    let t = json!({"name": "idem", "steps": [{"id": "a", "uses": "core/noop"}]});
    engine.create_template(admin(), &t).await?;
    let req = || StartRunRequest {
        template: "idem".into(),
        inputs: json!({}),
        idempotency_key: Some("k-1".into()),
    };
    let first = engine.start_run(admin(), req()).await?;
    let second = engine.start_run(admin(), req()).await?;
    assert_eq!(first.run_id, second.run_id);

    let bad = json!({"name": "bad", "schedule": {"cron": "not a cron"}, "steps": [
        {"id": "a", "uses": "core/nope"},
        {"id": "b", "uses": "core/fibo@^9", "needs": ["c"]},
        {"id": "c", "uses": "core/fibo", "needs": ["b"], "with": {"n": "ten"}},
        {"id": "d", "uses": "core/noop", "with": {"x": "${{ steps.a.output }}"}},
        {"id": "d", "uses": "missing/thing"}
    ]});
    let Err(EngineError::InvalidTemplate(problems)) = engine.create_template(admin(), &bad).await
    else {
        panic!("expected problems")
    };
    let codes: Vec<TemplateProblemCode> = problems.iter().map(|p| p.code).collect();
    for code in [
        TemplateProblemCode::InvalidCron,
        TemplateProblemCode::UnknownStepType,
        TemplateProblemCode::UnsatisfiableVersion,
        TemplateProblemCode::Cycle,
        TemplateProblemCode::InputSchemaMismatch,
        TemplateProblemCode::NotUpstream,
        TemplateProblemCode::DuplicateStepId,
    ] {
        assert!(codes.contains(&code), "missing {code:?} in {problems:#?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_schedules_fire_once_across_two_nodes() -> anyhow::Result<()> {
    let store = weft_store::Store::connect("mem://").await?;
    let node = |store: weft_store::Store| async move {
        Engine::start(
            weft_engine::EngineConfig::default(),
            std::sync::Arc::new(weft_tests::test_host()?),
            store,
        )
        .await
        .map_err(anyhow::Error::from)
    };
    let a = node(store.clone()).await?;
    let b = node(store.clone()).await?;
    a.install_plugin(admin(), &weft_tests::wasm("core")?, true)
        .await?;
    b.install_plugin(admin(), &weft_tests::wasm("core")?, true)
        .await?;
    let t = a
        .create_template(
            admin(),
            &json!({"name": "tick", "schedule": {"cron": "* * * * * *", "timezone": "Europe/Paris"},
        "steps": [{"id": "a", "uses": "core/noop"}]}),
        )
        .await?;
    let filter = || weft_store::RunFilter {
        template_id: Some(t.template_id.clone()),
        page: 1,
        page_size: 100,
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let runs = loop {
        let page = store.list_runs(&filter()).await?;
        if page.total >= 3 {
            break page.runs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} scheduled runs after 20 s",
            page.total
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut keys: Vec<String> = runs
        .iter()
        .filter_map(|r| r.idempotency_key.clone())
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "a firing started more than one run");
    assert!(keys.iter().all(|k| k.starts_with("schedule:")));
    Ok(())
}

/// The engine's gate: each service checks the caller's role against the
/// permission its operation needs, whoever calls it (API, scheduler, CLI).
#[tokio::test]
async fn the_gate_refuses_what_a_role_does_not_grant() -> anyhow::Result<()> {
    use weft_engine::Operation;
    use weft_model::{Permission, Principal, PrincipalKind, Role};
    let engine = engine_with(&["core"]).await?;
    let as_role = |role| Principal {
        name: format!("{role:?}").to_lowercase(),
        kind: PrincipalKind::System,
        role,
    };
    let (viewer, operator) = (as_role(Role::Viewer), as_role(Role::Operator));
    let t = json!({"name": "gate", "steps": [
        {"id": "a", "uses": "core/sleep", "with": {"ms": 60000}}
    ]});
    let refused = |r: Result<_, EngineError>, op: Operation, needed: Permission| match r {
        Err(EngineError::Forbidden {
            operation,
            needed: n,
        }) => {
            assert_eq!((operation, n), (op, needed));
        }
        other => panic!("{op:?} was not refused: {:?}", other.map(|_| ())),
    };
    refused(
        engine.create_template(&viewer, &t).await.map(|_| ()),
        Operation::ManageTemplates,
        Permission::Operate,
    );
    engine.create_template(&operator, &t).await?;
    let gate_run = || StartRunRequest {
        template: "gate".into(),
        inputs: json!({}),
        idempotency_key: None,
    };
    refused(
        engine.start_run(&viewer, gate_run()).await.map(|_| ()),
        Operation::StartRun,
        Permission::Operate,
    );
    let run = engine.start_run(&operator, gate_run()).await?.run_id;
    // A viewer reads what an operator started, but cannot stop it.
    let status = engine.run(&viewer, &run).await?.status;
    assert!(
        matches!(status, RunStatus::Pending | RunStatus::Running),
        "{status:?}"
    );
    refused(
        engine.cancel_run(&viewer, &run).await,
        Operation::ControlRun,
        Permission::Operate,
    );
    refused(
        engine
            .install_plugin(&operator, b"\0asm", true)
            .await
            .map(|_| ()),
        Operation::InstallPlugin,
        Permission::AdministerInstance,
    );
    engine.cancel_run(&operator, &run).await?;
    let done = engine.wait_for(&viewer, &run, &[], WAIT).await?;
    assert_eq!(done.status, RunStatus::Cancelled);
    // The event names who cancelled.
    let events = engine.run_events(&viewer, &run, 0, 100).await?;
    assert!(
        events.iter().any(|e| e.message.contains("by operator")),
        "{events:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_update_against_a_stale_revision_is_refused_with_the_current_one() -> anyhow::Result<()>
{
    let engine = engine_with(&["core"]).await?;
    let t = json!({"name": "rev", "steps": [{"id": "a", "uses": "core/noop"}]});
    let created = engine.create_template(admin(), &t).await?;
    assert_eq!(created.revision, 1);
    let second = engine
        .update_template(admin(), &created.template_id, &t, 1)
        .await?;
    assert_eq!(second.revision, 2);
    // A writer that read revision 1 before the update above.
    match engine
        .update_template(admin(), &created.template_id, &t, 1)
        .await
    {
        Err(EngineError::RevisionMismatch { expected, current }) => {
            assert_eq!((expected, current), (1, 2));
        }
        other => panic!("expected a revision mismatch, got {other:?}"),
    }
    assert_eq!(engine.template(admin(), "rev").await?.revision, 2);
    Ok(())
}
