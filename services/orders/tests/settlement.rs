//! Settlement on real Postgres and NATS with the manual clock: due dates,
//! moving an item to offline settlement (reason, audit), and the rates of a
//! month to the fen, as figures and as `.xlsx`.

mod common;
mod flow;

use common::{Cast, P1, P2, P3, PRICE1, PRICE2, World, at};
use flow::{deliver, invoice, month, order, place};
use serde_json::json;
use vbp_contracts::orders::*;
use vbp_kernel::{Actor, Money};

async fn pay(w: &World, who: &Actor, a: &AcceptanceView, ch: SettlementChannel) -> AcceptanceView {
    w.ok::<SettlementPay>(
        who,
        &PaySettlement {
            acceptance: a.acceptance,
            amount_fen: Money::from_fen(a.amount_fen.fen() - a.paid_fen.fen()),
            channel: ch,
            reason: None,
            paid_on: None,
        },
    )
    .await
}

fn bp(p: i64, q: i64) -> Option<u32> {
    Some(((p as i128 * 20_000 + q as i128) / (2 * q as i128)) as u32)
}

#[tokio::test]
async fn placement_names_the_broken_rule() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    // d2 holds no relation with the hospital.
    let e = w
        .err::<OrderPlace>(&cast.hospital, &order(&cast.d2, &[(P1, 1, PRICE1)]))
        .await;
    assert_eq!(e.0.field.as_deref(), Some("distributor"));
    assert!(
        e.0.message.contains("no active distribution relation"),
        "{e:?}"
    );
    // P3 is listed but d1 does not deliver it to the hospital.
    let e = w
        .err::<OrderPlace>(&cast.hospital, &order(&cast.d1, &[(P3, 1, 50_000)]))
        .await;
    assert_eq!(e.0.field.as_deref(), Some("distributor"));
    let e = w
        .err::<OrderPlace>(
            &cast.hospital,
            &order(
                &cast.d1,
                &[(P1, 1, PRICE1), ("C02010205103001107669999999", 1, 1)],
            ),
        )
        .await;
    assert_eq!(e.0.field.as_deref(), Some("lines[1].national_code"));
    assert!(e.0.message.contains("not in the supply list"), "{e:?}");
    let e = w
        .err::<OrderPlace>(&cast.hospital, &order(&cast.d1, &[(P2, 1, PRICE2 - 1)]))
        .await;
    assert_eq!(e.0.field.as_deref(), Some("lines[0].unit_price_fen"));
    assert_eq!(w.count("SELECT count(*) FROM orders").await, 0);
}

#[tokio::test]
async fn due_dates_follow_the_acceptance_day_in_beijing() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    for (accepted, due) in [
        ("2025-01-31T16:30:00+08:00", "2025-03-01T00:00:00+08:00"),
        ("2025-02-28T09:00:00+08:00", "2025-04-01T00:00:00+08:00"),
        ("2024-12-15T10:00:00+08:00", "2025-02-01T00:00:00+08:00"),
    ] {
        w.set_clock(accepted);
        let o = place(&w, &cast.hospital, &cast.d1, &[(P2, 2, PRICE2)]).await;
        let a = deliver(&w, &cast.hospital, &cast.d1, &o).await;
        assert_eq!(a.accepted_at, at(accepted));
        assert_eq!(a.due_at, at(due), "accepted {accepted}");
    }
}

#[tokio::test]
async fn an_item_moved_offline_is_audited_and_rates_add_up_to_the_fen() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    // Four acceptances on 2024-09-10, all due by 2024-10-31 24:00.
    let mut acc = Vec::new();
    for q in [1, 2, 3, 4] {
        let o = place(
            &w,
            &cast.hospital,
            &cast.d1,
            &[(P1, q, PRICE1), (P2, 7, PRICE2)],
        )
        .await;
        acc.push(deliver(&w, &cast.hospital, &cast.d1, &o).await);
    }
    let [online, offline, unpaid, direct] = [&acc[0], &acc[1], &acc[2], &acc[3]];
    for (i, a) in acc.iter().enumerate() {
        invoice(&w, &cast.d1, a, &format!("0000{i}")).await;
    }
    pay(&w, &cast.hospital, online, SettlementChannel::Online).await;

    // Offline is not a payment channel; moving needs a reason and the owner.
    let e = w
        .err::<SettlementPay>(
            &cast.hospital,
            &PaySettlement {
                acceptance: offline.acceptance,
                amount_fen: offline.amount_fen,
                channel: SettlementChannel::Offline,
                reason: Some("发票信息有误".into()),
                paid_on: None,
            },
        )
        .await;
    assert_eq!(e.0.field.as_deref(), Some("channel"));
    let mv = |reason: &str| MoveOffline {
        acceptance: offline.acceptance,
        reason: reason.into(),
    };
    let e = w
        .err::<SettlementMoveOffline>(&cast.hospital, &mv(" "))
        .await;
    assert_eq!(e.0.field.as_deref(), Some("reason"));
    let e = w
        .err::<SettlementMoveOffline>(&cast.other_hospital, &mv("发票信息有误"))
        .await;
    assert_eq!(e.0.status, 403);
    let e = w
        .err::<SettlementMoveOffline>(&cast.d1, &mv("发票信息有误"))
        .await;
    assert_eq!(e.0.status, 403);
    assert_eq!(
        w.count("SELECT count(*) FROM settlements WHERE channel = 'offline'")
            .await,
        0
    );
    w.set_clock("2024-10-08T11:00:00+08:00");
    let moved = w
        .ok::<SettlementMoveOffline>(&cast.hospital, &mv("已上传发票信息有误，转线下结算"))
        .await;
    assert_eq!(moved.paid_fen, offline.amount_fen);
    let ev = w
        .published("orders.settlement.paid", |v| v["channel"] == "offline")
        .await;
    assert_eq!(ev["offline_reason"], "已上传发票信息有误，转线下结算");
    assert_eq!(ev["on_time"], true);
    assert_eq!(ev["amount_fen"], offline.amount_fen.fen());
    // Settled in full: neither a second move nor an online payment.
    let e = w
        .err::<SettlementMoveOffline>(&cast.hospital, &mv("再次"))
        .await;
    assert_eq!(e.0.code, "invalid_transition");
    let e = w
        .err::<SettlementPay>(
            &cast.hospital,
            &PaySettlement {
                acceptance: offline.acceptance,
                amount_fen: Money::from_fen(1),
                channel: SettlementChannel::Online,
                reason: None,
                paid_on: None,
            },
        )
        .await;
    assert_eq!(e.0.code, "invalid_transition");

    // The audit: who, when, why — for the hospital's bureau and the payee.
    let audit = |who: &Actor| {
        let req = ListOfflineSettlements {
            hospital: None,
            region: None,
            page: 1,
            page_size: 50,
        };
        let w = &w;
        let who = who.clone();
        async move { w.ok::<OfflineSettlementListOp>(&who, &req).await.items }
    };
    let items = audit(&cast.fuxin).await;
    assert_eq!(items.len(), 1);
    let it = &items[0];
    assert_eq!(it.acceptance, offline.acceptance);
    assert_eq!(it.actor, cast.hospital.sub);
    assert_eq!(it.actor_org, cast.hospital.org);
    assert_eq!(it.moved_at, at("2024-10-08T11:00:00+08:00"));
    assert_eq!(it.reason, "已上传发票信息有误，转线下结算");
    assert_eq!(it.amount_fen, offline.amount_fen);
    assert_eq!(audit(&cast.d1).await.len(), 1);
    assert!(audit(&cast.other_hospital).await.is_empty());

    // Past the deadline: the unpaid two are flagged; the fund pays one late.
    w.set_clock("2024-11-01T00:00:01+08:00");
    w.wait_count("SELECT count(*) FROM acceptances WHERE overdue", 2)
        .await;
    w.published("orders.settlement.overdue", |v| {
        v["acceptance"] == json!(unpaid.acceptance)
    })
    .await;
    pay(&w, &cast.fuxin, direct, SettlementChannel::Direct).await;
    w.ok::<OfflinePurchaseDeclare>(
        &cast.hospital,
        &DeclareOfflinePurchase {
            month: month(2024, 9),
            national_code: None,
            amount_fen: Money::from_fen(333_333),
        },
    )
    .await;

    // Still open: the unpaid one; overdue: it and the one the fund paid late.
    let listed = |open_only, overdue_only| ListAcceptances {
        order: None,
        hospital: None,
        open_only,
        overdue_only,
        to_invoice: false,
        page: 1,
        page_size: 500,
    };
    let open = w
        .ok::<AcceptanceListOp>(&cast.d1, &listed(true, false))
        .await;
    assert_eq!(open.items.len(), 1);
    assert_eq!(open.items[0].acceptance, unpaid.acceptance);
    let mut overdue: Vec<_> = w
        .ok::<AcceptanceListOp>(&cast.fuxin, &listed(false, true))
        .await
        .items
        .iter()
        .map(|a| a.acceptance)
        .collect();
    overdue.sort();
    let mut expected = vec![unpaid.acceptance, direct.acceptance];
    expected.sort();
    assert_eq!(overdue, expected);
    let all = w
        .ok::<AcceptanceListOp>(&cast.hospital, &listed(false, false))
        .await;
    assert_eq!(all.items.len(), 4);
    assert!(
        w.ok::<AcceptanceListOp>(&cast.other_hospital, &listed(false, false))
            .await
            .items
            .is_empty()
    );

    let f = |a: &AcceptanceView| a.amount_fen.fen();
    let due = acc.iter().map(f).sum::<i64>();
    let settled = f(online) + f(offline) + f(direct);
    let on_time = f(online) + f(offline);
    let q = |m| QueryRates {
        month: m,
        hospital: None,
        region: None,
    };
    let oct = w.ok::<RatesGet>(&cast.fuxin, &q(month(2024, 10))).await;
    assert_eq!(oct.due_fen.fen(), due);
    assert_eq!(oct.settled_fen.fen(), settled);
    assert_eq!(oct.settled_on_time_fen.fen(), on_time);
    assert_eq!(oct.settled_offline_fen.fen(), f(offline));
    assert_eq!(oct.overdue_count, 2);
    assert_eq!(oct.settlement_rate_bp, bp(settled, due));
    assert_eq!(oct.timely_rate_bp, bp(on_time, due));
    let sep = w.ok::<RatesGet>(&cast.hospital, &q(month(2024, 9))).await;
    assert_eq!(sep.online_fen.fen(), due);
    assert_eq!(sep.offline_declared_fen.fen(), 333_333);
    assert_eq!(sep.online_rate_bp, bp(due, due + 333_333));

    // The export carries the same figures per hospital and in total.
    let file = w.ok::<RatesExport>(&cast.fuxin, &q(month(2024, 10))).await;
    assert!(file.file_name.ends_with(".xlsx"), "{}", file.file_name);
    assert_eq!(file.rows, 2);
    let bytes = vbp_platform::sheets::decode_base64(&file.content_base64).unwrap();
    let table = vbp_platform::sheets::read_xlsx(&bytes).unwrap();
    assert!(table[0][4].contains("due_fen"), "{:?}", table[0]);
    let row = &table[1];
    assert_eq!(row[0], "210902");
    assert_eq!(row[2], cast.hospital.org.to_string());
    assert_eq!(row[4], due.to_string());
    assert_eq!(row[5], settled.to_string());
    assert_eq!(row[6], on_time.to_string());
    assert_eq!(row[7], f(offline).to_string());
    assert_eq!(row[8], "2");
    let rate = oct.settlement_rate_bp.unwrap();
    assert_eq!(row[11], format!("{}.{:02}%", rate / 100, rate % 100));
    assert_eq!(table[2][4], due.to_string(), "the total row");
    // Bureaus export only their jurisdiction.
    let e = w
        .err::<RatesExport>(
            &cast.fuxin,
            &QueryRates {
                month: month(2024, 10),
                hospital: None,
                region: Some("210100".parse().unwrap()),
            },
        )
        .await;
    assert_eq!(e.0.status, 403);
}

#[tokio::test]
async fn a_payment_recorded_late_but_made_in_time_counts_as_timely() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    let o = place(&w, &cast.hospital, &cast.d1, &[(P2, 10, PRICE2)]).await;
    let a = deliver(&w, &cast.hospital, &cast.d1, &o).await;
    invoice(&w, &cast.d1, &a, "00000009").await;
    w.set_clock("2024-11-03T09:00:00+08:00");
    w.wait_count("SELECT count(*) FROM acceptances WHERE overdue", 1)
        .await;
    let pay_on = |y, m, d| PaySettlement {
        acceptance: a.acceptance,
        amount_fen: a.amount_fen,
        channel: SettlementChannel::Online,
        reason: None,
        paid_on: chrono::NaiveDate::from_ymd_opt(y, m, d),
    };
    for day in [(2024, 11, 4), (2024, 9, 9)] {
        let e = w
            .err::<SettlementPay>(&cast.hospital, &pay_on(day.0, day.1, day.2))
            .await;
        assert_eq!(e.0.field.as_deref(), Some("paid_on"), "{day:?}");
    }
    // Paid on the last day of the term, recorded three days later.
    let v = w
        .ok::<SettlementPay>(&cast.hospital, &pay_on(2024, 10, 31))
        .await;
    assert!(!v.overdue);
    assert_eq!(v.paid_at, Some(at("2024-10-31T00:00:00+08:00")));
    let ev = w.published("orders.settlement.paid", |_| true).await;
    assert_eq!(ev["on_time"], true);
    assert_eq!(ev["paid_at"], "2024-10-30T16:00:00Z");
    let oct = w
        .ok::<RatesGet>(
            &cast.hospital,
            &QueryRates {
                month: month(2024, 10),
                hospital: None,
                region: None,
            },
        )
        .await;
    assert_eq!(oct.timely_rate_bp, Some(10_000));
    assert_eq!(oct.overdue_count, 0);
}

#[tokio::test]
async fn an_invoice_upload_and_a_payment_run_record_all_items_or_none() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    let mut mine = Vec::new();
    for q in [2, 3, 5] {
        let o = place(&w, &cast.hospital, &cast.d1, &[(P2, q, PRICE2)]).await;
        mine.push(deliver(&w, &cast.hospital, &cast.d1, &o).await);
    }
    let o = place(&w, &cast.other_hospital, &cast.d1, &[(P1, 1, PRICE1)]).await;
    let foreign = deliver(&w, &cast.other_hospital, &cast.d1, &o).await;
    let issued_on = chrono::NaiveDate::from_ymd_opt(2024, 9, 20).unwrap();
    let inv = |a: &AcceptanceView, number: &str| IssueInvoice {
        acceptance: a.acceptance,
        invoice_code: "021002400111".into(),
        invoice_number: number.into(),
        amount_fen: a.amount_fen,
        tax_fen: Money::from_fen(a.amount_fen.fen() * 13 / 113),
        issued_on,
    };
    let upload = |invoices: Vec<IssueInvoice>| IssueInvoices { invoices };
    // The distributor's list to invoice, walked a page of two at a time.
    let to_invoice = |page| ListAcceptances {
        order: None,
        hospital: None,
        open_only: false,
        overdue_only: false,
        to_invoice: true,
        page,
        page_size: 2,
    };
    let walk = || async {
        let mut seen = Vec::new();
        let mut totals = Vec::new();
        for page in 1.. {
            let p = w.ok::<AcceptanceListOp>(&cast.d1, &to_invoice(page)).await;
            totals.push(p.total);
            if p.items.is_empty() {
                break;
            }
            seen.extend(p.items.into_iter().map(|a| a.acceptance));
        }
        assert!(totals.iter().all(|t| *t == seen.len() as i64), "{totals:?}");
        seen.sort();
        seen
    };
    let mut all: Vec<_> = mine
        .iter()
        .chain([&foreign])
        .map(|a| a.acceptance)
        .collect();
    all.sort();
    assert_eq!(walk().await, all);
    let e = w
        .err::<AcceptanceListOp>(
            &cast.d1,
            &ListAcceptances {
                page_size: 501,
                ..to_invoice(1)
            },
        )
        .await;
    assert_eq!((e.0.status, e.0.field.as_deref()), (422, Some("page_size")));

    // One item off by a fen, one number given twice: nothing is recorded.
    let mut off = inv(&mine[2], "30000003");
    off.amount_fen = Money::from_fen(off.amount_fen.fen() - 1);
    let e = w
        .err::<InvoiceIssueBatch>(
            &cast.d1,
            &upload(vec![
                inv(&mine[0], "30000001"),
                inv(&mine[1], "30000002"),
                off,
            ]),
        )
        .await;
    assert_eq!(
        e.0.field.as_deref(),
        Some("invoices[2].amount_fen"),
        "{e:?}"
    );
    let e = w
        .err::<InvoiceIssueBatch>(
            &cast.d1,
            &upload(vec![inv(&mine[0], "30000001"), inv(&mine[1], "30000001")]),
        )
        .await;
    assert_eq!(e.0.code, "duplicate_invoice");
    assert_eq!(e.0.field.as_deref(), Some("invoices[1].invoice_number"));
    let e = w
        .err::<InvoiceIssueBatch>(&cast.d2, &upload(vec![inv(&mine[0], "30000001")]))
        .await;
    assert_eq!(
        (e.0.status, e.0.field.as_deref()),
        (403, Some("invoices[0]"))
    );
    let e = w.err::<InvoiceIssueBatch>(&cast.d1, &upload(vec![])).await;
    assert_eq!(e.0.field.as_deref(), Some("invoices"));
    assert_eq!(w.count("SELECT count(*) FROM invoices").await, 0);
    assert_eq!(
        walk().await,
        all,
        "a refused upload leaves every item to invoice"
    );

    let run = w
        .ok::<InvoiceIssueBatch>(
            &cast.d1,
            &upload(vec![
                inv(&mine[0], "30000001"),
                inv(&mine[1], "30000002"),
                inv(&mine[2], "30000003"),
                inv(&foreign, "30000004"),
            ]),
        )
        .await;
    let billed: i64 = mine
        .iter()
        .chain([&foreign])
        .map(|a| a.amount_fen.fen())
        .sum();
    assert_eq!(run.amount_fen.fen(), billed);
    assert_eq!(run.items[3].acceptance, foreign.acceptance);
    assert!(
        walk().await.is_empty(),
        "an invoiced item leaves the list to invoice"
    );
    for item in &run.items {
        w.published("orders.invoice.issued", |ev| {
            ev["invoice"] == json!(item.invoice) && ev["amount_fen"] == json!(item.amount_fen)
        })
        .await;
    }
    let e = w
        .err::<InvoiceIssueBatch>(&cast.d1, &upload(vec![inv(&mine[0], "30000009")]))
        .await;
    assert_eq!(
        (e.0.code.as_str(), e.0.field.as_deref()),
        ("invalid_transition", Some("invoices[0]"))
    );

    let payment = |a: &AcceptanceView, fen: i64| PaySettlement {
        acceptance: a.acceptance,
        amount_fen: Money::from_fen(fen),
        channel: SettlementChannel::Online,
        reason: None,
        paid_on: None,
    };
    let payments = |payments: Vec<PaySettlement>| PaySettlements { payments };
    // Another hospital's item, or an item twice: nothing is paid.
    let e = w
        .err::<SettlementPayBatch>(
            &cast.hospital,
            &payments(vec![payment(&mine[0], 100), payment(&foreign, 100)]),
        )
        .await;
    assert_eq!(
        (e.0.status, e.0.field.as_deref()),
        (403, Some("payments[1]"))
    );
    let e = w
        .err::<SettlementPayBatch>(
            &cast.hospital,
            &payments(vec![payment(&mine[0], 100), payment(&mine[0], 100)]),
        )
        .await;
    assert_eq!(e.0.field.as_deref(), Some("payments[1].acceptance"));
    assert_eq!(w.count("SELECT count(*) FROM settlements").await, 0);

    let partial = mine[1].amount_fen.fen() - 1;
    let run = w
        .ok::<SettlementPayBatch>(
            &cast.hospital,
            &payments(vec![
                payment(&mine[0], mine[0].amount_fen.fen()),
                payment(&mine[1], partial),
                payment(&mine[2], mine[2].amount_fen.fen()),
            ]),
        )
        .await;
    assert_eq!(
        run.amount_fen.fen(),
        mine[0].amount_fen.fen() + partial + mine[2].amount_fen.fen()
    );
    assert!(run.items.iter().all(|i| i.on_time));
    let paid: Vec<(i64, bool)> = sqlx::query_as(
        "SELECT paid_fen, paid_at IS NOT NULL FROM acceptances WHERE id = ANY($1) ORDER BY amount_fen",
    )
    .bind(mine.iter().map(|a| a.acceptance.as_uuid()).collect::<Vec<_>>())
    .fetch_all(&w.db)
    .await
    .unwrap();
    assert_eq!(
        paid,
        vec![
            (mine[0].amount_fen.fen(), true),
            (partial, false),
            (mine[2].amount_fen.fen(), true)
        ]
    );
    for item in &run.items {
        w.published("orders.settlement.paid", |ev| {
            ev["settlement"] == json!(item.settlement) && ev["amount_fen"] == json!(item.amount_fen)
        })
        .await;
    }
    // The rest of the partly paid item; the settled one is refused by name.
    let e = w
        .err::<SettlementPayBatch>(
            &cast.hospital,
            &payments(vec![payment(&mine[1], 1), payment(&mine[0], 1)]),
        )
        .await;
    assert_eq!(
        (e.0.code.as_str(), e.0.field.as_deref()),
        ("invalid_transition", Some("payments[1]"))
    );
    w.ok::<SettlementPayBatch>(&cast.hospital, &payments(vec![payment(&mine[1], 1)]))
        .await;
    assert_eq!(
        w.count("SELECT count(*) FROM acceptances WHERE paid_fen = amount_fen")
            .await,
        3
    );
}

/// A payment run locks its acceptances in id order; the overdue timers lock
/// theirs in due order, so the two can deadlock. The run chosen as victim
/// applied nothing and is run again, and the hospital sees it succeed.
#[tokio::test]
async fn a_payment_run_that_meets_a_deadlock_is_run_again() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish(&w).await;
    let mut items = Vec::new();
    for (q, number) in [(2, "40000001"), (3, "40000002")] {
        let o = place(&w, &cast.hospital, &cast.d1, &[(P2, q, PRICE2)]).await;
        let a = deliver(&w, &cast.hospital, &cast.d1, &o).await;
        items.push(invoice(&w, &cast.d1, &a, number).await);
    }
    items.sort_by_key(|a| a.acceptance.as_uuid());
    let (first, last) = (items[0].acceptance.as_uuid(), items[1].acceptance.as_uuid());
    let lock = "SELECT 1 FROM acceptances WHERE id = $1 FOR UPDATE";
    let mut other = w.db.begin().await.unwrap();
    sqlx::query(lock)
        .bind(last)
        .execute(&mut *other)
        .await
        .unwrap();
    let run = PaySettlements {
        payments: items
            .iter()
            .map(|a| PaySettlement {
                acceptance: a.acceptance,
                amount_fen: a.amount_fen,
                channel: SettlementChannel::Online,
                reason: None,
                paid_on: None,
            })
            .collect(),
    };
    let paying = tokio::spawn({
        let (rpc, hospital) = (w.rpc.clone(), cast.hospital.clone());
        async move {
            rpc.call::<SettlementPayBatch>(&vbp_bus::Context::new(Some(hospital)), &run)
                .await
        }
    });
    // The run holds the first and waits for the last; taking the first now
    // closes the cycle. The run waited first, so its deadlock check runs
    // first and it is the victim.
    w.wait_count("SELECT count(*) FROM pg_locks WHERE NOT granted", 1)
        .await;
    sqlx::query(lock)
        .bind(first)
        .execute(&mut *other)
        .await
        .unwrap();
    other.commit().await.unwrap();
    let paid = paying
        .await
        .unwrap()
        .expect("the run succeeds on its next attempt");
    assert_eq!(paid.items.len(), 2);
    assert_eq!(
        w.count("SELECT count(*) FROM acceptances WHERE paid_fen = amount_fen")
            .await,
        2
    );
}
