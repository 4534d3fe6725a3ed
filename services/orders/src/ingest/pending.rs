//! Messages that arrive before their predecessor (a shipment before its
//! order, a receipt before its shipment) wait in `ingest_pending`, and so do
//! messages of a later stage of the same order (see [`super::apply::stage`]),
//! so an order's messages apply in the order of the business however they
//! arrive. The queue is drained in the transaction that applies the
//! predecessor. A message still waiting when
//! `orders.ingest_pending_timeout_secs` has passed is rejected with the
//! reason by a durable timer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use vbp_bus::timers::{DueTimer, TimerHandler};
use vbp_bus::{Context, HandlerError};

use super::unit::Unit;
use super::{Arrived, Ingest, Step};
use crate::store::ingest::{self as store, Outcome, Pending};

pub const PENDING_TIMER: &str = "ingest_pending";

/// The expiry timer's payload.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Key {
    pub integrator: String,
    pub external_id: String,
}

fn arrived(p: &Pending) -> Arrived<'_> {
    Arrived {
        integrator: &p.integrator,
        external_id: &p.external_id,
        event: &p.event,
        payload: &p.payload,
        meta: &p.meta,
    }
}

/// Applies the waiting messages of an order by stage, then arrival; those
/// still lacking their predecessor stay.
pub(super) async fn drain(
    ingest: &Ingest,
    conn: &mut PgConnection,
    unit: &mut Unit,
    integrator: &str,
    order_external_id: &str,
    now: DateTime<Utc>,
) -> Result<(), HandlerError> {
    for p in unit.waiting(conn, integrator, order_external_id).await? {
        settle_waiting(ingest, conn, unit, &p, now).await?;
    }
    Ok(())
}

/// Applies or rejects a waiting message; false when it still waits.
async fn settle_waiting(
    ingest: &Ingest,
    conn: &mut PgConnection,
    unit: &mut Unit,
    p: &Pending,
    now: DateTime<Utc>,
) -> Result<bool, HandlerError> {
    let a = arrived(p);
    let ctx = Context::caused_by(&p.meta);
    match ingest.attempt(conn, unit, &a, &ctx, now).await? {
        Ok(Step::Applied { .. }) => {
            tracing::info!(integrator = %p.integrator, external_id = %p.external_id,
                "waiting ingest message applied");
            unit.unpark(p);
            unit.outcome(Outcome {
                integrator: p.integrator.clone(),
                external_id: p.external_id.clone(),
                outcome: "applied",
                field: None,
                reason: None,
                at: now,
            });
            Ok(true)
        }
        Ok(Step::Waits {
            waits_for, field, ..
        }) => {
            if waits_for != p.waits_for {
                unit.rewait(p, &waits_for, &field);
            }
            Ok(false)
        }
        Err((field, reason)) => {
            ingest.reject(unit, &a, &ctx, field, reason, now)?;
            unit.unpark(p);
            Ok(true)
        }
    }
}

/// Rejects every waiting message of an order that was itself rejected.
pub(super) async fn reject_queue(
    ingest: &Ingest,
    conn: &mut PgConnection,
    unit: &mut Unit,
    integrator: &str,
    order_external_id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), HandlerError> {
    for p in unit.waiting(conn, integrator, order_external_id).await? {
        let ctx = Context::caused_by(&p.meta);
        ingest.reject(
            unit,
            &arrived(&p),
            &ctx,
            Some("order_external_id".into()),
            reason.to_owned(),
            now,
        )?;
        unit.unpark(&p);
    }
    Ok(())
}

/// Fires when a message has waited `ingest_pending_timeout_secs`.
pub struct Expired(pub Ingest);

#[async_trait]
impl TimerHandler for Expired {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        let key: Key = timer.payload()?;
        let ingest = &self.0;
        let now = ingest.svc.clock.now();
        let Some(p) = store::pending(conn, &key.integrator, &key.external_id).await? else {
            return Ok(());
        };
        store::lock_orders(conn, &[(&p.integrator, &p.order_external_id)]).await?;
        let Some(p) = store::pending(conn, &key.integrator, &key.external_id).await? else {
            return Ok(());
        };
        let unit = &mut Unit::default();
        let (integrator, order) = (p.integrator.clone(), p.order_external_id.clone());
        // The predecessor may have come another way (e.g. a shipment
        // dispatched through the API): a last try before giving up.
        if !settle_waiting(ingest, conn, unit, &p, now).await? {
            let p = unit
                .waiting(conn, &integrator, &order)
                .await?
                .into_iter()
                .find(|w| w.external_id == p.external_id)
                .unwrap_or(p);
            let ctx = Context::caused_by(&p.meta);
            ingest.reject(
                unit,
                &arrived(&p),
                &ctx,
                Some(p.waits_field.clone()),
                format!(
                    "waited from {} until {} for {}, which did not arrive",
                    p.parked_at, p.expires_at, p.waits_for
                ),
                now,
            )?;
            unit.unpark(&p);
        }
        drain(ingest, conn, unit, &integrator, &order, now).await?;
        std::mem::take(unit)
            .flush(conn, &ingest.svc.outbox, now)
            .await
    }
}
