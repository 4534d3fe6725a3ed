//! Events of the orders service: the order lifecycle from placement to
//! settlement. `receipt.accepted` is the input of the agreements service's
//! procurement progress; `settlement.paid` is the input of prepayment
//! offsets.
//!
//! Subjects: `{ns}.evt.orders.{aggregate}.{event}`. Consumers ignore unknown
//! fields; within version 1 fields are only added.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use vbp_kernel::{Money, NationalCode, OrgId, RegionCode};

use crate::agreements::PeriodId;
use crate::event::Event;
use crate::service::Service;

vbp_kernel::define_id! {
    /// A purchase order.
    pub OrderId
}

vbp_kernel::define_id! {
    /// One shipment (发货) of an order.
    pub ShipmentId
}

vbp_kernel::define_id! {
    /// One acceptance (验收) record.
    pub AcceptanceId
}

vbp_kernel::define_id! {
    /// An invoice.
    pub InvoiceId
}

vbp_kernel::define_id! {
    /// A settlement (payment) of accepted deliveries.
    pub SettlementId
}

/// How an order reached the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderSource {
    /// Placed through the platform's API by the hospital.
    Online,
    /// Published by an integrator (SPD/HIS/ERP) on the hospital's behalf.
    Integrator,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderLine {
    /// 1-based line number within the order.
    pub line_no: i32,
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
    pub quantity: i64,
    /// The period's winning price.
    pub unit_price_fen: Money,
    /// quantity × unit price.
    pub amount_fen: Money,
}

/// A hospital placed an order with a distributor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderPlaced {
    pub order: OrderId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub distributor: OrgId,
    pub source: OrderSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrator: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub lines: Vec<OrderLine>,
    pub total_amount_fen: Money,
    pub placed_at: DateTime<Utc>,
}

impl Event for OrderPlaced {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "order";
    const NAME: &'static str = "placed";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderResponse {
    Accepted,
    Partial,
    Refused,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RespondedLine {
    pub line_no: i32,
    pub national_code: NationalCode,
    pub confirmed_quantity: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The distributor accepted, partly accepted or refused (with a reason, e.g.
/// out of stock) an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderResponded {
    pub order: OrderId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub distributor: OrgId,
    pub response: OrderResponse,
    pub lines: Vec<RespondedLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub responded_at: DateTime<Utc>,
}

impl Event for OrderResponded {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "order";
    const NAME: &'static str = "responded";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShipmentLine {
    pub line_no: i32,
    pub national_code: NationalCode,
    pub batch_no: String,
    pub expiry_date: NaiveDate,
    pub quantity: i64,
}

/// The distributor shipped (part of) an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShipmentDispatched {
    pub shipment: ShipmentId,
    pub order: OrderId,
    pub hospital: OrgId,
    pub distributor: OrgId,
    pub shipment_no: String,
    pub lines: Vec<ShipmentLine>,
    pub shipped_at: DateTime<Utc>,
}

impl Event for ShipmentDispatched {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "shipment";
    const NAME: &'static str = "dispatched";
}

/// The hospital received a shipment (not yet accepted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShipmentReceived {
    pub shipment: ShipmentId,
    pub order: OrderId,
    pub hospital: OrgId,
    pub distributor: OrgId,
    pub received_at: DateTime<Utc>,
}

impl Event for ShipmentReceived {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "receipt";
    const NAME: &'static str = "received";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AcceptedLine {
    pub line_no: i32,
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
    pub accepted_quantity: i64,
    pub rejected_quantity: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    pub unit_price_fen: Money,
    /// accepted quantity × unit price.
    pub amount_fen: Money,
}

/// The hospital accepted (验收) delivered quantities. Only accepted
/// quantities count toward procurement progress (agreements) and become
/// payable (settlement deadline from `accepted_at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReceiptAccepted {
    pub acceptance: AcceptanceId,
    pub order: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment: Option<ShipmentId>,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub distributor: OrgId,
    pub source: OrderSource,
    pub lines: Vec<AcceptedLine>,
    /// Σ line amounts.
    pub amount_fen: Money,
    pub accepted_at: DateTime<Utc>,
    /// When payment is due (end of the following month by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_due_at: Option<DateTime<Utc>>,
}

impl Event for ReceiptAccepted {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "receipt";
    const NAME: &'static str = "accepted";
}

/// The distributor issued an invoice for accepted deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InvoiceIssued {
    pub invoice: InvoiceId,
    pub order: OrderId,
    pub hospital: OrgId,
    pub distributor: OrgId,
    pub invoice_code: String,
    pub invoice_number: String,
    /// Amount including tax.
    pub amount_fen: Money,
    pub tax_fen: Money,
    pub issued_on: NaiveDate,
    pub recorded_at: DateTime<Utc>,
}

impl Event for InvoiceIssued {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "invoice";
    const NAME: &'static str = "issued";
}

/// Who paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettlementChannel {
    /// The hospital paid through the platform.
    Online,
    /// The medical-insurance fund paid the enterprise directly (直接结算).
    Direct,
    /// Moved offline, with a reason (audited).
    Offline,
}

/// A settlement was paid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SettlementPaid {
    pub settlement: SettlementId,
    pub order: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<InvoiceId>,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    /// The enterprise paid (distributor, or manufacturer).
    pub payee: OrgId,
    pub amount_fen: Money,
    pub channel: SettlementChannel,
    pub due_at: DateTime<Utc>,
    pub paid_at: DateTime<Utc>,
    /// Paid by the deadline.
    pub on_time: bool,
}

impl Event for SettlementPaid {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "settlement";
    const NAME: &'static str = "paid";
}

/// An accepted delivery was not paid by its deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SettlementOverdue {
    pub order: OrderId,
    pub acceptance: AcceptanceId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub payee: OrgId,
    pub amount_fen: Money,
    pub due_at: DateTime<Utc>,
    pub flagged_at: DateTime<Utc>,
}

impl Event for SettlementOverdue {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "settlement";
    const NAME: &'static str = "overdue";
}

/// A hospital declared purchases made outside the platform, so the online
/// rate can be computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OfflinePurchaseDeclared {
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    /// First day of the month declared.
    pub month: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_code: Option<NationalCode>,
    pub amount_fen: Money,
    pub declared_at: DateTime<Utc>,
}

impl Event for OfflinePurchaseDeclared {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "offline_purchase";
    const NAME: &'static str = "declared";
}

/// An integrator message was rejected; nothing of it was applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IngestRejected {
    pub integrator: String,
    pub event: String,
    pub external_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: String,
    pub rejected_at: DateTime<Utc>,
}

impl Event for IngestRejected {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "ingest";
    const NAME: &'static str = "rejected";
}

/// In shortage mode a hospital bought a non-winning substitute; recorded in
/// a ledger and excluded from assessment (progress, online rate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SubstituteRecorded {
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub period: PeriodId,
    /// The winning product that was short.
    pub short_product: NationalCode,
    pub substitute_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitute_code: Option<NationalCode>,
    pub quantity: i64,
    pub amount_fen: Money,
    pub recorded_at: DateTime<Utc>,
}

impl Event for SubstituteRecorded {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "substitute";
    const NAME: &'static str = "recorded";
}

/// `(vbp-type, schema)` of every event of this service.
pub fn event_schemas() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        ("orders.order.placed", schemars::schema_for!(OrderPlaced)),
        (
            "orders.order.responded",
            schemars::schema_for!(OrderResponded),
        ),
        (
            "orders.shipment.dispatched",
            schemars::schema_for!(ShipmentDispatched),
        ),
        (
            "orders.receipt.received",
            schemars::schema_for!(ShipmentReceived),
        ),
        (
            "orders.receipt.accepted",
            schemars::schema_for!(ReceiptAccepted),
        ),
        (
            "orders.invoice.issued",
            schemars::schema_for!(InvoiceIssued),
        ),
        (
            "orders.settlement.paid",
            schemars::schema_for!(SettlementPaid),
        ),
        (
            "orders.settlement.overdue",
            schemars::schema_for!(SettlementOverdue),
        ),
        (
            "orders.offline_purchase.declared",
            schemars::schema_for!(OfflinePurchaseDeclared),
        ),
        (
            "orders.ingest.rejected",
            schemars::schema_for!(IngestRejected),
        ),
        (
            "orders.substitute.recorded",
            schemars::schema_for!(SubstituteRecorded),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agreements::testutil::{assert_event, props};
    use crate::subjects::Namespace;

    #[test]
    fn subjects_and_types_follow_the_contract() {
        let ns = Namespace::new("ln").unwrap();
        assert_event::<OrderPlaced>(&ns, "orders.order.placed");
        assert_event::<OrderResponded>(&ns, "orders.order.responded");
        assert_event::<ShipmentDispatched>(&ns, "orders.shipment.dispatched");
        assert_event::<ShipmentReceived>(&ns, "orders.receipt.received");
        assert_event::<ReceiptAccepted>(&ns, "orders.receipt.accepted");
        assert_event::<InvoiceIssued>(&ns, "orders.invoice.issued");
        assert_event::<SettlementPaid>(&ns, "orders.settlement.paid");
        assert_event::<SettlementOverdue>(&ns, "orders.settlement.overdue");
        assert_event::<OfflinePurchaseDeclared>(&ns, "orders.offline_purchase.declared");
        assert_event::<IngestRejected>(&ns, "orders.ingest.rejected");
        assert_event::<SubstituteRecorded>(&ns, "orders.substitute.recorded");
        assert_eq!(event_schemas().len(), 11);
        // The example of DESIGN §3.
        assert_eq!(
            ReceiptAccepted::subject(&Namespace::default()),
            "vbp.evt.orders.receipt.accepted"
        );
    }

    #[test]
    fn acceptance_carries_what_progress_and_prepayment_need() {
        let schema = schemars::schema_for!(ReceiptAccepted);
        let p = props(&schema);
        for f in [
            "hospital",
            "hospital_region",
            "period",
            "lines",
            "amount_fen",
            "accepted_at",
        ] {
            assert!(p.contains(&f.to_owned()), "{f} missing from {p:?}");
        }
        let line = &schema.as_value()["$defs"]["AcceptedLine"]["properties"];
        for f in [
            "national_code",
            "accepted_quantity",
            "rejected_quantity",
            "amount_fen",
        ] {
            assert!(line[f].is_object(), "line field {f} missing");
        }
        assert_eq!(line["amount_fen"]["$ref"], "#/$defs/Money");
        let p = props(&schemars::schema_for!(SettlementPaid));
        for f in ["amount_fen", "paid_at", "channel", "hospital", "period"] {
            assert!(p.contains(&f.to_owned()), "{f} missing from {p:?}");
        }
    }

    #[test]
    fn money_is_an_integer_of_fen_on_the_wire() {
        let line = AcceptedLine {
            line_no: 1,
            national_code: "C15011121200000107660000016".parse().unwrap(),
            manufacturer: OrgId::new(),
            accepted_quantity: 3,
            rejected_quantity: 1,
            rejection_reason: Some("包装破损".into()),
            unit_price_fen: Money::from_fen(72_000),
            amount_fen: Money::from_fen(216_000),
        };
        let v = serde_json::to_value(&line).unwrap();
        assert_eq!(v["amount_fen"], 216_000);
        assert_eq!(v["unit_price_fen"], 72_000);
        // Unknown fields are ignored (additive evolution).
        let mut extra = v.clone();
        extra["future_field"] = serde_json::json!(true);
        assert_eq!(serde_json::from_value::<AcceptedLine>(extra).unwrap(), line);
    }
}
