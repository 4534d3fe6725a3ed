//! Shortage mode (Hunan 湘医保函〔2024〕2号) on real Postgres and NATS: a
//! bureau flags a product short, large order lines are capped, hospitals
//! with agreed volume are served first, and substitutes go to a ledger the
//! rates never read.

mod common;
mod flow;

use chrono::NaiveDate;
use common::{Cast, P1, P2, P3, PRICE1, PRICE2, World, actor, at, code};
use flow::{confirm, deliver, month, order, place};
use serde_json::json;
use vbp_contracts::agreements::{AgreedVolumeLine, AgreedVolumeSet, ProjectId};
use vbp_contracts::orders::*;
use vbp_kernel::{Actor, Money, OrgId, OrgKind};

async fn agreed(w: &World, cast: &Cast, hospital: OrgId, qty: i64) {
    w.publish(&AgreedVolumeSet {
        period: cast.period,
        project: ProjectId::new(),
        hospital,
        hospital_region: cast.hospital.region,
        product_group: "G1".into(),
        lines: vec![AgreedVolumeLine {
            national_code: code(P1),
            manufacturer: cast.maker.org,
            quantity: qty,
            unit_price_fen: Money::from_fen(PRICE1),
            amount_fen: Money::from_fen(PRICE1 * qty),
        }],
        quantity: qty,
        amount_fen: Money::from_fen(PRICE1 * qty),
        revision: 1,
        reason: None,
        set_at: at("2024-07-20T10:00:00+08:00"),
    })
    .await;
    w.wait_count("SELECT count(*) FROM agreed_volumes", 1).await;
}

async fn rates(w: &World, who: &Actor) -> RatesView {
    w.ok::<RatesGet>(
        who,
        &QueryRates {
            month: month(2024, 9),
            hospital: None,
            region: None,
        },
    )
    .await
}

async fn ledger(w: &World, who: &Actor) -> Vec<SubstituteView> {
    w.ok::<SubstituteListOp>(
        who,
        &ListSubstitutes {
            hospital: None,
            region: None,
            page: 1,
            page_size: 500,
        },
    )
    .await
    .items
}

fn flag(cap: Option<i64>, region: Option<&str>) -> FlagShortage {
    FlagShortage {
        national_code: code(P1),
        region: region.map(|r| r.parse().unwrap()),
        cap_per_line: cap,
        reason: "生产企业停产检修，省内库存紧张".into(),
    }
}

#[tokio::test]
async fn a_large_order_is_capped_and_hospitals_with_agreed_volume_are_served_first() {
    let w = World::start_with(json!({ "shortage_line_cap": 50 })).await;
    let cast = Cast::new();
    cast.publish(&w).await;
    agreed(&w, &cast, cast.hospital.org, 600).await;
    let province = actor(OrgKind::Bureau, OrgId::new(), "210000");

    // Only bureaus flag, inside their jurisdiction, products on a list.
    let e = w
        .err::<ShortageFlag>(&cast.hospital, &flag(None, None))
        .await;
    assert_eq!(e.0.status, 403);
    let e = w
        .err::<ShortageFlag>(&cast.fuxin, &flag(None, Some("210100")))
        .await;
    assert_eq!(e.0.status, 403);
    let mut unknown = flag(None, None);
    unknown.national_code = code("C99999999999999999990000001");
    let e = w.err::<ShortageFlag>(&province, &unknown).await;
    assert_eq!(e.0.field.as_deref(), Some("national_code"));
    let mut no_reason = flag(None, None);
    no_reason.reason = "  ".into();
    let e = w.err::<ShortageFlag>(&province, &no_reason).await;
    assert_eq!(e.0.field.as_deref(), Some("reason"));
    assert_eq!(w.count("SELECT count(*) FROM shortages").await, 0);

    // The province flags P1 with the configured cap.
    let s = w.ok::<ShortageFlag>(&province, &flag(None, None)).await;
    assert_eq!(s.cap_per_line, 50);
    assert_eq!(s.region.to_string(), "210000");
    let ev = w.published("orders.shortage.flagged", |_| true).await;
    assert_eq!(ev["cap_per_line"], 50);
    assert_eq!(ev["national_code"], P1);
    let e = w
        .err::<ShortageFlag>(&province, &flag(Some(10), None))
        .await;
    assert_eq!(e.0.code, "already_flagged");
    // Hospitals in the region see it.
    let seen = w
        .ok::<ShortageListOp>(
            &cast.hospital,
            &ListShortages {
                region: None,
                include_lifted: false,
            },
        )
        .await;
    assert_eq!(seen.items.len(), 1);

    // 500 asked: the line carries the cap, the order remembers the ask; P2
    // is not short and keeps its quantity.
    let big = place(
        &w,
        &cast.hospital,
        &cast.d1,
        &[(P1, 500, PRICE1), (P2, 80, PRICE2)],
    )
    .await;
    assert_eq!(big.lines[0].quantity, 50);
    assert_eq!(big.lines[0].requested_quantity, Some(500));
    assert_eq!(big.lines[0].amount_fen.fen(), 50 * PRICE1);
    assert_eq!(big.lines[1].quantity, 80);
    assert_eq!(big.lines[1].requested_quantity, None);
    assert_eq!(big.total_amount_fen.fen(), 50 * PRICE1 + 80 * PRICE2);
    let ev = w
        .published("orders.order.placed", |v| v["order"] == json!(big.order))
        .await;
    assert_eq!(ev["lines"][0]["quantity"], 50);
    assert_eq!(ev["lines"][0]["requested_quantity"], 500);
    assert_eq!(ev["total_amount_fen"], 50 * PRICE1 + 80 * PRICE2);

    // The other hospital has no agreed volume of P1: while the hospital
    // with one waits, the distributor may not confirm it P1 …
    let small = place(&w, &cast.other_hospital, &cast.d1, &[(P1, 10, PRICE1)]).await;
    assert_eq!(small.lines[0].quantity, 10);
    let e = w
        .err::<OrderRespond>(
            &cast.d1,
            &RespondOrder {
                order: small.order,
                response: OrderResponse::Accepted,
                lines: vec![],
                reason: None,
            },
        )
        .await;
    assert_eq!(e.0.code, "shortage_priority");
    assert!(e.0.message.contains(&big.order.to_string()), "{e:?}");
    let still = w
        .ok::<OrderGet>(&cast.other_hospital, &GetOrder { order: small.order })
        .await;
    assert_eq!(still.state, OrderState::Placed);
    assert!(w.seen_of("orders.order.responded").is_empty());
    // … once the priority order is answered, it may.
    confirm(&w, &cast.d1, &big).await;
    let served = confirm(&w, &cast.d1, &small).await;
    assert_eq!(served.state, OrderState::Confirmed);

    // A city bureau may not lift the province's flag; the province may.
    let e = w
        .err::<ShortageLift>(
            &cast.fuxin,
            &LiftShortage {
                shortage: s.shortage,
                reason: None,
            },
        )
        .await;
    assert_eq!(e.0.status, 403);
    w.set_clock("2024-09-12T09:00:00+08:00");
    let lifted = w
        .ok::<ShortageLift>(
            &province,
            &LiftShortage {
                shortage: s.shortage,
                reason: Some("企业恢复供货".into()),
            },
        )
        .await;
    assert_eq!(lifted.lifted_at, Some(at("2024-09-12T09:00:00+08:00")));
    w.published("orders.shortage.lifted", |_| true).await;
    let e = w
        .err::<ShortageLift>(
            &province,
            &LiftShortage {
                shortage: s.shortage,
                reason: None,
            },
        )
        .await;
    assert_eq!(e.0.code, "invalid_transition");
    let after = place(&w, &cast.hospital, &cast.d1, &[(P1, 500, PRICE1)]).await;
    assert_eq!(after.lines[0].quantity, 500);
    assert_eq!(after.lines[0].requested_quantity, None);
}

#[tokio::test]
async fn substitutes_are_recorded_only_while_flagged_and_never_count_in_the_rates() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    // An ordinary month before any substitute: one acceptance on 2024-09-10.
    let o = place(&w, &cast.hospital, &cast.d1, &[(P1, 3, PRICE1)]).await;
    let a = deliver(&w, &cast.hospital, &cast.d1, &o).await;
    w.ok::<OfflinePurchaseDeclare>(
        &cast.hospital,
        &DeclareOfflinePurchase {
            month: month(2024, 9),
            national_code: None,
            amount_fen: Money::from_fen(72_001),
        },
    )
    .await;
    let before = rates(&w, &cast.fuxin).await;
    assert_eq!(before.online_fen, a.amount_fen);
    assert_eq!(before.offline_declared_fen.fen(), 72_001);

    let sub = |p: &str, on: (i32, u32, u32)| RecordSubstitute {
        short_product: code(p),
        substitute_name: "非中选 6F 导引导管（某品牌）".into(),
        substitute_code: Some(code("C02010205103001109990000077")),
        quantity: 4,
        amount_fen: Money::from_fen(4 * 81_000),
        purchased_on: NaiveDate::from_ymd_opt(on.0, on.1, on.2).unwrap(),
    };
    // Not flagged: refused, nothing recorded.
    let e = w
        .err::<SubstituteRecord>(&cast.hospital, &sub(P1, (2024, 9, 10)))
        .await;
    assert_eq!(e.0.field.as_deref(), Some("short_product"));

    let s = w
        .ok::<ShortageFlag>(
            &cast.fuxin,
            &FlagShortage {
                national_code: code(P1),
                region: None,
                cap_per_line: Some(20),
                reason: "辖区库存紧张".into(),
            },
        )
        .await;
    // Before the flag, another product, a future day, the other region's
    // hospital: all refused with the field.
    for (who, req, field) in [
        (&cast.hospital, sub(P1, (2024, 9, 9)), "short_product"),
        (&cast.hospital, sub(P3, (2024, 9, 10)), "short_product"),
        (&cast.hospital, sub(P1, (2024, 9, 11)), "purchased_on"),
        (
            &cast.other_hospital,
            sub(P1, (2024, 9, 10)),
            "short_product",
        ),
    ] {
        let e = w.err::<SubstituteRecord>(who, &req).await;
        assert_eq!(e.0.field.as_deref(), Some(field), "{req:?}: {e:?}");
    }
    let e = w
        .err::<SubstituteRecord>(&cast.d1, &sub(P1, (2024, 9, 10)))
        .await;
    assert_eq!(e.0.status, 403);
    assert_eq!(w.count("SELECT count(*) FROM substitutes").await, 0);

    let entry = w
        .ok::<SubstituteRecord>(&cast.hospital, &sub(P1, (2024, 9, 10)))
        .await;
    assert_eq!(entry.shortage, s.shortage);
    assert_eq!(entry.period, cast.period);
    let ev = w.published("orders.substitute.recorded", |_| true).await;
    assert_eq!(ev["short_product"], P1);
    assert_eq!(ev["amount_fen"], 4 * 81_000);
    assert_eq!(ev["hospital_region"], "210902");

    // The ledger: the hospital and its bureau see it; the other hospital not.
    assert_eq!(ledger(&w, &cast.hospital).await, vec![entry.clone()]);
    assert_eq!(ledger(&w, &cast.fuxin).await.len(), 1);
    assert!(ledger(&w, &cast.other_hospital).await.is_empty());

    // Excluded from assessment: the month's rates are what they were.
    assert_eq!(rates(&w, &cast.fuxin).await, before);
    assert_eq!(rates(&w, &cast.hospital).await, before);
}

#[tokio::test]
async fn a_flag_without_a_cap_needs_one_configured() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    let e = w
        .err::<ShortageFlag>(
            &cast.fuxin,
            &FlagShortage {
                national_code: code(P1),
                region: None,
                cap_per_line: None,
                reason: "库存紧张".into(),
            },
        )
        .await;
    assert_eq!(e.0.field.as_deref(), Some("cap_per_line"));
    let e = w
        .err::<OrderPlace>(
            &cast.hospital,
            &order(&cast.d1, &[("C99999999999999999990000001", 1, PRICE1)]),
        )
        .await;
    assert_eq!(e.0.field.as_deref(), Some("lines[0].national_code"));
}

#[tokio::test]
async fn a_shipping_note_that_answers_an_order_keeps_the_shortage_priority() {
    let w = World::start_with(json!({ "shortage_line_cap": 50 })).await;
    let cast = Cast::new();
    cast.publish(&w).await;
    // The other hospital has an agreed volume of P1; the integrator's
    // hospital has none.
    agreed(&w, &cast, cast.other_hospital.org, 600).await;
    let province = actor(OrgKind::Bureau, OrgId::new(), "210000");
    w.ok::<ShortageFlag>(&province, &flag(None, None)).await;
    let priority = place(&w, &cast.other_hospital, &cast.d1, &[(P1, 10, PRICE1)]).await;

    let integrator = cast.integrator.org.to_string();
    let send = |event: &'static str, body: serde_json::Value| {
        let ext = body["external_id"].as_str().unwrap().to_owned();
        let id = vbp_contracts::ingest::message_id(&integrator, &ext);
        let w = &w;
        let who = &cast.integrator;
        async move { w.ingest(who, event, &body, Some(id)).await }
    };
    send(
        vbp_contracts::ingest::ORDER_PLACED,
        json!({"external_id": "PO-S1", "hospital": cast.hospital.org, "distributor": cast.d1.org,
               "placed_at": "2024-09-10T08:30:00+08:00",
               "lines": [{"national_code": P1, "quantity": 5, "unit_price_fen": PRICE1}]}),
    )
    .await;
    let note = |ext: &str, no: &str| {
        json!({"external_id": ext, "order_external_id": "PO-S1", "shipment_no": no,
               "shipped_at": "2024-09-10T08:45:00+08:00",
               "lines": [{"national_code": P1, "batch_no": "B2409", "expiry_date": "2027-06-30",
                          "quantity": 5}]})
    };
    send(
        vbp_contracts::ingest::SHIPMENT_DISPATCHED,
        note("SH-S1", "FH-S1"),
    )
    .await;
    let refused = w
        .published("orders.ingest.rejected", |v| v["external_id"] == "SH-S1")
        .await;
    let reason = refused["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&priority.order.to_string()) && reason.contains("short"),
        "{refused}"
    );
    assert_eq!(w.count("SELECT count(*) FROM shipments").await, 0);
    assert!(w.seen_of("orders.order.responded").is_empty());

    // Once the waiting priority order is answered, the next note ships.
    confirm(&w, &cast.d1, &priority).await;
    send(
        vbp_contracts::ingest::SHIPMENT_DISPATCHED,
        note("SH-S2", "FH-S2"),
    )
    .await;
    let shipped = w
        .published("orders.shipment.dispatched", |v| {
            v["shipment_no"] == "FH-S2"
        })
        .await;
    assert_eq!(shipped["lines"][0]["quantity"], 5);
}
