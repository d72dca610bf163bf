//! poem-openapi (what the server writes) and serde (what the CLI reads)
//! must see the same JSON for every type, or the CLI would misread the
//! server; these samples cover optional, renamed and enum fields.

use crate::*;
use poem_openapi::types::{ParseFromJSON, ToJSON};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use weft_model::{
    EventKind, Failure, FailureCode, LogLevel, LogSource, PluginErrorKind, RunStatus, StepStatus,
};

fn agree<T: ToJSON + ParseFromJSON + Serialize + DeserializeOwned + std::fmt::Debug>(v: &T) {
    let poem = v.to_json();
    let serde = serde_json::to_value(v).ok();
    assert_eq!(poem, serde, "{v:?}");
    let text = poem.unwrap_or_default();
    let back: Result<T, _> = serde_json::from_value(text.clone());
    let back = back.unwrap_or_else(|e| panic!("serde cannot read {text}: {e}"));
    assert_eq!(back.to_json(), Some(text.clone()));
    assert!(T::parse_from_json(Some(text)).is_ok());
}

fn failure() -> Failure {
    Failure {
        kind: Some(PluginErrorKind::RateLimited),
        details: Some(json!({"retryAfter": 3})),
        ..Failure::new(FailureCode::PluginError, "slow down", true)
    }
    .caused_by(Some("fetch".into()), None)
}

#[test]
fn the_server_and_the_cli_see_the_same_json() {
    agree(&RunView {
        id: "r1".into(),
        status: RunStatus::AwaitingInput,
        template: "t".into(),
        template_id: "t1".into(),
        revision: 2,
        inputs: json!({"n": 1}),
        outputs: None,
        error: Some(failure()),
        progress: ProgressView {
            completed: 1,
            total: 3,
            running: vec!["a".into()],
        },
        created_at: "2026-12-05T00:00:00.000Z".into(),
        started_at: Some("2026-12-05T00:00:01.000Z".into()),
        ended_at: None,
    });
    agree(&StepView {
        id: "s[0]".into(),
        status: StepStatus::Retrying,
        attempt: 2,
        input: Some(json!(1)),
        output: None,
        error: None,
        input_request: None,
        last_attempt: Some(AttemptView {
            attempt: 2,
            status: StepStatus::Failed,
            started_at: "x".into(),
            ended_at: None,
            error: Some(failure()),
        }),
        started_at: None,
        ended_at: None,
    });
    agree(&LogView {
        seq: 3,
        attempt: 1,
        at: "x".into(),
        level: LogLevel::Progress,
        message: "half".into(),
        context: Some(json!({"fraction": 0.5})),
        source: LogSource::Engine,
    });
    agree(&EventView {
        seq: 4,
        at: "x".into(),
        kind: EventKind::StepCompensationFailed,
        step: None,
        attempt: Some(2),
        status: None,
        message: "m".into(),
    });
    agree(&EventView {
        seq: 5,
        at: "x".into(),
        kind: EventKind::RunStatusChanged,
        step: None,
        attempt: None,
        status: Some(RunStatus::AwaitingInput),
        message: "m".into(),
    });
    agree(&StepTypeView {
        ty: "core/fibo".into(),
        plugin: "core".into(),
        version: "1.0.0".into(),
        plugin_id: "sha256:00".into(),
        description: String::new(),
        input_schema: json!({}),
        output_schema: json!({}),
        enabled: true,
    });
    agree(&ErrorBody {
        success: false,
        error: ErrorDetail {
            code: "INVALID".into(),
            message: "no".into(),
            details: None,
            validation_errors: vec![ValidationError {
                pointer: "/a".into(),
                code: "C".into(),
                message: "m".into(),
            }],
        },
        meta: Meta {
            request_id: "q".into(),
            timestamp: "t".into(),
            pagination: Some(Pagination {
                page: 1,
                page_size: 20,
                total: 0,
                total_pages: 0,
            }),
        },
    });
    agree(&EnablePluginRequest {
        outbound_hosts: Maybe(Some(vec!["*.example.com".into()])),
        ..Default::default()
    });
}
