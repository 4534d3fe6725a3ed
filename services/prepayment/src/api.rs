//! RPC handlers. Each one checks who acts (the `Actor` in the context),
//! validates, and commits its state change together with its outbox events;
//! on any error nothing changes.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::PgPool;
use vbp_bus::{Context, Outbox, RpcError};
use vbp_contracts::agreements::{PeriodId, ProjectId};
use vbp_contracts::page::Window;
use vbp_contracts::prepayment::*;
use vbp_kernel::{Actor, BusinessCalendar, Money, OrgId, OrgKind, SharedClock};

use crate::domain::{self, Settings, region_range};
use crate::ledger::{self, OVERDUE_TIMER};
use crate::store::{self, LedgerRow, Scope};

/// What every handler needs.
pub struct Svc {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub clock: SharedClock,
    pub calendar: Arc<BusinessCalendar>,
    pub settings: Settings,
}

pub type Shared = Arc<Svc>;

pub(crate) type R<T> = Result<T, RpcError>;

pub(crate) fn actor(ctx: &Context) -> R<&Actor> {
    ctx.actor
        .as_ref()
        .ok_or_else(|| RpcError::forbidden("an authenticated actor is required"))
}

/// What an actor may see: operator all, bureau its region subtree,
/// hospital its own ledgers, anyone else nothing.
pub(crate) fn scope_of(a: &Actor) -> Scope {
    let nil = uuid::Uuid::nil();
    match a.org_kind {
        OrgKind::Operator => Scope {
            kind: "all",
            lo: 0,
            hi: 999_999,
            org: nil,
        },
        OrgKind::Bureau => {
            let (lo, hi) = region_range(a.region);
            Scope {
                kind: "region",
                lo,
                hi,
                org: nil,
            }
        }
        OrgKind::Hospital => Scope {
            kind: "hospital",
            lo: 0,
            hi: -1,
            org: a.org.as_uuid(),
        },
        _ => Scope {
            kind: "none",
            lo: 0,
            hi: -1,
            org: nil,
        },
    }
}

pub(crate) fn beijing_date(t: DateTime<Utc>) -> NaiveDate {
    (t + Duration::hours(8)).date_naive()
}

/// The first instant of a Beijing date.
fn beijing_start(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc() - Duration::hours(8)
}

fn not_found(id: LedgerId) -> RpcError {
    RpcError::not_found(format!("ledger {id} does not exist"))
}

/// The ledger, locked, if the actor may see it (otherwise not found, so
/// its existence does not leak).
async fn visible_locked(conn: &mut sqlx::PgConnection, a: &Actor, id: LedgerId) -> R<LedgerRow> {
    let l = store::lock_ledger(conn, id.as_uuid())
        .await?
        .ok_or_else(|| not_found(id))?;
    if !scope_of(a).admits(&l) {
        return Err(not_found(id));
    }
    Ok(l)
}

/// A bureau of the hospital's region, at the configured level.
fn require_approver(svc: &Svc, a: &Actor, l: &LedgerRow, what: &str) -> R<()> {
    let hospital_region = domain::region_from_i32(l.hospital_region);
    if a.org_kind != OrgKind::Bureau
        || !domain::may_approve(svc.settings.approval_level, a.region, hospital_region)
    {
        return Err(RpcError::forbidden(format!(
            "only a bureau of region {hospital_region} at level {:?} (prepayment.approval_level) may {what} (you act for a {} of {})",
            svc.settings.approval_level, a.org_kind, a.region
        )));
    }
    Ok(())
}

fn transition(l: &LedgerRow, wanted: LedgerState, what: &str) -> R<()> {
    if l.state() == wanted {
        return Ok(());
    }
    let mut msg = format!(
        "ledger {} is {}; only a {} ledger can be {what}",
        l.id,
        l.state,
        wanted.as_str()
    );
    if let Some(r) = &l.blocked_reason {
        msg.push_str(&format!(" ({r})"));
    }
    Err(RpcError::conflict("invalid_transition", msg))
}

pub async fn ledger_get(svc: Shared, ctx: Context, req: GetLedger) -> R<LedgerView> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    let l = store::get_ledger(&mut conn, req.ledger.as_uuid())
        .await?
        .filter(|l| scope_of(a).admits(l))
        .ok_or_else(|| not_found(req.ledger))?;
    Ok(store::view(&mut conn, &l).await?)
}

pub async fn ledger_list(svc: Shared, ctx: Context, req: ListLedgers) -> R<Page<LedgerView>> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let mut conn = svc.pool.acquire().await?;
    let (rows, total) = store::list_ledgers(
        &mut conn,
        &scope_of(a),
        req.period.map(|p| p.as_uuid()),
        req.hospital.map(|h| h.as_uuid()),
        req.state.map(|s| s.as_str()),
        Some((w.limit(), w.offset())),
    )
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for l in &rows {
        items.push(store::view(&mut conn, l).await?);
    }
    Ok(w.page(items, total))
}

pub async fn region_summary(svc: Shared, ctx: Context, req: SummariseRegions) -> R<RegionSummary> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    summarise(&mut conn, a, req.period).await
}

/// The summary rows, their total and the per-ledger check.
pub(crate) async fn summarise(
    conn: &mut sqlx::PgConnection,
    a: &Actor,
    period: Option<PeriodId>,
) -> R<RegionSummary> {
    let scope = scope_of(a);
    let period = period.map(|p| p.as_uuid());
    let rows = store::summary(conn, &scope, period).await?;
    let unreconciled = store::unreconciled(conn, &scope, period).await?;
    let total = totals(&rows)?;
    let holds = |d: Money, o: Money, x: Money, adj: Money, b: Money| {
        d.fen() - o.fen() - x.fen() + adj.fen() == b.fen()
    };
    let reconciled = unreconciled.is_empty()
        && rows.iter().all(|r| {
            holds(
                r.disbursed_fen,
                r.offset_fen,
                r.deducted_fen,
                r.adjustment_fen,
                r.balance_fen,
            )
        })
        && holds(
            total.disbursed_fen,
            total.offset_fen,
            total.deducted_fen,
            total.adjustment_fen,
            total.balance_fen,
        );
    Ok(RegionSummary {
        rows,
        total,
        unreconciled,
        reconciled,
    })
}

fn totals(rows: &[RegionSummaryRow]) -> R<SummaryTotals> {
    let sum = |f: fn(&RegionSummaryRow) -> Money| {
        Money::checked_sum(rows.iter().map(f))
            .ok_or_else(|| RpcError::internal("summary totals overflow"))
    };
    Ok(SummaryTotals {
        ledgers: rows.iter().map(|r| r.ledgers).sum(),
        blocked: rows.iter().map(|r| r.blocked).sum(),
        agreed_amount_fen: sum(|r| r.agreed_amount_fen)?,
        amount_fen: sum(|r| r.amount_fen)?,
        disbursed_fen: sum(|r| r.disbursed_fen)?,
        offset_fen: sum(|r| r.offset_fen)?,
        deducted_fen: sum(|r| r.deducted_fen)?,
        adjustment_fen: sum(|r| r.adjustment_fen)?,
        balance_fen: sum(|r| r.balance_fen)?,
    })
}

pub async fn ledger_approve(svc: Shared, ctx: Context, req: ApproveLedger) -> R<LedgerView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let mut tx = svc.pool.begin().await?;
    let mut l = visible_locked(&mut tx, a, req.ledger).await?;
    require_approver(&svc, a, &l, "approve this prepayment")?;
    transition(&l, LedgerState::Calculated, "approved")?;
    if l.amount_fen <= 0 {
        return Err(RpcError::invalid(
            "amount_fen",
            "a prepayment of 0 fen cannot be approved (no effective agreed amount)",
        ));
    }
    let today = beijing_date(now);
    let approved_on = req.approved_on.unwrap_or(today);
    if approved_on > today {
        return Err(RpcError::invalid(
            "approved_on",
            format!("approved_on {approved_on} is after today ({today}, Beijing)"),
        ));
    }
    if let Some(p) = store::get_period(&mut tx, l.period).await?
        && approved_on < beijing_date(p.starts_at)
    {
        return Err(RpcError::invalid(
            "approved_on",
            format!(
                "approved_on {approved_on} is before the period's first day {}",
                beijing_date(p.starts_at)
            ),
        ));
    }
    let n = svc.settings.disburse_within_working_days;
    let disburse_by = if n > 0 {
        Some(
            svc.calendar
                .deadline(beijing_start(approved_on), n)
                .map_err(|e| {
                    RpcError::internal(format!("prepayment.disburse_within_working_days: {e}"))
                })?,
        )
    } else {
        None
    };
    l.state = LedgerState::Approved.as_str().to_owned();
    l.approved_by = Some(a.org.as_uuid());
    l.approved_at = Some(now);
    l.approved_on = Some(approved_on);
    l.disburse_by = disburse_by;
    store::save_ledger(&mut tx, &l, now).await?;
    if let Some(due) = disburse_by {
        vbp_bus::timers::schedule(
            &mut tx,
            OVERDUE_TIMER,
            &l.id.to_string(),
            due,
            Some(ctx.correlation),
            &crate::timers::LedgerDue { ledger: l.ledger() },
        )
        .await?;
    }
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &PrepaymentApproved {
                ledger: l.ledger(),
                hospital: OrgId::from_uuid(l.hospital),
                hospital_region: domain::region_from_i32(l.hospital_region),
                project: ProjectId::from_uuid(l.project),
                period: PeriodId::from_uuid(l.period),
                amount_fen: Money::from_fen(l.amount_fen),
                approved_by: a.org,
                approved_on: Some(approved_on),
                disburse_by,
                approved_at: now,
            },
        )
        .await?;
    let v = store::view(&mut tx, &l).await?;
    tx.commit().await?;
    Ok(v)
}

/// Longest payment reference accepted.
pub const MAX_REFERENCE: usize = 100;

pub async fn ledger_disburse(svc: Shared, ctx: Context, req: DisburseLedger) -> R<LedgerView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let reference = req.payment_reference.trim();
    if reference.is_empty() || reference.chars().count() > MAX_REFERENCE {
        return Err(RpcError::invalid(
            "payment_reference",
            format!("payment_reference must be 1 to {MAX_REFERENCE} characters"),
        ));
    }
    let today = beijing_date(now);
    if req.disbursed_on > today {
        return Err(RpcError::invalid(
            "disbursed_on",
            format!(
                "disbursed_on {} is after today ({today}, Beijing)",
                req.disbursed_on
            ),
        ));
    }
    let mut tx = svc.pool.begin().await?;
    let mut l = visible_locked(&mut tx, a, req.ledger).await?;
    require_approver(&svc, a, &l, "record this disbursement")?;
    transition(&l, LedgerState::Approved, "disbursed")?;
    if let Some(approved) = l.approved_on.or(l.approved_at.map(beijing_date))
        && req.disbursed_on < approved
    {
        return Err(RpcError::invalid(
            "disbursed_on",
            format!(
                "disbursed_on {} is before the approval on {approved}",
                req.disbursed_on
            ),
        ));
    }
    // Late when paid on or after the Beijing day the deadline falls in.
    let late = l.late
        || l.disburse_by
            .is_some_and(|d| req.disbursed_on >= beijing_date(d));
    l.state = LedgerState::Disbursed.as_str().to_owned();
    l.payment_reference = Some(reference.to_owned());
    l.disbursed_on = Some(req.disbursed_on);
    l.late = late;
    store::save_ledger(&mut tx, &l, now).await?;
    let amount = Money::from_fen(l.amount_fen);
    let (entry, balance) = store::append_entry(
        &mut tx,
        l.id,
        EntryKind::Disbursed,
        amount,
        None,
        &format!(
            "rpc prepayment.ledger_disburse by {} (org {}), payment reference {reference}",
            a.sub, a.org
        ),
        now,
    )
    .await?
    .ok_or_else(|| RpcError::internal("disbursement entry not written"))?;
    vbp_bus::timers::cancel(&mut tx, OVERDUE_TIMER, &l.id.to_string()).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &PrepaymentDisbursed {
                ledger: l.ledger(),
                entry,
                hospital: OrgId::from_uuid(l.hospital),
                hospital_region: domain::region_from_i32(l.hospital_region),
                project: ProjectId::from_uuid(l.project),
                period: PeriodId::from_uuid(l.period),
                amount_fen: amount,
                payment_reference: reference.to_owned(),
                disbursed_on: req.disbursed_on,
                late,
                balance_fen: balance,
                recorded_at: now,
            },
        )
        .await?;
    let l = store::get_ledger(&mut tx, l.id)
        .await?
        .ok_or_else(|| not_found(req.ledger))?;
    let v = store::view(&mut tx, &l).await?;
    tx.commit().await?;
    Ok(v)
}

/// Longest batch a recalculation takes in one transaction.
pub const MAX_RECALCULATION: i64 = 100_000;

pub async fn ledger_recalculate(
    svc: Shared,
    ctx: Context,
    req: RecalculateLedgers,
) -> R<RecalculationResult> {
    let a = actor(&ctx)?;
    let allowed = match a.org_kind {
        OrgKind::Operator => true,
        OrgKind::Bureau => a.region.contains(req.region),
        _ => false,
    };
    if !allowed {
        return Err(RpcError::forbidden(format!(
            "only the operator or a bureau whose region contains {} may recalculate its ledgers",
            req.region
        )));
    }
    let now = svc.clock.now();
    let (lo, hi) = region_range(req.region);
    let mut tx = svc.pool.begin().await?;
    let open = store::count_open_ledgers(&mut tx, lo, hi, req.period.map(|p| p.as_uuid())).await?;
    if open > MAX_RECALCULATION {
        return Err(RpcError::invalid(
            "region",
            format!("{open} ledgers, more than {MAX_RECALCULATION}; recalculate per period"),
        ));
    }
    let cause = format!(
        "rpc prepayment.ledger_recalculate by {} (org {}) for region {}",
        a.sub, a.org, req.region
    );
    let done = ledger::recalculate_region(&mut tx, &svc, &ctx, req.region, req.period, &cause, now)
        .await
        .map_err(|e| RpcError::conflict("recalculation_failed", e.to_string()))?;
    tx.commit().await?;
    Ok(RecalculationResult {
        ledgers: done.ledgers,
        changed: done.changed,
    })
}

pub async fn period_close(svc: Shared, ctx: Context, req: ClosePeriod) -> R<PeriodClosed> {
    let a = actor(&ctx)?;
    let allowed = match a.org_kind {
        OrgKind::Operator => true,
        OrgKind::Bureau => a.region.level() == vbp_kernel::RegionLevel::Province,
        _ => false,
    };
    if !allowed {
        return Err(RpcError::forbidden(
            "only the operator or a province bureau may close a prepayment period",
        ));
    }
    let now = svc.clock.now();
    let mut tx = svc.pool.begin().await?;
    let p = store::get_period(&mut tx, req.period.as_uuid())
        .await?
        .ok_or_else(|| {
            RpcError::not_found(format!(
                "period {} is not known to the prepayment service",
                req.period
            ))
        })?;
    if now < p.ends_at {
        return Err(RpcError::invalid(
            "period",
            format!(
                "period {} ends at {}; it can be closed only after it ends",
                req.period, p.ends_at
            ),
        ));
    }
    let done = ledger::close_period(&mut tx, &svc, &ctx, p.id, now)
        .await
        .map_err(|e| RpcError::conflict("close_failed", e.to_string()))?;
    tx.commit().await?;
    Ok(PeriodClosed {
        period: req.period,
        closed: done.closed,
        deducted: done.deducted,
    })
}
