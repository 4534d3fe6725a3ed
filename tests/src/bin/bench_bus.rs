//! Load generator for the delivery path: events/s through outbox → JetStream
//! → inbox consumer with one durable Postgres write per event, printed beside
//! the raw durable single-row INSERT ceiling of the same Postgres, measured in
//! the same run. Loopback only; bounded in events and seconds.
//!
//!   deploy/local/bench bus            (starts Postgres and NATS like the tests)
//!   cargo run --release -p vbp-tests --bin bench_bus -- --events 100000

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Parser;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use vbp_bus::inbox::Consumer;
use vbp_bus::{
    ConsumerSpec, Context, Handler, HandlerError, Incoming, Outbox, Relay, RelaySettings,
};
use vbp_contracts::{Event, Service};
use vbp_platform::testkit::TestEnv;

#[derive(Parser, Debug)]
struct Args {
    /// Events through the pipeline.
    #[arg(long, default_value_t = 100_000)]
    events: i64,
    /// Events per producing transaction.
    #[arg(long, default_value_t = 50)]
    producer_batch: i64,
    /// Concurrent producers.
    #[arg(long, default_value_t = 8)]
    producers: i64,
    /// Messages per consumer fetch and transaction.
    #[arg(long, default_value_t = 500)]
    consumer_batch: usize,
    /// Relay tasks.
    #[arg(long, default_value_t = 2)]
    relays: usize,
    /// Seconds per raw-insert measurement.
    #[arg(long, default_value_t = 4)]
    raw_secs: u64,
    /// Give up on the pipeline after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Measured {
    n: i64,
    hospital: String,
    amount_fen: i64,
}

impl Event for Measured {
    const SERVICE: Service = Service::Orders;
    const AGGREGATE: &'static str = "bench";
    const NAME: &'static str = "measured";
}

struct OneWrite;

#[async_trait]
impl Handler for OneWrite {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let e: Measured = msg.json()?;
        sqlx::query("INSERT INTO applied (event_id, n, amount_fen) VALUES ($1, $2, $3)")
            .bind(msg.meta.id.as_uuid())
            .bind(e.n)
            .bind(e.amount_fen)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn handle_batch(
        &self,
        conn: &mut PgConnection,
        msgs: &[&Incoming],
    ) -> Result<(), HandlerError> {
        let mut ids = Vec::with_capacity(msgs.len());
        let mut ns = Vec::with_capacity(msgs.len());
        let mut amounts = Vec::with_capacity(msgs.len());
        for msg in msgs {
            let e: Measured = msg.json()?;
            ids.push(msg.meta.id.as_uuid());
            ns.push(e.n);
            amounts.push(e.amount_fen);
        }
        sqlx::query(
            "INSERT INTO applied (event_id, n, amount_fen) \
             SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[])",
        )
        .bind(&ids)
        .bind(&ns)
        .bind(&amounts)
        .execute(conn)
        .await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let env = TestEnv::new().await;
    let platform = env.platform().await;
    let empty = || sqlx::migrate::Migrator::with_migrations(Vec::new());
    let producer = vbp_platform::db::prepare(
        &platform.config,
        Service::Orders,
        &empty(),
        &platform.shutdown,
    )
    .await?;
    let consumer_pool = vbp_platform::db::prepare(
        &platform.config,
        Service::Prepayment,
        &empty(),
        &platform.shutdown,
    )
    .await?;
    sqlx::query("CREATE TABLE applied (event_id uuid PRIMARY KEY, n bigint NOT NULL, amount_fen bigint NOT NULL)")
        .execute(&consumer_pool)
        .await?;
    let stream = platform.ensure_event_stream(Service::Orders).await?;
    platform.ensure_dlq_stream().await?;

    let raw_rates = vbp_tests::load::ceiling::raw_inserts(&consumer_pool, args.raw_secs).await?;
    vbp_tests::load::ceiling::print_raw(&raw_rates);
    let ceiling = vbp_tests::load::ceiling::best(&raw_rates);

    let stop = CancellationToken::new();
    for _ in 0..args.relays {
        let relay = Relay::new(
            producer.clone(),
            platform.js.clone(),
            Service::Orders,
            RelaySettings {
                batch: 1000,
                poll: Duration::from_millis(50),
                ..RelaySettings::default()
            },
        );
        tokio::spawn(relay.run(stop.clone()));
    }
    let mut spec = ConsumerSpec::new("bench", stream, vec![Measured::subject(&platform.ns)]);
    spec.batch = args.consumer_batch;
    let consumer = Consumer::new(
        consumer_pool.clone(),
        platform.js.clone(),
        platform.ns.clone(),
        Service::Prepayment,
        spec,
        Arc::new(OneWrite),
        platform.clock.clone(),
    );
    tokio::spawn(consumer.run(stop.clone()));

    let outbox = Outbox::new(platform.ns.clone(), platform.clock.clone());
    let started = Instant::now();
    let per_producer = args.events / args.producers;
    let total = per_producer * args.producers;
    let producers: Vec<_> = (0..args.producers)
        .map(|p| {
            let (pool, outbox, batch) = (producer.clone(), outbox.clone(), args.producer_batch);
            tokio::spawn(async move {
                let ctx = Context::new(None);
                let mut n = p * per_producer;
                let end = n + per_producer;
                while n < end {
                    let mut tx = pool.begin().await.unwrap();
                    for _ in 0..batch.min(end - n) {
                        let e = Measured {
                            n,
                            hospital: "H21090200001".into(),
                            amount_fen: 1_234_500,
                        };
                        outbox.append(&mut tx, &ctx, &e).await.unwrap();
                        n += 1;
                    }
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.await?;
    }
    let produced = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let applied = loop {
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM applied")
            .fetch_one(&consumer_pool)
            .await?;
        if applied >= total || Instant::now() > deadline {
            break applied;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    stop.cancel();
    anyhow::ensure!(
        applied == total,
        "only {applied} of {total} events applied within {}s",
        args.timeout_secs
    );
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "outbox -> JetStream -> inbox, one durable write per event: {total} events in {:.2}s = {rate:.0} events/s \
         (producers done after {:.2}s)",
        elapsed.as_secs_f64(),
        produced.as_secs_f64()
    );
    println!(
        "ratio to the raw single-row ceiling ({ceiling:.0} rows/s): {:.2}x",
        rate / ceiling
    );
    Ok(())
}
