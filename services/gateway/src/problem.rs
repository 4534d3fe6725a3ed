//! RFC 9457 problem details: the one shape of every error the gateway
//! answers. `code` is stable (clients branch on it), `field` names the
//! offending input, `trace_id` and `request_id` tie the answer to the logs.
//!
//! Handlers return a [`Problem`]; the request middleware (which knows the
//! request's ids) renders it, so no handler has to thread ids through.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use vbp_bus::CallError;
use vbp_contracts::{RpcErrorBody, Service};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// Stable `code` values the gateway itself answers with (services add theirs).
pub mod codes {
    pub const MISSING_TOKEN: &str = "missing_token";
    pub const INVALID_TOKEN: &str = "invalid_token";
    pub const TOKEN_EXPIRED: &str = "token_expired";
    pub const TOKEN_NOT_YET_VALID: &str = "token_not_yet_valid";
    pub const FORBIDDEN: &str = "forbidden";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const MALFORMED_JSON: &str = "malformed_json";
    pub const JSON_TOO_COMPLEX: &str = "json_too_complex";
    pub const VALIDATION_FAILED: &str = "validation_failed";
    pub const CONFLICTING_PARAMETER: &str = "conflicting_parameter";
    pub const INVALID_HEADER: &str = "invalid_header";
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const SERVICE_UNAVAILABLE: &str = "service_unavailable";
    pub const SERVICE_TIMEOUT: &str = "service_timeout";
    pub const BUS_UNAVAILABLE: &str = "bus_unavailable";
    pub const BAD_GATEWAY: &str = "bad_gateway";
    pub const OVERLOADED: &str = "overloaded";
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    pub const INTERNAL: &str = "internal";
}

/// A problem details object (RFC 9457) with the platform's extensions. Boxed,
/// so results carrying it stay small on the happy path.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Problem(Box<ProblemDetails>);

/// The fields of a [`Problem`] (documented as the `Problem` schema).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[schemars(rename = "Problem")]
pub struct ProblemDetails {
    /// `urn:vbp:problem:{code}`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// The HTTP reason phrase of `status`.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// Stable machine-readable reason; clients branch on it.
    pub code: String,
    /// The offending input (`lines[0].quantity`, `limit`, ...) for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// W3C trace id of the request, to find it in the traces and logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Structured details a service attached.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
    #[serde(skip)]
    #[schemars(skip)]
    retry_after_secs: Option<u64>,
}

impl std::ops::Deref for Problem {
    type Target = ProblemDetails;

    fn deref(&self) -> &ProblemDetails {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemDetails {
        &mut self.0
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self(Box::new(ProblemDetails {
            type_uri: format!("urn:vbp:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            field: None,
            instance: None,
            trace_id: None,
            request_id: None,
            details: serde_json::Value::Null,
            retry_after_secs: None,
        }))
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Adds `Retry-After` (seconds) to the response.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// 422 naming the field that breaks a rule.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::VALIDATION_FAILED,
            detail,
        )
        .with_field(field)
    }

    /// 400 for a body that is not JSON at all.
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::MALFORMED_JSON, detail)
    }

    pub fn unauthorized(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, detail)
    }

    /// A service's error reply, answered with the status the service chose.
    /// A status outside 4xx/5xx would mean a broken service, not a client
    /// error, so it becomes 502.
    pub fn from_rpc(body: RpcErrorBody) -> Self {
        let status = StatusCode::from_u16(body.status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error());
        match status {
            Some(status) => Self::new(status, &body.code, body.message)
                .with_field(body.field.unwrap_or_default())
                .with_details(body.details),
            None => Self::new(
                StatusCode::BAD_GATEWAY,
                codes::BAD_GATEWAY,
                format!(
                    "the service answered with an invalid status {}",
                    body.status
                ),
            ),
        }
    }

    /// How a failed call to `service` looks to the client: whether the service
    /// refused, is not running, or did not answer in time.
    pub fn from_call(service: Service, operation: &str, err: CallError) -> Self {
        match err {
            CallError::Remote(e) => Self::from_rpc(e.0),
            CallError::NoResponders(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::SERVICE_UNAVAILABLE,
                format!("the {service} service is not running; retry later"),
            )
            .retry_after(5),
            CallError::Timeout(_, after) => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                codes::SERVICE_TIMEOUT,
                format!(
                    "the {service} service did not answer {operation} within {} ms",
                    after.as_millis()
                ),
            ),
            CallError::Transport(e) => {
                tracing::warn!(%service, operation, error = %e, "bus transport error");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::BUS_UNAVAILABLE,
                    "the message bus is unreachable; retry later",
                )
                .retry_after(5)
            }
            CallError::Decode(e) => {
                tracing::warn!(%service, operation, error = %e, "undecodable service reply");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    codes::BAD_GATEWAY,
                    format!("the {service} service sent an answer that could not be read"),
                )
            }
        }
    }

    /// The response with the request's ids filled in.
    pub(crate) fn render(
        mut self,
        instance: &str,
        trace_id: Option<&str>,
        request_id: &str,
    ) -> Response {
        self.instance = Some(instance.to_owned());
        self.trace_id = trace_id.map(str::to_owned);
        self.request_id = Some(request_id.to_owned());
        self.into_response()
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The gateway refuses an oversized body by its declared length,
            // unread, so the connection cannot carry another request; a
            // client told so opens a new one instead of failing its next
            // request with a broken pipe.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: tell the client which scheme and why.
            let challenge = format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                self.code
            );
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        // Kept for the request middleware, which re-renders with the ids.
        response.extensions_mut().insert(self);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use vbp_bus::RpcError;

    #[test]
    fn rpc_errors_keep_status_code_and_field() {
        let p = Problem::from_rpc(RpcError::invalid("lines[0].quantity", "must be at least 1").0);
        assert_eq!(p.status, 422);
        assert_eq!(p.code, "validation_failed");
        assert_eq!(p.field.as_deref(), Some("lines[0].quantity"));
        assert_eq!(p.type_uri, "urn:vbp:problem:validation_failed");

        let weird = RpcErrorBody {
            code: "x".into(),
            status: 200,
            message: "ok?".into(),
            field: None,
            details: serde_json::Value::Null,
        };
        assert_eq!(Problem::from_rpc(weird).status, 502);
    }

    #[test]
    fn call_failures_become_503_and_504() {
        let p = Problem::from_call(Service::Orders, "ping", CallError::NoResponders("s".into()));
        assert_eq!(
            (p.status, p.code.as_str()),
            (503, codes::SERVICE_UNAVAILABLE)
        );
        assert_eq!(p.retry_after_secs(), Some(5));
        let p = Problem::from_call(
            Service::Orders,
            "ping",
            CallError::Timeout("s".into(), Duration::from_millis(250)),
        );
        assert_eq!((p.status, p.code.as_str()), (504, codes::SERVICE_TIMEOUT));
        assert!(p.detail.contains("250 ms"), "{}", p.detail);
    }

    #[test]
    fn payload_too_large_closes_the_connection() {
        let response = Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::PAYLOAD_TOO_LARGE,
            "big",
        )
        .into_response();
        assert_eq!(response.headers()[header::CONNECTION], "close");
        let response = Problem::malformed_json("x").into_response();
        assert!(response.headers().get(header::CONNECTION).is_none());
    }

    #[test]
    fn renders_problem_json_with_headers() {
        let response = Problem::unauthorized(codes::TOKEN_EXPIRED, "expired")
            .retry_after(3)
            .render("/api/v1/x", Some("abc"), "req-1");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert!(
            response.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer ")
        );
        let p = response.extensions().get::<Problem>().unwrap();
        assert_eq!(p.trace_id.as_deref(), Some("abc"));
        assert_eq!(p.instance.as_deref(), Some("/api/v1/x"));
    }
}
