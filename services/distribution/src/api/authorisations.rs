//! Authorisation by a winning manufacturer; confirmation or refusal by the
//! distributor; revocation.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use vbp_bus::{Context, Outbox, RpcError};
use vbp_contracts::distribution::*;
use vbp_kernel::{Actor, OrgKind};

use super::{
    R, Shared, actor, begin, disallowed, invalid, listed_item, not_found, require_kind,
    running_period,
};
use crate::domain::{self, AuthorisationAction, RelationAction};
use crate::store;

/// Grants an authorisation inside the caller's transaction.
pub async fn grant_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    a: &Actor,
    req: &GrantAuthorisation,
    id: AuthorisationId,
    now: DateTime<Utc>,
) -> R<AuthorisationView> {
    require_kind(a, OrgKind::Manufacturer, "authorise distributors")?;
    let period = running_period(conn, req.period, now).await?;
    match store::get_org(conn, req.distributor).await? {
        None => {
            return Err(RpcError::invalid(
                "distributor",
                format!("{} is not in the organisation directory", req.distributor),
            ));
        }
        Some(o) if !o.is_distributor => {
            return Err(RpcError::invalid(
                "distributor",
                format!("{} ({}) is not a distribution enterprise", o.name, o.id),
            ));
        }
        Some(o) if !o.active => {
            return Err(RpcError::invalid(
                "distributor",
                format!("{} ({}) is inactive in the directory", o.name, o.id),
            ));
        }
        Some(_) => {}
    }
    if req.products.is_empty() {
        return Err(RpcError::invalid("products", "name at least one product"));
    }
    let mut seen = BTreeSet::new();
    for (i, code) in req.products.iter().enumerate() {
        let field = format!("products[{i}]");
        if !seen.insert(code.as_str()) {
            return Err(RpcError::invalid(field, format!("{code} is listed twice")));
        }
        let item = listed_item(conn, &period, code, &field).await?;
        if item.manufacturer != a.org {
            return Err(RpcError::invalid(
                field,
                format!(
                    "{code} is another manufacturer's product; a manufacturer authorises only its own supply-list products"
                ),
            ));
        }
    }
    let areas = domain::validate_areas(&req.areas).map_err(invalid)?;
    store::insert_authorisation(
        conn,
        id,
        period.id,
        a.org,
        req.distributor,
        &req.products,
        &areas,
        &a.sub,
        now,
    )
    .await?;
    outbox
        .append(
            conn,
            ctx,
            &AuthorisationGranted {
                authorisation: id,
                period: period.id,
                manufacturer: a.org,
                distributor: req.distributor,
                products: req.products.clone(),
                areas: areas.clone(),
                granted_at: now,
            },
        )
        .await?;
    store::get_authorisation(conn, id, false)
        .await?
        .ok_or_else(|| not_found("authorisation", id))
}

pub async fn authorisation_grant(
    svc: Shared,
    ctx: Context,
    req: GrantAuthorisation,
) -> R<AuthorisationView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let view = grant_in(
        &mut tx,
        &svc.outbox,
        &ctx,
        a,
        &req,
        AuthorisationId::new(),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(view)
}

/// The distributor's decision inside the caller's transaction.
pub async fn decide_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    a: &Actor,
    id: AuthorisationId,
    refusal: Option<&str>,
    now: DateTime<Utc>,
) -> R<AuthorisationView> {
    let verb = if refusal.is_some() {
        "refuse"
    } else {
        "confirm"
    };
    require_kind(a, OrgKind::Distributor, &format!("{verb} an authorisation"))?;
    let reason = refusal
        .map(|r| domain::reason("reason", r))
        .transpose()
        .map_err(invalid)?;
    let auth = store::get_authorisation(conn, id, true)
        .await?
        .ok_or_else(|| not_found("authorisation", id))?;
    if auth.distributor != a.org {
        return Err(RpcError::forbidden(format!(
            "authorisation {id} names another distributor; only the distributor it names may {verb} it"
        )));
    }
    let action = if reason.is_some() {
        AuthorisationAction::Refuse
    } else {
        AuthorisationAction::Confirm
    };
    let to = domain::authorisation_transition(auth.state, action).map_err(disallowed)?;
    store::set_authorisation_state(conn, id, to, reason.as_deref(), now).await?;
    match reason {
        Some(reason) => {
            outbox
                .append(
                    conn,
                    ctx,
                    &AuthorisationRefused {
                        authorisation: id,
                        manufacturer: auth.manufacturer,
                        distributor: auth.distributor,
                        reason,
                        refused_at: now,
                    },
                )
                .await?;
        }
        None => {
            outbox
                .append(
                    conn,
                    ctx,
                    &AuthorisationConfirmed {
                        authorisation: id,
                        period: auth.period,
                        manufacturer: auth.manufacturer,
                        distributor: auth.distributor,
                        products: auth.products.clone(),
                        areas: auth.areas.clone(),
                        confirmed_at: now,
                    },
                )
                .await?;
        }
    }
    store::get_authorisation(conn, id, false)
        .await?
        .ok_or_else(|| not_found("authorisation", id))
}

pub async fn authorisation_confirm(
    svc: Shared,
    ctx: Context,
    req: ConfirmAuthorisation,
) -> R<AuthorisationView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let view = decide_in(&mut tx, &svc.outbox, &ctx, a, req.authorisation, None, now).await?;
    tx.commit().await?;
    Ok(view)
}

pub async fn authorisation_refuse(
    svc: Shared,
    ctx: Context,
    req: AuthorisationDecision,
) -> R<AuthorisationView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let view = decide_in(
        &mut tx,
        &svc.outbox,
        &ctx,
        a,
        req.authorisation,
        Some(&req.reason),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(view)
}

/// The manufacturer withdraws an authorisation: pending selections under it
/// are cancelled and active relations end now (`relation.ended` each).
pub async fn authorisation_revoke(
    svc: Shared,
    ctx: Context,
    req: AuthorisationDecision,
) -> R<AuthorisationView> {
    let a = actor(&ctx)?;
    require_kind(a, OrgKind::Manufacturer, "revoke an authorisation")?;
    let reason = domain::reason("reason", &req.reason).map_err(invalid)?;
    let now = svc.clock.now();
    let id = req.authorisation;
    let mut tx = begin(&svc).await?;
    let auth = store::get_authorisation(&mut tx, id, true)
        .await?
        .ok_or_else(|| not_found("authorisation", id))?;
    if auth.manufacturer != a.org {
        return Err(RpcError::forbidden(format!(
            "authorisation {id} was granted by another manufacturer; only its grantor may revoke it"
        )));
    }
    let to = domain::authorisation_transition(auth.state, AuthorisationAction::Revoke)
        .map_err(disallowed)?;
    store::set_authorisation_state(&mut tx, id, to, Some(&reason), now).await?;
    let ended_reason = format!("authorisation revoked: {reason}");
    for rel in store::relations_under(&mut tx, id).await? {
        if rel.state == RelationState::Pending {
            domain::relation_transition(rel.state, RelationAction::Cancel).map_err(disallowed)?;
            store::cancel_relation(&mut tx, rel.relation, &ended_reason, now).await?;
            store::log_relation(
                &mut tx,
                rel.relation,
                RelationState::Cancelled,
                &a.sub,
                Some(&ended_reason),
                now,
            )
            .await?;
            continue;
        }
        domain::relation_transition(rel.state, RelationAction::End).map_err(disallowed)?;
        let valid_from = rel.valid_from.unwrap_or(now);
        let valid_to = rel.valid_to.unwrap_or(now).min(now).max(valid_from);
        store::end_relation(&mut tx, rel.relation, valid_to, &ended_reason, None).await?;
        store::log_relation(
            &mut tx,
            rel.relation,
            RelationState::Ended,
            &a.sub,
            Some(&ended_reason),
            now,
        )
        .await?;
        svc.outbox
            .append(
                &mut tx,
                &ctx,
                &RelationEnded {
                    relation: rel.relation,
                    period: rel.period,
                    hospital: rel.hospital,
                    hospital_region: rel.hospital_region,
                    national_code: rel.national_code.clone(),
                    manufacturer: rel.manufacturer,
                    distributor: rel.distributor,
                    valid_from,
                    valid_to,
                    reason: ended_reason.clone(),
                    replaced_by: None,
                    ended_at: now,
                },
            )
            .await?;
    }
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &AuthorisationRevoked {
                authorisation: id,
                manufacturer: auth.manufacturer,
                distributor: auth.distributor,
                products: auth.products.clone(),
                areas: auth.areas.clone(),
                reason,
                revoked_at: now,
            },
        )
        .await?;
    let view = store::get_authorisation(&mut tx, id, false)
        .await?
        .ok_or_else(|| not_found("authorisation", id))?;
    tx.commit().await?;
    Ok(view)
}
