//! The integrator's path through the gateway with the real services and the
//! Liaoning demo: an order at the winning price becomes an order the
//! hospital sees; one a fen off is refused, and the integrator can read why.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vbp_agreements::demo::{DISTRIBUTOR_SHENYANG, FUXIN_HOSPITAL, INTEGRATOR, PERIOD_2};
use vbp_contracts::Service;
use vbp_kernel::{Actor, OrgKind};

use crate::common::{Harness, json_ok};

const PRODUCT: &str = "C02010205103001107660000012";

fn who(org: &str, kind: OrgKind, region: &str) -> Actor {
    Actor {
        sub: format!("user:{org}"),
        org: org.parse().expect("id"),
        org_kind: kind,
        region: region.parse().expect("region"),
        roles: Vec::new(),
    }
}

async fn until<F: AsyncFn() -> Option<Value>>(what: &str, f: F) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_integrators_order_at_the_winning_price_is_placed_and_a_fen_off_is_refused_with_its_reason()
 {
    let h = Harness::start().await;
    h.start_backend(Service::Agreements, vbp_agreements::run)
        .await;
    h.start_backend(Service::Distribution, vbp_distribution::run)
        .await;
    h.start_backend(Service::Orders, vbp_orders::run).await;
    let operator = h.token(OrgKind::Operator);
    json_ok(
        h.post("/api/v1/demo/agreements", &operator, &json!({}))
            .await,
    )
    .await;
    until("the distribution demo", async || {
        let r = h
            .post("/api/v1/demo/distribution", &operator, &json!({}))
            .await;
        (r.status() == 200).then_some(json!(true))
    })
    .await;
    h.env.clock.set(
        "2024-09-02T02:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("time"),
    );
    let hospital = h.long_token_for(&who(FUXIN_HOSPITAL, OrgKind::Hospital, "210902"));
    let integrator = h.long_token_for(&who(INTEGRATOR, OrgKind::Integrator, "210000"));

    let list = json_ok(
        h.get(
            &format!("/api/v1/periods/{PERIOD_2}/supply-list"),
            &hospital,
        )
        .await,
    )
    .await;
    let price = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["national_code"] == PRODUCT)
        .expect("the product is on the list")["winning_price_fen"]
        .as_i64()
        .expect("price");
    let order = |external_id: &str, unit_price_fen: i64| {
        json!({ "event": "order_placed", "external_id": external_id, "payload": {
            "external_id": external_id, "hospital": FUXIN_HOSPITAL, "distributor": DISTRIBUTOR_SHENYANG,
            "placed_at": "2024-09-02T01:30:00Z",
            "lines": [{ "national_code": PRODUCT, "quantity": 12, "unit_price_fen": unit_price_fen }] } })
    };
    let answer = json_ok(
        h.post(
            &format!("/api/v1/ingest/{INTEGRATOR}"),
            &integrator,
            &json!({ "items": [order("PO-2024-0902-1", price), order("PO-2024-0902-2", price + 1)] }),
        )
        .await,
    )
    .await;
    let statuses: Vec<&str> = answer["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "accepted"],
        "both are well-formed; the price rule is the service's: {answer}"
    );

    let orders = until("the order", async || {
        let list = json_ok(h.get("/api/v1/orders", &hospital).await).await;
        (list["items"].as_array().map(Vec::len) == Some(1)).then_some(list)
    })
    .await;
    assert_eq!(orders["items"][0]["distributor"], DISTRIBUTOR_SHENYANG);
    assert_eq!(orders["items"][0]["source"], "integrator");

    let rejected = until("the rejection", async || {
        let list = json_ok(h.get("/api/v1/ingest/rejections", &integrator).await).await;
        (list["items"].as_array().map(Vec::len) == Some(1)).then_some(list)
    })
    .await;
    let rejection = &rejected["items"][0];
    assert_eq!(rejection["external_id"], "PO-2024-0902-2");
    assert_eq!(rejection["field"], "lines[0].unit_price_fen");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = json_ok(h.get("/api/v1/orders", &hospital).await).await;
    assert_eq!(
        still["items"].as_array().map(Vec::len),
        Some(1),
        "the refused order created nothing"
    );
}
