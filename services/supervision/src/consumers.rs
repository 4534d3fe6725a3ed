//! Projections, each inside the inbox transaction: the org directory,
//! periods, agreed volumes and flags from the agreements service; orders,
//! responses, shipments, acceptances, settlements and offline purchases
//! from the orders service; repeated-issue signals from issue reporting.
//! Refusals and (by timer) delays of orders are checked for violations.

use async_trait::async_trait;
use chrono::Duration;
use sqlx::PgConnection;
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

use crate::api::{DELAY_TIMER, Shared, enum_str};
use crate::credit::{self, NewRecord};
use crate::detect::{self, Delayed};
use crate::domain::region_from_i32;

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
        let svc = &self.0;
        let t = msg.meta.event_type.as_str();
        let event_id = msg.meta.id.as_uuid();
        if t == OrderPlaced::event_type() {
            let ev: OrderPlaced = msg.json()?;
            let codes: Vec<String> = ev
                .lines
                .iter()
                .map(|l| l.national_code.as_str().to_owned())
                .collect();
            let quantity: i64 = ev.lines.iter().map(|l| l.quantity).sum();
            let done = sqlx::query(
                "INSERT INTO orders (id, period, hospital, hospital_region, distributor, codes, \
                 quantity, placed_at, placed_event) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(ev.order.as_uuid())
            .bind(ev.period.as_uuid())
            .bind(ev.hospital.as_uuid())
            .bind(ev.hospital_region.as_u32() as i32)
            .bind(ev.distributor.as_uuid())
            .bind(&codes)
            .bind(quantity)
            .bind(ev.placed_at)
            .bind(event_id)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 1 {
                // An order placed long ago (replay, an integrator's backlog)
                // is judged only after its shipment has had time to arrive
                // on the stream too.
                let due = (ev.placed_at
                    + Duration::days(i64::from(svc.settings.delivery_delay_days)))
                .max(svc.clock.now() + Duration::hours(PROJECTION_GRACE_HOURS));
                vbp_bus::timers::schedule(
                    conn,
                    DELAY_TIMER,
                    &ev.order.to_string(),
                    due,
                    Some(msg.meta.correlation),
                    &Delayed {
                        order: ev.order.as_uuid(),
                    },
                )
                .await
                .map_err(transient)?;
            }
        } else if t == OrderResponded::event_type() {
            let ev: OrderResponded = msg.json()?;
            let done = sqlx::query(
                "UPDATE orders SET response = $2, responded_at = $3, response_event = $4, \
                 response_reason = $5 WHERE id = $1 AND response IS NULL",
            )
            .bind(ev.order.as_uuid())
            .bind(enum_str(ev.response))
            .bind(ev.responded_at)
            .bind(event_id)
            .bind(&ev.reason)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                let known: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1)")
                        .bind(ev.order.as_uuid())
                        .fetch_one(&mut *conn)
                        .await?;
                if !known {
                    // The placement is on its way (one stream, so rare).
                    return Err(HandlerError::transient(format!(
                        "order {} not projected yet",
                        ev.order
                    )));
                }
                return Ok(());
            }
            if ev.response == OrderResponse::Refused {
                vbp_bus::timers::cancel(conn, DELAY_TIMER, &ev.order.to_string())
                    .await
                    .map_err(transient)?;
                detect::check_order(conn, svc, &msg.context(), ev.order.as_uuid(), "refused")
                    .await?;
            }
        } else if t == ShipmentDispatched::event_type() {
            let ev: ShipmentDispatched = msg.json()?;
            sqlx::query(
                "UPDATE orders SET shipped_at = $2, shipped_event = $3 WHERE id = $1 \
                 AND shipped_at IS NULL",
            )
            .bind(ev.order.as_uuid())
            .bind(ev.shipped_at)
            .bind(event_id)
            .execute(&mut *conn)
            .await?;
            vbp_bus::timers::cancel(conn, DELAY_TIMER, &ev.order.to_string())
                .await
                .map_err(transient)?;
        } else if t == ReceiptAccepted::event_type() {
            let ev: ReceiptAccepted = msg.json()?;
            for l in &ev.lines {
                sqlx::query(
                    "INSERT INTO accepted_lines (acceptance, line_no, event_id, period, hospital, \
                     hospital_region, distributor, national_code, quantity, amount_fen, \
                     accepted_at, payment_due_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(ev.acceptance.as_uuid())
                .bind(l.line_no)
                .bind(event_id)
                .bind(ev.period.as_uuid())
                .bind(ev.hospital.as_uuid())
                .bind(ev.hospital_region.as_u32() as i32)
                .bind(ev.distributor.as_uuid())
                .bind(l.national_code.as_str())
                .bind(l.accepted_quantity)
                .bind(l.amount_fen.fen())
                .bind(ev.accepted_at)
                .bind(ev.payment_due_at)
                .execute(&mut *conn)
                .await?;
            }
        } else if t == SettlementPaid::event_type() {
            let ev: SettlementPaid = msg.json()?;
            sqlx::query(
                "INSERT INTO settlements (id, hospital, hospital_region, acceptance, amount_fen, \
                 due_at, paid_at, on_time) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING",
            )
            .bind(ev.settlement.as_uuid())
            .bind(ev.hospital.as_uuid())
            .bind(ev.hospital_region.as_u32() as i32)
            .bind(ev.acceptance.map(|a| a.as_uuid()))
            .bind(ev.amount_fen.fen())
            .bind(ev.due_at)
            .bind(ev.paid_at)
            .bind(ev.on_time)
            .execute(&mut *conn)
            .await?;
        } else if t == OfflinePurchaseDeclared::event_type() {
            let ev: OfflinePurchaseDeclared = msg.json()?;
            sqlx::query(
                "INSERT INTO offline_purchases (event_id, hospital, hospital_region, month, \
                 amount_fen) VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
            )
            .bind(event_id)
            .bind(ev.hospital.as_uuid())
            .bind(ev.hospital_region.as_u32() as i32)
            .bind(ev.month)
            .bind(ev.amount_fen.fen())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
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
