//! Selection (点配送) by a hospital and the distributor's confirmation or
//! refusal.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use vbp_bus::{Context, Outbox, RpcError};
use vbp_contracts::distribution::*;
use vbp_kernel::{Actor, OrgKind, RegionLevel};

use super::{
    R, Shared, actor, begin, disallowed, invalid, listed_item, not_found, require_kind,
    running_period,
};
use crate::domain::{self, RelationAction};
use crate::store::{self, NewRelation};

/// Most distributors one selection may name.
pub const MAX_SELECTED: usize = 20;

/// A hospital's selection inside the caller's transaction: one pending
/// relation per distributor.
pub async fn select_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    a: &Actor,
    req: &SelectDistributors,
    now: DateTime<Utc>,
) -> R<Selection> {
    require_kind(a, OrgKind::Hospital, "select distributors")?;
    let hospital = store::get_org(conn, a.org).await?.ok_or_else(|| {
        RpcError::invalid(
            "hospital",
            format!(
                "hospital {} is not in the organisation directory (no agreements.org.registered received)",
                a.org
            ),
        )
    })?;
    let period = running_period(conn, req.period, now).await?;
    let item = listed_item(conn, &period, &req.national_code, "national_code").await?;
    if req.distributors.is_empty() {
        return Err(RpcError::invalid(
            "distributors",
            "select at least one distributor",
        ));
    }
    if req.distributors.len() > MAX_SELECTED {
        return Err(RpcError::invalid(
            "distributors",
            format!("at most {MAX_SELECTED} distributors per selection"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, d) in req.distributors.iter().enumerate() {
        let field = format!("distributors[{i}]");
        if !seen.insert(*d) {
            return Err(RpcError::invalid(field, format!("{d} is listed twice")));
        }
        let Some(auth) = store::covering_authorisation(
            conn,
            period.id,
            item.manufacturer,
            *d,
            &req.national_code,
            hospital.region,
        )
        .await?
        else {
            return Err(RpcError::invalid(
                field,
                format!(
                    "distributor {d} holds no confirmed authorisation of the manufacturer for {} covering region {}; \
                     a hospital selects only among distributors authorised for its area",
                    req.national_code, hospital.region
                ),
            ));
        };
        if store::open_relation(conn, period.id, a.org, &req.national_code, *d)
            .await?
            .is_some()
        {
            return Err(RpcError::conflict(
                "already_selected",
                format!(
                    "distributor {d} already has a pending or active relation for {} with this hospital",
                    req.national_code
                ),
            )
            .with_field(field));
        }
        let id = RelationId::new();
        store::insert_relation(
            conn,
            &NewRelation {
                id,
                period: period.id,
                hospital: a.org,
                hospital_region: hospital.region,
                national_code: &req.national_code,
                manufacturer: item.manufacturer,
                distributor: *d,
                authorisation: Some(auth),
                state: RelationState::Pending,
                selected_at: now,
                valid_from: None,
                replaces: None,
            },
        )
        .await?;
        store::log_relation(conn, id, RelationState::Pending, &a.sub, None, now).await?;
        outbox
            .append(
                conn,
                ctx,
                &RelationSelected {
                    relation: id,
                    period: period.id,
                    hospital: a.org,
                    hospital_region: hospital.region,
                    national_code: req.national_code.clone(),
                    manufacturer: item.manufacturer,
                    distributor: *d,
                    authorisation: auth,
                    selected_at: now,
                },
            )
            .await?;
        out.push(id);
    }
    let mut relations = Vec::new();
    for id in out {
        relations.push(
            store::get_relation(conn, id, false)
                .await?
                .ok_or_else(|| not_found("relation", id))?,
        );
    }
    Ok(Selection { relations })
}

pub async fn relation_select(svc: Shared, ctx: Context, req: SelectDistributors) -> R<Selection> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let sel = select_in(&mut tx, &svc.outbox, &ctx, a, &req, now).await?;
    tx.commit().await?;
    Ok(sel)
}

/// The distributor's decision on a selection inside the caller's transaction.
pub async fn decide_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    a: &Actor,
    id: RelationId,
    refusal: Option<&str>,
    now: DateTime<Utc>,
) -> R<RelationView> {
    let verb = if refusal.is_some() {
        "refuse"
    } else {
        "confirm"
    };
    require_kind(a, OrgKind::Distributor, &format!("{verb} a selection"))?;
    let reason = refusal
        .map(|r| domain::reason("reason", r))
        .transpose()
        .map_err(invalid)?;
    let rel = store::get_relation(conn, id, true)
        .await?
        .ok_or_else(|| not_found("relation", id))?;
    if rel.distributor != a.org {
        return Err(RpcError::forbidden(format!(
            "relation {id} names another distributor; only the selected distributor may {verb} it"
        )));
    }
    match reason {
        Some(reason) => {
            let to = domain::relation_transition(rel.state, RelationAction::Refuse)
                .map_err(disallowed)?;
            let remote = rel.hospital_region.level() == RegionLevel::County
                && store::is_remote(conn, rel.hospital_region).await?;
            store::decide_relation(conn, id, to, Some(&reason), remote, None, now).await?;
            store::log_relation(conn, id, to, &a.sub, Some(&reason), now).await?;
            outbox
                .append(
                    conn,
                    ctx,
                    &RelationRefused {
                        relation: id,
                        period: rel.period,
                        hospital: rel.hospital,
                        hospital_region: rel.hospital_region,
                        national_code: rel.national_code.clone(),
                        manufacturer: rel.manufacturer,
                        distributor: rel.distributor,
                        reason,
                        remote_area: remote,
                        refused_at: now,
                    },
                )
                .await?;
        }
        None => {
            let to = domain::relation_transition(rel.state, RelationAction::Confirm)
                .map_err(disallowed)?;
            let period = running_period(conn, rel.period, now).await?;
            if let Some(auth) = rel.authorisation {
                let in_force = store::get_authorisation(conn, auth, false)
                    .await?
                    .is_some_and(|x| x.state == AuthorisationState::Confirmed);
                if !in_force {
                    return Err(RpcError::conflict(
                        "authorisation_not_in_force",
                        format!(
                            "authorisation {auth} under which the hospital selected you is no longer confirmed"
                        ),
                    ));
                }
            }
            let valid_from = domain::activation_start(now, period.starts_at);
            store::decide_relation(conn, id, to, None, false, Some(valid_from), now).await?;
            store::log_relation(conn, id, to, &a.sub, None, now).await?;
            store::clear_at_risk(conn, rel.period, &rel.national_code, now).await?;
            outbox
                .append(
                    conn,
                    ctx,
                    &RelationActivated {
                        relation: id,
                        period: rel.period,
                        hospital: rel.hospital,
                        hospital_region: rel.hospital_region,
                        national_code: rel.national_code.clone(),
                        manufacturer: rel.manufacturer,
                        distributor: rel.distributor,
                        valid_from,
                        valid_to: None,
                        replaces: None,
                        activated_at: now,
                    },
                )
                .await?;
        }
    }
    store::get_relation(conn, id, false)
        .await?
        .ok_or_else(|| not_found("relation", id))
}

pub async fn relation_confirm(svc: Shared, ctx: Context, req: ConfirmRelation) -> R<RelationView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let view = decide_in(&mut tx, &svc.outbox, &ctx, a, req.relation, None, now).await?;
    tx.commit().await?;
    Ok(view)
}

pub async fn relation_refuse(svc: Shared, ctx: Context, req: RefuseRelation) -> R<RelationView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let view = decide_in(
        &mut tx,
        &svc.outbox,
        &ctx,
        a,
        req.relation,
        Some(&req.reason),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(view)
}
