//! RPC handlers. Each checks who acts (the `Actor` in the context),
//! validates, and commits its state change together with its outbox events;
//! on any error nothing changes. The `*_in` functions take the caller's
//! transaction so the integrator ingest goes through the same rules.

pub mod orders;
pub mod queries;
pub mod settlement;
pub mod shortage;

use std::sync::Arc;

use sqlx::PgPool;
use vbp_bus::{Context, Outbox, RpcError};
use vbp_kernel::{Actor, OrgKind, SharedClock};

use crate::domain::{self, Settings, region_range};
use crate::store::Scope;

/// What every handler needs.
pub struct Svc {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub clock: SharedClock,
    pub settings: Settings,
}

pub type Shared = Arc<Svc>;

pub type R<T> = Result<T, RpcError>;

pub(crate) fn actor(ctx: &Context) -> R<&Actor> {
    ctx.actor
        .as_ref()
        .ok_or_else(|| RpcError::forbidden("an authenticated actor is required"))
}

pub(crate) fn invalid(e: domain::Invalid) -> RpcError {
    RpcError::invalid(e.field, e.rule)
}

pub(crate) fn transition(message: impl Into<String>) -> RpcError {
    RpcError::conflict("invalid_transition", message)
}

pub(crate) fn require_kind(a: &Actor, kinds: &[OrgKind], what: &str) -> R<()> {
    if kinds.contains(&a.org_kind) {
        Ok(())
    } else {
        let names: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        Err(RpcError::forbidden(format!(
            "only a {} may {what} (you act for a {})",
            names.join(" or "),
            a.org_kind
        )))
    }
}

pub(crate) fn not_found(what: &str, id: impl std::fmt::Display) -> RpcError {
    RpcError::not_found(format!("{what} {id} does not exist"))
}

/// Which orders an actor may see.
pub(crate) fn scope_of(a: &Actor) -> Scope {
    let (kind, lo, hi, org) = match a.org_kind {
        OrgKind::Operator => ("all", 0, 999_999, uuid::Uuid::nil()),
        OrgKind::Bureau => {
            let (lo, hi) = region_range(a.region);
            ("region", lo, hi, uuid::Uuid::nil())
        }
        OrgKind::Hospital => ("hospital", 0, -1, a.org.as_uuid()),
        OrgKind::Distributor => ("distributor", 0, -1, a.org.as_uuid()),
        OrgKind::Integrator => ("integrator", 0, -1, a.org.as_uuid()),
        OrgKind::Manufacturer => ("none", 0, -1, uuid::Uuid::nil()),
    };
    Scope { kind, lo, hi, org }
}

pub(crate) async fn begin(svc: &Svc) -> R<sqlx::Transaction<'static, sqlx::Postgres>> {
    Ok(svc.pool.begin().await?)
}
