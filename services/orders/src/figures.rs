//! Orders' side of the reconciliation report: what hospitals accepted, per
//! product, and what was paid for it.

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
    let period = req.period.map(|p| p.as_uuid());
    let accepted = sqlx::query(
        "SELECT a.period, a.hospital, l->>'national_code' AS national_code, \
                sum((l->>'accepted_quantity')::bigint)::bigint AS quantity, \
                sum((l->>'amount_fen')::bigint)::bigint AS amount_fen \
         FROM acceptances a CROSS JOIN LATERAL jsonb_array_elements(a.lines) l \
         WHERE a.hospital_region BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR a.period = $3) \
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .bind(bounds.low)
    .bind(bounds.high)
    .bind(period)
    .fetch_all(&pool)
    .await?;
    let settled = sqlx::query(
        "SELECT a.period, a.hospital, sum(s.amount_fen)::bigint AS amount_fen \
         FROM settlements s JOIN acceptances a ON a.id = s.acceptance \
         WHERE a.hospital_region BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR a.period = $3) \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(bounds.low)
    .bind(bounds.high)
    .bind(period)
    .fetch_all(&pool)
    .await?;
    let mut out = Vec::with_capacity(accepted.len() * 2 + settled.len());
    for r in accepted {
        let period = PeriodId::from_uuid(r.get("period"));
        let hospital = OrgId::from_uuid(r.get("hospital"));
        let code: String = r.get("national_code");
        let national_code = code.parse().ok();
        for (measure, value) in [
            (Measure::AcceptedQuantity, r.get::<i64, _>("quantity")),
            (Measure::AcceptedAmountFen, r.get::<i64, _>("amount_fen")),
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
    for r in settled {
        out.push(Figure {
            measure: Measure::SettledAmountFen,
            period: PeriodId::from_uuid(r.get("period")),
            hospital: OrgId::from_uuid(r.get("hospital")),
            national_code: None,
            value: r.get("amount_fen"),
        });
    }
    Ok(out)
}
