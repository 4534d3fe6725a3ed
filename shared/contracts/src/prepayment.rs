//! Events of the prepayment service (预付金): calculation from effective
//! agreements, approval, disbursement (划拨), offsets (冲抵) against
//! settlements, period-end deductions (冲减) and next-period blocks.
//!
//! Subjects: `{ns}.evt.prepayment.ledger.{event}`: one ledger per hospital ×
//! project × period. Consumers ignore unknown fields.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use vbp_kernel::{BasisPoints, Money, OrgId, RegionCode};

use crate::agreements::{AgreementId, PeriodId, ProjectId};
use crate::event::Event;
use crate::files::ExportedFile;
use crate::orders::SettlementId;
use crate::page::{default_page, default_page_size};
use crate::service::Service;

pub use crate::page::Page;

vbp_kernel::define_id! {
    /// One prepayment ledger: hospital × project × period.
    pub LedgerId
}

vbp_kernel::define_id! {
    /// One immutable ledger entry.
    pub EntryId
}

/// One agreement version that went into a calculation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CalculationInput {
    pub agreement: AgreementId,
    pub version: i32,
    pub agreed_amount_fen: Money,
}

/// How an offset is recovered from settlements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OffsetRule {
    /// settled amount × ratio.
    Proportional,
    /// The whole settled amount until the balance is zero.
    OneToOne,
}

/// A prepayment was (re)calculated: `amount_fen = agreed_amount_fen × ratio`,
/// half-up to the fen. A recalculation carries the difference to the previous
/// figure in `adjustment_fen`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrepaymentCalculated {
    pub ledger: LedgerId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub project: ProjectId,
    pub period: PeriodId,
    pub agreed_amount_fen: Money,
    pub ratio: BasisPoints,
    pub amount_fen: Money,
    /// amount − previous amount (zero on the first calculation).
    pub adjustment_fen: Money,
    pub inputs: Vec<CalculationInput>,
    /// The configuration rule applied, e.g. `region:210000/project:ZJHCCG-2022-01`.
    pub rule: String,
    pub calculated_at: DateTime<Utc>,
}

impl Event for PrepaymentCalculated {
    const SERVICE: Service = Service::Prepayment;
    const AGGREGATE: &'static str = "ledger";
    const NAME: &'static str = "calculated";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrepaymentApproved {
    pub ledger: LedgerId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub project: ProjectId,
    pub period: PeriodId,
    pub amount_fen: Money,
    pub approved_by: OrgId,
    /// The Beijing date of the approval decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_on: Option<NaiveDate>,
    /// Disbursement is late after this instant (working days from approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disburse_by: Option<DateTime<Utc>>,
    pub approved_at: DateTime<Utc>,
}

impl Event for PrepaymentApproved {
    const SERVICE: Service = Service::Prepayment;
    const AGGREGATE: &'static str = "ledger";
    const NAME: &'static str = "approved";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrepaymentDisbursed {
    pub ledger: LedgerId,
    pub entry: EntryId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub project: ProjectId,
    pub period: PeriodId,
    pub amount_fen: Money,
    pub payment_reference: String,
    pub disbursed_on: NaiveDate,
    pub late: bool,
    pub balance_fen: Money,
    pub recorded_at: DateTime<Utc>,
}

impl Event for PrepaymentDisbursed {
    const SERVICE: Service = Service::Prepayment;
    const AGGREGATE: &'static str = "ledger";
    const NAME: &'static str = "disbursed";
}

/// Part of the prepayment was recovered (冲抵) from a settlement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrepaymentOffsetRecorded {
    pub ledger: LedgerId,
    pub entry: EntryId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub project: ProjectId,
    pub period: PeriodId,
    pub settlement: SettlementId,
    pub settled_fen: Money,
    pub rule: OffsetRule,
    pub amount_fen: Money,
    pub balance_fen: Money,
    pub recorded_at: DateTime<Utc>,
}

impl Event for PrepaymentOffsetRecorded {
    const SERVICE: Service = Service::Prepayment;
    const AGGREGATE: &'static str = "ledger";
    const NAME: &'static str = "offset_recorded";
}

/// At period end the unrecovered balance became a deduction (冲减) against
/// later settlements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrepaymentDeducted {
    pub ledger: LedgerId,
    pub entry: EntryId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub project: ProjectId,
    pub period: PeriodId,
    pub amount_fen: Money,
    pub balance_fen: Money,
    pub recorded_at: DateTime<Utc>,
}

impl Event for PrepaymentDeducted {
    const SERVICE: Service = Service::Prepayment;
    const AGGREGATE: &'static str = "ledger";
    const NAME: &'static str = "deducted";
}

/// A hospital gets no prepayment for `period` because an earlier period left
/// an unrecovered balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrepaymentBlocked {
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub project: ProjectId,
    pub period: PeriodId,
    pub blocking_ledger: LedgerId,
    pub unrecovered_fen: Money,
    pub reason: String,
    pub blocked_at: DateTime<Utc>,
}

impl Event for PrepaymentBlocked {
    const SERVICE: Service = Service::Prepayment;
    const AGGREGATE: &'static str = "ledger";
    const NAME: &'static str = "blocked";
}

/// An approved prepayment was not disbursed within the configured number of
/// working days after approval (Sichuan: 15).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrepaymentDisbursementOverdue {
    pub ledger: LedgerId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub project: ProjectId,
    pub period: PeriodId,
    pub amount_fen: Money,
    pub approved_at: DateTime<Utc>,
    pub disburse_by: DateTime<Utc>,
    pub flagged_at: DateTime<Utc>,
}

impl Event for PrepaymentDisbursementOverdue {
    const SERVICE: Service = Service::Prepayment;
    const AGGREGATE: &'static str = "ledger";
    const NAME: &'static str = "disbursement_overdue";
}

/// `(vbp-type, schema)` of every event of this service.
pub fn event_schemas() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        (
            "prepayment.ledger.calculated",
            schemars::schema_for!(PrepaymentCalculated),
        ),
        (
            "prepayment.ledger.approved",
            schemars::schema_for!(PrepaymentApproved),
        ),
        (
            "prepayment.ledger.disbursed",
            schemars::schema_for!(PrepaymentDisbursed),
        ),
        (
            "prepayment.ledger.offset_recorded",
            schemars::schema_for!(PrepaymentOffsetRecorded),
        ),
        (
            "prepayment.ledger.deducted",
            schemars::schema_for!(PrepaymentDeducted),
        ),
        (
            "prepayment.ledger.blocked",
            schemars::schema_for!(PrepaymentBlocked),
        ),
        (
            "prepayment.ledger.disbursement_overdue",
            schemars::schema_for!(PrepaymentDisbursementOverdue),
        ),
    ]
}

// ---------------------------------------------------------------------------
// Request/reply: `{ns}.rpc.prepayment.{operation}`
// ---------------------------------------------------------------------------

/// Where a ledger stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerState {
    /// Calculated, awaiting the bureau's approval.
    Calculated,
    Approved,
    Disbursed,
    /// The period ended; any unrecovered balance became a deduction.
    Closed,
    /// No prepayment: an earlier period left an unrecovered balance.
    Blocked,
}

impl LedgerState {
    pub const fn as_str(self) -> &'static str {
        match self {
            LedgerState::Calculated => "calculated",
            LedgerState::Approved => "approved",
            LedgerState::Disbursed => "disbursed",
            LedgerState::Closed => "closed",
            LedgerState::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<LedgerState> {
        [
            LedgerState::Calculated,
            LedgerState::Approved,
            LedgerState::Disbursed,
            LedgerState::Closed,
            LedgerState::Blocked,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// Kind of an immutable ledger entry; its signed amount moves the balance
/// (what the hospital still owes the fund).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// + the prepayment paid out (划拨).
    Disbursed,
    /// − recovered from a settlement (冲抵).
    Offset,
    /// − the unrecovered balance at period end, deducted (冲减) from later settlements.
    Deduction,
    /// ± a recalculation after disbursement (amendment).
    Adjustment,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EntryView {
    pub entry: EntryId,
    pub kind: EntryKind,
    /// Signed effect on the balance.
    pub amount_fen: Money,
    /// The balance after this entry.
    pub balance_fen: Money,
    /// What caused it: an event id or an RPC request, with its business key.
    pub cause: String,
    pub recorded_at: DateTime<Utc>,
}

/// One (re)calculation, kept forever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CalculationView {
    pub seq: i32,
    pub agreed_amount_fen: Money,
    pub ratio: BasisPoints,
    pub amount_fen: Money,
    pub adjustment_fen: Money,
    pub inputs: Vec<CalculationInput>,
    pub rule: String,
    pub cause: String,
    pub calculated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LedgerView {
    pub ledger: LedgerId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub project: ProjectId,
    pub period: PeriodId,
    pub state: LedgerState,
    /// Current figures (the history is in `calculations`).
    pub agreed_amount_fen: Money,
    pub ratio: BasisPoints,
    pub amount_fen: Money,
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<OrgId>,
    /// When the approval was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<DateTime<Utc>>,
    /// The Beijing date of the approval decision (the disbursement deadline
    /// counts from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_on: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disburse_by: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disbursed_on: Option<NaiveDate>,
    /// Disbursement overdue or recorded after the deadline.
    pub late: bool,
    /// Why no prepayment is granted (blocked ledgers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_reason: Option<String>,
    /// Deducted at period end.
    pub deducted_fen: Money,
    /// Always Σ `entries[].amount_fen`.
    pub balance_fen: Money,
    pub entries: Vec<EntryView>,
    pub calculations: Vec<CalculationView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GetLedger {
    pub ledger: LedgerId,
}

/// Ledgers the actor may see (bureau: its region subtree; hospital: its own),
/// by region, then oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListLedgers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<LedgerState>,
    #[serde(default = "default_page")]
    pub page: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// The bureau of the hospital's region (at the configured level) approves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApproveLedger {
    pub ledger: LedgerId,
    /// The date of an approval decided before it is recorded here (e.g. on
    /// paper when the platform went live mid-period): not after today and
    /// not before the period's first day, Beijing. Default: today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_on: Option<NaiveDate>,
}

/// Records the disbursement (划拨) of an approved prepayment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DisburseLedger {
    pub ledger: LedgerId,
    pub payment_reference: String,
    pub disbursed_on: NaiveDate,
}

/// Totals per hospital region × project × period within the actor's scope.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SummariseRegions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegionSummaryRow {
    pub region: RegionCode,
    pub project: ProjectId,
    pub period: PeriodId,
    pub ledgers: i64,
    pub blocked: i64,
    pub agreed_amount_fen: Money,
    pub amount_fen: Money,
    pub disbursed_fen: Money,
    pub offset_fen: Money,
    pub deducted_fen: Money,
    pub adjustment_fen: Money,
    pub balance_fen: Money,
}

/// Sums over every row of a summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SummaryTotals {
    pub ledgers: i64,
    pub blocked: i64,
    pub agreed_amount_fen: Money,
    pub amount_fen: Money,
    pub disbursed_fen: Money,
    pub offset_fen: Money,
    pub deducted_fen: Money,
    pub adjustment_fen: Money,
    pub balance_fen: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegionSummary {
    pub rows: Vec<RegionSummaryRow>,
    #[serde(default)]
    pub total: SummaryTotals,
    /// Ledgers in scope whose balance is not Σ disbursed − Σ offsets −
    /// Σ deductions + Σ adjustments of their own entries (empty when sound).
    #[serde(default)]
    pub unreconciled: Vec<LedgerId>,
    /// Σ disbursed − Σ offsets − Σ deductions + Σ adjustments = Σ balances
    /// per ledger, in every row and in total.
    pub reconciled: bool,
}

/// Close an ended period now: what a period-end timer does, for periods
/// the service learned of only after they ended (history being loaded) and
/// for ledgers calculated after the close.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClosePeriod {
    pub period: PeriodId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PeriodClosed {
    pub period: PeriodId,
    /// Ledgers closed by this call (already closed ones are left alone).
    pub closed: i64,
    /// Of those, ledgers whose unrecovered balance became a deduction.
    pub deducted: i64,
}

/// A hospital's prepayment statement as `.xlsx`: every ledger in scope with
/// its calculation and each entry with the running balance. A hospital gets
/// its own; a bureau or the operator names the hospital.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExportStatement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodId>,
}

/// Recalculate every open ledger of hospitals in `region`'s subtree (e.g. a
/// whole province after a ratio change) as one operation: differences
/// become adjustments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecalculateLedgers {
    pub region: RegionCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecalculationResult {
    /// Ledgers looked at.
    pub ledgers: i64,
    /// Ledgers whose figure changed (a new calculation was recorded).
    pub changed: i64,
}

crate::rpc_operations! { Service::Prepayment, "prepayment";
    /// A ledger with its entries and calculations (scoped by actor).
    LedgerGet = "ledger_get" (GetLedger) -> LedgerView;
    /// Ledgers in the actor's scope.
    LedgerListOp = "ledger_list" (ListLedgers) -> Page<LedgerView>;
    /// Bureau approval of a calculated prepayment.
    LedgerApprove = "ledger_approve" (ApproveLedger) -> LedgerView;
    /// Record the disbursement of an approved prepayment.
    LedgerDisburse = "ledger_disburse" (DisburseLedger) -> LedgerView;
    /// Totals per region × project × period, with the reconciliation check.
    RegionSummaryOp = "region_summary" (SummariseRegions) -> RegionSummary;
    /// Recalculate a region's open ledgers in one transaction (operator, or
    /// a bureau over its own subtree).
    LedgerRecalculate = "ledger_recalculate" (RecalculateLedgers) -> RecalculationResult;
    /// Close an ended period: deductions (冲减) and next-period blocks.
    PeriodClose = "period_close" (ClosePeriod) -> PeriodClosed;
    /// A hospital's statement (ledgers, calculations, entries) as `.xlsx`.
    StatementExport = "statement_export" (ExportStatement) -> ExportedFile;
    /// Totals per region × project × period with the reconciliation, as `.xlsx`.
    SummaryExport = "summary_export" (SummariseRegions) -> ExportedFile;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agreements::testutil::{assert_event, props};
    use crate::subjects::Namespace;

    #[test]
    fn subjects_and_types_follow_the_contract() {
        let ns = Namespace::new("ln").unwrap();
        assert_event::<PrepaymentCalculated>(&ns, "prepayment.ledger.calculated");
        assert_event::<PrepaymentApproved>(&ns, "prepayment.ledger.approved");
        assert_event::<PrepaymentDisbursed>(&ns, "prepayment.ledger.disbursed");
        assert_event::<PrepaymentOffsetRecorded>(&ns, "prepayment.ledger.offset_recorded");
        assert_event::<PrepaymentDeducted>(&ns, "prepayment.ledger.deducted");
        assert_event::<PrepaymentBlocked>(&ns, "prepayment.ledger.blocked");
        assert_event::<PrepaymentDisbursementOverdue>(
            &ns,
            "prepayment.ledger.disbursement_overdue",
        );
        assert_eq!(event_schemas().len(), 7);
        assert_eq!(rpc_schemas().len(), 2 * OPERATIONS.len());
    }

    #[test]
    fn calculation_is_traceable_to_its_inputs() {
        let schema = schemars::schema_for!(PrepaymentCalculated);
        let p = props(&schema);
        for f in [
            "agreed_amount_fen",
            "ratio",
            "amount_fen",
            "adjustment_fen",
            "inputs",
            "rule",
        ] {
            assert!(p.contains(&f.to_owned()), "{f} missing from {p:?}");
        }
        let input = &schema.as_value()["$defs"]["CalculationInput"]["properties"];
        assert!(input["agreement"].is_object() && input["version"].is_object());
    }
}
