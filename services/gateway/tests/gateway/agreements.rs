//! The agreements routes, against the real agreements service with the
//! Liaoning demo loaded: reachable, policed, validated and scoped.

use serde_json::json;
use vbp_agreements::demo::{
    FUXIN_BUREAU, FUXIN_HOSPITAL, MANUFACTURER_A, PERIOD_2, PRODUCTS, PROJECT,
};
use vbp_contracts::Service;
use vbp_kernel::{Actor, OrgKind};

use crate::common::{Harness, json_ok, problem};

fn demo_actor(org: &str, kind: OrgKind, region: &str) -> Actor {
    Actor {
        sub: format!("demo:{org}"),
        org: org.parse().expect("demo id"),
        org_kind: kind,
        region: region.parse().expect("region"),
        roles: Vec::new(),
    }
}

#[tokio::test]
async fn the_liaoning_scenario_is_reachable_through_the_gateway_and_scoped_by_caller() {
    let h = Harness::start().await;
    h.start_backend(Service::Agreements, vbp_agreements::run)
        .await;
    let operator = h.token(OrgKind::Operator);
    let loaded = json_ok(
        h.post("/api/v1/demo/agreements", &operator, &json!({}))
            .await,
    )
    .await;
    assert_eq!(loaded["created"], true);
    let again = json_ok(
        h.post("/api/v1/demo/agreements", &operator, &json!({}))
            .await,
    )
    .await;
    assert_eq!(again["created"], false, "the demo loads once");

    let hospital = h.token_for(&demo_actor(FUXIN_HOSPITAL, OrgKind::Hospital, "210902"));
    let list = json_ok(
        h.get(
            &format!("/api/v1/periods/{PERIOD_2}/supply-list"),
            &hospital,
        )
        .await,
    )
    .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(PRODUCTS.len()));
    assert_eq!(list["status"], "published");

    // Who may call is decided at the edge, before the service.
    let manufacturer = h.token_for(&demo_actor(MANUFACTURER_A, OrgKind::Manufacturer, "330100"));
    let body = json!({ "project": PROJECT, "number": 3, "first_day": "2025-08-01", "last_day": "2026-07-31" });
    let refused = problem(h.post("/api/v1/periods", &manufacturer, &body).await, 403).await;
    assert_eq!(refused["code"], "forbidden");

    // Bad input names the field and never reaches a 500.
    let bad = problem(
        h.get("/api/v1/periods/not-a-period/supply-list", &hospital)
            .await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "period");

    // A city bureau sees its own region's subtree of the directory.
    let fuxin = h.token_for(&demo_actor(FUXIN_BUREAU, OrgKind::Bureau, "210900"));
    let orgs = json_ok(
        h.get("/api/v1/orgs?kind=hospital&page_size=100", &fuxin)
            .await,
    )
    .await;
    let regions: Vec<String> = orgs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["region"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!regions.is_empty());
    assert!(regions.iter().all(|r| r.starts_with("2109")), "{regions:?}");
    assert!(regions.iter().any(|r| r == "210902"), "{regions:?}");

    // The OpenAPI document lists these routes.
    let doc = json_ok(h.get("/api/openapi.json", &operator).await).await;
    assert!(doc["paths"]["/api/v1/periods/{period}/supply-list"]["get"].is_object());
}
