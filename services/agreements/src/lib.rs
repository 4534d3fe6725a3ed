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

use std::future::Future;
use std::sync::Arc;

use vbp_bus::{ConsumerSpec, Context, RpcError, RpcServer};
use vbp_contracts::agreements as c;
use vbp_contracts::distribution::{RelationActivated, RelationEnded};
use vbp_contracts::orders::ReceiptAccepted;
use vbp_contracts::{Event, RpcOp, Service};
use vbp_platform::{Platform, ServiceHost};

pub const SERVICE: Service = Service::Agreements;

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

/// Every operation of [`vbp_contracts::agreements::OPERATIONS`].
pub fn routes(rpc: RpcServer, svc: &api::Shared) -> RpcServer {
    let rpc = op::<c::OrgRegister, _, _>(rpc, svc, api::org_register);
    let rpc = op::<c::OrgUpdate, _, _>(rpc, svc, api::org_update);
    let rpc = op::<c::OrgGet, _, _>(rpc, svc, api::org_get);
    let rpc = op::<c::OrgList, _, _>(rpc, svc, api::org_list);
    let rpc = op::<c::OrgImport, _, _>(rpc, svc, api::org_import);
    let rpc = op::<c::OrgImportFile, _, _>(rpc, svc, api::org_import_file);
    let rpc = op::<c::ProjectRegister, _, _>(rpc, svc, api::project_register);
    let rpc = op::<c::ProjectGet, _, _>(rpc, svc, api::project_get);
    let rpc = op::<c::ProjectList, _, _>(rpc, svc, api::project_list);
    let rpc = op::<c::PeriodOpen, _, _>(rpc, svc, api::period_open);
    let rpc = op::<c::PeriodGet, _, _>(rpc, svc, api::period_get);
    let rpc = op::<c::SupplyListImport, _, _>(rpc, svc, api::supply_list_import);
    let rpc = op::<c::SupplyListImportFile, _, _>(rpc, svc, api::supply_list_import_file);
    let rpc = op::<c::SupplyListPublish, _, _>(rpc, svc, api::supply_list_publish);
    let rpc = op::<c::SupplyListGet, _, _>(rpc, svc, api::supply_list_get);
    let rpc = op::<c::SupplyListExport, _, _>(rpc, svc, api::supply_list_export);
    let rpc = op::<c::VolumeWindowOpen, _, _>(rpc, svc, api::volume_window_open);
    let rpc = op::<c::VolumeWindowClose, _, _>(rpc, svc, api::volume_window_close);
    let rpc = op::<c::VolumeReportSubmit, _, _>(rpc, svc, api::volume_report_submit);
    let rpc = op::<c::VolumeReportList, _, _>(rpc, svc, api::volume_report_list);
    let rpc = op::<c::AgreedVolumeSetOp, _, _>(rpc, svc, api::agreed_volume_set);
    let rpc = op::<c::AgreedVolumeList, _, _>(rpc, svc, api::agreed_volume_list);
    let rpc = op::<c::AgreementCreate, _, _>(rpc, svc, api::agreement_create);
    let rpc = op::<c::AgreementConfirm, _, _>(rpc, svc, api::agreement_confirm);
    let rpc = op::<c::AgreementReject, _, _>(rpc, svc, api::agreement_reject);
    let rpc = op::<c::AgreementAmend, _, _>(rpc, svc, api::agreement_amend);
    let rpc = op::<c::AgreementPaperSign, _, _>(rpc, svc, api::agreement_paper_sign);
    let rpc = op::<c::AgreementGet, _, _>(rpc, svc, api::agreement_get);
    let rpc = op::<c::AgreementList, _, _>(rpc, svc, api::agreement_list);
    let rpc = op::<c::AgreementPaperDeadline, _, _>(rpc, svc, api::agreement_paper_deadline);
    let rpc = op::<c::ProgressQuery, _, _>(rpc, svc, api::progress_query);
    let rpc = op::<c::ProgressMonthly, _, _>(rpc, svc, api::progress_monthly);
    let rpc = op::<c::ProgressExport, _, _>(rpc, svc, api::progress_export);
    let rpc = op::<c::ProgressSnapshotOp, _, _>(rpc, svc, api::progress_snapshot);
    let rpc = op::<c::FlagListOp, _, _>(rpc, svc, api::flag_list);
    let rpc = op::<c::DemoLoad, _, _>(rpc, svc, demo::demo_load);
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
