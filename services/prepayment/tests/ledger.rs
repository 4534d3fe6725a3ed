//! The prepayment service end to end on real Postgres + NATS with a manual
//! clock: agreement events → calculation; approval → disbursement with the
//! working-day deadline; settlements → offsets; period end → deduction and
//! next-period block; scoping.

mod common;

use std::time::Duration;

use common::*;
use vbp_contracts::agreements::{AgreementId, AgreementState};
use vbp_contracts::orders::SettlementId;
use vbp_contracts::prepayment::*;
use vbp_kernel::{Actor, EventId, Money};

const EFFECTIVE: AgreementState = AgreementState::Effective;
const SUPERSEDED: AgreementState = AgreementState::Superseded;

fn ratios() -> serde_json::Value {
    serde_json::json!({ "ratios": [ { "region": "510000", "ratio_bp": 5000 } ] })
}

async fn calculations(w: &World) -> i64 {
    w.count("SELECT count(*) FROM calculations").await
}

#[tokio::test]
async fn effective_agreements_calculate_the_prepayment_to_the_fen_and_are_scoped() {
    let w = World::start_with(ratios()).await;
    let cast = Cast::new();
    cast.publish_periods(&w).await;
    let (a1, a2, b1, c1) = (
        AgreementId::new(),
        AgreementId::new(),
        AgreementId::new(),
        AgreementId::new(),
    );
    // A: 1 000 000 + 5 fen at 30% = 300 001.5 → 300 002 (half-up).
    w.publish(
        EventId::new(),
        &cast.agreement(&cast.a, cast.p1, a1, 1, EFFECTIVE, 600_000),
    )
    .await;
    w.publish(
        EventId::new(),
        &cast.agreement(&cast.a, cast.p1, a2, 1, EFFECTIVE, 400_005),
    )
    .await;
    // B: 1 999 999 at 30% = 599 999.7 → 600 000.
    w.publish(
        EventId::new(),
        &cast.agreement(&cast.b, cast.p1, b1, 1, EFFECTIVE, 1_999_999),
    )
    .await;
    // C (Sichuan, 50%): 12 345 → 6 172.5 → 6 173.
    let c_event = EventId::new();
    let c_ev = cast.agreement(&cast.c, cast.p1, c1, 1, EFFECTIVE, 12_345);
    w.publish(c_event, &c_ev).await;
    // A draft version changes nothing.
    w.publish(
        EventId::new(),
        &cast.agreement(
            &cast.c,
            cast.p1,
            AgreementId::new(),
            1,
            AgreementState::Draft,
            99_999,
        ),
    )
    .await;
    w.wait_count("SELECT count(*) FROM calculations", 4).await;

    let a = w.ledger(&cast.a, cast.p1).await;
    assert_eq!(a.agreed_amount_fen, Money::from_fen(1_000_005));
    assert_eq!(a.ratio.value(), 3000);
    assert_eq!(a.amount_fen, Money::from_fen(300_002));
    assert_eq!(a.rule, "default");
    assert_eq!(a.state, LedgerState::Calculated);
    assert_eq!(
        a.calculations.len(),
        2,
        "one calculation per effective event"
    );
    let mut inputs = a.calculations[1].inputs.clone();
    inputs.sort_by_key(|i| i.agreed_amount_fen.fen());
    assert_eq!(
        inputs
            .iter()
            .map(|i| (i.agreement, i.version))
            .collect::<Vec<_>>(),
        vec![(a2, 1), (a1, 1)]
    );
    assert_eq!(a.balance_fen, Money::ZERO);
    assert!(a.entries.is_empty());

    let b = w.ledger(&cast.b, cast.p1).await;
    assert_eq!(b.amount_fen, Money::from_fen(600_000));
    let c = w.ledger(&cast.c, cast.p1).await;
    assert_eq!(c.amount_fen, Money::from_fen(6_173));
    assert_eq!(c.ratio.value(), 5000);
    assert_eq!(c.rule, "region:510000");

    let ev = w
        .published("prepayment.ledger.calculated", |v| {
            v["hospital"] == cast.c.org.to_string()
        })
        .await;
    assert_eq!(ev["amount_fen"], 6173);
    assert_eq!(ev["agreed_amount_fen"], 12345);
    assert_eq!(ev["ratio"], 5000);
    assert_eq!(ev["adjustment_fen"], 0);
    assert_eq!(ev["inputs"][0]["version"], 1);

    // The same event redelivered, and the same version under a new id:
    // nothing changes.
    w.publish(c_event, &c_ev).await;
    w.publish(EventId::new(), &c_ev).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(calculations(&w).await, 4);
    assert_eq!(w.events("prepayment.ledger.calculated").await.len(), 4);

    // Scoping.
    let list = |who| {
        let w = &w;
        async move {
            w.ok::<LedgerListOp>(who, &all_ledgers(1, 50))
                .await
                .items
                .into_iter()
                .map(|l| l.hospital)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(&cast.a).await, vec![cast.a.org]);
    let mut fuxin = list(&cast.fuxin).await;
    fuxin.sort();
    let mut want = vec![cast.a.org, cast.b.org];
    want.sort();
    assert_eq!(fuxin, want);
    assert_eq!(list(&cast.province).await.len(), 2);
    assert_eq!(list(&cast.sichuan).await, vec![cast.c.org]);
    assert!(list(&cast.shenyang).await.is_empty());
    assert!(list(&cast.maker).await.is_empty());

    // The operator's three (a, b, c), a page of two then a page of one, each once.
    let first = w.ok::<LedgerListOp>(&operator(), &all_ledgers(1, 2)).await;
    let second = w.ok::<LedgerListOp>(&operator(), &all_ledgers(2, 2)).await;
    assert_eq!((first.total, second.total), (3, 3));
    assert_eq!((first.items.len(), second.items.len()), (2, 1));
    let mut walked: Vec<_> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|l| l.ledger)
        .collect();
    walked.sort();
    walked.dedup();
    assert_eq!(walked.len(), 3);
    let e = w.err::<LedgerListOp>(&operator(), &all_ledgers(0, 2)).await;
    assert_eq!(
        (e.body().status, e.body().field.as_deref()),
        (422, Some("page"))
    );
    let e = w
        .err::<LedgerGet>(&cast.b, &GetLedger { ledger: a.ledger })
        .await;
    assert_eq!(e.body().status, 404, "{e:?}");

    let s = w
        .ok::<RegionSummaryOp>(&cast.province, &SummariseRegions::default())
        .await;
    assert_eq!(s.rows.len(), 2);
    let total: i64 = s.rows.iter().map(|r| r.amount_fen.fen()).sum();
    assert_eq!(total, 900_002);
    assert!(
        w.ok::<RegionSummaryOp>(&cast.maker, &SummariseRegions::default())
            .await
            .rows
            .is_empty()
    );
    w.assert_balances().await;
}

async fn approve_and_disburse(w: &World, who: &Actor, ledger: LedgerId, on: &str) -> LedgerView {
    w.ok::<LedgerApprove>(
        who,
        &ApproveLedger {
            ledger,
            approved_on: None,
        },
    )
    .await;
    w.ok::<LedgerDisburse>(
        who,
        &DisburseLedger {
            ledger,
            payment_reference: format!("YFJ-{ledger}"),
            disbursed_on: on.parse().unwrap(),
        },
    )
    .await
}

#[tokio::test]
async fn an_amendment_adds_an_adjustment_and_keeps_the_original() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish_periods(&w).await;
    let id = AgreementId::new();
    w.publish(
        EventId::new(),
        &cast.agreement(&cast.a, cast.p1, id, 1, EFFECTIVE, 1_000_000),
    )
    .await;
    w.wait_count("SELECT count(*) FROM calculations", 1).await;
    let l = w.ledger(&cast.a, cast.p1).await;
    assert_eq!(l.amount_fen, Money::from_fen(300_000));
    w.set_clock("2024-08-05T10:00:00+08:00");
    let l = approve_and_disburse(&w, &cast.fuxin, l.ledger, "2024-08-05").await;
    assert_eq!(l.balance_fen, Money::from_fen(300_000));

    // v2 (1 200 001 fen) takes effect; the superseded v1 arrives after it.
    w.publish(
        EventId::new(),
        &cast.agreement(&cast.a, cast.p1, id, 2, EFFECTIVE, 1_200_001),
    )
    .await;
    w.publish(
        EventId::new(),
        &cast.agreement(&cast.a, cast.p1, id, 1, SUPERSEDED, 1_000_000),
    )
    .await;
    w.wait_count("SELECT count(*) FROM calculations", 2).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let l = w.ledger(&cast.a, cast.p1).await;
    assert_eq!(l.calculations.len(), 2);
    assert_eq!(l.calculations[0].amount_fen, Money::from_fen(300_000));
    assert_eq!(l.calculations[0].inputs[0].version, 1);
    // 1 200 001 × 30% = 360 000.3 → 360 000.
    assert_eq!(l.calculations[1].amount_fen, Money::from_fen(360_000));
    assert_eq!(l.calculations[1].adjustment_fen, Money::from_fen(60_000));
    assert_eq!(l.calculations[1].inputs[0].version, 2);
    let kinds: Vec<_> = l
        .entries
        .iter()
        .map(|e| (e.kind, e.amount_fen.fen()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (EntryKind::Disbursed, 300_000),
            (EntryKind::Adjustment, 60_000)
        ]
    );
    assert!(l.entries[1].cause.contains("v2"), "{}", l.entries[1].cause);
    assert_eq!(l.balance_fen, Money::from_fen(360_000));
    let ev = w
        .published("prepayment.ledger.calculated", |v| {
            v["adjustment_fen"] == 60000
        })
        .await;
    assert_eq!(ev["amount_fen"], 360000);

    // Entries cannot be rewritten.
    let e = sqlx::query("UPDATE entries SET amount_fen = 0")
        .execute(&w.db)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("immutable"), "{e}");
    assert!(
        sqlx::query("DELETE FROM calculations")
            .execute(&w.db)
            .await
            .is_err()
    );
    let l = w.ledger(&cast.a, cast.p1).await;
    assert_eq!(l.entries[0].amount_fen, Money::from_fen(300_000));
    assert_eq!(l.calculations.len(), 2);
    w.assert_balances().await;
}

#[tokio::test]
async fn approval_then_disbursement_late_after_fifteen_working_days_across_national_day() {
    let w = World::start_with(serde_json::json!({ "approval_level": "city" })).await;
    let cast = Cast::new();
    cast.publish_periods(&w).await;
    w.publish(
        EventId::new(),
        &cast.agreement(
            &cast.a,
            cast.p1,
            AgreementId::new(),
            1,
            EFFECTIVE,
            1_000_000,
        ),
    )
    .await;
    w.publish(
        EventId::new(),
        &cast.agreement(
            &cast.b,
            cast.p1,
            AgreementId::new(),
            1,
            EFFECTIVE,
            2_000_000,
        ),
    )
    .await;
    w.wait_count("SELECT count(*) FROM ledgers", 2).await;
    let a = w.ledger(&cast.a, cast.p1).await;
    let b = w.ledger(&cast.b, cast.p1).await;

    // Friday before National Day.
    w.set_clock("2024-09-27T10:00:00+08:00");
    let outbox = w.outbox_count().await;
    // Disallowed: disbursing before approval, the wrong bureau, the wrong
    // level, a hospital. Nothing changes.
    let e = w
        .err::<LedgerDisburse>(
            &cast.fuxin,
            &DisburseLedger {
                ledger: a.ledger,
                payment_reference: "X".into(),
                disbursed_on: "2024-09-27".parse().unwrap(),
            },
        )
        .await;
    assert_eq!(e.body().code, "invalid_transition", "{e:?}");
    for who in [&cast.province, &cast.a] {
        let e = w
            .err::<LedgerApprove>(
                who,
                &ApproveLedger {
                    ledger: a.ledger,
                    approved_on: None,
                },
            )
            .await;
        assert_eq!(e.body().status, 403, "{e:?}");
    }
    let e = w
        .err::<LedgerApprove>(
            &cast.shenyang,
            &ApproveLedger {
                ledger: a.ledger,
                approved_on: None,
            },
        )
        .await;
    assert_eq!(e.body().status, 404, "{e:?}");
    assert_eq!(w.outbox_count().await, outbox);
    assert_eq!(
        w.ledger(&cast.a, cast.p1).await.state,
        LedgerState::Calculated
    );

    let v = w
        .ok::<LedgerApprove>(
            &cast.fuxin,
            &ApproveLedger {
                ledger: a.ledger,
                approved_on: None,
            },
        )
        .await;
    assert_eq!(v.state, LedgerState::Approved);
    // 15 working days after 9/27: 9/29 (make-up), 9/30, 10/8–12 (10/12
    // make-up), 10/14–18, 10/21–23 → late from 2024-10-24 00:00 Beijing.
    assert_eq!(v.disburse_by, Some(at("2024-10-24T00:00:00+08:00")));
    let ev = w.published("prepayment.ledger.approved", |_| true).await;
    assert_eq!(ev["disburse_by"], "2024-10-23T16:00:00Z");
    let e = w
        .err::<LedgerApprove>(
            &cast.fuxin,
            &ApproveLedger {
                ledger: a.ledger,
                approved_on: None,
            },
        )
        .await;
    assert_eq!(e.body().code, "invalid_transition");

    // B is approved and disbursed in time.
    w.ok::<LedgerApprove>(
        &cast.fuxin,
        &ApproveLedger {
            ledger: b.ledger,
            approved_on: None,
        },
    )
    .await;
    let e = w
        .err::<LedgerDisburse>(
            &cast.fuxin,
            &DisburseLedger {
                ledger: b.ledger,
                payment_reference: "  ".into(),
                disbursed_on: "2024-09-27".parse().unwrap(),
            },
        )
        .await;
    assert_eq!(
        e.body().field.as_deref(),
        Some("payment_reference"),
        "{e:?}"
    );
    let e = w
        .err::<LedgerDisburse>(
            &cast.fuxin,
            &DisburseLedger {
                ledger: b.ledger,
                payment_reference: "HB-1".into(),
                disbursed_on: "2024-09-28".parse().unwrap(),
            },
        )
        .await;
    assert_eq!(e.body().field.as_deref(), Some("disbursed_on"), "{e:?}");
    w.set_clock("2024-10-23T18:00:00+08:00");
    let vb = w
        .ok::<LedgerDisburse>(
            &cast.fuxin,
            &DisburseLedger {
                ledger: b.ledger,
                payment_reference: "HB-1".into(),
                disbursed_on: "2024-10-23".parse().unwrap(),
            },
        )
        .await;
    assert!(!vb.late);
    assert_eq!(vb.balance_fen, Money::from_fen(600_000));

    // Last evening of the deadline: A not yet flagged.
    w.set_clock("2024-10-23T23:59:00+08:00");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        w.events("prepayment.ledger.disbursement_overdue")
            .await
            .is_empty()
    );
    // After it: flagged.
    w.set_clock("2024-10-24T00:30:00+08:00");
    let ev = w
        .published("prepayment.ledger.disbursement_overdue", |_| true)
        .await;
    assert_eq!(ev["ledger"], a.ledger.to_string());
    assert!(w.ledger(&cast.a, cast.p1).await.late);
    assert!(!w.ledger(&cast.b, cast.p1).await.late);

    let va = w
        .ok::<LedgerDisburse>(
            &cast.fuxin,
            &DisburseLedger {
                ledger: a.ledger,
                payment_reference: "HB-2".into(),
                disbursed_on: "2024-10-24".parse().unwrap(),
            },
        )
        .await;
    assert!(va.late);
    assert_eq!(va.payment_reference.as_deref(), Some("HB-2"));
    let ev = w
        .published("prepayment.ledger.disbursed", |v| {
            v["ledger"] == a.ledger.to_string()
        })
        .await;
    assert_eq!(ev["late"], true);
    assert_eq!(ev["amount_fen"], 300000);
    w.assert_balances().await;
}

#[tokio::test]
async fn settlements_offset_once_and_period_end_deducts_and_blocks_the_next_period() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish_periods(&w).await;
    w.publish(
        EventId::new(),
        &cast.agreement(
            &cast.a,
            cast.p1,
            AgreementId::new(),
            1,
            EFFECTIVE,
            1_000_000,
        ),
    )
    .await;
    w.publish(
        EventId::new(),
        &cast.agreement(&cast.b, cast.p1, AgreementId::new(), 1, EFFECTIVE, 100_000),
    )
    .await;
    // A's agreement for the next period is already effective.
    w.publish(
        EventId::new(),
        &cast.agreement(
            &cast.a,
            cast.p2,
            AgreementId::new(),
            1,
            EFFECTIVE,
            2_000_000,
        ),
    )
    .await;
    w.wait_count("SELECT count(*) FROM ledgers", 3).await;
    w.set_clock("2024-08-05T10:00:00+08:00");
    let a = w.ledger(&cast.a, cast.p1).await;
    approve_and_disburse(&w, &cast.fuxin, a.ledger, "2024-08-05").await;
    let b = w.ledger(&cast.b, cast.p1).await;
    approve_and_disburse(&w, &cast.province, b.ledger, "2024-08-05").await;

    // Proportional: 100 001 × 30% = 30 000.3 → 30 000; once per settlement.
    w.set_clock("2024-12-01T10:00:00+08:00");
    let s1 = SettlementId::new();
    let ev1 = cast.settlement(&cast.a, cast.p1, s1, 100_001);
    let id1 = EventId::new();
    w.publish(id1, &ev1).await;
    w.publish(id1, &ev1).await;
    w.publish(EventId::new(), &ev1).await;
    w.publish(
        EventId::new(),
        &cast.settlement(&cast.a, cast.p1, SettlementId::new(), 200_000),
    )
    .await;
    w.wait_count("SELECT count(*) FROM entries WHERE kind = 'offset'", 2)
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let l = w.ledger(&cast.a, cast.p1).await;
    let offsets: Vec<i64> = l
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Offset)
        .map(|e| e.amount_fen.fen())
        .collect();
    assert_eq!(offsets, vec![-30_000, -60_000]);
    assert_eq!(l.balance_fen, Money::from_fen(210_000));
    let ev = w
        .published("prepayment.ledger.offset_recorded", |v| {
            v["settlement"] == s1.to_string()
        })
        .await;
    assert_eq!(ev["amount_fen"], 30000);
    assert_eq!(ev["rule"], "proportional");
    assert_eq!(w.events("prepayment.ledger.offset_recorded").await.len(), 2);
    w.assert_balances().await;

    // The period ends: A's 210 000 and B's 30 000 become deductions.
    w.set_clock("2025-08-01T00:30:00+08:00");
    let ev = w
        .published("prepayment.ledger.deducted", |v| {
            v["ledger"] == a.ledger.to_string()
        })
        .await;
    assert_eq!(ev["amount_fen"], 210000);
    assert_eq!(ev["balance_fen"], 0);
    w.wait_count("SELECT count(*) FROM ledgers WHERE state = 'closed'", 2)
        .await;
    let l = w.ledger(&cast.a, cast.p1).await;
    assert_eq!(l.deducted_fen, Money::from_fen(210_000));
    assert_eq!(l.balance_fen, Money::ZERO);
    assert_eq!(l.entries.last().unwrap().kind, EntryKind::Deduction);

    // A's next-period ledger (already calculated) is blocked, with the reason.
    let ev = w
        .published("prepayment.ledger.blocked", |v| {
            v["hospital"] == cast.a.org.to_string()
        })
        .await;
    assert_eq!(ev["unrecovered_fen"], 210000);
    let next = w.ledger(&cast.a, cast.p2).await;
    assert_eq!(next.state, LedgerState::Blocked);
    assert!(
        next.blocked_reason
            .as_deref()
            .unwrap()
            .contains("210000 fen")
    );
    let e = w
        .err::<LedgerApprove>(
            &cast.fuxin,
            &ApproveLedger {
                ledger: next.ledger,
                approved_on: None,
            },
        )
        .await;
    assert_eq!(e.body().code, "invalid_transition");
    assert!(e.body().message.contains("unrecovered"), "{e:?}");

    // B's next-period agreement arrives after the close: blocked at once.
    // A settlement of the closed period recovers nothing more.
    w.publish(
        EventId::new(),
        &cast.agreement(&cast.b, cast.p2, AgreementId::new(), 1, EFFECTIVE, 100_000),
    )
    .await;
    w.publish(
        EventId::new(),
        &cast.settlement(&cast.a, cast.p1, SettlementId::new(), 50_000),
    )
    .await;
    w.published("prepayment.ledger.blocked", |v| {
        v["hospital"] == cast.b.org.to_string()
    })
    .await;
    assert_eq!(w.ledger(&cast.b, cast.p2).await.state, LedgerState::Blocked);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        w.count("SELECT count(*) FROM entries WHERE kind = 'offset'")
            .await,
        2
    );
    w.assert_balances().await;
}

#[tokio::test]
async fn one_to_one_offsets_stop_at_zero_and_a_cleared_hospital_is_not_blocked() {
    let w = World::start_with(serde_json::json!({ "offset_rule": "one_to_one" })).await;
    let cast = Cast::new();
    cast.publish_periods(&w).await;
    w.publish(
        EventId::new(),
        &cast.agreement(
            &cast.a,
            cast.p1,
            AgreementId::new(),
            1,
            EFFECTIVE,
            1_000_000,
        ),
    )
    .await;
    w.wait_count("SELECT count(*) FROM ledgers", 1).await;
    w.set_clock("2024-08-05T10:00:00+08:00");
    let a = w.ledger(&cast.a, cast.p1).await;
    approve_and_disburse(&w, &cast.fuxin, a.ledger, "2024-08-05").await;
    for amount in [250_000, 100_000, 10] {
        w.publish(
            EventId::new(),
            &cast.settlement(&cast.a, cast.p1, SettlementId::new(), amount),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    w.wait_count("SELECT count(*) FROM entries WHERE kind = 'offset'", 2)
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let l = w.ledger(&cast.a, cast.p1).await;
    let offsets: Vec<i64> = l
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Offset)
        .map(|e| e.amount_fen.fen())
        .collect();
    assert_eq!(offsets, vec![-250_000, -50_000]);
    assert_eq!(l.balance_fen, Money::ZERO);

    w.set_clock("2025-08-01T00:30:00+08:00");
    w.wait_count("SELECT count(*) FROM ledgers WHERE state = 'closed'", 1)
        .await;
    assert!(w.events("prepayment.ledger.deducted").await.is_empty());
    w.publish(
        EventId::new(),
        &cast.agreement(
            &cast.a,
            cast.p2,
            AgreementId::new(),
            1,
            EFFECTIVE,
            1_000_000,
        ),
    )
    .await;
    w.wait_count("SELECT count(*) FROM ledgers", 2).await;
    let next = w.ledger(&cast.a, cast.p2).await;
    assert_eq!(next.state, LedgerState::Calculated);
    assert_eq!(next.blocked_reason, None);
    w.assert_balances().await;
}

#[tokio::test]
async fn a_province_recalculation_after_a_ratio_change_adds_adjustments() {
    let mut w = World::start().await;
    let cast = Cast::new();
    cast.publish_periods(&w).await;
    for (h, amount) in [
        (&cast.a, 1_000_000),
        (&cast.b, 2_000_000),
        (&cast.c, 12_345),
    ] {
        w.publish(
            EventId::new(),
            &cast.agreement(h, cast.p1, AgreementId::new(), 1, EFFECTIVE, amount),
        )
        .await;
    }
    w.wait_count("SELECT count(*) FROM ledgers", 3).await;
    // Sichuan at the default 30%: 3 703.5 → 3 704.
    assert_eq!(
        w.ledger(&cast.c, cast.p1).await.amount_fen,
        Money::from_fen(3_704)
    );
    w.set_clock("2024-08-05T10:00:00+08:00");
    let a = w.ledger(&cast.a, cast.p1).await;
    approve_and_disburse(&w, &cast.fuxin, a.ledger, "2024-08-05").await;

    // Liaoning moves to 50%.
    w.restart_with(serde_json::json!({
        "ratios": [ { "region": "210000", "ratio_bp": 5000 } ]
    }))
    .await;
    let req = RecalculateLedgers {
        region: "210000".parse().unwrap(),
        period: None,
    };
    let e = w.err::<LedgerRecalculate>(&cast.fuxin, &req).await;
    assert_eq!(e.body().status, 403, "{e:?}");
    let r = w.ok::<LedgerRecalculate>(&cast.province, &req).await;
    assert_eq!((r.ledgers, r.changed), (2, 2));

    let a = w.ledger(&cast.a, cast.p1).await;
    assert_eq!(a.amount_fen, Money::from_fen(500_000));
    assert_eq!(a.rule, "region:210000");
    assert_eq!(a.calculations.len(), 2);
    assert_eq!(a.calculations[0].amount_fen, Money::from_fen(300_000));
    assert_eq!(a.calculations[1].adjustment_fen, Money::from_fen(200_000));
    assert!(a.calculations[1].cause.contains("ledger_recalculate"));
    let kinds: Vec<_> = a
        .entries
        .iter()
        .map(|e| (e.kind, e.amount_fen.fen()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (EntryKind::Disbursed, 300_000),
            (EntryKind::Adjustment, 200_000)
        ]
    );
    assert_eq!(a.balance_fen, Money::from_fen(500_000));
    let b = w.ledger(&cast.b, cast.p1).await;
    assert_eq!(b.amount_fen, Money::from_fen(1_000_000));
    assert!(b.entries.is_empty());
    let c = w.ledger(&cast.c, cast.p1).await;
    assert_eq!((c.amount_fen.fen(), c.calculations.len()), (3_704, 1));

    // Again: nothing left to change.
    let r = w.ok::<LedgerRecalculate>(&cast.province, &req).await;
    assert_eq!((r.ledgers, r.changed), (2, 0));
    let s = w
        .ok::<RegionSummaryOp>(&operator(), &SummariseRegions::default())
        .await;
    assert!(s.reconciled);
    let fuxin: Vec<_> = s
        .rows
        .iter()
        .filter(|r| r.region.to_string() == "210902")
        .collect();
    assert_eq!(fuxin[0].disbursed_fen, Money::from_fen(300_000));
    assert_eq!(fuxin[0].adjustment_fen, Money::from_fen(200_000));
    assert_eq!(fuxin[0].balance_fen, Money::from_fen(500_000));
    w.assert_balances().await;
}

#[tokio::test]
async fn out_of_order_and_duplicate_agreement_events_give_the_same_ledger() {
    let w = World::start().await;
    let cast = Cast::new();
    let (x, y) = (AgreementId::new(), AgreementId::new());
    let v1 = cast.agreement(&cast.a, cast.p1, x, 1, EFFECTIVE, 1_000_000);
    // Agreements before their period is known, amendment before the
    // original, the superseded original last, and duplicates.
    w.publish(
        EventId::new(),
        &cast.agreement(&cast.a, cast.p1, x, 2, EFFECTIVE, 1_500_000),
    )
    .await;
    w.publish(
        EventId::new(),
        &cast.agreement(&cast.a, cast.p1, y, 1, EFFECTIVE, 333_335),
    )
    .await;
    w.publish(EventId::new(), &v1).await;
    w.publish(
        EventId::new(),
        &cast.agreement(&cast.a, cast.p1, x, 1, SUPERSEDED, 1_000_000),
    )
    .await;
    w.publish(EventId::new(), &v1).await;
    cast.publish_periods(&w).await;
    w.wait_count("SELECT count(*) FROM ledgers", 1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let l = w.ledger(&cast.a, cast.p1).await;
    // (1 500 000 + 333 335) × 30% = 550 000.5 → 550 001.
    assert_eq!(l.agreed_amount_fen, Money::from_fen(1_833_335));
    assert_eq!(l.amount_fen, Money::from_fen(550_001));
    let mut inputs: Vec<_> = l
        .calculations
        .last()
        .unwrap()
        .inputs
        .iter()
        .map(|i| (i.agreement, i.version))
        .collect();
    inputs.sort();
    let mut want = vec![(x, 2), (y, 1)];
    want.sort();
    assert_eq!(inputs, want);
    assert_eq!(l.calculations.last().unwrap().amount_fen, l.amount_fen);
    w.assert_balances().await;
}

fn sheet(f: &vbp_contracts::files::ExportedFile) -> Vec<Vec<String>> {
    assert!(f.file_name.ends_with(".xlsx"), "{}", f.file_name);
    let bytes = vbp_platform::sheets::decode_base64(&f.content_base64).unwrap();
    vbp_platform::sheets::read_xlsx(&bytes).unwrap()
}

#[tokio::test]
async fn a_back_dated_approval_is_flagged_late_at_once_and_the_statement_exports() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.publish_periods(&w).await;
    for (h, amount) in [(&cast.a, 1_000_000), (&cast.b, 2_000_001)] {
        w.publish(
            EventId::new(),
            &cast.agreement(h, cast.p1, AgreementId::new(), 1, EFFECTIVE, amount),
        )
        .await;
    }
    w.wait_count("SELECT count(*) FROM ledgers", 2).await;
    let a = w.ledger(&cast.a, cast.p1).await;
    w.set_clock("2024-11-20T10:00:00+08:00");
    let outbox = w.outbox_count().await;
    for bad in ["2024-11-21", "2024-07-31"] {
        let e = w
            .err::<LedgerApprove>(
                &cast.fuxin,
                &ApproveLedger {
                    ledger: a.ledger,
                    approved_on: Some(bad.parse().unwrap()),
                },
            )
            .await;
        assert_eq!(e.body().field.as_deref(), Some("approved_on"), "{e:?}");
    }
    assert_eq!(w.outbox_count().await, outbox);
    assert_eq!(
        w.ledger(&cast.a, cast.p1).await.state,
        LedgerState::Calculated
    );

    // Approved on paper on Friday 2024-09-27, recorded now: the deadline
    // counts from the decision, so it has already passed.
    let v = w
        .ok::<LedgerApprove>(
            &cast.fuxin,
            &ApproveLedger {
                ledger: a.ledger,
                approved_on: Some("2024-09-27".parse().unwrap()),
            },
        )
        .await;
    assert_eq!(v.approved_on, Some("2024-09-27".parse().unwrap()));
    assert_eq!(v.disburse_by, Some(at("2024-10-24T00:00:00+08:00")));
    let ev = w
        .published("prepayment.ledger.disbursement_overdue", |v| {
            v["ledger"] == a.ledger.to_string()
        })
        .await;
    assert_eq!(ev["amount_fen"], 300000);
    assert!(w.ledger(&cast.a, cast.p1).await.late);
    let e = w
        .err::<LedgerDisburse>(
            &cast.fuxin,
            &DisburseLedger {
                ledger: a.ledger,
                payment_reference: "LN-1".into(),
                disbursed_on: "2024-09-26".parse().unwrap(),
            },
        )
        .await;
    assert_eq!(e.body().field.as_deref(), Some("disbursed_on"), "{e:?}");
    let v = w
        .ok::<LedgerDisburse>(
            &cast.fuxin,
            &DisburseLedger {
                ledger: a.ledger,
                payment_reference: "LN-1".into(),
                disbursed_on: "2024-10-30".parse().unwrap(),
            },
        )
        .await;
    assert!(v.late);

    // The hospital's statement: one row per entry, money in yuan.
    let f = w
        .ok::<StatementExport>(&cast.a, &ExportStatement::default())
        .await;
    assert_eq!(f.rows, 1);
    let t = sheet(&f);
    assert_eq!(t.len(), 2, "{t:?}");
    let col = |name: &str| t[0].iter().position(|h| h.contains(name)).unwrap();
    let row = &t[1];
    assert_eq!(row[col("hospital")], cast.a.org.to_string());
    assert_eq!(row[col("amount_yuan")], "3000.00");
    assert_eq!(row[col("approved_on")], "2024-09-27");
    assert_eq!(row[col("disburse_by")], "2024-10-23");
    assert_eq!(row[col("payment_reference")], "LN-1");
    assert_eq!(row[col("late")], "是");
    assert!(row[col("kind")].contains("划拨"), "{row:?}");
    assert_eq!(row[col("balance_yuan")], "3000.00");
    let e = w
        .err::<StatementExport>(&cast.fuxin, &ExportStatement::default())
        .await;
    assert_eq!(e.body().field.as_deref(), Some("hospital"), "{e:?}");
    let e = w
        .err::<StatementExport>(
            &cast.b,
            &ExportStatement {
                hospital: Some(cast.a.org),
                period: None,
            },
        )
        .await;
    assert_eq!(e.body().status, 403, "{e:?}");
    let f = w
        .ok::<StatementExport>(
            &cast.fuxin,
            &ExportStatement {
                hospital: Some(cast.b.org),
                period: Some(cast.p1),
            },
        )
        .await;
    let t = sheet(&f);
    assert_eq!(t.len(), 2, "a ledger without entries is one row: {t:?}");
    // 2 000 001 × 30% = 600 000.3 → 600 000 fen.
    assert_eq!(t[1][col("amount_yuan")], "6000.00");

    // Totals per region with the reconciliation, in JSON and as .xlsx.
    let s = w
        .ok::<RegionSummaryOp>(&cast.province, &SummariseRegions::default())
        .await;
    assert!(s.reconciled && s.unreconciled.is_empty(), "{s:?}");
    assert_eq!(s.total.ledgers, 2);
    assert_eq!(s.total.amount_fen, Money::from_fen(900_000));
    assert_eq!(s.total.disbursed_fen, Money::from_fen(300_000));
    assert_eq!(s.total.balance_fen, Money::from_fen(300_000));
    let f = w
        .ok::<SummaryExport>(&cast.province, &SummariseRegions::default())
        .await;
    let t = sheet(&f);
    assert_eq!(t.len(), 1 + s.rows.len() + 1, "{t:?}");
    let total = t.last().unwrap();
    assert!(total[0].contains("total"), "{total:?}");
    let c = |name: &str| t[0].iter().position(|h| h.contains(name)).unwrap();
    assert_eq!(total[c("disbursed_yuan")], "3000.00");
    assert_eq!(total[c("amount_yuan")], "9000.00");
    assert_eq!(total[c("reconciled")], "是");

    // A ledger whose balance no longer matches its entries is named.
    sqlx::query("UPDATE ledgers SET balance_fen = balance_fen + 1 WHERE id = $1")
        .bind(a.ledger.as_uuid())
        .execute(&w.db)
        .await
        .unwrap();
    let s = w
        .ok::<RegionSummaryOp>(&cast.province, &SummariseRegions::default())
        .await;
    assert!(!s.reconciled);
    assert_eq!(s.unreconciled, vec![a.ledger]);
}

#[tokio::test]
async fn a_period_learned_of_after_its_end_stays_open_until_closed_by_the_op() {
    let w = World::start().await;
    let cast = Cast::new();
    // The platform goes live after period 2 (p1) ended: its history is
    // recorded first, then the period is closed explicitly.
    w.set_clock("2025-09-01T10:00:00+08:00");
    cast.publish_periods(&w).await;
    for (p, amount) in [(cast.p1, 1_000_000), (cast.p2, 2_000_000)] {
        w.publish(
            EventId::new(),
            &cast.agreement(&cast.a, p, AgreementId::new(), 1, EFFECTIVE, amount),
        )
        .await;
    }
    w.wait_count("SELECT count(*) FROM ledgers", 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let l = w.ledger(&cast.a, cast.p1).await;
    assert_eq!(l.state, LedgerState::Calculated, "not closed at once");
    w.ok::<LedgerApprove>(
        &cast.fuxin,
        &ApproveLedger {
            ledger: l.ledger,
            approved_on: Some("2024-09-20".parse().unwrap()),
        },
    )
    .await;
    w.ok::<LedgerDisburse>(
        &cast.fuxin,
        &DisburseLedger {
            ledger: l.ledger,
            payment_reference: "LN-2024-1".into(),
            disbursed_on: "2024-09-30".parse().unwrap(),
        },
    )
    .await;
    w.publish(
        EventId::new(),
        &cast.settlement(&cast.a, cast.p1, SettlementId::new(), 100_000),
    )
    .await;
    w.wait_count("SELECT count(*) FROM entries WHERE kind = 'offset'", 1)
        .await;

    let close = |p| ClosePeriod { period: p };
    for who in [&cast.a, &cast.fuxin] {
        let e = w.err::<PeriodClose>(who, &close(cast.p1)).await;
        assert_eq!(e.body().status, 403, "{e:?}");
    }
    let e = w.err::<PeriodClose>(&cast.province, &close(cast.p2)).await;
    assert_eq!(e.body().field.as_deref(), Some("period"), "{e:?}");
    let e = w
        .err::<PeriodClose>(
            &operator(),
            &close(vbp_contracts::agreements::PeriodId::new()),
        )
        .await;
    assert_eq!(e.body().status, 404, "{e:?}");

    // 300 000 − 30 000 recovered = 270 000 deducted; the next period blocked.
    let r = w.ok::<PeriodClose>(&cast.province, &close(cast.p1)).await;
    assert_eq!((r.closed, r.deducted), (1, 1));
    let l = w.ledger(&cast.a, cast.p1).await;
    assert_eq!(l.state, LedgerState::Closed);
    assert_eq!(l.deducted_fen, Money::from_fen(270_000));
    assert_eq!(l.balance_fen, Money::ZERO);
    let next = w.ledger(&cast.a, cast.p2).await;
    assert_eq!(next.state, LedgerState::Blocked);
    assert!(
        next.blocked_reason
            .as_deref()
            .unwrap()
            .contains("270000 fen"),
        "{next:?}"
    );
    w.published("prepayment.ledger.deducted", |v| {
        v["ledger"] == l.ledger.to_string()
    })
    .await;
    let r = w.ok::<PeriodClose>(&operator(), &close(cast.p1)).await;
    assert_eq!(
        (r.closed, r.deducted),
        (0, 0),
        "closing again changes nothing"
    );
    w.assert_balances().await;
}

fn all_ledgers(page: u32, page_size: u32) -> ListLedgers {
    ListLedgers {
        period: None,
        hospital: None,
        state: None,
        page,
        page_size,
    }
}
