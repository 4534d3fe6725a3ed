//! What integration tests need to talk to the real Postgres and NATS that
//! `deploy/local/test` starts: a fresh database and subject namespace per
//! test (so tests run in parallel), a manual clock, and a nats-server of the
//! test's own for tests that stop and restart the broker.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use vbp_kernel::{ManualClock, SharedClock};

use crate::config::{Config, LogFormat};
use crate::runtime::Platform;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with deploy/local/test, which starts Postgres and NATS")
    })
}

/// One test's isolated world on the shared servers.
pub struct TestEnv {
    /// Superuser URL of the test's own database.
    pub database_url: String,
    pub database: String,
    pub nats_url: String,
    pub ns: String,
    pub clock: ManualClock,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn start_time() -> DateTime<Utc> {
    "2024-08-01T01:00:00Z".parse().expect("valid time")
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with_nats(env("VBP_TEST_NATS_URL")).await
    }

    /// A test env whose broker is `nats_url` (e.g. a [`NatsServer`] of its own).
    pub async fn with_nats(nats_url: String) -> Self {
        crate::telemetry::init_for_tests();
        let admin = env("VBP_TEST_DATABASE_URL");
        let suffix = uuid::Uuid::now_v7().simple().to_string();
        let database = format!("t_{}", &suffix[suffix.len() - 16..]);
        let mut conn = sqlx::postgres::PgConnection::connect_with(
            &admin
                .parse::<sqlx::postgres::PgConnectOptions>()
                .expect("admin URL"),
        )
        .await
        .expect("test Postgres reachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let database_url = replace_database(&admin, &database);
        Self {
            database_url,
            ns: format!("t{}", &suffix[suffix.len() - 12..]),
            database,
            nats_url,
            clock: ManualClock::new(start_time()),
        }
    }

    pub fn clock(&self) -> SharedClock {
        self.clock.shared()
    }

    pub fn config(&self) -> Config {
        Config::from_figment(figment::Figment::from(
            figment::providers::Serialized::defaults(json!({
                "ns": self.ns,
                "nats_url": self.nats_url,
                "database_url": self.database_url,
                "db_bootstrap": true,
                "db_max_connections": 8,
                "dev": true,
                "log_format": "pretty",
                "rpc_timeout_ms": 3000,
                "metrics_addr": format!("127.0.0.1:{}", free_port()),
                "http_addr": format!("127.0.0.1:{}", free_port()),
                "state_dir": std::env::temp_dir().join(&self.ns),
            })),
        ))
        .expect("test config")
    }

    pub async fn platform(&self) -> Platform {
        self.platform_with(self.config(), CancellationToken::new())
            .await
    }

    pub async fn platform_with(&self, config: Config, shutdown: CancellationToken) -> Platform {
        let _ = LogFormat::Pretty;
        Platform::connect(config, self.clock(), shutdown)
            .await
            .expect("platform")
    }

    /// A superuser pool in the test database whose search_path is `schema`,
    /// for assertions on a service's tables.
    pub async fn pool_in(&self, schema: &str) -> sqlx::PgPool {
        let opts = self
            .database_url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .expect("url")
            .options([("search_path", schema)]);
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .expect("test pool")
    }
}

use sqlx::Connection;

fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = base.rsplit_once('/').map(|(p, _)| p).unwrap_or(base);
    match query {
        Some(q) => format!("{prefix}/{database}?{q}"),
        None => format!("{prefix}/{database}"),
    }
}

/// A nats-server owned by one test, which it may stop, kill and restart.
pub struct NatsServer {
    pub port: u16,
    pub store: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// On a given port, e.g. one a service was already told to use.
    pub async fn start_on(port: u16) -> Self {
        let store =
            std::env::temp_dir().join(format!("vbp-nats-{}", uuid::Uuid::now_v7().simple()));
        let mut server = Self {
            port,
            store,
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and store.
    pub async fn restart(&mut self) {
        let bin = env("VBP_NATS_SERVER_BIN");
        let child = Command::new(bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not start on port {}", self.port);
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Deletes the JetStream store (the server must be stopped).
    pub fn wipe_store(&self) {
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        self.wipe_store();
    }
}

/// Publishes `event` on its subject exactly as its producer's outbox relay
/// would (every contract header, `Nats-Msg-Id` = `id`), so a test can feed a
/// service the upstream events it projects without running the producer.
pub async fn publish_event<E: vbp_contracts::Event>(
    platform: &Platform,
    id: vbp_kernel::EventId,
    event: &E,
) {
    let meta = vbp_contracts::MessageMeta {
        id,
        event_type: E::event_type(),
        version: E::VERSION,
        correlation: vbp_kernel::CorrelationId::new(),
        causation: None,
        actor: Some(vbp_kernel::Actor::system("test-upstream")),
        occurred_at: platform.clock.now(),
        traceparent: None,
        tracestate: None,
    };
    let body = serde_json::to_vec(event).expect("event serialises");
    let msg = async_nats::jetstream::message::PublishMessage::build()
        .headers(vbp_bus::codec::encode(&meta, 0))
        .message_id(vbp_bus::codec::msg_id(id, 0))
        .payload(body.into());
    platform
        .js
        .send_publish(E::subject(&platform.ns), msg)
        .await
        .expect("publish sent")
        .await
        .expect("publish acknowledged");
}

/// Calls `Op` as `who`. A service's error answer is returned; a transport
/// failure (no responder, timeout) fails the test, naming the operation.
pub async fn call_as<Op: vbp_contracts::RpcOp>(
    rpc: &vbp_bus::RpcClient,
    who: &vbp_kernel::Actor,
    req: &Op::Request,
) -> Result<Op::Response, vbp_bus::RpcError> {
    match rpc
        .call::<Op>(&vbp_bus::Context::new(Some(who.clone())), req)
        .await
    {
        Ok(r) => Ok(r),
        Err(vbp_bus::CallError::Remote(e)) => Err(e),
        Err(e) => panic!("{}: transport failure {e}", Op::NAME),
    }
}

/// Calls `Op` as `who` and expects success.
pub async fn ok_as<Op: vbp_contracts::RpcOp>(
    rpc: &vbp_bus::RpcClient,
    who: &vbp_kernel::Actor,
    req: &Op::Request,
) -> Op::Response {
    match call_as::<Op>(rpc, who, req).await {
        Ok(r) => r,
        Err(e) => panic!("{} failed: {e} {:?}", Op::NAME, e.0),
    }
}

/// Calls `Op` as `who` and expects the service to refuse.
pub async fn err_as<Op: vbp_contracts::RpcOp>(
    rpc: &vbp_bus::RpcClient,
    who: &vbp_kernel::Actor,
    req: &Op::Request,
) -> vbp_bus::RpcError
where
    Op::Response: std::fmt::Debug,
{
    match call_as::<Op>(rpc, who, req).await {
        Ok(r) => panic!("{} unexpectedly succeeded: {r:?}", Op::NAME),
        Err(e) => e,
    }
}

/// Payloads of the outbox rows of `event_type` in `pool`'s schema, in order.
pub async fn outbox_payloads(pool: &sqlx::PgPool, event_type: &str) -> Vec<serde_json::Value> {
    sqlx::query_scalar("SELECT payload FROM outbox WHERE event_type = $1 ORDER BY seq")
        .bind(event_type)
        .fetch_all(pool)
        .await
        .expect("outbox readable")
}

/// The value of a `SELECT count(*) ...` written by the test.
pub async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .expect("count query")
}

/// Waits (20 s at most) until the count `sql` equals `n`.
pub async fn wait_count(pool: &sqlx::PgPool, sql: &str, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = count(pool, sql).await;
        if got == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sql}: {got}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every event one service publishes, as (`vbp-type`, payload), collected
/// from NATS as it happens, so a test can assert what really went out.
#[derive(Clone, Default)]
pub struct EventWatch(std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>);

impl EventWatch {
    pub async fn start(platform: &Platform, service: vbp_contracts::Service) -> Self {
        use futures::StreamExt;
        let watch = Self::default();
        let mut sub = platform
            .nats
            .subscribe(platform.ns.events_of(service))
            .await
            .expect("subscribe to the service's events");
        let sink = watch.0.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let event_type = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(vbp_contracts::headers::TYPE))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default();
                let body = serde_json::from_slice(&msg.payload).unwrap_or_default();
                sink.lock().expect("watch lock").push((event_type, body));
            }
        });
        watch
    }

    /// Payloads of `event_type` seen so far, in arrival order.
    pub fn of(&self, event_type: &str) -> Vec<serde_json::Value> {
        self.0
            .lock()
            .expect("watch lock")
            .iter()
            .filter(|(t, _)| t == event_type)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Waits (20 s at most) for an event of `event_type` matching `pred`.
    pub async fn wait_for(
        &self,
        event_type: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(found) = self.of(event_type).into_iter().find(|v| pred(v)) {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {event_type} published"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
