//! W3C trace context over NATS headers, so one business flow is one trace
//! from the gateway through every service it touches.

use std::collections::HashMap;
use std::sync::LazyLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use vbp_contracts::headers;

static PROPAGATOR: LazyLock<TraceContextPropagator> = LazyLock::new(TraceContextPropagator::new);

/// `traceparent` and `tracestate` of `span`, to be carried by what it sends.
pub fn carrier_of(span: &tracing::Span) -> (Option<String>, Option<String>) {
    let cx = span.context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    PROPAGATOR.inject_context(&cx, &mut carrier);
    (
        carrier.remove(headers::TRACEPARENT),
        carrier.remove(headers::TRACESTATE),
    )
}

pub fn current_carrier() -> (Option<String>, Option<String>) {
    carrier_of(&tracing::Span::current())
}

/// Continues the trace a received message carries, and records the trace id
/// on the span (a `trace_id` field declared `Empty`) for the JSON logs.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if let Some(traceparent) = traceparent {
        let mut carrier: HashMap<String, String> = HashMap::new();
        carrier.insert(headers::TRACEPARENT.to_owned(), traceparent.to_owned());
        if let Some(state) = tracestate {
            carrier.insert(headers::TRACESTATE.to_owned(), state.to_owned());
        }
        let parent = PROPAGATOR.extract(&carrier);
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    if let Some(id) = trace_id_of(span) {
        span.record("trace_id", id.as_str());
    }
}

/// The OpenTelemetry trace id of a span, when tracing is installed.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let span_ref = cx.span();
    let sc = span_ref.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The trace id inside a `traceparent` header value.
pub fn trace_id_of_traceparent(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    (trace_id.len() == 32).then_some(trace_id)
}
