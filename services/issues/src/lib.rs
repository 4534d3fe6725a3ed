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

use std::future::Future;
use std::sync::Arc;

use vbp_bus::{ConsumerSpec, Context, RpcError, RpcServer};
use vbp_contracts::agreements::{OrgRegistered, OrgUpdated, SupplyListPublished};
use vbp_contracts::distribution::{RelationActivated, RelationChanged, RelationEnded};
use vbp_contracts::issues as c;
use vbp_contracts::{Event, RpcOp, Service};
use vbp_platform::{Platform, ServiceHost};

pub const SERVICE: Service = Service::Issues;

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

/// Every operation of [`vbp_contracts::issues::OPERATIONS`].
pub fn routes(rpc: RpcServer, svc: &api::Shared) -> RpcServer {
    let rpc = op::<c::IssueFile, _, _>(rpc, svc, api::issue_file);
    let rpc = op::<c::IssueGet, _, _>(rpc, svc, api::issue_get);
    let rpc = op::<c::IssueListOp, _, _>(rpc, svc, api::issue_list);
    let rpc = op::<c::IssueRespond, _, _>(rpc, svc, api::issue_respond);
    let rpc = op::<c::IssueEscalate, _, _>(rpc, svc, api::issue_escalate);
    let rpc = op::<c::IssueFeedback, _, _>(rpc, svc, api::issue_feedback);
    let rpc = op::<c::IssueConfirm, _, _>(rpc, svc, api::issue_confirm);
    let rpc = op::<c::IssueReopen, _, _>(rpc, svc, api::issue_reopen);
    let rpc = op::<c::DeadlinePreviewOp, _, _>(rpc, svc, api::deadline_preview);
    let rpc = op::<c::LedgerOp, _, _>(rpc, svc, api::ledger);
    let rpc = op::<c::LedgerExportOp, _, _>(rpc, svc, api::ledger_export);
    let rpc = op::<c::IssueMarkFalse, _, _>(rpc, svc, api::issue_mark_false);
    let rpc = op::<c::WorkListOp, _, _>(rpc, svc, api::work_list);
    let rpc = op::<c::EvidenceBegin, _, _>(rpc, svc, api::evidence_begin);
    let rpc = op::<c::EvidenceUpload, _, _>(rpc, svc, api::evidence_upload);
    op::<c::EvidenceGet, _, _>(rpc, svc, api::evidence_get)
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
