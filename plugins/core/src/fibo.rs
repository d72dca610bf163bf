//! `fibo`: naive recursive Fibonacci, a CPU-bound benchmark workload.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_plugin_sdk::prelude::*;

/// The largest `n` whose Fibonacci number fits in a `u64`.
pub const MAX_N: u32 = 92;

/// Computes the `n`-th Fibonacci number by naive recursion (on purpose: it is
/// a benchmark workload).
#[derive(Debug, Default, Clone, Copy)]
pub struct Fibo;

/// Input of `fibo`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FiboInput {
    /// Which Fibonacci number to compute, at most 92.
    #[schemars(range(max = 92))]
    pub n: u32,
}

/// Output of `fibo`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FiboOutput {
    /// fib(n), with fib(0) = 0 and fib(1) = 1.
    pub value: u64,
}

impl Step for Fibo {
    const NAME: &'static str = "fibo";
    const DESCRIPTION: &'static str =
        "Computes the n-th Fibonacci number by naive recursion (a CPU benchmark; n <= 92).";
    type Input = FiboInput;
    type Output = FiboOutput;

    fn run(
        &self,
        _ctx: &StepContext,
        input: FiboInput,
    ) -> Result<Outcome<FiboOutput>, PluginError> {
        if input.n > MAX_N {
            return Err(PluginError::config(format!(
                "`n` must be at most {MAX_N} (fib({}) does not fit in 64 bits)",
                input.n
            ))
            .with_details(serde_json::json!({ "field": "n", "max": MAX_N, "actual": input.n })));
        }
        Ok(Outcome::Done(FiboOutput {
            value: fib(input.n),
        }))
    }
}

/// Naive recursive Fibonacci; exponential time on purpose.
pub fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let expected = [0u64, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55];
        for (n, value) in expected.iter().enumerate() {
            assert_eq!(fib(n as u32), *value);
        }
        assert_eq!(fib(25), 75_025);
        assert_eq!(fib(30), 832_040);
    }

    #[test]
    fn rejects_n_above_92() {
        let ctx = StepContext::new("fibo");
        let err = Fibo.run(&ctx, FiboInput { n: 93 }).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(err.message.contains("at most 92"), "{}", err.message);
        assert_eq!(
            Fibo.run(&ctx, FiboInput { n: 20 }),
            Ok(Outcome::Done(FiboOutput { value: 6765 }))
        );
    }

    #[test]
    fn dispatch_rejects_bad_input() {
        use weft_plugin_sdk::{testing::invocation, wit};
        let plugin = crate::weft_plugin();
        let out = plugin.run(invocation("fibo", serde_json::json!({ "n": 10 })));
        assert!(
            matches!(out, wit::Outcome::Success(ref json) if json == r#"{"value":55}"#),
            "{out:?}"
        );
        for input in [
            serde_json::json!({}),
            serde_json::json!({ "n": -1 }),
            serde_json::json!({ "n": "3" }),
        ] {
            match plugin.run(invocation("fibo", input)) {
                wit::Outcome::Failed(err) => assert_eq!(err.kind, wit::ErrorKind::Config),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
