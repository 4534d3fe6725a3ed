//! Property: for random agreements, amendments, disbursements and settlement
//! sequences (with redelivered events), run through the real service on
//! Postgres + NATS, every ledger reconciles — Σ disbursed − Σ offsets −
//! Σ deductions ± adjustments = balance, per ledger and in total — and the
//! figures are those of the rules: prepayment = agreed × ratio half-up,
//! offsets recover min(Σ wanted, prepayment), the rest is deducted at
//! period end.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::Duration;
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use vbp_contracts::agreements::{AgreementId, AgreementState, PeriodId, PeriodOpened};
use vbp_contracts::orders::SettlementId;
use vbp_contracts::prepayment::*;
use vbp_kernel::{EventId, Money};

#[derive(Debug, Clone)]
struct HospitalCase {
    /// Agreed amounts of the hospital's agreements (fen).
    agreements: Vec<i64>,
    /// A later amount for the first agreement, taking effect after the
    /// disbursement (or before approval when not disbursed).
    amendment: Option<i64>,
    disbursed: bool,
    /// Paid settlements (fen) and whether each is delivered twice.
    settlements: Vec<(i64, bool)>,
}

fn hospital_case() -> impl Strategy<Value = HospitalCase> {
    (
        prop::collection::vec(0i64..50_000_000, 1..4),
        prop::option::of(0i64..60_000_000),
        any::<bool>(),
        prop::collection::vec((0i64..20_000_000, any::<bool>()), 0..6),
    )
        .prop_map(
            |(agreements, amendment, disbursed, settlements)| HospitalCase {
                agreements,
                amendment,
                disbursed,
                settlements,
            },
        )
}

/// Up to three hospitals: two in Liaoning (30%), one in Sichuan (50%).
fn case() -> impl Strategy<Value = Vec<Option<HospitalCase>>> {
    prop::collection::vec(prop::option::of(hospital_case()), 3)
        .prop_filter("at least one hospital", |v| v.iter().any(Option::is_some))
}

/// What a ledger should show: (ledger, disbursed, amount, adjustment,
/// offsets, balance before the close).
type Expected = (LedgerId, bool, i64, i64, i64, i64);

fn half_up(fen: i64, bp: i64) -> i64 {
    (fen * bp + 5_000) / 10_000
}

/// Each case (shrinking included) runs in its own eight-day period, later
/// than the last one, so the manual clock only moves forward and stays in
/// the years the business calendar covers.
struct Runs {
    /// Events published so far (distinct ids), as the inbox counts them.
    ids: AtomicI64,
    periods: AtomicI64,
}

async fn run_case(w: &World, runs: &Runs, rule: OffsetRule, hs: Vec<Option<HospitalCase>>) {
    let cast = Cast::new();
    let ids = &runs.ids;
    let n = runs.periods.fetch_add(1, Ordering::SeqCst);
    let starts = at("2025-01-01T00:00:00+08:00") + Duration::days(10 * n);
    let ends = starts + Duration::days(8);
    let mut published = 0i64;
    let period = PeriodId::new();
    w.set_clock(&(starts - Duration::days(2)).to_rfc3339());
    w.publish(
        EventId::new(),
        &PeriodOpened {
            period,
            project: cast.project,
            project_code: "ZJHCCG-2022-01".into(),
            number: 1,
            starts_at: starts,
            ends_at: ends,
            paper_deadline: None,
            carried_over_from: None,
            opened_at: starts - Duration::days(10),
        },
    )
    .await;
    published += 1;
    let who = [
        (&cast.a, &cast.province, 3000),
        (&cast.b, &cast.province, 3000),
        (&cast.c, &cast.sichuan, 5000),
    ];
    let cases: Vec<_> = who
        .iter()
        .zip(&hs)
        .filter_map(|(w, h)| h.as_ref().map(|h| (*w, h)))
        .collect();
    let mut first_ids = Vec::new();
    for ((hospital, _, _), h) in &cases {
        let mut first = None;
        for amount in &h.agreements {
            let id = AgreementId::new();
            first.get_or_insert(id);
            w.publish(
                EventId::new(),
                &cast.agreement(hospital, period, id, 1, AgreementState::Effective, *amount),
            )
            .await;
            published += 1;
        }
        first_ids.push(first.expect("one agreement at least"));
    }
    let total = ids.fetch_add(published, Ordering::SeqCst) + published;
    published = 0;
    w.wait_count("SELECT count(*) FROM inbox", total).await;

    // Approve and disburse where the case says so, on the period's first day.
    w.set_clock(&(starts + Duration::hours(10)).to_rfc3339());
    let today = (starts + Duration::hours(10))
        .with_timezone(&vbp_kernel::BEIJING)
        .date_naive();
    let mut want = Vec::new();
    for (((hospital, bureau, bp), h), first) in cases.iter().zip(&first_ids) {
        let l = w.ledger(hospital, period).await;
        let agreed: i64 = h.agreements.iter().sum();
        assert_eq!(l.amount_fen.fen(), half_up(agreed, *bp), "{h:?}");
        if h.disbursed && l.amount_fen.fen() > 0 {
            w.ok::<LedgerApprove>(
                bureau,
                &ApproveLedger {
                    ledger: l.ledger,
                    approved_on: None,
                },
            )
            .await;
            w.ok::<LedgerDisburse>(
                bureau,
                &DisburseLedger {
                    ledger: l.ledger,
                    payment_reference: format!("P-{}", l.ledger),
                    disbursed_on: today,
                },
            )
            .await;
        }
        let disbursed = h.disbursed && l.amount_fen.fen() > 0;
        let mut amount = l.amount_fen.fen();
        let mut adjustment = 0;
        if let Some(new) = h.amendment {
            w.publish(
                EventId::new(),
                &cast.agreement(hospital, period, *first, 2, AgreementState::Effective, new),
            )
            .await;
            published += 1;
            let agreed = agreed - h.agreements[0] + new;
            let after = half_up(agreed, *bp);
            if disbursed {
                adjustment = after - amount;
            }
            amount = after;
        }
        want.push((l.ledger, disbursed, amount, adjustment));
    }
    let total = ids.fetch_add(published, Ordering::SeqCst) + published;
    w.wait_count("SELECT count(*) FROM inbox", total).await;

    // Settlements, some delivered twice.
    let mut settled = 0i64;
    let mut expected: Vec<Expected> = Vec::new();
    for (((hospital, _, bp), h), (ledger, disbursed, amount, adjustment)) in cases.iter().zip(&want)
    {
        let mut wanted = 0i64;
        for (fen, twice) in &h.settlements {
            let id = EventId::new();
            let ev = cast.settlement(hospital, period, SettlementId::new(), *fen);
            w.publish(id, &ev).await;
            if *twice {
                w.publish(id, &ev).await;
            }
            settled += 1;
            wanted += match rule {
                OffsetRule::Proportional => half_up(*fen, *bp),
                OffsetRule::OneToOne => *fen,
            };
        }
        let (offsets, balance) = if *disbursed {
            let o = wanted.min(*amount);
            (o, amount - o)
        } else {
            (0, 0)
        };
        expected.push((*ledger, *disbursed, *amount, *adjustment, offsets, balance));
    }
    let total = ids.fetch_add(settled, Ordering::SeqCst) + settled;
    w.wait_count("SELECT count(*) FROM inbox", total).await;
    for (ledger, disbursed, amount, adjustment, offsets, balance) in &expected {
        let l = w
            .ok::<LedgerGet>(&operator(), &GetLedger { ledger: *ledger })
            .await;
        let sum = |k: EntryKind| -> i64 {
            l.entries
                .iter()
                .filter(|e| e.kind == k)
                .map(|e| e.amount_fen.fen())
                .sum()
        };
        assert_eq!(l.amount_fen.fen(), *amount, "{l:?}");
        assert_eq!(sum(EntryKind::Adjustment), *adjustment, "{l:?}");
        assert_eq!(-sum(EntryKind::Offset), *offsets, "{l:?}");
        assert_eq!(l.balance_fen.fen(), *balance, "{l:?}");
        if !disbursed {
            assert!(l.entries.is_empty(), "{l:?}");
        }
    }
    let s = w
        .ok::<RegionSummaryOp>(
            &operator(),
            &SummariseRegions {
                period: Some(period),
            },
        )
        .await;
    assert!(s.reconciled && s.unreconciled.is_empty(), "{s:?}");

    // The period ends: what is left becomes a deduction; nothing is owed.
    let ledgers = expected.len() as i64;
    w.set_clock(&(ends + Duration::hours(1)).to_rfc3339());
    w.wait_count(
        &format!("SELECT count(*) FROM ledgers WHERE period = '{period}' AND state = 'closed'"),
        ledgers,
    )
    .await;
    for (ledger, _, _, _, _, balance) in &expected {
        let l = w
            .ok::<LedgerGet>(&operator(), &GetLedger { ledger: *ledger })
            .await;
        assert_eq!(l.deducted_fen.fen(), *balance, "{l:?}");
        assert_eq!(l.balance_fen, Money::ZERO, "{l:?}");
    }
    let s = w
        .ok::<RegionSummaryOp>(
            &operator(),
            &SummariseRegions {
                period: Some(period),
            },
        )
        .await;
    assert!(s.reconciled && s.unreconciled.is_empty(), "{s:?}");
    let t = &s.total;
    assert_eq!(t.ledgers, ledgers);
    assert_eq!(t.balance_fen, Money::ZERO);
    let sum = |f: fn(&Expected) -> i64| -> i64 { expected.iter().map(f).sum() };
    assert_eq!(
        t.disbursed_fen.fen(),
        sum(|e| if e.1 { e.2 - e.3 } else { 0 })
    );
    assert_eq!(t.adjustment_fen.fen(), sum(|e| e.3));
    assert_eq!(t.offset_fen.fen(), sum(|e| e.4));
    assert_eq!(t.deducted_fen.fen(), sum(|e| e.5));
    w.assert_balances().await;
}

fn property(rule: OffsetRule, rule_name: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(World::start_with(serde_json::json!({
        "offset_rule": rule_name,
        "ratios": [ { "region": "510000", "ratio_bp": 5000 } ],
    })));
    let runs = Runs {
        ids: AtomicI64::new(0),
        periods: AtomicI64::new(0),
    };
    let mut runner = TestRunner::new(Config {
        cases: 10,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case(), |hs| {
            rt.block_on(run_case(&w, &runs, rule, hs));
            Ok(())
        })
        .unwrap();
    drop(w);
}

#[test]
fn proportional_offsets_always_reconcile() {
    property(OffsetRule::Proportional, "proportional");
}

#[test]
fn one_to_one_offsets_always_reconcile() {
    property(OffsetRule::OneToOne, "one_to_one");
}
