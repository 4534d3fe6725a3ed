//! What happens around every request: ids in and out (`X-Request-Id`,
//! `X-Correlation-Id`, `traceparent`), one span continued from the caller's
//! trace, the concurrency limit and the whole-request deadline, metrics, and
//! the final rendering of problems with the request's ids.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use vbp_contracts::headers;
use vbp_kernel::CorrelationId;

use crate::Gateway;
use crate::metrics;
use crate::problem::{Problem, codes};
use crate::routes::API_PREFIX;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
pub const TRACEPARENT: HeaderName = HeaderName::from_static(headers::TRACEPARENT);
const TRACESTATE: HeaderName = HeaderName::from_static(headers::TRACESTATE);

/// A client's request id is kept only when it is short, visible ASCII, so it
/// cannot smuggle anything into logs.
const MAX_REQUEST_ID_LEN: usize = 128;

/// A UUIDv7 from the thread-local generator: `Uuid::now_v7` asks the kernel
/// for randomness on every call, a syscall the request path pays twice.
pub fn fast_v7() -> uuid::Uuid {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random::<[u8; 10]>()).into_uuid()
}

/// What handlers learn about the request from the middleware.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    /// The business flow: the caller's `X-Correlation-Id`, else a new one.
    pub correlation: CorrelationId,
    /// Whether the caller chose `correlation` (sent `X-Correlation-Id`).
    pub client_correlation: bool,
    pub trace_id: Option<String>,
}

impl RequestContext {
    /// The context of `request` (a fresh one outside the middleware, e.g. in
    /// unit tests of handlers).
    pub fn of(request: &axum::http::request::Parts) -> RequestContext {
        request
            .extensions
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_else(|| RequestContext {
                request_id: uuid::Uuid::now_v7().to_string(),
                correlation: CorrelationId::new(),
                client_correlation: false,
                trace_id: None,
            })
    }
}

pub async fn observe(State(gateway): State<Gateway>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route_label = route.as_ref().map_or("unmatched", |r| r.as_str());
    let request_id = request_id_of(&request);
    let span = tracing::info_span!(
        "http_request",
        otel.name = %format_args!("{method} {route_label}"),
        otel.kind = "server",
        http.method = %method,
        http.route = route_label,
        http.status = tracing::field::Empty,
        request_id = %request_id,
        correlation = tracing::field::Empty,
        org = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let traceparent = header(&request, &TRACEPARENT);
    vbp_bus::trace::continue_trace(
        &span,
        traceparent.as_deref(),
        header(&request, &TRACESTATE).as_deref(),
    );
    // Without an OpenTelemetry layer the span has no trace id; the caller's
    // is still worth echoing in problems.
    let trace_id = vbp_bus::trace::trace_id_of(&span).or_else(|| {
        traceparent
            .as_deref()
            .and_then(vbp_bus::trace::trace_id_of_traceparent)
            .map(str::to_owned)
    });

    let (response, correlation) = match correlation_of(&request) {
        Err(problem) => (problem.into_response(), None),
        Ok((correlation, client_correlation)) => {
            span.record("correlation", tracing::field::display(correlation));
            request.extensions_mut().insert(RequestContext {
                request_id: request_id.clone(),
                correlation,
                client_correlation,
                trace_id: trace_id.clone(),
            });
            (
                run_bounded(&gateway, request, next, &span).await,
                Some(correlation),
            )
        }
    };

    let mut response = response;
    if let Some(problem) = response.extensions_mut().remove::<Problem>() {
        response = problem.render(uri.path(), trace_id.as_deref(), &request_id);
        if response.status().is_server_error() {
            tracing::warn!(parent: &span, status = response.status().as_u16(), "request failed");
        }
    }
    span.record("http.status", response.status().as_u16());
    set_id_headers(&mut response, &request_id, correlation, &span);
    metrics::observe(
        method.as_str(),
        route_label,
        response.status(),
        started.elapsed(),
    );
    response
}

fn header(request: &Request, name: &HeaderName) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The caller's `X-Request-Id` when it is short, visible ASCII; else a new one.
fn request_id_of(request: &Request) -> String {
    header(request, &X_REQUEST_ID)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .unwrap_or_else(|| fast_v7().to_string())
}

/// The caller's `X-Correlation-Id` (and that it was the caller's), or a new
/// flow; a malformed one is refused rather than silently replaced, since the
/// caller meant to join an existing flow.
fn correlation_of(request: &Request) -> Result<(CorrelationId, bool), Problem> {
    match header(request, &X_CORRELATION_ID) {
        None => Ok((CorrelationId::from_uuid(fast_v7()), false)),
        Some(value) => value.parse().map(|c| (c, true)).map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_HEADER,
                "X-Correlation-Id must be a UUID",
            )
            .with_field("X-Correlation-Id")
        }),
    }
}

/// Runs the rest of the stack inside the span, under the concurrency limit
/// (API routes only: health, metrics and docs stay reachable when the API is
/// saturated) and the whole-request deadline.
async fn run_bounded(
    gateway: &Gateway,
    request: Request,
    next: Next,
    span: &tracing::Span,
) -> Response {
    let permit = if request.uri().path().starts_with(API_PREFIX) {
        match gateway.concurrency.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                return Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::OVERLOADED,
                    "the gateway is at its concurrency limit; retry shortly",
                )
                .retry_after(1)
                .into_response();
            }
        }
    } else {
        None
    };
    let deadline = std::time::Duration::from_millis(gateway.config.request_timeout_ms);
    let outcome = tokio::time::timeout(deadline, next.run(request).instrument(span.clone())).await;
    drop(permit);
    outcome.unwrap_or_else(|_| {
        Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            codes::REQUEST_TIMEOUT,
            format!(
                "the request did not complete within {} ms",
                deadline.as_millis()
            ),
        )
        .into_response()
    })
}

/// `X-Request-Id`, `X-Correlation-Id` and the gateway span's `traceparent`
/// on every answer, so a client can quote any of them.
fn set_id_headers(
    response: &mut Response,
    request_id: &str,
    correlation: Option<CorrelationId>,
    span: &tracing::Span,
) {
    let out = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        out.insert(X_REQUEST_ID, v);
    }
    if let Some(c) = correlation
        && let Ok(v) = HeaderValue::from_str(&c.to_string())
    {
        out.insert(X_CORRELATION_ID, v);
    }
    if let (Some(tp), _) = vbp_bus::trace::carrier_of(span)
        && let Ok(v) = HeaderValue::from_str(&tp)
    {
        out.insert(TRACEPARENT, v);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_ids_are_time_ordered_v7() {
        let a = super::fast_v7();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::fast_v7();
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b);
        assert_ne!(super::fast_v7(), super::fast_v7());
    }
}
