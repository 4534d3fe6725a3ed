//! What placing an order checks for each of its products (the winning
//! price, the distribution relation, a shortage cap), read for all lines in
//! one statement so an order costs one round trip however many lines it has.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use vbp_contracts::agreements::PeriodId;
use vbp_kernel::{Money, NationalCode, OrgId, RegionCode};

use super::ItemRow;

/// One product of an order to place.
#[derive(Debug, Clone)]
pub struct LineFacts {
    /// Its supply-list entry in the period, if listed.
    pub item: Option<ItemRow>,
    /// Whether the distributor delivers it to the hospital at the order time.
    pub related: bool,
    /// The tightest cap of a shortage flag covering the hospital's region at
    /// the order time.
    pub cap: Option<i64>,
}

/// The facts of each product in `codes`, keyed by national code; the same
/// answers as `supply_item`, `relation_active_at` and `shortage_at`.
pub async fn line_facts(
    conn: &mut PgConnection,
    period: PeriodId,
    hospital: OrgId,
    region: RegionCode,
    distributor: OrgId,
    codes: &[&NationalCode],
    at: DateTime<Utc>,
) -> Result<HashMap<String, LineFacts>, sqlx::Error> {
    let codes: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    let rows = sqlx::query(
        "SELECT c.code, i.manufacturer, i.winning_price_fen, \
         EXISTS (SELECT 1 FROM relations r WHERE r.hospital = $2 AND r.national_code = c.code \
           AND r.distributor = $3 AND r.valid_from <= $5 AND ($5 < r.valid_to OR r.valid_to IS NULL)) \
           AS related, \
         (SELECT s.cap_per_line FROM shortages s WHERE s.national_code = c.code \
           AND s.region_lo <= $4 AND $4 <= s.region_hi AND s.flagged_at <= $5 \
           AND (s.lifted_at IS NULL OR $5 < s.lifted_at) ORDER BY s.cap_per_line, s.flagged_at LIMIT 1) \
           AS cap \
         FROM (SELECT DISTINCT code FROM unnest($6::text[]) AS code) c \
         LEFT JOIN supply_items i ON i.period = $1 AND i.national_code = c.code",
    )
    .bind(period.as_uuid())
    .bind(hospital.as_uuid())
    .bind(distributor.as_uuid())
    .bind(region.as_u32() as i32)
    .bind(at)
    .bind(&codes)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let maker: Option<uuid::Uuid> = r.try_get("manufacturer")?;
            let price: Option<i64> = r.try_get("winning_price_fen")?;
            let item = match (maker, price) {
                (Some(m), Some(p)) => Some(ItemRow {
                    manufacturer: OrgId::from_uuid(m),
                    winning_price: Money::from_fen(p),
                }),
                _ => None,
            };
            Ok((
                r.try_get("code")?,
                LineFacts {
                    item,
                    related: r.try_get("related")?,
                    cap: r.try_get("cap")?,
                },
            ))
        })
        .collect()
}
