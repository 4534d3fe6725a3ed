//! Changes (更换/调整): requested by the hospital or the product's
//! manufacturer, decided only by the hospital's territorial bureau.

use sqlx::PgConnection;
use vbp_bus::{Context, RpcError};
use vbp_contracts::distribution::*;
use vbp_kernel::{Actor, OrgKind};

use super::{R, Shared, actor, begin, disallowed, invalid, listed_item, not_found, running_period};
use crate::domain::{self, RelationAction};
use crate::store::{self, NewRelation};

fn limit_error(e: String) -> RpcError {
    RpcError::conflict("change_limit_reached", e).with_field("national_code")
}

pub async fn change_request(svc: Shared, ctx: Context, req: RequestChange) -> R<ChangeView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let hospital = match a.org_kind {
        OrgKind::Hospital => match req.hospital {
            Some(h) if h != a.org => {
                return Err(RpcError::forbidden(
                    "a hospital requests changes of its own relations only",
                ));
            }
            _ => a.org,
        },
        OrgKind::Manufacturer => req.hospital.ok_or_else(|| {
            RpcError::invalid(
                "hospital",
                "a manufacturer names the hospital of the relation",
            )
        })?,
        _ => {
            return Err(RpcError::forbidden(
                "only the hospital or the product's manufacturer may request a change",
            ));
        }
    };
    let reason = domain::reason("reason", &req.reason).map_err(invalid)?;
    if req.from_distributor == req.to_distributor {
        return Err(RpcError::invalid(
            "to_distributor",
            "the new distributor must differ from the one replaced",
        ));
    }
    let mut tx = begin(&svc).await?;
    let period = running_period(&mut tx, req.period, now).await?;
    let item = listed_item(&mut tx, &period, &req.national_code, "national_code").await?;
    if a.org_kind == OrgKind::Manufacturer && item.manufacturer != a.org {
        return Err(RpcError::forbidden(format!(
            "{} is another manufacturer's product; only its manufacturer or the hospital may request a change",
            req.national_code
        )));
    }
    let old = match store::open_relation(
        &mut tx,
        period.id,
        hospital,
        &req.national_code,
        req.from_distributor,
    )
    .await?
    {
        Some(r) if r.state == RelationState::Active => r,
        _ => {
            return Err(RpcError::invalid(
                "from_distributor",
                format!(
                    "{} has no active relation delivering {} to hospital {hospital} in this period",
                    req.from_distributor, req.national_code
                ),
            ));
        }
    };
    let effective_from = domain::change_effective_from(
        req.effective_from,
        now,
        (period.starts_at, period.ends_at),
        old.valid_from.unwrap_or(period.starts_at),
    )
    .map_err(invalid)?;
    if store::covering_authorisation(
        &mut tx,
        period.id,
        item.manufacturer,
        req.to_distributor,
        &req.national_code,
        old.hospital_region,
    )
    .await?
    .is_none()
    {
        return Err(RpcError::invalid(
            "to_distributor",
            format!(
                "distributor {} holds no confirmed authorisation of the manufacturer for {} covering region {}",
                req.to_distributor, req.national_code, old.hospital_region
            ),
        ));
    }
    if store::open_relation(
        &mut tx,
        period.id,
        hospital,
        &req.national_code,
        req.to_distributor,
    )
    .await?
    .is_some()
    {
        return Err(RpcError::conflict(
            "already_related",
            format!(
                "distributor {} already has a pending or active relation for this hospital and product",
                req.to_distributor
            ),
        )
        .with_field("to_distributor"));
    }
    let (approved, pending) =
        store::change_counts(&mut tx, period.id, hospital, &req.national_code).await?;
    domain::check_change_limit(approved, pending, svc.settings.max_changes_per_relation)
        .map_err(limit_error)?;
    let view = ChangeView {
        change: ChangeId::new(),
        period: period.id,
        hospital,
        hospital_region: old.hospital_region,
        national_code: req.national_code.clone(),
        manufacturer: item.manufacturer,
        from_distributor: req.from_distributor,
        to_distributor: req.to_distributor,
        old_relation: old.relation,
        new_relation: None,
        effective_from,
        reason: reason.clone(),
        requested_by: a.org,
        requested_by_kind: a.org_kind,
        requested_at: now,
        approver_region: domain::territorial_bureau(old.hospital_region, &svc.settings),
        state: ChangeState::Pending,
        decided_by: None,
        decision_reason: None,
        decided_at: None,
    };
    if let Err(e) = store::insert_change(&mut tx, &view).await {
        return Err(match store::is_unique_violation(&e) {
            Some(_) => RpcError::conflict(
                "change_pending",
                format!(
                    "relation {} already has a pending change request",
                    old.relation
                ),
            )
            .with_field("from_distributor"),
            None => e.into(),
        });
    }
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &ChangeRequested {
                change: view.change,
                period: period.id,
                hospital,
                hospital_region: view.hospital_region,
                national_code: view.national_code.clone(),
                from_distributor: view.from_distributor,
                to_distributor: view.to_distributor,
                old_relation: view.old_relation,
                effective_from,
                requested_by: a.org,
                approver_region: view.approver_region,
                reason,
                requested_at: now,
            },
        )
        .await?;
    tx.commit().await?;
    Ok(view)
}

/// The pending change, locked, after checking that `a` is its territorial bureau.
async fn decidable(conn: &mut PgConnection, a: &Actor, id: ChangeId) -> R<ChangeView> {
    if a.org_kind != OrgKind::Bureau {
        return Err(RpcError::forbidden(
            "only the hospital's territorial bureau may decide a change",
        ));
    }
    let change = store::get_change(conn, id, true)
        .await?
        .ok_or_else(|| not_found("change", id))?;
    if a.region != change.approver_region {
        return Err(RpcError::forbidden(format!(
            "change {id} is decided by the territorial bureau of region {} (the hospital's in {}); \
             a bureau of region {} may not decide it",
            change.approver_region, change.hospital_region, a.region
        )));
    }
    Ok(change)
}

pub async fn change_approve(svc: Shared, ctx: Context, req: DecideChange) -> R<ChangeView> {
    let a = actor(&ctx)?;
    let note = req
        .reason
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .map(|r| domain::reason("reason", r))
        .transpose()
        .map_err(invalid)?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let change = decidable(&mut tx, a, req.change).await?;
    let state = domain::change_decision(change.state, true).map_err(disallowed)?;
    let period = running_period(&mut tx, change.period, now).await?;
    let (approved, _) = store::change_counts(
        &mut tx,
        change.period,
        change.hospital,
        &change.national_code,
    )
    .await?;
    domain::check_change_limit(approved, 0, svc.settings.max_changes_per_relation)
        .map_err(limit_error)?;
    let old = store::get_relation(&mut tx, change.old_relation, true)
        .await?
        .ok_or_else(|| not_found("relation", change.old_relation))?;
    domain::relation_transition(old.state, RelationAction::End).map_err(disallowed)?;
    // Approved late: the change takes effect now, never in the past, so no
    // past day changes its answer to "who delivered then".
    let effective = change.effective_from.max(now);
    if effective >= period.ends_at {
        return Err(RpcError::conflict(
            "period_over",
            "the change would take effect after the period ends",
        ));
    }
    let Some(auth) = store::covering_authorisation(
        &mut tx,
        change.period,
        change.manufacturer,
        change.to_distributor,
        &change.national_code,
        change.hospital_region,
    )
    .await?
    else {
        return Err(RpcError::conflict(
            "authorisation_not_in_force",
            format!(
                "distributor {} no longer holds a confirmed authorisation covering the hospital",
                change.to_distributor
            ),
        ));
    };
    if store::open_relation(
        &mut tx,
        change.period,
        change.hospital,
        &change.national_code,
        change.to_distributor,
    )
    .await?
    .is_some()
    {
        return Err(RpcError::conflict(
            "already_related",
            format!(
                "distributor {} meanwhile has an open relation for this hospital and product",
                change.to_distributor
            ),
        ));
    }
    let new_id = RelationId::new();
    store::insert_relation(
        &mut tx,
        &NewRelation {
            id: new_id,
            period: change.period,
            hospital: change.hospital,
            hospital_region: change.hospital_region,
            national_code: &change.national_code,
            manufacturer: change.manufacturer,
            distributor: change.to_distributor,
            authorisation: Some(auth),
            state: RelationState::Active,
            selected_at: now,
            valid_from: Some(effective),
            replaces: Some(old.relation),
        },
    )
    .await?;
    let end_reason = format!("replaced by change {}: {}", change.change, change.reason);
    store::end_relation(&mut tx, old.relation, effective, &end_reason, Some(new_id)).await?;
    store::log_relation(
        &mut tx,
        old.relation,
        RelationState::Ended,
        &a.sub,
        Some(&end_reason),
        now,
    )
    .await?;
    store::log_relation(
        &mut tx,
        new_id,
        RelationState::Active,
        &a.sub,
        Some(&format!("change {}", change.change)),
        now,
    )
    .await?;
    store::decide_change(
        &mut tx,
        change.change,
        state,
        a.org,
        note.as_deref(),
        Some(new_id),
        effective,
        now,
    )
    .await?;
    store::clear_at_risk(&mut tx, change.period, &change.national_code, now).await?;
    let valid_from = old.valid_from.unwrap_or(period.starts_at);
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &RelationEnded {
                relation: old.relation,
                period: change.period,
                hospital: change.hospital,
                hospital_region: change.hospital_region,
                national_code: change.national_code.clone(),
                manufacturer: change.manufacturer,
                distributor: change.from_distributor,
                valid_from,
                valid_to: effective,
                reason: end_reason,
                replaced_by: Some(new_id),
                ended_at: now,
            },
        )
        .await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &RelationActivated {
                relation: new_id,
                period: change.period,
                hospital: change.hospital,
                hospital_region: change.hospital_region,
                national_code: change.national_code.clone(),
                manufacturer: change.manufacturer,
                distributor: change.to_distributor,
                valid_from: effective,
                valid_to: None,
                replaces: Some(old.relation),
                activated_at: now,
            },
        )
        .await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &RelationChanged {
                change: change.change,
                period: change.period,
                hospital: change.hospital,
                hospital_region: change.hospital_region,
                national_code: change.national_code.clone(),
                from_distributor: change.from_distributor,
                to_distributor: change.to_distributor,
                old_relation: old.relation,
                new_relation: new_id,
                effective_from: effective,
                approved_by: a.org,
                reason: change.reason.clone(),
                approved_at: now,
            },
        )
        .await?;
    let view = store::get_change(&mut tx, change.change, false)
        .await?
        .ok_or_else(|| not_found("change", change.change))?;
    tx.commit().await?;
    Ok(view)
}

pub async fn change_reject(svc: Shared, ctx: Context, req: DecideChange) -> R<ChangeView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let change = decidable(&mut tx, a, req.change).await?;
    let reason = domain::reason("reason", req.reason.as_deref().unwrap_or("")).map_err(invalid)?;
    let state = domain::change_decision(change.state, false).map_err(disallowed)?;
    store::decide_change(
        &mut tx,
        change.change,
        state,
        a.org,
        Some(&reason),
        None,
        change.effective_from,
        now,
    )
    .await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &ChangeRejected {
                change: change.change,
                period: change.period,
                hospital: change.hospital,
                national_code: change.national_code.clone(),
                old_relation: change.old_relation,
                rejected_by: a.org,
                reason,
                rejected_at: now,
            },
        )
        .await?;
    let view = store::get_change(&mut tx, change.change, false)
        .await?
        .ok_or_else(|| not_found("change", change.change))?;
    tx.commit().await?;
    Ok(view)
}
