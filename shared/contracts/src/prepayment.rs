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
use crate::orders::SettlementId;
use crate::service::Service;

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
        assert_event::<PrepaymentCalculated>(&ns, "prepayment.ledger.calculated");
        assert_event::<PrepaymentApproved>(&ns, "prepayment.ledger.approved");
        assert_event::<PrepaymentDisbursed>(&ns, "prepayment.ledger.disbursed");
        assert_event::<PrepaymentOffsetRecorded>(&ns, "prepayment.ledger.offset_recorded");
        assert_event::<PrepaymentDeducted>(&ns, "prepayment.ledger.deducted");
        assert_event::<PrepaymentBlocked>(&ns, "prepayment.ledger.blocked");
        assert_eq!(event_schemas().len(), 6);
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
