//! A running agreements service on a fresh database and namespace, called
//! over real NATS RPC with chosen actors; events of other services published
//! on JetStream as they would be.

#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use vbp_bus::{Context, RpcClient, RpcError};
use vbp_contracts::agreements as c;
use vbp_contracts::{Event, RpcOp};
use vbp_kernel::{Actor, EventId, OrgId, OrgKind};
use vbp_platform::Platform;
use vbp_platform::testkit::{self, TestEnv};

pub struct World {
    pub env: TestEnv,
    pub platform: Platform,
    pub rpc: RpcClient,
    pub db: sqlx::PgPool,
}

pub fn actor(kind: OrgKind, org: OrgId, region: &str) -> Actor {
    Actor {
        sub: format!("test-{kind}"),
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
        let env = TestEnv::new().await;
        let platform = env.platform().await;
        tokio::spawn(vbp_agreements::run(platform.clone()));
        let rpc = platform.rpc_client();
        let op = operator();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let probe = rpc
                .call::<c::ProjectList>(
                    &Context::new(Some(op.clone())),
                    &c::ListProjects {
                        page: 1,
                        page_size: 1,
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
        let db = env.pool_in("agreements").await;
        World {
            env,
            platform,
            rpc,
            db,
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

    pub fn set_clock(&self, s: &str) {
        self.env.clock.set(at(s));
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.platform.shutdown.cancel();
    }
}
