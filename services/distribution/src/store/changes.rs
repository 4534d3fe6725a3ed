//! Change requests (更换/调整) and their decisions.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use vbp_contracts::agreements::PeriodId;
use vbp_contracts::distribution::{ChangeId, ChangeState, ChangeView, RelationId};
use vbp_kernel::{NationalCode, OrgId, OrgKind, RegionCode};

use super::Scope;
use crate::domain::region_from_i32;

const COLUMNS: &str = "c.id, c.period, c.hospital, c.hospital_region, c.national_code, c.manufacturer, \
    c.from_distributor, c.to_distributor, c.old_relation, c.new_relation, c.effective_from, c.reason, \
    c.requested_by, c.requested_kind, c.requested_at, c.approver_region, c.state, c.decided_by, \
    c.decision_reason, c.decided_at";

/// Rows visible under scope `($1..$4)`.
const SCOPE: &str = "($1 = 'all' \
    OR ($1 = 'region' AND c.hospital_region BETWEEN $2 AND $3) \
    OR ($1 = 'hospital' AND c.hospital = $4) \
    OR ($1 = 'manufacturer' AND c.manufacturer = $4) \
    OR ($1 = 'distributor' AND (c.from_distributor = $4 OR c.to_distributor = $4)))";

fn view_of(r: &sqlx::postgres::PgRow) -> Result<ChangeView, sqlx::Error> {
    let code: String = r.try_get("national_code")?;
    let state: String = r.try_get("state")?;
    let kind: String = r.try_get("requested_kind")?;
    Ok(ChangeView {
        change: ChangeId::from_uuid(r.try_get("id")?),
        period: PeriodId::from_uuid(r.try_get("period")?),
        hospital: OrgId::from_uuid(r.try_get("hospital")?),
        hospital_region: region_from_i32(r.try_get("hospital_region")?),
        national_code: NationalCode::parse(&code).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        manufacturer: OrgId::from_uuid(r.try_get("manufacturer")?),
        from_distributor: OrgId::from_uuid(r.try_get("from_distributor")?),
        to_distributor: OrgId::from_uuid(r.try_get("to_distributor")?),
        old_relation: RelationId::from_uuid(r.try_get("old_relation")?),
        new_relation: r
            .try_get::<Option<uuid::Uuid>, _>("new_relation")?
            .map(RelationId::from_uuid),
        effective_from: r.try_get("effective_from")?,
        reason: r.try_get("reason")?,
        requested_by: OrgId::from_uuid(r.try_get("requested_by")?),
        requested_by_kind: kind.parse().unwrap_or(OrgKind::Operator),
        requested_at: r.try_get("requested_at")?,
        approver_region: region_from_i32(r.try_get("approver_region")?),
        state: ChangeState::parse(&state)
            .ok_or_else(|| sqlx::Error::Decode(format!("change state {state}").into()))?,
        decided_by: r
            .try_get::<Option<uuid::Uuid>, _>("decided_by")?
            .map(OrgId::from_uuid),
        decision_reason: r.try_get("decision_reason")?,
        decided_at: r.try_get("decided_at")?,
    })
}

pub async fn insert_change(conn: &mut PgConnection, c: &ChangeView) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO changes (id, period, hospital, hospital_region, national_code, manufacturer, \
         from_distributor, to_distributor, old_relation, effective_from, reason, requested_by, \
         requested_kind, requested_at, approver_region, state) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,'pending')",
    )
    .bind(c.change.as_uuid())
    .bind(c.period.as_uuid())
    .bind(c.hospital.as_uuid())
    .bind(c.hospital_region.as_u32() as i32)
    .bind(c.national_code.as_str())
    .bind(c.manufacturer.as_uuid())
    .bind(c.from_distributor.as_uuid())
    .bind(c.to_distributor.as_uuid())
    .bind(c.old_relation.as_uuid())
    .bind(c.effective_from)
    .bind(&c.reason)
    .bind(c.requested_by.as_uuid())
    .bind(c.requested_by_kind.as_str())
    .bind(c.requested_at)
    .bind(c.approver_region.as_u32() as i32)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_change(
    conn: &mut PgConnection,
    id: ChangeId,
    lock: bool,
) -> Result<Option<ChangeView>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM changes c WHERE c.id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(view_of)
        .transpose()
}

/// Records the decision; `effective_from` may move later (a change
/// approved after its requested date takes effect at approval).
#[allow(clippy::too_many_arguments)]
pub async fn decide_change(
    conn: &mut PgConnection,
    id: ChangeId,
    state: ChangeState,
    by: OrgId,
    reason: Option<&str>,
    new_relation: Option<RelationId>,
    effective_from: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE changes SET state = $2, decided_by = $3, decision_reason = $4, new_relation = $5, \
         decided_at = $6, effective_from = $7 WHERE id = $1 AND state = 'pending'",
    )
    .bind(id.as_uuid())
    .bind(state.as_str())
    .bind(by.as_uuid())
    .bind(reason)
    .bind(new_relation.map(|r| r.as_uuid()))
    .bind(at)
    .bind(effective_from)
    .execute(conn)
    .await?;
    Ok(())
}

/// (approved, pending) changes of (hospital, product) in the period.
pub async fn change_counts(
    conn: &mut PgConnection,
    period: PeriodId,
    hospital: OrgId,
    code: &NationalCode,
) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE state = 'approved') AS approved, \
         count(*) FILTER (WHERE state = 'pending') AS pending \
         FROM changes WHERE period = $1 AND hospital = $2 AND national_code = $3",
    )
    .bind(period.as_uuid())
    .bind(hospital.as_uuid())
    .bind(code.as_str())
    .fetch_one(conn)
    .await?;
    Ok((row.try_get("approved")?, row.try_get("pending")?))
}

pub struct ChangeFilter {
    pub period: Option<PeriodId>,
    pub state: Option<ChangeState>,
    pub hospital: Option<OrgId>,
}

pub async fn list_changes(
    conn: &mut PgConnection,
    scope: &Scope,
    f: &ChangeFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<ChangeView>, i64), sqlx::Error> {
    let filter = "($5::uuid IS NULL OR c.period = $5) AND ($6::text IS NULL OR c.state = $6) \
        AND ($7::uuid IS NULL OR c.hospital = $7)";
    macro_rules! bind_all {
        ($q:expr) => {
            $q.bind(scope.kind)
                .bind(scope.lo)
                .bind(scope.hi)
                .bind(scope.org)
                .bind(f.period.map(|p| p.as_uuid()))
                .bind(f.state.map(|s| s.as_str()))
                .bind(f.hospital.map(|h| h.as_uuid()))
        };
    }
    let total: i64 = bind_all!(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM changes c WHERE {SCOPE} AND {filter}"
    ))))
    .fetch_one(&mut *conn)
    .await?;
    let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM changes c WHERE {SCOPE} AND {filter} \
         ORDER BY c.requested_at, c.id LIMIT $8 OFFSET $9"
    ))))
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok((rows.iter().map(view_of).collect::<Result<_, _>>()?, total))
}

/// Pending changes only the bureau of `region` may decide.
pub async fn pending_for_approver(
    conn: &mut PgConnection,
    region: RegionCode,
) -> Result<Vec<ChangeView>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM changes c WHERE c.approver_region = $1 AND c.state = 'pending' \
         ORDER BY c.requested_at LIMIT 500"
    )))
    .bind(region.as_u32() as i32)
    .fetch_all(conn)
    .await?;
    rows.iter().map(view_of).collect()
}
