//! A running agreements service on a fresh database and namespace, called
//! over real NATS RPC with chosen actors; events of other services published
//! on JetStream as they would be.

#![allow(dead_code)]

use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use chrono::{DateTime, Utc};
use serde::Serialize;
use vbp_bus::{CallError, Context, RpcClient, RpcError};
use vbp_contracts::agreements as c;
use vbp_contracts::{Event, MessageMeta, RpcOp};
use vbp_kernel::{Actor, CorrelationId, EventId, OrgId, OrgKind};
use vbp_platform::Platform;
use vbp_platform::testkit::TestEnv;

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
        match self
            .rpc
            .call::<Op>(&Context::new(Some(who.clone())), req)
            .await
        {
            Ok(r) => Ok(r),
            Err(CallError::Remote(e)) => Err(e),
            Err(e) => panic!("{}: transport failure {e}", Op::NAME),
        }
    }

    pub async fn ok<Op: RpcOp>(&self, who: &Actor, req: &Op::Request) -> Op::Response {
        match self.call::<Op>(who, req).await {
            Ok(r) => r,
            Err(e) => panic!("{} failed: {e} {:?}", Op::NAME, e.0),
        }
    }

    pub async fn err<Op: RpcOp>(&self, who: &Actor, req: &Op::Request) -> RpcError
    where
        Op::Response: std::fmt::Debug,
    {
        match self.call::<Op>(who, req).await {
            Ok(r) => panic!("{} unexpectedly succeeded: {r:?}", Op::NAME),
            Err(e) => e,
        }
    }

    /// Publishes `event` as its producing service's relay would, with event id `id`.
    pub async fn publish<E: Event + Serialize>(&self, id: EventId, event: &E) {
        let meta = MessageMeta {
            id,
            event_type: E::event_type(),
            version: E::VERSION,
            correlation: CorrelationId::new(),
            causation: None,
            actor: Some(Actor::system("test-producer")),
            occurred_at: self.env.clock.shared().now(),
            traceparent: None,
            tracestate: None,
        };
        let body = serde_json::to_vec(event).unwrap();
        let msg = PublishMessage::build()
            .headers(vbp_bus::codec::encode(&meta, 0))
            .message_id(vbp_bus::codec::msg_id(id, 0))
            .payload(body.into());
        self.platform
            .js
            .send_publish(E::subject(&self.platform.ns), msg)
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Outbox rows of `event_type`, in order, as JSON payloads.
    pub async fn events(&self, event_type: &str) -> Vec<serde_json::Value> {
        sqlx::query_scalar::<_, serde_json::Value>(
            "SELECT payload FROM outbox WHERE event_type = $1 ORDER BY seq",
        )
        .bind(event_type)
        .fetch_all(&self.db)
        .await
        .unwrap()
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
