//! RPC handlers. Each one checks who acts (the `Actor` in the context),
//! validates, and commits its state change together with its outbox events;
//! on any error nothing changes. The `*_in` functions take the caller's
//! transaction so the demo loader goes through the same rules.

pub mod authorisations;
pub mod changes;
pub mod queries;
pub mod relations;

use std::sync::Arc;

use sqlx::{PgConnection, PgPool};
use vbp_bus::{Context, Outbox, RpcError};
use vbp_contracts::agreements::PeriodId;
use vbp_kernel::{Actor, NationalCode, OrgKind, SharedClock};

use crate::domain::{self, Settings};
use crate::store::{self, ItemRow, PeriodRow, Scope};

/// What every handler needs.
pub struct Svc {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub clock: SharedClock,
    pub settings: Settings,
}

pub type Shared = Arc<Svc>;

pub(crate) type R<T> = Result<T, RpcError>;

pub(crate) fn actor(ctx: &Context) -> R<&Actor> {
    ctx.actor
        .as_ref()
        .ok_or_else(|| RpcError::forbidden("an authenticated actor is required"))
}

pub(crate) fn invalid(e: domain::Invalid) -> RpcError {
    RpcError::invalid(e.field, e.rule)
}

pub(crate) fn disallowed(e: domain::Disallowed) -> RpcError {
    RpcError::conflict("invalid_transition", e.to_string())
}

pub(crate) fn require_kind(a: &Actor, kind: OrgKind, what: &str) -> R<()> {
    if a.org_kind == kind {
        Ok(())
    } else {
        Err(RpcError::forbidden(format!(
            "only a {kind} may {what} (you act for a {})",
            a.org_kind
        )))
    }
}

/// What an actor may see of relation-like rows.
pub(crate) fn scope_of(a: &Actor) -> Scope {
    match a.org_kind {
        OrgKind::Operator => Scope::all(),
        OrgKind::Bureau => Scope::region(a.region),
        OrgKind::Hospital => Scope::hospital(a.org, a.region),
        OrgKind::Manufacturer => Scope::manufacturer(a.org),
        OrgKind::Distributor => Scope::distributor(a.org),
        OrgKind::Integrator => Scope::none(),
    }
}

pub(crate) async fn begin(svc: &Svc) -> R<sqlx::Transaction<'static, sqlx::Postgres>> {
    Ok(svc.pool.begin().await?)
}

/// The period from the projection, which must still run at `now`.
pub(crate) async fn running_period(
    conn: &mut PgConnection,
    id: PeriodId,
    now: chrono::DateTime<chrono::Utc>,
) -> R<PeriodRow> {
    let p = store::get_period(conn, id).await?.ok_or_else(|| {
        RpcError::invalid(
            "period",
            format!(
                "period {id} is unknown here (no agreements.period.opened or supply list received)"
            ),
        )
    })?;
    if now >= p.ends_at {
        return Err(RpcError::invalid(
            "period",
            format!("period {id} ended at {}", p.ends_at),
        ));
    }
    Ok(p)
}

/// The product in the period's published supply list.
pub(crate) async fn listed_item(
    conn: &mut PgConnection,
    period: &PeriodRow,
    code: &NationalCode,
    field: &str,
) -> R<ItemRow> {
    store::supply_item(conn, period.id, code)
        .await?
        .ok_or_else(|| {
            RpcError::invalid(
                field,
                format!(
                    "{code} is not in the published supply list of period {} (number {})",
                    period.id, period.number
                ),
            )
        })
}

pub(crate) fn not_found(what: &str, id: impl std::fmt::Display) -> RpcError {
    RpcError::not_found(format!("{what} {id} does not exist"))
}
