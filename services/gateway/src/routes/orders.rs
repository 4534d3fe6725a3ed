//! Orders and settlement (订单与结算): the order lifecycle from placement to
//! payment, offline settlement moves, offline purchase declarations,
//! integrators' rejected messages, the settlement / timely / online rates and
//! shortage mode (flags, substitute ledger). The service scopes every answer.

use axum::http::{Method, StatusCode};
use vbp_contracts::orders::*;
use vbp_kernel::OrgKind::{Bureau, Distributor, Hospital, Integrator, Operator};

use super::Route;

pub const TAG: &str = "orders";

fn r<Op: vbp_contracts::RpcOp>(method: Method, path: &str, zh: &str, en: &str) -> Route {
    Route::op::<Op>(method, path).summary(zh, en).tag(TAG)
}

pub fn routes() -> Vec<Route> {
    use Method as M;
    vec![
        r::<OrderPlace>(
            M::POST,
            "/orders",
            "医疗机构下单（中选价格）",
            "Place an order at the winning price",
        )
        .allow([Hospital])
        .status(StatusCode::CREATED)
        .error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "price differs from the winning price, or no active relation",
        ),
        r::<OrderListOp>(M::GET, "/orders", "订单列表", "List orders").allow([
            Hospital,
            Distributor,
            Bureau,
            Integrator,
            Operator,
        ]),
        r::<OrderGet>(M::GET, "/orders/{order}", "订单详情", "Get an order").allow([
            Hospital,
            Distributor,
            Bureau,
            Integrator,
            Operator,
        ]),
        r::<OrderRespond>(
            M::POST,
            "/orders/{order}/response",
            "配送企业响应订单（接受、部分接受、拒绝并说明理由）",
            "Respond to an order: accept, partial, or refuse with a reason",
        )
        .allow([Distributor]),
        r::<ShipmentDispatch>(
            M::POST,
            "/orders/{order}/shipments",
            "发货（批号、有效期、数量）",
            "Dispatch a shipment (batch numbers, expiry, quantities)",
        )
        .allow([Distributor])
        .status(StatusCode::CREATED),
        r::<ShipmentReceive>(
            M::POST,
            "/shipments/{shipment}/receipt",
            "收货",
            "Receive a shipment",
        )
        .allow([Hospital]),
        r::<ReceiptAccept>(
            M::POST,
            "/orders/{order}/acceptances",
            "验收（合格与不合格数量及原因）",
            "Accept delivered quantities (accepted and rejected, with reasons)",
        )
        .allow([Hospital])
        .status(StatusCode::CREATED),
        r::<AcceptanceListOp>(
            M::GET,
            "/acceptances",
            "验收记录（待开票、待结算、逾期）",
            "Acceptances: to invoice, to pay, overdue",
        )
        .allow([Hospital, Distributor, Bureau, Operator]),
        r::<InvoiceIssue>(
            M::POST,
            "/acceptances/{acceptance}/invoice",
            "开具发票（须与验收金额一致）",
            "Issue the invoice (must equal the accepted amount)",
        )
        .allow([Distributor]),
        r::<SettlementPay>(
            M::POST,
            "/acceptances/{acceptance}/settlement",
            "结算回款（在线、医保直接结算）",
            "Pay: online by the hospital, or direct by the fund",
        )
        .allow([Hospital, Bureau, Operator]),
        r::<InvoiceIssueBatch>(
            M::POST,
            "/invoice-uploads",
            "批量上传发票（全部成功或全部不记录）",
            "Upload many invoices at once (all recorded, or none)",
        )
        .allow([Distributor]),
        r::<SettlementPayBatch>(
            M::POST,
            "/payment-runs",
            "批量支付（全部成功或全部不记录）",
            "A payment run: pay many invoiced acceptances at once (all paid, or none)",
        )
        .allow([Hospital, Bureau, Operator]),
        r::<SettlementMoveOffline>(
            M::POST,
            "/acceptances/{acceptance}/offline-settlement",
            "转线下结算（须说明理由，留痕）",
            "Move an item to offline settlement (reason required, audited)",
        )
        .allow([Hospital]),
        r::<OfflineSettlementListOp>(
            M::GET,
            "/offline-settlements",
            "转线下结算记录（操作人、时间、理由）",
            "Items moved to offline settlement: who, when, why",
        )
        .allow([Hospital, Distributor, Bureau, Operator]),
        r::<OfflinePurchaseDeclare>(
            M::POST,
            "/offline-purchases",
            "申报线下采购（用于计算网采率）",
            "Declare offline purchases (for the online rate)",
        )
        .allow([Hospital])
        .status(StatusCode::CREATED),
        r::<IngestRejectionListOp>(
            M::GET,
            "/ingest/rejections",
            "集成平台被拒消息及原因",
            "The caller's rejected ingest messages and why",
        )
        .allow([Integrator, Operator]),
        r::<RatesGet>(
            M::GET,
            "/rates",
            "结算率、及时结算率、网采率",
            "Settlement, timely settlement and online rates",
        )
        .allow([Hospital, Bureau, Operator]),
        r::<RatesExport>(
            M::GET,
            "/rates/export",
            "导出各医院结算率、及时结算率、网采率（Excel）",
            "Export the rates per hospital (.xlsx, base64)",
        )
        .allow([Hospital, Bureau, Operator])
        .error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too many rows: filter by region or hospital",
        ),
        r::<ShortageFlag>(
            M::POST,
            "/shortages",
            "医保部门标记中选产品供应紧张（设定单笔订单上限）",
            "Flag a winning product short in the region (cap per order line)",
        )
        .allow([Bureau])
        .status(StatusCode::CREATED),
        r::<ShortageLift>(
            M::POST,
            "/shortages/{shortage}/lift",
            "解除供应紧张标记",
            "Lift a shortage flag",
        )
        .allow([Bureau]),
        r::<ShortageListOp>(
            M::GET,
            "/shortages",
            "供应紧张产品清单",
            "Products flagged short",
        )
        .allow([Hospital, Distributor, Bureau, Operator]),
        r::<SubstituteRecord>(
            M::POST,
            "/substitutes",
            "登记非中选替代产品采购（工作台账，不纳入考核）",
            "Record a non-winning substitute purchase (ledger, excluded from assessment)",
        )
        .allow([Hospital])
        .status(StatusCode::CREATED),
        r::<SubstituteListOp>(
            M::GET,
            "/substitutes",
            "替代产品采购台账",
            "The substitute purchase ledger",
        )
        .allow([Hospital, Bureau, Operator]),
    ]
}
