//! Event handlers: the orders service's acceptances feed progress; the
//! distribution service's relations feed the projection agreements check
//! distributors against. Each runs inside the inbox transaction.

use async_trait::async_trait;
use sqlx::PgConnection;
use vbp_bus::{Handler, HandlerError, Incoming};
use vbp_contracts::Event;
use vbp_contracts::distribution::{RelationActivated, RelationEnded};
use vbp_contracts::orders::ReceiptAccepted;
use vbp_kernel::beijing_date;

use crate::store;

/// `orders.receipt.accepted` → progress (per hospital × product × period and
/// per month). Counted once per (acceptance, line): the inbox drops
/// redelivered events, `accepted_lines` drops re-emitted ones.
pub struct Acceptances;

#[async_trait]
impl Handler for Acceptances {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let ev: ReceiptAccepted = msg.json()?;
        let Some(period) = store::get_period(conn, ev.period).await? else {
            return Err(HandlerError::permanent(format!(
                "period {} is not an agreement period of this deployment",
                ev.period
            )));
        };
        let month = {
            let d = beijing_date(ev.accepted_at);
            d.with_day0(0).unwrap_or(d)
        };
        if ev.accepted_at < period.starts_at || ev.accepted_at >= period.ends_at {
            tracing::warn!(acceptance = %ev.acceptance, period = %ev.period,
                "acceptance outside its period's bounds; counted for the period the orders service named");
        }
        for line in &ev.lines {
            if line.accepted_quantity < 0 || line.rejected_quantity < 0 {
                return Err(HandlerError::permanent(format!(
                    "line {}: quantities must not be negative",
                    line.line_no
                )));
            }
            store::apply_accepted_line(
                conn,
                ev.acceptance.as_uuid(),
                line.line_no,
                ev.period,
                ev.hospital,
                ev.hospital_region,
                &line.national_code,
                line.accepted_quantity,
                line.rejected_quantity,
                line.amount_fen,
                ev.accepted_at,
                month,
            )
            .await?;
        }
        Ok(())
    }
}

use chrono::Datelike;

/// `distribution.relation.activated` / `ended` → relations projection.
pub struct Relations;

#[async_trait]
impl Handler for Relations {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        if msg.meta.event_type == RelationActivated::event_type() {
            let ev: RelationActivated = msg.json()?;
            store::upsert_relation(
                conn,
                ev.relation.as_uuid(),
                ev.period,
                ev.hospital,
                &ev.national_code,
                ev.manufacturer,
                ev.distributor,
                ev.valid_from,
                ev.valid_to,
            )
            .await?;
        } else if msg.meta.event_type == RelationEnded::event_type() {
            let ev: RelationEnded = msg.json()?;
            store::upsert_relation(
                conn,
                ev.relation.as_uuid(),
                ev.period,
                ev.hospital,
                &ev.national_code,
                ev.manufacturer,
                ev.distributor,
                ev.valid_from,
                Some(ev.valid_to),
            )
            .await?;
        }
        Ok(())
    }
}
