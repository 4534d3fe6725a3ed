//! A service host against real Postgres and NATS: standard operations,
//! readiness, waiting for a broker that is not up yet, graceful shutdown.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use vbp_bus::Context;
use vbp_contracts::system::{FlowDirection, FlowRequest, FlowResponse, PingResponse};
use vbp_contracts::{Event, Service};
use vbp_platform::testkit::{NatsServer, TestEnv, free_port};
use vbp_platform::{Platform, ServiceHost, health};

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Placed {
    order: String,
}

impl Event for Placed {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "order";
    const NAME: &'static str = "placed";
}

fn no_migrations() -> sqlx::migrate::Migrator {
    sqlx::migrate::Migrator::with_migrations(Vec::new())
}

async fn call<T: serde::de::DeserializeOwned>(
    platform: &Platform,
    op: &str,
    body: serde_json::Value,
) -> T {
    let reply = platform
        .rpc_client()
        .call_raw(
            Service::Orders,
            op,
            &Context::new(None),
            serde_json::to_vec(&body).unwrap().into(),
        )
        .await
        .unwrap();
    serde_json::from_slice(&reply).unwrap()
}

async fn wait_for<F: AsyncFn() -> bool>(secs: u64, what: &str, f: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_service_answers_ping_and_its_part_of_a_flow() {
    let env = TestEnv::new().await;
    let platform = env.platform().await;
    let host = ServiceHost::start(&platform, Service::Orders, no_migrations())
        .await
        .unwrap();
    let (pool, outbox) = (host.pool().clone(), host.outbox().clone());
    let running = tokio::spawn(host.run());
    tokio::time::sleep(Duration::from_millis(200)).await;

    let pong: PingResponse = call(&platform, "ping", serde_json::json!({})).await;
    assert_eq!(pong.service, Service::Orders);
    assert_eq!(
        pong.at,
        vbp_kernel::Clock::now(&env.clock),
        "time comes from the injected clock"
    );

    let ctx = Context::new(None);
    let mut tx = pool.begin().await.unwrap();
    outbox
        .append(
            &mut tx,
            &ctx,
            &Placed {
                order: "PO-1".into(),
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let flow: FlowResponse = call(
        &platform,
        "flow",
        serde_json::json!(FlowRequest {
            correlation: ctx.correlation
        }),
    )
    .await;
    assert_eq!(flow.entries.len(), 1);
    assert_eq!(flow.entries[0].event_type, "orders.order.placed");
    assert_eq!(flow.entries[0].direction, FlowDirection::Emitted);
    let other: FlowResponse = call(
        &platform,
        "flow",
        serde_json::json!(FlowRequest {
            correlation: Context::new(None).correlation
        }),
    )
    .await;
    assert!(other.entries.is_empty());

    platform.shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_service_started_before_nats_waits_then_serves_and_readiness_follows_the_broker() {
    let port = free_port();
    let env = TestEnv::with_nats(format!("nats://127.0.0.1:{port}")).await;
    let platform = env.platform().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let (a, router, stop) = (
        addr.clone(),
        health::router(platform.readiness.clone()),
        platform.shutdown.clone(),
    );
    tokio::spawn(async move { health::serve(&a, router, stop).await });
    let p = platform.clone();
    let running = tokio::spawn(async move {
        let host = ServiceHost::start(&p, Service::Orders, no_migrations()).await?;
        host.run().await
    });
    let ready = |addr: String| async move {
        reqwest::get(format!("http://{addr}/readyz"))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    wait_for(5, "health endpoint", async || {
        ready(addr.clone()).await != 0
    })
    .await;
    assert_eq!(ready(addr.clone()).await, 503, "ready without a broker");

    // The broker comes up late, on the port the service was told.
    let mut nats = NatsServer::start_on(port).await;
    wait_for(20, "readiness", async || ready(addr.clone()).await == 200).await;
    wait_for(20, "ping", async || {
        platform
            .rpc_client()
            .call_raw(
                Service::Orders,
                "ping",
                &Context::new(None),
                bytes::Bytes::new(),
            )
            .await
            .is_ok()
    })
    .await;

    nats.kill();
    wait_for(20, "not ready", async || ready(addr.clone()).await == 503).await;
    let body: serde_json::Value = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(body["checks"]["nats"], "ok");
    assert_eq!(body["checks"]["postgres:orders"], "ok");
    nats.restart().await;
    wait_for(20, "ready again", async || ready(addr.clone()).await == 200).await;

    platform.shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn graceful_shutdown_flushes_committed_events_within_the_grace_period() {
    let env = TestEnv::new().await;
    let platform = env
        .platform_with(env.config(), CancellationToken::new())
        .await;
    let host = ServiceHost::start(&platform, Service::Orders, no_migrations())
        .await
        .unwrap();
    let (pool, outbox) = (host.pool().clone(), host.outbox().clone());
    let running = tokio::spawn(host.run());
    let mut tx = pool.begin().await.unwrap();
    for i in 0..300 {
        outbox
            .append(
                &mut tx,
                &Context::new(None),
                &Placed {
                    order: format!("PO-{i}"),
                },
            )
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let started = std::time::Instant::now();
    platform.shutdown.cancel();
    running.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let admin = env.pool_in("orders").await;
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_pending")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(unsent, 0, "committed events left behind at shutdown");
}

#[tokio::test]
async fn each_service_role_reaches_only_its_own_schema() {
    let env = TestEnv::new().await;
    let platform = env.platform().await;
    let orders = vbp_platform::db::prepare(
        &platform.config,
        Service::Orders,
        &no_migrations(),
        &platform.shutdown,
    )
    .await
    .unwrap();
    vbp_platform::db::prepare(
        &platform.config,
        Service::Agreements,
        &no_migrations(),
        &platform.shutdown,
    )
    .await
    .unwrap();
    let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&orders)
        .await
        .unwrap();
    assert_eq!(mine, 0);
    let theirs = sqlx::query("SELECT count(*) FROM agreements.outbox")
        .execute(&orders)
        .await;
    let err = theirs
        .expect_err("orders' role read agreements' schema")
        .to_string();
    assert!(err.contains("permission denied"), "{err}");
}

#[tokio::test]
async fn streams_lost_with_the_brokers_store_come_back_without_a_restart() {
    let mut nats = NatsServer::start().await;
    let env = TestEnv::with_nats(nats.url()).await;
    let platform = env.platform().await;
    let events = platform
        .ensure_event_stream(Service::Orders)
        .await
        .expect("event stream");
    let ingest = platform
        .ensure_ingest_stream()
        .await
        .expect("ingest stream");

    nats.kill();
    nats.wipe_store();
    nats.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for name in [events, ingest] {
        while platform.js.get_stream(&name).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} was not created again"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Publishing works again, so an integrator's retry lands.
    platform
        .js
        .publish(
            platform.ns.ingest("integrator-1", "order_placed"),
            "{}".into(),
        )
        .await
        .expect("publish")
        .await
        .expect("stored");
    platform.shutdown.cancel();
}
