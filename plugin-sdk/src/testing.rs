//! Helpers for unit-testing a plugin natively (`cargo test`), without a host.
//!
//! Steps that call [`host`](crate::host) or [`http`](crate::http) functions
//! cannot run natively: those imports only exist inside a Weft host.

use crate::bindings::weft::plugin::types::Invocation;

/// An invocation of `step_type` with `input`, attempt 1, ids `run-test` /
/// `step-test` and no answer. Set `answer` on the result to simulate the
/// answer to an input request.
pub fn invocation(step_type: &str, input: serde_json::Value) -> Invocation {
    Invocation {
        step_type: step_type.to_string(),
        input: input.to_string(),
        run_id: "run-test".to_string(),
        step_id: "step-test".to_string(),
        attempt: 1,
        answer: None,
    }
}
