//! Issue direct reporting (集采问题直报): a hospital files, the platform
//! dispatches to the enterprises and the territorial bureau, each stage runs
//! on a working-day clock, and the hospital confirms or reopens. The service
//! scopes every answer by the caller's Actor.

use axum::http::{Method, StatusCode};
use vbp_contracts::issues::*;
use vbp_kernel::OrgKind::{Bureau, Distributor, Hospital, Manufacturer, Operator};

use super::Route;
use crate::evidence;
use vbp_contracts::RpcOp;

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
        .status(StatusCode::CREATED),
        Route::new(
            M::POST,
            "/issues/evidence",
            vbp_contracts::Service::Issues,
            EvidenceUpload::NAME,
        )
        .operation_id(evidence::UPLOAD)
        .summary(
            "上传证明材料（PDF/JPEG/PNG，加盖医疗机构公章的标记）",
            "Upload an evidence file (PDF, JPEG or PNG) before filing",
        )
        .describe(
            "The body is the file itself (not JSON), with `Content-Type` `application/pdf`, \
                 `image/jpeg` or `image/png`; query `file_name` (required) and `sealed` \
                 (true when the file bears the hospital's seal). The file is stored in the \
                 evidence object store; its type is recognised from its leading bytes and must \
                 equal the declared one, its size is limited (`issues.evidence_max_bytes`, \
                 10 MiB by default) and its SHA-256 is recorded. Name the returned `evidence` \
                 id in `POST /issues`.",
        )
        .response::<EvidenceView>()
        .tag(TAG)
        .allow([Hospital])
        .status(StatusCode::CREATED)
        .error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the file exceeds the size limit",
        ),
        r::<EvidenceGet>(
            M::GET,
            "/issues/evidence/{evidence}",
            "证明材料信息（类型、大小、SHA-256、盖章标记）",
            "Evidence metadata: type, size, SHA-256, seal (scoped like its issue)",
        )
        .allow(involved),
        Route::new(
            M::GET,
            "/issues/evidence/{evidence}/content",
            vbp_contracts::Service::Issues,
            EvidenceGet::NAME,
        )
        .operation_id(evidence::CONTENT)
        .summary(
            "下载证明材料",
            "Download an evidence file (scoped like its issue; X-Content-SHA256 header)",
        )
        .describe(
            "Answers the file's bytes with its `Content-Type`, `Content-Disposition` and \
                 its SHA-256 in `X-Content-SHA256` and `ETag`.",
        )
        .tag(TAG)
        .allow(involved),
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
        r::<IssueMarkFalse>(
            M::POST,
            "/issues/{issue}/false-report",
            "医保部门认定虚假上报（提醒医疗机构）",
            "Mark the report false (the handling bureau); counts toward the hospital's reminders",
        )
        .allow([Bureau]),
        r::<WorkListOp>(
            M::GET,
            "/issues/work-list",
            "待办：按到期时间排列的待响应、待处理、待确认事项",
            "Work list: what the caller must do next, soonest due first",
        )
        .allow(involved),
        r::<LedgerExportOp>(
            M::GET,
            "/issues/ledger/export",
            "季度台账报表（.xlsx）",
            "Quarterly ledger report as .xlsx (base64 in JSON)",
        )
        .allow([Bureau, Operator, Manufacturer, Distributor, Hospital]),
        r::<LedgerOp>(
            M::GET,
            "/issues/ledger",
            "问题台账统计（响应率、解决率、逾期）",
            "Ledger: response and resolution rates, overdue by stage, mean times, false reports",
        )
        .allow([Bureau, Operator, Manufacturer, Distributor, Hospital]),
    ]
}
