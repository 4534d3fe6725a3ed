//! What integrators (hospital SPD/HIS/ERP platforms) publish on
//! `{ns}.ingest.{integrator}.{event}`, directly on NATS or through
//! `POST /api/v1/ingest/{integrator}`. The orders service consumes them.
//!
//! An integrator names each message with its own `external_id`; the platform
//! derives the de-duplication id from (integrator, external id), so a retry
//! from either path is recognised as the same message. The same external id
//! with another body is rejected; the first message under it stands.
//!
//! Messages of one order may arrive in any order: one whose predecessor (its
//! order, or the shipment a receipt names) has not arrived waits for it, and
//! is rejected when it has waited `orders.ingest_pending_timeout_secs`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use vbp_kernel::{NationalCode, OrgId};

/// The event names integrators may publish (the last subject token).
pub const ORDER_PLACED: &str = "order_placed";
pub const ORDER_UPDATED: &str = "order_updated";
pub const SHIPMENT_DISPATCHED: &str = "shipment_dispatched";
pub const ORDER_RECEIVED: &str = "order_received";
pub const ORDER_ACCEPTED: &str = "order_accepted";

pub const EVENTS: [&str; 5] = [
    ORDER_PLACED,
    ORDER_UPDATED,
    SHIPMENT_DISPATCHED,
    ORDER_RECEIVED,
    ORDER_ACCEPTED,
];

/// Largest quantity one line may carry; a guard against unit mistakes
/// (pieces vs boxes) rather than a business limit.
pub const MAX_LINE_QUANTITY: i64 = 1_000_000;

/// A hospital's order, as its system placed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPlaced {
    /// The integrator's own id for this order, unique per integrator.
    #[schemars(length(min = 1, max = 64))]
    pub external_id: String,
    pub hospital: OrgId,
    pub distributor: OrgId,
    pub placed_at: DateTime<Utc>,
    #[schemars(length(min = 1, max = 500))]
    pub lines: Vec<IngestOrderLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestOrderLine {
    pub national_code: NationalCode,
    #[schemars(range(min = 1, max = 1_000_000))]
    pub quantity: i64,
    /// Must equal the period's winning price, in fen.
    #[schemars(range(min = 1))]
    pub unit_price_fen: i64,
}

/// The hospital changed the lines of an order its distributor has not
/// answered yet. The new lines replace the old ones and follow the rules of
/// placement (winning price of the order's period, active relation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderUpdated {
    #[schemars(length(min = 1, max = 64))]
    pub external_id: String,
    /// The `external_id` of the order.
    #[schemars(length(min = 1, max = 64))]
    pub order_external_id: String,
    pub updated_at: DateTime<Utc>,
    #[schemars(length(min = 1, max = 500))]
    pub lines: Vec<IngestOrderLine>,
}

/// The distributor's shipping note (随货同行单), relayed by the hospital's
/// system. A shipment against an order the distributor has not answered on
/// the platform confirms that order in full: shipping is the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentDispatched {
    #[schemars(length(min = 1, max = 64))]
    pub external_id: String,
    /// The `external_id` of the order.
    #[schemars(length(min = 1, max = 64))]
    pub order_external_id: String,
    /// The distributor's shipment number, unique within the order.
    #[schemars(length(min = 1, max = 64))]
    pub shipment_no: String,
    pub shipped_at: DateTime<Utc>,
    #[schemars(length(min = 1, max = 500))]
    pub lines: Vec<ShippedLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippedLine {
    pub national_code: NationalCode,
    #[schemars(length(min = 1, max = 64))]
    pub batch_no: String,
    /// Must lie after the shipping day (Beijing time).
    pub expiry_date: NaiveDate,
    #[schemars(range(min = 1, max = 1_000_000))]
    pub quantity: i64,
}

/// The hospital received a shipment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderReceived {
    #[schemars(length(min = 1, max = 64))]
    pub external_id: String,
    /// The `external_id` of the order.
    #[schemars(length(min = 1, max = 64))]
    pub order_external_id: String,
    pub shipment_no: String,
    pub received_at: DateTime<Utc>,
}

/// The hospital accepted (验收) delivered quantities; only these count toward progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderAccepted {
    #[schemars(length(min = 1, max = 64))]
    pub external_id: String,
    #[schemars(length(min = 1, max = 64))]
    pub order_external_id: String,
    pub accepted_at: DateTime<Utc>,
    #[schemars(length(min = 1, max = 500))]
    pub lines: Vec<AcceptedLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptedLine {
    pub national_code: NationalCode,
    #[schemars(range(min = 0, max = 1_000_000))]
    pub accepted_quantity: i64,
    #[schemars(range(min = 0, max = 1_000_000))]
    pub rejected_quantity: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
}

/// The de-duplication id of an integrator message.
pub fn message_id(integrator: &str, external_id: &str) -> String {
    format!("ingest:{integrator}:{external_id}")
}

/// JSON Schema of an ingest event by its name.
pub fn schema_of(event: &str) -> Option<schemars::Schema> {
    Some(match event {
        ORDER_PLACED => schemars::schema_for!(OrderPlaced),
        ORDER_UPDATED => schemars::schema_for!(OrderUpdated),
        SHIPMENT_DISPATCHED => schemars::schema_for!(ShipmentDispatched),
        ORDER_RECEIVED => schemars::schema_for!(OrderReceived),
        ORDER_ACCEPTED => schemars::schema_for!(OrderAccepted),
        _ => return None,
    })
}
