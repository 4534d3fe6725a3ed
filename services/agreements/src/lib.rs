//! The agreements service: projects, agreement periods, supply lists, volume
//! reports, agreed volumes, tripartite agreements and procurement progress.
//!
//! It owns the Postgres schema `agreements` and talks to other services only
//! through NATS subjects (DESIGN §2–§3). Layers: [`domain`] (pure rules) ←
//! [`store`] (sqlx) ← [`api`] (RPC handlers), [`consumers`] (event
//! handlers) and [`timers`] (durable timer handlers) ← [`run`]. [`sheets`]
//! reads and writes `.xlsx` files (pure).

pub mod api;
pub mod consumers;
pub mod demo;
pub mod domain;
pub mod figures;
pub mod store;
pub mod timers;

use std::sync::Arc;

use vbp_bus::{ConsumerSpec, RpcServer};
use vbp_contracts::agreements as c;
use vbp_contracts::distribution::{RelationActivated, RelationEnded};
use vbp_contracts::orders::ReceiptAccepted;
use vbp_contracts::{Event, Service};
use vbp_platform::{Platform, ServiceHost};

pub const SERVICE: Service = Service::Agreements;

/// This service's migrations, tracked inside its own schema.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// Every operation of [`vbp_contracts::agreements::OPERATIONS`].
pub fn routes(rpc: RpcServer, svc: &api::Shared) -> RpcServer {
    let rpc = rpc.route_with::<c::OrgRegister, _, _, _>(svc, api::org_register);
    let rpc = rpc.route_with::<c::OrgUpdate, _, _, _>(svc, api::org_update);
    let rpc = rpc.route_with::<c::OrgGet, _, _, _>(svc, api::org_get);
    let rpc = rpc.route_with::<c::OrgList, _, _, _>(svc, api::org_list);
    let rpc = rpc.route_with::<c::OrgImport, _, _, _>(svc, api::org_import);
    let rpc = rpc.route_with::<c::OrgImportFile, _, _, _>(svc, api::org_import_file);
    let rpc = rpc.route_with::<c::ProjectRegister, _, _, _>(svc, api::project_register);
    let rpc = rpc.route_with::<c::ProjectGet, _, _, _>(svc, api::project_get);
    let rpc = rpc.route_with::<c::ProjectList, _, _, _>(svc, api::project_list);
    let rpc = rpc.route_with::<c::PeriodOpen, _, _, _>(svc, api::period_open);
    let rpc = rpc.route_with::<c::PeriodGet, _, _, _>(svc, api::period_get);
    let rpc = rpc.route_with::<c::SupplyListImport, _, _, _>(svc, api::supply_list_import);
    let rpc = rpc.route_with::<c::SupplyListImportFile, _, _, _>(svc, api::supply_list_import_file);
    let rpc = rpc.route_with::<c::SupplyListPublish, _, _, _>(svc, api::supply_list_publish);
    let rpc = rpc.route_with::<c::SupplyListGet, _, _, _>(svc, api::supply_list_get);
    let rpc = rpc.route_with::<c::SupplyListExport, _, _, _>(svc, api::supply_list_export);
    let rpc = rpc.route_with::<c::VolumeWindowOpen, _, _, _>(svc, api::volume_window_open);
    let rpc = rpc.route_with::<c::VolumeWindowClose, _, _, _>(svc, api::volume_window_close);
    let rpc = rpc.route_with::<c::VolumeReportSubmit, _, _, _>(svc, api::volume_report_submit);
    let rpc = rpc.route_with::<c::VolumeReportList, _, _, _>(svc, api::volume_report_list);
    let rpc = rpc.route_with::<c::AgreedVolumeSetOp, _, _, _>(svc, api::agreed_volume_set);
    let rpc = rpc.route_with::<c::AgreedVolumeList, _, _, _>(svc, api::agreed_volume_list);
    let rpc = rpc.route_with::<c::AgreementCreate, _, _, _>(svc, api::agreement_create);
    let rpc = rpc.route_with::<c::AgreementConfirm, _, _, _>(svc, api::agreement_confirm);
    let rpc = rpc.route_with::<c::AgreementReject, _, _, _>(svc, api::agreement_reject);
    let rpc = rpc.route_with::<c::AgreementAmend, _, _, _>(svc, api::agreement_amend);
    let rpc = rpc.route_with::<c::AgreementPaperSign, _, _, _>(svc, api::agreement_paper_sign);
    let rpc = rpc.route_with::<c::AgreementGet, _, _, _>(svc, api::agreement_get);
    let rpc = rpc.route_with::<c::AgreementList, _, _, _>(svc, api::agreement_list);
    let rpc =
        rpc.route_with::<c::AgreementPaperDeadline, _, _, _>(svc, api::agreement_paper_deadline);
    let rpc = rpc.route_with::<c::ProgressQuery, _, _, _>(svc, api::progress_query);
    let rpc = rpc.route_with::<c::ProgressMonthly, _, _, _>(svc, api::progress_monthly);
    let rpc = rpc.route_with::<c::ProgressExport, _, _, _>(svc, api::progress_export);
    let rpc = rpc.route_with::<c::ProgressSnapshotOp, _, _, _>(svc, api::progress_snapshot);
    let rpc = rpc.route_with::<c::FlagListOp, _, _, _>(svc, api::flag_list);
    let rpc = rpc.route_with::<c::DemoLoad, _, _, _>(svc, demo::demo_load);
    vbp_platform::reconcile::route(rpc, svc.pool.clone(), figures::read)
}

/// Runs the service until the platform shuts down.
pub async fn run(platform: Platform) -> anyhow::Result<()> {
    let settings: domain::Settings = platform.config.section("agreements")?;
    let host = ServiceHost::start(&platform, SERVICE, migrator()).await?;
    let orders_stream = platform.ensure_event_stream(Service::Orders).await?;
    let distribution_stream = platform.ensure_event_stream(Service::Distribution).await?;
    let svc = Arc::new(api::Svc {
        pool: host.pool().clone(),
        outbox: host.outbox().clone(),
        clock: platform.clock.clone(),
        settings,
    });
    match timers::arm_missing(&svc).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(periods = n, "armed weekly snapshot timers"),
        Err(e) => tracing::warn!(error = %e, "arming weekly snapshot timers failed"),
    }
    let ns = &platform.ns;
    host.rpc(|rpc| routes(rpc, &svc))
        .timer(
            store::WEEKLY_SNAPSHOT_TIMER,
            timers::WeeklySnapshot(svc.clone()),
        )
        .consumer(
            ConsumerSpec::new(
                "acceptances",
                orders_stream,
                vec![ReceiptAccepted::subject(ns)],
            ),
            consumers::Acceptances,
        )
        .consumer(
            ConsumerSpec::new(
                "relations",
                distribution_stream,
                vec![RelationActivated::subject(ns), RelationEnded::subject(ns)],
            ),
            consumers::Relations,
        )
        .run()
        .await
}
