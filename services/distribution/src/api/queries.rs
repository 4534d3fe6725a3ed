//! Queries scoped by the actor, work lists, and the bureaus' remote-area
//! marks.

use chrono::Days;
use vbp_bus::{Context, RpcError};
use vbp_contracts::distribution::*;
use vbp_contracts::page::Window;
use vbp_kernel::{Actor, OrgKind, RegionLevel, beijing_midnight};

use super::{R, Shared, actor, begin, not_found, scope_of};
use crate::domain::{areas_cover, region_range};
use crate::store::{self, AuthorisationFilter, ChangeFilter, RelationFilter};

fn may_see_authorisation(a: &Actor, v: &AuthorisationView) -> bool {
    match a.org_kind {
        OrgKind::Operator => true,
        OrgKind::Manufacturer => v.manufacturer == a.org,
        OrgKind::Distributor => v.distributor == a.org,
        OrgKind::Hospital => {
            v.state == AuthorisationState::Confirmed && areas_cover(&v.areas, a.region)
        }
        OrgKind::Bureau => v
            .areas
            .iter()
            .any(|r| a.region.contains(*r) || r.contains(a.region)),
        OrgKind::Integrator => false,
    }
}

fn may_see_relation(
    a: &Actor,
    hospital: vbp_kernel::OrgId,
    region: vbp_kernel::RegionCode,
    manufacturer: vbp_kernel::OrgId,
    distributor: vbp_kernel::OrgId,
) -> bool {
    match a.org_kind {
        OrgKind::Operator | OrgKind::Bureau => a.jurisdiction_contains(&region),
        OrgKind::Hospital => hospital == a.org,
        OrgKind::Manufacturer => manufacturer == a.org,
        OrgKind::Distributor => distributor == a.org,
        OrgKind::Integrator => false,
    }
}

pub async fn authorisation_get(
    svc: Shared,
    ctx: Context,
    req: GetAuthorisation,
) -> R<AuthorisationView> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    let v = store::get_authorisation(&mut conn, req.authorisation, false)
        .await?
        .filter(|v| may_see_authorisation(a, v))
        .ok_or_else(|| not_found("authorisation", req.authorisation))?;
    Ok(v)
}

pub async fn authorisation_list(
    svc: Shared,
    ctx: Context,
    req: ListAuthorisations,
) -> R<Page<AuthorisationView>> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let mut conn = svc.pool.acquire().await?;
    let (items, total) = store::list_authorisations(
        &mut conn,
        &scope_of(a),
        &AuthorisationFilter {
            period: req.period,
            state: req.state,
            national_code: req.national_code,
        },
        w.limit(),
        w.offset(),
    )
    .await?;
    Ok(w.page(items, total))
}

pub async fn relation_get(svc: Shared, ctx: Context, req: GetRelation) -> R<RelationView> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    store::get_relation(&mut conn, req.relation, false)
        .await?
        .filter(|v| {
            may_see_relation(
                a,
                v.hospital,
                v.hospital_region,
                v.manufacturer,
                v.distributor,
            )
        })
        .ok_or_else(|| not_found("relation", req.relation))
}

pub async fn relation_list(svc: Shared, ctx: Context, req: ListRelations) -> R<Page<RelationView>> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let mut conn = svc.pool.acquire().await?;
    let (items, total) = store::list_relations(
        &mut conn,
        &scope_of(a),
        &RelationFilter {
            period: req.period,
            national_code: req.national_code,
            hospital: req.hospital,
            distributor: req.distributor,
            state: req.state,
            remote_area_only: req.remote_area_only,
        },
        w.limit(),
        w.offset(),
    )
    .await?;
    Ok(w.page(items, total))
}

/// Who delivered (hospital, product) on a Beijing day: every relation whose
/// validity overlaps that day, across changes.
pub async fn relation_at(svc: Shared, ctx: Context, req: WhoDelivered) -> R<Delivering> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    match a.org_kind {
        OrgKind::Hospital if req.hospital != a.org => {
            return Err(RpcError::forbidden(
                "a hospital asks about its own relations only",
            ));
        }
        OrgKind::Bureau => {
            let inside = store::get_org(&mut conn, req.hospital)
                .await?
                .is_some_and(|h| a.jurisdiction_contains(&h.region));
            if !inside {
                return Err(RpcError::forbidden(format!(
                    "hospital {} is not in your jurisdiction ({})",
                    req.hospital, a.region
                )));
            }
        }
        OrgKind::Integrator => {
            return Err(RpcError::forbidden("integrators do not query relations"));
        }
        _ => {}
    }
    let from = beijing_midnight(req.on);
    let to = beijing_midnight(
        req.on
            .checked_add_days(Days::new(1))
            .ok_or_else(|| RpcError::invalid("on", "date out of range"))?,
    );
    let relations =
        store::delivering_between(&mut conn, req.hospital, &req.national_code, from, to)
            .await?
            .into_iter()
            .filter(|v| {
                may_see_relation(
                    a,
                    v.hospital,
                    v.hospital_region,
                    v.manufacturer,
                    v.distributor,
                )
            })
            .collect();
    Ok(Delivering {
        hospital: req.hospital,
        national_code: req.national_code,
        on: req.on,
        relations,
    })
}

pub async fn change_list(svc: Shared, ctx: Context, req: ListChanges) -> R<Page<ChangeView>> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let mut conn = svc.pool.acquire().await?;
    let (items, total) = store::list_changes(
        &mut conn,
        &scope_of(a),
        &ChangeFilter {
            period: req.period,
            state: req.state,
            hospital: req.hospital,
        },
        w.limit(),
        w.offset(),
    )
    .await?;
    Ok(w.page(items, total))
}

/// What waits for the actor: a distributor confirms authorisations and
/// selections; a territorial bureau decides changes; a manufacturer or a
/// hospital sees what it is waiting for.
pub async fn work_list(svc: Shared, ctx: Context, _req: QueryWorkList) -> R<WorkList> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    let mut out = WorkList {
        authorisations: Vec::new(),
        relations: Vec::new(),
        changes: Vec::new(),
    };
    let scope = scope_of(a);
    match a.org_kind {
        OrgKind::Distributor => {
            out.authorisations = store::pending_for_distributor(&mut conn, a.org).await?;
            out.relations = store::pending_selections(&mut conn, a.org).await?;
        }
        OrgKind::Bureau => {
            out.changes = store::pending_for_approver(&mut conn, a.region).await?;
        }
        OrgKind::Manufacturer | OrgKind::Hospital | OrgKind::Operator => {
            if a.org_kind != OrgKind::Hospital {
                out.authorisations = store::list_authorisations(
                    &mut conn,
                    &scope,
                    &AuthorisationFilter {
                        period: None,
                        state: Some(AuthorisationState::Pending),
                        national_code: None,
                    },
                    500,
                    0,
                )
                .await?
                .0;
            }
            out.relations = store::list_relations(
                &mut conn,
                &scope,
                &RelationFilter {
                    period: None,
                    national_code: None,
                    hospital: None,
                    distributor: None,
                    state: Some(RelationState::Pending),
                    remote_area_only: false,
                },
                500,
                0,
            )
            .await?
            .0;
            out.changes = store::list_changes(
                &mut conn,
                &scope,
                &ChangeFilter {
                    period: None,
                    state: Some(ChangeState::Pending),
                    hospital: None,
                },
                500,
                0,
            )
            .await?
            .0;
        }
        OrgKind::Integrator => {}
    }
    Ok(out)
}

/// A bureau marks a county of its jurisdiction remote; refusals of
/// selections by its hospitals are then recorded as remote-area refusals.
pub async fn remote_area_mark(svc: Shared, ctx: Context, req: MarkRemoteArea) -> R<RemoteAreaView> {
    let a = actor(&ctx)?;
    if !matches!(a.org_kind, OrgKind::Bureau | OrgKind::Operator) {
        return Err(RpcError::forbidden("only bureaus mark remote areas"));
    }
    if req.region.level() != RegionLevel::County {
        return Err(RpcError::invalid(
            "region",
            format!(
                "{} is not a county code; remote areas are counties",
                req.region
            ),
        ));
    }
    if !a.jurisdiction_contains(&req.region) {
        return Err(RpcError::forbidden(format!(
            "county {} is outside your jurisdiction ({})",
            req.region, a.region
        )));
    }
    let note = req
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    if note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        return Err(RpcError::invalid(
            "note",
            "a note is at most 500 characters",
        ));
    }
    let view = RemoteAreaView {
        region: req.region,
        remote: req.remote,
        note,
        marked_by: a.org,
        marked_at: svc.clock.now(),
    };
    let mut tx = begin(&svc).await?;
    store::mark_remote(&mut tx, &view).await?;
    tx.commit().await?;
    Ok(view)
}

pub async fn remote_area_list(svc: Shared, ctx: Context, _req: ListRemoteAreas) -> R<RemoteAreas> {
    let a = actor(&ctx)?;
    let (lo, hi) = match a.org_kind {
        OrgKind::Bureau => region_range(a.region),
        _ => (0, 999_999),
    };
    let mut conn = svc.pool.acquire().await?;
    Ok(RemoteAreas {
        items: store::remote_areas(&mut conn, lo, hi).await?,
    })
}

pub async fn listing_list(svc: Shared, ctx: Context, req: ListListings) -> R<Page<ListingView>> {
    let a = actor(&ctx)?;
    let manufacturer = match a.org_kind {
        OrgKind::Manufacturer => Some(a.org),
        OrgKind::Bureau | OrgKind::Operator => None,
        _ => {
            return Err(RpcError::forbidden(
                "listing states are for manufacturers (their own) and bureaus",
            ));
        }
    };
    let w = Window::new(req.page, req.page_size)?;
    let mut conn = svc.pool.acquire().await?;
    let (items, total) = store::list_listings(
        &mut conn,
        manufacturer,
        req.period,
        req.state,
        w.limit(),
        w.offset(),
    )
    .await?;
    Ok(w.page(items, total))
}
