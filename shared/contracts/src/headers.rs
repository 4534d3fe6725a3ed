//! Header names every message carries (DESIGN §3).

/// JetStream de-duplication key; always the event id.
pub const MSG_ID: &str = "Nats-Msg-Id";
pub const TYPE: &str = "vbp-type";
pub const VERSION: &str = "vbp-version";
/// One id for a whole business flow, carried from the first request onward.
pub const CORRELATION: &str = "vbp-correlation";
/// The id of the message that caused this one.
pub const CAUSATION: &str = "vbp-causation";
/// Who acted, as compact JSON of `vbp_kernel::Actor`, for audit and scoping.
pub const ACTOR: &str = "vbp-actor";
pub const OCCURRED_AT: &str = "vbp-occurred-at";
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
/// NATS micro service API error headers; an RPC error reply carries both,
/// plus a JSON [`crate::RpcErrorBody`] body.
pub const SERVICE_ERROR: &str = "Nats-Service-Error";
pub const SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";
