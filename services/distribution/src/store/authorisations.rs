//! Authorisations (配送授权) of distributors by manufacturers.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use vbp_contracts::agreements::PeriodId;
use vbp_contracts::distribution::{AuthorisationId, AuthorisationState, AuthorisationView};
use vbp_kernel::{NationalCode, OrgId, RegionCode};

use super::Scope;
use crate::domain::region_from_i32;

const COLUMNS: &str = "a.id, a.period, a.manufacturer, coalesce(m.name, '') AS manufacturer_name, \
    a.distributor, coalesce(d.name, '') AS distributor_name, a.products, a.areas, a.state, a.reason, \
    a.granted_at, a.decided_at, a.revoked_at";

const FROM: &str = "authorisations a LEFT JOIN orgs m ON m.id = a.manufacturer \
    LEFT JOIN orgs d ON d.id = a.distributor";

/// Rows visible under scope `($1..$4)`. Hospitals see confirmed
/// authorisations covering their region; bureaus those with an area
/// overlapping their jurisdiction.
const SCOPE: &str = "($1 = 'all' \
    OR ($1 IN ('region', 'hospital') AND EXISTS (SELECT 1 FROM unnest(a.areas) ar \
        WHERE ar <= $3 AND region_hi(ar) >= $2) AND ($1 = 'region' OR a.state = 'confirmed')) \
    OR ($1 = 'manufacturer' AND a.manufacturer = $4) \
    OR ($1 = 'distributor' AND a.distributor = $4))";

fn view_of(r: &sqlx::postgres::PgRow) -> Result<AuthorisationView, sqlx::Error> {
    let products: Vec<String> = r.try_get("products")?;
    let areas: Vec<i32> = r.try_get("areas")?;
    let state: String = r.try_get("state")?;
    Ok(AuthorisationView {
        authorisation: AuthorisationId::from_uuid(r.try_get("id")?),
        period: PeriodId::from_uuid(r.try_get("period")?),
        manufacturer: OrgId::from_uuid(r.try_get("manufacturer")?),
        manufacturer_name: r.try_get("manufacturer_name")?,
        distributor: OrgId::from_uuid(r.try_get("distributor")?),
        distributor_name: r.try_get("distributor_name")?,
        products: products
            .iter()
            .map(|c| NationalCode::parse(c).map_err(|e| sqlx::Error::Decode(Box::new(e))))
            .collect::<Result<_, _>>()?,
        areas: areas.into_iter().map(region_from_i32).collect(),
        state: AuthorisationState::parse(&state)
            .ok_or_else(|| sqlx::Error::Decode(format!("authorisation state {state}").into()))?,
        reason: r.try_get("reason")?,
        granted_at: r.try_get("granted_at")?,
        decided_at: r.try_get("decided_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_authorisation(
    conn: &mut PgConnection,
    id: AuthorisationId,
    period: PeriodId,
    manufacturer: OrgId,
    distributor: OrgId,
    products: &[NationalCode],
    areas: &[RegionCode],
    granted_by: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let products: Vec<&str> = products.iter().map(|p| p.as_str()).collect();
    let areas: Vec<i32> = areas.iter().map(|a| a.as_u32() as i32).collect();
    sqlx::query(
        "INSERT INTO authorisations (id, period, manufacturer, distributor, products, areas, state, \
         granted_by, granted_at) VALUES ($1,$2,$3,$4,$5,$6,'pending',$7,$8)",
    )
    .bind(id.as_uuid())
    .bind(period.as_uuid())
    .bind(manufacturer.as_uuid())
    .bind(distributor.as_uuid())
    .bind(&products)
    .bind(&areas)
    .bind(granted_by)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_authorisation(
    conn: &mut PgConnection,
    id: AuthorisationId,
    lock: bool,
) -> Result<Option<AuthorisationView>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE a.id = $1{}",
        if lock { " FOR UPDATE OF a" } else { "" }
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(view_of)
        .transpose()
}

pub async fn set_authorisation_state(
    conn: &mut PgConnection,
    id: AuthorisationId,
    state: AuthorisationState,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let revoked = state == AuthorisationState::Revoked;
    sqlx::query(
        "UPDATE authorisations SET state = $2, reason = coalesce($3, reason), \
         decided_at = CASE WHEN $5 THEN decided_at ELSE $4 END, \
         revoked_at = CASE WHEN $5 THEN $4 ELSE revoked_at END WHERE id = $1",
    )
    .bind(id.as_uuid())
    .bind(state.as_str())
    .bind(reason)
    .bind(at)
    .bind(revoked)
    .execute(conn)
    .await?;
    Ok(())
}

/// The confirmed authorisation under which `distributor` may deliver
/// `code` of `manufacturer` to a hospital in `region` during `period`.
pub async fn covering_authorisation(
    conn: &mut PgConnection,
    period: PeriodId,
    manufacturer: OrgId,
    distributor: OrgId,
    code: &NationalCode,
    region: RegionCode,
) -> Result<Option<AuthorisationId>, sqlx::Error> {
    let v = region.as_u32() as i32;
    let id: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM authorisations WHERE period = $1 AND manufacturer = $2 AND distributor = $3 \
         AND state = 'confirmed' AND $4 = ANY (products) \
         AND EXISTS (SELECT 1 FROM unnest(areas) ar WHERE ar <= $5 AND region_hi(ar) >= $5) \
         ORDER BY granted_at LIMIT 1",
    )
    .bind(period.as_uuid())
    .bind(manufacturer.as_uuid())
    .bind(distributor.as_uuid())
    .bind(code.as_str())
    .bind(v)
    .fetch_optional(conn)
    .await?;
    Ok(id.map(AuthorisationId::from_uuid))
}

pub struct AuthorisationFilter {
    pub period: Option<PeriodId>,
    pub state: Option<AuthorisationState>,
    pub national_code: Option<NationalCode>,
}

pub async fn list_authorisations(
    conn: &mut PgConnection,
    scope: &Scope,
    f: &AuthorisationFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AuthorisationView>, i64), sqlx::Error> {
    let filter = "($5::uuid IS NULL OR a.period = $5) AND ($6::text IS NULL OR a.state = $6) \
        AND ($7::text IS NULL OR $7 = ANY (a.products))";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM authorisations a WHERE {SCOPE} AND {filter}"
    )))
    .bind(scope.kind)
    .bind(scope.lo)
    .bind(scope.hi)
    .bind(scope.org)
    .bind(f.period.map(|p| p.as_uuid()))
    .bind(f.state.map(|s| s.as_str()))
    .bind(f.national_code.as_ref().map(|c| c.as_str()))
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE {SCOPE} AND {filter} \
         ORDER BY a.granted_at, a.id LIMIT $8 OFFSET $9"
    )))
    .bind(scope.kind)
    .bind(scope.lo)
    .bind(scope.hi)
    .bind(scope.org)
    .bind(f.period.map(|p| p.as_uuid()))
    .bind(f.state.map(|s| s.as_str()))
    .bind(f.national_code.as_ref().map(|c| c.as_str()))
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok((rows.iter().map(view_of).collect::<Result<_, _>>()?, total))
}

/// Pending authorisations naming `distributor`.
pub async fn pending_for_distributor(
    conn: &mut PgConnection,
    distributor: OrgId,
) -> Result<Vec<AuthorisationView>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE a.distributor = $1 AND a.state = 'pending' \
         ORDER BY a.granted_at LIMIT 500"
    )))
    .bind(distributor.as_uuid())
    .fetch_all(conn)
    .await?;
    rows.iter().map(view_of).collect()
}
