//! What one caller may cost: body size, JSON shape, rate, concurrency; and
//! CORS for the web console.

use std::time::Duration;

use serde_json::json;
use vbp_gateway::GatewayConfig;
use vbp_kernel::OrgKind;

use crate::common::{Harness, Setup, actor, problem};

fn limited(config: GatewayConfig) -> Setup {
    Setup {
        config,
        ..Setup::default()
    }
}

#[tokio::test]
async fn oversized_bodies_are_413_with_or_without_content_length() {
    let h = Harness::with(limited(GatewayConfig {
        body_limit_bytes: 1_024,
        ..Setup::default().config
    }))
    .await;
    h.serve_test_ops().await;
    let token = h.token(OrgKind::Hospital);
    let big = json!({"name": "x".repeat(2_000)});
    let p = problem(h.post("/api/v1/test/echo/p-1", &token, &big).await, 413).await;
    assert_eq!(p["code"], "payload_too_large");

    // Chunked, without Content-Length: only counting the bytes catches it.
    let addr = h.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let chunk = format!("{{\"name\":\"{}\"}}", "y".repeat(2_000));
    let request = format!(
        "POST /api/v1/test/echo/p-1 HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
         {:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer)
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");

    let small = h
        .post("/api/v1/test/echo/p-1", &token, &json!({"name": "ok"}))
        .await;
    assert_eq!(small.status(), 200);
}

#[tokio::test]
async fn deep_or_wide_json_is_refused_before_parsing() {
    let h = Harness::with(limited(GatewayConfig {
        json_max_depth: 8,
        json_max_items: 50,
        ..Setup::default().config
    }))
    .await;
    h.serve_test_ops().await;
    let token = h.token(OrgKind::Hospital);
    let deep = format!("{{\"nested\":{}1{}}}", "[".repeat(20), "]".repeat(20));
    let response = h
        .http
        .post(h.url("/api/v1/test/echo/p-1"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(response, 400).await["code"], "json_too_complex");
    let wide = json!({"tags": (0..100).map(|i| i.to_string()).collect::<Vec<_>>()});
    assert_eq!(
        problem(h.post("/api/v1/test/echo/p-1", &token, &wide).await, 400).await["code"],
        "json_too_complex"
    );
}

#[tokio::test]
async fn each_organisation_has_its_own_rate_limit_with_retry_after() {
    let h = Harness::with(limited(GatewayConfig {
        rate_limit_per_sec: 1.0,
        rate_limit_burst: 3,
        ..Setup::default().config
    }))
    .await;
    h.serve_test_ops().await;
    let a = actor(OrgKind::Hospital);
    // Two people of one organisation share its bucket.
    let mut colleague = a.clone();
    colleague.sub = "second-user".into();
    let (t1, t2) = (h.token_for(&a), h.token_for(&colleague));
    for token in [&t1, &t2, &t1] {
        assert_eq!(
            h.post("/api/v1/test/echo/p-1", token, &json!({}))
                .await
                .status(),
            200
        );
    }
    let refused = h.post("/api/v1/test/echo/p-1", &t2, &json!({})).await;
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(problem(refused, 429).await["code"], "rate_limited");

    let other = h.token(OrgKind::Hospital);
    assert_eq!(
        h.post("/api/v1/test/echo/p-1", &other, &json!({}))
            .await
            .status(),
        200
    );

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        h.post("/api/v1/test/echo/p-1", &t1, &json!({}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn beyond_the_concurrency_limit_the_answer_is_503_at_once() {
    let h = Harness::with(limited(GatewayConfig {
        concurrency_limit: 1,
        rpc_timeout_ms: Some(5_000),
        ..Setup::default().config
    }))
    .await;
    h.serve_test_ops().await;
    let token = h.token(OrgKind::Operator);
    let slow = h.get("/api/v1/test/slow", &token);
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let response = h.post("/api/v1/test/echo/p-1", &token, &json!({})).await;
        (response, started.elapsed())
    };
    let (first, (response, took)) = tokio::join!(slow, second);
    assert_eq!(first.status(), 200);
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(problem(response, 503).await["code"], "overloaded");
    // Health stays reachable at the limit.
    assert_eq!(
        h.http.get(h.url("/healthz")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn cors_admits_configured_origins_only() {
    let h = Harness::with(limited(GatewayConfig {
        cors_origins: vec!["https://console.example".into()],
        ..Setup::default().config
    }))
    .await;
    let preflight = |origin: &'static str| {
        h.http
            .request(reqwest::Method::OPTIONS, h.url("/api/v1/test/echo/p-1"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://console.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://console.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}
