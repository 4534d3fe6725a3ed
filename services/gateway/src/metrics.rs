//! Per-route latency and status counts, in the process's default registry so
//! `/metrics` serves them beside the bus and runtime metrics. The `route`
//! label is the route template (`/api/v1/flows/{correlation}`), never the raw
//! path, so label cardinality is bounded by the route table.

use std::sync::LazyLock;
use std::time::Duration;

use axum::http::StatusCode;
use prometheus::{HistogramVec, IntCounterVec, register_histogram_vec, register_int_counter_vec};

/// Buckets from 0.5 ms: a gateway hop to a ping is about a millisecond, and
/// the interesting tail is between 5 ms and the timeouts.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub static REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "vbp_gateway_request_duration_seconds",
        "Time from request to response at the gateway, by route",
        &["method", "route"],
        BUCKETS.to_vec()
    )
    .expect("metric registers once")
});

pub static RESPONSES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vbp_gateway_responses_total",
        "Responses of the gateway, by route and status",
        &["method", "route", "status"]
    )
    .expect("metric registers once")
});

pub fn observe(method: &str, route: &str, status: StatusCode, elapsed: Duration) {
    REQUEST_SECONDS
        .with_label_values(&[method, route])
        .observe(elapsed.as_secs_f64());
    RESPONSES
        .with_label_values(&[method, route, status.as_str()])
        .inc();
}

/// Registers the metrics up front, so `/metrics` lists them before the first
/// request.
pub fn register() {
    LazyLock::force(&REQUEST_SECONDS);
    LazyLock::force(&RESPONSES);
}
