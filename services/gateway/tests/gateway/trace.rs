//! One request is one trace: the gateway span (whose context the response's
//! `traceparent` carries), the service's RPC span and the event published
//! for it share the trace id.

use serde_json::{Value, json};
use vbp_contracts::headers;
use vbp_kernel::OrgKind;

use crate::common::{Harness, actor, json_ok, problem};

fn trace_id_of(traceparent: &str) -> String {
    vbp_bus::trace::trace_id_of_traceparent(traceparent)
        .expect("a W3C traceparent")
        .to_owned()
}

fn response_trace(response: &reqwest::Response) -> String {
    trace_id_of(response.headers()["traceparent"].to_str().unwrap())
}

#[tokio::test]
async fn a_callers_trace_continues_through_gateway_and_service() {
    let h = Harness::start().await;
    h.serve_test_ops().await;
    let token = h.token(OrgKind::Hospital);
    let incoming_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let incoming = format!("00-{incoming_trace}-00f067aa0ba902b7-01");
    let response = h
        .http
        .post(h.url("/api/v1/test/echo/p-1"))
        .bearer_auth(&token)
        .header("traceparent", &incoming)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let returned = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(trace_id_of(&returned), incoming_trace);
    assert_ne!(
        returned, incoming,
        "the gateway's own span is the new parent"
    );
    let echoed = json_ok(response).await;
    assert_eq!(
        echoed["trace_id"], incoming_trace,
        "the service span continues the caller's trace"
    );
}

#[tokio::test]
async fn a_new_trace_reaches_the_service_the_event_and_the_problem() {
    let h = Harness::start().await;
    h.serve_test_ops().await;
    let token = h.token(OrgKind::Hospital);

    let response = h.post("/api/v1/test/echo/p-1", &token, &json!({})).await;
    let gateway_trace = response_trace(&response);
    let echoed: Value = json_ok(response).await;
    assert_eq!(echoed["trace_id"], gateway_trace);

    let failing = h
        .post("/api/v1/test/echo/p-1", &token, &json!({"fail_with": 409}))
        .await;
    let failing_trace = response_trace(&failing);
    assert_ne!(
        failing_trace, gateway_trace,
        "each request without traceparent is its own trace"
    );
    assert_eq!(problem(failing, 409).await["trace_id"], failing_trace);

    let integrator = actor(OrgKind::Integrator);
    let batch = json!({"items": [{
        "event": "order_received",
        "payload": {"external_id": "RCV-7", "order_external_id": "PO-7", "shipment_no": "S", "received_at": "2024-08-01T00:50:00Z"}
    }]});
    let response = h
        .post(
            &format!("/api/v1/ingest/{}", integrator.org),
            &h.token_for(&integrator),
            &batch,
        )
        .await;
    let ingest_trace = response_trace(&response);
    assert_eq!(json_ok(response).await["accepted"], 1);
    let stream = h
        .platform
        .js
        .get_stream(h.platform.ns.ingest_stream())
        .await
        .unwrap();
    let event = stream.get_raw_message(1).await.unwrap();
    let carried = event
        .headers
        .get(headers::TRACEPARENT)
        .expect("the event carries traceparent");
    assert_eq!(trace_id_of(carried.as_str()), ingest_trace);
}
