//! Reads, scoped by the actor.

use chrono::Datelike;
use vbp_bus::{Context, RpcError};
use vbp_contracts::orders::*;
use vbp_kernel::{Money, OrgKind};

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

pub async fn order_list(svc: Shared, ctx: Context, req: ListOrders) -> R<OrderList> {
    let a = actor(&ctx)?;
    if req.limit == 0 || req.limit > 500 {
        return Err(RpcError::invalid(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    let mut conn = svc.pool.acquire().await?;
    let ids = store::list_orders(
        &mut conn,
        &scope_of(a),
        req.hospital,
        req.distributor,
        req.limit as i64,
    )
    .await?;
    let mut items = Vec::new();
    for id in ids {
        if let Some(o) = store::get_order(&mut conn, id, false).await? {
            items.push(o);
        }
    }
    Ok(OrderList { items })
}

pub async fn ingest_rejection_list(
    svc: Shared,
    ctx: Context,
    req: ListIngestRejections,
) -> R<IngestRejectionList> {
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
    if req.limit == 0 || req.limit > 500 {
        return Err(RpcError::invalid(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    let mut conn = svc.pool.acquire().await?;
    let items = store::list_rejections(&mut conn, filter.as_deref(), req.limit as i64).await?;
    Ok(IngestRejectionList { items })
}

pub async fn rates_get(svc: Shared, ctx: Context, req: QueryRates) -> R<RatesView> {
    let a = actor(&ctx)?;
    if req.month.day() != 1 {
        return Err(RpcError::invalid(
            "month",
            "a month is given as its first day",
        ));
    }
    let (hospital, region) = match a.org_kind {
        OrgKind::Hospital => {
            if req.hospital.is_some_and(|h| h != a.org) {
                return Err(RpcError::forbidden("a hospital sees only its own rates"));
            }
            (
                Some(a.org),
                req.region.unwrap_or(vbp_kernel::RegionCode::NATIONAL),
            )
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
            (req.hospital, r)
        }
        OrgKind::Operator => (
            req.hospital,
            req.region.unwrap_or(vbp_kernel::RegionCode::NATIONAL),
        ),
        _ => {
            return Err(RpcError::forbidden(
                "rates are for hospitals, bureaus and operators",
            ));
        }
    };
    let (lo, hi) = region_range(region);
    let (from, to) = month_bounds(req.month);
    let mut conn = svc.pool.acquire().await?;
    let s = store::rate_sums(&mut conn, hospital, lo, hi, from, to, req.month).await?;
    Ok(RatesView {
        month: req.month,
        due_fen: Money::from_fen(s.due),
        settled_fen: Money::from_fen(s.settled),
        settled_on_time_fen: Money::from_fen(s.on_time),
        overdue_count: s.overdue,
        online_fen: Money::from_fen(s.online),
        offline_declared_fen: Money::from_fen(s.offline),
        settlement_rate_bp: rate_bp(s.settled, s.due),
        timely_rate_bp: rate_bp(s.on_time, s.due),
        online_rate_bp: rate_bp(s.online, s.online + s.offline),
    })
}
