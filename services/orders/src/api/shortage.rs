//! Shortage mode (湘医保函〔2024〕2号): a bureau flags a winning product short
//! in its region; while flagged, order lines above the cap are capped,
//! hospitals with agreed volume are served first, and hospitals may record
//! non-winning substitutes in a ledger that no assessment reads.

use chrono::Duration;
use vbp_bus::{Context, RpcError};
use vbp_contracts::orders::*;
use vbp_contracts::page::Window;
use vbp_kernel::{OrgKind, RegionCode};

use super::{R, Shared, actor, begin, invalid, not_found, require_kind, scope_of, transition};
use crate::domain::{self, region_range};
use crate::store;

/// Most characters of a substitute's name.
const MAX_NAME: usize = 200;

pub async fn shortage_flag(svc: Shared, ctx: Context, req: FlagShortage) -> R<ShortageView> {
    let a = actor(&ctx)?;
    require_kind(a, &[OrgKind::Bureau], "flag a product short")?;
    let region = req.region.unwrap_or(a.region);
    if !a.region.contains(region) {
        return Err(RpcError::forbidden(format!(
            "region {region} is outside your jurisdiction {}",
            a.region
        ))
        .with_field("region"));
    }
    let reason = domain::reason("reason", Some(&req.reason)).map_err(invalid)?;
    let cap = match req.cap_per_line.or(svc.settings.shortage_line_cap) {
        Some(c) if c >= 1 => c,
        Some(_) => {
            return Err(RpcError::invalid(
                "cap_per_line",
                "the cap per order line is at least 1",
            ));
        }
        None => {
            return Err(RpcError::invalid(
                "cap_per_line",
                "a cap per order line is required: none is configured in [orders].shortage_line_cap",
            ));
        }
    };
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    if !store::product_listed(&mut tx, &req.national_code).await? {
        return Err(RpcError::invalid(
            "national_code",
            format!("{} is in no supply list", req.national_code),
        ));
    }
    let view = ShortageView {
        shortage: ShortageId::new(),
        region,
        national_code: req.national_code.clone(),
        cap_per_line: cap,
        bureau: a.org,
        reason,
        flagged_by: a.sub.clone(),
        flagged_at: now,
        lifted_at: None,
        lift_reason: None,
    };
    if !store::insert_shortage(&mut tx, &view).await? {
        return Err(RpcError::conflict(
            "already_flagged",
            format!(
                "{} is already flagged short in region {region}; lift that flag to change its cap",
                req.national_code
            ),
        )
        .with_field("national_code"));
    }
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &ShortageFlagged {
                shortage: view.shortage,
                region,
                national_code: view.national_code.clone(),
                cap_per_line: cap,
                bureau: a.org,
                reason: view.reason.clone(),
                flagged_at: now,
            },
        )
        .await?;
    tx.commit().await?;
    Ok(view)
}

pub async fn shortage_lift(svc: Shared, ctx: Context, req: LiftShortage) -> R<ShortageView> {
    let a = actor(&ctx)?;
    require_kind(a, &[OrgKind::Bureau], "lift a shortage flag")?;
    let reason = match req.reason.as_deref() {
        Some(r) => Some(domain::reason("reason", Some(r)).map_err(invalid)?),
        None => None,
    };
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let s = store::get_shortage(&mut tx, req.shortage, true)
        .await?
        .ok_or_else(|| not_found("shortage", req.shortage))?;
    if !a.region.contains(s.region) {
        return Err(RpcError::forbidden(format!(
            "shortage {} is flagged in region {}, outside your jurisdiction {}",
            s.shortage, s.region, a.region
        )));
    }
    if let Some(at) = s.lifted_at {
        return Err(transition(format!(
            "shortage {} was already lifted at {at}",
            s.shortage
        )));
    }
    store::lift_shortage(&mut tx, s.shortage, &a.sub, reason.as_deref(), now).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &ShortageLifted {
                shortage: s.shortage,
                region: s.region,
                national_code: s.national_code.clone(),
                bureau: a.org,
                reason: reason.clone(),
                lifted_at: now,
            },
        )
        .await?;
    let v = store::get_shortage(&mut tx, s.shortage, false)
        .await?
        .ok_or_else(|| not_found("shortage", s.shortage))?;
    tx.commit().await?;
    Ok(v)
}

/// Every party may see the flags that concern it: a bureau its subtree, a
/// hospital its region, distributors and operators any region they ask for.
pub async fn shortage_list(svc: Shared, ctx: Context, req: ListShortages) -> R<ShortageList> {
    let a = actor(&ctx)?;
    let region = match a.org_kind {
        OrgKind::Bureau | OrgKind::Hospital => {
            let r = req.region.unwrap_or(a.region);
            if !a.region.contains(r) && !r.contains(a.region) {
                return Err(RpcError::forbidden(format!(
                    "region {r} is outside your region {}",
                    a.region
                ))
                .with_field("region"));
            }
            r
        }
        _ => req.region.unwrap_or(RegionCode::NATIONAL),
    };
    let (lo, hi) = region_range(region);
    let mut conn = svc.pool.acquire().await?;
    let items = store::list_shortages(&mut conn, lo, hi, req.include_lifted).await?;
    Ok(ShortageList { items })
}

pub async fn substitute_record(
    svc: Shared,
    ctx: Context,
    req: RecordSubstitute,
) -> R<SubstituteView> {
    let a = actor(&ctx)?;
    require_kind(a, &[OrgKind::Hospital], "record a substitute purchase")?;
    let name = req.substitute_name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(RpcError::invalid(
            "substitute_name",
            format!("a substitute's name has 1 to {MAX_NAME} characters"),
        ));
    }
    if req.substitute_code.as_ref() == Some(&req.short_product) {
        return Err(RpcError::invalid(
            "substitute_code",
            "a substitute is another product than the short one",
        ));
    }
    if req.quantity < 1 || req.quantity > vbp_contracts::ingest::MAX_LINE_QUANTITY {
        return Err(RpcError::invalid(
            "quantity",
            format!(
                "quantity must be between 1 and {}",
                vbp_contracts::ingest::MAX_LINE_QUANTITY
            ),
        ));
    }
    if req.amount_fen.fen() < 1 {
        return Err(RpcError::invalid(
            "amount_fen",
            "the amount must be positive",
        ));
    }
    let now = svc.clock.now();
    let today = domain::local_date(now);
    if req.purchased_on > today {
        return Err(RpcError::invalid(
            "purchased_on",
            format!(
                "a purchase on {} lies after today {today}",
                req.purchased_on
            ),
        ));
    }
    let mut tx = begin(&svc).await?;
    let h = store::get_org(&mut tx, a.org).await?.ok_or_else(|| {
        RpcError::invalid("hospital", format!("{} is not in the directory", a.org))
    })?;
    // The purchase must fall while the product was flagged short for the
    // hospital: by the end of the purchase day the flag was raised, and it
    // was not lifted before that day began.
    let day_end = domain::start_of_day(req.purchased_on + Duration::days(1)) - Duration::seconds(1);
    let mut short = store::shortage_at(&mut tx, h.region, &req.short_product, day_end).await?;
    if short.is_none() {
        let day_start = domain::start_of_day(req.purchased_on);
        short = store::shortage_at(&mut tx, h.region, &req.short_product, day_start).await?;
    }
    let short = short.ok_or_else(|| {
        RpcError::invalid(
            "short_product",
            format!(
                "{} was not flagged short in region {} on {}; substitutes are recorded only for flagged products",
                req.short_product, h.region, req.purchased_on
            ),
        )
    })?;
    let period = store::period_at(&mut tx, domain::start_of_day(req.purchased_on))
        .await?
        .ok_or_else(|| {
            RpcError::invalid(
                "purchased_on",
                format!("no agreement period runs on {}", req.purchased_on),
            )
        })?;
    let view = SubstituteView {
        entry: SubstituteId::new(),
        shortage: short.shortage,
        hospital: a.org,
        hospital_region: h.region,
        period: period.id,
        short_product: req.short_product.clone(),
        substitute_name: name.to_owned(),
        substitute_code: req.substitute_code.clone(),
        quantity: req.quantity,
        amount_fen: req.amount_fen,
        purchased_on: req.purchased_on,
        recorded_at: now,
    };
    store::insert_substitute(&mut tx, &view, &a.sub).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &SubstituteRecorded {
                hospital: a.org,
                hospital_region: h.region,
                period: period.id,
                short_product: view.short_product.clone(),
                substitute_name: view.substitute_name.clone(),
                substitute_code: view.substitute_code.clone(),
                quantity: view.quantity,
                amount_fen: view.amount_fen,
                recorded_at: now,
                entry: Some(view.entry),
                shortage: Some(short.shortage),
                purchased_on: Some(view.purchased_on),
            },
        )
        .await?;
    tx.commit().await?;
    Ok(view)
}

pub async fn substitute_list(
    svc: Shared,
    ctx: Context,
    req: ListSubstitutes,
) -> R<Page<SubstituteView>> {
    let a = actor(&ctx)?;
    require_kind(
        a,
        &[OrgKind::Hospital, OrgKind::Bureau, OrgKind::Operator],
        "read the substitute ledger",
    )?;
    let w = Window::new(req.page, req.page_size)?;
    let mut scope = scope_of(a);
    if let Some(r) = req.region {
        if a.org_kind == OrgKind::Bureau && !a.region.contains(r) {
            return Err(RpcError::forbidden(format!(
                "region {r} is outside your jurisdiction {}",
                a.region
            ))
            .with_field("region"));
        }
        if a.org_kind != OrgKind::Hospital {
            let (lo, hi) = region_range(r);
            scope.kind = "region";
            scope.lo = lo;
            scope.hi = hi;
        }
    }
    let mut conn = svc.pool.acquire().await?;
    let (items, total) =
        store::list_substitutes(&mut conn, &scope, req.hospital, (w.limit(), w.offset())).await?;
    Ok(w.page(items, total))
}
