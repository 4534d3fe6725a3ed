//! The distribution service: distribution relations (配送关系): authorisation
//! by area, hospital selection, distributor confirmation and bureau-approved
//! changes.
//!
//! It owns the Postgres schema `distribution` and talks to other services only
//! through NATS subjects (DESIGN §2–§3). Layers: [`domain`] (pure rules) ←
//! [`store`] (sqlx) ← [`api`] (RPC handlers), [`consumers`] (projections of
//! the agreements service's events) and [`timers`] (the listing rule) ←
//! [`run`].

pub mod api;
pub mod consumers;
pub mod demo;
pub mod domain;
pub mod store;
pub mod timers;

use std::future::Future;
use std::sync::Arc;

use vbp_bus::{ConsumerSpec, Context, RpcError, RpcServer};
use vbp_contracts::agreements::{OrgRegistered, OrgUpdated, PeriodOpened, SupplyListPublished};
use vbp_contracts::distribution as c;
use vbp_contracts::{Event, RpcOp, Service};
use vbp_platform::{Platform, ServiceHost};

pub const SERVICE: Service = Service::Distribution;

/// This service's migrations, tracked inside its own schema.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

fn op<Op, F, Fut>(rpc: RpcServer, svc: &api::Shared, f: F) -> RpcServer
where
    Op: RpcOp,
    F: Fn(api::Shared, Context, Op::Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Op::Response, RpcError>> + Send + 'static,
{
    let svc = svc.clone();
    rpc.route::<Op, _, _>(move |ctx, req| f(svc.clone(), ctx, req))
}

/// Every operation of [`vbp_contracts::distribution::OPERATIONS`].
pub fn routes(rpc: RpcServer, svc: &api::Shared) -> RpcServer {
    use api::{authorisations as a, changes as ch, queries as q, relations as r};
    let rpc = op::<c::AuthorisationGrant, _, _>(rpc, svc, a::authorisation_grant);
    let rpc = op::<c::AuthorisationConfirm, _, _>(rpc, svc, a::authorisation_confirm);
    let rpc = op::<c::AuthorisationRefuse, _, _>(rpc, svc, a::authorisation_refuse);
    let rpc = op::<c::AuthorisationRevoke, _, _>(rpc, svc, a::authorisation_revoke);
    let rpc = op::<c::AuthorisationGet, _, _>(rpc, svc, q::authorisation_get);
    let rpc = op::<c::AuthorisationList, _, _>(rpc, svc, q::authorisation_list);
    let rpc = op::<c::RelationSelect, _, _>(rpc, svc, r::relation_select);
    let rpc = op::<c::RelationConfirm, _, _>(rpc, svc, r::relation_confirm);
    let rpc = op::<c::RelationRefuse, _, _>(rpc, svc, r::relation_refuse);
    let rpc = op::<c::RelationGet, _, _>(rpc, svc, q::relation_get);
    let rpc = op::<c::RelationList, _, _>(rpc, svc, q::relation_list);
    let rpc = op::<c::RelationAt, _, _>(rpc, svc, q::relation_at);
    let rpc = op::<c::ChangeRequest, _, _>(rpc, svc, ch::change_request);
    let rpc = op::<c::ChangeApprove, _, _>(rpc, svc, ch::change_approve);
    let rpc = op::<c::ChangeReject, _, _>(rpc, svc, ch::change_reject);
    let rpc = op::<c::ChangeList, _, _>(rpc, svc, q::change_list);
    let rpc = op::<c::WorkListOp, _, _>(rpc, svc, q::work_list);
    let rpc = op::<c::RemoteAreaMark, _, _>(rpc, svc, q::remote_area_mark);
    let rpc = op::<c::RemoteAreaListOp, _, _>(rpc, svc, q::remote_area_list);
    let rpc = op::<c::ListingList, _, _>(rpc, svc, q::listing_list);
    op::<c::DemoLoad, _, _>(rpc, svc, demo::demo_load)
}

/// Runs the service until the platform shuts down.
pub async fn run(platform: Platform) -> anyhow::Result<()> {
    let settings: domain::Settings = platform.config.section("distribution")?;
    settings
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration {}: {}", e.field, e.rule))?;
    let host = ServiceHost::start(&platform, SERVICE, migrator()).await?;
    let agreements_stream = platform.ensure_event_stream(Service::Agreements).await?;
    let svc = Arc::new(api::Svc {
        pool: host.pool().clone(),
        outbox: host.outbox().clone(),
        clock: platform.clock.clone(),
        settings: settings.clone(),
    });
    match timers::arm_missing(&svc).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(periods = n, "armed listing-rule timers"),
        Err(e) => tracing::warn!(error = %e, "arming listing-rule timers failed"),
    }
    let ns = &platform.ns;
    host.rpc(|rpc| routes(rpc, &svc))
        .timer(timers::LISTING_AT_RISK_TIMER, timers::AtRisk(svc.clone()))
        .timer(timers::LISTING_SUSPEND_TIMER, timers::Suspend(svc.clone()))
        .consumer(
            ConsumerSpec::new(
                "directory",
                agreements_stream,
                vec![
                    OrgRegistered::subject(ns),
                    OrgUpdated::subject(ns),
                    PeriodOpened::subject(ns),
                    SupplyListPublished::subject(ns),
                ],
            ),
            consumers::Directory { settings },
        )
        .run()
        .await
}
