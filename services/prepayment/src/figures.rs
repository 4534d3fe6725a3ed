//! Prepayment's side of the reconciliation report: the settlements it
//! received from orders, the basis its offsets are computed from.

use sqlx::{PgPool, Row};
use vbp_contracts::agreements::PeriodId;
use vbp_contracts::reconcile::{Figure, FiguresRequest, Measure};
use vbp_kernel::OrgId;
use vbp_platform::reconcile::RegionBounds;

pub async fn read(
    pool: PgPool,
    req: FiguresRequest,
    bounds: RegionBounds,
) -> Result<Vec<Figure>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT period, hospital, sum(amount_fen)::bigint AS amount_fen FROM settlements \
         WHERE hospital_region BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR period = $3) \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(bounds.low)
    .bind(bounds.high)
    .bind(req.period.map(|p| p.as_uuid()))
    .fetch_all(&pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Figure {
            measure: Measure::SettledAmountFen,
            period: PeriodId::from_uuid(r.get("period")),
            hospital: OrgId::from_uuid(r.get("hospital")),
            national_code: None,
            value: r.get("amount_fen"),
        })
        .collect())
}
