//! Logs and traces. Spans always get OpenTelemetry ids (so trace context
//! propagates and logs carry `trace_id` even without a collector); spans are
//! exported over OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

fn provider(service_name: &str) -> SdkTracerProvider {
    let mut builder = SdkTracerProvider::builder().with_resource(
        Resource::builder()
            .with_service_name(service_name.to_owned())
            .build(),
    );
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => eprintln!("OTLP exporter not started: {e}"),
        }
    }
    builder.build()
}

/// Installs the global subscriber once per process; later calls are no-ops.
pub fn init(service_name: &str, format: LogFormat) {
    init_with(service_name, format, false);
}

/// For tests: output goes through the test harness's capture.
pub fn init_for_tests() {
    init_with("vbp-test", LogFormat::Pretty, true);
}

fn init_with(service_name: &str, format: LogFormat, test_writer: bool) {
    if PROVIDER.get().is_some() {
        return;
    }
    let provider = provider(service_name);
    let tracer = provider.tracer("vbp");
    if PROVIDER.set(provider).is_err() {
        return;
    }
    let filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn"))
    };
    let fmt = match (format, test_writer) {
        (LogFormat::Json, _) => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        (LogFormat::Pretty, true) => tracing_subscriber::fmt::layer().with_test_writer().boxed(),
        (LogFormat::Pretty, false) => tracing_subscriber::fmt::layer().boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(fmt.with_filter(filter()))
        .try_init();
}

/// Flushes spans still buffered for export.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.force_flush();
    }
}
