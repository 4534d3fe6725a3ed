//! What placing an order checks for each of its products (the winning
//! price, the distribution relation, a shortage cap), read for all lines in
//! one statement so an order, or a batch of orders, costs one round trip.

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
    let asks: Vec<FactAsk> = codes
        .iter()
        .map(|code| FactAsk {
            period,
            hospital,
            region,
            distributor,
            code: code.as_str().to_owned(),
            at,
        })
        .collect();
    Ok(line_facts_many(conn, &asks)
        .await?
        .into_iter()
        .map(|(ask, f)| (ask.code, f))
        .collect())
}

/// One product of one order to place.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FactAsk {
    pub period: PeriodId,
    pub hospital: OrgId,
    pub region: RegionCode,
    pub distributor: OrgId,
    pub code: String,
    pub at: DateTime<Utc>,
}

/// The facts of many products of many orders in one statement.
pub async fn line_facts_many(
    conn: &mut PgConnection,
    asks: &[FactAsk],
) -> Result<HashMap<FactAsk, LineFacts>, sqlx::Error> {
    let col = |f: fn(&FactAsk) -> uuid::Uuid| asks.iter().map(f).collect::<Vec<_>>();
    let regions: Vec<i32> = asks.iter().map(|a| a.region.as_u32() as i32).collect();
    let codes: Vec<&str> = asks.iter().map(|a| a.code.as_str()).collect();
    let ats: Vec<DateTime<Utc>> = asks.iter().map(|a| a.at).collect();
    let rows = sqlx::query(
        "SELECT t.k, i.manufacturer, i.winning_price_fen, \
         EXISTS (SELECT 1 FROM relations r WHERE r.hospital = t.h AND r.national_code = t.code \
           AND r.distributor = t.d AND r.valid_from <= t.at AND (t.at < r.valid_to OR r.valid_to IS NULL)) \
           AS related, \
         (SELECT s.cap_per_line FROM shortages s WHERE s.national_code = t.code \
           AND s.region_lo <= t.reg AND t.reg <= s.region_hi AND s.flagged_at <= t.at \
           AND (s.lifted_at IS NULL OR t.at < s.lifted_at) ORDER BY s.cap_per_line, s.flagged_at LIMIT 1) \
           AS cap \
         FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::uuid[], $5::text[], $6::timestamptz[]) \
           WITH ORDINALITY AS t(p, h, reg, d, code, at, k) \
         LEFT JOIN supply_items i ON i.period = t.p AND i.national_code = t.code",
    )
    .bind(col(|a| a.period.as_uuid()))
    .bind(col(|a| a.hospital.as_uuid()))
    .bind(&regions)
    .bind(col(|a| a.distributor.as_uuid()))
    .bind(&codes)
    .bind(&ats)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let k: i64 = r.try_get("k")?;
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
                asks[k as usize - 1].clone(),
                LineFacts {
                    item,
                    related: r.try_get("related")?,
                    cap: r.try_get("cap")?,
                },
            ))
        })
        .collect()
}
