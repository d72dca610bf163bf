//! `sleep`: sleeps in short slices, returning early when cancelled.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_plugin_sdk::prelude::*;

/// The longest single sleep between two cancellation checks.
const SLICE_MS: u64 = 10;

/// Sleeps for `ms` milliseconds, checking for cancellation every 10 ms.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sleep;

/// Input of `sleep`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SleepInput {
    /// How long to sleep, in milliseconds.
    pub ms: u64,
}

/// Output of `sleep`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SleepOutput {
    /// How long the step slept, in milliseconds.
    pub slept_ms: u64,
    /// Whether the step stopped early because it was cancelled.
    pub cancelled: bool,
}

impl Step for Sleep {
    const NAME: &'static str = "sleep";
    const DESCRIPTION: &'static str =
        "Sleeps for `ms` milliseconds in 10 ms slices, returning early when the step is cancelled.";
    type Input = SleepInput;
    type Output = SleepOutput;

    fn run(
        &self,
        _ctx: &StepContext,
        input: SleepInput,
    ) -> Result<Outcome<SleepOutput>, PluginError> {
        // Says when the sleep begins: the step's log shows it started, and a
        // caller (a test) can wait for this line before cancelling it.
        host::debug(&format!("sleeping {} ms", input.ms));
        Ok(Outcome::Done(sleep_in_slices(
            input.ms,
            host::cancelled,
            |ms| {
                std::thread::sleep(Duration::from_millis(ms));
            },
        )))
    }
}

/// Sleeps `total_ms` with `sleep` in slices of at most [`SLICE_MS`], asking
/// `cancelled` before each slice.
fn sleep_in_slices(
    total_ms: u64,
    mut cancelled: impl FnMut() -> bool,
    mut sleep: impl FnMut(u64),
) -> SleepOutput {
    let mut slept_ms = 0;
    while slept_ms < total_ms {
        if cancelled() {
            return SleepOutput {
                slept_ms,
                cancelled: true,
            };
        }
        let slice = SLICE_MS.min(total_ms - slept_ms);
        sleep(slice);
        slept_ms += slice;
    }
    SleepOutput {
        slept_ms,
        cancelled: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_in_slices_of_at_most_10ms() {
        let mut slices = Vec::new();
        let out = sleep_in_slices(25, || false, |ms| slices.push(ms));
        assert_eq!(slices, [10, 10, 5]);
        assert_eq!(
            out,
            SleepOutput {
                slept_ms: 25,
                cancelled: false
            }
        );
        let out = sleep_in_slices(0, || panic!("no check needed"), |_| panic!("no sleep"));
        assert_eq!(
            out,
            SleepOutput {
                slept_ms: 0,
                cancelled: false
            }
        );
    }

    #[test]
    fn stops_when_cancelled() {
        let mut checks = 0;
        let out = sleep_in_slices(
            1000,
            || {
                checks += 1;
                checks > 3
            },
            |_| {},
        );
        assert_eq!(
            out,
            SleepOutput {
                slept_ms: 30,
                cancelled: true
            }
        );
    }
}
