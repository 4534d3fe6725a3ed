//! Projections, each inside the inbox transaction: the org directory,
//! periods, agreed volumes and flags from the agreements service; orders,
//! responses, shipments, acceptances, settlements and offline purchases
//! from the orders service; repeated-issue signals from issue reporting.
//! Refusals and (by timer) delays of orders are checked for violations.

use async_trait::async_trait;
use chrono::Duration;
use sqlx::PgConnection;
use vbp_bus::timers::NewTimer;
use vbp_bus::{Handler, HandlerError, Incoming};
use vbp_contracts::Event;
use vbp_contracts::agreements::{
    AgreedVolumeSet, FlagRaised, OrgRegistered, OrgUpdated, PeriodOpened,
};
use vbp_contracts::issues::IssueRepeated;
use vbp_contracts::orders::{
    OfflinePurchaseDeclared, OrderPlaced, OrderResponded, OrderResponse, ReceiptAccepted,
    SettlementPaid, ShipmentDispatched,
};
use vbp_contracts::supervision::{CreditKind, CreditOrigin};
use vbp_kernel::EventId;

use crate::api::{DELAY_TIMER, Shared, enum_str};
use crate::credit::{self, NewRecord};
use crate::detect::{self, Delayed};
use crate::domain::region_from_i32;
use crate::projection;

/// How long after projecting an old order its delay is judged.
const PROJECTION_GRACE_HOURS: i64 = 1;

fn transient(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::transient(e.to_string())
}

/// `agreements.org.*`, `period.opened`, `agreed_volume.set`, `flag.raised`.
pub struct Agreements;

#[async_trait]
impl Handler for Agreements {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let t = msg.meta.event_type.as_str();
        if t == OrgRegistered::event_type() {
            let ev: OrgRegistered = msg.json()?;
            vbp_platform::directory::upsert_org(conn, &ev.record).await?;
        } else if t == OrgUpdated::event_type() {
            let ev: OrgUpdated = msg.json()?;
            vbp_platform::directory::upsert_org(conn, &ev.record).await?;
        } else if t == PeriodOpened::event_type() {
            let ev: PeriodOpened = msg.json()?;
            sqlx::query(
                "INSERT INTO periods (id, project_code, number, starts_at, ends_at) \
                 VALUES ($1,$2,$3,$4,$5) ON CONFLICT (id) DO NOTHING",
            )
            .bind(ev.period.as_uuid())
            .bind(&ev.project_code)
            .bind(ev.number)
            .bind(ev.starts_at)
            .bind(ev.ends_at)
            .execute(&mut *conn)
            .await?;
        } else if t == AgreedVolumeSet::event_type() {
            let ev: AgreedVolumeSet = msg.json()?;
            let held: Option<i32> = sqlx::query_scalar(
                "SELECT max(revision) FROM agreed_lines WHERE period = $1 AND hospital = $2 \
                 AND product_group = $3",
            )
            .bind(ev.period.as_uuid())
            .bind(ev.hospital.as_uuid())
            .bind(&ev.product_group)
            .fetch_one(&mut *conn)
            .await?;
            if held.is_some_and(|r| r >= ev.revision) {
                return Ok(());
            }
            // The whole group replaces any earlier revision.
            sqlx::query(
                "DELETE FROM agreed_lines WHERE period = $1 AND hospital = $2 AND product_group = $3",
            )
            .bind(ev.period.as_uuid())
            .bind(ev.hospital.as_uuid())
            .bind(&ev.product_group)
            .execute(&mut *conn)
            .await?;
            for l in &ev.lines {
                sqlx::query(
                    "INSERT INTO agreed_lines (period, hospital, hospital_region, product_group, \
                     national_code, quantity, amount_fen, revision) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) \
                     ON CONFLICT (period, hospital, product_group, national_code) DO UPDATE SET \
                     quantity = agreed_lines.quantity + EXCLUDED.quantity, \
                     amount_fen = agreed_lines.amount_fen + EXCLUDED.amount_fen",
                )
                .bind(ev.period.as_uuid())
                .bind(ev.hospital.as_uuid())
                .bind(ev.hospital_region.as_u32() as i32)
                .bind(&ev.product_group)
                .bind(l.national_code.as_str())
                .bind(l.quantity)
                .bind(l.amount_fen.fen())
                .bind(ev.revision)
                .execute(&mut *conn)
                .await?;
            }
        } else if t == FlagRaised::event_type() {
            let ev: FlagRaised = msg.json()?;
            sqlx::query(
                "INSERT INTO flags (event_id, period, hospital, hospital_region, kind, detail, \
                 raised_at) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING",
            )
            .bind(msg.meta.id.as_uuid())
            .bind(ev.period.as_uuid())
            .bind(ev.hospital.as_uuid())
            .bind(ev.hospital_region.as_u32() as i32)
            .bind(ev.kind.as_str())
            .bind(&ev.detail)
            .bind(ev.raised_at)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// `orders.order.placed|responded`, `shipment.dispatched`,
/// `receipt.accepted`, `settlement.paid`, `offline_purchase.declared`.
pub struct Orders(pub Shared);

#[async_trait]
impl Handler for Orders {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        self.handle_batch(conn, &[msg]).await
    }

    /// A statement per kind of event; a refusal on its own, in stream order:
    /// what came before it is written first, since finding a selective
    /// refusal reads the distributor's other orders.
    async fn handle_batch(
        &self,
        conn: &mut PgConnection,
        msgs: &[&Incoming],
    ) -> Result<(), HandlerError> {
        let mut pending = Pending::default();
        for &msg in msgs {
            let t = msg.meta.event_type.as_str();
            if t == OrderPlaced::event_type() {
                pending.placed.push((msg, msg.json::<OrderPlaced>()?));
            } else if t == OrderResponded::event_type() {
                let ev: OrderResponded = msg.json()?;
                if ev.response == OrderResponse::Refused {
                    self.flush(conn, std::mem::take(&mut pending)).await?;
                    self.refused(conn, msg, ev).await?;
                } else {
                    pending.responded.push((msg.meta.id, ev));
                }
            } else if t == ShipmentDispatched::event_type() {
                pending
                    .shipped
                    .push((msg.meta.id, msg.json::<ShipmentDispatched>()?));
            } else if t == ReceiptAccepted::event_type() {
                pending
                    .accepted
                    .push((msg.meta.id, msg.json::<ReceiptAccepted>()?));
            } else if t == SettlementPaid::event_type() {
                pending.paid.push(msg.json::<SettlementPaid>()?);
            } else if t == OfflinePurchaseDeclared::event_type() {
                pending
                    .offline
                    .push((msg.meta.id, msg.json::<OfflinePurchaseDeclared>()?));
            }
        }
        self.flush(conn, pending).await
    }
}

/// Projections gathered from a stretch of a batch.
#[derive(Default)]
struct Pending<'m> {
    placed: Vec<(&'m Incoming, OrderPlaced)>,
    responded: Vec<(EventId, OrderResponded)>,
    shipped: Vec<(EventId, ShipmentDispatched)>,
    accepted: Vec<(EventId, ReceiptAccepted)>,
    paid: Vec<SettlementPaid>,
    offline: Vec<(EventId, OfflinePurchaseDeclared)>,
}

impl Orders {
    /// Writes a stretch of projections, kind by kind in the order an order
    /// goes through them, so an order placed and shipped in one stretch
    /// has its delay timer set and then cancelled.
    async fn flush(&self, conn: &mut PgConnection, p: Pending<'_>) -> Result<(), HandlerError> {
        let svc = &self.0;
        if !p.placed.is_empty() {
            let rows = p.placed.iter().map(|(m, ev)| (m.meta.id, ev));
            let new: std::collections::HashSet<uuid::Uuid> = projection::insert_orders(conn, rows)
                .await?
                .into_iter()
                .collect();
            // An order placed long ago (replay, an integrator's backlog) is
            // judged only after its shipment has had time to arrive on the
            // stream too.
            let grace = svc.clock.now() + Duration::hours(PROJECTION_GRACE_HOURS);
            let delay = Duration::days(i64::from(svc.settings.delivery_delay_days));
            let timers: Vec<NewTimer> = p
                .placed
                .iter()
                .filter(|(_, ev)| new.contains(&ev.order.as_uuid()))
                .map(|(m, ev)| NewTimer {
                    key: ev.order.to_string(),
                    due_at: (ev.placed_at + delay).max(grace),
                    correlation: Some(m.meta.correlation),
                    payload: serde_json::json!(Delayed {
                        order: ev.order.as_uuid()
                    }),
                })
                .collect();
            vbp_bus::timers::schedule_many(conn, DELAY_TIMER, &timers)
                .await
                .map_err(transient)?;
        }
        if !p.responded.is_empty() {
            let found = projection::record_responses(conn, &p.responded).await?;
            not_projected(&found)?;
        }
        if !p.shipped.is_empty() {
            projection::mark_shipped(conn, &p.shipped).await?;
            let keys: Vec<String> = p
                .shipped
                .iter()
                .map(|(_, ev)| ev.order.to_string())
                .collect();
            vbp_bus::timers::cancel_many(conn, DELAY_TIMER, &keys)
                .await
                .map_err(transient)?;
        }
        if !p.accepted.is_empty() {
            projection::insert_accepted_lines(conn, &p.accepted).await?;
        }
        if !p.paid.is_empty() {
            projection::insert_settlements(conn, &p.paid).await?;
        }
        if !p.offline.is_empty() {
            projection::insert_offline_purchases(conn, &p.offline).await?;
        }
        Ok(())
    }

    /// A refusal, recorded and checked for selective delivery.
    async fn refused(
        &self,
        conn: &mut PgConnection,
        msg: &Incoming,
        ev: OrderResponded,
    ) -> Result<(), HandlerError> {
        let order = ev.order;
        let found = projection::record_responses(conn, &[(msg.meta.id, ev)]).await?;
        not_projected(&found)?;
        if found.recorded.is_empty() {
            return Ok(());
        }
        vbp_bus::timers::cancel(conn, DELAY_TIMER, &order.to_string())
            .await
            .map_err(transient)?;
        detect::check_order(conn, &self.0, &msg.context(), order.as_uuid(), "refused").await
    }
}

/// Responses to orders not projected yet wait for their placement (one
/// stream, so rare).
fn not_projected(found: &projection::Responses) -> Result<(), HandlerError> {
    match found.unknown.first() {
        Some(order) => Err(HandlerError::transient(format!(
            "order {order} not projected yet"
        ))),
        None => Ok(()),
    }
}

/// `issues.issue.repeated`: the same enterprise and issue type again and
/// again becomes a credit record (one open record per enterprise and type).
pub struct Issues(pub Shared);

#[async_trait]
impl Handler for Issues {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let svc = &self.0;
        if msg.meta.event_type != IssueRepeated::event_type() || !svc.settings.file_credit_records {
            return Ok(());
        }
        let ev: IssueRepeated = msg.json()?;
        let signal = format!("repeated:{}:{}", ev.enterprise, enum_str(ev.issue_type));
        let open: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM credit_signals s JOIN credit_records c ON c.id = s.record \
             WHERE s.signal = $1 AND c.state = 'open')",
        )
        .bind(&signal)
        .fetch_one(&mut *conn)
        .await?;
        if open {
            return Ok(());
        }
        let region: i32 = sqlx::query_scalar("SELECT region FROM orgs WHERE id = $1")
            .bind(ev.enterprise.as_uuid())
            .fetch_optional(&mut *conn)
            .await?
            .unwrap_or(0);
        let description = format!(
            "{} issues of type {} in {} days: {}",
            ev.count,
            enum_str(ev.issue_type),
            ev.window_days,
            ev.issues
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let sources = vec![msg.meta.id.as_uuid()];
        let id = credit::insert(
            conn,
            svc,
            &msg.context(),
            "system:supervision-repeated-issues",
            NewRecord {
                enterprise: ev.enterprise,
                kind: CreditKind::RepeatedIssues,
                origin: CreditOrigin::Detection,
                region: region_from_i32(region),
                description: &description,
                source_events: sources,
                finding: None,
            },
        )
        .await
        .map_err(|e| HandlerError::permanent(e.to_string()))?;
        sqlx::query(
            "INSERT INTO credit_signals (signal, record) VALUES ($1, $2) \
             ON CONFLICT (signal) DO UPDATE SET record = EXCLUDED.record",
        )
        .bind(&signal)
        .bind(id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
