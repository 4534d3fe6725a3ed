//! Issue direct reporting (集采问题直报): a hospital files, the platform
//! dispatches to the enterprises and the territorial bureau, each stage runs
//! on a working-day clock, and the hospital confirms or reopens. The service
//! scopes every answer by the caller's Actor.

use axum::http::{Method, StatusCode};
use vbp_contracts::issues::*;
use vbp_kernel::OrgKind::{Bureau, Distributor, Hospital, Manufacturer, Operator};

use super::Route;

pub const TAG: &str = "issues";

fn r<Op: vbp_contracts::RpcOp>(method: Method, path: &str, zh: &str, en: &str) -> Route {
    Route::op::<Op>(method, path).summary(zh, en).tag(TAG)
}

pub fn routes() -> Vec<Route> {
    use Method as M;
    let involved = [Hospital, Manufacturer, Distributor, Bureau, Operator];
    vec![
        r::<IssueFile>(
            M::POST,
            "/issues",
            "医疗机构直报集采问题（自动派发）",
            "File an issue; it is dispatched to the enterprises and the territorial bureau",
        )
        .allow([Hospital])
        .status(StatusCode::CREATED)
        .error(
            StatusCode::NOT_IMPLEMENTED,
            "evidence files are not accepted yet",
        ),
        r::<IssueListOp>(M::GET, "/issues", "问题台账列表", "List issues").allow(involved),
        r::<IssueGet>(M::GET, "/issues/{issue}", "问题详情", "Get an issue").allow(involved),
        r::<IssueRespond>(
            M::POST,
            "/issues/{issue}/response",
            "企业响应（原因、解决方案、完成时限；客观原因须书面说明）",
            "Respond: cause, solution, completion date (a written statement for objective causes)",
        )
        .allow([Manufacturer, Distributor]),
        r::<IssueEscalate>(
            M::POST,
            "/issues/{issue}/escalation",
            "提请省级医保部门协调",
            "Escalate to the province (the territorial bureau)",
        )
        .allow([Bureau]),
        r::<IssueFeedback>(
            M::POST,
            "/issues/{issue}/feedback",
            "医保部门反馈处理结果",
            "Give the handling result (the bureau in charge)",
        )
        .allow([Bureau]),
        r::<IssueConfirm>(
            M::POST,
            "/issues/{issue}/confirmation",
            "医疗机构确认解决",
            "Confirm the resolution",
        )
        .allow([Hospital]),
        r::<IssueReopen>(
            M::POST,
            "/issues/{issue}/reopen",
            "医疗机构重新提出",
            "Reopen with a reason",
        )
        .allow([Hospital]),
        r::<DeadlinePreviewOp>(
            M::GET,
            "/issues/deadline-preview",
            "时限预览（按工作日，含节假日调休）",
            "Preview each stage's deadline for a dispatch time (working days, holidays)",
        )
        .allow_any(),
        r::<LedgerOp>(
            M::GET,
            "/issues/ledger",
            "问题台账统计（响应率、解决率、逾期）",
            "Ledger: response rate, resolution rate, overdue counts",
        )
        .allow([Bureau, Operator, Manufacturer, Distributor, Hospital]),
    ]
}
