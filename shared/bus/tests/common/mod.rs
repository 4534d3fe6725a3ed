//! A producer service (orders' schema) and a consumer service (prepayment's
//! schema) on a fresh database and namespace, with a test event between them.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use vbp_bus::inbox::Consumer;
use vbp_bus::streams::StreamSettings;
use vbp_bus::{
    ConsumerSpec, Context, Handler, HandlerError, Incoming, Outbox, Relay, RelaySettings,
};
use vbp_contracts::{Event, Service};
use vbp_platform::Platform;
use vbp_platform::testkit::TestEnv;

pub const PRODUCER: Service = Service::Orders;
pub const CONSUMER: Service = Service::Prepayment;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Noted {
    pub n: i64,
    #[serde(default)]
    pub poison: bool,
}

impl Event for Noted {
    const SERVICE: Service = PRODUCER;
    const AGGREGATE: &'static str = "test";
    const NAME: &'static str = "noted";
}

pub struct World {
    pub env: TestEnv,
    pub platform: Platform,
    pub producer: PgPool,
    pub consumer: PgPool,
    pub outbox: Outbox,
    pub stream: String,
}

fn empty() -> sqlx::migrate::Migrator {
    sqlx::migrate::Migrator::with_migrations(Vec::new())
}

impl World {
    pub async fn new() -> Self {
        Self::on(TestEnv::new().await).await
    }

    pub async fn on(env: TestEnv) -> Self {
        let platform = env.platform().await;
        let producer =
            vbp_platform::db::prepare(&platform.config, PRODUCER, &empty(), &platform.shutdown)
                .await
                .expect("producer schema");
        let consumer =
            vbp_platform::db::prepare(&platform.config, CONSUMER, &empty(), &platform.shutdown)
                .await
                .expect("consumer schema");
        sqlx::query("CREATE TABLE effects (event_id uuid NOT NULL, n bigint NOT NULL, consumer text NOT NULL DEFAULT '')")
            .execute(&consumer)
            .await
            .expect("effects table");
        let stream = platform
            .ensure_event_stream(PRODUCER)
            .await
            .expect("stream");
        platform.ensure_dlq_stream().await.expect("dlq stream");
        let outbox = Outbox::new(platform.ns.clone(), platform.clock.clone());
        Self {
            env,
            platform,
            producer,
            consumer,
            outbox,
            stream,
        }
    }

    /// Appends `count` events in one committed transaction.
    pub async fn produce(&self, from: i64, count: i64) {
        let mut tx = self.producer.begin().await.unwrap();
        let ctx = Context::new(None);
        for n in from..from + count {
            self.outbox
                .append(&mut tx, &ctx, &Noted { n, poison: false })
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }

    pub fn relay(&self) -> Relay {
        Relay::new(
            self.producer.clone(),
            self.platform.js.clone(),
            PRODUCER,
            RelaySettings {
                batch: 100,
                poll: Duration::from_millis(100),
                ..RelaySettings::default()
            },
        )
    }

    /// Relays until the outbox is empty.
    pub async fn relay_all(&self) -> usize {
        let relay = self.relay();
        let mut total = 0;
        loop {
            let n = relay.relay_once().await.expect("relay pass");
            if n == 0 {
                return total;
            }
            total += n;
        }
    }

    pub fn spec(&self, name: &str) -> ConsumerSpec {
        let mut spec = ConsumerSpec::new(
            name,
            self.stream.clone(),
            vec![Noted::subject(&self.platform.ns)],
        );
        spec.backoff = vec![Duration::from_millis(50)];
        spec.max_deliver = 3;
        spec
    }

    pub fn consumer(&self, spec: ConsumerSpec, handler: impl Handler) -> Consumer {
        Consumer::new(
            self.consumer.clone(),
            self.platform.js.clone(),
            self.platform.ns.clone(),
            CONSUMER,
            spec,
            Arc::new(handler),
            self.platform.clock.clone(),
        )
    }

    pub fn spawn(&self, consumer: Consumer) -> CancellationToken {
        let stop = CancellationToken::new();
        tokio::spawn(consumer.run(stop.clone()));
        stop
    }

    pub async fn effects(&self) -> (i64, i64) {
        sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM effects")
            .fetch_one(&self.consumer)
            .await
            .unwrap()
    }

    /// Waits until `count` effects exist (or fails after `secs`).
    pub async fn wait_effects(&self, count: i64, secs: u64) -> (i64, i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let seen = self.effects().await;
            if seen.0 >= count || tokio::time::Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stream_messages(&self) -> u64 {
        let mut stream = self.platform.js.get_stream(&self.stream).await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    pub fn memory_streams() -> StreamSettings {
        StreamSettings {
            memory: true,
            ..StreamSettings::default()
        }
    }
}

/// Records one effect row per applied event; fails as told.
#[derive(Default)]
pub struct Recorder {
    /// Transient failures before the first success (per process, any event).
    pub fail_first: AtomicUsize,
    /// Every attempt fails transiently.
    pub always_fail: bool,
    pub attempts: Arc<AtomicUsize>,
    /// Trace ids of applied events' traceparent, for trace tests.
    pub traceparents: Arc<std::sync::Mutex<Vec<String>>>,
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let event: Noted = msg.json()?;
        if event.poison {
            return Err(HandlerError::permanent(format!(
                "event {} is poison",
                event.n
            )));
        }
        if self.always_fail {
            return Err(HandlerError::transient("downstream unavailable"));
        }
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(HandlerError::transient("not yet"));
        }
        if let Some(tp) = &msg.meta.traceparent {
            self.traceparents.lock().unwrap().push(tp.clone());
        }
        sqlx::query("INSERT INTO effects (event_id, n) VALUES ($1, $2)")
            .bind(msg.meta.id.as_uuid())
            .bind(event.n)
            .execute(conn)
            .await?;
        Ok(())
    }
}
