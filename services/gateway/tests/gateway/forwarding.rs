//! HTTP → RPC → HTTP: the merge rule, the context passed on, and how every
//! kind of failure looks to the client.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vbp_contracts::Service;
use vbp_gateway::GatewayConfig;
use vbp_kernel::OrgKind;

use crate::common::{Harness, Setup, json_ok, problem};

#[tokio::test]
async fn path_query_and_body_merge_into_one_typed_request() {
    let h = Harness::start().await;
    h.serve_test_ops().await;
    let token = h.token(OrgKind::Hospital);
    let correlation = uuid::Uuid::now_v7();
    let response = h
        .http
        .post(h.url("/api/v1/test/echo/p-1?limit=5&flag=true&tags=a&tags=b"))
        .bearer_auth(&token)
        .header("x-correlation-id", correlation.to_string())
        .header("x-request-id", "req-42")
        .json(&json!({"name": "导管", "kind": "bureau"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-42");
    assert_eq!(
        response.headers()["x-correlation-id"],
        correlation.to_string().as_str()
    );
    let echoed = json_ok(response).await;
    assert_eq!(
        echoed["body"],
        json!({"id": "p-1", "limit": 5, "flag": true, "tags": ["a", "b"], "name": "导管", "kind": "bureau"})
    );
    assert_eq!(echoed["correlation"], correlation.to_string());

    // Without X-Correlation-Id a new flow starts, and its id comes back.
    let response = h.post("/api/v1/test/echo/p-1", &token, &json!({})).await;
    let returned = response.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(json_ok(response).await["correlation"], returned);

    let conflict = problem(
        h.post("/api/v1/test/echo/p-1", &token, &json!({"id": "p-2"}))
            .await,
        400,
    )
    .await;
    assert_eq!(
        (conflict["code"].as_str(), conflict["field"].as_str()),
        (Some("conflicting_parameter"), Some("id"))
    );
}

#[tokio::test]
async fn bad_input_is_400_or_422_naming_the_field_never_500() {
    let h = Harness::start().await;
    h.serve_test_ops().await;
    let token = h.token(OrgKind::Hospital);
    let post_raw = |body: &'static str| {
        h.http
            .post(h.url("/api/v1/test/echo/p-1"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let malformed = problem(post_raw("{\"name\": ").await.unwrap(), 400).await;
    assert_eq!(malformed["code"], "malformed_json");

    let cases: [(Value, &str); 5] = [
        (json!({"name": 7}), "name"),
        (json!({"kind": "pharmacy"}), "kind"),
        (json!({"nested": 1, "surprise": true}), "surprise"),
        (json!({"tags": "a"}), "tags"),
        (json!({"limit": 1.5}), "limit"),
    ];
    for (body, field) in cases {
        let p = problem(h.post("/api/v1/test/echo/p-1", &token, &body).await, 422).await;
        assert_eq!(p["code"], "validation_failed", "{body}");
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    let wrong_method = problem(h.get("/api/v1/test/echo/p-1", &token).await, 405).await;
    assert_eq!(wrong_method["code"], "method_not_allowed");
    let typed = h
        .http
        .post(h.url("/api/v1/test/echo/p-1?limit=ten"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(typed, 422).await["field"], "limit");

    let array = problem(post_raw("[1, 2]").await.unwrap(), 422).await;
    assert_eq!(array["code"], "validation_failed");

    let text = h
        .http
        .post(h.url("/api/v1/test/echo/p-1"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(text, 415).await["code"], "unsupported_media_type");

    let bad_correlation = h
        .http
        .post(h.url("/api/v1/test/echo/p-1"))
        .bearer_auth(&token)
        .header("x-correlation-id", "not-a-uuid")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(bad_correlation, 400).await["field"],
        "X-Correlation-Id"
    );

    let missing = problem(h.get("/api/v1/no/such/route", &token).await, 404).await;
    assert_eq!(missing["code"], "not_found");
    assert_eq!(missing["instance"], "/api/v1/no/such/route");
}

#[tokio::test]
async fn service_errors_keep_their_status_code_and_field() {
    let h = Harness::start().await;
    h.serve_test_ops().await;
    let token = h.token(OrgKind::Hospital);
    for status in [404u16, 409, 422, 503] {
        let p = problem(
            h.post(
                "/api/v1/test/echo/p-1",
                &token,
                &json!({"fail_with": status}),
            )
            .await,
            status,
        )
        .await;
        assert_eq!(p["code"], "test_failure");
        assert_eq!(p["field"], "fail_with");
        assert_eq!(p["details"]["asked"], status);
        assert!(p["trace_id"].as_str().is_some_and(|t| t.len() == 32), "{p}");
    }
}

#[tokio::test]
async fn a_stopped_service_is_503_and_a_slow_one_504_within_the_timeout() {
    let h = Harness::with(Setup {
        config: GatewayConfig {
            rpc_timeout_ms: Some(400),
            ..Setup::default().config
        },
        ..Setup::default()
    })
    .await;
    h.serve_test_ops().await;
    let operator = h.token(OrgKind::Operator);

    // A real service, running, then stopped.
    let stop = h
        .start_backend(Service::Agreements, vbp_agreements::run)
        .await;
    let pong = json_ok(h.get("/api/v1/services/agreements/ping", &operator).await).await;
    assert_eq!(pong["service"], "agreements");
    stop.cancel();
    let deadline = Instant::now() + Duration::from_secs(10);
    let stopped = loop {
        let response = h.get("/api/v1/services/agreements/ping", &operator).await;
        if response.status() == 503 || Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(stopped.headers().contains_key("retry-after"));
    assert_eq!(problem(stopped, 503).await["code"], "service_unavailable");

    // Nobody ever served this one.
    let nobody = problem(h.get("/api/v1/test/nobody", &operator).await, 503).await;
    assert!(
        nobody["detail"].as_str().unwrap().contains("issues"),
        "{nobody}"
    );

    let started = Instant::now();
    let slow = problem(h.get("/api/v1/test/slow", &operator).await, 504).await;
    assert_eq!(slow["code"], "service_timeout");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(2_000),
        "{took:?}"
    );
}

#[tokio::test]
async fn the_request_deadline_bounds_everything() {
    let h = Harness::with(Setup {
        config: GatewayConfig {
            request_timeout_ms: 300,
            rpc_timeout_ms: Some(5_000),
            ..Setup::default().config
        },
        ..Setup::default()
    })
    .await;
    h.serve_test_ops().await;
    let started = Instant::now();
    // The RPC deadline is capped by the request deadline, so the RPC's own
    // 504 answers first.
    let p = problem(
        h.get("/api/v1/test/slow", &h.token(OrgKind::Operator))
            .await,
        504,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        ["service_timeout", "request_timeout"].contains(&p["code"].as_str().unwrap()),
        "{p}"
    );
}
