//! Projections of the agreements service: the organisation directory,
//! periods and the supply list in force.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use vbp_contracts::agreements::{OrgRecord, PeriodId, SupplyItem};
use vbp_kernel::{NationalCode, OrgId, OrgKind, RegionCode};

use crate::domain::region_from_i32;

#[derive(Debug, Clone)]
pub struct OrgRow {
    pub id: OrgId,
    pub kind: OrgKind,
    pub name: String,
    pub region: RegionCode,
    pub is_manufacturer: bool,
    pub is_distributor: bool,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct PeriodRow {
    pub id: PeriodId,
    pub number: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub listing_armed: bool,
}

#[derive(Debug, Clone)]
pub struct ItemRow {
    pub national_code: NationalCode,
    pub manufacturer: OrgId,
}

/// Keeps the record with the highest revision; a stale or repeated one
/// changes nothing.
pub async fn upsert_org(
    conn: &mut PgConnection,
    r: &OrgRecord,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO orgs (id, kind, name, region, is_manufacturer, is_distributor, active, revision, updated_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (id) DO UPDATE SET kind = $2, name = $3, \
         region = $4, is_manufacturer = $5, is_distributor = $6, active = $7, revision = $8, updated_at = $9 \
         WHERE orgs.revision < $8",
    )
    .bind(r.org.as_uuid())
    .bind(r.kind.as_str())
    .bind(&r.name)
    .bind(r.region.as_u32() as i32)
    .bind(r.is_manufacturer || r.kind == OrgKind::Manufacturer)
    .bind(r.is_distributor || r.kind == OrgKind::Distributor)
    .bind(r.active)
    .bind(r.revision)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_org(conn: &mut PgConnection, id: OrgId) -> Result<Option<OrgRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, kind, name, region, is_manufacturer, is_distributor, active FROM orgs WHERE id = $1",
    )
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        let kind: String = r.try_get("kind")?;
        Ok(OrgRow {
            id: OrgId::from_uuid(r.try_get("id")?),
            kind: kind.parse().unwrap_or(OrgKind::Operator),
            name: r.try_get("name")?,
            region: region_from_i32(r.try_get("region")?),
            is_manufacturer: r.try_get("is_manufacturer")?,
            is_distributor: r.try_get("is_distributor")?,
            active: r.try_get("active")?,
        })
    })
    .transpose()
}

/// Inserts a period, or refreshes its bounds (they travel in both
/// `period.opened` and `supply_list.published`).
#[allow(clippy::too_many_arguments)]
pub async fn upsert_period(
    conn: &mut PgConnection,
    id: PeriodId,
    project: uuid::Uuid,
    project_code: &str,
    number: i32,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO periods (id, project, project_code, number, starts_at, ends_at) \
         VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (id) DO UPDATE SET starts_at = $5, ends_at = $6",
    )
    .bind(id.as_uuid())
    .bind(project)
    .bind(project_code)
    .bind(number)
    .bind(starts_at)
    .bind(ends_at)
    .execute(conn)
    .await?;
    Ok(())
}

fn period_of(r: &sqlx::postgres::PgRow) -> Result<PeriodRow, sqlx::Error> {
    Ok(PeriodRow {
        id: PeriodId::from_uuid(r.try_get("id")?),
        number: r.try_get("number")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
        listing_armed: r.try_get("listing_armed")?,
    })
}

pub async fn get_period(
    conn: &mut PgConnection,
    id: PeriodId,
) -> Result<Option<PeriodRow>, sqlx::Error> {
    sqlx::query("SELECT id, number, starts_at, ends_at, listing_armed FROM periods WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(period_of)
        .transpose()
}

/// Locks the period row (serialises listing checks and change decisions of
/// one period).
pub async fn lock_period(
    conn: &mut PgConnection,
    id: PeriodId,
) -> Result<Option<PeriodRow>, sqlx::Error> {
    sqlx::query(
        "SELECT id, number, starts_at, ends_at, listing_armed FROM periods WHERE id = $1 FOR UPDATE",
    )
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(period_of)
    .transpose()
}

pub async fn set_listing_armed(conn: &mut PgConnection, id: PeriodId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE periods SET listing_armed = true WHERE id = $1")
        .bind(id.as_uuid())
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces the period's list when `revision` is newer than the one held;
/// returns whether it did (a duplicate or stale event leaves it as is).
pub async fn replace_supply_list(
    conn: &mut PgConnection,
    period: PeriodId,
    revision: i32,
    items: &[SupplyItem],
    published_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO supply_lists (period, revision, published_at) VALUES ($1,$2,$3) \
         ON CONFLICT (period) DO UPDATE SET revision = $2, published_at = $3 \
         WHERE supply_lists.revision < $2",
    )
    .bind(period.as_uuid())
    .bind(revision)
    .bind(published_at)
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
    let names: Vec<&str> = items.iter().map(|i| i.generic_name.as_str()).collect();
    let specs: Vec<&str> = items.iter().map(|i| i.spec_model.as_str()).collect();
    sqlx::query(
        "INSERT INTO supply_items (period, national_code, manufacturer, generic_name, spec_model) \
         SELECT $1, * FROM unnest($2::text[], $3::uuid[], $4::text[], $5::text[]) \
         ON CONFLICT (period, national_code) DO NOTHING",
    )
    .bind(period.as_uuid())
    .bind(&codes)
    .bind(&makers)
    .bind(&names)
    .bind(&specs)
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
        "SELECT national_code, manufacturer FROM supply_items WHERE period = $1 AND national_code = $2",
    )
    .bind(period.as_uuid())
    .bind(code.as_str())
    .fetch_optional(conn)
    .await?;
    row.map(|r| item_of(&r)).transpose()
}

fn item_of(r: &sqlx::postgres::PgRow) -> Result<ItemRow, sqlx::Error> {
    let code: String = r.try_get("national_code")?;
    Ok(ItemRow {
        national_code: NationalCode::parse(&code).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        manufacturer: OrgId::from_uuid(r.try_get("manufacturer")?),
    })
}

/// Supply-list products of the period with no relation delivering at `at`.
pub async fn items_without_active_relation(
    conn: &mut PgConnection,
    period: PeriodId,
    at: DateTime<Utc>,
) -> Result<Vec<ItemRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT i.national_code, i.manufacturer FROM supply_items i WHERE i.period = $1 \
         AND NOT EXISTS (SELECT 1 FROM relations r WHERE r.period = i.period \
           AND r.national_code = i.national_code AND r.state IN ('active', 'ended') \
           AND r.valid_from <= $2 AND (r.valid_to IS NULL OR r.valid_to > $2)) \
         ORDER BY i.national_code",
    )
    .bind(period.as_uuid())
    .bind(at)
    .fetch_all(conn)
    .await?;
    rows.iter().map(item_of).collect()
}

pub async fn count_supply_items(
    conn: &mut PgConnection,
    period: PeriodId,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM supply_items WHERE period = $1")
        .bind(period.as_uuid())
        .fetch_one(conn)
        .await
}

/// Periods whose listing timers were never armed.
pub async fn periods_without_listing_timers(
    conn: &mut PgConnection,
) -> Result<Vec<PeriodId>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM periods WHERE NOT listing_armed ORDER BY id")
            .fetch_all(conn)
            .await?;
    Ok(ids.into_iter().map(PeriodId::from_uuid).collect())
}
