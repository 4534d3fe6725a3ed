//! Acceptances (the payable items), invoices, settlements, declared offline
//! purchases, integrator ingest outcomes and rates.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Row};
use vbp_contracts::agreements::PeriodId;
use vbp_contracts::orders::{
    AcceptanceId, AcceptanceView, AcceptedLine, IngestRejected, InvoiceId, OfflineSettlementView,
    OrderId, ReceiptAccepted, SettlementChannel, SettlementId,
};
use vbp_kernel::{Money, OrgId, RegionCode};

use super::orders::source_str;
use crate::domain::region_from_i32;

/// What settlement needs of an acceptance.
#[derive(Debug, Clone)]
pub struct AcceptanceRow {
    pub view: AcceptanceView,
    pub period: PeriodId,
    pub hospital_region: RegionCode,
}

pub async fn insert_acceptance(
    conn: &mut PgConnection,
    ev: &ReceiptAccepted,
    due_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO acceptances (id, order_id, shipment, period, hospital, hospital_region, distributor, \
         source, amount_fen, accepted_at, due_at, lines) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
    )
    .bind(ev.acceptance.as_uuid())
    .bind(ev.order.as_uuid())
    .bind(ev.shipment.map(|s| s.as_uuid()))
    .bind(ev.period.as_uuid())
    .bind(ev.hospital.as_uuid())
    .bind(ev.hospital_region.as_u32() as i32)
    .bind(ev.distributor.as_uuid())
    .bind(source_str(ev.source))
    .bind(ev.amount_fen.fen())
    .bind(ev.accepted_at)
    .bind(due_at)
    .bind(sqlx::types::Json(&ev.lines))
    .execute(conn)
    .await?;
    Ok(())
}

const ACCEPTANCE_COLUMNS: &str = "id, order_id, period, hospital, hospital_region, distributor, \
     amount_fen, accepted_at, due_at, invoice, paid_fen, paid_at, overdue, lines";

fn acceptance_row(r: &sqlx::postgres::PgRow) -> Result<AcceptanceRow, sqlx::Error> {
    let lines: sqlx::types::Json<Vec<AcceptedLine>> = r.try_get("lines")?;
    Ok(AcceptanceRow {
        period: PeriodId::from_uuid(r.try_get("period")?),
        hospital_region: region_from_i32(r.try_get("hospital_region")?),
        view: AcceptanceView {
            acceptance: AcceptanceId::from_uuid(r.try_get("id")?),
            order: OrderId::from_uuid(r.try_get("order_id")?),
            hospital: OrgId::from_uuid(r.try_get("hospital")?),
            distributor: OrgId::from_uuid(r.try_get("distributor")?),
            lines: lines.0,
            amount_fen: Money::from_fen(r.try_get("amount_fen")?),
            accepted_at: r.try_get("accepted_at")?,
            due_at: r.try_get("due_at")?,
            invoice: r
                .try_get::<Option<uuid::Uuid>, _>("invoice")?
                .map(InvoiceId::from_uuid),
            paid_fen: Money::from_fen(r.try_get("paid_fen")?),
            paid_at: r.try_get("paid_at")?,
            overdue: r.try_get("overdue")?,
        },
    })
}

pub async fn get_acceptance(
    conn: &mut PgConnection,
    id: AcceptanceId,
    lock: bool,
) -> Result<Option<AcceptanceRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {ACCEPTANCE_COLUMNS} FROM acceptances WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(acceptance_row)
        .transpose()
}

/// The acceptances of `ids` that exist, locked for update in id order, so
/// that runs over overlapping sets wait for each other instead of deadlocking.
pub async fn lock_acceptances(
    conn: &mut PgConnection,
    ids: &[uuid::Uuid],
) -> Result<Vec<AcceptanceRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {ACCEPTANCE_COLUMNS} FROM acceptances WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(conn)
        .await?
        .iter()
        .map(acceptance_row)
        .collect()
}

/// An invoice to record against an acceptance.
#[derive(Debug, Clone)]
pub struct NewInvoice<'a> {
    pub id: InvoiceId,
    pub acceptance: AcceptanceId,
    pub code: &'a str,
    pub number: &'a str,
    pub amount: Money,
    pub tax: Money,
    pub issued_on: NaiveDate,
}

/// Records invoices and points their acceptances at them.
pub async fn insert_invoices(
    conn: &mut PgConnection,
    rows: &[NewInvoice<'_>],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id.as_uuid()).collect();
    let acceptances: Vec<uuid::Uuid> = rows.iter().map(|r| r.acceptance.as_uuid()).collect();
    sqlx::query(
        "WITH i AS (INSERT INTO invoices (id, acceptance, invoice_code, invoice_number, amount_fen, \
         tax_fen, issued_on, recorded_at) \
         SELECT *, $8 FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], \
         $6::bigint[], $7::date[]) RETURNING id, acceptance) \
         UPDATE acceptances a SET invoice = i.id FROM i WHERE a.id = i.acceptance",
    )
    .bind(&ids)
    .bind(&acceptances)
    .bind(rows.iter().map(|r| r.code).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.number).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.amount.fen()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.tax.fen()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.issued_on).collect::<Vec<_>>())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which of `(code, number)` are already recorded.
pub async fn invoice_numbers_taken(
    conn: &mut PgConnection,
    numbers: &[(&str, &str)],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.invoice_code, i.invoice_number FROM invoices i \
         JOIN unnest($1::text[], $2::text[]) AS n(code, number) \
         ON i.invoice_code = n.code AND i.invoice_number = n.number",
    )
    .bind(numbers.iter().map(|n| n.0).collect::<Vec<_>>())
    .bind(numbers.iter().map(|n| n.1).collect::<Vec<_>>())
    .fetch_all(conn)
    .await
}

pub fn channel_str(c: SettlementChannel) -> &'static str {
    match c {
        SettlementChannel::Online => "online",
        SettlementChannel::Direct => "direct",
        SettlementChannel::Offline => "offline",
    }
}

/// A payment of (part of) an acceptance.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub id: SettlementId,
    pub acceptance: AcceptanceId,
    pub amount: Money,
    pub channel: SettlementChannel,
    /// Why an item moved to offline settlement.
    pub reason: Option<String>,
    pub paid_at: DateTime<Utc>,
    pub on_time: bool,
}

/// Records payments by `actor` of `org`, adds them to their acceptances, and
/// clears the overdue flag of an acceptance now paid in full by its
/// deadline: the deadline was kept, so a flag the timer raised while the
/// payment was being recorded after the fact no longer holds.
pub async fn insert_payments(
    conn: &mut PgConnection,
    rows: &[NewPayment],
    actor: &str,
    org: OrgId,
    recorded_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH s AS (INSERT INTO settlements (id, acceptance, amount_fen, channel, reason, paid_at, \
         on_time, actor, actor_org, recorded_at) \
         SELECT *, $8, $9, $10 FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], \
         $5::text[], $6::timestamptz[], $7::boolean[]) \
         RETURNING acceptance, amount_fen, paid_at, on_time) \
         UPDATE acceptances a SET paid_fen = a.paid_fen + s.amount_fen, \
         paid_on_time_fen = a.paid_on_time_fen + CASE WHEN s.on_time THEN s.amount_fen ELSE 0 END, \
         paid_at = CASE WHEN a.paid_fen + s.amount_fen >= a.amount_fen THEN s.paid_at ELSE a.paid_at END, \
         overdue = a.overdue AND a.paid_on_time_fen \
             + CASE WHEN s.on_time THEN s.amount_fen ELSE 0 END < a.amount_fen \
         FROM s WHERE a.id = s.acceptance",
    )
    .bind(rows.iter().map(|r| r.id.as_uuid()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.acceptance.as_uuid()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.amount.fen()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| channel_str(r.channel)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.reason.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.paid_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.on_time).collect::<Vec<_>>())
    .bind(actor)
    .bind(org.as_uuid())
    .bind(recorded_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which acceptances a list shows, beside the caller's scope.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptanceFilter {
    pub order: Option<OrderId>,
    pub hospital: Option<OrgId>,
    pub open_only: bool,
    pub overdue_only: bool,
    pub to_invoice: bool,
}

/// One page of the acceptances visible under `scope`, newest first, and how
/// many there are in all.
pub async fn list_acceptances(
    conn: &mut PgConnection,
    scope: &super::Scope,
    f: &AcceptanceFilter,
    (limit, offset): (i64, i64),
) -> Result<(Vec<AcceptanceView>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE ($1 = 'all' \
         OR ($1 = 'region' AND a.hospital_region BETWEEN $2 AND $3) \
         OR ($1 = 'hospital' AND a.hospital = $4) OR ($1 = 'distributor' AND a.distributor = $4)) \
         AND ($5::uuid IS NULL OR a.order_id = $5) AND ($6::uuid IS NULL OR a.hospital = $6) \
         AND (NOT $7 OR a.paid_fen < a.amount_fen) AND (NOT $8 OR a.overdue) \
         AND (NOT $9 OR a.invoice IS NULL)";
    let filtered = |sql: String| {
        scope
            .query(sql)
            .bind(f.order.map(|o| o.as_uuid()))
            .bind(f.hospital.map(|h| h.as_uuid()))
            .bind(f.open_only)
            .bind(f.overdue_only)
            .bind(f.to_invoice)
    };
    let rows = filtered(format!(
        "SELECT {ACCEPTANCE_COLUMNS} FROM acceptances a {WHERE} \
         ORDER BY a.accepted_at DESC, a.id DESC LIMIT $10 OFFSET $11"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let total = filtered(format!("SELECT count(*) FROM acceptances a {WHERE}"))
        .fetch_one(conn)
        .await?
        .try_get(0)?;
    let items = rows
        .iter()
        .map(|r| acceptance_row(r).map(|a| a.view))
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Flags an unpaid acceptance overdue; false when it was paid or already flagged.
pub async fn flag_overdue(
    conn: &mut PgConnection,
    id: AcceptanceId,
) -> Result<Option<AcceptanceRow>, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE acceptances SET overdue = true WHERE id = $1 AND NOT overdue AND paid_fen < amount_fen",
    )
    .bind(id.as_uuid())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    get_acceptance(conn, id, false).await
}

pub async fn insert_offline(
    conn: &mut PgConnection,
    hospital: OrgId,
    region: RegionCode,
    month: NaiveDate,
    code: Option<&str>,
    amount: Money,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO offline_purchases (hospital, hospital_region, month, national_code, amount_fen, declared_at) \
         VALUES ($1,$2,$3,$4,$5,$6)",
    )
    .bind(hospital.as_uuid())
    .bind(region.as_u32() as i32)
    .bind(month)
    .bind(code)
    .bind(amount.fen())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list_rejections(
    conn: &mut PgConnection,
    integrator: Option<&str>,
    (limit, offset): (i64, i64),
) -> Result<(Vec<IngestRejected>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE outcome = 'rejected' AND ($1::text IS NULL OR integrator = $1)";
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT integrator, external_id, event, field, reason, at FROM ingest_messages {WHERE} \
         ORDER BY at DESC, integrator, external_id, digest LIMIT $2 OFFSET $3"
    )))
    .bind(integrator)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let total = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM ingest_messages {WHERE}"
    )))
    .bind(integrator)
    .fetch_one(conn)
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(IngestRejected {
                integrator: r.try_get("integrator")?,
                event: r.try_get("event")?,
                external_id: r.try_get("external_id")?,
                field: r.try_get("field")?,
                reason: r
                    .try_get::<Option<String>, _>("reason")?
                    .unwrap_or_default(),
                rejected_at: r.try_get("at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((items, total))
}

/// Sums behind the rates: hospital filter `$1` (nullable), region range
/// `$2..=$3`, month `[$4, $5)`, month date `$6`.
#[derive(Debug, Clone, Default)]
pub struct RateSums {
    pub due: i64,
    pub settled: i64,
    pub on_time: i64,
    pub overdue: i64,
    pub online: i64,
    pub offline: i64,
    pub settled_offline: i64,
}

pub async fn rate_sums(
    conn: &mut PgConnection,
    hospital: Option<OrgId>,
    lo: i32,
    hi: i32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    month: NaiveDate,
) -> Result<RateSums, sqlx::Error> {
    let r = sqlx::query(
        "SELECT \
         (SELECT coalesce(sum(amount_fen), 0)::bigint FROM acceptances a WHERE ($1::uuid IS NULL OR a.hospital = $1) \
            AND a.hospital_region BETWEEN $2 AND $3 AND a.due_at > $4 AND a.due_at <= $5) AS due, \
         (SELECT coalesce(sum(paid_fen), 0)::bigint FROM acceptances a WHERE ($1::uuid IS NULL OR a.hospital = $1) \
            AND a.hospital_region BETWEEN $2 AND $3 AND a.due_at > $4 AND a.due_at <= $5) AS settled, \
         (SELECT coalesce(sum(paid_on_time_fen), 0)::bigint FROM acceptances a WHERE ($1::uuid IS NULL OR a.hospital = $1) \
            AND a.hospital_region BETWEEN $2 AND $3 AND a.due_at > $4 AND a.due_at <= $5) AS on_time, \
         (SELECT count(*) FROM acceptances a WHERE ($1::uuid IS NULL OR a.hospital = $1) \
            AND a.hospital_region BETWEEN $2 AND $3 AND a.due_at > $4 AND a.due_at <= $5 AND a.overdue) AS overdue, \
         (SELECT coalesce(sum(amount_fen), 0)::bigint FROM acceptances a WHERE ($1::uuid IS NULL OR a.hospital = $1) \
            AND a.hospital_region BETWEEN $2 AND $3 AND a.accepted_at >= $4 AND a.accepted_at < $5) AS online, \
         (SELECT coalesce(sum(amount_fen), 0)::bigint FROM offline_purchases o WHERE ($1::uuid IS NULL OR o.hospital = $1) \
            AND o.hospital_region BETWEEN $2 AND $3 AND o.month = $6) AS offline, \
         (SELECT coalesce(sum(s.amount_fen), 0)::bigint FROM settlements s JOIN acceptances a ON a.id = s.acceptance \
            WHERE ($1::uuid IS NULL OR a.hospital = $1) AND a.hospital_region BETWEEN $2 AND $3 \
            AND a.due_at > $4 AND a.due_at <= $5 AND s.channel = 'offline') AS settled_offline",
    )
    .bind(hospital.map(|h| h.as_uuid()))
    .bind(lo)
    .bind(hi)
    .bind(from)
    .bind(to)
    .bind(month)
    .fetch_one(conn)
    .await?;
    Ok(RateSums {
        due: r.try_get("due")?,
        settled: r.try_get("settled")?,
        on_time: r.try_get("on_time")?,
        overdue: r.try_get("overdue")?,
        online: r.try_get("online")?,
        offline: r.try_get("offline")?,
        settled_offline: r.try_get("settled_offline")?,
    })
}

/// Hospitals in `lo..=hi` with anything due, accepted or declared in the
/// month `[$3, $4)` / `$5`, by region then id.
pub async fn rate_hospitals(
    conn: &mut PgConnection,
    hospital: Option<OrgId>,
    lo: i32,
    hi: i32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    month: NaiveDate,
) -> Result<Vec<(OrgId, RegionCode, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT h.hospital, h.region, coalesce(g.name, '') AS name FROM ( \
           SELECT hospital, hospital_region AS region FROM acceptances WHERE hospital_region BETWEEN $2 AND $3 \
             AND ((due_at > $4 AND due_at <= $5) OR (accepted_at >= $4 AND accepted_at < $5)) \
           UNION SELECT hospital, hospital_region FROM offline_purchases WHERE hospital_region BETWEEN $2 AND $3 \
             AND month = $6) h LEFT JOIN orgs g ON g.id = h.hospital \
         WHERE ($1::uuid IS NULL OR h.hospital = $1) ORDER BY h.region, h.hospital",
    )
    .bind(hospital.map(|h| h.as_uuid()))
    .bind(lo)
    .bind(hi)
    .bind(from)
    .bind(to)
    .bind(month)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                OrgId::from_uuid(r.try_get("hospital")?),
                region_from_i32(r.try_get("region")?),
                r.try_get("name")?,
            ))
        })
        .collect()
}

/// Items moved to offline settlement under `scope` (see [`super::Scope`]),
/// newest first.
pub async fn list_offline_settlements(
    conn: &mut PgConnection,
    scope: &super::Scope,
    hospital: Option<OrgId>,
    lo: i32,
    hi: i32,
    (limit, offset): (i64, i64),
) -> Result<(Vec<OfflineSettlementView>, i64), sqlx::Error> {
    const FROM: &str = "FROM settlements s JOIN acceptances a ON a.id = s.acceptance \
         WHERE s.channel = 'offline' \
         AND ($1 = 'all' OR ($1 = 'region' AND a.hospital_region BETWEEN $2 AND $3) \
           OR ($1 = 'hospital' AND a.hospital = $4) OR ($1 = 'distributor' AND a.distributor = $4)) \
         AND ($5::uuid IS NULL OR a.hospital = $5) AND a.hospital_region BETWEEN $6 AND $7";
    let filtered = |sql: String| {
        scope
            .query(sql)
            .bind(hospital.map(|h| h.as_uuid()))
            .bind(lo)
            .bind(hi)
    };
    let rows = filtered(format!(
        "SELECT s.id, s.acceptance, a.order_id, a.hospital, a.hospital_region, a.distributor, \
         s.amount_fen, s.reason, s.actor, s.actor_org, s.paid_at, a.due_at, s.on_time {FROM} \
         ORDER BY s.paid_at DESC, s.id DESC LIMIT $8 OFFSET $9"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let total = filtered(format!("SELECT count(*) {FROM}"))
        .fetch_one(conn)
        .await?
        .try_get(0)?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(OfflineSettlementView {
                settlement: SettlementId::from_uuid(r.try_get("id")?),
                acceptance: AcceptanceId::from_uuid(r.try_get("acceptance")?),
                order: OrderId::from_uuid(r.try_get("order_id")?),
                hospital: OrgId::from_uuid(r.try_get("hospital")?),
                hospital_region: region_from_i32(r.try_get("hospital_region")?),
                distributor: OrgId::from_uuid(r.try_get("distributor")?),
                amount_fen: Money::from_fen(r.try_get("amount_fen")?),
                reason: r
                    .try_get::<Option<String>, _>("reason")?
                    .unwrap_or_default(),
                actor: r.try_get("actor")?,
                actor_org: OrgId::from_uuid(
                    r.try_get::<Option<uuid::Uuid>, _>("actor_org")?
                        .unwrap_or_default(),
                ),
                moved_at: r.try_get("paid_at")?,
                due_at: r.try_get("due_at")?,
                on_time: r.try_get("on_time")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((items, total))
}
