//! Prometheus metrics of the delivery machinery, served by every process's
//! `/metrics` (the default registry).

use std::sync::LazyLock;

use prometheus::{
    HistogramVec, IntCounterVec, IntGaugeVec, register_histogram_vec, register_int_counter_vec,
    register_int_gauge_vec,
};

pub static OUTBOX_BACKLOG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "vbp_outbox_backlog",
        "Outbox rows not yet published",
        &["service"]
    )
    .expect("metric registers once")
});

pub static OUTBOX_PUBLISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vbp_outbox_published_total",
        "Outbox rows published and acknowledged by JetStream",
        &["service"]
    )
    .expect("metric registers once")
});

pub static OUTBOX_PUBLISH_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vbp_outbox_publish_errors_total",
        "Outbox rows whose publish failed and will be retried",
        &["service"]
    )
    .expect("metric registers once")
});

pub static CONSUMED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vbp_consumer_messages_total",
        "Messages handled by inbox consumers, by outcome (applied, duplicate, retry, dead)",
        &["service", "consumer", "outcome"]
    )
    .expect("metric registers once")
});

pub static REDELIVERIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vbp_consumer_redeliveries_total",
        "Messages received more than once by inbox consumers",
        &["service", "consumer"]
    )
    .expect("metric registers once")
});

pub static CONSUMER_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "vbp_consumer_pending",
        "Messages in the stream not yet delivered to the durable consumer",
        &["service", "consumer"]
    )
    .expect("metric registers once")
});

pub static DLQ_SIZE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "vbp_dlq_size",
        "Dead letters not yet replayed",
        &["service"]
    )
    .expect("metric registers once")
});

pub static RPC_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "vbp_rpc_duration_seconds",
        "RPC handling time by service, operation and outcome",
        &["service", "operation", "outcome"],
        vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
        ]
    )
    .expect("metric registers once")
});

pub static TIMER_BACKLOG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "vbp_timer_backlog",
        "Timers due but not yet fired",
        &["service"]
    )
    .expect("metric registers once")
});
