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

use std::sync::Arc;

use vbp_bus::{ConsumerSpec, RpcServer};
use vbp_contracts::agreements::{OrgRegistered, OrgUpdated, PeriodOpened, SupplyListPublished};
use vbp_contracts::distribution as c;
use vbp_contracts::{Event, Service};
use vbp_platform::{Platform, ServiceHost};

pub const SERVICE: Service = Service::Distribution;

/// This service's migrations, tracked inside its own schema.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// Every operation of [`vbp_contracts::distribution::OPERATIONS`].
pub fn routes(rpc: RpcServer, svc: &api::Shared) -> RpcServer {
    use api::{authorisations as a, changes as ch, queries as q, relations as r};
    let rpc = rpc.route_with::<c::AuthorisationGrant, _, _, _>(svc, a::authorisation_grant);
    let rpc = rpc.route_with::<c::AuthorisationConfirm, _, _, _>(svc, a::authorisation_confirm);
    let rpc = rpc.route_with::<c::AuthorisationRefuse, _, _, _>(svc, a::authorisation_refuse);
    let rpc = rpc.route_with::<c::AuthorisationRevoke, _, _, _>(svc, a::authorisation_revoke);
    let rpc = rpc.route_with::<c::AuthorisationGet, _, _, _>(svc, q::authorisation_get);
    let rpc = rpc.route_with::<c::AuthorisationList, _, _, _>(svc, q::authorisation_list);
    let rpc = rpc.route_with::<c::RelationSelect, _, _, _>(svc, r::relation_select);
    let rpc = rpc.route_with::<c::RelationConfirm, _, _, _>(svc, r::relation_confirm);
    let rpc = rpc.route_with::<c::RelationRefuse, _, _, _>(svc, r::relation_refuse);
    let rpc = rpc.route_with::<c::RelationGet, _, _, _>(svc, q::relation_get);
    let rpc = rpc.route_with::<c::RelationList, _, _, _>(svc, q::relation_list);
    let rpc = rpc.route_with::<c::RelationAt, _, _, _>(svc, q::relation_at);
    let rpc = rpc.route_with::<c::ChangeRequest, _, _, _>(svc, ch::change_request);
    let rpc = rpc.route_with::<c::ChangeApprove, _, _, _>(svc, ch::change_approve);
    let rpc = rpc.route_with::<c::ChangeReject, _, _, _>(svc, ch::change_reject);
    let rpc = rpc.route_with::<c::ChangeList, _, _, _>(svc, q::change_list);
    let rpc = rpc.route_with::<c::WorkListOp, _, _, _>(svc, q::work_list);
    let rpc = rpc.route_with::<c::RemoteAreaMark, _, _, _>(svc, q::remote_area_mark);
    let rpc = rpc.route_with::<c::RemoteAreaListOp, _, _, _>(svc, q::remote_area_list);
    let rpc = rpc.route_with::<c::ListingList, _, _, _>(svc, q::listing_list);
    rpc.route_with::<c::DemoLoad, _, _, _>(svc, demo::demo_load)
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
