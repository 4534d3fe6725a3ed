//! Relations (配送关系) and their append-only log. A row is never turned
//! into another distributor: changes end one row and add another.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use vbp_contracts::agreements::PeriodId;
use vbp_contracts::distribution::{AuthorisationId, RelationId, RelationState, RelationView};
use vbp_kernel::{NationalCode, OrgId, RegionCode};

use super::Scope;
use crate::domain::region_from_i32;

const COLUMNS: &str = "r.id, r.period, r.hospital, coalesce(h.name, '') AS hospital_name, \
    r.hospital_region, r.national_code, r.manufacturer, r.distributor, \
    coalesce(d.name, '') AS distributor_name, r.authorisation, r.state, r.selected_at, r.decided_at, \
    r.reason, r.remote_area, r.valid_from, r.valid_to, r.replaces, r.replaced_by";

const FROM: &str =
    "relations r LEFT JOIN orgs h ON h.id = r.hospital LEFT JOIN orgs d ON d.id = r.distributor";

/// Rows visible under scope `($1..$4)`.
pub(crate) const SCOPE: &str = "($1 = 'all' \
    OR ($1 = 'region' AND r.hospital_region BETWEEN $2 AND $3) \
    OR ($1 = 'hospital' AND r.hospital = $4) \
    OR ($1 = 'manufacturer' AND r.manufacturer = $4) \
    OR ($1 = 'distributor' AND r.distributor = $4))";

fn view_of(r: &sqlx::postgres::PgRow) -> Result<RelationView, sqlx::Error> {
    let code: String = r.try_get("national_code")?;
    let state: String = r.try_get("state")?;
    Ok(RelationView {
        relation: RelationId::from_uuid(r.try_get("id")?),
        period: PeriodId::from_uuid(r.try_get("period")?),
        hospital: OrgId::from_uuid(r.try_get("hospital")?),
        hospital_name: r.try_get("hospital_name")?,
        hospital_region: region_from_i32(r.try_get("hospital_region")?),
        national_code: NationalCode::parse(&code).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        manufacturer: OrgId::from_uuid(r.try_get("manufacturer")?),
        distributor: OrgId::from_uuid(r.try_get("distributor")?),
        distributor_name: r.try_get("distributor_name")?,
        authorisation: r
            .try_get::<Option<uuid::Uuid>, _>("authorisation")?
            .map(AuthorisationId::from_uuid),
        state: RelationState::parse(&state)
            .ok_or_else(|| sqlx::Error::Decode(format!("relation state {state}").into()))?,
        selected_at: r.try_get("selected_at")?,
        decided_at: r.try_get("decided_at")?,
        reason: r.try_get("reason")?,
        remote_area: r.try_get("remote_area")?,
        valid_from: r.try_get("valid_from")?,
        valid_to: r.try_get("valid_to")?,
        replaces: r
            .try_get::<Option<uuid::Uuid>, _>("replaces")?
            .map(RelationId::from_uuid),
        replaced_by: r
            .try_get::<Option<uuid::Uuid>, _>("replaced_by")?
            .map(RelationId::from_uuid),
    })
}

/// A new relation row (pending selection, or active from a change).
pub struct NewRelation<'a> {
    pub id: RelationId,
    pub period: PeriodId,
    pub hospital: OrgId,
    pub hospital_region: RegionCode,
    pub national_code: &'a NationalCode,
    pub manufacturer: OrgId,
    pub distributor: OrgId,
    pub authorisation: Option<AuthorisationId>,
    pub state: RelationState,
    pub selected_at: DateTime<Utc>,
    pub valid_from: Option<DateTime<Utc>>,
    pub replaces: Option<RelationId>,
}

pub async fn insert_relation(
    conn: &mut PgConnection,
    n: &NewRelation<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO relations (id, period, hospital, hospital_region, national_code, manufacturer, \
         distributor, authorisation, state, selected_at, decided_at, valid_from, replaces) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10, CASE WHEN $9 = 'active' THEN $10 END, $11, $12)",
    )
    .bind(n.id.as_uuid())
    .bind(n.period.as_uuid())
    .bind(n.hospital.as_uuid())
    .bind(n.hospital_region.as_u32() as i32)
    .bind(n.national_code.as_str())
    .bind(n.manufacturer.as_uuid())
    .bind(n.distributor.as_uuid())
    .bind(n.authorisation.map(|a| a.as_uuid()))
    .bind(n.state.as_str())
    .bind(n.selected_at)
    .bind(n.valid_from)
    .bind(n.replaces.map(|r| r.as_uuid()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends to the relation's log.
pub async fn log_relation(
    conn: &mut PgConnection,
    id: RelationId,
    state: RelationState,
    actor: &str,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO relation_log (relation, state, actor, reason, at) VALUES ($1,$2,$3,$4,$5)",
    )
    .bind(id.as_uuid())
    .bind(state.as_str())
    .bind(actor)
    .bind(reason)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_relation(
    conn: &mut PgConnection,
    id: RelationId,
    lock: bool,
) -> Result<Option<RelationView>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE r.id = $1{}",
        if lock { " FOR UPDATE OF r" } else { "" }
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(view_of)
        .transpose()
}

/// The distributor's decision on a pending selection.
pub async fn decide_relation(
    conn: &mut PgConnection,
    id: RelationId,
    state: RelationState,
    reason: Option<&str>,
    remote_area: bool,
    valid_from: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE relations SET state = $2, reason = $3, remote_area = $4, valid_from = $5, \
         decided_at = $6 WHERE id = $1",
    )
    .bind(id.as_uuid())
    .bind(state.as_str())
    .bind(reason)
    .bind(remote_area)
    .bind(valid_from)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Closes an active relation's interval at `valid_to`; only the end and its
/// reason are written, the interval's start and parties stay.
pub async fn end_relation(
    conn: &mut PgConnection,
    id: RelationId,
    valid_to: DateTime<Utc>,
    reason: &str,
    replaced_by: Option<RelationId>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE relations SET state = 'ended', valid_to = $2, reason = $3, replaced_by = $4 \
         WHERE id = $1 AND state = 'active'",
    )
    .bind(id.as_uuid())
    .bind(valid_to)
    .bind(reason)
    .bind(replaced_by.map(|r| r.as_uuid()))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn cancel_relation(
    conn: &mut PgConnection,
    id: RelationId,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE relations SET state = 'cancelled', reason = $2, decided_at = $3 \
         WHERE id = $1 AND state = 'pending'",
    )
    .bind(id.as_uuid())
    .bind(reason)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The open (pending or active) relation of (hospital, product, distributor)
/// in the period, if any.
pub async fn open_relation(
    conn: &mut PgConnection,
    period: PeriodId,
    hospital: OrgId,
    code: &NationalCode,
    distributor: OrgId,
) -> Result<Option<RelationView>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE r.period = $1 AND r.hospital = $2 AND r.national_code = $3 \
         AND r.distributor = $4 AND r.state IN ('pending', 'active') FOR UPDATE OF r"
    )))
    .bind(period.as_uuid())
    .bind(hospital.as_uuid())
    .bind(code.as_str())
    .bind(distributor.as_uuid())
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(view_of)
    .transpose()
}

/// Relations (open or closed) under an authorisation, locked.
pub async fn relations_under(
    conn: &mut PgConnection,
    authorisation: AuthorisationId,
) -> Result<Vec<RelationView>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE r.authorisation = $1 AND r.state IN ('pending', 'active') \
         ORDER BY r.selected_at FOR UPDATE OF r"
    )))
    .bind(authorisation.as_uuid())
    .fetch_all(conn)
    .await?;
    rows.iter().map(view_of).collect()
}

/// Relations whose validity overlaps `[from, to)`: who delivered then.
pub async fn delivering_between(
    conn: &mut PgConnection,
    hospital: OrgId,
    code: &NationalCode,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RelationView>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} JOIN periods p ON p.id = r.period \
         WHERE r.hospital = $1 AND r.national_code = $2 AND r.state IN ('active', 'ended') \
         AND r.valid_from < $4 AND coalesce(r.valid_to, p.ends_at) > $3 \
         ORDER BY r.valid_from, r.id"
    )))
    .bind(hospital.as_uuid())
    .bind(code.as_str())
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    rows.iter().map(view_of).collect()
}

pub struct RelationFilter {
    pub period: Option<PeriodId>,
    pub national_code: Option<NationalCode>,
    pub hospital: Option<OrgId>,
    pub distributor: Option<OrgId>,
    pub state: Option<RelationState>,
    pub remote_area_only: bool,
}

pub async fn list_relations(
    conn: &mut PgConnection,
    scope: &Scope,
    f: &RelationFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<RelationView>, i64), sqlx::Error> {
    let filter = "($5::uuid IS NULL OR r.period = $5) AND ($6::text IS NULL OR r.national_code = $6) \
        AND ($7::uuid IS NULL OR r.hospital = $7) AND ($8::uuid IS NULL OR r.distributor = $8) \
        AND ($9::text IS NULL OR r.state = $9) AND (NOT $10 OR r.remote_area)";
    macro_rules! bind_all {
        ($q:expr) => {
            $q.bind(scope.kind)
                .bind(scope.lo)
                .bind(scope.hi)
                .bind(scope.org)
                .bind(f.period.map(|p| p.as_uuid()))
                .bind(f.national_code.as_ref().map(|c| c.as_str()))
                .bind(f.hospital.map(|h| h.as_uuid()))
                .bind(f.distributor.map(|d| d.as_uuid()))
                .bind(f.state.map(|s| s.as_str()))
                .bind(f.remote_area_only)
        };
    }
    let total: i64 = bind_all!(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM relations r WHERE {SCOPE} AND {filter}"
    ))))
    .fetch_one(&mut *conn)
    .await?;
    let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE {SCOPE} AND {filter} \
         ORDER BY r.selected_at, r.id LIMIT $11 OFFSET $12"
    ))))
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok((rows.iter().map(view_of).collect::<Result<_, _>>()?, total))
}

/// Pending selections waiting for `distributor`.
pub async fn pending_selections(
    conn: &mut PgConnection,
    distributor: OrgId,
) -> Result<Vec<RelationView>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE r.distributor = $1 AND r.state = 'pending' \
         ORDER BY r.selected_at LIMIT 500"
    )))
    .bind(distributor.as_uuid())
    .fetch_all(conn)
    .await?;
    rows.iter().map(view_of).collect()
}

/// Whether the county is currently marked remote.
pub async fn is_remote(conn: &mut PgConnection, region: RegionCode) -> Result<bool, sqlx::Error> {
    let v: Option<bool> = sqlx::query_scalar("SELECT remote FROM remote_areas WHERE region = $1")
        .bind(region.as_u32() as i32)
        .fetch_optional(conn)
        .await?;
    Ok(v.unwrap_or(false))
}
