//! Listing-rule states and remote-area marks.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use vbp_contracts::agreements::PeriodId;
use vbp_contracts::distribution::{ListingState, ListingView, RemoteAreaView};
use vbp_kernel::{NationalCode, OrgId};

use crate::domain::region_from_i32;

/// Flags a product at risk unless it already has a listing state; returns
/// whether it did.
pub async fn flag_at_risk(
    conn: &mut PgConnection,
    period: PeriodId,
    code: &NationalCode,
    manufacturer: OrgId,
    since: DateTime<Utc>,
    suspend_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO listings (period, national_code, manufacturer, state, since, suspend_at, flagged_at) \
         VALUES ($1,$2,$3,'at_risk',$4,$5,$6) ON CONFLICT (period, national_code) DO NOTHING",
    )
    .bind(period.as_uuid())
    .bind(code.as_str())
    .bind(manufacturer.as_uuid())
    .bind(since)
    .bind(suspend_at)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// At-risk products of the period, locked.
pub async fn at_risk(
    conn: &mut PgConnection,
    period: PeriodId,
) -> Result<Vec<ListingView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM listings WHERE period = $1 AND state = 'at_risk' ORDER BY national_code FOR UPDATE",
    )
    .bind(period.as_uuid())
    .fetch_all(conn)
    .await?;
    rows.iter().map(view_of).collect()
}

pub async fn set_listing_state(
    conn: &mut PgConnection,
    period: PeriodId,
    code: &NationalCode,
    state: ListingState,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE listings SET state = $3, \
         suspended_at = CASE WHEN $3 = 'suspended' THEN $4 ELSE suspended_at END, \
         cleared_at = CASE WHEN $3 = 'cleared' THEN $4 ELSE cleared_at END \
         WHERE period = $1 AND national_code = $2",
    )
    .bind(period.as_uuid())
    .bind(code.as_str())
    .bind(state.as_str())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A relation became active: an at-risk product is cleared.
pub async fn clear_at_risk(
    conn: &mut PgConnection,
    period: PeriodId,
    code: &NationalCode,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE listings SET state = 'cleared', cleared_at = $3 \
         WHERE period = $1 AND national_code = $2 AND state = 'at_risk'",
    )
    .bind(period.as_uuid())
    .bind(code.as_str())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

fn view_of(r: &sqlx::postgres::PgRow) -> Result<ListingView, sqlx::Error> {
    let code: String = r.try_get("national_code")?;
    let state: String = r.try_get("state")?;
    Ok(ListingView {
        period: PeriodId::from_uuid(r.try_get("period")?),
        national_code: NationalCode::parse(&code).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        manufacturer: OrgId::from_uuid(r.try_get("manufacturer")?),
        state: ListingState::parse(&state)
            .ok_or_else(|| sqlx::Error::Decode(format!("listing state {state}").into()))?,
        since: r.try_get("since")?,
        suspend_at: r.try_get("suspend_at")?,
        flagged_at: r.try_get("flagged_at")?,
        suspended_at: r.try_get("suspended_at")?,
        cleared_at: r.try_get("cleared_at")?,
    })
}

/// Listings, optionally only one manufacturer's.
pub async fn list_listings(
    conn: &mut PgConnection,
    manufacturer: Option<OrgId>,
    period: Option<PeriodId>,
    state: Option<ListingState>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<ListingView>, i64), sqlx::Error> {
    let filter = "($1::uuid IS NULL OR manufacturer = $1) AND ($2::uuid IS NULL OR period = $2) \
        AND ($3::text IS NULL OR state = $3)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM listings WHERE {filter}"
    )))
    .bind(manufacturer.map(|m| m.as_uuid()))
    .bind(period.map(|p| p.as_uuid()))
    .bind(state.map(|s| s.as_str()))
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM listings WHERE {filter} ORDER BY period, national_code LIMIT $4 OFFSET $5"
    )))
    .bind(manufacturer.map(|m| m.as_uuid()))
    .bind(period.map(|p| p.as_uuid()))
    .bind(state.map(|s| s.as_str()))
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok((rows.iter().map(view_of).collect::<Result<_, _>>()?, total))
}

/// Sets the current mark and appends it to the log.
pub async fn mark_remote(conn: &mut PgConnection, v: &RemoteAreaView) -> Result<(), sqlx::Error> {
    let region = v.region.as_u32() as i32;
    sqlx::query(
        "INSERT INTO remote_areas (region, remote, note, marked_by, marked_at) VALUES ($1,$2,$3,$4,$5) \
         ON CONFLICT (region) DO UPDATE SET remote = $2, note = $3, marked_by = $4, marked_at = $5",
    )
    .bind(region)
    .bind(v.remote)
    .bind(&v.note)
    .bind(v.marked_by.as_uuid())
    .bind(v.marked_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO remote_area_log (region, remote, note, marked_by, marked_at) VALUES ($1,$2,$3,$4,$5)",
    )
    .bind(region)
    .bind(v.remote)
    .bind(&v.note)
    .bind(v.marked_by.as_uuid())
    .bind(v.marked_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Current marks within `lo..=hi`.
pub async fn remote_areas(
    conn: &mut PgConnection,
    lo: i32,
    hi: i32,
) -> Result<Vec<RemoteAreaView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT region, remote, note, marked_by, marked_at FROM remote_areas \
         WHERE region BETWEEN $1 AND $2 ORDER BY region",
    )
    .bind(lo)
    .bind(hi)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RemoteAreaView {
                region: region_from_i32(r.try_get("region")?),
                remote: r.try_get("remote")?,
                note: r.try_get("note")?,
                marked_by: OrgId::from_uuid(r.try_get("marked_by")?),
                marked_at: r.try_get("marked_at")?,
            })
        })
        .collect()
}
