//! Agreements' side of the reconciliation report: procurement progress, as
//! counted from the acceptances orders published.

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
        "SELECT period, hospital, national_code, accepted_quantity, accepted_amount_fen \
         FROM progress WHERE hospital_region BETWEEN $1 AND $2 \
         AND ($3::uuid IS NULL OR period = $3) ORDER BY period, hospital, national_code",
    )
    .bind(bounds.low)
    .bind(bounds.high)
    .bind(req.period.map(|p| p.as_uuid()))
    .fetch_all(&pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len() * 2);
    for r in rows {
        let period = PeriodId::from_uuid(r.get("period"));
        let hospital = OrgId::from_uuid(r.get("hospital"));
        let code: String = r.get("national_code");
        let national_code = code.parse().ok();
        for (measure, value) in [
            (
                Measure::AcceptedQuantity,
                r.get::<i64, _>("accepted_quantity"),
            ),
            (
                Measure::AcceptedAmountFen,
                r.get::<i64, _>("accepted_amount_fen"),
            ),
        ] {
            out.push(Figure {
                measure,
                period,
                hospital,
                national_code: national_code.clone(),
                value,
            });
        }
    }
    Ok(out)
}
