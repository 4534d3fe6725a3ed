//! The ceilings of the two servers every pipeline of the platform is bound
//! by: how many durable single-row INSERTs Postgres commits per second
//! (autocommit, fsync on, one round trip each) and how many messages
//! JetStream stores and acknowledges per second on a file-backed stream.
//! A pipeline's figure divided by these says how much of the hardware it
//! turns into business records.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage, stream};
use sqlx::PgPool;

/// The raw INSERT rate at one connection count.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RawInsert {
    pub connections: usize,
    pub rows_per_sec: f64,
}

/// Connection counts the raw INSERT ceiling is measured at: one (pure
/// latency of a commit) and the pool sizes the services run with.
pub const RAW_CONNECTIONS: [usize; 3] = [1, 8, 16];

/// Durable single-row INSERTs into a table of its own for `secs` seconds at
/// each of [`RAW_CONNECTIONS`]; the table is dropped afterwards.
pub async fn raw_inserts(pool: &PgPool, secs: u64) -> anyhow::Result<Vec<RawInsert>> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS raw_insert \
         (id bigserial PRIMARY KEY, event_id uuid, n bigint, amount_fen bigint)",
    )
    .execute(pool)
    .await?;
    let mut out = Vec::new();
    for connections in RAW_CONNECTIONS {
        let rows_per_sec = raw_insert_rate(pool, connections, secs).await?;
        out.push(RawInsert {
            connections,
            rows_per_sec,
        });
    }
    sqlx::query("DROP TABLE raw_insert").execute(pool).await?;
    Ok(out)
}

/// The best rate of [`raw_inserts`].
pub fn best(raw: &[RawInsert]) -> f64 {
    raw.iter().map(|r| r.rows_per_sec).fold(0.0, f64::max)
}

/// Prints the raw INSERT rates as the load generators show them.
pub fn print_raw(raw: &[RawInsert]) {
    println!("raw durable single-row INSERT (autocommit, fsync on), same Postgres:");
    for r in raw {
        println!(
            "  {:>3} connections: {:>10.0} rows/s",
            r.connections, r.rows_per_sec
        );
    }
}

async fn raw_insert_rate(pool: &PgPool, concurrency: usize, secs: u64) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    sqlx::query(
                        "INSERT INTO raw_insert (event_id, n, amount_fen) VALUES ($1, $2, $3)",
                    )
                    .bind(uuid::Uuid::now_v7())
                    .bind(n as i64)
                    .bind(12_345i64)
                    .execute(&pool)
                    .await?;
                    n += 1;
                }
                anyhow::Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// JetStream publishes acknowledged per second: `publishers` tasks each
/// keeping up to `window` publishes in flight, for `secs` seconds, of
/// `payload_len`-byte messages with a `Nats-Msg-Id` each (as integrators
/// send them), into a file-backed stream of the namespace's own that is
/// deleted afterwards.
pub async fn jetstream_publishes(
    js: &jetstream::Context,
    ns: &str,
    publishers: usize,
    window: usize,
    payload_len: usize,
    secs: u64,
) -> anyhow::Result<f64> {
    let name = format!("{}_CEILING", ns.to_uppercase());
    let subject = format!("{ns}.ceiling");
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{subject}.>")],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from(vec![b'x'; payload_len]);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..publishers)
        .map(|p| {
            let (js, subject, payload) = (js.clone(), format!("{subject}.{p}"), payload.clone());
            tokio::spawn(async move {
                let mut acked = 0u64;
                let mut n = 0u64;
                let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(window);
                while Instant::now() < deadline {
                    let msg = PublishMessage::build()
                        .message_id(format!("{p}-{n}"))
                        .payload(payload.clone());
                    acks.push(js.send_publish(subject.clone(), msg).await?);
                    n += 1;
                    if acks.len() >= window {
                        let done = futures::future::try_join_all(
                            acks.drain(..).map(IntoFuture::into_future),
                        )
                        .await?;
                        acked += done.len() as u64;
                    }
                }
                let done =
                    futures::future::try_join_all(acks.into_iter().map(IntoFuture::into_future))
                        .await?;
                acked += done.len() as u64;
                anyhow::Ok(acked)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    js.delete_stream(&name).await?;
    Ok(rate)
}
