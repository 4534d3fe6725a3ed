//! Health, readiness, metrics and the documents on the gateway port.

use serde_json::Value;
use vbp_kernel::OrgKind;

use crate::common::{Harness, json_ok};

#[tokio::test]
async fn readiness_names_the_services_that_do_not_answer() {
    let h = Harness::start().await;
    assert_eq!(
        h.http.get(h.url("/healthz")).send().await.unwrap().status(),
        200
    );
    // The connection may still be coming up; that is "not ready" too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let body = loop {
        let not_ready = h.http.get(h.url("/readyz")).send().await.unwrap();
        assert_eq!(not_ready.status(), 503);
        let body: Value = not_ready.json().await.unwrap();
        if body["checks"]["nats"] == "ok" || std::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(body["checks"]["nats"], "ok");
    assert_eq!(body["status"], "not ready");
    for service in [
        "agreements",
        "distribution",
        "orders",
        "prepayment",
        "issues",
    ] {
        let check = body["checks"][format!("service:{service}")]
            .as_str()
            .unwrap();
        assert!(check.contains("no service answers"), "{service}: {check}");
    }
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_status() {
    let h = Harness::start().await;
    h.serve_test_ops().await;
    let token = h.token(OrgKind::Hospital);
    json_ok(
        h.post("/api/v1/test/echo/p-1", &token, &serde_json::json!({}))
            .await,
    )
    .await;
    let _ = h.get("/api/v1/services/orders/ping", &token).await;
    let text = h
        .http
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"vbp_gateway_request_duration_seconds_bucket{method="POST",route="/api/v1/test/echo/{id}""#),
        "{text}"
    );
    assert!(
        text.contains(r#"vbp_gateway_responses_total{method="GET",route="/api/v1/services/orders/ping",status="403"}"#),
        "{text}"
    );
    // The process registry (the bus's RPC histograms) is served too.
    assert!(
        text.contains("vbp_rpc"),
        "{}",
        &text[..text.len().min(2_000)]
    );
}

#[tokio::test]
async fn the_openapi_document_and_viewer_are_served() {
    let h = Harness::start().await;
    let doc = json_ok(h.http.get(h.url("/api/openapi.json")).send().await.unwrap()).await;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/ingest/{integrator}",
        "/api/v1/flows/{correlation}",
        "/api/v1/services/issues/dead-letters/replay",
        "/api/v1/test/echo/{id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} undocumented");
    }
    let page = h.http.get(h.url("/api/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/api/openapi.json"), "{html}");
}
