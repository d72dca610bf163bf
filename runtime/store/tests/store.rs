//! The store against a real embedded SurrealDB (`mem://` and `surrealkv://`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use serde_json::json;
use weft_model::{
    ArtifactInfo, LogLine, PluginDigest, RunEvent, RunStep, StepAttempt, WorkflowRun,
};
use weft_model::{EventKind, Failure, FailureCode, LogLevel, LogSource, RunStatus, StepStatus};
use weft_store::{
    CreateRunOutcome, NextSequences, RunFilter, StepAttemptRecord, Store, StoreError, Transition,
};

fn digest(byte: u8) -> PluginDigest {
    PluginDigest::from_sha256([byte; 32])
}

fn run(id: &str, key: Option<&str>, created: i64) -> WorkflowRun {
    WorkflowRun {
        run_id: id.parse().unwrap(),
        template_id: "t1".parse().unwrap(),
        template_name: "hello".into(),
        revision: 1,
        status: RunStatus::Pending,
        inputs: json!({"n": 1}),
        outputs: None,
        error: None,
        pinned_plugins: Default::default(),
        idempotency_key: key.map(str::to_owned),
        progress: Default::default(),
        created_at: created,
        started_at: None,
        ended_at: None,
        next_event_seq: 1,
        next_log_seq: 1,
        next_journal_seq: 1,
    }
}

fn step(run: &str, key: &str, status: StepStatus) -> RunStep {
    RunStep {
        run_id: run.parse().unwrap(),
        key: key.parse().unwrap(),
        step_id: key.parse().unwrap(),
        item: None,
        status,
        attempt: 0,
        input: None,
        output: None,
        error: None,
        input_request: None,
        answer: None,
        answer_has_secrets: false,
        next_attempt_at: None,
        last_attempt: None,
        first_started_at: None,
        legacy_attempts: vec![],
        ended_at: None,
        completion_seq: None,
    }
}

fn event(run: &str, seq: u64) -> RunEvent {
    RunEvent {
        run_id: run.parse().unwrap(),
        seq,
        at: seq as i64,
        kind: EventKind::StepStarted,
        step: None,
        attempt: None,
        message: format!("e{seq}"),
        data: None,
    }
}

#[tokio::test]
async fn runs_transitions_and_idempotency() -> anyhow::Result<()> {
    let store = Store::connect("mem://").await?;
    let t = Transition {
        run: Some(run("r1", Some("key-1"), 10)),
        steps: vec![step("r1", "a", StepStatus::Pending)],
        events: vec![event("r1", 1)],
        logs: vec![],
        earlier_attempts: vec![],
        creates_run: true,
        journal_seq: 1,
        events_through: 1,
    };
    assert_eq!(store.create_run(&t).await?, CreateRunOutcome::Created);
    let again = Transition {
        run: Some(run("r2", Some("key-1"), 11)),
        ..Default::default()
    };
    match store.create_run(&again).await? {
        CreateRunOutcome::Existing(r) => assert_eq!(r.run_id, "r1"),
        other => panic!("expected the existing run, got {other:?}"),
    }
    assert!(matches!(
        store.get_run(&"r2".parse().unwrap()).await,
        Err(StoreError::NotFound(_))
    ));

    let mut r = run("r1", Some("key-1"), 10);
    r.status = RunStatus::Success;
    r.outputs = Some(json!({"a": 1}));
    // A later transition carries only the fields that change: the stored
    // inputs must survive it.
    r.inputs = json!(null);
    let mut s = step("r1", "a", StepStatus::Success);
    s.output = Some(json!({"value": 55}));
    let log = LogLine {
        run_id: "r1".parse().unwrap(),
        step_key: "a".parse().unwrap(),
        attempt: 1,
        seq: 1,
        at: 1,
        level: LogLevel::Info,
        message: "hi".into(),
        context: None,
        source: LogSource::Plugin,
    };
    store
        .commit(&[Transition {
            run: Some(r),
            steps: vec![s],
            events: vec![event("r1", 2)],
            logs: vec![log],
            earlier_attempts: vec![],
            creates_run: false,
            journal_seq: 2,
            events_through: 2,
        }])
        .await?;
    let stored = store.get_run(&"r1".parse().unwrap()).await?;
    assert_eq!(stored.status, RunStatus::Success);
    assert_eq!(stored.outputs, Some(json!({"a": 1})));
    assert_eq!(stored.inputs, json!({"n": 1}));
    assert_eq!(stored.created_at, 10);
    assert_eq!(
        store.steps(&"r1".parse().unwrap()).await?[0].output,
        Some(json!({"value": 55}))
    );
    assert_eq!(
        store
            .events(&"r1".parse().unwrap(), 0, 10)
            .await?
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(store.events(&"r1".parse().unwrap(), 1, 10).await?.len(), 1);
    assert_eq!(
        store
            .logs(&"r1".parse().unwrap(), &"a".parse().unwrap(), 0, 10)
            .await?[0]
            .message,
        "hi"
    );
    // Steps are written whole: a field cleared by a later transition goes.
    let mut b = step("r1", "b", StepStatus::Retrying);
    b.error = Some(Failure::new(FailureCode::Timeout, "slow", true));
    for clear in [false, true] {
        if clear {
            b.error = None;
            b.status = StepStatus::Success;
        }
        store
            .commit(&[Transition {
                steps: vec![b.clone()],
                journal_seq: 3 + u64::from(clear),
                ..Default::default()
            }])
            .await?;
    }
    let stored_b = store.steps(&"r1".parse().unwrap()).await?;
    assert_eq!(
        stored_b.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(stored_b[1], b);
    // Cursors past the end (hostile Last-Event-ID values too) read nothing.
    assert!(
        store
            .events(&"r1".parse().unwrap(), u64::MAX, 10)
            .await?
            .is_empty()
    );
    assert!(
        store
            .logs(&"r1".parse().unwrap(), &"a".parse().unwrap(), u64::MAX, 10)
            .await?
            .is_empty()
    );
    assert!(
        store
            .events(&"r1".parse().unwrap(), i64::MAX as u64 + 1, 10)
            .await?
            .is_empty()
    );
    // Counters come from the events and logs themselves, not the record.
    let next = |event, log, journal| NextSequences {
        event,
        log,
        journal,
    };
    assert_eq!(
        store.next_sequences(&"r1".parse().unwrap()).await?,
        next(3, 2, 5)
    );
    assert_eq!(
        store
            .next_sequences(&("no-such-run").parse().unwrap())
            .await?,
        next(1, 1, 1)
    );
    // A later transition without a journal position is refused, not lost.
    let unplaced = Transition {
        steps: vec![b.clone()],
        ..Default::default()
    };
    assert!(store.commit(&[unplaced]).await.is_err());
    assert!(store.unfinished_runs().await?.is_empty());

    for i in 0..5 {
        store
            .create_run(&Transition {
                run: Some(run(&format!("p{i}"), None, 100 + i)),
                ..Default::default()
            })
            .await?;
    }
    let page = store
        .list_runs(&RunFilter {
            page: 1,
            page_size: 2,
            status: Some(RunStatus::Pending),
            ..Default::default()
        })
        .await?;
    assert_eq!(page.total, 5);
    assert_eq!(
        page.runs
            .iter()
            .map(|r| r.run_id.as_str())
            .collect::<Vec<_>>(),
        ["p4", "p3"]
    );
    assert_eq!(store.unfinished_runs().await?.len(), 5);
    Ok(())
}

/// Events written at creation and in journal records (some with several
/// events, some with none) page in order with any page size; a later
/// journal record's step state wins over an earlier one and the creation's.
#[tokio::test]
async fn journal_events_page_in_order_and_later_steps_win() -> anyhow::Result<()> {
    let store = Store::connect("mem://").await?;
    store
        .create_run(&Transition {
            run: Some(run("j", None, 1)),
            steps: vec![step("j", "a", StepStatus::Pending)],
            events: vec![event("j", 1), event("j", 2)],
            journal_seq: 1,
            events_through: 2,
            ..Default::default()
        })
        .await?;
    let mut seq = 3;
    for j in 1..=20u64 {
        // 0, 1 or 2 events per record.
        let events: Vec<RunEvent> = (0..j % 3)
            .map(|_| {
                seq += 1;
                event("j", seq - 1)
            })
            .collect();
        let mut a = step("j", "a", StepStatus::Running);
        a.attempt = u32::try_from(j)?;
        store
            .commit(&[Transition {
                steps: vec![a],
                events,
                journal_seq: j + 1,
                events_through: seq - 1,
                ..Default::default()
            }])
            .await?;
    }
    let last = seq - 1;
    for page in [1, 2, 3, 7, 1000] {
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let got = store.events(&"j".parse().unwrap(), after, page).await?;
            assert!(got.len() <= page as usize);
            let Some(e) = got.last() else { break };
            after = e.seq;
            seen.extend(got.iter().map(|e| e.seq));
        }
        assert_eq!(seen, (1..=last).collect::<Vec<_>>(), "page size {page}");
    }
    let steps = store.steps(&"j".parse().unwrap()).await?;
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].attempt, 20);
    let next = store.next_sequences(&"j".parse().unwrap()).await?;
    assert_eq!((next.event, next.journal), (last + 1, 22));
    Ok(())
}

fn attempt(n: u32, status: StepStatus) -> StepAttempt {
    StepAttempt {
        attempt: n,
        started_at: i64::from(n) * 10,
        ended_at: (status != StepStatus::Running).then_some(i64::from(n) * 10 + 5),
        status,
        error: (status == StepStatus::Failed)
            .then(|| Failure::new(FailureCode::Trap, format!("boom {n}"), false)),
    }
}

/// Each attempt is written once, when the next one starts: a step retried
/// 250 times is 249 attempt records plus its state, and a page of attempts
/// is a range read, the latest coming from the step's state.
#[tokio::test]
async fn attempts_are_records_of_their_own_and_page() -> anyhow::Result<()> {
    let store = Store::connect("mem://").await?;
    let mut create = Transition {
        run: Some(run("ra", None, 1)),
        steps: vec![step("ra", "s", StepStatus::Pending)],
        creates_run: true,
        journal_seq: 1,
        ..Default::default()
    };
    store.commit(&[&create]).await?;
    create.creates_run = false;
    let mut s = step("ra", "s", StepStatus::Running);
    s.first_started_at = Some(10);
    const N: u32 = 250;
    for n in 1..=N {
        s.attempt = n;
        let earlier = s.last_attempt.replace(attempt(n, StepStatus::Running));
        let mut t = Transition {
            steps: vec![s.clone()],
            journal_seq: u64::from(n) + 1,
            earlier_attempts: earlier
                .map(|mut a| {
                    a.status = StepStatus::Failed;
                    a.ended_at = Some(a.started_at + 5);
                    a.error = Some(Failure::new(
                        FailureCode::Trap,
                        format!("boom {}", a.attempt),
                        false,
                    ));
                    StepAttemptRecord {
                        run_id: "ra".parse().unwrap(),
                        step_key: "s".parse().unwrap(),
                        attempt: a,
                    }
                })
                .into_iter()
                .collect(),
            ..Default::default()
        };
        // A retried commit (a lost reply) must not fail on its own records.
        store.commit(&[&t]).await?;
        if n == 7 {
            store.commit(&[&t]).await?;
        }
        t.steps.clear();
    }
    let stored = store.steps(&"ra".parse().unwrap()).await?;
    assert_eq!(stored.len(), 1);
    let s = &stored[0];
    assert_eq!(s.last_attempt, Some(attempt(N, StepStatus::Running)));
    assert_eq!(s.first_started_at, Some(10));
    for size in [1u32, 7, 100] {
        let mut seen = Vec::new();
        for page in 1.. {
            let p = store.step_attempts(s, page, size).await?;
            assert_eq!(p.total, u64::from(N));
            if p.attempts.is_empty() {
                break;
            }
            assert!(p.attempts.len() <= size as usize);
            seen.extend(p.attempts);
        }
        let want: Vec<StepAttempt> = (1..N)
            .map(|n| attempt(n, StepStatus::Failed))
            .chain([attempt(N, StepStatus::Running)])
            .collect();
        assert_eq!(seen, want, "page size {size}");
    }
    let fresh = step("ra", "t", StepStatus::Pending);
    let p = store.step_attempts(&fresh, 1, 100).await?;
    assert!(p.attempts.is_empty());
    assert_eq!(p.total, 0);
    Ok(())
}

#[tokio::test]
async fn templates_revisions_and_schedule_claims() -> anyhow::Result<()> {
    let store = Store::connect("mem://").await?;
    let t = store
        .create_template(
            &"t1".parse().unwrap(),
            "hello",
            &json!({"name": "hello", "steps": []}),
        )
        .await?;
    assert_eq!(t.revision, 1);
    assert!(matches!(
        store
            .create_template(&"t2".parse().unwrap(), "hello", &json!({}))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let t2 = store
        .update_template(&"t1".parse().unwrap(), &json!({"name": "hello", "v": 2}), 1)
        .await?;
    assert_eq!(t2.revision, 2);
    assert!(matches!(
        store
            .update_template(&"t1".parse().unwrap(), &json!({}), 1)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.template("hello").await?.revision, 2);
    // By id as well as by name; neither is not found.
    assert_eq!(store.template("t1").await?.name, "hello");
    assert!(matches!(
        store.template("nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .template_revisions(&"t1".parse().unwrap())
            .await?
            .len(),
        2
    );
    let page = store
        .list_template_revisions(&"t1".parse().unwrap(), 2, 1)
        .await?;
    assert_eq!(page.total, 2);
    assert_eq!(page.revisions.len(), 1);
    assert_eq!(
        page.revisions[0].revision, 2,
        "oldest first: page 2 is revision 2"
    );
    assert_eq!(
        store
            .list_template_revisions(&"nope".parse().unwrap(), 1, 20)
            .await?
            .total,
        0
    );
    assert_eq!(
        store
            .template_revision(&"t1".parse().unwrap(), 1)
            .await?
            .body["steps"],
        json!([])
    );
    assert!(
        store
            .claim_schedule_fire(&"t1".parse().unwrap(), 1000)
            .await?
    );
    assert!(
        !store
            .claim_schedule_fire(&"t1".parse().unwrap(), 1000)
            .await?
    );
    Ok(())
}

#[tokio::test]
async fn templates_list_in_pages_by_name() -> anyhow::Result<()> {
    let store = Store::connect("mem://").await?;
    for (id, name) in [
        ("a", "charlie"),
        ("b", "alpha"),
        ("c", "echo"),
        ("d", "bravo"),
        ("e", "delta"),
    ] {
        store
            .create_template(&id.parse().unwrap(), name, &json!({"name": name}))
            .await?;
    }
    let names = |p: &weft_store::TemplatePage| {
        p.templates
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
    };
    let first = store.list_templates(1, 2).await?;
    assert_eq!(names(&first), ["alpha", "bravo"]);
    assert_eq!(first.total, 5);
    assert_eq!(names(&store.list_templates(3, 2).await?), ["echo"]);
    let past = store.list_templates(4, 2).await?;
    assert!(past.templates.is_empty());
    assert_eq!(past.total, 5, "the total does not depend on the page");
    // Sizes are clamped as for runs: 0 means 1, over 100 means 100.
    assert_eq!(store.list_templates(1, 0).await?.templates.len(), 1);
    assert_eq!(store.list_templates(1, 500).await?.templates.len(), 5);
    let empty = Store::connect("mem://")
        .await?
        .list_templates(1, 20)
        .await?;
    assert_eq!((empty.templates.len(), empty.total), (0, 0));
    Ok(())
}

#[tokio::test]
async fn surrealkv_persists_across_reopen() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("surrealkv://{}", dir.path().display());
    {
        let store = Store::connect(&url).await?;
        store
            .create_run(&Transition {
                run: Some(run("r1", None, 1)),
                ..Default::default()
            })
            .await?;
    }
    // The embedded engine releases its lock in the background after the
    // last handle is dropped: poll until it can be reopened.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let store = loop {
        match Store::connect(&url).await {
            Ok(s) => break s,
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("locked") => {
                tokio::task::yield_now().await
            }
            Err(e) => return Err(e.into()),
        }
    };
    assert_eq!(store.get_run(&"r1".parse().unwrap()).await?.run_id, "r1");
    Ok(())
}

#[tokio::test]
async fn counts_by_status_pinned_runs_and_artifacts() -> anyhow::Result<()> {
    let store = Store::connect("mem://").await?;
    let mut pinned = run("a1", None, 1);
    pinned.status = RunStatus::AwaitingInput;
    pinned.pinned_plugins = [("approve".to_owned(), digest(0xaa))].into();
    let mut done = run("d1", None, 2);
    done.status = RunStatus::Success;
    done.pinned_plugins = [("x".to_owned(), digest(0xaa))].into();
    let mut other = run("o1", None, 3);
    other.pinned_plugins = [("y".to_owned(), digest(0xbb))].into();
    for r in [pinned, done, other] {
        store
            .create_run(&Transition {
                run: Some(r),
                ..Default::default()
            })
            .await?;
    }
    let mut counts = store.count_runs_by_status().await?;
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        [
            (RunStatus::AwaitingInput, 1),
            (RunStatus::Pending, 1),
            (RunStatus::Success, 1)
        ]
    );
    assert_eq!(store.active_runs_pinning(&digest(0xaa)).await?, ["a1"]);
    assert_eq!(store.active_runs_pinning(&digest(0xbb)).await?, ["o1"]);
    assert!(store.active_runs_pinning(&digest(0xcc)).await?.is_empty());

    let meta = |attempt: u32| ArtifactInfo {
        run_id: "a1".parse().unwrap(),
        step_key: "s".parse().unwrap(),
        attempt,
        name: "report.txt".into(),
        media_type: "text/plain".into(),
        size: 2,
        at: 5,
    };
    store.put_artifact(&meta(1), b"v1").await?;
    store.put_artifact(&meta(2), b"v2").await?;
    let listed = store
        .artifact_entries(&"a1".parse().unwrap(), &"s".parse().unwrap())
        .await?;
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].sha256.as_deref(),
        // sha256("v1")
        Some("3bfc269594ef649228e9a74bab00f042efc91d5acc6fbee31a382e80d42388fe")
    );
    let latest = store
        .artifact_entry(
            &"a1".parse().unwrap(),
            &"s".parse().unwrap(),
            "report.txt",
            None,
        )
        .await?;
    assert_eq!(latest.record.attempt, 2);
    assert_eq!(store.artifact_data(&latest.record).await?, b"v2");
    let first = store
        .artifact_entry(
            &"a1".parse().unwrap(),
            &"s".parse().unwrap(),
            "report.txt",
            Some(1),
        )
        .await?;
    assert_eq!(store.artifact_data(&first.record).await?, b"v1");
    assert!(matches!(
        store
            .artifact_entry(&"a1".parse().unwrap(), &"s".parse().unwrap(), "nope", None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

/// The one classification of SurrealDB errors, against errors a real
/// embedded database raises: a duplicate record id, a unique index
/// refusing a duplicate, concurrent transactions on one record, and a
/// statement that is simply wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_errors_are_classified_from_real_failures() -> anyhow::Result<()> {
    use weft_store::{DbErrorKind, settle};
    let db = surrealdb::engine::any::connect("mem://").await?;
    db.use_ns("t").use_db("t").await?;
    let kind = |r: Result<surrealdb::IndexedResults, surrealdb::Error>| match r {
        Ok(r) => settle(r).err().map(|e| (e.db_kind(), e.is_retryable())),
        Err(e) => Some((Some(DbErrorKind::of(&e)), false)),
    };
    let refused = |k| Some((Some(k), false));
    db.query("CREATE thing:1").await?.check()?;
    assert_eq!(
        kind(db.query("CREATE thing:1").await),
        refused(DbErrorKind::AlreadyExists)
    );
    db.query("DEFINE INDEX uniq ON named FIELDS name UNIQUE; CREATE named SET name = 'a'")
        .await?
        .check()?;
    assert_eq!(
        kind(db.query("CREATE named SET name = 'a'").await),
        refused(DbErrorKind::AlreadyExists)
    );
    // Inside a transaction the cause is found behind the "not executed"
    // errors of the statements before it.
    assert_eq!(
        kind(
            db.query("BEGIN TRANSACTION; CREATE other:1; CREATE thing:1; COMMIT TRANSACTION;")
                .await
        ),
        refused(DbErrorKind::AlreadyExists)
    );
    assert_eq!(
        kind(db.query("THROW 'nope'").await),
        refused(DbErrorKind::Other)
    );
    // Read-modify-write transactions racing on one record: the database
    // refuses some of them as conflicts, and only those are retryable.
    db.query("CREATE counter:1 SET n = 0").await?.check()?;
    let mut conflicts = 0;
    for _round in 0..20 {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    let r = db
                        .query(
                            "BEGIN TRANSACTION; \
                             LET $n = (SELECT VALUE n FROM ONLY counter:1); \
                             UPDATE counter:1 SET n = $n + 1; \
                             COMMIT TRANSACTION;",
                        )
                        .await;
                    match r {
                        Ok(r) => settle(r)
                            .err()
                            .map(|e| (e.db_kind(), e.is_retryable(), e.to_string())),
                        Err(e) => Some((Some(DbErrorKind::of(&e)), false, e.to_string())),
                    }
                })
            })
            .collect();
        for t in tasks {
            match t.await? {
                None => {}
                Some((Some(DbErrorKind::TransactionConflict), true, _)) => conflicts += 1,
                Some(other) => anyhow::bail!("a racing transaction failed otherwise: {other:?}"),
            }
        }
        if conflicts > 0 {
            break;
        }
    }
    assert!(
        conflicts > 0,
        "no transaction conflict in 320 racing transactions"
    );
    Ok(())
}
