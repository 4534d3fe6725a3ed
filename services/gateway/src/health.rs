//! `/healthz` (the process answers), `/readyz` (NATS is reachable and every
//! configured service answers its ping) and `/metrics` on the gateway port.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use vbp_bus::Context;
use vbp_contracts::system;

use crate::Gateway;

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(gateway): State<Gateway>) -> impl IntoResponse {
    let rpc = gateway.rpc.with_timeout(gateway.fanout_timeout());
    let ctx = Context::new(None);
    let pings = gateway.config.readiness_services.iter().map(|&service| {
        let rpc = rpc.clone();
        let ctx = ctx.clone();
        async move {
            let outcome = rpc
                .call_raw(service, system::PING, &ctx, Bytes::from_static(b"{}"))
                .await
                .map(drop)
                .map_err(|e| e.to_string());
            (format!("service:{service}"), outcome)
        }
    });
    let (platform_checks, pings) = futures::join!(
        gateway.platform.readiness.evaluate(),
        futures::future::join_all(pings)
    );
    let mut ready = true;
    let mut checks = Map::new();
    for (name, outcome) in platform_checks.into_iter().chain(pings) {
        ready &= outcome.is_ok();
        checks.insert(
            name,
            Value::String(outcome.err().unwrap_or_else(|| "ok".to_owned())),
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": if ready { "ready" } else { "not ready" }, "checks": checks })),
    )
}

pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        vbp_platform::health::metrics_text(),
    )
}
