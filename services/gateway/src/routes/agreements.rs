//! Agreements (协议管理): the organisation directory, projects, agreement
//! periods, supply lists, volume reports, agreed volumes, tripartite
//! agreements and procurement progress. The service scopes every answer by
//! the caller's Actor; these policies only say who may call at all.

use axum::http::{Method, StatusCode};
use vbp_contracts::agreements::*;
use vbp_kernel::OrgKind::{self, Bureau, Distributor, Hospital, Manufacturer, Operator};

use super::Route;

pub const TAG: &str = "agreements";

const MANAGERS: [OrgKind; 2] = [Bureau, Operator];
const PARTIES: [OrgKind; 5] = [Hospital, Manufacturer, Distributor, Bureau, Operator];

fn r<Op: vbp_contracts::RpcOp>(method: Method, path: &str, zh: &str, en: &str) -> Route {
    Route::op::<Op>(method, path).summary(zh, en).tag(TAG)
}

pub fn routes() -> Vec<Route> {
    use Method as M;
    vec![
        // Directory
        r::<OrgRegister>(M::POST, "/orgs", "登记机构", "Register an organisation")
            .allow(MANAGERS)
            .status(StatusCode::CREATED),
        r::<OrgList>(M::GET, "/orgs", "机构目录", "List organisations").allow_any(),
        r::<OrgGet>(M::GET, "/orgs/{org}", "机构详情", "Get an organisation").allow_any(),
        r::<OrgUpdate>(
            M::PATCH,
            "/orgs/{org}",
            "变更机构信息",
            "Update an organisation",
        )
        .allow(MANAGERS),
        r::<OrgImport>(
            M::POST,
            "/orgs/import",
            "批量登记机构",
            "Register organisations, all or nothing",
        )
        .allow(MANAGERS),
        r::<OrgImportFile>(
            M::POST,
            "/orgs/import-file",
            "从Excel导入机构",
            "Import organisations from .xlsx, all or nothing",
        )
        .allow(MANAGERS),
        // Projects and periods
        r::<ProjectRegister>(
            M::POST,
            "/projects",
            "登记集采项目",
            "Register a procurement project",
        )
        .allow(MANAGERS)
        .status(StatusCode::CREATED),
        r::<ProjectList>(
            M::GET,
            "/projects",
            "集采项目列表",
            "List procurement projects",
        )
        .allow_any(),
        r::<ProjectGet>(
            M::GET,
            "/projects/{project}",
            "集采项目详情",
            "Get a procurement project",
        )
        .allow_any(),
        r::<PeriodOpen>(
            M::POST,
            "/periods",
            "开启协议期（可沿用上期中选产品供应清单）",
            "Open an agreement period (optionally carrying the previous supply list over)",
        )
        .allow(MANAGERS)
        .status(StatusCode::CREATED),
        r::<PeriodGet>(
            M::GET,
            "/periods/{period}",
            "协议期详情",
            "Get an agreement period",
        )
        .allow_any(),
        // Supply lists
        r::<SupplyListGet>(
            M::GET,
            "/periods/{period}/supply-list",
            "中选产品供应清单",
            "The period's supply list of winning products",
        )
        .allow_any(),
        r::<SupplyListImport>(
            M::PUT,
            "/periods/{period}/supply-list/draft",
            "替换供应清单草稿",
            "Replace the draft supply list, all or nothing",
        )
        .allow(MANAGERS)
        .error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a row breaks a rule: every bad row is listed",
        ),
        r::<SupplyListImportFile>(
            M::POST,
            "/periods/{period}/supply-list/draft/file",
            "从Excel/CSV导入供应清单草稿",
            "Import the draft supply list from .xlsx or .csv, all or nothing",
        )
        .allow(MANAGERS)
        .error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a row breaks a rule: every bad row is listed",
        ),
        r::<SupplyListPublish>(
            M::POST,
            "/periods/{period}/supply-list/publish",
            "发布供应清单",
            "Publish the draft as the period's supply list",
        )
        .allow(MANAGERS),
        r::<SupplyListExport>(
            M::GET,
            "/periods/{period}/supply-list/export",
            "导出供应清单（Excel）",
            "Export the supply list (.xlsx, base64)",
        )
        .allow_any(),
        // Volume reports and agreed volumes
        r::<VolumeWindowOpen>(
            M::POST,
            "/periods/{period}/volume-window",
            "开启报量",
            "Open volume reporting",
        )
        .allow(MANAGERS),
        r::<VolumeWindowClose>(
            M::POST,
            "/periods/{period}/volume-window/close",
            "结束报量",
            "Close volume reporting",
        )
        .allow(MANAGERS),
        r::<VolumeReportSubmit>(
            M::POST,
            "/periods/{period}/volume-reports",
            "医疗机构报量",
            "Report volumes",
        )
        .allow([Hospital, Bureau, Operator]),
        r::<VolumeReportList>(
            M::GET,
            "/periods/{period}/volume-reports",
            "报量列表",
            "List volume reports",
        )
        .allow([Hospital, Bureau, Operator]),
        r::<AgreedVolumeSetOp>(
            M::PUT,
            "/periods/{period}/agreed-volumes",
            "确定协议采购量",
            "Set a hospital's agreed volume for a product group",
        )
        .allow(MANAGERS),
        r::<AgreedVolumeList>(
            M::GET,
            "/periods/{period}/agreed-volumes",
            "协议采购量",
            "List agreed volumes",
        )
        .allow(PARTIES),
        // Tripartite agreements
        r::<AgreementCreate>(
            M::POST,
            "/agreements",
            "起草三方协议",
            "Draft a tripartite agreement",
        )
        .allow([Hospital, Bureau, Operator])
        .status(StatusCode::CREATED),
        r::<AgreementList>(
            M::GET,
            "/agreements",
            "三方协议列表",
            "List tripartite agreements",
        )
        .allow(PARTIES),
        r::<AgreementGet>(
            M::GET,
            "/agreements/{agreement}",
            "三方协议详情",
            "Get a tripartite agreement",
        )
        .allow(PARTIES),
        r::<AgreementConfirm>(
            M::POST,
            "/agreements/{agreement}/confirm",
            "确认三方协议",
            "Confirm an agreement (hospital, then manufacturer, then distributors)",
        )
        .allow([Hospital, Manufacturer, Distributor])
        .error(
            StatusCode::CONFLICT,
            "not this party's turn, or the version is not current",
        ),
        r::<AgreementReject>(
            M::POST,
            "/agreements/{agreement}/reject",
            "拒绝三方协议",
            "Reject an agreement",
        )
        .allow([Hospital, Manufacturer, Distributor]),
        r::<AgreementAmend>(
            M::POST,
            "/agreements/{agreement}/amend",
            "变更三方协议（生成新版本）",
            "Amend an agreement (a new version; the old one is kept)",
        )
        .allow([Hospital, Manufacturer, Bureau, Operator]),
        r::<AgreementPaperSign>(
            M::POST,
            "/agreements/{agreement}/paper-signing",
            "登记纸质协议签订",
            "Record the paper signing (time and document SHA-256)",
        )
        .allow([Hospital, Bureau, Operator]),
        r::<AgreementPaperDeadline>(
            M::GET,
            "/periods/{period}/paper-deadline",
            "逾期未签纸质协议清单",
            "Agreements not signed on paper by the deadline, per region",
        )
        .allow(MANAGERS),
        // Progress
        r::<ProgressQuery>(
            M::GET,
            "/periods/{period}/progress",
            "采购进度（对比序时进度）",
            "Procurement progress against time progress",
        )
        .allow(PARTIES),
        r::<ProgressExport>(
            M::GET,
            "/periods/{period}/progress/export",
            "导出采购进度（Excel）",
            "Export procurement progress (.xlsx, base64)",
        )
        .allow(PARTIES)
        .error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too many rows: filter by region or hospital",
        ),
        r::<ProgressMonthly>(
            M::GET,
            "/periods/{period}/progress/monthly",
            "按月均衡采购情况",
            "Month-by-month purchases against the even share",
        )
        .allow(PARTIES),
        r::<ProgressSnapshotOp>(
            M::POST,
            "/periods/{period}/progress/snapshots",
            "生成周进度快照",
            "Take the weekly progress snapshot now",
        )
        .allow([Operator]),
        r::<FlagListOp>(
            M::GET,
            "/periods/{period}/flags",
            "异常标记（超量、进度慢、一刀切、报而不用、用而不报）",
            "Flags: over volume, slow, sudden stop, reported-not-used, used-not-reported",
        )
        .allow([Hospital, Bureau, Operator]),
        r::<DemoLoad>(
            M::POST,
            "/demo/agreements",
            "加载辽宁演示数据",
            "Load the Liaoning demo data",
        )
        .allow([Operator]),
    ]
}
