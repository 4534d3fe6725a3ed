//! The distribution routes, against the real agreements and distribution
//! services with the Liaoning demo: each caller sees its own relations, and
//! only the territorial bureau's kind may decide a change.

use std::time::Duration;

use serde_json::{Value, json};
use vbp_contracts::Service;
use vbp_distribution::demo::{DISTRIBUTOR_FUXIN, FUXIN_HOSPITAL, MANUFACTURER_A};
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
async fn relations_are_reachable_through_the_gateway_and_scoped_by_caller() {
    let h = Harness::start().await;
    h.start_backend(Service::Agreements, vbp_agreements::run)
        .await;
    h.start_backend(Service::Distribution, vbp_distribution::run)
        .await;
    let operator = h.token(OrgKind::Operator);
    json_ok(
        h.post("/api/v1/demo/agreements", &operator, &json!({}))
            .await,
    )
    .await;
    // Distribution projects the agreements demo from events; until then it says so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = h
            .post("/api/v1/demo/distribution", &operator, &json!({}))
            .await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(
            response.status(),
            503,
            "only 'projection pending' is worth waiting for"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agreements demo was never projected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let hospital = h.token_for(&demo_actor(FUXIN_HOSPITAL, OrgKind::Hospital, "210902"));
    let mine = json_ok(h.get("/api/v1/relations?page_size=100", &hospital).await).await;
    let items = mine["items"].as_array().expect("items");
    assert!(!items.is_empty(), "the demo hospital has relations");
    assert!(
        items.iter().all(|r| r["hospital"] == FUXIN_HOSPITAL),
        "{mine}"
    );

    let distributor = h.token_for(&demo_actor(
        DISTRIBUTOR_FUXIN,
        OrgKind::Distributor,
        "210900",
    ));
    let theirs = json_ok(h.get("/api/v1/relations?page_size=100", &distributor).await).await;
    let theirs: &Vec<Value> = theirs["items"].as_array().expect("items");
    assert!(theirs.iter().all(|r| r["distributor"] == DISTRIBUTOR_FUXIN));

    let manufacturer = h.token_for(&demo_actor(MANUFACTURER_A, OrgKind::Manufacturer, "330100"));
    let change = uuid::Uuid::now_v7();
    let refused = problem(
        h.post(
            &format!("/api/v1/changes/{change}/approve"),
            &manufacturer,
            &json!({}),
        )
        .await,
        403,
    )
    .await;
    assert_eq!(refused["code"], "forbidden");
    let bad = problem(
        h.get("/api/v1/relations/at?hospital=x", &hospital).await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "hospital");
}
