//! Distribution relations (配送关系): manufacturers' authorisations by area,
//! hospitals' selections (点配送), distributors' confirmations, changes
//! approved by the hospital's territorial bureau, remote areas and the
//! listing rule. The service scopes every answer by the caller's Actor.

use axum::http::{Method, StatusCode};
use vbp_contracts::distribution::*;
use vbp_kernel::OrgKind::{Bureau, Distributor, Hospital, Manufacturer, Operator};

use super::Route;

pub const TAG: &str = "distribution";

fn r<Op: vbp_contracts::RpcOp>(method: Method, path: &str, zh: &str, en: &str) -> Route {
    Route::op::<Op>(method, path).summary(zh, en).tag(TAG)
}

pub fn routes() -> Vec<Route> {
    use Method as M;
    let parties = [Hospital, Manufacturer, Distributor, Bureau, Operator];
    vec![
        r::<AuthorisationGrant>(
            M::POST,
            "/authorisations",
            "生产企业授权配送企业（按区域、产品）",
            "Authorise a distributor for products and areas",
        )
        .allow([Manufacturer])
        .status(StatusCode::CREATED),
        r::<AuthorisationList>(
            M::GET,
            "/authorisations",
            "配送授权列表",
            "List authorisations",
        )
        .allow(parties),
        r::<AuthorisationGet>(
            M::GET,
            "/authorisations/{authorisation}",
            "配送授权详情",
            "Get an authorisation",
        )
        .allow(parties),
        r::<AuthorisationConfirm>(
            M::POST,
            "/authorisations/{authorisation}/confirm",
            "配送企业确认授权",
            "Confirm an authorisation (distributor)",
        )
        .allow([Distributor]),
        r::<AuthorisationRefuse>(
            M::POST,
            "/authorisations/{authorisation}/refuse",
            "配送企业拒绝授权",
            "Refuse an authorisation with a reason (distributor)",
        )
        .allow([Distributor]),
        r::<AuthorisationRevoke>(
            M::POST,
            "/authorisations/{authorisation}/revoke",
            "撤销授权",
            "Revoke an authorisation (manufacturer)",
        )
        .allow([Manufacturer]),
        r::<RelationSelect>(
            M::POST,
            "/relations/select",
            "医疗机构点配送",
            "Select distributors for a product (hospital)",
        )
        .allow([Hospital])
        .status(StatusCode::CREATED),
        r::<RelationList>(
            M::GET,
            "/relations",
            "配送关系列表",
            "List distribution relations",
        )
        .allow(parties),
        r::<RelationAt>(
            M::GET,
            "/relations/at",
            "某日由谁配送",
            "Who delivered a product to a hospital on a date",
        )
        .allow(parties),
        r::<RelationGet>(
            M::GET,
            "/relations/{relation}",
            "配送关系详情",
            "Get a distribution relation",
        )
        .allow(parties),
        r::<RelationConfirm>(
            M::POST,
            "/relations/{relation}/confirm",
            "配送企业确认配送关系",
            "Confirm a selection (distributor)",
        )
        .allow([Distributor]),
        r::<RelationRefuse>(
            M::POST,
            "/relations/{relation}/refuse",
            "配送企业拒绝配送（需说明理由）",
            "Refuse a selection with a reason (distributor)",
        )
        .allow([Distributor]),
        r::<ChangeRequest>(
            M::POST,
            "/changes",
            "申请更换配送企业",
            "Request a change of distributor",
        )
        .allow([Hospital, Manufacturer])
        .status(StatusCode::CREATED),
        r::<ChangeList>(
            M::GET,
            "/changes",
            "配送关系变更列表",
            "List change requests",
        )
        .allow(parties),
        r::<ChangeApprove>(
            M::POST,
            "/changes/{change}/approve",
            "属地医保部门核实确认变更",
            "Approve a change (the hospital's territorial bureau)",
        )
        .allow([Bureau])
        .error(
            StatusCode::FORBIDDEN,
            "not the hospital's territorial bureau",
        ),
        r::<ChangeReject>(
            M::POST,
            "/changes/{change}/reject",
            "属地医保部门驳回变更",
            "Reject a change with a reason (the hospital's territorial bureau)",
        )
        .allow([Bureau]),
        r::<WorkListOp>(
            M::GET,
            "/distribution/work-list",
            "待办：待确认、待审核",
            "Work list: confirmations and approvals waiting for the caller",
        )
        .allow(parties),
        r::<RemoteAreaMark>(
            M::PUT,
            "/remote-areas/{region}",
            "标记偏远地区",
            "Mark a county as remote (its bureau)",
        )
        .allow([Bureau]),
        r::<RemoteAreaListOp>(
            M::GET,
            "/remote-areas",
            "偏远地区及拒绝配送记录",
            "Remote areas and refusals",
        )
        .allow([Bureau, Operator]),
        r::<ListingList>(
            M::GET,
            "/listings",
            "挂网状态（无配送关系预警、暂停）",
            "Listing states: at risk or suspended for lack of a relation",
        )
        .allow(parties),
        r::<DemoLoad>(
            M::POST,
            "/demo/distribution",
            "加载辽宁配送演示数据",
            "Load the Liaoning distribution demo",
        )
        .allow([Operator]),
    ]
}
