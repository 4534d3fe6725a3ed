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
/// redelivered events, `accepted_lines` drops re-emitted ones. A batch is
/// counted set-wise: its lines in one statement, then one upsert per table
/// of the sums per key.
pub struct Acceptances;

#[async_trait]
impl Handler for Acceptances {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        self.handle_batch(conn, &[msg]).await
    }

    async fn handle_batch(
        &self,
        conn: &mut PgConnection,
        msgs: &[&Incoming],
    ) -> Result<(), HandlerError> {
        let mut periods = std::collections::HashMap::new();
        let mut lines = Vec::new();
        for msg in msgs {
            let ev: ReceiptAccepted = msg.json()?;
            let period = match periods.get(&ev.period) {
                Some(p) => p,
                None => {
                    let p = store::get_period(conn, ev.period).await?.ok_or_else(|| {
                        HandlerError::permanent(format!(
                            "period {} is not an agreement period of this deployment",
                            ev.period
                        ))
                    })?;
                    periods.entry(ev.period).or_insert(p)
                }
            };
            if ev.accepted_at < period.starts_at || ev.accepted_at >= period.ends_at {
                tracing::warn!(acceptance = %ev.acceptance, period = %ev.period,
                    "acceptance outside its period's bounds; counted for the period the orders service named");
            }
            let month = {
                let d = beijing_date(ev.accepted_at);
                d.with_day0(0).unwrap_or(d)
            };
            for line in &ev.lines {
                if line.accepted_quantity < 0 || line.rejected_quantity < 0 {
                    return Err(HandlerError::permanent(format!(
                        "line {}: quantities must not be negative",
                        line.line_no
                    )));
                }
                lines.push(store::AcceptedRow {
                    acceptance: ev.acceptance.as_uuid(),
                    line_no: line.line_no,
                    period: ev.period,
                    hospital: ev.hospital,
                    hospital_region: ev.hospital_region,
                    code: line.national_code.clone(),
                    accepted: line.accepted_quantity,
                    rejected: line.rejected_quantity,
                    amount: line.amount_fen,
                    accepted_at: ev.accepted_at,
                    month,
                });
            }
        }
        store::apply_accepted_lines(conn, &lines).await?;
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
