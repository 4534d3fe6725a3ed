//! The reconciliation report (对账): figures that two services keep of the
//! same business facts, compared key by key. Orders records what hospitals
//! accepted and paid; agreements counts the same acceptances as procurement
//! progress; prepayment recovers its advances from the same settlements.
//! Each keeps its own copy from events, so a lost or doubled event shows up
//! here as a difference, to the fen.
//!
//! Every service that keeps such figures answers the system operation
//! [`FIGURES`] with its figures in the caller's scope; the gateway
//! (`GET /api/v1/reconciliation`) and `vbp reconcile` ask them all and
//! [`compare`] them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vbp_kernel::{NationalCode, OrgId, RegionCode};

use crate::agreements::PeriodId;

use crate::service::Service;

/// The operation a service answers with its figures.
pub const FIGURES: &str = "reconcile_figures";

/// Which figures: all in the caller's scope, narrowed by period or region.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FiguresRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodId>,
    /// A region's subtree (within the caller's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionCode>,
}

/// What a figure measures.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Accepted quantity per period × hospital × product.
    AcceptedQuantity,
    /// Accepted amount in fen per period × hospital × product.
    AcceptedAmountFen,
    /// Settled (paid) amount in fen per period × hospital.
    SettledAmountFen,
}

/// One figure: a measure's value for one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Figure {
    pub measure: Measure,
    pub period: PeriodId,
    pub hospital: OrgId,
    /// Set for per-product measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_code: Option<NationalCode>,
    pub value: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FiguresResponse {
    pub figures: Vec<Figure>,
}

/// A pair of services that must agree on a measure: `source` is where the
/// fact happens, `mirror` keeps a copy of it from `source`'s events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Check {
    pub measure: Measure,
    pub source: Service,
    pub mirror: Service,
}

/// Every comparison the report makes.
pub const CHECKS: [Check; 3] = [
    Check {
        measure: Measure::AcceptedQuantity,
        source: Service::Orders,
        mirror: Service::Agreements,
    },
    Check {
        measure: Measure::AcceptedAmountFen,
        source: Service::Orders,
        mirror: Service::Agreements,
    },
    Check {
        measure: Measure::SettledAmountFen,
        source: Service::Orders,
        mirror: Service::Prepayment,
    },
];

/// The services asked for figures.
pub fn sources() -> Vec<Service> {
    let mut out: Vec<Service> = CHECKS.iter().flat_map(|c| [c.source, c.mirror]).collect();
    out.sort();
    out.dedup();
    out
}

/// One key on which the two services differ (a missing figure counts as 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Difference {
    pub period: PeriodId,
    pub hospital: OrgId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_code: Option<NationalCode>,
    pub source_value: i64,
    pub mirror_value: i64,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckResult {
    pub measure: Measure,
    pub source: Service,
    pub mirror: Service,
    /// Whether both services answered; an unanswered side is not compared.
    pub compared: bool,
    pub source_total: i64,
    pub mirror_total: i64,
    /// Keys either side holds.
    pub keys: usize,
    /// Every key on which they differ, in key order.
    pub differences: Vec<Difference>,
}

/// How a service answered the figures request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SourceAnswer {
    pub service: Service,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub figures: usize,
}

/// The report: clean when every check was compared and found no difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReconciliationReport {
    pub clean: bool,
    pub checks: Vec<CheckResult>,
    pub sources: Vec<SourceAnswer>,
}

type Key = (PeriodId, OrgId, Option<NationalCode>);

fn by_key(figures: &[Figure], measure: Measure) -> BTreeMap<Key, i64> {
    let mut out = BTreeMap::new();
    for f in figures.iter().filter(|f| f.measure == measure) {
        *out.entry((f.period, f.hospital, f.national_code.clone()))
            .or_insert(0) += f.value;
    }
    out
}

/// Compares what each service answered (`Err` = it did not answer).
pub fn compare(answers: &BTreeMap<Service, Result<Vec<Figure>, String>>) -> ReconciliationReport {
    let empty = Vec::new();
    let mut checks = Vec::new();
    for check in CHECKS {
        let source = answers.get(&check.source).and_then(|a| a.as_ref().ok());
        let mirror = answers.get(&check.mirror).and_then(|a| a.as_ref().ok());
        let compared = source.is_some() && mirror.is_some();
        let left = by_key(source.unwrap_or(&empty), check.measure);
        let right = by_key(mirror.unwrap_or(&empty), check.measure);
        let mut keys: Vec<&Key> = left.keys().chain(right.keys()).collect();
        keys.sort();
        keys.dedup();
        let differences = keys
            .iter()
            .filter_map(|k| {
                let (s, m) = (
                    left.get(*k).copied().unwrap_or(0),
                    right.get(*k).copied().unwrap_or(0),
                );
                (s != m).then(|| Difference {
                    period: k.0,
                    hospital: k.1,
                    national_code: k.2.clone(),
                    source_value: s,
                    mirror_value: m,
                })
            })
            .collect::<Vec<_>>();
        checks.push(CheckResult {
            measure: check.measure,
            source: check.source,
            mirror: check.mirror,
            compared,
            source_total: left.values().sum(),
            mirror_total: right.values().sum(),
            keys: keys.len(),
            differences: if compared { differences } else { Vec::new() },
        });
    }
    let sources = answers
        .iter()
        .map(|(service, answer)| SourceAnswer {
            service: *service,
            ok: answer.is_ok(),
            detail: answer.as_ref().err().cloned(),
            figures: answer.as_ref().map(Vec::len).unwrap_or(0),
        })
        .collect();
    ReconciliationReport {
        clean: checks
            .iter()
            .all(|c| c.compared && c.differences.is_empty()),
        checks,
        sources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(measure: Measure, hospital: OrgId, code: Option<&str>, value: i64) -> Figure {
        Figure {
            measure,
            period: PeriodId::from_uuid(uuid::Uuid::nil()),
            hospital,
            national_code: code.map(|c| c.parse().unwrap()),
            value,
        }
    }

    const CODE: &str = "C02010102000001034740000001";

    #[test]
    fn equal_figures_are_clean_and_a_missing_or_different_key_is_listed() {
        let h1 = OrgId::new();
        let h2 = OrgId::new();
        let orders = vec![
            fig(Measure::AcceptedQuantity, h1, Some(CODE), 10),
            fig(Measure::AcceptedQuantity, h2, Some(CODE), 4),
            fig(Measure::SettledAmountFen, h1, None, 72_000),
        ];
        let agreements = vec![
            fig(Measure::AcceptedQuantity, h1, Some(CODE), 10),
            fig(Measure::AcceptedQuantity, h2, Some(CODE), 4),
        ];
        let prepayment = vec![fig(Measure::SettledAmountFen, h1, None, 72_000)];
        let mut answers = BTreeMap::from([
            (Service::Orders, Ok(orders.clone())),
            (Service::Agreements, Ok(agreements)),
            (Service::Prepayment, Ok(prepayment)),
        ]);
        let report = compare(&answers);
        assert!(report.clean, "{report:?}");
        assert_eq!(report.checks[0].source_total, 14);

        // One acceptance doubled in agreements, one settlement lost in prepayment.
        answers.insert(
            Service::Agreements,
            Ok(vec![
                fig(Measure::AcceptedQuantity, h1, Some(CODE), 20),
                fig(Measure::AcceptedQuantity, h2, Some(CODE), 4),
            ]),
        );
        answers.insert(Service::Prepayment, Ok(vec![]));
        let report = compare(&answers);
        assert!(!report.clean);
        let quantity = &report.checks[0];
        assert_eq!(quantity.differences.len(), 1);
        assert_eq!(quantity.differences[0].hospital, h1);
        assert_eq!(
            (
                quantity.differences[0].source_value,
                quantity.differences[0].mirror_value
            ),
            (10, 20)
        );
        let settled = &report.checks[2];
        assert_eq!(settled.differences[0].mirror_value, 0);
        assert_eq!(settled.differences[0].source_value, 72_000);
    }

    #[test]
    fn a_service_that_does_not_answer_makes_the_report_unclean_not_wrong() {
        let answers = BTreeMap::from([
            (Service::Orders, Ok(vec![])),
            (Service::Agreements, Err("no responders".to_owned())),
            (Service::Prepayment, Ok(vec![])),
        ]);
        let report = compare(&answers);
        assert!(!report.clean);
        assert!(!report.checks[0].compared);
        assert!(report.checks[2].compared);
        assert!(report.sources.iter().any(|s| !s.ok));
        assert_eq!(
            sources(),
            vec![Service::Agreements, Service::Orders, Service::Prepayment]
        );
    }
}
