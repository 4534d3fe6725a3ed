//! The orders service: orders, deliveries, receipt and acceptance, invoices,
//! settlement, payment deadlines, online-procurement rate and integrator
//! ingest.
//!
//! It owns the Postgres schema `orders` and talks to other services only
//! through NATS subjects (DESIGN §2–§3). Layers: [`domain`] (pure rules) ←
//! [`store`] (sqlx) ← [`api`] (RPC handlers), [`ingest`] (integrator
//! messages), [`consumers`] (projections of agreements and distribution
//! events) and [`timers`] (payment deadlines) ← [`run`].

pub mod api;
pub mod consumers;
pub mod domain;
pub mod figures;
pub mod ingest;
pub mod store;
pub mod timers;
pub mod volumes;

use std::sync::Arc;

use vbp_bus::{ConsumerSpec, RpcServer};
use vbp_contracts::agreements::AgreedVolumeSet;
use vbp_contracts::agreements::{OrgRegistered, OrgUpdated, PeriodOpened, SupplyListPublished};
use vbp_contracts::distribution::{RelationActivated, RelationChanged, RelationEnded};
use vbp_contracts::orders as c;
use vbp_contracts::{Event, Service};
use vbp_platform::{Platform, ServiceHost};

pub const SERVICE: Service = Service::Orders;

/// This service's migrations, tracked inside its own schema.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// Every operation of [`vbp_contracts::orders::OPERATIONS`].
pub fn routes(rpc: RpcServer, svc: &api::Shared) -> RpcServer {
    use api::shortage as sh;
    use api::{orders as o, queries as q, settlement as s};
    let rpc = rpc.route_with::<c::OrderPlace, _, _, _>(svc, o::order_place);
    let rpc = rpc.route_with::<c::OrderRespond, _, _, _>(svc, o::order_respond);
    let rpc = rpc.route_with::<c::ShipmentDispatch, _, _, _>(svc, o::shipment_dispatch);
    let rpc = rpc.route_with::<c::ShipmentReceive, _, _, _>(svc, o::shipment_receive);
    let rpc = rpc.route_with::<c::ReceiptAccept, _, _, _>(svc, o::receipt_accept);
    let rpc = rpc.route_with::<c::InvoiceIssue, _, _, _>(svc, s::invoice_issue);
    let rpc = rpc.route_with::<c::SettlementPay, _, _, _>(svc, s::settlement_pay);
    let rpc = rpc.route_with::<c::InvoiceIssueBatch, _, _, _>(svc, s::invoice_issue_batch);
    let rpc = rpc.route_with::<c::SettlementPayBatch, _, _, _>(svc, s::settlement_pay_batch);
    let rpc =
        rpc.route_with::<c::OfflinePurchaseDeclare, _, _, _>(svc, s::offline_purchase_declare);
    let rpc = rpc.route_with::<c::OrderGet, _, _, _>(svc, q::order_get);
    let rpc = rpc.route_with::<c::OrderListOp, _, _, _>(svc, q::order_list);
    let rpc = rpc.route_with::<c::IngestRejectionListOp, _, _, _>(svc, q::ingest_rejection_list);
    let rpc = rpc.route_with::<c::AcceptanceListOp, _, _, _>(svc, q::acceptance_list);
    let rpc = rpc.route_with::<c::RatesExport, _, _, _>(svc, q::rates_export);
    let rpc = rpc.route_with::<c::SettlementMoveOffline, _, _, _>(svc, s::settlement_move_offline);
    let rpc =
        rpc.route_with::<c::OfflineSettlementListOp, _, _, _>(svc, s::offline_settlement_list);
    let rpc = rpc.route_with::<c::ShortageFlag, _, _, _>(svc, sh::shortage_flag);
    let rpc = rpc.route_with::<c::ShortageLift, _, _, _>(svc, sh::shortage_lift);
    let rpc = rpc.route_with::<c::ShortageListOp, _, _, _>(svc, sh::shortage_list);
    let rpc = rpc.route_with::<c::SubstituteRecord, _, _, _>(svc, sh::substitute_record);
    let rpc = rpc.route_with::<c::SubstituteListOp, _, _, _>(svc, sh::substitute_list);
    rpc.route_with::<c::RatesGet, _, _, _>(svc, q::rates_get)
}

/// Runs the service until the platform shuts down.
pub async fn run(platform: Platform) -> anyhow::Result<()> {
    let settings: domain::Settings = platform.config.section("orders")?;
    settings
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration {}: {}", e.field, e.rule))?;
    let ingest_settings: ingest::IngestSettings = platform.config.section("orders")?;
    ingest_settings
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration {}: {}", e.field, e.rule))?;
    let host = ServiceHost::start(&platform, SERVICE, migrator()).await?;
    let agreements_stream = platform.ensure_event_stream(Service::Agreements).await?;
    let distribution_stream = platform.ensure_event_stream(Service::Distribution).await?;
    let ingest_stream = platform.ensure_ingest_stream().await?;
    let svc = Arc::new(api::Svc {
        pool: host.pool().clone(),
        outbox: host.outbox().clone(),
        clock: platform.clock.clone(),
        settings,
    });
    let ns = &platform.ns;
    let mut ingest_spec = ConsumerSpec::new("ingest", ingest_stream, vec![ns.ingest_all()]);
    ingest_spec.ingest = true;
    // Claims (integrator, external id) are the idempotency record.
    ingest_spec.record_inbox = false;
    ingest_spec.batch_mode = ingest_settings.ingest_batch_mode;
    ingest_spec.batch = ingest_settings.ingest_batch;
    ingest_spec.linger = std::time::Duration::from_millis(ingest_settings.ingest_linger_ms);
    ingest_spec.lanes = ingest_settings.ingest_lanes;
    let ingest_handler = ingest::Ingest::new(svc.clone(), ingest_settings);
    host.rpc(|rpc| {
        vbp_platform::reconcile::route(routes(rpc, &svc), svc.pool.clone(), figures::read)
    })
    .timer(timers::PAYMENT_DUE_TIMER, timers::PaymentDue(svc.clone()))
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
        consumers::Directory,
    )
    .consumer(
        ConsumerSpec::new(
            "relations",
            distribution_stream,
            vec![
                RelationActivated::subject(ns),
                RelationEnded::subject(ns),
                RelationChanged::subject(ns),
            ],
        ),
        consumers::Relations,
    )
    .consumer(
        ConsumerSpec::new(
            "agreed-volumes",
            platform.ensure_event_stream(Service::Agreements).await?,
            vec![AgreedVolumeSet::subject(ns)],
        ),
        volumes::AgreedVolumes,
    )
    .timer(
        ingest::pending::PENDING_TIMER,
        ingest::pending::Expired(ingest_handler.clone()),
    )
    .consumer(ingest_spec, ingest_handler)
    .run()
    .await
}
