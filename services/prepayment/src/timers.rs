//! Durable timers: the disbursement deadline after approval and the close
//! of a period.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use vbp_bus::timers::{DueTimer, TimerHandler};
use vbp_bus::{Context, HandlerError};
use vbp_contracts::agreements::PeriodId;
use vbp_contracts::prepayment::LedgerId;
use vbp_kernel::{Actor, CorrelationId};

use crate::api::Shared;
use crate::ledger;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerDue {
    pub ledger: LedgerId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeriodDue {
    pub period: PeriodId,
}

fn ctx_of(timer: &DueTimer, who: &str) -> Context {
    Context::with_correlation(
        timer.correlation.unwrap_or_else(CorrelationId::new),
        Some(Actor::system(who)),
    )
}

/// `prepayment.disbursement.overdue`: flags an approved, undisbursed ledger.
pub struct Overdue(pub Shared);

#[async_trait]
impl TimerHandler for Overdue {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        let due: LedgerDue = timer.payload()?;
        let now = self.0.clock.now();
        let ctx = ctx_of(timer, "prepayment-disbursement-deadline");
        if ledger::flag_overdue(conn, &self.0, &ctx, due.ledger.as_uuid(), now).await? {
            tracing::info!(ledger = %due.ledger, "prepayment disbursement overdue");
        }
        Ok(())
    }
}

/// `prepayment.period.close`: deductions and next-period blocks.
pub struct Close(pub Shared);

#[async_trait]
impl TimerHandler for Close {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        let due: PeriodDue = timer.payload()?;
        let now = self.0.clock.now();
        let ctx = ctx_of(timer, "prepayment-period-close");
        let n = ledger::close_period(conn, &self.0, &ctx, due.period.as_uuid(), now).await?;
        tracing::info!(period = %due.period, closed = n.closed, deducted = n.deducted, "prepayment period closed");
        Ok(())
    }
}

/// Arms (or moves) the close timer of a period at its end.
pub async fn arm_close(
    conn: &mut PgConnection,
    period: PeriodId,
    ends_at: chrono::DateTime<chrono::Utc>,
    correlation: CorrelationId,
) -> Result<(), HandlerError> {
    // Re-arming a fired timer would close again: harmless (closing is
    // idempotent) but skipped when already fired at the same instant.
    let fired: Option<(
        Option<chrono::DateTime<chrono::Utc>>,
        chrono::DateTime<chrono::Utc>,
    )> = sqlx::query_as("SELECT fired_at, due_at FROM timers WHERE kind = $1 AND key = $2")
        .bind(ledger::CLOSE_TIMER)
        .bind(period.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    if fired.is_some_and(|(f, d)| f.is_some() && d == ends_at) {
        return Ok(());
    }
    vbp_bus::timers::schedule(
        conn,
        ledger::CLOSE_TIMER,
        &period.to_string(),
        ends_at,
        Some(correlation),
        &PeriodDue { period },
    )
    .await?;
    Ok(())
}
