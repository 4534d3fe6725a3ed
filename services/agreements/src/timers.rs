//! Timer handlers (durable timers, DESIGN §5): the weekly progress snapshot.
//! Each runs inside the scheduler's firing transaction, so the snapshot
//! events, the next week's timer and the fired mark commit together.

use async_trait::async_trait;
use sqlx::PgConnection;
use vbp_bus::timers::{DueTimer, TimerHandler};
use vbp_bus::{Context, HandlerError, RpcError};
use vbp_kernel::{Actor, CorrelationId, beijing_date};

use crate::api::{self, Shared};
use crate::store::{self, Scope, SnapshotDue};

/// Every Monday 00:00 Beijing while a period runs: emit the weekly progress
/// snapshot of every hospital of the period (what `progress_snapshot` does,
/// for all regions), then arm the next Monday's timer until the period ends.
pub struct WeeklySnapshot(pub Shared);

fn handler_error(e: RpcError) -> HandlerError {
    if e.0.status >= 500 {
        HandlerError::transient(e.0.message)
    } else {
        HandlerError::permanent(format!("{}: {}", e.0.code, e.0.message))
    }
}

#[async_trait]
impl TimerHandler for WeeklySnapshot {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        let due: SnapshotDue = timer.payload()?;
        let Some(period) = store::get_period(conn, due.period).await? else {
            return Err(HandlerError::permanent(format!(
                "period {} of a weekly snapshot timer does not exist",
                due.period
            )));
        };
        let now = self.0.clock.now();
        let ctx = Context::with_correlation(
            timer.correlation.unwrap_or_else(CorrelationId::new),
            Some(Actor::system("agreements-weekly-snapshot")),
        );
        // The week is the one the timer was due for, even if it fires late;
        // the figures are those at firing time.
        let taken = api::snapshot_in(
            conn,
            &self.0.outbox,
            &ctx,
            &period,
            &Scope::all(),
            now,
            api::week_of(beijing_date(timer.due_at)),
        )
        .await
        .map_err(handler_error)?;
        // Next Monday after both the due time and now: weeks missed while
        // the service was down are not replayed with today's figures.
        let next = store::arm_weekly_snapshot(conn, &period, now.max(timer.due_at), None).await?;
        tracing::info!(period = %period.id, week = %taken.week_start, hospitals = taken.hospitals,
            next = ?next, "weekly progress snapshot");
        Ok(())
    }
}

/// Arms the weekly timer of running periods that have none (periods opened
/// before the timer existed); run once at start-up.
pub async fn arm_missing(svc: &Shared) -> Result<usize, RpcError> {
    let now = svc.clock.now();
    let mut tx = svc.pool.begin().await?;
    let mut n = 0;
    for id in store::periods_without_snapshot_timer(&mut tx, now).await? {
        if let Some(p) = store::get_period(&mut tx, id).await?
            && store::arm_weekly_snapshot(&mut tx, &p, now, None)
                .await?
                .is_some()
        {
            n += 1;
        }
    }
    tx.commit().await?;
    Ok(n)
}
