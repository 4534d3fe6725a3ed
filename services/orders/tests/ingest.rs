//! Integrator ingest on real Postgres and NATS with the manual clock: every
//! event type published on the ingest stream as a hospital system would,
//! applied once however often it comes, in order however it arrives, and
//! rejected with a precise reason when it breaks a rule.

mod common;

use common::{Cast, P1, P2, PRICE1, PRICE2, World, rejections};
use serde_json::{Value, json};
use vbp_contracts::orders::*;

const PLACED_AT: &str = "2024-09-10T08:30:00+08:00";

fn msg_id(cast: &Cast, ext: &str) -> Option<String> {
    Some(vbp_contracts::ingest::message_id(
        &cast.integrator.org.to_string(),
        ext,
    ))
}

fn placed(cast: &Cast, ext: &str, q1: i64, q2: i64) -> Value {
    json!({
        "external_id": ext,
        "hospital": cast.hospital.org,
        "distributor": cast.d1.org,
        "placed_at": PLACED_AT,
        "lines": [{"national_code": P1, "quantity": q1, "unit_price_fen": PRICE1},
                  {"national_code": P2, "quantity": q2, "unit_price_fen": PRICE2}],
    })
}

fn updated(ext: &str, order: &str, q1: i64, p1: i64) -> Value {
    json!({
        "external_id": ext,
        "order_external_id": order,
        "updated_at": "2024-09-10T08:40:00+08:00",
        "lines": [{"national_code": P1, "quantity": q1, "unit_price_fen": p1}],
    })
}

fn shipped(ext: &str, order: &str, no: &str, q1: i64, expiry: &str) -> Value {
    json!({
        "external_id": ext,
        "order_external_id": order,
        "shipment_no": no,
        "shipped_at": "2024-09-10T08:45:00+08:00",
        "lines": [{"national_code": P1, "batch_no": "B2409", "expiry_date": expiry, "quantity": q1}],
    })
}

fn received(ext: &str, order: &str, no: &str) -> Value {
    json!({
        "external_id": ext,
        "order_external_id": order,
        "shipment_no": no,
        "received_at": "2024-09-10T08:50:00+08:00",
    })
}

fn accepted(ext: &str, order: &str, a1: i64, r1: i64) -> Value {
    let mut line = json!({"national_code": P1, "accepted_quantity": a1, "rejected_quantity": r1});
    if r1 > 0 {
        line["rejection_reason"] = json!("包装破损");
    }
    json!({
        "external_id": ext,
        "order_external_id": order,
        "accepted_at": "2024-09-10T08:55:00+08:00",
        "lines": [line],
    })
}

/// Publishes as a hospital system straight on NATS, with its message id.
async fn send(w: &World, cast: &Cast, event: &str, body: &Value) {
    let ext = body["external_id"].as_str().unwrap();
    w.ingest(&cast.integrator, event, body, msg_id(cast, ext))
        .await;
}

async fn rejection(w: &World, ext: &str) -> Value {
    w.published("orders.ingest.rejected", |v| v["external_id"] == ext)
        .await
}

async fn order_of(w: &World, cast: &Cast, ext: &str) -> OrderView {
    let ev = w
        .published("orders.order.placed", |v| v["external_id"] == ext)
        .await;
    let order: OrderId = serde_json::from_value(ev["order"].clone()).unwrap();
    w.ok::<OrderGet>(&cast.hospital, &GetOrder { order }).await
}

async fn started() -> (World, Cast) {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    (w, cast)
}

#[tokio::test]
async fn a_whole_lifecycle_through_nats_applies_each_message_once_however_often_it_comes() {
    let (w, cast) = started().await;
    let flow = [
        ("order_placed", placed(&cast, "PO-1", 3, 10)),
        ("order_updated", updated("UP-1", "PO-1", 5, PRICE1)),
        (
            "shipment_dispatched",
            shipped("SH-1", "PO-1", "S-1", 5, "2027-06-30"),
        ),
        ("order_received", received("RC-1", "PO-1", "S-1")),
        ("order_accepted", accepted("AC-1", "PO-1", 4, 1)),
    ];
    for (event, body) in &flow {
        // Once with the message id, once as a resend through another path
        // (no id at all, so JetStream cannot de-duplicate it), once more.
        send(&w, &cast, event, body).await;
        w.ingest(&cast.integrator, event, body, None).await;
        send(&w, &cast, event, body).await;
    }
    let acc = w.published("orders.receipt.accepted", |_| true).await;
    assert_eq!(acc["source"], "integrator");
    assert_eq!(acc["amount_fen"], 4 * PRICE1);
    w.wait_count(
        "SELECT count(*) FROM ingest_messages WHERE outcome = 'applied'",
        5,
    )
    .await;

    let o = order_of(&w, &cast, "PO-1").await;
    // The update replaced both lines with one of 5 at the winning price.
    assert_eq!(o.lines.len(), 1);
    assert_eq!(o.total_amount_fen.fen(), 5 * PRICE1);
    let l = &o.lines[0];
    assert_eq!(
        (
            l.quantity,
            l.confirmed_quantity,
            l.shipped_quantity,
            l.received_quantity,
            l.accepted_quantity,
            l.rejected_quantity
        ),
        (5, Some(5), 5, 5, 4, 1)
    );
    assert_eq!(o.state, OrderState::Confirmed);
    assert_eq!(o.shipments[0].lines[0].batch_no, "B2409");
    let upd = w.published("orders.order.updated", |_| true).await;
    assert_eq!(upd["total_amount_fen"], 5 * PRICE1);
    // Shipping an unanswered order answered it: accepted in full.
    let resp = w.published("orders.order.responded", |_| true).await;
    assert_eq!(resp["response"], "accepted");

    for t in [
        "orders.order.placed",
        "orders.order.updated",
        "orders.order.responded",
        "orders.shipment.dispatched",
        "orders.receipt.received",
        "orders.receipt.accepted",
    ] {
        assert_eq!(w.seen_of(t).len(), 1, "{t}");
    }
    assert!(w.seen_of("orders.ingest.rejected").is_empty());
    assert_eq!(w.count("SELECT count(*) FROM acceptances").await, 1);
    assert_eq!(w.count("SELECT count(*) FROM shipments").await, 1);
}

#[tokio::test]
async fn an_external_id_reused_with_another_body_is_rejected_and_changes_nothing() {
    let (w, cast) = started().await;
    send(&w, &cast, "order_placed", &placed(&cast, "PO-1", 3, 10)).await;
    order_of(&w, &cast, "PO-1").await;

    // Same id, other quantities, no message id (past JetStream's window).
    let other = placed(&cast, "PO-1", 30, 10);
    for _ in 0..2 {
        w.ingest(&cast.integrator, "order_placed", &other, None)
            .await;
    }
    let rej = rejection(&w, "PO-1").await;
    assert_eq!(rej["field"], "external_id");
    let reason = rej["reason"].as_str().unwrap();
    assert!(reason.contains("reused with a different body"), "{reason}");
    // The same body with its keys in another order is the same message.
    let same = json!({
        "lines": [{"unit_price_fen": PRICE1, "quantity": 3, "national_code": P1},
                  {"unit_price_fen": PRICE2, "quantity": 10, "national_code": P2}],
        "placed_at": PLACED_AT, "distributor": cast.d1.org,
        "hospital": cast.hospital.org, "external_id": "PO-1",
    });
    w.ingest(&cast.integrator, "order_placed", &same, None)
        .await;
    send(&w, &cast, "order_placed", &placed(&cast, "PO-2", 1, 1)).await;
    order_of(&w, &cast, "PO-2").await;

    assert_eq!(w.seen_of("orders.ingest.rejected").len(), 1);
    assert_eq!(w.seen_of("orders.order.placed").len(), 2);
    let o = order_of(&w, &cast, "PO-1").await;
    assert_eq!(o.lines[0].quantity, 3);
    let list = w
        .ok::<IngestRejectionListOp>(&cast.integrator, &rejections(10))
        .await;
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].field.as_deref(), Some("external_id"));
}

#[tokio::test]
async fn changes_and_shipping_notes_that_break_a_rule_are_rejected_naming_the_field() {
    let (w, cast) = started().await;
    send(&w, &cast, "order_placed", &placed(&cast, "PO-1", 3, 10)).await;
    order_of(&w, &cast, "PO-1").await;

    // A changed line one fen off the winning price: nothing changes.
    send(
        &w,
        &cast,
        "order_updated",
        &updated("UP-1", "PO-1", 5, PRICE1 + 1),
    )
    .await;
    let rej = rejection(&w, "UP-1").await;
    assert_eq!(rej["field"], "lines[0].unit_price_fen");
    assert!(rej["reason"].as_str().unwrap().contains("72001"));
    // A product not on the supply list.
    let mut unknown = updated("UP-2", "PO-1", 5, PRICE1);
    unknown["lines"][0]["national_code"] = json!("C99999999999999999999999999");
    send(&w, &cast, "order_updated", &unknown).await;
    assert_eq!(
        rejection(&w, "UP-2").await["field"],
        "lines[0].national_code"
    );
    // Goods expiring on the shipping day; more than ordered.
    send(
        &w,
        &cast,
        "shipment_dispatched",
        &shipped("SH-1", "PO-1", "S-1", 3, "2024-09-10"),
    )
    .await;
    assert_eq!(rejection(&w, "SH-1").await["field"], "lines[0].expiry_date");
    send(
        &w,
        &cast,
        "shipment_dispatched",
        &shipped("SH-2", "PO-1", "S-1", 4, "2027-01-01"),
    )
    .await;
    let rej = rejection(&w, "SH-2").await;
    assert_eq!(rej["field"], "lines[0].quantity");
    // Neither rejected note answered the order on the distributor's behalf.
    let o = order_of(&w, &cast, "PO-1").await;
    assert_eq!(o.state, OrderState::Placed);
    assert_eq!(o.lines[0].quantity, 3);
    assert_eq!(o.total_amount_fen.fen(), 3 * PRICE1 + 10 * PRICE2);

    // Once shipped (answered), the order can no longer be changed.
    send(
        &w,
        &cast,
        "shipment_dispatched",
        &shipped("SH-3", "PO-1", "S-1", 3, "2027-01-01"),
    )
    .await;
    w.published("orders.shipment.dispatched", |_| true).await;
    send(
        &w,
        &cast,
        "order_updated",
        &updated("UP-3", "PO-1", 1, PRICE1),
    )
    .await;
    assert_eq!(rejection(&w, "UP-3").await["field"], "order_external_id");
    // The same shipment number twice.
    send(
        &w,
        &cast,
        "shipment_dispatched",
        &shipped("SH-4", "PO-1", "S-1", 1, "2027-01-01"),
    )
    .await;
    assert_eq!(rejection(&w, "SH-4").await["field"], "shipment_no");
    // Accepting more than was received.
    send(
        &w,
        &cast,
        "order_received",
        &received("RC-1", "PO-1", "S-1"),
    )
    .await;
    send(&w, &cast, "order_accepted", &accepted("AC-1", "PO-1", 4, 0)).await;
    assert_eq!(
        rejection(&w, "AC-1").await["field"],
        "lines[0].accepted_quantity"
    );
    assert!(w.seen_of("orders.order.updated").is_empty());
    assert_eq!(w.seen_of("orders.shipment.dispatched").len(), 1);
    assert_eq!(w.seen_of("orders.ingest.rejected").len(), 7);
    let list = w
        .ok::<IngestRejectionListOp>(&cast.integrator, &rejections(50))
        .await;
    assert_eq!(list.items.len(), 7);
}

#[tokio::test]
async fn an_integrator_acts_only_for_its_own_hospitals_orders() {
    let (w, cast) = started().await;
    let mut b = placed(&cast, "PO-1", 1, 1);
    b["hospital"] = json!(cast.other_hospital.org);
    send(&w, &cast, "order_placed", &b).await;
    assert_eq!(rejection(&w, "PO-1").await["field"], "hospital");
    // An integrator the directory does not know is refused.
    let other = common::actor(
        vbp_kernel::OrgKind::Integrator,
        vbp_kernel::OrgId::new(),
        "210000",
    );
    w.ingest(&other, "order_placed", &placed(&cast, "PO-9", 1, 1), None)
        .await;
    let rej = rejection(&w, "PO-9").await;
    assert_eq!(rej["field"], "integrator");
    assert_eq!(w.count("SELECT count(*) FROM orders").await, 0);
}

#[tokio::test]
async fn a_shipment_then_its_receipt_then_the_order_apply_in_order() {
    let (w, cast) = started().await;
    send(
        &w,
        &cast,
        "shipment_dispatched",
        &shipped("SH-7", "PO-7", "S-7", 2, "2027-01-01"),
    )
    .await;
    send(
        &w,
        &cast,
        "order_received",
        &received("RC-7", "PO-7", "S-7"),
    )
    .await;
    send(&w, &cast, "order_accepted", &accepted("AC-7", "PO-7", 2, 0)).await;
    w.wait_count("SELECT count(*) FROM ingest_pending", 3).await;
    assert_eq!(w.count("SELECT count(*) FROM orders").await, 0);

    send(&w, &cast, "order_placed", &placed(&cast, "PO-7", 2, 1)).await;
    let acc = w.published("orders.receipt.accepted", |_| true).await;
    assert_eq!(acc["amount_fen"], 2 * PRICE1);
    assert_eq!(w.count("SELECT count(*) FROM ingest_pending").await, 0);
    assert_eq!(
        w.count("SELECT count(*) FROM ingest_messages WHERE outcome = 'applied'")
            .await,
        4
    );
    // Applied in the order of the business, each once.
    let o = order_of(&w, &cast, "PO-7").await;
    assert_eq!(o.lines[0].accepted_quantity, 2);
    assert!(o.shipments[0].received_at.is_some());
    assert_eq!(w.seen_of("orders.receipt.received").len(), 1);
    assert!(w.seen_of("orders.ingest.rejected").is_empty());
    // Their durable timers went with them.
    assert_eq!(
        w.count("SELECT count(*) FROM timers WHERE kind = 'ingest_pending' AND fired_at IS NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn a_message_still_waiting_after_the_configured_time_is_rejected_with_its_reason() {
    let w = World::start_with(json!({"ingest_pending_timeout_secs": 3600})).await;
    let cast = Cast::new();
    cast.publish(&w).await;
    send(&w, &cast, "order_placed", &placed(&cast, "PO-1", 3, 1)).await;
    order_of(&w, &cast, "PO-1").await;
    // A receipt for a shipment that never comes, and an order that never comes.
    send(
        &w,
        &cast,
        "order_received",
        &received("RC-1", "PO-1", "S-404"),
    )
    .await;
    send(
        &w,
        &cast,
        "order_received",
        &received("RC-2", "PO-404", "S-1"),
    )
    .await;
    w.wait_count("SELECT count(*) FROM ingest_pending", 2).await;

    w.set_clock("2024-09-10T09:59:00+08:00");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(w.seen_of("orders.ingest.rejected").is_empty());

    w.set_clock("2024-09-10T10:01:00+08:00");
    let r1 = rejection(&w, "RC-1").await;
    assert_eq!(r1["field"], "shipment_no");
    assert!(
        r1["reason"].as_str().unwrap().contains("shipment S-404"),
        "{r1}"
    );
    let r2 = rejection(&w, "RC-2").await;
    assert_eq!(r2["field"], "order_external_id");
    assert!(
        r2["reason"].as_str().unwrap().contains("order PO-404"),
        "{r2}"
    );
    assert_eq!(w.count("SELECT count(*) FROM ingest_pending").await, 0);
    let list = w
        .ok::<IngestRejectionListOp>(&cast.integrator, &rejections(10))
        .await;
    assert_eq!(list.items.len(), 2);
    // The rejected receipt stays rejected when its shipment comes after all.
    send(
        &w,
        &cast,
        "shipment_dispatched",
        &shipped("SH-1", "PO-1", "S-404", 3, "2027-01-01"),
    )
    .await;
    w.published("orders.shipment.dispatched", |_| true).await;
    assert!(w.seen_of("orders.receipt.received").is_empty());
}

#[tokio::test]
async fn messages_waiting_for_a_rejected_order_are_rejected_with_it() {
    let (w, cast) = started().await;
    send(
        &w,
        &cast,
        "shipment_dispatched",
        &shipped("SH-5", "PO-5", "S-5", 1, "2027-01-01"),
    )
    .await;
    w.wait_count("SELECT count(*) FROM ingest_pending", 1).await;
    let mut off = placed(&cast, "PO-5", 1, 1);
    off["lines"][0]["unit_price_fen"] = json!(PRICE1 - 1);
    send(&w, &cast, "order_placed", &off).await;
    assert_eq!(
        rejection(&w, "PO-5").await["field"],
        "lines[0].unit_price_fen"
    );
    let r = rejection(&w, "SH-5").await;
    assert!(
        r["reason"].as_str().unwrap().contains("PO-5 was rejected"),
        "{r}"
    );
    assert_eq!(w.count("SELECT count(*) FROM ingest_pending").await, 0);
}

#[tokio::test]
async fn a_receipt_for_an_unknown_shipment_of_a_known_order_waits_for_it() {
    let (w, cast) = started().await;
    send(&w, &cast, "order_placed", &placed(&cast, "PO-9", 4, 1)).await;
    let o = order_of(&w, &cast, "PO-9").await;
    send(
        &w,
        &cast,
        "order_received",
        &received("RC-9", "PO-9", "SH-9"),
    )
    .await;
    w.wait_count("SELECT count(*) FROM ingest_pending", 1).await;
    // The distributor answers and ships on the platform; the receipt
    // applies once its next message arrives or when its time is up.
    w.ok::<OrderRespond>(
        &cast.d1,
        &RespondOrder {
            order: o.order,
            response: OrderResponse::Accepted,
            lines: vec![],
            reason: None,
        },
    )
    .await;
    w.ok::<ShipmentDispatch>(
        &cast.d1,
        &DispatchShipment {
            order: o.order,
            shipment_no: "SH-9".into(),
            lines: vec![DispatchLine {
                line_no: 1,
                batch_no: "B1".into(),
                expiry_date: chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
                quantity: 4,
            }],
        },
    )
    .await;
    w.set_clock("2024-09-11T09:30:00+08:00");
    w.published("orders.receipt.received", |_| true).await;
    assert_eq!(w.count("SELECT count(*) FROM ingest_pending").await, 0);
    assert!(w.seen_of("orders.ingest.rejected").is_empty());
}

#[tokio::test]
async fn an_acceptance_that_overtakes_its_receipt_waits_for_it() {
    // As after a crash: the receipt is redelivered after the acceptance.
    let (w, cast) = started().await;
    send(&w, &cast, "order_placed", &placed(&cast, "PO-8", 2, 1)).await;
    send(
        &w,
        &cast,
        "shipment_dispatched",
        &shipped("SH-8", "PO-8", "S-8", 2, "2027-01-01"),
    )
    .await;
    w.published("orders.shipment.dispatched", |_| true).await;
    send(&w, &cast, "order_accepted", &accepted("AC-8", "PO-8", 2, 0)).await;
    w.wait_count("SELECT count(*) FROM ingest_pending", 1).await;
    assert!(w.seen_of("orders.receipt.accepted").is_empty());

    send(
        &w,
        &cast,
        "order_received",
        &received("RC-8", "PO-8", "S-8"),
    )
    .await;
    let acc = w.published("orders.receipt.accepted", |_| true).await;
    assert_eq!(acc["amount_fen"], 2 * PRICE1);
    assert_eq!(w.count("SELECT count(*) FROM ingest_pending").await, 0);
    assert!(w.seen_of("orders.ingest.rejected").is_empty());
}
