//! The prepayment service: prepayment fund calculation (预付金测算),
//! approval, disbursement (划拨), offset (冲抵) and period-end deduction
//! (冲减).
//!
//! It owns the Postgres schema `prepayment` and talks to other services only
//! through NATS subjects (DESIGN §2–§3). Layers: [`domain`] (pure rules) ←
//! [`store`] (sqlx) ← [`ledger`] (event-driven transitions), [`api`] and
//! [`exports`] (RPC handlers), [`consumers`] and [`timers`] ← [`run`].

pub mod api;
pub mod consumers;
pub mod domain;
pub mod exports;
pub mod figures;
pub mod ledger;
pub mod store;
pub mod timers;

use std::sync::Arc;

use vbp_bus::{ConsumerSpec, RpcServer};
use vbp_contracts::agreements::{AgreementStateChanged, PeriodOpened, SupplyListPublished};
use vbp_contracts::orders::SettlementPaid;
use vbp_contracts::prepayment as c;
use vbp_contracts::{Event, Service};
use vbp_platform::{Platform, ServiceHost};

pub const SERVICE: Service = Service::Prepayment;

/// This service's migrations, tracked inside its own schema.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// Every operation of [`vbp_contracts::prepayment::OPERATIONS`].
pub fn routes(rpc: RpcServer, svc: &api::Shared) -> RpcServer {
    let rpc = rpc.route_with::<c::LedgerGet, _, _, _>(svc, api::ledger_get);
    let rpc = rpc.route_with::<c::LedgerListOp, _, _, _>(svc, api::ledger_list);
    let rpc = rpc.route_with::<c::LedgerApprove, _, _, _>(svc, api::ledger_approve);
    let rpc = rpc.route_with::<c::LedgerDisburse, _, _, _>(svc, api::ledger_disburse);
    let rpc = rpc.route_with::<c::RegionSummaryOp, _, _, _>(svc, api::region_summary);
    let rpc = rpc.route_with::<c::LedgerRecalculate, _, _, _>(svc, api::ledger_recalculate);
    let rpc = rpc.route_with::<c::PeriodClose, _, _, _>(svc, api::period_close);
    let rpc = rpc.route_with::<c::StatementExport, _, _, _>(svc, exports::statement_export);
    rpc.route_with::<c::SummaryExport, _, _, _>(svc, exports::summary_export)
}

/// Runs the service until the platform shuts down.
pub async fn run(platform: Platform) -> anyhow::Result<()> {
    let settings: domain::Settings = platform.config.section("prepayment")?;
    settings
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration {}: {}", e.field, e.rule))?;
    let host = ServiceHost::start(&platform, SERVICE, migrator()).await?;
    let agreements_stream = platform.ensure_event_stream(Service::Agreements).await?;
    let orders_stream = platform.ensure_event_stream(Service::Orders).await?;
    let svc = Arc::new(api::Svc {
        pool: host.pool().clone(),
        outbox: host.outbox().clone(),
        clock: platform.clock.clone(),
        calendar: platform.calendar.clone(),
        settings,
    });
    let ns = &platform.ns;
    host.rpc(|rpc| {
        vbp_platform::reconcile::route(routes(rpc, &svc), svc.pool.clone(), figures::read)
    })
    .timer(ledger::OVERDUE_TIMER, timers::Overdue(svc.clone()))
    .timer(ledger::CLOSE_TIMER, timers::Close(svc.clone()))
    .consumer(
        ConsumerSpec::new(
            "agreements",
            agreements_stream,
            vec![
                PeriodOpened::subject(ns),
                SupplyListPublished::subject(ns),
                AgreementStateChanged::subject(ns),
            ],
        ),
        consumers::Agreements(svc.clone()),
    )
    .consumer(
        ConsumerSpec::new(
            "settlements",
            orders_stream,
            vec![SettlementPaid::subject(ns)],
        ),
        consumers::Settlements(svc.clone()),
    )
    .run()
    .await
}
