//! Operations every service answers, whatever its domain.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vbp_kernel::{Actor, CorrelationId, EventId};

use crate::service::Service;

/// Liveness over the bus, used by `/readyz` and the gateway benchmark.
pub const PING: &str = "ping";
/// A service's part of one business flow's timeline.
pub const FLOW: &str = "flow";

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PingRequest {}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PingResponse {
    pub service: Service,
    pub version: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlowRequest {
    pub correlation: CorrelationId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlowDirection {
    /// The service published this event (from its outbox).
    Emitted,
    /// The service consumed this event (from its inbox).
    Consumed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlowEntry {
    pub service: Service,
    pub direction: FlowDirection,
    pub event_id: EventId,
    pub event_type: String,
    pub subject: String,
    pub at: DateTime<Utc>,
    pub actor: Option<Actor>,
    pub causation: Option<EventId>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlowResponse {
    pub entries: Vec<FlowEntry>,
}

/// Published on `{ns}.dlq.{service}.{consumer}` when a consumer gives up on
/// a message; the same record stays in the service's `dlq` table for replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeadLetter {
    pub id: uuid::Uuid,
    pub service: Service,
    pub consumer: String,
    pub event_id: EventId,
    pub event_type: String,
    pub subject: String,
    pub reason: String,
    pub attempts: i32,
    /// The original body as text (lossy for non-UTF-8 bodies; the table
    /// keeps the exact bytes).
    pub payload: String,
    pub dead_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_requested_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_outcome: Option<String>,
}

pub const DEAD_LETTER_TYPE: &str = "dlq.dead_letter";

/// Operator operations on a service's dead letters.
pub const DLQ_LIST: &str = "dlq_list";
pub const DLQ_REPLAY: &str = "dlq_replay";

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DlqListRequest {
    #[serde(default = "default_dlq_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: i64,
}

fn default_dlq_limit() -> i64 {
    100
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DlqListResponse {
    pub letters: Vec<DeadLetter>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DlqReplayRequest {
    /// One dead letter, or every one not yet applied when absent.
    #[serde(default)]
    pub id: Option<uuid::Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DlqReplayResponse {
    pub requested: u64,
}
