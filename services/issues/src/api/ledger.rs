//! The ledger (台账): counts, rates, overdue by stage and mean durations per
//! enterprise, hospital or region, computed in SQL over the caller's scope;
//! and its quarterly `.xlsx` report.

use chrono::{DateTime, NaiveDate, Utc};
use vbp_bus::{Context, RpcError};
use vbp_contracts::files::ExportedFile;
use vbp_contracts::issues::*;
use vbp_platform::sheets::{self, Cell, Column, col};

use super::*;
use crate::store::{SCOPE, Scope};

fn bp(n: i64, d: i64) -> i64 {
    if d == 0 { 0 } else { n * 10_000 / d }
}

/// Rows of one grouping over issues filed in `[from, to)`.
async fn rows(
    svc: &Svc,
    a: &vbp_kernel::Actor,
    by: LedgerGrouping,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> R<Vec<LedgerRow>> {
    // An enterprise row counts the issues dispatched to it (as manufacturer
    // or distributor); hospital and region rows count each issue once.
    // An enterprise sees its own row only, not its partners'.
    let (key, source, own) = match by {
        LedgerGrouping::Enterprise => (
            "e.enterprise::text",
            "issues i CROSS JOIN LATERAL \
             unnest(array_prepend(i.manufacturer, i.distributors)) AS e(enterprise)",
            "AND ($1 NOT IN ('manufacturer', 'distributor') OR e.enterprise = $4)",
        ),
        LedgerGrouping::Hospital => ("i.hospital::text", "issues i", ""),
        LedgerGrouping::Region => ("lpad(i.hospital_region::text, 6, '0')", "issues i", ""),
    };
    let sql = format!(
        "SELECT {key} AS key, coalesce(max(o.name), '') AS name, count(*) AS filed, \
         count(i.responded_at) AS responded, \
         count(*) FILTER (WHERE i.response_on_time) AS responded_on_time, \
         count(i.resolved_at) AS resolved, \
         count(*) FILTER (WHERE i.overdue_enterprise) AS overdue_enterprise, \
         count(*) FILTER (WHERE i.overdue_bureau) AS overdue_bureau, \
         count(*) FILTER (WHERE i.overdue_province) AS overdue_province, \
         count(*) FILTER (WHERE i.state = 'false_report') AS false_reports, \
         (avg(extract(epoch FROM i.responded_at - i.filed_at)) / 60)::bigint AS avg_response, \
         (avg(extract(epoch FROM i.feedback_at - i.filed_at)) / 60)::bigint AS avg_feedback, \
         (avg(extract(epoch FROM i.resolved_at - i.filed_at)) / 60)::bigint AS avg_resolution \
         FROM {source} LEFT JOIN orgs o ON o.id::text = {key} \
         WHERE {SCOPE} {own} AND ($5::timestamptz IS NULL OR i.filed_at >= $5) \
         AND ($6::timestamptz IS NULL OR i.filed_at < $6) \
         GROUP BY 1 ORDER BY 1"
    );
    let s = Scope::of(a);
    #[allow(clippy::type_complexity)]
    let found: Vec<(
        String,
        String,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    )> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(s.kind)
        .bind(s.lo)
        .bind(s.hi)
        .bind(s.org)
        .bind(from)
        .bind(to)
        .fetch_all(&svc.pool)
        .await?;
    Ok(found
        .into_iter()
        .map(|f| LedgerRow {
            key: f.0,
            name: f.1,
            filed: f.2,
            responded: f.3,
            responded_on_time: f.4,
            resolved: f.5,
            response_rate_bp: bp(f.3, f.2),
            resolution_rate_bp: bp(f.5, f.2),
            overdue_enterprise: f.6,
            overdue_bureau: f.7,
            overdue_province: f.8,
            false_reports: f.9,
            avg_response_minutes: f.10,
            avg_feedback_minutes: f.11,
            avg_resolution_minutes: f.12,
        })
        .collect())
}

pub async fn ledger(svc: Shared, ctx: Context, req: LedgerQuery) -> R<LedgerReport> {
    let a = actor(&ctx)?;
    if let (Some(f), Some(t)) = (req.from, req.to)
        && t <= f
    {
        return Err(RpcError::invalid("to", "to must be after from"));
    }
    let rows = rows(&svc, a, req.by, req.from, req.to).await?;
    Ok(LedgerReport { by: req.by, rows })
}

const LEDGER_SHEET: [Column; 16] = [
    col("维度 grouping", 12.0),
    col("对象 key", 38.0),
    col("名称 name", 28.0),
    col("上报 filed", 8.0),
    col("已响应 responded", 10.0),
    col("按时响应 on time", 10.0),
    col("已解决 resolved", 10.0),
    col("响应率 response rate (bp)", 12.0),
    col("解决率 resolution rate (bp)", 12.0),
    col("企业逾期 enterprise overdue", 12.0),
    col("医保部门逾期 bureau overdue", 12.0),
    col("省级逾期 province overdue", 12.0),
    col("虚假上报 false reports", 10.0),
    col("平均响应(分钟) avg response min", 14.0),
    col("平均反馈(分钟) avg feedback min", 14.0),
    col("平均解决(分钟) avg resolution min", 14.0),
];

/// `[start, end)` of a quarter in Beijing time.
fn quarter_bounds(year: i32, quarter: u32) -> R<(DateTime<Utc>, DateTime<Utc>)> {
    if !(1..=4).contains(&quarter) {
        return Err(RpcError::invalid("quarter", "quarter must be 1 to 4"));
    }
    let first = |y: i32, m: u32| {
        NaiveDate::from_ymd_opt(y, m, 1)
            .map(vbp_kernel::beijing_midnight)
            .ok_or_else(|| RpcError::invalid("year", format!("year {y} is out of range")))
    };
    let start = first(year, (quarter - 1) * 3 + 1)?;
    let end = if quarter == 4 {
        first(year + 1, 1)?
    } else {
        first(year, quarter * 3 + 1)?
    };
    Ok((start, end))
}

pub async fn ledger_export(svc: Shared, ctx: Context, req: LedgerExport) -> R<ExportedFile> {
    let a = actor(&ctx)?;
    let (from, to) = quarter_bounds(req.year, req.quarter)?;
    let mut out = Vec::new();
    for (by, label) in [
        (LedgerGrouping::Enterprise, "企业 enterprise"),
        (LedgerGrouping::Hospital, "医疗机构 hospital"),
        (LedgerGrouping::Region, "地区 region"),
    ] {
        for r in rows(&svc, a, by, Some(from), Some(to)).await? {
            let opt = |v: Option<i64>| v.map_or(Cell::Empty, Cell::Int);
            out.push(vec![
                label.into(),
                r.key.into(),
                r.name.into(),
                Cell::Int(r.filed),
                Cell::Int(r.responded),
                Cell::Int(r.responded_on_time),
                Cell::Int(r.resolved),
                Cell::Int(r.response_rate_bp),
                Cell::Int(r.resolution_rate_bp),
                Cell::Int(r.overdue_enterprise),
                Cell::Int(r.overdue_bureau),
                Cell::Int(r.overdue_province),
                Cell::Int(r.false_reports),
                opt(r.avg_response_minutes),
                opt(r.avg_feedback_minutes),
                opt(r.avg_resolution_minutes),
            ]);
        }
    }
    sheets::xlsx_export(
        format!("issues_ledger_{}Q{}.xlsx", req.year, req.quarter),
        "季度台账",
        &LEDGER_SHEET,
        out,
        svc.settings.max_export_bytes,
        "year, quarter",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarters_run_from_beijing_midnight_to_beijing_midnight() {
        let (s, e) = quarter_bounds(2026, 1).unwrap();
        assert_eq!(s.to_rfc3339(), "2025-12-31T16:00:00+00:00");
        assert_eq!(e.to_rfc3339(), "2026-03-31T16:00:00+00:00");
        let (s, e) = quarter_bounds(2026, 4).unwrap();
        assert_eq!(s.to_rfc3339(), "2026-09-30T16:00:00+00:00");
        assert_eq!(e.to_rfc3339(), "2026-12-31T16:00:00+00:00");
        assert_eq!(
            quarter_bounds(2026, 0).unwrap_err().body().field.as_deref(),
            Some("quarter")
        );
    }
}
