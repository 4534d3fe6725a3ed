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
use crate::page::{default_page, default_page_size};
use crate::service::Service;

pub use crate::page::Page;

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

vbp_kernel::define_id! {
    /// A bureau's flag that a winning product is short (供应紧张) in its region.
    pub ShortageId
}

vbp_kernel::define_id! {
    /// One entry of the non-winning substitute ledger (替代采购台账).
    pub SubstituteId
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
    /// What the hospital asked for, when a shortage cap reduced `quantity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_quantity: Option<i64>,
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
    /// The acceptance this invoice bills (its amount equals the accepted amount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance: Option<AcceptanceId>,
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
    /// The acceptance this payment settles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance: Option<AcceptanceId>,
    /// Why the item moved offline (channel `offline` only; audited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_reason: Option<String>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<SubstituteId>,
    /// The shortage flag that allowed the purchase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortage: Option<ShortageId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchased_on: Option<NaiveDate>,
}

impl Event for SubstituteRecorded {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "substitute";
    const NAME: &'static str = "recorded";
}

/// A bureau flagged a winning product short in its region (Hunan shortage
/// mode): order lines above `cap_per_line` are capped, hospitals with agreed
/// volume are served first, and hospitals may record substitutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShortageFlagged {
    pub shortage: ShortageId,
    pub region: RegionCode,
    pub national_code: NationalCode,
    pub cap_per_line: i64,
    pub bureau: OrgId,
    pub reason: String,
    pub flagged_at: DateTime<Utc>,
}

impl Event for ShortageFlagged {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "shortage";
    const NAME: &'static str = "flagged";
}

/// A bureau lifted a shortage flag; orders are no longer capped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShortageLifted {
    pub shortage: ShortageId,
    pub region: RegionCode,
    pub national_code: NationalCode,
    pub bureau: OrgId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub lifted_at: DateTime<Utc>,
}

impl Event for ShortageLifted {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "shortage";
    const NAME: &'static str = "lifted";
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
        ("orders.order.updated", schemars::schema_for!(OrderUpdated)),
        (
            "orders.substitute.recorded",
            schemars::schema_for!(SubstituteRecorded),
        ),
        (
            "orders.shortage.flagged",
            schemars::schema_for!(ShortageFlagged),
        ),
        (
            "orders.shortage.lifted",
            schemars::schema_for!(ShortageLifted),
        ),
    ]
}

// ---------------------------------------------------------------------------
// RPC (`{ns}.rpc.orders.{op}`)
// ---------------------------------------------------------------------------

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Placed, waiting for the distributor's response.
    Placed,
    /// Accepted in full or in part by the distributor; shipments follow.
    Confirmed,
    /// Refused by the distributor (with a reason).
    Refused,
}

/// One line of a hospital's order: the price must be the period's winning
/// price to the fen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlaceOrderLine {
    pub national_code: NationalCode,
    pub quantity: i64,
    pub unit_price_fen: Money,
}

/// A hospital places an order with a distributor (hospital only). The period
/// is the one running now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlaceOrder {
    pub distributor: OrgId,
    pub lines: Vec<PlaceOrderLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RespondLine {
    pub line_no: i32,
    pub confirmed_quantity: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The distributor answers an order: `accepted` (all lines in full),
/// `partial` (per-line confirmed quantities; a shortfall needs a reason) or
/// `refused` (a reason, e.g. out of stock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RespondOrder {
    pub order: OrderId,
    pub response: OrderResponse,
    #[serde(default)]
    pub lines: Vec<RespondLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DispatchLine {
    pub line_no: i32,
    pub batch_no: String,
    pub expiry_date: NaiveDate,
    pub quantity: i64,
}

/// The distributor ships (part of) a confirmed order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DispatchShipment {
    pub order: OrderId,
    pub shipment_no: String,
    pub lines: Vec<DispatchLine>,
}

/// The hospital records receipt of a shipment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReceiveShipment {
    pub shipment: ShipmentId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AcceptLine {
    pub line_no: i32,
    pub accepted_quantity: i64,
    #[serde(default)]
    pub rejected_quantity: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
}

/// The hospital accepts (验收) received quantities of an order; accepted +
/// rejected per line must not exceed what was received and not yet accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AcceptReceipt {
    pub order: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment: Option<ShipmentId>,
    pub lines: Vec<AcceptLine>,
}

/// The distributor records an invoice for one acceptance; the amount must
/// equal the accepted amount to the fen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueInvoice {
    pub acceptance: AcceptanceId,
    pub invoice_code: String,
    pub invoice_number: String,
    pub amount_fen: Money,
    pub tax_fen: Money,
    pub issued_on: NaiveDate,
}

/// The hospital (online) or the fund through a bureau (direct) pays an
/// invoiced acceptance. `offline` is not a payment: an item is moved to
/// offline settlement with `settlement_move_offline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaySettlement {
    pub acceptance: AcceptanceId,
    pub amount_fen: Money,
    pub channel: SettlementChannel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The business day (Beijing) the money was paid, when the payment is
    /// recorded after the fact; not in the future and not before the day of
    /// acceptance. Default: now. Timeliness is judged by this day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_on: Option<NaiveDate>,
}

/// Most items one invoice upload or payment run takes.
pub const RUN_MAX_ITEMS: usize = 500;

/// A distributor uploads many invoices at once (up to [`RUN_MAX_ITEMS`]),
/// each under the rules of `invoice_issue`. All are recorded, or none: an
/// item that breaks a rule is named in the error (`invoices[3].amount_fen`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueInvoices {
    pub invoices: Vec<IssueInvoice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InvoicedItem {
    pub acceptance: AcceptanceId,
    pub invoice: InvoiceId,
    pub amount_fen: Money,
}

/// What an invoice upload recorded, in the order of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InvoiceRun {
    pub items: Vec<InvoicedItem>,
    pub amount_fen: Money,
}

/// A payment run (批量支付): a hospital pays many invoiced acceptances at
/// once, or a bureau records the fund's direct settlements (up to
/// [`RUN_MAX_ITEMS`]), each under the rules of `settlement_pay`, an
/// acceptance at most once per run. All are paid, or none: an item that
/// breaks a rule is named in the error (`payments[3].amount_fen`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaySettlements {
    pub payments: Vec<PaySettlement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaidItem {
    pub acceptance: AcceptanceId,
    pub settlement: SettlementId,
    pub amount_fen: Money,
    pub paid_at: DateTime<Utc>,
    /// Paid before the acceptance's deadline.
    pub on_time: bool,
}

/// What a payment run recorded, in the order of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaymentRun {
    pub items: Vec<PaidItem>,
    pub amount_fen: Money,
}

/// A hospital declares purchases made outside the platform in a month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeclareOfflinePurchase {
    /// First day of the month.
    pub month: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_code: Option<NationalCode>,
    #[schemars(range(min = 1, max = MAX_DECLARED_FEN))]
    pub amount_fen: Money,
}

/// Largest offline purchase one hospital declares for one month (100 亿元),
/// far above any real figure; larger is a unit mistake.
pub const MAX_DECLARED_FEN: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OfflinePurchaseView {
    pub hospital: OrgId,
    pub month: NaiveDate,
    pub amount_fen: Money,
    pub declared_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetOrder {
    pub order: OrderId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListOrders {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributor: Option<OrgId>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderLineView {
    pub line_no: i32,
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
    pub quantity: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_quantity: Option<i64>,
    pub shipped_quantity: i64,
    pub received_quantity: i64,
    pub accepted_quantity: i64,
    pub rejected_quantity: i64,
    pub unit_price_fen: Money,
    pub amount_fen: Money,
    /// What the hospital asked for, when a shortage cap reduced `quantity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_quantity: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShipmentView {
    pub shipment: ShipmentId,
    pub shipment_no: String,
    pub lines: Vec<ShipmentLine>,
    pub shipped_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderView {
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
    pub state: OrderState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_reason: Option<String>,
    pub lines: Vec<OrderLineView>,
    pub shipments: Vec<ShipmentView>,
    pub total_amount_fen: Money,
    pub placed_at: DateTime<Utc>,
}

/// Where an accepted delivery stands in settlement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AcceptanceView {
    pub acceptance: AcceptanceId,
    pub order: OrderId,
    pub hospital: OrgId,
    pub distributor: OrgId,
    pub lines: Vec<AcceptedLine>,
    pub amount_fen: Money,
    pub accepted_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<InvoiceId>,
    pub paid_fen: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<DateTime<Utc>>,
    pub overdue: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListIngestRejections {
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// Rates of one month, for one hospital, or every hospital of a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueryRates {
    /// First day of the month.
    pub month: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
}

/// Settlement rate = settled ÷ due; timely rate = paid by the deadline ÷
/// due (acceptances due in the month); online rate = accepted on the
/// platform ÷ (that + declared offline purchases) for the month. Rates are
/// basis points, rounded half-up; `None` when the denominator is zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RatesView {
    pub month: NaiveDate,
    pub due_fen: Money,
    pub settled_fen: Money,
    pub settled_on_time_fen: Money,
    pub overdue_count: i64,
    pub online_fen: Money,
    pub offline_declared_fen: Money,
    /// Part of `settled_fen` moved to offline settlement (with reasons).
    #[serde(default)]
    pub settled_offline_fen: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_rate_bp: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timely_rate_bp: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_rate_bp: Option<u32>,
}

/// Acceptances (the payable items) the caller may see, newest first:
/// hospitals and distributors their own, bureaus their region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListAcceptances {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    /// Only those not yet settled in full.
    #[serde(default)]
    pub open_only: bool,
    /// Only those flagged overdue.
    #[serde(default)]
    pub overdue_only: bool,
    /// Only those not invoiced yet: a distributor's list to invoice (待开票).
    #[serde(default)]
    pub to_invoice: bool,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// The hospital moves the open amount of an acceptance to offline
/// settlement (e.g. the uploaded invoice is wrong); the reason, who and when
/// are kept for audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MoveOffline {
    pub acceptance: AcceptanceId,
    pub reason: String,
}

/// The audit trail of items moved to offline settlement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListOfflineSettlements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OfflineSettlementView {
    pub settlement: SettlementId,
    pub acceptance: AcceptanceId,
    pub order: OrderId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub distributor: OrgId,
    pub amount_fen: Money,
    pub reason: String,
    /// Who moved it (the token subject) and for which organisation.
    pub actor: String,
    pub actor_org: OrgId,
    pub moved_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub on_time: bool,
}

/// A bureau flags a product short in its region (its own or a part of
/// it). `cap_per_line` defaults to `[orders].shortage_line_cap`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlagShortage {
    pub national_code: NationalCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_per_line: Option<i64>,
    pub reason: String,
}

/// A bureau lifts its shortage flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LiftShortage {
    pub shortage: ShortageId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Shortage flags covering a region (default: all the caller may see);
/// lifted ones only when asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListShortages {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
    #[serde(default)]
    pub include_lifted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShortageView {
    pub shortage: ShortageId,
    pub region: RegionCode,
    pub national_code: NationalCode,
    pub cap_per_line: i64,
    pub bureau: OrgId,
    pub reason: String,
    pub flagged_by: String,
    pub flagged_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lift_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShortageList {
    pub items: Vec<ShortageView>,
}

/// A hospital records a non-winning substitute bought while a winning
/// product is flagged short in its region. The ledger is excluded from
/// assessment (rates, progress).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecordSubstitute {
    /// The winning product that is short.
    pub short_product: NationalCode,
    pub substitute_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitute_code: Option<NationalCode>,
    pub quantity: i64,
    pub amount_fen: Money,
    /// Business date of the purchase (Beijing).
    pub purchased_on: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SubstituteView {
    pub entry: SubstituteId,
    pub shortage: ShortageId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub period: PeriodId,
    pub short_product: NationalCode,
    pub substitute_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitute_code: Option<NationalCode>,
    pub quantity: i64,
    pub amount_fen: Money,
    pub purchased_on: NaiveDate,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListSubstitutes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

crate::rpc_operations! { Service::Orders, "orders";
    /// A hospital places an order (emits `order.placed`).
    OrderPlace = "order_place" (PlaceOrder) -> OrderView;
    /// The distributor accepts, partly accepts or refuses (emits `order.responded`).
    OrderRespond = "order_respond" (RespondOrder) -> OrderView;
    /// The distributor ships (emits `shipment.dispatched`).
    ShipmentDispatch = "shipment_dispatch" (DispatchShipment) -> OrderView;
    /// The hospital receives a shipment (emits `receipt.received`).
    ShipmentReceive = "shipment_receive" (ReceiveShipment) -> OrderView;
    /// The hospital accepts received quantities (emits `receipt.accepted`).
    ReceiptAccept = "receipt_accept" (AcceptReceipt) -> AcceptanceView;
    /// The distributor records the invoice of an acceptance (emits `invoice.issued`).
    InvoiceIssue = "invoice_issue" (IssueInvoice) -> AcceptanceView;
    /// Payment of an invoiced acceptance (emits `settlement.paid`).
    SettlementPay = "settlement_pay" (PaySettlement) -> AcceptanceView;
    /// A distributor uploads many invoices at once, all or none (emits `invoice.issued` each).
    InvoiceIssueBatch = "invoice_issue_batch" (IssueInvoices) -> InvoiceRun;
    /// A payment run: many invoiced acceptances paid at once, all or none (emits `settlement.paid` each).
    SettlementPayBatch = "settlement_pay_batch" (PaySettlements) -> PaymentRun;
    /// A hospital declares offline purchases (emits `offline_purchase.declared`).
    OfflinePurchaseDeclare = "offline_purchase_declare" (DeclareOfflinePurchase) -> OfflinePurchaseView;
    OrderGet = "order_get" (GetOrder) -> OrderView;
    OrderListOp = "order_list" (ListOrders) -> Page<OrderView>;
    /// An integrator's rejected messages (integrators see their own).
    IngestRejectionListOp = "ingest_rejection_list" (ListIngestRejections) -> Page<IngestRejected>;
    /// Settlement, timely and online rates of a month.
    RatesGet = "rates_get" (QueryRates) -> RatesView;
    /// Acceptances: what is to be invoiced and paid, and what is overdue.
    AcceptanceListOp = "acceptance_list" (ListAcceptances) -> Page<AcceptanceView>;
    /// The rates of a month per hospital, as `.xlsx`.
    RatesExport = "rates_export" (QueryRates) -> crate::files::ExportedFile;
    /// The hospital moves an item to offline settlement with a reason (emits `settlement.paid`, channel `offline`).
    SettlementMoveOffline = "settlement_move_offline" (MoveOffline) -> AcceptanceView;
    /// Items moved to offline settlement: who, when, why.
    OfflineSettlementListOp = "offline_settlement_list" (ListOfflineSettlements) -> Page<OfflineSettlementView>;
    /// A bureau flags a product short in its region (emits `shortage.flagged`). While
    /// flagged, an order line above the cap is capped to it, not split (the line keeps
    /// `requested_quantity`), and a distributor confirms the product to a hospital without
    /// an agreed volume for it only after answering the waiting orders of hospitals with one.
    ShortageFlag = "shortage_flag" (FlagShortage) -> ShortageView;
    /// A bureau lifts a shortage flag (emits `shortage.lifted`).
    ShortageLift = "shortage_lift" (LiftShortage) -> ShortageView;
    ShortageListOp = "shortage_list" (ListShortages) -> ShortageList;
    /// A hospital records a non-winning substitute purchase (emits `substitute.recorded`).
    SubstituteRecord = "substitute_record" (RecordSubstitute) -> SubstituteView;
    /// The substitute ledger (excluded from assessment).
    SubstituteListOp = "substitute_list" (ListSubstitutes) -> Page<SubstituteView>;
}

/// An integrator changed the lines of an order its distributor had not
/// answered yet; `lines` and the total replace the placed ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderUpdated {
    pub order: OrderId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub distributor: OrgId,
    pub lines: Vec<OrderLine>,
    pub total_amount_fen: Money,
    pub updated_at: DateTime<Utc>,
}

impl Event for OrderUpdated {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "order";
    const NAME: &'static str = "updated";
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
        assert_event::<ShortageFlagged>(&ns, "orders.shortage.flagged");
        assert_event::<ShortageLifted>(&ns, "orders.shortage.lifted");
        assert_event::<OrderUpdated>(&ns, "orders.order.updated");
        assert_eq!(event_schemas().len(), 14);
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
