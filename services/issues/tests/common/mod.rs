//! A running issues service on a fresh database and namespace, called
//! over real NATS RPC with chosen actors; the agreements and orders services' events
//! published on JetStream as its relay would, and this service's published
//! events collected from NATS.

#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use vbp_bus::{Context, RpcClient, RpcError};
use vbp_contracts::issues as p;
use vbp_contracts::{Event, RpcOp};
use vbp_kernel::{Actor, EventId, OrgId, OrgKind};
use vbp_platform::Platform;
use vbp_platform::testkit::{self, TestEnv};

pub struct World {
    pub env: TestEnv,
    pub platform: Platform,
    pub rpc: RpcClient,
    pub db: sqlx::PgPool,
    /// (vbp-type, payload) of every issues event seen on NATS.
    pub seen: testkit::EventWatch,
}

pub fn actor(kind: OrgKind, org: OrgId, region: &str) -> Actor {
    Actor {
        sub: format!("test-{kind}-{org}"),
        org,
        org_kind: kind,
        region: region.parse().unwrap(),
        roles: vec![],
    }
}

pub fn operator() -> Actor {
    actor(OrgKind::Operator, OrgId::new(), "000000")
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

impl World {
    pub async fn start() -> World {
        Self::start_with(serde_json::json!({})).await
    }

    /// With `[issues]` settings.
    pub async fn start_with(settings: serde_json::Value) -> World {
        let env = TestEnv::new().await;
        let config = env
            .config()
            .with_figment_overrides(serde_json::json!({ "issues": settings }))
            .unwrap();
        let platform = env.platform_with(config, CancellationToken::new()).await;
        let seen = testkit::EventWatch::start(&platform, vbp_contracts::Service::Issues).await;
        tokio::spawn(vbp_issues::run(platform.clone()));
        let rpc = platform.rpc_client();
        let op = operator();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let probe = rpc
                .call::<p::DeadlinePreviewOp>(
                    &Context::new(Some(op.clone())),
                    &p::PreviewDeadlines {
                        dispatched_at: at("2026-03-02T10:00:00+08:00"),
                    },
                )
                .await;
            if probe.is_ok() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "service did not come up: {probe:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let db = env.pool_in("issues").await;
        World {
            env,
            platform,
            rpc,
            db,
            seen,
        }
    }

    /// Stops the service and starts it again on the same database and
    /// namespace with other `[issues]` settings (e.g. a ratio change).
    pub async fn restart_with(&mut self, settings: serde_json::Value) {
        self.platform.shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let config = self
            .env
            .config()
            .with_figment_overrides(serde_json::json!({ "issues": settings }))
            .unwrap();
        let platform = self
            .env
            .platform_with(config, CancellationToken::new())
            .await;
        tokio::spawn(vbp_issues::run(platform.clone()));
        self.rpc = platform.rpc_client();
        self.platform = platform;
        let op = operator();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self
            .rpc
            .call::<p::DeadlinePreviewOp>(
                &Context::new(Some(op.clone())),
                &p::PreviewDeadlines {
                    dispatched_at: at("2026-03-02T10:00:00+08:00"),
                },
            )
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "service did not come back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn call<Op: RpcOp>(
        &self,
        who: &Actor,
        req: &Op::Request,
    ) -> Result<Op::Response, RpcError> {
        testkit::call_as::<Op>(&self.rpc, who, req).await
    }

    pub async fn ok<Op: RpcOp>(&self, who: &Actor, req: &Op::Request) -> Op::Response {
        testkit::ok_as::<Op>(&self.rpc, who, req).await
    }

    pub async fn err<Op: RpcOp>(&self, who: &Actor, req: &Op::Request) -> RpcError
    where
        Op::Response: std::fmt::Debug,
    {
        testkit::err_as::<Op>(&self.rpc, who, req).await
    }

    /// Publishes `event` as its producer's relay would, with event id `id`.
    pub async fn publish<E: Event>(&self, id: EventId, event: &E) {
        testkit::publish_event(&self.platform, id, event).await
    }

    /// Outbox rows of `event_type`, in order, as JSON payloads.
    pub async fn events(&self, event_type: &str) -> Vec<serde_json::Value> {
        testkit::outbox_payloads(&self.db, event_type).await
    }

    pub async fn outbox_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        testkit::count(&self.db, sql).await
    }

    /// Waits until `sql` (a count) reaches `n`.
    pub async fn wait_count(&self, sql: &str, n: i64) {
        testkit::wait_count(&self.db, sql, n).await
    }

    /// Waits for a published event of `event_type` matching `pred`.
    pub async fn published(
        &self,
        event_type: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.seen.wait_for(event_type, pred).await
    }

    /// Published events of `event_type` seen so far.
    pub fn seen_of(&self, event_type: &str) -> Vec<serde_json::Value> {
        self.seen.of(event_type)
    }

    pub fn set_clock(&self, s: &str) {
        self.env.clock.set(at(s));
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.platform.shutdown.cancel();
    }
}
