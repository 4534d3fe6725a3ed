//! Projections of the agreements service (directory, periods, supply lists
//! with winning prices) and of the distribution service (relations over
//! time).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use vbp_contracts::agreements::{OrgRecord, PeriodId, SupplyItem};
use vbp_kernel::{Money, NationalCode, OrgId, OrgKind, RegionCode};

use crate::domain::region_from_i32;

#[derive(Debug, Clone)]
pub struct OrgRow {
    pub id: OrgId,
    pub kind: OrgKind,
    pub region: RegionCode,
    pub acts_for: Vec<OrgId>,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct PeriodRow {
    pub id: PeriodId,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ItemRow {
    pub manufacturer: OrgId,
    pub winning_price: Money,
}

/// Keeps the highest revision.
pub async fn upsert_org(
    conn: &mut PgConnection,
    r: &OrgRecord,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let acts_for: Vec<uuid::Uuid> = r.acts_for.iter().map(|o| o.as_uuid()).collect();
    sqlx::query(
        "INSERT INTO orgs (id, kind, name, region, acts_for, active, revision, updated_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (id) DO UPDATE SET kind = $2, name = $3, \
         region = $4, acts_for = $5, active = $6, revision = $7, updated_at = $8 \
         WHERE orgs.revision < $7",
    )
    .bind(r.org.as_uuid())
    .bind(r.kind.as_str())
    .bind(&r.name)
    .bind(r.region.as_u32() as i32)
    .bind(&acts_for)
    .bind(r.active)
    .bind(r.revision)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_org(conn: &mut PgConnection, id: OrgId) -> Result<Option<OrgRow>, sqlx::Error> {
    Ok(get_orgs(conn, &[id]).await?.remove(&id))
}

/// The directory entries of `ids` that exist.
pub async fn get_orgs(
    conn: &mut PgConnection,
    ids: &[OrgId],
) -> Result<HashMap<OrgId, OrgRow>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|o| o.as_uuid()).collect();
    let rows =
        sqlx::query("SELECT id, kind, region, acts_for, active FROM orgs WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(conn)
            .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            let acts: Vec<uuid::Uuid> = r.try_get("acts_for")?;
            let id = OrgId::from_uuid(r.try_get("id")?);
            Ok((
                id,
                OrgRow {
                    id,
                    kind: kind.parse().unwrap_or(OrgKind::Operator),
                    region: region_from_i32(r.try_get("region")?),
                    acts_for: acts.into_iter().map(OrgId::from_uuid).collect(),
                    active: r.try_get("active")?,
                },
            ))
        })
        .collect()
}

pub async fn upsert_period(
    conn: &mut PgConnection,
    id: PeriodId,
    number: i32,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO periods (id, number, starts_at, ends_at) VALUES ($1,$2,$3,$4) \
         ON CONFLICT (id) DO UPDATE SET starts_at = $3, ends_at = $4",
    )
    .bind(id.as_uuid())
    .bind(number)
    .bind(starts_at)
    .bind(ends_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The period (with a published supply list) running at `at`.
pub async fn period_at(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
) -> Result<Option<PeriodRow>, sqlx::Error> {
    Ok(period_in(&listed_periods(conn).await?, at).cloned())
}

/// The periods with a published supply list.
pub async fn listed_periods(conn: &mut PgConnection) -> Result<Vec<PeriodRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.id, p.starts_at, p.ends_at FROM periods p \
         WHERE EXISTS (SELECT 1 FROM supply_lists l WHERE l.period = p.id)",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PeriodRow {
                id: PeriodId::from_uuid(r.try_get("id")?),
                starts_at: r.try_get("starts_at")?,
                ends_at: r.try_get("ends_at")?,
            })
        })
        .collect()
}

/// The period running at `at` (the latest to start, should two overlap).
pub fn period_in(periods: &[PeriodRow], at: DateTime<Utc>) -> Option<&PeriodRow> {
    periods
        .iter()
        .filter(|p| p.starts_at <= at && at < p.ends_at)
        .max_by_key(|p| p.starts_at)
}

/// Replaces the period's list when `revision` is newer; false otherwise.
pub async fn replace_supply_list(
    conn: &mut PgConnection,
    period: PeriodId,
    revision: i32,
    items: &[SupplyItem],
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO supply_lists (period, revision, published_at) VALUES ($1,$2,$3) \
         ON CONFLICT (period) DO UPDATE SET revision = $2, published_at = $3 \
         WHERE supply_lists.revision < $2",
    )
    .bind(period.as_uuid())
    .bind(revision)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM supply_items WHERE period = $1")
        .bind(period.as_uuid())
        .execute(&mut *conn)
        .await?;
    let codes: Vec<&str> = items.iter().map(|i| i.national_code.as_str()).collect();
    let makers: Vec<uuid::Uuid> = items.iter().map(|i| i.manufacturer.as_uuid()).collect();
    let prices: Vec<i64> = items.iter().map(|i| i.winning_price_fen.fen()).collect();
    sqlx::query(
        "INSERT INTO supply_items (period, national_code, manufacturer, winning_price_fen) \
         SELECT $1, * FROM unnest($2::text[], $3::uuid[], $4::bigint[]) ON CONFLICT DO NOTHING",
    )
    .bind(period.as_uuid())
    .bind(&codes)
    .bind(&makers)
    .bind(&prices)
    .execute(conn)
    .await?;
    Ok(true)
}

pub async fn supply_item(
    conn: &mut PgConnection,
    period: PeriodId,
    code: &NationalCode,
) -> Result<Option<ItemRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT manufacturer, winning_price_fen FROM supply_items WHERE period = $1 AND national_code = $2",
    )
    .bind(period.as_uuid())
    .bind(code.as_str())
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(ItemRow {
            manufacturer: OrgId::from_uuid(r.try_get("manufacturer")?),
            winning_price: Money::from_fen(r.try_get("winning_price_fen")?),
        })
    })
    .transpose()
}

pub struct RelationRow<'a> {
    pub id: uuid::Uuid,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub national_code: &'a NationalCode,
    pub distributor: OrgId,
    pub valid_from: DateTime<Utc>,
    pub valid_to: Option<DateTime<Utc>>,
}

/// An activation or an end; an end is kept once known.
pub async fn upsert_relation(
    conn: &mut PgConnection,
    r: &RelationRow<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO relations (id, period, hospital, national_code, distributor, valid_from, valid_to) \
         VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (id) DO UPDATE SET \
         valid_to = coalesce(EXCLUDED.valid_to, relations.valid_to)",
    )
    .bind(r.id)
    .bind(r.period.as_uuid())
    .bind(r.hospital.as_uuid())
    .bind(r.national_code.as_str())
    .bind(r.distributor.as_uuid())
    .bind(r.valid_from)
    .bind(r.valid_to)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the distributor delivers the product to the hospital at `at`.
pub async fn relation_active_at(
    conn: &mut PgConnection,
    hospital: OrgId,
    code: &NationalCode,
    distributor: OrgId,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM relations WHERE hospital = $1 AND national_code = $2 \
         AND distributor = $3 AND valid_from <= $4 AND (valid_to IS NULL OR $4 < valid_to))",
    )
    .bind(hospital.as_uuid())
    .bind(code.as_str())
    .bind(distributor.as_uuid())
    .bind(at)
    .fetch_one(conn)
    .await
}
