//! Detection from delivery data. An order refused by its distributor, or
//! not shipped within `delivery_delay_days` of placement, is checked, as of
//! the order's placement (so events replayed or arriving late judge the
//! business time, not the processing time), for:
//!
//! - stop after volume: before the order the hospital had accepted its
//!   agreed volume of an ordered product, and the period was running
//!   (suppliers must keep delivering at the winning price until it ends);
//! - selective delivery: within `selective_window_days` either side of the
//!   placement the same distributor shipped to at least
//!   `selective_min_served` other hospitals of the same area (the city of
//!   the hospital's region, which takes in its remote counties) while this
//!   hospital got no shipment from it.
//!
//! Each finding is recorded once per kind, distributor, hospital, period
//! and product, with the ids of the events it rests on; when configured it
//! is filed as an issue (by timer, over the issues service's RPC) and as a
//! credit record.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;
use vbp_bus::timers::{DueTimer, TimerHandler};
use vbp_bus::{CallError, Context, HandlerError};
use vbp_contracts::agreements::PeriodId;
use vbp_contracts::issues::{FileIssue, IssueFile, IssueType};
use vbp_contracts::supervision::*;
use vbp_kernel::{Actor, CorrelationId, NationalCode, OrgId, OrgKind};

use crate::api::{FILE_ISSUE_TIMER, Shared, Svc, enum_str};
use crate::credit::{self, NewRecord};
use crate::domain::region_from_i32;

/// Payload of the delay timer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Delayed {
    pub order: uuid::Uuid,
}

/// Payload of the issue-filing timer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ToFile {
    pub finding: uuid::Uuid,
}

#[derive(sqlx::FromRow)]
struct Order {
    id: uuid::Uuid,
    period: uuid::Uuid,
    hospital: uuid::Uuid,
    hospital_region: i32,
    distributor: uuid::Uuid,
    codes: Vec<String>,
    quantity: i64,
    placed_at: DateTime<Utc>,
    placed_event: uuid::Uuid,
    responded_at: Option<DateTime<Utc>>,
    response_event: Option<uuid::Uuid>,
}

fn transient(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::transient(e.to_string())
}

/// Checks one refused (`cause = "refused"`) or delayed order.
pub async fn check_order(
    conn: &mut PgConnection,
    svc: &Svc,
    ctx: &Context,
    order: uuid::Uuid,
    cause: &str,
) -> Result<(), HandlerError> {
    let now = svc.clock.now();
    let o: Option<Order> = sqlx::query_as(
        "SELECT id, period, hospital, hospital_region, distributor, codes, quantity, placed_at, \
         placed_event, responded_at, response_event FROM orders WHERE id = $1",
    )
    .bind(order)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(o) = o else { return Ok(()) };
    let mut sources = vec![o.placed_event];
    sources.extend(o.response_event);
    let occurred_at = o.responded_at.unwrap_or(now).min(now);
    let what = if cause == "refused" {
        format!("order {} placed {} was refused", o.id, o.placed_at)
    } else {
        format!(
            "order {} placed {} was not shipped within {} days",
            o.id, o.placed_at, svc.settings.delivery_delay_days
        )
    };

    let running: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM periods WHERE id = $1 AND starts_at <= $2 AND $2 < ends_at)",
    )
    .bind(o.period)
    .bind(o.placed_at)
    .fetch_one(&mut *conn)
    .await?;
    if running {
        for code in &o.codes {
            let (agreed, accepted): (i64, i64) = sqlx::query_as(
                "SELECT \
                 (SELECT coalesce(sum(quantity), 0)::bigint FROM agreed_lines \
                   WHERE period = $1 AND hospital = $2 AND national_code = $3), \
                 (SELECT coalesce(sum(quantity), 0)::bigint FROM accepted_lines \
                   WHERE period = $1 AND hospital = $2 AND national_code = $3 \
                   AND accepted_at <= $4)",
            )
            .bind(o.period)
            .bind(o.hospital)
            .bind(code)
            .bind(o.placed_at)
            .fetch_one(&mut *conn)
            .await?;
            if agreed > 0 && accepted >= agreed {
                let detail = format!(
                    "{what} after the hospital had accepted {accepted} of its agreed {agreed} \
                     of {code}, while the period runs"
                );
                record(
                    conn,
                    svc,
                    ctx,
                    &o,
                    FindingKind::StopAfterVolume,
                    code,
                    &detail,
                    sources.clone(),
                    occurred_at,
                )
                .await?;
            }
        }
    }

    let window = Duration::days(i64::from(svc.settings.selective_window_days));
    let (since, until) = (o.placed_at - window, o.placed_at + window);
    let served: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "SELECT DISTINCT ON (hospital) hospital, shipped_event FROM orders \
         WHERE distributor = $1 AND hospital_region / 100 = $2 / 100 AND hospital <> $3 \
         AND shipped_at BETWEEN $4 AND $5 AND shipped_event IS NOT NULL \
         ORDER BY hospital, shipped_at",
    )
    .bind(o.distributor)
    .bind(o.hospital_region)
    .bind(o.hospital)
    .bind(since)
    .bind(until)
    .fetch_all(&mut *conn)
    .await?;
    let own_served: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM orders WHERE distributor = $1 AND hospital = $2 \
         AND shipped_at BETWEEN $3 AND $4)",
    )
    .bind(o.distributor)
    .bind(o.hospital)
    .bind(since)
    .bind(until)
    .fetch_one(&mut *conn)
    .await?;
    if served.len() as i64 >= svc.settings.selective_min_served && !own_served {
        let code = o.codes.first().cloned().unwrap_or_default();
        let detail = format!(
            "{what}, while within {} days of it the distributor shipped to {} other \
             hospital(s) of area {} and to this hospital (region {}) not at all",
            svc.settings.selective_window_days,
            served.len(),
            region_from_i32(o.hospital_region / 100 * 100),
            region_from_i32(o.hospital_region)
        );
        let mut s = sources.clone();
        s.extend(served.iter().map(|(_, e)| *e));
        record(
            conn,
            svc,
            ctx,
            &o,
            FindingKind::SelectiveDelivery,
            &code,
            &detail,
            s,
            occurred_at,
        )
        .await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn record(
    conn: &mut PgConnection,
    svc: &Svc,
    ctx: &Context,
    o: &Order,
    kind: FindingKind,
    code: &str,
    detail: &str,
    sources: Vec<uuid::Uuid>,
    occurred_at: DateTime<Utc>,
) -> Result<(), HandlerError> {
    let now = svc.clock.now();
    let id = FindingId::new();
    let inserted: Option<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO findings (id, kind, enterprise, hospital, hospital_region, period, \
         national_code, quantity, detail, source_events, occurred_at, detected_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(id.as_uuid())
    .bind(enum_str(kind))
    .bind(o.distributor)
    .bind(o.hospital)
    .bind(o.hospital_region)
    .bind(o.period)
    .bind(code)
    .bind(o.quantity.max(1))
    .bind(detail)
    .bind(&sources)
    .bind(occurred_at)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_none() {
        return Ok(());
    }
    svc.outbox
        .append(
            conn,
            ctx,
            &FindingDetected {
                finding: id,
                kind,
                enterprise: OrgId::from_uuid(o.distributor),
                hospital: OrgId::from_uuid(o.hospital),
                hospital_region: region_from_i32(o.hospital_region),
                period: PeriodId::from_uuid(o.period),
                national_code: NationalCode::parse(code).ok(),
                detail: detail.to_owned(),
                source_events: crate::api::event_ids(&sources),
                detected_at: now,
            },
        )
        .await
        .map_err(transient)?;
    if svc.settings.file_issues {
        vbp_bus::timers::schedule(
            conn,
            FILE_ISSUE_TIMER,
            &id.to_string(),
            now,
            Some(ctx.correlation),
            &ToFile {
                finding: id.as_uuid(),
            },
        )
        .await
        .map_err(transient)?;
    }
    if svc.settings.file_credit_records {
        let credit_kind = match kind {
            FindingKind::SelectiveDelivery => CreditKind::SelectiveDelivery,
            FindingKind::StopAfterVolume => CreditKind::StoppingAfterAgreedVolume,
        };
        let filed = credit::insert(
            conn,
            svc,
            ctx,
            "system:supervision-detection",
            NewRecord {
                enterprise: OrgId::from_uuid(o.distributor),
                kind: credit_kind,
                origin: CreditOrigin::Detection,
                region: region_from_i32(o.hospital_region),
                description: detail,
                source_events: sources,
                finding: Some(id.as_uuid()),
            },
        )
        .await;
        match filed {
            Ok(record) => {
                sqlx::query("UPDATE findings SET credit_record = $2 WHERE id = $1")
                    .bind(id.as_uuid())
                    .bind(record)
                    .execute(&mut *conn)
                    .await?;
            }
            // The finding stands on its own; a bureau can still file.
            Err(e) => tracing::warn!(finding = %id, error = %e, "no credit record for finding"),
        }
    }
    Ok(())
}

/// An order still neither shipped nor refused at its delay deadline.
pub struct DeliveryDue(pub Shared);

#[async_trait]
impl TimerHandler for DeliveryDue {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        let d: Delayed = timer.payload()?;
        let pending: Option<(Option<DateTime<Utc>>, Option<String>)> =
            sqlx::query_as("SELECT shipped_at, response FROM orders WHERE id = $1")
                .bind(d.order)
                .fetch_optional(&mut *conn)
                .await?;
        let Some((None, response)) = pending else {
            return Ok(());
        };
        if response.as_deref() == Some("refused") {
            return Ok(());
        }
        let ctx = Context::with_correlation(
            timer.correlation.unwrap_or_else(CorrelationId::new),
            Some(Actor::system("supervision-delivery-deadline")),
        );
        check_order(conn, &self.0, &ctx, d.order, "delayed").await
    }
}

async fn refuse(conn: &mut PgConnection, id: uuid::Uuid, why: String) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE findings SET issue_error = $2 WHERE id = $1")
        .bind(id)
        .bind(why)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Files a finding as an issue on the affected hospital's behalf. A refusal
/// by the issues service (e.g. the product is on no supply list it knows)
/// is kept on the finding; an unreachable service is retried.
pub struct FileFinding(pub Shared);

#[async_trait]
impl TimerHandler for FileFinding {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        let svc = &self.0;
        let f: ToFile = timer.payload()?;
        #[allow(clippy::type_complexity)]
        let row: Option<(
            String,
            uuid::Uuid,
            i32,
            String,
            i64,
            String,
            DateTime<Utc>,
            Option<uuid::Uuid>,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT kind, hospital, hospital_region, national_code, quantity, detail, occurred_at, \
             issue, issue_error FROM findings WHERE id = $1 FOR UPDATE",
        )
        .bind(f.finding)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((kind, hospital, region, code, quantity, detail, occurred_at, issue, error)) = row
        else {
            return Ok(());
        };
        if issue.is_some() || error.is_some() {
            return Ok(());
        }
        let Ok(national_code) = NationalCode::parse(&code) else {
            refuse(
                conn,
                f.finding,
                format!("no product code to file an issue for ({code:?})"),
            )
            .await?;
            return Ok(());
        };
        let issue_type = if kind == enum_str(FindingKind::StopAfterVolume) {
            IssueType::StoppedAfterAgreedVolume
        } else {
            IssueType::SelectiveDelivery
        };
        // Filed for the hospital that was not served, so the issue is routed
        // from it; the subject shows the filing was automatic.
        let on_behalf = Actor {
            sub: format!("system:supervision-detection:{}", f.finding),
            org: OrgId::from_uuid(hospital),
            org_kind: OrgKind::Hospital,
            region: region_from_i32(region),
            roles: Vec::new(),
        };
        let ctx = Context::with_correlation(
            timer.correlation.unwrap_or_else(CorrelationId::new),
            Some(on_behalf),
        );
        let req = FileIssue {
            national_code,
            quantity: quantity.clamp(1, vbp_contracts::ingest::MAX_LINE_QUANTITY),
            issue_type,
            occurred_at,
            impact_scope: "本院 (detected by supervision from delivery data)".to_owned(),
            statement: detail,
            statement_sealed: false,
            evidence: Vec::new(),
        };
        match svc.rpc.call::<IssueFile>(&ctx, &req).await {
            Ok(view) => {
                let now = svc.clock.now();
                sqlx::query("UPDATE findings SET issue = $2 WHERE id = $1")
                    .bind(f.finding)
                    .bind(view.issue.as_uuid())
                    .execute(&mut *conn)
                    .await?;
                svc.outbox
                    .append(
                        conn,
                        &ctx,
                        &FindingIssueFiled {
                            finding: FindingId::from_uuid(f.finding),
                            issue: view.issue,
                            filed_at: now,
                        },
                    )
                    .await
                    .map_err(transient)?;
                Ok(())
            }
            Err(CallError::Remote(e)) if e.body().status < 500 => {
                refuse(
                    conn,
                    f.finding,
                    format!("{}: {}", e.body().code, e.body().message),
                )
                .await?;
                Ok(())
            }
            Err(e) => Err(transient(format!("filing the issue: {e}"))),
        }
    }
}
