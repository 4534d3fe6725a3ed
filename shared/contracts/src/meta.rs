use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vbp_kernel::{Actor, CorrelationId, EventId};

/// What travels in the headers beside a payload. The body is only the payload
/// JSON, so an integrator's message and a service's event read the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MessageMeta {
    pub id: EventId,
    pub event_type: String,
    pub version: u32,
    pub correlation: CorrelationId,
    pub causation: Option<EventId>,
    pub actor: Option<Actor>,
    pub occurred_at: DateTime<Utc>,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}
