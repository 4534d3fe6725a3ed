//! The supervision service: weekly progress monitoring, monthly reminders
//! and quarterly notices to hospitals, the annual assessment, credit
//! records of enterprises with rectification deadlines and escalation, and
//! detection of selective delivery and stops after the agreed volume.
//!
//! It owns the Postgres schema `supervision` and learns everything from
//! other services' events (DESIGN §3 projections); the one call it makes is
//! filing a finding in issue direct reporting over NATS RPC, from a durable
//! timer so a slow or absent issues service never blocks a projection.
//! Layers: [`domain`] (pure rules) ← [`api`], [`monitor`], [`credit`],
//! [`detect`] (RPC handlers, timers) and [`consumers`] ← [`run`].

pub mod api;
pub mod consumers;
pub mod credit;
pub mod detect;
pub mod domain;
pub mod monitor;
pub mod projection;

use std::sync::Arc;

use vbp_bus::{ConsumerSpec, RpcServer};
use vbp_contracts::agreements::{
    AgreedVolumeSet, FlagRaised, OrgRegistered, OrgUpdated, PeriodOpened,
};
use vbp_contracts::issues::IssueRepeated;
use vbp_contracts::orders::{
    OfflinePurchaseDeclared, OrderPlaced, OrderResponded, ReceiptAccepted, SettlementPaid,
    ShipmentDispatched,
};
use vbp_contracts::supervision as c;
use vbp_contracts::{Event, Service};
use vbp_platform::{Platform, ServiceHost};

pub const SERVICE: Service = Service::Supervision;

/// This service's migrations, tracked inside its own schema.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// Every operation of [`vbp_contracts::supervision::OPERATIONS`].
pub fn routes(rpc: RpcServer, svc: &api::Shared) -> RpcServer {
    let rpc = rpc.route_with::<c::ProgressWeekly, _, _, _>(svc, monitor::progress_weekly);
    let rpc = rpc.route_with::<c::WorkItemsGenerate, _, _, _>(svc, monitor::work_items_generate);
    let rpc = rpc.route_with::<c::WorkItemsList, _, _, _>(svc, monitor::work_items_list);
    let rpc = rpc.route_with::<c::WorkItemsExport, _, _, _>(svc, monitor::work_items_export);
    let rpc = rpc.route_with::<c::Assessment, _, _, _>(svc, monitor::assessment);
    let rpc = rpc.route_with::<c::CreditFile, _, _, _>(svc, credit::credit_file);
    let rpc = rpc.route_with::<c::CreditGet, _, _, _>(svc, credit::credit_get);
    let rpc = rpc.route_with::<c::CreditList, _, _, _>(svc, credit::credit_list);
    let rpc = rpc.route_with::<c::CreditRectify, _, _, _>(svc, credit::credit_rectify);
    let rpc = rpc.route_with::<c::CreditClose, _, _, _>(svc, credit::credit_close);
    let rpc = rpc.route_with::<c::FindingsList, _, _, _>(svc, api::findings_list);
    rpc.route_with::<c::ThresholdsGet, _, _, _>(svc, api::thresholds)
}

/// Runs the service until the platform shuts down.
pub async fn run(platform: Platform) -> anyhow::Result<()> {
    let settings: domain::Settings = platform.config.section("supervision")?;
    settings
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration {e}"))?;
    let host = ServiceHost::start(&platform, SERVICE, migrator()).await?;
    let agreements_stream = platform.ensure_event_stream(Service::Agreements).await?;
    let orders_stream = platform.ensure_event_stream(Service::Orders).await?;
    let issues_stream = platform.ensure_event_stream(Service::Issues).await?;
    let svc = Arc::new(api::Svc {
        pool: host.pool().clone(),
        outbox: host.outbox().clone(),
        clock: platform.clock.clone(),
        calendar: platform.calendar.clone(),
        settings,
        rpc: platform.rpc_client(),
    });
    if svc.settings.auto_generate {
        monitor::arm_calendar(&svc.pool, svc.clock.now()).await?;
    }
    let ns = &platform.ns;
    host.rpc(|rpc| routes(rpc, &svc))
        .timer(api::CALENDAR_TIMER, monitor::Calendar(svc.clone()))
        .timer(api::ESCALATE_TIMER, credit::Escalate(svc.clone()))
        .timer(api::DELAY_TIMER, detect::DeliveryDue(svc.clone()))
        .timer(api::FILE_ISSUE_TIMER, detect::FileFinding(svc.clone()))
        .consumer(
            ConsumerSpec::new(
                "agreements",
                agreements_stream,
                vec![
                    OrgRegistered::subject(ns),
                    OrgUpdated::subject(ns),
                    PeriodOpened::subject(ns),
                    AgreedVolumeSet::subject(ns),
                    FlagRaised::subject(ns),
                ],
            ),
            consumers::Agreements,
        )
        .consumer(
            ConsumerSpec::new(
                "orders",
                orders_stream,
                vec![
                    OrderPlaced::subject(ns),
                    OrderResponded::subject(ns),
                    ShipmentDispatched::subject(ns),
                    ReceiptAccepted::subject(ns),
                    SettlementPaid::subject(ns),
                    OfflinePurchaseDeclared::subject(ns),
                ],
            ),
            consumers::Orders(svc.clone()),
        )
        .consumer(
            ConsumerSpec::new("issues", issues_stream, vec![IssueRepeated::subject(ns)]),
            consumers::Issues(svc.clone()),
        )
        .run()
        .await
}
