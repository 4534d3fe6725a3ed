//! Shortage mode: bureaus' flags, the agreed-volume projection that decides
//! who is served first, and the substitute ledger.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Row};
use vbp_contracts::agreements::{AgreedVolumeSet, PeriodId};
use vbp_contracts::orders::{OrderId, ShortageId, ShortageView, SubstituteId, SubstituteView};
use vbp_kernel::{Money, NationalCode, OrgId, RegionCode};

use crate::domain::{region_from_i32, region_range};

fn decode<E: std::fmt::Display>(e: E) -> sqlx::Error {
    sqlx::Error::Decode(e.to_string().into())
}

const SHORTAGE_COLS: &str = "id, region, national_code, cap_per_line, bureau, reason, flagged_by, \
     flagged_at, lifted_at, lift_reason";

fn shortage_of(r: &sqlx::postgres::PgRow) -> Result<ShortageView, sqlx::Error> {
    let code: String = r.try_get("national_code")?;
    Ok(ShortageView {
        shortage: ShortageId::from_uuid(r.try_get("id")?),
        region: region_from_i32(r.try_get("region")?),
        national_code: NationalCode::parse(&code).map_err(decode)?,
        cap_per_line: r.try_get("cap_per_line")?,
        bureau: OrgId::from_uuid(r.try_get("bureau")?),
        reason: r.try_get("reason")?,
        flagged_by: r.try_get("flagged_by")?,
        flagged_at: r.try_get("flagged_at")?,
        lifted_at: r.try_get("lifted_at")?,
        lift_reason: r.try_get("lift_reason")?,
    })
}

/// Inserts a flag; false when the region already has an open flag for the
/// product.
pub async fn insert_shortage(
    conn: &mut PgConnection,
    v: &ShortageView,
) -> Result<bool, sqlx::Error> {
    let (lo, hi) = region_range(v.region);
    let done = sqlx::query(
        "INSERT INTO shortages (id, region, region_lo, region_hi, national_code, cap_per_line, bureau, \
         reason, flagged_by, flagged_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) \
         ON CONFLICT (region, national_code) WHERE lifted_at IS NULL DO NOTHING",
    )
    .bind(v.shortage.as_uuid())
    .bind(v.region.as_u32() as i32)
    .bind(lo)
    .bind(hi)
    .bind(v.national_code.as_str())
    .bind(v.cap_per_line)
    .bind(v.bureau.as_uuid())
    .bind(&v.reason)
    .bind(&v.flagged_by)
    .bind(v.flagged_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get_shortage(
    conn: &mut PgConnection,
    id: ShortageId,
    lock: bool,
) -> Result<Option<ShortageView>, sqlx::Error> {
    let sql = format!(
        "SELECT {SHORTAGE_COLS} FROM shortages WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(shortage_of)
        .transpose()
}

pub async fn lift_shortage(
    conn: &mut PgConnection,
    id: ShortageId,
    by: &str,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE shortages SET lifted_at = $2, lifted_by = $3, lift_reason = $4 WHERE id = $1",
    )
    .bind(id.as_uuid())
    .bind(at)
    .bind(by)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Flags whose region lies in `lo..=hi` or covers it (a hospital, a city
/// and its province all see the province's flag).
pub async fn list_shortages(
    conn: &mut PgConnection,
    lo: i32,
    hi: i32,
    include_lifted: bool,
) -> Result<Vec<ShortageView>, sqlx::Error> {
    let sql = format!(
        "SELECT {SHORTAGE_COLS} FROM shortages WHERE ((region BETWEEN $1 AND $2) \
         OR (region_lo <= $1 AND $2 <= region_hi)) AND ($3 OR lifted_at IS NULL) \
         ORDER BY flagged_at DESC, id LIMIT 500"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(lo)
        .bind(hi)
        .bind(include_lifted)
        .fetch_all(conn)
        .await?;
    rows.iter().map(shortage_of).collect()
}

/// The flag for `code` covering `region` in force at `at` with the smallest
/// cap, when several apply (a province's and a city's).
pub async fn shortage_at(
    conn: &mut PgConnection,
    region: RegionCode,
    code: &NationalCode,
    at: DateTime<Utc>,
) -> Result<Option<ShortageView>, sqlx::Error> {
    let sql = format!(
        "SELECT {SHORTAGE_COLS} FROM shortages WHERE national_code = $1 \
         AND region_lo <= $2 AND $2 <= region_hi AND flagged_at <= $3 \
         AND (lifted_at IS NULL OR $3 < lifted_at) ORDER BY cap_per_line, flagged_at LIMIT 1"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(code.as_str())
        .bind(region.as_u32() as i32)
        .bind(at)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(shortage_of)
        .transpose()
}

/// Whether any flag is in force at `at`, in any region.
pub async fn any_shortage_at(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM shortages WHERE flagged_at <= $1 \
         AND (lifted_at IS NULL OR $1 < lifted_at))",
    )
    .bind(at)
    .fetch_one(conn)
    .await
}

/// Whether any supply list holds `code`.
pub async fn product_listed(
    conn: &mut PgConnection,
    code: &NationalCode,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM supply_items WHERE national_code = $1)")
        .bind(code.as_str())
        .fetch_one(conn)
        .await
}

/// Applies an agreed-volume revision; an older or repeated one changes
/// nothing.
pub async fn apply_agreed_volume(
    conn: &mut PgConnection,
    ev: &AgreedVolumeSet,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO agreed_volume_sets (period, hospital, product_group, revision) VALUES ($1,$2,$3,$4) \
         ON CONFLICT (period, hospital, product_group) DO UPDATE SET revision = $4 \
         WHERE agreed_volume_sets.revision < $4",
    )
    .bind(ev.period.as_uuid())
    .bind(ev.hospital.as_uuid())
    .bind(&ev.product_group)
    .bind(ev.revision)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "DELETE FROM agreed_volumes WHERE period = $1 AND hospital = $2 AND product_group = $3",
    )
    .bind(ev.period.as_uuid())
    .bind(ev.hospital.as_uuid())
    .bind(&ev.product_group)
    .execute(&mut *conn)
    .await?;
    let codes: Vec<&str> = ev.lines.iter().map(|l| l.national_code.as_str()).collect();
    let qty: Vec<i64> = ev.lines.iter().map(|l| l.quantity).collect();
    sqlx::query(
        "INSERT INTO agreed_volumes (period, hospital, product_group, national_code, quantity) \
         SELECT $1, $2, $3, c, sum(q) FROM unnest($4::text[], $5::bigint[]) AS t(c, q) GROUP BY c",
    )
    .bind(ev.period.as_uuid())
    .bind(ev.hospital.as_uuid())
    .bind(&ev.product_group)
    .bind(&codes)
    .bind(&qty)
    .execute(conn)
    .await?;
    Ok(true)
}

pub async fn has_agreed_volume(
    conn: &mut PgConnection,
    period: PeriodId,
    hospital: OrgId,
    code: &NationalCode,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM agreed_volumes WHERE period = $1 AND hospital = $2 \
         AND national_code = $3 AND quantity > 0)",
    )
    .bind(period.as_uuid())
    .bind(hospital.as_uuid())
    .bind(code.as_str())
    .fetch_one(conn)
    .await
}

/// Orders still waiting for `distributor`'s answer that carry `code` and
/// come from hospitals in `lo..=hi` with an agreed volume for it, oldest
/// first.
pub async fn waiting_priority_orders(
    conn: &mut PgConnection,
    distributor: OrgId,
    code: &NationalCode,
    lo: i32,
    hi: i32,
) -> Result<Vec<OrderId>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT o.id FROM orders o JOIN order_lines l ON l.order_id = o.id \
         WHERE o.state = 'placed' AND o.distributor = $1 AND l.national_code = $2 \
         AND o.hospital_region BETWEEN $3 AND $4 \
         AND EXISTS (SELECT 1 FROM agreed_volumes v WHERE v.period = o.period \
            AND v.hospital = o.hospital AND v.national_code = $2 AND v.quantity > 0) \
         ORDER BY o.placed_at, o.id LIMIT 10",
    )
    .bind(distributor.as_uuid())
    .bind(code.as_str())
    .bind(lo)
    .bind(hi)
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(OrderId::from_uuid).collect())
}

pub async fn insert_substitute(
    conn: &mut PgConnection,
    v: &SubstituteView,
    by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO substitutes (id, shortage, hospital, hospital_region, period, short_product, \
         substitute_name, substitute_code, quantity, amount_fen, purchased_on, recorded_by, recorded_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
    )
    .bind(v.entry.as_uuid())
    .bind(v.shortage.as_uuid())
    .bind(v.hospital.as_uuid())
    .bind(v.hospital_region.as_u32() as i32)
    .bind(v.period.as_uuid())
    .bind(v.short_product.as_str())
    .bind(&v.substitute_name)
    .bind(v.substitute_code.as_ref().map(|c| c.as_str()))
    .bind(v.quantity)
    .bind(v.amount_fen.fen())
    .bind(v.purchased_on)
    .bind(by)
    .bind(v.recorded_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The ledger under `scope`, newest purchase first.
pub async fn list_substitutes(
    conn: &mut PgConnection,
    scope: &super::Scope,
    hospital: Option<OrgId>,
    (limit, offset): (i64, i64),
) -> Result<(Vec<SubstituteView>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE ($1 = 'all' OR ($1 = 'region' AND s.hospital_region BETWEEN $2 AND $3) \
         OR ($1 = 'hospital' AND s.hospital = $4)) AND ($5::uuid IS NULL OR s.hospital = $5)";
    let filtered = |sql: String| scope.query(sql).bind(hospital.map(|h| h.as_uuid()));
    let rows = filtered(format!(
        "SELECT id, shortage, hospital, hospital_region, period, short_product, substitute_name, \
         substitute_code, quantity, amount_fen, purchased_on, recorded_at FROM substitutes s \
         {WHERE} ORDER BY purchased_on DESC, recorded_at DESC, id LIMIT $6 OFFSET $7"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let total = filtered(format!("SELECT count(*) FROM substitutes s {WHERE}"))
        .fetch_one(conn)
        .await?
        .try_get(0)?;
    let items = rows
        .iter()
        .map(|r| {
            let short: String = r.try_get("short_product")?;
            let sub: Option<String> = r.try_get("substitute_code")?;
            let purchased_on: NaiveDate = r.try_get("purchased_on")?;
            Ok(SubstituteView {
                entry: SubstituteId::from_uuid(r.try_get("id")?),
                shortage: ShortageId::from_uuid(r.try_get("shortage")?),
                hospital: OrgId::from_uuid(r.try_get("hospital")?),
                hospital_region: region_from_i32(r.try_get("hospital_region")?),
                period: PeriodId::from_uuid(r.try_get("period")?),
                short_product: NationalCode::parse(&short).map_err(decode)?,
                substitute_name: r.try_get("substitute_name")?,
                substitute_code: sub
                    .map(|c| NationalCode::parse(&c).map_err(decode))
                    .transpose()?,
                quantity: r.try_get("quantity")?,
                amount_fen: Money::from_fen(r.try_get("amount_fen")?),
                purchased_on,
                recorded_at: r.try_get("recorded_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((items, total))
}
