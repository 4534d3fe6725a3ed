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

use super::{Arrived, Batch, Ingest, Step};
use crate::store::ingest::{self as store, Pending};

pub const PENDING_TIMER: &str = "ingest_pending";

#[derive(Debug, Serialize, Deserialize)]
struct Key {
    integrator: String,
    external_id: String,
}

fn timer_key(integrator: &str, external_id: &str) -> String {
    format!("{integrator}/{external_id}")
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

pub(super) async fn park(
    conn: &mut PgConnection,
    batch: &mut Batch,
    p: Pending,
) -> Result<(), HandlerError> {
    batch.parked(&p.integrator, &p.order_external_id);
    tracing::info!(integrator = %p.integrator, external_id = %p.external_id,
        waits_for = %p.waits_for, "ingest message waits for its predecessor");
    store::park(conn, &p).await?;
    store::set_outcome(conn, &p.integrator, &p.external_id, "pending", p.parked_at).await?;
    vbp_bus::timers::schedule(
        conn,
        PENDING_TIMER,
        &timer_key(&p.integrator, &p.external_id),
        p.expires_at,
        Some(p.meta.correlation),
        &Key {
            integrator: p.integrator.clone(),
            external_id: p.external_id.clone(),
        },
    )
    .await?;
    Ok(())
}

/// Takes a message out of the queue with its outcome.
async fn unpark(
    conn: &mut PgConnection,
    p: &Pending,
    applied: bool,
    now: DateTime<Utc>,
) -> Result<(), HandlerError> {
    store::unpark(conn, &p.integrator, &p.external_id).await?;
    vbp_bus::timers::cancel(
        conn,
        PENDING_TIMER,
        &timer_key(&p.integrator, &p.external_id),
    )
    .await?;
    if applied {
        store::set_outcome(conn, &p.integrator, &p.external_id, "applied", now).await?;
    }
    Ok(())
}

/// Applies the waiting messages of an order by stage, then arrival; those
/// still lacking their predecessor stay.
pub(super) async fn drain(
    ingest: &Ingest,
    conn: &mut PgConnection,
    batch: &mut Batch,
    integrator: &str,
    order_external_id: &str,
    now: DateTime<Utc>,
) -> Result<(), HandlerError> {
    if !batch.may_wait(integrator, order_external_id) {
        return Ok(());
    }
    for p in store::queue_of(conn, integrator, order_external_id).await? {
        settle_waiting(ingest, conn, batch, &p, now).await?;
    }
    Ok(())
}

/// Applies or rejects a waiting message; false when it still waits.
async fn settle_waiting(
    ingest: &Ingest,
    conn: &mut PgConnection,
    batch: &mut Batch,
    p: &Pending,
    now: DateTime<Utc>,
) -> Result<bool, HandlerError> {
    let a = arrived(p);
    let ctx = Context::caused_by(&p.meta);
    match ingest.attempt(conn, batch, &a, &ctx, now).await? {
        Ok(Step::Applied { .. }) => {
            tracing::info!(integrator = %p.integrator, external_id = %p.external_id,
                "waiting ingest message applied");
            unpark(conn, p, true, now).await?;
            Ok(true)
        }
        Ok(Step::Waits {
            waits_for, field, ..
        }) => {
            if waits_for != p.waits_for {
                store::rewait(conn, &p.integrator, &p.external_id, &waits_for, &field).await?;
            }
            Ok(false)
        }
        Err((field, reason)) => {
            ingest.reject(conn, &a, &ctx, field, reason, now).await?;
            unpark(conn, p, false, now).await?;
            Ok(true)
        }
    }
}

/// Rejects every waiting message of an order that was itself rejected.
pub(super) async fn reject_queue(
    ingest: &Ingest,
    conn: &mut PgConnection,
    batch: &Batch,
    integrator: &str,
    order_external_id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), HandlerError> {
    if !batch.may_wait(integrator, order_external_id) {
        return Ok(());
    }
    for p in store::queue_of(conn, integrator, order_external_id).await? {
        let ctx = Context::caused_by(&p.meta);
        ingest
            .reject(
                conn,
                &arrived(&p),
                &ctx,
                Some("order_external_id".into()),
                reason.to_owned(),
                now,
            )
            .await?;
        unpark(conn, &p, false, now).await?;
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
        let batch = &mut Batch::unknown();
        let Some(p) = store::pending(conn, &key.integrator, &key.external_id).await? else {
            return Ok(());
        };
        store::lock_orders(conn, &[(&p.integrator, &p.order_external_id)]).await?;
        let Some(p) = store::pending(conn, &key.integrator, &key.external_id).await? else {
            return Ok(());
        };
        // The predecessor may have come another way (e.g. a shipment
        // dispatched through the API): a last try before giving up.
        if settle_waiting(ingest, conn, batch, &p, now).await? {
            return drain(
                ingest,
                conn,
                batch,
                &p.integrator,
                &p.order_external_id,
                now,
            )
            .await;
        }
        let p = store::pending(conn, &key.integrator, &key.external_id)
            .await?
            .unwrap_or(p);
        let ctx = Context::caused_by(&p.meta);
        ingest
            .reject(
                conn,
                &arrived(&p),
                &ctx,
                Some(p.waits_field.clone()),
                format!(
                    "waited from {} until {} for {}, which did not arrive",
                    p.parked_at, p.expires_at, p.waits_for
                ),
                now,
            )
            .await?;
        store::unpark(conn, &p.integrator, &p.external_id).await?;
        drain(
            ingest,
            conn,
            batch,
            &p.integrator,
            &p.order_external_id,
            now,
        )
        .await
    }
}
