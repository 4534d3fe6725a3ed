//! The reconciliation report through the gateway, with the real orders,
//! agreements and prepayment services: after an order is accepted and paid,
//! a bureau sees the three services agree to the fen; a lost event shows up
//! as one listed difference; the report is scoped to the bureau's region.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vbp_agreements::demo::{
    DISTRIBUTOR_SHENYANG, FUXIN_BUREAU, FUXIN_HOSPITAL, PROVINCE_BUREAU, SHENYANG_BUREAU,
};
use vbp_contracts::Service;
use vbp_kernel::OrgKind;

use crate::common::{Harness, json_ok, problem, until, who};

const PRODUCT: &str = "C02010205103001107660000012";
const PRICE: i64 = 72_000;

fn check<'a>(report: &'a Value, measure: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["measure"] == measure)
        .expect("the check is in the report")
}

#[tokio::test]
async fn orders_progress_and_prepayment_agree_to_the_fen_and_a_lost_event_is_listed() {
    let h = Harness::start().await;
    h.start_backend(Service::Agreements, vbp_agreements::run)
        .await;
    h.start_backend(Service::Distribution, vbp_distribution::run)
        .await;
    h.start_backend(Service::Orders, vbp_orders::run).await;
    h.start_backend(Service::Prepayment, vbp_prepayment::run)
        .await;
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
    let distributor = h.long_token_for(&who(DISTRIBUTOR_SHENYANG, OrgKind::Distributor, "210100"));
    let province = h.long_token_for(&who(PROVINCE_BUREAU, OrgKind::Bureau, "210000"));
    let fuxin = h.long_token_for(&who(FUXIN_BUREAU, OrgKind::Bureau, "210900"));
    let shenyang = h.long_token_for(&who(SHENYANG_BUREAU, OrgKind::Bureau, "210100"));

    // One order of 12 placed, shipped, received, 10 accepted, invoiced and paid.
    let order = until("the order", async || {
        let r = h
            .post(
                "/api/v1/orders",
                &hospital,
                &json!({ "distributor": DISTRIBUTOR_SHENYANG, "lines": [
                    { "national_code": PRODUCT, "quantity": 12, "unit_price_fen": PRICE }] }),
            )
            .await;
        (r.status() == 201).then_some(r)?.json::<Value>().await.ok()
    })
    .await;
    let id = order["order"].as_str().expect("order id");
    json_ok(
        h.post(
            &format!("/api/v1/orders/{id}/response"),
            &distributor,
            &json!({ "response": "accepted" }),
        )
        .await,
    )
    .await;
    let shipped = json_ok(
        h.post(
            &format!("/api/v1/orders/{id}/shipments"),
            &distributor,
            &json!({ "shipment_no": "FH-1", "lines": [
                { "line_no": 1, "batch_no": "B240828", "expiry_date": "2027-08-27", "quantity": 12 }] }),
        )
        .await,
    )
    .await;
    let shipment = shipped["shipments"][0]["shipment"]
        .as_str()
        .expect("shipment");
    json_ok(
        h.post(
            &format!("/api/v1/shipments/{shipment}/receipt"),
            &hospital,
            &json!({}),
        )
        .await,
    )
    .await;
    let accepted = json_ok(
        h.post(
            &format!("/api/v1/orders/{id}/acceptances"),
            &hospital,
            &json!({ "lines": [{ "line_no": 1, "accepted_quantity": 10, "rejected_quantity": 2,
                                  "rejection_reason": "包装破损" }] }),
        )
        .await,
    )
    .await;
    let acceptance = accepted["acceptance"].as_str().expect("acceptance");
    json_ok(
        h.post(
            &format!("/api/v1/acceptances/{acceptance}/invoice"),
            &distributor,
            &json!({ "invoice_code": "021002400111", "invoice_number": "00000001",
                     "amount_fen": 10 * PRICE, "tax_fen": 10 * PRICE * 13 / 113,
                     "issued_on": "2024-09-02" }),
        )
        .await,
    )
    .await;
    json_ok(
        h.post(
            &format!("/api/v1/acceptances/{acceptance}/settlement"),
            &hospital,
            &json!({ "amount_fen": 10 * PRICE, "channel": "online" }),
        )
        .await,
    )
    .await;

    // The copies in agreements and prepayment arrive as events.
    let report = until("a clean report", async || {
        let r = json_ok(h.get("/api/v1/reconciliation", &province).await).await;
        (r["clean"] == true && check(&r, "settled_amount_fen")["mirror_total"] == 10 * PRICE)
            .then_some(r)
    })
    .await;
    let quantity = check(&report, "accepted_quantity");
    assert_eq!(
        (
            quantity["source_total"].as_i64(),
            quantity["mirror_total"].as_i64()
        ),
        (Some(10), Some(10))
    );
    assert_eq!(
        check(&report, "accepted_amount_fen")["source_total"],
        10 * PRICE
    );

    // Scoped: Fuxin's bureau sees its hospital, Shenyang's sees none of it and
    // may not ask for Fuxin; a hospital may not read the report at all.
    let own = json_ok(h.get("/api/v1/reconciliation", &fuxin).await).await;
    assert_eq!(check(&own, "accepted_quantity")["source_total"], 10);
    let other = json_ok(h.get("/api/v1/reconciliation", &shenyang).await).await;
    assert_eq!(check(&other, "accepted_quantity")["source_total"], 0);
    assert_eq!(check(&other, "settled_amount_fen")["mirror_total"], 0);
    let foreign = problem(
        h.get("/api/v1/reconciliation?region=210900", &shenyang)
            .await,
        403,
    )
    .await;
    assert_eq!(foreign["field"], "region");
    problem(h.get("/api/v1/reconciliation", &hospital).await, 403).await;

    // Agreements loses the acceptance (as if its event had never arrived):
    // the report names the hospital, the product and both figures.
    let agreements = h.env.pool_in("agreements").await;
    sqlx::query("DELETE FROM progress WHERE hospital = $1::uuid")
        .bind(FUXIN_HOSPITAL)
        .execute(&agreements)
        .await
        .expect("delete");
    let broken = json_ok(h.get("/api/v1/reconciliation", &province).await).await;
    assert_eq!(broken["clean"], false);
    let differences = check(&broken, "accepted_quantity")["differences"]
        .as_array()
        .expect("differences")
        .clone();
    assert_eq!(differences.len(), 1, "{broken}");
    assert_eq!(differences[0]["hospital"], FUXIN_HOSPITAL);
    assert_eq!(differences[0]["national_code"], PRODUCT);
    assert_eq!(
        (
            differences[0]["source_value"].as_i64(),
            differences[0]["mirror_value"].as_i64()
        ),
        (Some(10), Some(0))
    );
    assert!(
        check(&broken, "settled_amount_fen")["differences"]
            .as_array()
            .expect("differences")
            .is_empty()
    );
}
