//! Flow timelines: a fan-out to every service, merged by time, partial when a
//! service does not answer.

use bytes::Bytes;
use serde_json::json;
use vbp_bus::{RpcRequest, RpcServer};
use vbp_contracts::Service;
use vbp_contracts::system::{self, FlowDirection, FlowEntry, FlowRequest, FlowResponse};
use vbp_kernel::{CorrelationId, EventId, OrgKind};

use crate::common::{Harness, json_ok, problem};

/// A stand-in flow answer for `service`: entries at the given minutes past 01:00.
async fn fake_flow(h: &Harness, service: Service, minutes: &'static [u32]) {
    let server = RpcServer::new(h.platform.nats.clone(), h.platform.ns.clone(), service).route_raw(
        system::FLOW,
        move |req: RpcRequest| async move {
            // The gateway must ask in the contract's shape.
            req.json::<FlowRequest>()?;
            let entries = minutes
                .iter()
                .map(|m| FlowEntry {
                    service,
                    direction: FlowDirection::Emitted,
                    event_id: EventId::new(),
                    event_type: format!("{service}.step.at_{m}"),
                    subject: format!("x.evt.{service}.step.at_{m}"),
                    at: format!("2024-08-01T01:{m:02}:00Z").parse().unwrap(),
                    actor: None,
                    causation: None,
                })
                .collect();
            Ok(Bytes::from(
                serde_json::to_vec(&FlowResponse { entries }).unwrap(),
            ))
        },
    );
    let shutdown = h.shutdown.clone();
    tokio::spawn(async move {
        let _ = server.serve(shutdown).await;
    });
}

#[tokio::test]
async fn services_timelines_merge_by_time_and_silence_is_reported() {
    let h = Harness::start().await;
    fake_flow(&h, Service::Orders, &[1, 4]).await;
    fake_flow(&h, Service::Prepayment, &[2, 3]).await;
    let operator = h.token(OrgKind::Operator);
    let correlation = CorrelationId::new();
    let path = format!("/api/v1/flows/{correlation}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let timeline = loop {
        let t = json_ok(h.get(&path, &operator).await).await;
        let answered = t["services"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "ok")
            .count();
        if answered == 2 || std::time::Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(timeline["correlation"], correlation.to_string());
    let order: Vec<&str> = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "orders.step.at_1",
            "prepayment.step.at_2",
            "prepayment.step.at_3",
            "orders.step.at_4"
        ]
    );
    assert_eq!(timeline["complete"], false);
    let status_of = |s: &str| {
        timeline["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["service"] == s)
            .map(|a| a["status"].clone())
            .unwrap()
    };
    assert_eq!(status_of("orders"), "ok");
    for silent in ["agreements", "distribution", "issues", "supervision"] {
        assert_eq!(status_of(silent), "unavailable", "{silent}");
    }

    let bad = problem(h.get("/api/v1/flows/not-a-uuid", &operator).await, 422).await;
    assert_eq!(bad["field"], "correlation");
}

#[tokio::test]
async fn with_every_service_running_the_timeline_is_complete() {
    let h = Harness::start().await;
    h.start_backend(Service::Agreements, vbp_agreements::run)
        .await;
    h.start_backend(Service::Distribution, vbp_distribution::run)
        .await;
    h.start_backend(Service::Orders, vbp_orders::run).await;
    h.start_backend(Service::Prepayment, vbp_prepayment::run)
        .await;
    h.start_backend(Service::Issues, vbp_issues::run).await;
    h.start_backend(Service::Supervision, vbp_supervision::run)
        .await;
    let timeline = json_ok(
        h.get(
            &format!("/api/v1/flows/{}", CorrelationId::new()),
            &h.token(OrgKind::Operator),
        )
        .await,
    )
    .await;
    assert_eq!(timeline["complete"], true, "{timeline}");
    assert_eq!(timeline["entries"], json!([]));
    assert_eq!(
        timeline["services"].as_array().unwrap().len(),
        Service::BACKENDS.len()
    );

    // Readiness: NATS and every service's ping.
    let ready = h.http.get(h.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["service:issues"], "ok");
    assert_eq!(body["checks"]["service:supervision"], "ok");
    assert_eq!(body["checks"]["nats"], "ok");
}
