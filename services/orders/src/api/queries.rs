//! Reads, scoped by the actor.

use chrono::{Datelike, NaiveDate};
use vbp_bus::{Context, RpcError};
use vbp_contracts::files::ExportedFile;
use vbp_contracts::orders::*;
use vbp_contracts::page::Window;
use vbp_kernel::{Money, OrgId, OrgKind, RegionCode};
use vbp_platform::sheets::{self, Cell, Column, col};

use super::{R, Shared, actor, not_found, scope_of};
use crate::domain::{month_bounds, rate_bp, region_range};
use crate::store;

pub async fn order_get(svc: Shared, ctx: Context, req: GetOrder) -> R<OrderView> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    let o = store::get_order(&mut conn, req.order, false)
        .await?
        .ok_or_else(|| not_found("order", req.order))?;
    let visible = match a.org_kind {
        OrgKind::Operator => true,
        OrgKind::Bureau => a.region.contains(o.hospital_region),
        OrgKind::Hospital => o.hospital == a.org,
        OrgKind::Distributor => o.distributor == a.org,
        OrgKind::Integrator => o.integrator == Some(a.org),
        OrgKind::Manufacturer => false,
    };
    if !visible {
        // Not revealing whether it exists.
        return Err(not_found("order", req.order));
    }
    Ok(o)
}

pub async fn order_list(svc: Shared, ctx: Context, req: ListOrders) -> R<Page<OrderView>> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let mut conn = svc.pool.acquire().await?;
    let (ids, total) = store::list_orders(
        &mut conn,
        &scope_of(a),
        req.hospital,
        req.distributor,
        (w.limit(), w.offset()),
    )
    .await?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(o) = store::get_order(&mut conn, id, false).await? {
            items.push(o);
        }
    }
    Ok(w.page(items, total))
}

pub async fn acceptance_list(
    svc: Shared,
    ctx: Context,
    req: ListAcceptances,
) -> R<Page<AcceptanceView>> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let filter = store::AcceptanceFilter {
        order: req.order,
        hospital: req.hospital,
        open_only: req.open_only,
        overdue_only: req.overdue_only,
        to_invoice: req.to_invoice,
    };
    let mut conn = svc.pool.acquire().await?;
    let (items, total) =
        store::list_acceptances(&mut conn, &scope_of(a), &filter, (w.limit(), w.offset())).await?;
    Ok(w.page(items, total))
}

pub async fn ingest_rejection_list(
    svc: Shared,
    ctx: Context,
    req: ListIngestRejections,
) -> R<Page<IngestRejected>> {
    let a = actor(&ctx)?;
    let filter = match a.org_kind {
        OrgKind::Operator => None,
        OrgKind::Integrator => Some(a.org.to_string()),
        _ => {
            return Err(RpcError::forbidden(
                "only an integrator (its own) or an operator may list ingest rejections",
            ));
        }
    };
    let w = Window::new(req.page, req.page_size)?;
    let mut conn = svc.pool.acquire().await?;
    let (items, total) =
        store::list_rejections(&mut conn, filter.as_deref(), (w.limit(), w.offset())).await?;
    Ok(w.page(items, total))
}

/// Whose rates the caller may read: (hospital filter, region).
fn rates_scope(a: &vbp_kernel::Actor, req: &QueryRates) -> R<(Option<OrgId>, RegionCode)> {
    if req.month.day() != 1 {
        return Err(RpcError::invalid(
            "month",
            "a month is given as its first day",
        ));
    }
    match a.org_kind {
        OrgKind::Hospital => {
            if req.hospital.is_some_and(|h| h != a.org) {
                return Err(RpcError::forbidden("a hospital sees only its own rates"));
            }
            Ok((Some(a.org), req.region.unwrap_or(RegionCode::NATIONAL)))
        }
        OrgKind::Bureau => {
            let r = req.region.unwrap_or(a.region);
            if !a.region.contains(r) {
                return Err(RpcError::forbidden(format!(
                    "region {r} is outside your jurisdiction {}",
                    a.region
                ))
                .with_field("region"));
            }
            Ok((req.hospital, r))
        }
        OrgKind::Operator => Ok((req.hospital, req.region.unwrap_or(RegionCode::NATIONAL))),
        _ => Err(RpcError::forbidden(
            "rates are for hospitals, bureaus and operators",
        )),
    }
}

fn rates_view(month: NaiveDate, s: &store::RateSums) -> RatesView {
    RatesView {
        month,
        due_fen: Money::from_fen(s.due),
        settled_fen: Money::from_fen(s.settled),
        settled_on_time_fen: Money::from_fen(s.on_time),
        overdue_count: s.overdue,
        online_fen: Money::from_fen(s.online),
        offline_declared_fen: Money::from_fen(s.offline),
        settled_offline_fen: Money::from_fen(s.settled_offline),
        settlement_rate_bp: rate_bp(s.settled, s.due),
        timely_rate_bp: rate_bp(s.on_time, s.due),
        online_rate_bp: rate_bp(s.online, s.online + s.offline),
    }
}

/// Settlement rate = settled ÷ due and timely rate = paid by the deadline ÷
/// due, over acceptances due in the month; online rate = accepted on the
/// platform in the month ÷ (that + declared offline purchases). The
/// substitute ledger of shortage mode is not read.
pub async fn rates_get(svc: Shared, ctx: Context, req: QueryRates) -> R<RatesView> {
    let a = actor(&ctx)?;
    let (hospital, region) = rates_scope(a, &req)?;
    let (lo, hi) = region_range(region);
    let (from, to) = month_bounds(req.month);
    let mut conn = svc.pool.acquire().await?;
    let s = store::rate_sums(&mut conn, hospital, lo, hi, from, to, req.month).await?;
    Ok(rates_view(req.month, &s))
}

const RATES_SHEET: [Column; 16] = [
    col("行政区划 region", 10.0),
    col("医院 hospital", 28.0),
    col("医院ID hospital_id", 38.0),
    col("月份 month", 10.0),
    col("应结算金额(分) due_fen", 14.0),
    col("已结算金额(分) settled_fen", 14.0),
    col("按时结算金额(分) settled_on_time_fen", 16.0),
    col("线下结算金额(分) settled_offline_fen", 16.0),
    col("逾期笔数 overdue_count", 10.0),
    col("网上采购金额(分) online_fen", 14.0),
    col("申报线下采购金额(分) offline_declared_fen", 18.0),
    col("结算率 settlement_rate", 10.0),
    col("及时结算率 timely_rate", 10.0),
    col("网采率 online_rate", 10.0),
    col("结算率(bp) settlement_rate_bp", 10.0),
    col("网采率(bp) online_rate_bp", 10.0),
];

fn percent(bp: Option<u32>) -> Cell {
    bp.map_or(Cell::Empty, |b| {
        format!("{}.{:02}%", b / 100, b % 100).into()
    })
}

fn rates_row(region: &str, name: &str, id: &str, v: &RatesView) -> Vec<Cell> {
    let bp = |b: Option<u32>| b.map_or(Cell::Empty, |b| Cell::Int(b as i64));
    vec![
        region.into(),
        name.into(),
        id.into(),
        v.month.format("%Y-%m").to_string().into(),
        Cell::Int(v.due_fen.fen()),
        Cell::Int(v.settled_fen.fen()),
        Cell::Int(v.settled_on_time_fen.fen()),
        Cell::Int(v.settled_offline_fen.fen()),
        Cell::Int(v.overdue_count),
        Cell::Int(v.online_fen.fen()),
        Cell::Int(v.offline_declared_fen.fen()),
        percent(v.settlement_rate_bp),
        percent(v.timely_rate_bp),
        percent(v.online_rate_bp),
        bp(v.settlement_rate_bp),
        bp(v.online_rate_bp),
    ]
}

/// One row per hospital with anything in the month, then the total of the
/// scope (the same figures `rates_get` gives).
pub async fn rates_export(svc: Shared, ctx: Context, req: QueryRates) -> R<ExportedFile> {
    let a = actor(&ctx)?;
    let (hospital, region) = rates_scope(a, &req)?;
    let (lo, hi) = region_range(region);
    let (from, to) = month_bounds(req.month);
    let mut conn = svc.pool.acquire().await?;
    let hospitals = store::rate_hospitals(&mut conn, hospital, lo, hi, from, to, req.month).await?;
    let mut rows = Vec::new();
    for (h, h_region, name) in &hospitals {
        let s = store::rate_sums(&mut conn, Some(*h), lo, hi, from, to, req.month).await?;
        rows.push(rates_row(
            &h_region.to_string(),
            name,
            &h.to_string(),
            &rates_view(req.month, &s),
        ));
    }
    let total = store::rate_sums(&mut conn, hospital, lo, hi, from, to, req.month).await?;
    rows.push(rates_row(
        &region.to_string(),
        "合计 total",
        "",
        &rates_view(req.month, &total),
    ));
    sheets::xlsx_export(
        format!("rates_{region}_{}.xlsx", req.month.format("%Y%m")),
        "结算率与网采率",
        &RATES_SHEET,
        rows,
        svc.settings.export_limit(),
        "region, hospital",
    )
}
