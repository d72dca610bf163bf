//! A run's journal of events: what happened to the run and its steps, in
//! order, numbered densely from 1.

use crate::failure::Failure;
use crate::ids::{RunId, StepKey};
use crate::run::RunStatus;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares [`EventKind`] with its wire names from one list.
macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// What an event records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
        pub enum EventKind {
            $(
                $(#[$doc])*
                #[serde(rename = $name)]
                #[cfg_attr(feature = "openapi", oai(rename = $name))]
                $variant,
            )*
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [EventKind] = &[$(Self::$variant,)*];

            /// The kind as written in the API and the store, e.g. `step.retrying`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

event_kinds! {
    /// The run was created.
    RunCreated = "run.created",
    /// Its first step started.
    RunStarted = "run.started",
    /// It moved between RUNNING and AWAITING_INPUT (the message says which).
    RunStatusChanged = "run.status",
    /// A user paused it.
    RunPaused = "run.paused",
    /// A user resumed it.
    RunResumed = "run.resumed",
    /// A user asked to cancel it.
    RunCancelRequested = "run.cancel_requested",
    /// It went past its timeout.
    RunTimedOut = "run.timed_out",
    /// It finished successfully.
    RunSucceeded = "run.success",
    /// It finished with a failure.
    RunFailed = "run.failed",
    /// It was cancelled.
    RunCancelled = "run.cancelled",
    /// A step attempt started.
    StepStarted = "step.started",
    /// A step succeeded.
    StepSucceeded = "step.succeeded",
    /// A step failed after its last attempt.
    StepFailed = "step.failed",
    /// A step attempt failed and another will follow (`data` has the failure).
    StepRetrying = "step.retrying",
    /// A step was skipped.
    StepSkipped = "step.skipped",
    /// A step was cancelled.
    StepCancelled = "step.cancelled",
    /// A step asked for input.
    StepAwaitingInput = "step.awaiting_input",
    /// A step received the input it asked for.
    StepInputReceived = "step.input_received",
    /// A step attempt interrupted by a restart was queued again.
    StepRequeued = "step.requeued",
    /// A `forEach` step created its items.
    StepFannedOut = "step.fanned_out",
    /// A step's compensation started.
    StepCompensating = "step.compensating",
    /// A step's compensation finished.
    StepCompensated = "step.compensated",
    /// A step's compensation failed.
    StepCompensationFailed = "step.compensation_failed",
}

impl EventKind {
    /// The event that ends a run in `status`, if `status` is terminal.
    pub fn run_ended(status: RunStatus) -> Option<Self> {
        match status {
            RunStatus::Success => Some(Self::RunSucceeded),
            RunStatus::Failed => Some(Self::RunFailed),
            RunStatus::Cancelled => Some(Self::RunCancelled),
            _ => None,
        }
    }

    /// Whether this event ends its run.
    pub fn ends_run(self) -> bool {
        matches!(
            self,
            Self::RunSucceeded | Self::RunFailed | Self::RunCancelled
        )
    }

    /// Whether this is one of a step's events (else one of the run's).
    pub fn is_step(self) -> bool {
        self.as_str().starts_with("step.")
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an event carries besides its message; which variant follows
/// from the kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventData {
    /// The failure, for `step.retrying` (the attempt's) and
    /// `step.compensation_failed`.
    Failure(Failure),
    /// The compensation's output, for `step.compensated`.
    Output(serde_json::Value),
    /// The status the run entered, for `run.status`.
    Status(RunStatus),
}

/// An entry of a run's append-only event journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "StoredRunEvent")]
pub struct RunEvent {
    /// Run id.
    pub run_id: RunId,
    /// Dense sequence number within the run, from 1.
    pub seq: u64,
    /// When (Unix milliseconds).
    pub at: i64,
    /// What happened.
    pub kind: EventKind,
    /// Step key, for step events.
    pub step: Option<StepKey>,
    /// Attempt, for step events.
    pub attempt: Option<u32>,
    /// Human-readable.
    pub message: String,
    /// What the event carries, for the kinds that carry something.
    pub data: Option<EventData>,
}

impl RunEvent {
    /// The status the run entered with this event, for run-level events
    /// that change it (`run.status`, `run.paused`, and the three endings).
    pub fn run_status(&self) -> Option<RunStatus> {
        match (self.kind, &self.data) {
            (EventKind::RunStatusChanged, Some(EventData::Status(s))) => Some(*s),
            (EventKind::RunSucceeded, _) => Some(RunStatus::Success),
            (EventKind::RunFailed, _) => Some(RunStatus::Failed),
            (EventKind::RunCancelled, _) => Some(RunStatus::Cancelled),
            (EventKind::RunPaused, _) => Some(RunStatus::Paused),
            _ => None,
        }
    }
}

/// An event as stored: its data is read by what its kind says it holds.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredRunEvent {
    run_id: RunId,
    seq: u64,
    at: i64,
    kind: EventKind,
    step: Option<StepKey>,
    attempt: Option<u32>,
    message: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

impl From<StoredRunEvent> for RunEvent {
    fn from(e: StoredRunEvent) -> Self {
        let data = e.data.filter(|d| !d.is_null()).map(|d| match e.kind {
            EventKind::StepRetrying | EventKind::StepCompensationFailed => {
                // Compensations that ended other than in a failure were
                // once stored as the plugin's outcome; keep those as they are.
                match serde_json::from_value::<Failure>(d.clone()) {
                    Ok(f) => EventData::Failure(f),
                    Err(_) => EventData::Output(d),
                }
            }
            EventKind::RunStatusChanged => match serde_json::from_value::<RunStatus>(d.clone()) {
                Ok(status) => EventData::Status(status),
                Err(_) => EventData::Output(d),
            },
            _ => EventData::Output(d),
        });
        // Status changes were once recorded in the message only.
        let data = data.or_else(|| {
            (e.kind == EventKind::RunStatusChanged)
                .then(|| serde_json::from_value(serde_json::Value::String(e.message.clone())).ok())
                .flatten()
                .map(EventData::Status)
        });
        Self {
            run_id: e.run_id,
            seq: e.seq,
            at: e.at,
            kind: e.kind,
            step: e.step,
            attempt: e.attempt,
            message: e.message,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_wire_names() {
        for kind in EventKind::ALL {
            let text = serde_json::to_value(kind).ok();
            assert_eq!(text, Some(serde_json::json!(kind.as_str())));
            let back: Option<EventKind> = text.and_then(|t| serde_json::from_value(t).ok());
            assert_eq!(back, Some(*kind));
        }
        assert_eq!(
            EventKind::run_ended(RunStatus::Success),
            Some(EventKind::RunSucceeded)
        );
        assert!(EventKind::RunCancelled.ends_run() && !EventKind::RunPaused.ends_run());
        assert!(EventKind::StepRequeued.is_step() && !EventKind::RunStarted.is_step());
    }

    #[test]
    fn event_data_is_read_as_its_kind_says() {
        let stored = |kind: &str, data: serde_json::Value| {
            serde_json::from_value::<RunEvent>(serde_json::json!({"runId": "r", "seq": 1,
                "at": 0, "kind": kind, "step": "s", "attempt": 1, "message": "m", "data": data}))
            .map(|e| e.data)
            .map_err(|e| e.to_string())
        };
        let failure = serde_json::json!({"code": "TIMEOUT", "message": "late", "retryable": true});
        assert_eq!(
            stored("step.retrying", failure.clone()),
            Ok(Some(EventData::Failure(Failure::new(
                crate::FailureCode::Timeout,
                "late",
                true
            ))))
        );
        // The same shape is an output where the kind says output.
        assert_eq!(
            stored("step.compensated", failure.clone()),
            Ok(Some(EventData::Output(failure)))
        );
        assert_eq!(stored("step.started", serde_json::Value::Null), Ok(None));
        let written = RunEvent {
            run_id: RunId::new("r").expect("a run id"),
            seq: 2,
            at: 5,
            kind: EventKind::StepCompensated,
            step: None,
            attempt: None,
            message: "ok".into(),
            data: Some(EventData::Output(serde_json::json!({"undone": true}))),
        };
        let back = serde_json::to_value(&written)
            .map_err(|e| e.to_string())
            .and_then(|v| serde_json::from_value::<RunEvent>(v).map_err(|e| e.to_string()));
        assert_eq!(back, Ok(written));
    }

    #[test]
    fn status_changes_say_the_status_old_records_too() {
        let read = |message: &str, data: serde_json::Value| {
            serde_json::from_value::<RunEvent>(serde_json::json!({"runId": "r", "seq": 1,
                "at": 0, "kind": "run.status", "message": message, "data": data}))
            .map(|e| e.run_status())
            .map_err(|e| e.to_string())
        };
        assert_eq!(
            read("whatever", serde_json::json!("AWAITING_INPUT")),
            Ok(Some(RunStatus::AwaitingInput))
        );
        // Written before the status was data: the message held it.
        assert_eq!(
            read("RUNNING", serde_json::Value::Null),
            Ok(Some(RunStatus::Running))
        );
        assert_eq!(read("odd", serde_json::Value::Null), Ok(None));
        let ended = serde_json::from_value::<RunEvent>(serde_json::json!({"runId": "r",
            "seq": 2, "at": 0, "kind": "run.failed", "message": "boom"}))
        .map(|e| e.run_status())
        .map_err(|e| e.to_string());
        assert_eq!(ended, Ok(Some(RunStatus::Failed)));
    }
}
