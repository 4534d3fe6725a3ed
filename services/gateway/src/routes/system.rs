//! The gateway's own routes: integrator ingest, flow timelines, and the
//! operator's per-service ping and dead-letter operations.

use axum::http::{Method, StatusCode};
use vbp_contracts::Service;
use vbp_contracts::reconcile::{FiguresRequest, ReconciliationReport};
use vbp_contracts::system::{
    self, DlqListRequest, DlqListResponse, DlqReplayRequest, DlqReplayResponse, PingRequest,
    PingResponse,
};
use vbp_kernel::OrgKind;

use super::{Route, Target};
use crate::flows::FlowTimeline;
use crate::ingest::{IngestBatch, IngestResponse};

pub const TAG_INGEST: &str = "ingest";
pub const TAG_FLOWS: &str = "flows";
pub const TAG_RECONCILIATION: &str = "reconciliation";
pub const TAG_OPS: &str = "operations";

pub fn routes() -> Vec<Route> {
    let mut routes = vec![
        Route::with_target(Method::POST, "/ingest/{integrator}", Target::Ingest)
            .allow([OrgKind::Integrator, OrgKind::Operator])
            .summary("集成平台订单事件批量接入", "Ingest a batch of integrator order events")
            .describe(
                "A hospital SPD/HIS/ERP platform (integrator) posts up to `ingest_max_batch` events. \
                 Each item is validated on its own and answered `accepted`, `duplicate` (already \
                 received: same integrator and external id), `rejected` (with the field and reason) \
                 or `failed` (the broker did not confirm; resend it). An integrator may post only \
                 for its own id, which is its `org` claim.",
            )
            .tag(TAG_INGEST)
            .request::<IngestBatch>()
            .response::<IngestResponse>(),
        Route::with_target(Method::GET, "/flows/{correlation}", Target::Flow)
            .allow([OrgKind::Operator])
            .summary("业务流程时间线", "Timeline of one business flow")
            .describe(
                "Every service's events (emitted and consumed) under one correlation id, merged by \
                 time. A service that does not answer is listed in `services` and the timeline is \
                 marked incomplete; the answer is still 200.",
            )
            .tag(TAG_FLOWS)
            .response::<FlowTimeline>(),
        Route::with_target(Method::GET, "/reconciliation", Target::Reconcile)
            .allow([OrgKind::Bureau, OrgKind::Operator])
            .summary("跨服务对账报告", "Reconciliation report across services")
            .describe(
                "Accepted quantities and amounts in orders against procurement progress in \
                 agreements, and settled amounts in orders against the settlements prepayment \
                 recovered from, per period × hospital (× product), within the caller's region. \
                 `clean` is true when every check was compared and no key differs; every \
                 difference is listed. A service that does not answer leaves its checks \
                 uncompared (see `sources`); the answer is still 200.",
            )
            .tag(TAG_RECONCILIATION)
            .request::<FiguresRequest>()
            .response::<ReconciliationReport>(),
    ];
    for service in Service::BACKENDS {
        routes.push(
            Route::get(format!("/services/{service}/ping"), service, system::PING)
                .allow([OrgKind::Operator])
                .summary(
                    format!("{service} 服务探活"),
                    format!("Ping the {service} service over the bus"),
                )
                .tag(TAG_OPS)
                .request::<PingRequest>()
                .response::<PingResponse>(),
        );
        routes.push(
            Route::get(
                format!("/services/{service}/dead-letters"),
                service,
                system::DLQ_LIST,
            )
            .allow([OrgKind::Operator])
            .summary(
                format!("{service} 服务死信列表"),
                format!("List the {service} service's dead letters"),
            )
            .tag(TAG_OPS)
            .request::<DlqListRequest>()
            .response::<DlqListResponse>(),
        );
        routes.push(
            Route::post(
                format!("/services/{service}/dead-letters/replay"),
                service,
                system::DLQ_REPLAY,
            )
            .allow([OrgKind::Operator])
            .summary(
                format!("{service} 服务死信重放"),
                format!("Replay the {service} service's dead letters"),
            )
            .describe("One dead letter by `id`, or every one not yet applied when `id` is absent.")
            .tag(TAG_OPS)
            .request::<DlqReplayRequest>()
            .response::<DlqReplayResponse>()
            .status(StatusCode::ACCEPTED),
        );
    }
    routes
}
