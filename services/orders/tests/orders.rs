//! The orders service on real Postgres and NATS with the manual clock:
//! upstream events and integrator messages published on JetStream, the
//! lifecycle through RPC, this service's events checked as published.

mod common;

use chrono::NaiveDate;
use common::{Cast, P1, P2, P3, PRICE1, PRICE2, World, at, code, operator, rejections};
use serde_json::json;
use vbp_contracts::distribution::RelationEnded;
use vbp_contracts::orders::*;
use vbp_kernel::{Actor, Money};

fn placed(cast: &Cast, ext: &str, lines: serde_json::Value) -> serde_json::Value {
    json!({
        "external_id": ext,
        "hospital": cast.hospital.org,
        "distributor": cast.d1.org,
        "placed_at": "2024-09-10T08:30:00+08:00",
        "lines": lines,
    })
}

fn msg_id(cast: &Cast, ext: &str) -> Option<String> {
    Some(vbp_contracts::ingest::message_id(
        &cast.integrator.org.to_string(),
        ext,
    ))
}

async fn rejection(w: &World, ext: &str) -> serde_json::Value {
    w.published("orders.ingest.rejected", |v| v["external_id"] == ext)
        .await
}

#[tokio::test]
async fn integrator_order_at_the_winning_price_is_placed_once_and_a_fen_off_is_rejected() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;

    let body = placed(
        &cast,
        "PO-1",
        json!([{"national_code": P1, "quantity": 3, "unit_price_fen": PRICE1},
               {"national_code": P2, "quantity": 10, "unit_price_fen": PRICE2}]),
    );
    w.ingest(
        &cast.integrator,
        "order_placed",
        &body,
        msg_id(&cast, "PO-1"),
    )
    .await;
    // The same message again, once with the same id and once with another
    // (a retry through the other path): one order.
    w.ingest(
        &cast.integrator,
        "order_placed",
        &body,
        msg_id(&cast, "PO-1"),
    )
    .await;
    w.ingest(&cast.integrator, "order_placed", &body, None)
        .await;
    let ev = w
        .published("orders.order.placed", |v| v["external_id"] == "PO-1")
        .await;
    assert_eq!(ev["source"], "integrator");
    assert_eq!(ev["period"], json!(cast.period));
    assert_eq!(ev["hospital_region"], "210902");
    assert_eq!(ev["total_amount_fen"], 3 * PRICE1 + 10 * PRICE2);
    assert_eq!(ev["lines"][1]["amount_fen"], 10 * PRICE2);

    // One fen below the winning price: rejected with the field and both prices.
    let off = placed(
        &cast,
        "PO-2",
        json!([{"national_code": P1, "quantity": 1, "unit_price_fen": PRICE1 - 1}]),
    );
    w.ingest(
        &cast.integrator,
        "order_placed",
        &off,
        msg_id(&cast, "PO-2"),
    )
    .await;
    let rej = rejection(&w, "PO-2").await;
    assert_eq!(rej["field"], "lines[0].unit_price_fen");
    let reason = rej["reason"].as_str().unwrap();
    assert!(
        reason.contains("71999") && reason.contains("72000"),
        "{reason}"
    );
    w.wait_count(
        "SELECT count(*) FROM ingest_messages WHERE outcome = 'rejected'",
        1,
    )
    .await;
    assert_eq!(w.count("SELECT count(*) FROM orders").await, 1);
    assert_eq!(w.count("SELECT count(*) FROM order_lines").await, 2);
    assert_eq!(w.seen_of("orders.order.placed").len(), 1);

    // The integrator sees its rejection; a hospital may not list them.
    let list = w
        .ok::<IngestRejectionListOp>(&cast.integrator, &rejections(10))
        .await;
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].external_id, "PO-2");
    let e = w
        .err::<IngestRejectionListOp>(&cast.hospital, &rejections(10))
        .await;
    assert_eq!(e.0.status, 403);

    // Beyond any agreed volume is still an order.
    let big = placed(
        &cast,
        "PO-3",
        json!([{"national_code": P1, "quantity": 900_000, "unit_price_fen": PRICE1}]),
    );
    w.ingest(
        &cast.integrator,
        "order_placed",
        &big,
        msg_id(&cast, "PO-3"),
    )
    .await;
    w.published("orders.order.placed", |v| v["external_id"] == "PO-3")
        .await;
}

#[tokio::test]
async fn integrator_orders_break_precise_rules() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    let line = |c: &str, p: i64| json!([{"national_code": c, "quantity": 1, "unit_price_fen": p}]);

    // A hospital the integrator does not act for.
    let mut b = placed(&cast, "X-1", line(P1, PRICE1));
    b["hospital"] = json!(cast.other_hospital.org);
    w.ingest(&cast.integrator, "order_placed", &b, msg_id(&cast, "X-1"))
        .await;
    assert_eq!(rejection(&w, "X-1").await["field"], "hospital");

    // A distributor without an active relation for the product.
    let mut b = placed(&cast, "X-2", line(P1, PRICE1));
    b["distributor"] = json!(cast.d2.org);
    w.ingest(&cast.integrator, "order_placed", &b, msg_id(&cast, "X-2"))
        .await;
    assert_eq!(rejection(&w, "X-2").await["field"], "distributor");

    // A product in the list without a relation; a product not in the list.
    let b = placed(&cast, "X-3", line(P3, 50_000));
    w.ingest(&cast.integrator, "order_placed", &b, msg_id(&cast, "X-3"))
        .await;
    assert_eq!(rejection(&w, "X-3").await["field"], "distributor");
    let b = placed(&cast, "X-4", line("C99999999999999999999999999", 1));
    w.ingest(&cast.integrator, "order_placed", &b, msg_id(&cast, "X-4"))
        .await;
    assert_eq!(
        rejection(&w, "X-4").await["field"],
        "lines[0].national_code"
    );

    // Before the period: no period runs then.
    let mut b = placed(&cast, "X-5", line(P1, PRICE1));
    b["placed_at"] = json!("2024-07-15T10:00:00+08:00");
    w.ingest(&cast.integrator, "order_placed", &b, msg_id(&cast, "X-5"))
        .await;
    assert_eq!(rejection(&w, "X-5").await["field"], "placed_at");

    // An unknown field: the payload is rejected naming it.
    let mut b = placed(&cast, "X-6", line(P1, PRICE1));
    b["colour"] = json!("red");
    w.ingest(&cast.integrator, "order_placed", &b, msg_id(&cast, "X-6"))
        .await;
    rejection(&w, "X-6").await;

    // The relation ended on 2024-09-05: an order placed after that is refused,
    // one placed before still valid.
    let rel = cast
        .relate(
            &w,
            &cast.hospital,
            P2,
            &cast.d2,
            "2024-08-01T00:00:00+08:00",
        )
        .await;
    w.publish(&RelationEnded {
        relation: rel,
        period: cast.period,
        hospital: cast.hospital.org,
        hospital_region: cast.hospital.region,
        national_code: code(P2),
        manufacturer: cast.maker.org,
        distributor: cast.d2.org,
        valid_from: at("2024-08-01T00:00:00+08:00"),
        valid_to: at("2024-09-05T00:00:00+08:00"),
        reason: "变更".into(),
        replaced_by: None,
        ended_at: at("2024-09-04T00:00:00+08:00"),
    })
    .await;
    w.wait_count(
        "SELECT count(*) FROM relations WHERE valid_to IS NOT NULL",
        1,
    )
    .await;
    let mut b = placed(&cast, "X-7", line(P2, PRICE2));
    b["distributor"] = json!(cast.d2.org);
    w.ingest(&cast.integrator, "order_placed", &b, msg_id(&cast, "X-7"))
        .await;
    assert_eq!(rejection(&w, "X-7").await["field"], "distributor");
    let mut b = placed(&cast, "X-8", line(P2, PRICE2));
    b["distributor"] = json!(cast.d2.org);
    b["placed_at"] = json!("2024-09-01T10:00:00+08:00");
    w.ingest(&cast.integrator, "order_placed", &b, msg_id(&cast, "X-8"))
        .await;
    w.published("orders.order.placed", |v| v["external_id"] == "X-8")
        .await;
    assert_eq!(w.count("SELECT count(*) FROM orders").await, 1);
    assert_eq!(w.seen_of("orders.ingest.rejected").len(), 7);
}

async fn ship(w: &World, cast: &Cast, order: OrderId, no: &str, q1: i64, q2: i64) -> OrderView {
    let mut lines = vec![DispatchLine {
        line_no: 1,
        batch_no: "B240901".into(),
        expiry_date: NaiveDate::from_ymd_opt(2027, 8, 31).unwrap(),
        quantity: q1,
    }];
    if q2 > 0 {
        lines.push(DispatchLine {
            line_no: 2,
            batch_no: "B240902".into(),
            expiry_date: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
            quantity: q2,
        });
    }
    w.ok::<ShipmentDispatch>(
        &cast.d1,
        &DispatchShipment {
            order,
            shipment_no: no.into(),
            lines,
        },
    )
    .await
}

fn two_lines(q1: i64, q2: i64, p1: i64) -> PlaceOrder {
    PlaceOrder {
        distributor: uuid_of_none(),
        lines: vec![
            PlaceOrderLine {
                national_code: code(P1),
                quantity: q1,
                unit_price_fen: Money::from_fen(p1),
            },
            PlaceOrderLine {
                national_code: code(P2),
                quantity: q2,
                unit_price_fen: Money::from_fen(PRICE2),
            },
        ],
    }
}

fn uuid_of_none() -> vbp_kernel::OrgId {
    vbp_kernel::OrgId::new()
}

async fn place(w: &World, cast: &Cast, q1: i64, q2: i64) -> OrderView {
    let mut req = two_lines(q1, q2, PRICE1);
    req.distributor = cast.d1.org;
    w.ok::<OrderPlace>(&cast.hospital, &req).await
}

#[tokio::test]
async fn lifecycle_through_rpc_publishes_the_acceptance_agreements_needs() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;

    // Wrong price through the API: the field and nothing created.
    let mut bad = two_lines(5, 10, PRICE1 + 1);
    bad.distributor = cast.d1.org;
    let e = w.err::<OrderPlace>(&cast.hospital, &bad).await;
    assert_eq!(e.0.field.as_deref(), Some("lines[0].unit_price_fen"));
    assert_eq!(w.count("SELECT count(*) FROM orders").await, 0);
    // Only a hospital places.
    let e = w.err::<OrderPlace>(&cast.d1, &bad).await;
    assert_eq!(e.0.status, 403);

    let o = place(&w, &cast, 5, 10).await;
    assert_eq!(o.state, OrderState::Placed);
    assert_eq!(o.total_amount_fen.fen(), 5 * PRICE1 + 10 * PRICE2);

    // Shipping before the response is not allowed; nothing changes.
    let e = w
        .err::<ShipmentDispatch>(
            &cast.d1,
            &DispatchShipment {
                order: o.order,
                shipment_no: "S0".into(),
                lines: vec![],
            },
        )
        .await;
    assert_eq!(e.0.code, "invalid_transition");
    // Another distributor may not answer; partial needs a reason.
    let e = w
        .err::<OrderRespond>(
            &cast.d2,
            &RespondOrder {
                order: o.order,
                response: OrderResponse::Accepted,
                lines: vec![],
                reason: None,
            },
        )
        .await;
    assert_eq!(e.0.status, 403);
    let partial = |reason: Option<&str>| RespondOrder {
        order: o.order,
        response: OrderResponse::Partial,
        lines: vec![RespondLine {
            line_no: 2,
            confirmed_quantity: 6,
            reason: reason.map(str::to_owned),
        }],
        reason: None,
    };
    let e = w.err::<OrderRespond>(&cast.d1, &partial(None)).await;
    assert_eq!(e.0.field.as_deref(), Some("lines[line_no=2].reason"));
    let r = w
        .ok::<OrderRespond>(&cast.d1, &partial(Some("库存不足")))
        .await;
    assert_eq!(r.state, OrderState::Confirmed);
    assert_eq!(r.lines[1].confirmed_quantity, Some(6));
    let ev = w.published("orders.order.responded", |_| true).await;
    assert_eq!(ev["response"], "partial");
    let e = w.err::<OrderRespond>(&cast.d1, &partial(Some("x"))).await;
    assert_eq!(e.0.code, "invalid_transition");

    // Shipping more than confirmed is refused; two shipments are fine.
    let e = w
        .err::<ShipmentDispatch>(
            &cast.d1,
            &DispatchShipment {
                order: o.order,
                shipment_no: "S1".into(),
                lines: vec![DispatchLine {
                    line_no: 2,
                    batch_no: "B".into(),
                    expiry_date: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
                    quantity: 7,
                }],
            },
        )
        .await;
    assert_eq!(e.0.field.as_deref(), Some("lines[0].quantity"));
    let v = ship(&w, &cast, o.order, "S1", 3, 6).await;
    let s1 = v.shipments[0].shipment;
    let v = ship(&w, &cast, o.order, "S2", 2, 0).await;
    let s2 = v
        .shipments
        .iter()
        .find(|s| s.shipment_no == "S2")
        .unwrap()
        .shipment;
    let ev = w
        .published("orders.shipment.dispatched", |v| v["shipment_no"] == "S1")
        .await;
    assert_eq!(ev["lines"][0]["batch_no"], "B240901");
    assert_eq!(ev["lines"][1]["expiry_date"], "2026-12-31");

    // Accepting before receipt is refused.
    let accept = |shipment, a1: i64, r1: i64| AcceptReceipt {
        order: o.order,
        shipment: Some(shipment),
        lines: vec![AcceptLine {
            line_no: 1,
            accepted_quantity: a1,
            rejected_quantity: r1,
            rejection_reason: (r1 > 0).then(|| "包装破损".to_owned()),
        }],
    };
    let e = w
        .err::<ReceiptAccept>(&cast.hospital, &accept(s1, 1, 0))
        .await;
    assert_eq!(e.0.code, "invalid_transition");
    w.ok::<ShipmentReceive>(&cast.hospital, &ReceiveShipment { shipment: s1 })
        .await;
    let e = w
        .err::<ShipmentReceive>(&cast.hospital, &ReceiveShipment { shipment: s1 })
        .await;
    assert_eq!(e.0.code, "invalid_transition");
    w.published("orders.receipt.received", |_| true).await;

    // Accept 2 of line 1 and reject 1 (damaged), all 6 of line 2.
    w.set_clock("2025-01-31T15:00:00+08:00");
    let e = w
        .err::<ReceiptAccept>(&cast.hospital, &accept(s1, 3, 1))
        .await;
    assert_eq!(e.0.field.as_deref(), Some("lines[0].accepted_quantity"));
    let mut req = accept(s1, 2, 1);
    req.lines.push(AcceptLine {
        line_no: 2,
        accepted_quantity: 6,
        rejected_quantity: 0,
        rejection_reason: None,
    });
    let acc = w.ok::<ReceiptAccept>(&cast.hospital, &req).await;
    assert_eq!(acc.amount_fen.fen(), 2 * PRICE1 + 6 * PRICE2);
    assert_eq!(acc.due_at, at("2025-03-01T00:00:00+08:00"));
    let ev = w.published("orders.receipt.accepted", |_| true).await;
    assert_eq!(ev["period"], json!(cast.period));
    assert_eq!(ev["hospital"], json!(cast.hospital.org));
    assert_eq!(ev["hospital_region"], "210902");
    assert_eq!(ev["source"], "online");
    assert_eq!(ev["amount_fen"], 2 * PRICE1 + 6 * PRICE2);
    assert_eq!(ev["accepted_at"], "2025-01-31T07:00:00Z");
    assert_eq!(ev["payment_due_at"], "2025-02-28T16:00:00Z");
    let l0 = &ev["lines"][0];
    assert_eq!(l0["national_code"], P1);
    assert_eq!(l0["manufacturer"], json!(cast.maker.org));
    assert_eq!(l0["accepted_quantity"], 2);
    assert_eq!(l0["rejected_quantity"], 1);
    assert_eq!(l0["rejection_reason"], "包装破损");
    assert_eq!(l0["unit_price_fen"], PRICE1);
    assert_eq!(l0["amount_fen"], 2 * PRICE1);
    assert_eq!(ev["lines"][1]["amount_fen"], 6 * PRICE2);
    // S2 not received: nothing more to accept.
    let e = w
        .err::<ReceiptAccept>(&cast.hospital, &accept(s2, 1, 0))
        .await;
    assert_eq!(e.0.code, "invalid_transition");

    // Invoice: a fen off is refused; paying before the invoice is refused.
    let pay = |amount: i64| PaySettlement {
        acceptance: acc.acceptance,
        amount_fen: Money::from_fen(amount),
        channel: SettlementChannel::Online,
        reason: None,
        paid_on: None,
    };
    let e = w.err::<SettlementPay>(&cast.hospital, &pay(1)).await;
    assert_eq!(e.0.code, "invalid_transition");
    let invoice = |amount: i64| IssueInvoice {
        acceptance: acc.acceptance,
        invoice_code: "021002400111".into(),
        invoice_number: "00012345".into(),
        amount_fen: Money::from_fen(amount),
        tax_fen: Money::from_fen(1_000),
        issued_on: NaiveDate::from_ymd_opt(2025, 2, 1).unwrap(),
    };
    let e = w
        .err::<InvoiceIssue>(&cast.d1, &invoice(acc.amount_fen.fen() - 1))
        .await;
    assert_eq!(e.0.field.as_deref(), Some("amount_fen"));
    assert_eq!(w.count("SELECT count(*) FROM invoices").await, 0);
    w.ok::<InvoiceIssue>(&cast.d1, &invoice(acc.amount_fen.fen()))
        .await;
    let e = w
        .err::<InvoiceIssue>(&cast.d1, &invoice(acc.amount_fen.fen()))
        .await;
    assert_eq!(e.0.code, "invalid_transition");
    w.published("orders.invoice.issued", |_| true).await;

    // Paid in full by the deadline.
    w.set_clock("2025-02-20T10:00:00+08:00");
    let e = w
        .err::<SettlementPay>(&cast.hospital, &pay(acc.amount_fen.fen() + 1))
        .await;
    assert_eq!(e.0.field.as_deref(), Some("amount_fen"));
    let v = w
        .ok::<SettlementPay>(&cast.hospital, &pay(acc.amount_fen.fen()))
        .await;
    assert_eq!(v.paid_fen, acc.amount_fen);
    let ev = w.published("orders.settlement.paid", |_| true).await;
    assert_eq!(ev["on_time"], true);
    assert_eq!(ev["channel"], "online");
    assert_eq!(ev["amount_fen"], acc.amount_fen.fen());
    assert_eq!(ev["payee"], json!(cast.d1.org));
    let e = w.err::<SettlementPay>(&cast.hospital, &pay(1)).await;
    assert_eq!(e.0.code, "invalid_transition");

    // Scoped reads.
    let got = w
        .ok::<OrderGet>(&cast.hospital, &GetOrder { order: o.order })
        .await;
    assert_eq!(got.lines[0].accepted_quantity, 2);
    assert_eq!(got.lines[0].rejected_quantity, 1);
    let e = w
        .err::<OrderGet>(&cast.other_hospital, &GetOrder { order: o.order })
        .await;
    assert_eq!(e.0.status, 404);
    let listed = w
        .ok::<OrderListOp>(
            &cast.fuxin,
            &ListOrders {
                hospital: None,
                distributor: None,
                page: 1,
                page_size: 10,
            },
        )
        .await;
    assert_eq!((listed.items.len(), listed.total), (1, 1));
}

async fn accepted(w: &World, cast: &Cast, q1: i64) -> AcceptanceView {
    let o = place(w, cast, q1, 1).await;
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
    let v = ship(w, cast, o.order, "S", q1, 1).await;
    w.ok::<ShipmentReceive>(
        &cast.hospital,
        &ReceiveShipment {
            shipment: v.shipments[0].shipment,
        },
    )
    .await;
    w.ok::<ReceiptAccept>(
        &cast.hospital,
        &AcceptReceipt {
            order: o.order,
            shipment: None,
            lines: vec![
                AcceptLine {
                    line_no: 1,
                    accepted_quantity: q1,
                    rejected_quantity: 0,
                    rejection_reason: None,
                },
                AcceptLine {
                    line_no: 2,
                    accepted_quantity: 1,
                    rejected_quantity: 0,
                    rejection_reason: None,
                },
            ],
        },
    )
    .await
}

async fn invoice_and_pay(
    w: &World,
    cast: &Cast,
    a: &AcceptanceView,
    no: &str,
    who: &Actor,
    ch: SettlementChannel,
) {
    w.ok::<InvoiceIssue>(
        &cast.d1,
        &IssueInvoice {
            acceptance: a.acceptance,
            invoice_code: "0210".into(),
            invoice_number: no.into(),
            amount_fen: a.amount_fen,
            tax_fen: Money::from_fen(0),
            issued_on: NaiveDate::from_ymd_opt(2024, 9, 20).unwrap(),
        },
    )
    .await;
    w.ok::<SettlementPay>(
        who,
        &PaySettlement {
            acceptance: a.acceptance,
            amount_fen: a.amount_fen,
            channel: ch,
            reason: None,
            paid_on: None,
        },
    )
    .await;
}

#[tokio::test]
async fn overdue_is_flagged_by_the_clock_and_rates_add_up_to_the_fen() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    // Three acceptances on 2024-09-10: all due by 2024-10-31 24:00.
    let a = accepted(&w, &cast, 1).await; // paid on time online
    let b = accepted(&w, &cast, 2).await; // paid late by the fund
    let c = accepted(&w, &cast, 3).await; // never paid
    assert_eq!(a.due_at, at("2024-11-01T00:00:00+08:00"));
    invoice_and_pay(
        &w,
        &cast,
        &a,
        "1",
        &cast.hospital,
        SettlementChannel::Online,
    )
    .await;

    // Not overdue the minute before the deadline.
    w.set_clock("2024-10-31T23:59:00+08:00");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(w.seen_of("orders.settlement.overdue").is_empty());
    // Past it: b and c are flagged, a is not.
    w.set_clock("2024-11-01T00:00:01+08:00");
    w.wait_count("SELECT count(*) FROM acceptances WHERE overdue", 2)
        .await;
    let ev = w
        .published("orders.settlement.overdue", |v| {
            v["acceptance"] == json!(c.acceptance)
        })
        .await;
    assert_eq!(ev["amount_fen"], c.amount_fen.fen());
    assert_eq!(ev["due_at"], "2024-10-31T16:00:00Z");
    assert_eq!(ev["payee"], json!(cast.d1.org));
    // The fund pays b late.
    invoice_and_pay(&w, &cast, &b, "2", &cast.fuxin, SettlementChannel::Direct).await;
    let paid = w
        .published("orders.settlement.paid", |v| v["channel"] == "direct")
        .await;
    assert_eq!(paid["on_time"], false);

    // Offline purchases declared for September.
    w.ok::<OfflinePurchaseDeclare>(
        &cast.hospital,
        &DeclareOfflinePurchase {
            month: NaiveDate::from_ymd_opt(2024, 9, 1).unwrap(),
            national_code: None,
            amount_fen: Money::from_fen(100_001),
        },
    )
    .await;
    w.published("orders.offline_purchase.declared", |_| true)
        .await;

    let total = a.amount_fen.fen() + b.amount_fen.fen() + c.amount_fen.fen();
    // Due in October (deadline 2024-10-31 24:00).
    let oct = w
        .ok::<RatesGet>(
            &cast.hospital,
            &QueryRates {
                month: NaiveDate::from_ymd_opt(2024, 10, 1).unwrap(),
                hospital: None,
                region: None,
            },
        )
        .await;
    assert_eq!(oct.due_fen.fen(), total);
    assert_eq!(
        oct.settled_fen.fen(),
        a.amount_fen.fen() + b.amount_fen.fen()
    );
    assert_eq!(oct.settled_on_time_fen.fen(), a.amount_fen.fen());
    assert_eq!(oct.overdue_count, 2);
    let bp = |p: i64, q: i64| ((p as i128 * 20_000 + q as i128) / (2 * q as i128)) as u32;
    assert_eq!(
        oct.settlement_rate_bp,
        Some(bp(a.amount_fen.fen() + b.amount_fen.fen(), total))
    );
    assert_eq!(oct.timely_rate_bp, Some(bp(a.amount_fen.fen(), total)));
    // Accepted in September, plus the offline declaration.
    let sep = w
        .ok::<RatesGet>(
            &cast.fuxin,
            &QueryRates {
                month: NaiveDate::from_ymd_opt(2024, 9, 1).unwrap(),
                hospital: None,
                region: Some("210900".parse().unwrap()),
            },
        )
        .await;
    assert_eq!(sep.online_fen.fen(), total);
    assert_eq!(sep.offline_declared_fen.fen(), 100_001);
    assert_eq!(sep.online_rate_bp, Some(bp(total, total + 100_001)));
    assert_eq!(sep.due_fen.fen(), 0);
    assert_eq!(sep.settlement_rate_bp, None);
    // A bureau outside the region is refused; a hospital sees only itself.
    let e = w
        .err::<RatesGet>(
            &cast.fuxin,
            &QueryRates {
                month: NaiveDate::from_ymd_opt(2024, 9, 1).unwrap(),
                hospital: None,
                region: Some("210100".parse().unwrap()),
            },
        )
        .await;
    assert_eq!(e.0.status, 403);
    let e = w
        .err::<RatesGet>(
            &cast.hospital,
            &QueryRates {
                month: NaiveDate::from_ymd_opt(2024, 9, 1).unwrap(),
                hospital: Some(cast.other_hospital.org),
                region: None,
            },
        )
        .await;
    assert_eq!(e.0.status, 403);
    let _ = operator();
}

#[tokio::test]
async fn regional_payment_terms_in_days_come_from_configuration() {
    let w = World::start_with(json!({ "payment_days": { "210900": 30 } })).await;
    let cast = Cast::new();
    cast.publish(&w).await;
    let a = accepted(&w, &cast, 1).await;
    // Accepted 2024-09-10 (Shanghai): due by the end of 2024-10-10.
    assert_eq!(a.due_at, at("2024-10-11T00:00:00+08:00"));
    let ev = w.published("orders.receipt.accepted", |_| true).await;
    assert_eq!(ev["payment_due_at"], "2024-10-10T16:00:00Z");
}
