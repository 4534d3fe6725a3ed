//! The issues service: issue direct reporting (集采问题直报): filing,
//! auto-dispatch, working-day SLA timers, escalation, confirmation and the
//! ledger.
//!
//! It owns the Postgres schema `issues` and talks to other services only
//! through NATS subjects (DESIGN §2–§3); evidence files live in a JetStream
//! object-store bucket. Layers: [`domain`] (pure rules) ← [`store`] (SQL) ←
//! [`api`] (RPC handlers and transitions), [`consumers`] (projections) and
//! [`timers`] ← [`run`].

pub mod api;
pub mod consumers;
pub mod domain;
pub mod store;
pub mod timers;

use std::sync::Arc;

use vbp_bus::{ConsumerSpec, RpcServer};
use vbp_contracts::agreements::{OrgRegistered, OrgUpdated, SupplyListPublished};
use vbp_contracts::distribution::{RelationActivated, RelationChanged, RelationEnded};
use vbp_contracts::issues as c;
use vbp_contracts::{Event, Service};
use vbp_platform::{Platform, ServiceHost};

pub const SERVICE: Service = Service::Issues;

/// This service's migrations, tracked inside its own schema.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// Every operation of [`vbp_contracts::issues::OPERATIONS`].
pub fn routes(rpc: RpcServer, svc: &api::Shared) -> RpcServer {
    let rpc = rpc.route_with::<c::IssueFile, _, _, _>(svc, api::issue_file);
    let rpc = rpc.route_with::<c::IssueGet, _, _, _>(svc, api::issue_get);
    let rpc = rpc.route_with::<c::IssueListOp, _, _, _>(svc, api::issue_list);
    let rpc = rpc.route_with::<c::IssueRespond, _, _, _>(svc, api::issue_respond);
    let rpc = rpc.route_with::<c::IssueEscalate, _, _, _>(svc, api::issue_escalate);
    let rpc = rpc.route_with::<c::IssueFeedback, _, _, _>(svc, api::issue_feedback);
    let rpc = rpc.route_with::<c::IssueConfirm, _, _, _>(svc, api::issue_confirm);
    let rpc = rpc.route_with::<c::IssueReopen, _, _, _>(svc, api::issue_reopen);
    let rpc = rpc.route_with::<c::DeadlinePreviewOp, _, _, _>(svc, api::deadline_preview);
    let rpc = rpc.route_with::<c::LedgerOp, _, _, _>(svc, api::ledger);
    let rpc = rpc.route_with::<c::LedgerExportOp, _, _, _>(svc, api::ledger_export);
    let rpc = rpc.route_with::<c::IssueMarkFalse, _, _, _>(svc, api::issue_mark_false);
    let rpc = rpc.route_with::<c::WorkListOp, _, _, _>(svc, api::work_list);
    let rpc = rpc.route_with::<c::EvidenceBegin, _, _, _>(svc, api::evidence_begin);
    let rpc = rpc.route_with::<c::EvidenceUpload, _, _, _>(svc, api::evidence_upload);
    rpc.route_with::<c::EvidenceGet, _, _, _>(svc, api::evidence_get)
}

/// The evidence bucket, created on first start.
pub async fn evidence_store(
    platform: &Platform,
) -> anyhow::Result<async_nats::jetstream::object_store::ObjectStore> {
    let bucket = c::evidence_bucket(&platform.ns);
    platform
        .js
        .create_object_store(async_nats::jetstream::object_store::Config {
            bucket: bucket.clone(),
            description: Some("issue direct reporting: evidence files".to_owned()),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("evidence bucket {bucket}: {e}"))
}

/// Runs the service until the platform shuts down.
pub async fn run(platform: Platform) -> anyhow::Result<()> {
    let settings: domain::Settings = platform.config.section("issues")?;
    settings
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration {e}"))?;
    let host = ServiceHost::start(&platform, SERVICE, migrator()).await?;
    let agreements_stream = platform.ensure_event_stream(Service::Agreements).await?;
    let distribution_stream = platform.ensure_event_stream(Service::Distribution).await?;
    let evidence = evidence_store(&platform).await?;
    let svc = Arc::new(api::Svc {
        evidence,
        pool: host.pool().clone(),
        outbox: host.outbox().clone(),
        clock: platform.clock.clone(),
        calendar: platform.calendar.clone(),
        settings,
    });
    let ns = &platform.ns;
    host.rpc(|rpc| routes(rpc, &svc))
        .timer(api::ENTERPRISE_TIMER, timers::EnterpriseDue(svc.clone()))
        .timer(api::HANDLING_TIMER, timers::HandlingDue(svc.clone()))
        .timer(api::RESOLVE_TIMER, timers::AutoResolve(svc.clone()))
        .consumer(
            ConsumerSpec::new(
                "agreements",
                agreements_stream,
                vec![
                    OrgRegistered::subject(ns),
                    OrgUpdated::subject(ns),
                    SupplyListPublished::subject(ns),
                ],
            ),
            consumers::Agreements,
        )
        .consumer(
            ConsumerSpec::new(
                "distribution",
                distribution_stream,
                vec![
                    RelationActivated::subject(ns),
                    RelationEnded::subject(ns),
                    RelationChanged::subject(ns),
                ],
            ),
            consumers::Relations,
        )
        .run()
        .await
}
