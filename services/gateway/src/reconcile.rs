//! `GET /api/v1/reconciliation`: the reconciliation report
//! ([`vbp_contracts::reconcile`]). Asks every service that keeps figures at
//! once and compares them; a service that does not answer leaves its checks
//! uncompared and the report unclean, never a failed request, so a bureau
//! still sees what the others agree on.

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use vbp_bus::{Context, RpcClient};
use vbp_contracts::Service;
use vbp_contracts::reconcile::{
    self, Figure, FiguresRequest, FiguresResponse, ReconciliationReport,
};

use crate::problem::Problem;
use crate::{CompiledRoute, Gateway, forward};

pub(crate) async fn handle(
    gateway: &Gateway,
    compiled: &CompiledRoute,
    request: Request,
) -> Result<Response, Problem> {
    let admitted = forward::admit(gateway, compiled, request).await?;
    let req: FiguresRequest =
        serde_json::from_value(admitted.input).map_err(|e| Problem::invalid("", e.to_string()))?;
    // The scope is checked here too, so a foreign region is one clear 4xx
    // rather than three services' refusals.
    vbp_platform::reconcile::scope(&admitted.ctx, &req).map_err(|e| Problem::from_rpc(e.0))?;
    let rpc = gateway.rpc.with_timeout(gateway.fanout_timeout());
    Ok(axum::Json(report(&rpc, &admitted.ctx, &req).await).into_response())
}

/// Asks the services concurrently (each bounded by the client's timeout)
/// and compares what they answer.
pub async fn report(rpc: &RpcClient, ctx: &Context, req: &FiguresRequest) -> ReconciliationReport {
    let body = Bytes::from(serde_json::to_vec(req).unwrap_or_default());
    let asks = reconcile::sources().into_iter().map(|service| {
        let (rpc, body) = (rpc.clone(), body.clone());
        async move {
            let reply = rpc.call_raw(service, reconcile::FIGURES, ctx, body).await;
            let figures: Result<Vec<Figure>, String> =
                reply.map_err(|e| e.to_string()).and_then(|bytes| {
                    serde_json::from_slice::<FiguresResponse>(&bytes)
                        .map(|r| r.figures)
                        .map_err(|e| e.to_string())
                });
            (service, figures)
        }
    });
    let answers: BTreeMap<Service, Result<Vec<Figure>, String>> =
        futures::future::join_all(asks).await.into_iter().collect();
    reconcile::compare(&answers)
}
