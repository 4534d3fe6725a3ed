//! Event handlers, each inside the inbox transaction: the agreements
//! service's periods and agreement versions drive calculation; the orders
//! service's paid settlements drive offsets.

use async_trait::async_trait;
use sqlx::PgConnection;
use vbp_bus::{Handler, HandlerError, Incoming};
use vbp_contracts::Event;
use vbp_contracts::agreements::{
    AgreementState, AgreementStateChanged, PeriodOpened, SupplyListPublished,
};
use vbp_contracts::orders::SettlementPaid;

use crate::api::Shared;
use crate::ledger::{self, Key};
use crate::store::{self, PeriodRow};
use crate::timers;

/// `agreements.period.opened`, `agreements.supply_list.published` (period
/// bounds) and `agreements.agreement.state_changed` (effective /
/// superseded versions).
pub struct Agreements(pub Shared);

async fn period(
    conn: &mut PgConnection,
    row: PeriodRow,
    msg: &Incoming,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), HandlerError> {
    if row.starts_at >= row.ends_at {
        return Err(HandlerError::permanent(format!(
            "period {}: starts_at must be before ends_at",
            row.id
        )));
    }
    store::upsert_period(conn, &row).await?;
    if row.ends_at <= now {
        // A period learned of after it ended is history being loaded: its
        // approvals and disbursements are still to be recorded, so closing
        // it at once would refuse them. It closes by `period_close`.
        tracing::info!(period = %row.id, ends_at = %row.ends_at,
            "period already ended when projected; left open until prepayment.period_close");
        return Ok(());
    }
    timers::arm_close(
        conn,
        vbp_contracts::agreements::PeriodId::from_uuid(row.id),
        row.ends_at,
        msg.meta.correlation,
    )
    .await
}

#[async_trait]
impl Handler for Agreements {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let t = msg.meta.event_type.as_str();
        if t == PeriodOpened::event_type() {
            let ev: PeriodOpened = msg.json()?;
            let row = PeriodRow {
                id: ev.period.as_uuid(),
                project: ev.project.as_uuid(),
                project_code: ev.project_code,
                number: ev.number,
                starts_at: ev.starts_at,
                ends_at: ev.ends_at,
            };
            period(conn, row, msg, self.0.clock.now()).await?;
        } else if t == SupplyListPublished::event_type() {
            let ev: SupplyListPublished = msg.json()?;
            let row = PeriodRow {
                id: ev.period.as_uuid(),
                project: ev.project.as_uuid(),
                project_code: ev.project_code,
                number: ev.period_number,
                starts_at: ev.starts_at,
                ends_at: ev.ends_at,
            };
            period(conn, row, msg, self.0.clock.now()).await?;
        } else if t == AgreementStateChanged::event_type() {
            let ev: AgreementStateChanged = msg.json()?;
            match ev.state {
                AgreementState::Effective => {}
                AgreementState::Superseded => {
                    // Only an amendment taking effect supersedes a version,
                    // and its `effective` event (same agreement, higher
                    // version) replaces this one and recalculates. Acting
                    // here would drop the amount in between and record a
                    // spurious clawback.
                    tracing::debug!(agreement = %ev.agreement, version = ev.version,
                        "superseded: left to the amending version's effective event");
                    return Ok(());
                }
                _ => return Ok(()),
            }
            if ev.amount_fen.is_negative() {
                return Err(HandlerError::permanent(format!(
                    "agreement {} v{}: amount_fen must not be negative",
                    ev.agreement, ev.version
                )));
            }
            let changed = store::apply_agreement(
                conn,
                ev.agreement,
                ev.version,
                false,
                ev.period,
                ev.project,
                ev.hospital,
                ev.hospital_region.as_u32() as i32,
                ev.amount_fen,
                ev.changed_at,
            )
            .await?;
            if !changed {
                tracing::debug!(agreement = %ev.agreement, version = ev.version,
                    "agreement version already held or older; ignored");
                return Ok(());
            }
            let cause = format!(
                "agreements.agreement.state_changed event {} (agreement {} v{} {})",
                msg.meta.id,
                ev.agreement,
                ev.version,
                ev.state.as_str()
            );
            let key = Key {
                hospital: ev.hospital,
                hospital_region: ev.hospital_region,
                project: ev.project,
                period: ev.period,
            };
            let now = self.0.clock.now();
            ledger::recalculate(conn, &self.0, &msg.context(), key, &cause, now).await?;
        }
        Ok(())
    }
}

/// `orders.settlement.paid` → offsets (冲抵).
pub struct Settlements(pub Shared);

#[async_trait]
impl Handler for Settlements {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        self.handle_batch(conn, &[msg]).await
    }

    /// A batch of payments in a few statements: the offsets of one ledger
    /// are folded in stream order, each from the balance the one before left.
    async fn handle_batch(
        &self,
        conn: &mut PgConnection,
        msgs: &[&Incoming],
    ) -> Result<(), HandlerError> {
        let mut paid = Vec::with_capacity(msgs.len());
        for msg in msgs {
            if msg.meta.event_type == SettlementPaid::event_type() {
                paid.push(ledger::Paid {
                    ctx: msg.context(),
                    event: msg.meta.id,
                    ev: msg.json()?,
                });
            }
        }
        if paid.is_empty() {
            return Ok(());
        }
        let now = self.0.clock.now();
        ledger::offset(conn, &self.0, &paid, now).await
    }
}
