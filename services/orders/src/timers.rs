//! The payment deadline of an acceptance: a durable timer armed in the
//! acceptance's transaction; firing flags an unpaid item overdue and emits
//! `orders.settlement.overdue`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use vbp_bus::timers::{DueTimer, TimerHandler};
use vbp_bus::{BusError, Context, HandlerError};
use vbp_contracts::orders::{AcceptanceId, SettlementOverdue};

use crate::api::Shared;
use crate::store;

pub const PAYMENT_DUE_TIMER: &str = "payment_due";

#[derive(Debug, Serialize, Deserialize)]
struct Due {
    acceptance: AcceptanceId,
}

pub async fn arm_payment_due(
    conn: &mut PgConnection,
    acceptance: AcceptanceId,
    due_at: DateTime<Utc>,
    ctx: &Context,
) -> Result<(), BusError> {
    vbp_bus::timers::schedule(
        conn,
        PAYMENT_DUE_TIMER,
        &acceptance.to_string(),
        due_at,
        Some(ctx.correlation),
        &Due { acceptance },
    )
    .await
}

/// The same timer as [`arm_payment_due`], for [`vbp_bus::timers::schedule_many`].
pub fn payment_due_timer(
    acceptance: AcceptanceId,
    due_at: DateTime<Utc>,
    ctx: &Context,
) -> Result<vbp_bus::timers::NewTimer, HandlerError> {
    Ok(vbp_bus::timers::NewTimer {
        key: acceptance.to_string(),
        due_at,
        correlation: Some(ctx.correlation),
        payload: serde_json::to_value(Due { acceptance })
            .map_err(|e| HandlerError::permanent(e.to_string()))?,
    })
}

pub struct PaymentDue(pub Shared);

#[async_trait]
impl TimerHandler for PaymentDue {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        let due: Due = timer.payload()?;
        let Some(acc) = store::flag_overdue(conn, due.acceptance).await? else {
            return Ok(());
        };
        let open = acc.view.amount_fen.fen() - acc.view.paid_fen.fen();
        let actor = Some(vbp_kernel::Actor::system("orders-payment-deadline"));
        let ctx = match timer.correlation {
            Some(c) => Context::with_correlation(c, actor),
            None => Context::new(actor),
        };
        self.0
            .outbox
            .append(
                conn,
                &ctx,
                &SettlementOverdue {
                    order: acc.view.order,
                    acceptance: acc.view.acceptance,
                    period: acc.period,
                    hospital: acc.view.hospital,
                    hospital_region: acc.hospital_region,
                    payee: acc.view.distributor,
                    amount_fen: vbp_kernel::Money::from_fen(open),
                    due_at: acc.view.due_at,
                    flagged_at: self.0.clock.now(),
                },
            )
            .await?;
        Ok(())
    }
}
