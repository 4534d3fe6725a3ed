//! The ledger's event-driven transitions: (re)calculation from effective
//! agreements, offsets from paid settlements, the period-end close with its
//! deductions and next-period blocks, and the overdue-disbursement flag.
//! Each runs inside the caller's transaction and appends its outbox events
//! there.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;
use vbp_bus::{Context, HandlerError};
use vbp_contracts::agreements::{AgreementId, PeriodId, ProjectId};
use vbp_contracts::orders::SettlementPaid;
use vbp_contracts::prepayment::{
    CalculationInput, EntryId, EntryKind, LedgerId, LedgerState, PrepaymentBlocked,
    PrepaymentCalculated, PrepaymentDeducted, PrepaymentDisbursementOverdue,
    PrepaymentOffsetRecorded,
};
use vbp_kernel::{EventId, Money, OrgId, RegionCode};

use crate::api::Svc;
use crate::domain;
use crate::store::{self, LedgerRow};

pub const OVERDUE_TIMER: &str = "prepayment.disbursement.overdue";
pub const CLOSE_TIMER: &str = "prepayment.period.close";

/// The hospital × project × period a calculation is for.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub project: ProjectId,
    pub period: PeriodId,
}

fn region(l: &LedgerRow) -> RegionCode {
    domain::region_from_i32(l.hospital_region)
}

async fn known_period(
    conn: &mut PgConnection,
    period: Uuid,
) -> Result<store::PeriodRow, HandlerError> {
    store::get_period(conn, period).await?.ok_or_else(|| {
        HandlerError::transient(format!(
            "period {period} is not projected yet (no agreements.period.opened received); retrying"
        ))
    })
}

/// The ledger of the previous period of the same project that left an
/// unrecovered balance at its close, if any.
async fn blocking_ledger(
    conn: &mut PgConnection,
    hospital: OrgId,
    period: &store::PeriodRow,
) -> Result<Option<LedgerRow>, HandlerError> {
    let Some(prev) = store::period_numbered(conn, period.project, period.number - 1).await? else {
        return Ok(None);
    };
    let l = store::lock_ledger_by_key(conn, hospital.as_uuid(), period.project, prev.id).await?;
    Ok(l.filter(|l| l.deducted_fen > 0))
}

fn block_reason(prev: &LedgerRow, number: i32) -> String {
    format!(
        "blocked: ledger {} of the previous period (number {}) closed with an unrecovered balance of {} fen, deducted (冲减) from later settlements; no prepayment in this period",
        prev.id,
        number - 1,
        prev.deducted_fen
    )
}

async fn emit_blocked(
    conn: &mut PgConnection,
    svc: &Svc,
    ctx: &Context,
    l: &LedgerRow,
    prev: &LedgerRow,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), HandlerError> {
    svc.outbox
        .append(
            conn,
            ctx,
            &PrepaymentBlocked {
                hospital: OrgId::from_uuid(l.hospital),
                hospital_region: region(l),
                project: ProjectId::from_uuid(l.project),
                period: PeriodId::from_uuid(l.period),
                blocking_ledger: prev.ledger(),
                unrecovered_fen: Money::from_fen(prev.deducted_fen),
                reason: reason.to_owned(),
                blocked_at: now,
            },
        )
        .await?;
    Ok(())
}

/// Recalculates the prepayment of `key` from the effective agreement
/// versions held: creates the ledger (or blocks it), or records an
/// adjustment. `cause` names the event or request that triggered it.
/// Returns whether a calculation was recorded.
pub async fn recalculate(
    conn: &mut PgConnection,
    svc: &Svc,
    ctx: &Context,
    key: Key,
    cause: &str,
    now: DateTime<Utc>,
) -> Result<bool, HandlerError> {
    let period = known_period(conn, key.period.as_uuid()).await?;
    let inputs = store::effective_inputs(conn, key.hospital, key.project, key.period).await?;
    let agreed = Money::checked_sum(inputs.iter().map(|i| i.agreed_amount_fen))
        .ok_or_else(|| HandlerError::permanent("agreed_amount_fen: sum overflows"))?;
    let (ratio, rule) = svc
        .settings
        .ratio_for(key.hospital_region, &period.project_code);
    let amount = domain::prepayment(agreed, ratio)
        .map_err(|e| HandlerError::permanent(format!("{}: {}", e.field, e.rule)))?;
    let existing = store::lock_ledger_by_key(
        conn,
        key.hospital.as_uuid(),
        key.project.as_uuid(),
        key.period.as_uuid(),
    )
    .await?;
    let (l, adjustment) = match existing {
        None => {
            if inputs.is_empty() {
                return Ok(false);
            }
            let blocking = if svc.settings.block_after_unrecovered {
                blocking_ledger(conn, key.hospital, &period).await?
            } else {
                None
            };
            let reason = blocking.as_ref().map(|p| block_reason(p, period.number));
            let l = LedgerRow {
                id: LedgerId::new().as_uuid(),
                hospital: key.hospital.as_uuid(),
                hospital_region: key.hospital_region.as_u32() as i32,
                project: key.project.as_uuid(),
                period: key.period.as_uuid(),
                state: if blocking.is_some() {
                    LedgerState::Blocked
                } else {
                    LedgerState::Calculated
                }
                .as_str()
                .to_owned(),
                agreed_amount_fen: agreed.fen(),
                ratio_bp: ratio.value() as i32,
                amount_fen: amount.fen(),
                rule: rule.clone(),
                approved_by: None,
                approved_at: None,
                disburse_by: None,
                payment_reference: None,
                disbursed_on: None,
                late: false,
                blocked_reason: reason.clone(),
                deducted_fen: 0,
                balance_fen: 0,
                created_at: now,
                updated_at: now,
                approved_on: None,
            };
            if !store::insert_ledger(conn, &l).await? {
                return Err(HandlerError::transient(
                    "ledger created concurrently; retrying",
                ));
            }
            if let (Some(prev), Some(reason)) = (&blocking, &reason) {
                emit_blocked(conn, svc, ctx, &l, prev, reason, now).await?;
            }
            (l, Money::ZERO)
        }
        Some(mut l) => {
            if l.amount_fen == amount.fen()
                && l.agreed_amount_fen == agreed.fen()
                && l.ratio_bp == ratio.value() as i32
            {
                return Ok(false);
            }
            let diff = Money::from_fen(amount.fen() - l.amount_fen);
            l.agreed_amount_fen = agreed.fen();
            l.ratio_bp = ratio.value() as i32;
            l.amount_fen = amount.fen();
            l.rule = rule.clone();
            match l.state() {
                LedgerState::Disbursed if !diff.is_zero() => {
                    store::append_entry(
                        conn,
                        l.id,
                        EntryKind::Adjustment,
                        diff,
                        None,
                        &format!("recalculation: {cause}"),
                        now,
                    )
                    .await?;
                }
                LedgerState::Approved => {
                    // The approved figure changed: it needs approving again.
                    l.state = LedgerState::Calculated.as_str().to_owned();
                    l.approved_by = None;
                    l.approved_at = None;
                    l.approved_on = None;
                    l.disburse_by = None;
                    l.late = false;
                    vbp_bus::timers::cancel(conn, OVERDUE_TIMER, &l.id.to_string()).await?;
                }
                _ => {}
            }
            store::save_ledger(conn, &l, now).await?;
            (l, diff)
        }
    };
    store::insert_calculation(
        conn, l.id, agreed, ratio, amount, adjustment, &inputs, &rule, cause, now,
    )
    .await?;
    svc.outbox
        .append(
            conn,
            ctx,
            &PrepaymentCalculated {
                ledger: l.ledger(),
                hospital: key.hospital,
                hospital_region: key.hospital_region,
                project: key.project,
                period: key.period,
                agreed_amount_fen: agreed,
                ratio,
                amount_fen: amount,
                adjustment_fen: adjustment,
                inputs,
                rule,
                calculated_at: now,
            },
        )
        .await?;
    Ok(true)
}

/// A paid settlement to offset, with the context and id of its event.
pub struct Paid {
    pub ctx: Context,
    pub event: EventId,
    pub ev: SettlementPaid,
}

/// Records paid settlements and their offsets (冲抵) against their
/// hospitals' disbursed ledgers, in the order given: each offset takes the
/// balance the previous one left, as if applied one by one. A settlement
/// already offset (a redelivery) is not offset again.
pub async fn offset(
    conn: &mut PgConnection,
    svc: &Svc,
    paid: &[Paid],
    now: DateTime<Utc>,
) -> Result<(), HandlerError> {
    let mut periods = HashMap::new();
    for p in paid {
        let id = p.ev.period.as_uuid();
        if let std::collections::hash_map::Entry::Vacant(e) = periods.entry(id) {
            e.insert(known_period(conn, id).await?);
        }
    }
    store::record_settlements(conn, paid.iter().map(|p| (&p.ev, p.event))).await?;
    let keys: Vec<(Uuid, Uuid, Uuid)> = paid
        .iter()
        .map(|p| {
            let period = &periods[&p.ev.period.as_uuid()];
            (p.ev.hospital.as_uuid(), period.project, period.id)
        })
        .collect();
    let mut ledgers: HashMap<(Uuid, Uuid, Uuid), LedgerRow> =
        store::lock_ledgers_by_keys(conn, &keys)
            .await?
            .into_iter()
            .map(|l| ((l.hospital, l.project, l.period), l))
            .collect();
    let settlements: Vec<Uuid> = paid.iter().map(|p| p.ev.settlement.as_uuid()).collect();
    let ids: Vec<Uuid> = ledgers.values().map(|l| l.id).collect();
    let mut done: HashSet<Uuid> = store::offset_settlements(conn, &ids, &settlements).await?;
    let mut seqs = store::last_entry_seqs(conn, &ids).await?;
    let rule = svc.settings.offset_rule;
    let (mut entries, mut events) = (Vec::new(), Vec::new());
    for (p, key) in paid.iter().zip(&keys) {
        let ev = &p.ev;
        let Some(l) = ledgers.get_mut(key) else {
            continue;
        };
        if l.state() != LedgerState::Disbursed {
            tracing::debug!(ledger = %l.id, state = %l.state, "settlement: nothing disbursed to recover");
            continue;
        }
        if !done.insert(ev.settlement.as_uuid()) {
            tracing::debug!(settlement = %ev.settlement, "offset already recorded");
            continue;
        }
        let amount = domain::offset(
            rule,
            ev.amount_fen,
            l.ratio(),
            Money::from_fen(l.balance_fen),
        );
        if amount.is_zero() {
            continue;
        }
        l.balance_fen -= amount.fen();
        let seq = seqs.entry(l.id).or_insert(0);
        *seq += 1;
        let entry = EntryId::new();
        entries.push(store::NewEntry {
            id: entry,
            ledger: l.id,
            seq: *seq,
            kind: EntryKind::Offset,
            amount: Money::from_fen(-amount.fen()),
            balance: Money::from_fen(l.balance_fen),
            settlement: Some(ev.settlement.as_uuid()),
            cause: format!(
                "orders.settlement.paid event {} settlement {}",
                p.event, ev.settlement
            ),
        });
        events.push(svc.outbox.stage(
            &p.ctx,
            &PrepaymentOffsetRecorded {
                ledger: l.ledger(),
                entry,
                hospital: ev.hospital,
                hospital_region: region(l),
                project: ProjectId::from_uuid(l.project),
                period: ev.period,
                settlement: ev.settlement,
                settled_fen: ev.amount_fen,
                rule,
                amount_fen: amount,
                balance_fen: Money::from_fen(l.balance_fen),
                recorded_at: now,
            },
        )?);
    }
    if entries.is_empty() {
        return Ok(());
    }
    store::insert_entries(conn, &entries, now).await?;
    let touched: HashSet<Uuid> = entries.iter().map(|e| e.ledger).collect();
    let balances: Vec<(Uuid, i64)> = ledgers
        .values()
        .filter(|l| touched.contains(&l.id))
        .map(|l| (l.id, l.balance_fen))
        .collect();
    store::set_balances(conn, &balances, now).await?;
    svc.outbox.append_staged(conn, &events).await?;
    Ok(())
}

/// What closing a period did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Closed {
    pub closed: i64,
    pub deducted: i64,
}

/// Period end: every unrecovered balance becomes a deduction (冲减); ledgers
/// close; the same hospitals' ledgers of the next period are blocked.
/// Closed ledgers are left alone, so closing again only picks up ledgers
/// calculated since.
pub async fn close_period(
    conn: &mut PgConnection,
    svc: &Svc,
    ctx: &Context,
    period: Uuid,
    now: DateTime<Utc>,
) -> Result<Closed, HandlerError> {
    let p = store::get_period(conn, period)
        .await?
        .ok_or_else(|| HandlerError::permanent(format!("period {period} is not projected")))?;
    let next = store::period_numbered(conn, p.project, p.number + 1).await?;
    let mut done = Closed::default();
    for mut l in store::lock_period_ledgers(conn, period).await? {
        match l.state() {
            LedgerState::Closed | LedgerState::Blocked => continue,
            LedgerState::Disbursed if l.balance_fen > 0 => {
                let unrecovered = l.balance_fen;
                let (entry, balance) = store::append_entry(
                    conn,
                    l.id,
                    EntryKind::Deduction,
                    Money::from_fen(-unrecovered),
                    None,
                    &format!("period {period} ended at {}", p.ends_at),
                    now,
                )
                .await?
                .ok_or_else(|| HandlerError::transient("deduction entry not written"))?;
                l.deducted_fen = unrecovered;
                svc.outbox
                    .append(
                        conn,
                        ctx,
                        &PrepaymentDeducted {
                            ledger: l.ledger(),
                            entry: EntryId::from_uuid(entry.as_uuid()),
                            hospital: OrgId::from_uuid(l.hospital),
                            hospital_region: region(&l),
                            project: ProjectId::from_uuid(l.project),
                            period: PeriodId::from_uuid(l.period),
                            amount_fen: Money::from_fen(unrecovered),
                            balance_fen: balance,
                            recorded_at: now,
                        },
                    )
                    .await?;
                done.deducted += 1;
            }
            _ => {}
        }
        done.closed += 1;
        vbp_bus::timers::cancel(conn, OVERDUE_TIMER, &l.id.to_string()).await?;
        l.state = LedgerState::Closed.as_str().to_owned();
        store::save_ledger(conn, &l, now).await?;
        if l.deducted_fen > 0
            && svc.settings.block_after_unrecovered
            && let Some(next) = &next
        {
            block_next(conn, svc, ctx, &l, next, now).await?;
        }
    }
    Ok(done)
}

async fn block_next(
    conn: &mut PgConnection,
    svc: &Svc,
    ctx: &Context,
    prev: &LedgerRow,
    next: &store::PeriodRow,
    now: DateTime<Utc>,
) -> Result<(), HandlerError> {
    let Some(mut l) = store::lock_ledger_by_key(conn, prev.hospital, next.project, next.id).await?
    else {
        return Ok(());
    };
    if !matches!(l.state(), LedgerState::Calculated | LedgerState::Approved) {
        return Ok(());
    }
    let reason = block_reason(prev, next.number);
    l.state = LedgerState::Blocked.as_str().to_owned();
    l.blocked_reason = Some(reason.clone());
    vbp_bus::timers::cancel(conn, OVERDUE_TIMER, &l.id.to_string()).await?;
    store::save_ledger(conn, &l, now).await?;
    emit_blocked(conn, svc, ctx, &l, prev, &reason, now).await
}

/// An approved ledger still not disbursed at its deadline is flagged late.
pub async fn flag_overdue(
    conn: &mut PgConnection,
    svc: &Svc,
    ctx: &Context,
    ledger: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, HandlerError> {
    let Some(mut l) = store::lock_ledger(conn, ledger).await? else {
        return Ok(false);
    };
    let (Some(approved_at), Some(disburse_by)) = (l.approved_at, l.disburse_by) else {
        return Ok(false);
    };
    if l.state() != LedgerState::Approved || l.late || now < disburse_by {
        return Ok(false);
    }
    l.late = true;
    store::save_ledger(conn, &l, now).await?;
    svc.outbox
        .append(
            conn,
            ctx,
            &PrepaymentDisbursementOverdue {
                ledger: l.ledger(),
                hospital: OrgId::from_uuid(l.hospital),
                hospital_region: region(&l),
                project: ProjectId::from_uuid(l.project),
                period: PeriodId::from_uuid(l.period),
                amount_fen: Money::from_fen(l.amount_fen),
                approved_at,
                disburse_by,
                flagged_at: now,
            },
        )
        .await?;
    Ok(true)
}

/// What a region's recalculation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionRecalculation {
    pub ledgers: i64,
    pub changed: i64,
}

/// Recalculates every not-closed ledger of hospitals in `region` (optionally
/// of one period) with the same rules as [`recalculate`], set-based: one
/// read of all figures and inputs, then one write per table for every
/// changed ledger, so a province of hundreds of thousands of agreement lines
/// is one transaction of a few statements plus its events.
pub async fn recalculate_region(
    conn: &mut PgConnection,
    svc: &Svc,
    ctx: &Context,
    region: RegionCode,
    period: Option<PeriodId>,
    cause: &str,
    now: DateTime<Utc>,
) -> Result<RegionRecalculation, HandlerError> {
    let (lo, hi) = domain::region_range(region);
    let rows = store::lock_for_recalculation(conn, lo, hi, period.map(|p| p.as_uuid())).await?;
    let mut new = store::Recalculated::default();
    let mut events = Vec::new();
    let mut adjusted: (Vec<Uuid>, Vec<i64>) = (Vec::new(), Vec::new());
    let mut unapproved = Vec::new();
    for r in &rows {
        let hospital_region = domain::region_from_i32(r.hospital_region);
        let inputs: Vec<CalculationInput> = r
            .agreement_ids
            .iter()
            .zip(&r.versions)
            .zip(&r.amounts)
            .map(|((id, version), amount)| CalculationInput {
                agreement: AgreementId::from_uuid(*id),
                version: *version,
                agreed_amount_fen: Money::from_fen(*amount),
            })
            .collect();
        let agreed = Money::checked_sum(inputs.iter().map(|i| i.agreed_amount_fen))
            .ok_or_else(|| HandlerError::permanent("agreed_amount_fen: sum overflows"))?;
        let (ratio, rule) = svc.settings.ratio_for(hospital_region, &r.project_code);
        let amount = domain::prepayment(agreed, ratio)
            .map_err(|e| HandlerError::permanent(format!("{}: {}", e.field, e.rule)))?;
        if r.amount_fen == amount.fen()
            && r.agreed_amount_fen == agreed.fen()
            && r.ratio_bp == ratio.value() as i32
        {
            continue;
        }
        let diff = amount.fen() - r.amount_fen;
        let state = LedgerState::parse(&r.state).unwrap_or(LedgerState::Calculated);
        if state == LedgerState::Disbursed && diff != 0 {
            adjusted.0.push(r.id);
            adjusted.1.push(diff);
        }
        let unapprove = state == LedgerState::Approved;
        if unapprove {
            unapproved.push(r.id);
        }
        new.ids.push(r.id);
        new.agreed.push(agreed.fen());
        new.ratio_bp.push(ratio.value() as i32);
        new.amount.push(amount.fen());
        new.adjustment.push(diff);
        new.rule.push(rule.clone());
        new.inputs.push(
            serde_json::to_string(&inputs)
                .map_err(|e| HandlerError::permanent(format!("inputs: {e}")))?,
        );
        new.unapprove.push(unapprove);
        events.push(PrepaymentCalculated {
            ledger: LedgerId::from_uuid(r.id),
            hospital: OrgId::from_uuid(r.hospital),
            hospital_region,
            project: ProjectId::from_uuid(r.project),
            period: PeriodId::from_uuid(r.period),
            agreed_amount_fen: agreed,
            ratio,
            amount_fen: amount,
            adjustment_fen: Money::from_fen(diff),
            inputs,
            rule,
            calculated_at: now,
        });
    }
    store::save_recalculated(conn, &new, cause, now).await?;
    if !adjusted.0.is_empty() {
        store::append_adjustments(
            conn,
            &adjusted.0,
            &adjusted.1,
            &format!("recalculation: {cause}"),
            now,
        )
        .await?;
    }
    store::cancel_timers(conn, OVERDUE_TIMER, &unapproved).await?;
    svc.outbox.append_many(conn, ctx, &events).await?;
    Ok(RegionRecalculation {
        ledgers: rows.len() as i64,
        changed: events.len() as i64,
    })
}
