//! Supervision (医保部门监管): weekly progress against time progress,
//! monthly reminders and quarterly notices to hospitals, the annual
//! assessment, enterprise credit records and findings detected from
//! delivery data. Bureaus see their region's subtree, hospitals their own
//! figures and items, enterprises the credit records and findings about
//! them; the service scopes every answer.

use axum::http::{Method, StatusCode};
use vbp_contracts::supervision::*;
use vbp_kernel::OrgKind::{Bureau, Distributor, Hospital, Manufacturer, Operator};

use super::Route;

pub const TAG: &str = "supervision";

fn r<Op: vbp_contracts::RpcOp>(method: Method, path: &str, zh: &str, en: &str) -> Route {
    Route::op::<Op>(method, path).summary(zh, en).tag(TAG)
}

pub fn routes() -> Vec<Route> {
    use Method as M;
    let monitored = [Hospital, Bureau, Operator];
    let credit_readers = [Manufacturer, Distributor, Bureau, Operator];
    vec![
        r::<ProgressWeekly>(
            M::GET,
            "/supervision/progress",
            "每周采购进度监测（与序时进度比较）",
            "Weekly procurement progress against time progress, per hospital or region",
        )
        .allow(monitored),
        r::<WorkItemsGenerate>(
            M::POST,
            "/supervision/work-items",
            "生成月度提醒或季度通报",
            "Generate a month's reminders or a quarter's notices for the caller's region",
        )
        .allow([Bureau, Operator]),
        r::<WorkItemsList>(
            M::GET,
            "/supervision/work-items",
            "提醒与通报列表",
            "Reminders and notices",
        )
        .allow(monitored),
        r::<WorkItemsExport>(
            M::GET,
            "/supervision/work-items/export",
            "导出提醒与通报（Excel）",
            "Export one month's or quarter's reminders and notices (.xlsx, base64)",
        )
        .allow(monitored)
        .error(StatusCode::PAYLOAD_TOO_LARGE, "too many rows for one export"),
        r::<Assessment>(
            M::GET,
            "/supervision/assessment",
            "年度考核指标",
            "Annual assessment figures per hospital",
        )
        .allow(monitored),
        r::<CreditFile>(
            M::POST,
            "/supervision/credit-records",
            "登记企业信用记录（限期整改）",
            "File a credit record against an enterprise, with a rectification deadline",
        )
        .allow([Bureau])
        .status(StatusCode::CREATED),
        r::<CreditList>(
            M::GET,
            "/supervision/credit-records",
            "企业信用记录列表",
            "Credit records (an enterprise sees its own)",
        )
        .allow(credit_readers),
        r::<CreditGet>(
            M::GET,
            "/supervision/credit-records/{record}",
            "企业信用记录（含处理经过）",
            "A credit record with its history",
        )
        .allow(credit_readers),
        r::<CreditRectify>(
            M::POST,
            "/supervision/credit-records/{record}/rectification",
            "确认整改完成",
            "Confirm the enterprise rectified (a bureau of the record's region)",
        )
        .allow([Bureau])
        .error(StatusCode::CONFLICT, "the record is not open"),
        r::<CreditClose>(
            M::POST,
            "/supervision/credit-records/{record}/close",
            "关闭信用记录",
            "Close a credit record without rectification (a bureau of the record's region)",
        )
        .allow([Bureau])
        .error(StatusCode::CONFLICT, "the record is not open"),
        r::<FindingsList>(
            M::GET,
            "/supervision/findings",
            "数据监测发现（选择性配送、完成约定量后停止配送）",
            "Findings detected from delivery data: selective delivery, stops after the agreed volume",
        )
        .allow(credit_readers),
        r::<ThresholdsGet>(
            M::GET,
            "/supervision/thresholds",
            "监管阈值配置",
            "The configured supervision thresholds",
        )
        .allow([Hospital, Manufacturer, Distributor, Bureau, Operator]),
    ]
}
