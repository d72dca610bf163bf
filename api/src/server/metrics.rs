//! Prometheus metrics: one process-wide recorder of the `metrics` facade
//! (so the host's and the engine's counters land here too), rendered by
//! the `/metrics` handler. No exporter HTTP listener: poem serves it.
//!
//! Series:
//! - `weft_http_request_duration_seconds{method,route,status}`: latency
//!   until the response head, by route *template* (`/api/v1/workflow-runs/{id}`;
//!   `unmatched` for unknown paths) and status class (`2xx`…), so label
//!   cardinality stays bounded whatever paths clients send;
//! - `weft_runs{status}`: runs by status, counted in the store at scrape
//!   time (right after a restart too);
//! - `weft_plugins`: installed plugins;
//! - `weft_step_duration_seconds{step_type,outcome}` (engine) and
//!   `weft_plugin_invocations_total` / `weft_plugin_invocation_failures_total`
//!   (host).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::web::Data;
use poem::{Response, handler};
use std::sync::OnceLock;
use std::time::Duration;
use weft_engine::Engine;
use weft_model::RunStatus;

/// Name of the HTTP latency histogram.
const HTTP_DURATION: &str = "weft_http_request_duration_seconds";

/// HTTP latency buckets (seconds): sub-millisecond reads up to slow
/// plugin uploads (compilation) of several seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns its handle.
/// Call it before the engine starts so that nothing recorded is lost.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), HTTP_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(weft_engine::metrics::STEP_DURATION.into()),
                    weft_engine::metrics::STEP_DURATION_BUCKETS,
                )
            });
        let builder = match builder {
            Ok(b) => b,
            // Only possible with empty bucket lists, which ours are not.
            Err(e) => {
                tracing::error!("metrics buckets rejected: {e}");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            tracing::warn!("another metrics recorder is installed; /metrics will be partial: {e}");
        }
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency until the response head, by method, route template and status class."
    );
    metrics::describe_gauge!(
        "weft_runs",
        "Workflow runs by status, counted in the store at scrape time."
    );
    metrics::describe_gauge!("weft_plugins", "Installed plugins.");
    metrics::describe_gauge!(
        "weft_store_up",
        "Whether the store answered the last scrape's queries (1) or not (0)."
    );
}

/// Drains histogram buckets into their summaries now and then, as the
/// exporter requires when it runs without its own listener.
pub fn spawn_upkeep() {
    let handle = install();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

/// Records one HTTP request.
pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let method = match method {
        "GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS" => method,
        // Extension methods are client-chosen strings: one bucket for all.
        _ => "OTHER",
    };
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::histogram!(HTTP_DURATION, "method" => method.to_owned(), "route" => route.to_owned(), "status" => class)
        .record(elapsed.as_secs_f64());
}

/// `GET /metrics` in the Prometheus text format.
#[handler]
pub async fn endpoint(engine: Data<&Engine>) -> Response {
    let handle = install();
    let all = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Paused,
        RunStatus::AwaitingInput,
        RunStatus::Success,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];
    // Scrapers present no credentials: the counts are read as the engine.
    match engine.run_counts(weft_model::Principal::system()).await {
        Ok(counts) => {
            for status in all {
                let n = counts
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("weft_runs", "status" => status.as_str()).set(n as f64);
            }
            metrics::gauge!("weft_store_up").set(1.0);
        }
        Err(e) => {
            tracing::warn!("/metrics: counting runs failed: {e}");
            metrics::gauge!("weft_store_up").set(0.0);
        }
    }
    metrics::gauge!("weft_plugins").set(
        engine
            .plugins(weft_model::Principal::system())
            .map(|p| p.len())
            .unwrap_or(0) as f64,
    );
    handle.run_upkeep();
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}
