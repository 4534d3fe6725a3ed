//! Prepayment funds (预付金): the ledger per hospital × project × period,
//! its approval and disbursement (划拨), offsets (冲抵) and deductions (冲减),
//! and a per-region summary for bureaus. The service scopes every answer.

use axum::http::{Method, StatusCode};
use vbp_contracts::prepayment::*;
use vbp_kernel::OrgKind::{Bureau, Hospital, Operator};

use super::Route;

pub const TAG: &str = "prepayment";

fn r<Op: vbp_contracts::RpcOp>(method: Method, path: &str, zh: &str, en: &str) -> Route {
    Route::op::<Op>(method, path).summary(zh, en).tag(TAG)
}

pub fn routes() -> Vec<Route> {
    use Method as M;
    vec![
        r::<LedgerListOp>(
            M::GET,
            "/prepayment/ledgers",
            "预付金台账列表",
            "List prepayment ledgers",
        )
        .allow([Hospital, Bureau, Operator]),
        r::<LedgerGet>(
            M::GET,
            "/prepayment/ledgers/{ledger}",
            "预付金台账（测算依据、分录、余额）",
            "A prepayment ledger: calculation inputs, entries, balance",
        )
        .allow([Hospital, Bureau, Operator]),
        r::<LedgerApprove>(
            M::POST,
            "/prepayment/ledgers/{ledger}/approve",
            "审核预付金",
            "Approve the prepayment (the hospital's bureau)",
        )
        .allow([Bureau]),
        r::<LedgerDisburse>(
            M::POST,
            "/prepayment/ledgers/{ledger}/disbursement",
            "登记预付金划拨",
            "Record the disbursement (payment reference and date)",
        )
        .allow([Bureau, Operator]),
        r::<RegionSummaryOp>(
            M::GET,
            "/prepayment/summary",
            "预付金区域汇总与对账",
            "Prepayment summary per region, with reconciliation",
        )
        .allow([Bureau, Operator]),
        r::<PeriodClose>(
            M::POST,
            "/prepayment/periods/{period}/close",
            "协议期结束结算（冲减、下期不予预付）",
            "Close an ended period: deductions and next-period blocks",
        )
        .allow([Bureau, Operator]),
        r::<StatementExport>(
            M::GET,
            "/prepayment/statement/export",
            "导出医疗机构预付金对账单（Excel）",
            "Export a hospital's prepayment statement (.xlsx, base64)",
        )
        .allow([Hospital, Bureau, Operator])
        .error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too many rows: filter by period",
        ),
        r::<SummaryExport>(
            M::GET,
            "/prepayment/summary/export",
            "导出预付金区域汇总与对账（Excel）",
            "Export the prepayment summary per region with reconciliation (.xlsx, base64)",
        )
        .allow([Bureau, Operator])
        .error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too many rows: filter by period",
        ),
        r::<LedgerRecalculate>(
            M::POST,
            "/prepayment/recalculations",
            "按新比例重新测算",
            "Recalculate a region's prepayments (after a ratio change)",
        )
        .allow([Bureau, Operator])
        // A province is one transaction over every open ledger (measured:
        // about 9 s for 600,000 agreement lines on 2 cores).
        .timeout(std::time::Duration::from_secs(120)),
    ]
}
