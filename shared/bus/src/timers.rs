//! Durable timers (DESIGN §5). A deadline is a row with a `due_at`, written
//! in the transaction that creates the obligation; a scheduler fires it once
//! the injected clock passes `due_at`, running the handler, the `fired_at`
//! mark and any outbox rows in one transaction. Replicas share the work with
//! `FOR UPDATE SKIP LOCKED`, so each timer fires once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;
use vbp_contracts::Service;
use vbp_kernel::{CorrelationId, SharedClock};

use crate::error::BusError;
use crate::inbox::HandlerError;
use crate::metrics;

/// Creates or moves the timer `(kind, key)`. Moving an unfired timer
/// replaces its due time and payload; a fired one is armed again.
pub async fn schedule<P: Serialize + ?Sized>(
    conn: &mut PgConnection,
    kind: &str,
    key: &str,
    due_at: DateTime<Utc>,
    correlation: Option<CorrelationId>,
    payload: &P,
) -> Result<(), BusError> {
    sqlx::query(
        "INSERT INTO timers (kind, key, due_at, payload, correlation) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (kind, key) DO UPDATE SET due_at = EXCLUDED.due_at, payload = EXCLUDED.payload, \
         correlation = EXCLUDED.correlation, fired_at = NULL, attempts = 0, last_error = NULL",
    )
    .bind(kind)
    .bind(key)
    .bind(due_at)
    .bind(sqlx::types::Json(payload))
    .bind(correlation.map(|c| c.as_uuid()))
    .execute(conn)
    .await?;
    Ok(())
}

/// A timer to create or move with [`schedule_many`].
#[derive(Debug, Clone)]
pub struct NewTimer {
    pub key: String,
    pub due_at: DateTime<Utc>,
    pub correlation: Option<CorrelationId>,
    pub payload: serde_json::Value,
}

/// [`schedule`] for many timers of one kind in one statement.
pub async fn schedule_many(
    conn: &mut PgConnection,
    kind: &str,
    timers: &[NewTimer],
) -> Result<(), BusError> {
    if timers.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = timers.iter().map(|t| t.key.as_str()).collect();
    let due: Vec<DateTime<Utc>> = timers.iter().map(|t| t.due_at).collect();
    let payloads: Vec<String> = timers.iter().map(|t| t.payload.to_string()).collect();
    let correlations: Vec<Option<uuid::Uuid>> = timers
        .iter()
        .map(|t| t.correlation.map(|c| c.as_uuid()))
        .collect();
    sqlx::query(
        "INSERT INTO timers (kind, key, due_at, payload, correlation) \
         SELECT $1, k, d, p::jsonb, c FROM UNNEST($2::text[], $3::timestamptz[], $4::text[], $5::uuid[]) \
         AS t(k, d, p, c) \
         ON CONFLICT (kind, key) DO UPDATE SET due_at = EXCLUDED.due_at, payload = EXCLUDED.payload, \
         correlation = EXCLUDED.correlation, fired_at = NULL, attempts = 0, last_error = NULL",
    )
    .bind(kind)
    .bind(&keys)
    .bind(&due)
    .bind(&payloads)
    .bind(&correlations)
    .execute(conn)
    .await?;
    Ok(())
}

/// [`cancel`] for many timers of one kind in one statement.
pub async fn cancel_many(
    conn: &mut PgConnection,
    kind: &str,
    keys: &[String],
) -> Result<(), BusError> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM timers WHERE kind = $1 AND key = ANY($2) AND fired_at IS NULL")
        .bind(kind)
        .bind(keys)
        .execute(conn)
        .await?;
    Ok(())
}

/// Cancels an unfired timer; returns whether there was one.
pub async fn cancel(conn: &mut PgConnection, kind: &str, key: &str) -> Result<bool, BusError> {
    let done = sqlx::query("DELETE FROM timers WHERE kind = $1 AND key = $2 AND fired_at IS NULL")
        .bind(kind)
        .bind(key)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// A timer whose time has come.
#[derive(Debug, Clone)]
pub struct DueTimer {
    pub kind: String,
    pub key: String,
    pub due_at: DateTime<Utc>,
    pub correlation: Option<CorrelationId>,
    pub payload: serde_json::Value,
    /// 1 on the first attempt.
    pub attempt: i32,
}

impl DueTimer {
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_value(self.payload.clone()).map_err(|e| {
            HandlerError::permanent(format!("timer {}/{} payload: {e}", self.kind, self.key))
        })
    }
}

#[async_trait]
pub trait TimerHandler: Send + Sync + 'static {
    /// Runs inside the firing transaction; what it writes (state, outbox
    /// rows, new timers) commits with the `fired_at` mark.
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError>;
}

/// Due timers fired per transaction.
const FIRE_BATCH: usize = 100;

enum Batch {
    /// This many fired and committed.
    Fired(usize),
    /// Nothing committed; this many were due and go one by one.
    Failed(usize),
}

pub struct Scheduler {
    pool: PgPool,
    clock: SharedClock,
    service: Service,
    handlers: HashMap<String, Arc<dyn TimerHandler>>,
    poll: Duration,
    /// Attempts before a failing timer is parked (kept, with its last error,
    /// for an operator; `fired_at` stays empty and `due_at` is pushed far out).
    max_attempts: i32,
}

impl Scheduler {
    pub fn new(pool: PgPool, clock: SharedClock, service: Service) -> Self {
        Self {
            pool,
            clock,
            service,
            handlers: HashMap::new(),
            poll: Duration::from_secs(1),
            max_attempts: 10,
        }
    }

    pub fn handler(mut self, kind: &str, handler: Arc<dyn TimerHandler>) -> Self {
        self.handlers.insert(kind.to_owned(), handler);
        self
    }

    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }

    /// Fires every timer due at the clock's current time; returns how many fired.
    ///
    /// Due timers are taken in batches of [`FIRE_BATCH`], fired in one
    /// transaction (at month end a region's payment deadlines fall due
    /// together); when any of them fails the batch rolls back and its timers
    /// fire one by one, so one failing timer neither blocks nor repeats the
    /// others' effects.
    pub async fn tick(&self) -> Result<usize, BusError> {
        let kinds: Vec<String> = self.handlers.keys().cloned().collect();
        let mut fired = 0;
        loop {
            let now = self.clock.now();
            let (n, more) = match self.fire_batch(&kinds, now, FIRE_BATCH).await? {
                Batch::Fired(n) => (n, n == FIRE_BATCH),
                Batch::Failed(n) => {
                    let mut ok = 0;
                    for _ in 0..n {
                        match self.fire_one(&kinds, now).await? {
                            None => break,
                            Some(true) => ok += 1,
                            Some(false) => {}
                        }
                    }
                    (ok, true)
                }
            };
            fired += n;
            if !more {
                self.record_backlog(&kinds, now).await;
                return Ok(fired);
            }
        }
    }

    async fn due(
        &self,
        conn: &mut PgConnection,
        kinds: &[String],
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueTimer>, BusError> {
        let rows = sqlx::query(
            "SELECT kind, key, due_at, correlation, payload, attempts FROM timers \
             WHERE fired_at IS NULL AND due_at <= $1 AND kind = ANY($2) \
             ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        .bind(kinds)
        .bind(limit as i64)
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(DueTimer {
                    kind: row.try_get("kind")?,
                    key: row.try_get("key")?,
                    due_at: row.try_get("due_at")?,
                    correlation: row
                        .try_get::<Option<uuid::Uuid>, _>("correlation")?
                        .map(CorrelationId::from_uuid),
                    payload: row.try_get("payload")?,
                    attempt: row.try_get::<i32, _>("attempts")? + 1,
                })
            })
            .collect()
    }

    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        use tracing::Instrument;
        let handler = self.handlers[&timer.kind].clone();
        let span = tracing::info_span!("timer", kind = %timer.kind, key = %timer.key);
        handler.fire(conn, timer).instrument(span).await
    }

    /// Only the occurrences that fired: a handler that re-armed its own
    /// (kind, key) moved `due_at`, and that new timer must stay armed.
    async fn mark_fired(
        conn: &mut PgConnection,
        timers: &[DueTimer],
        now: DateTime<Utc>,
    ) -> Result<(), BusError> {
        let kinds: Vec<&str> = timers.iter().map(|t| t.kind.as_str()).collect();
        let keys: Vec<&str> = timers.iter().map(|t| t.key.as_str()).collect();
        let due: Vec<DateTime<Utc>> = timers.iter().map(|t| t.due_at).collect();
        sqlx::query(
            "UPDATE timers t SET fired_at = $4, attempts = t.attempts + 1 \
             FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS f(kind, key, due_at) \
             WHERE t.kind = f.kind AND t.key = f.key AND t.due_at = f.due_at \
             AND t.fired_at IS NULL",
        )
        .bind(&kinds)
        .bind(&keys)
        .bind(&due)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Up to `limit` due timers in one transaction.
    async fn fire_batch(
        &self,
        kinds: &[String],
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Batch, BusError> {
        let mut tx = self.pool.begin().await?;
        let timers = self.due(&mut tx, kinds, now, limit).await?;
        for timer in &timers {
            if let Err(err) = self.fire(&mut tx, timer).await {
                tracing::info!(kind = %timer.kind, key = %timer.key, error = ?err,
                    "timer batch not fired as one; firing its timers one by one");
                tx.rollback().await?;
                return Ok(Batch::Failed(timers.len()));
            }
        }
        if !timers.is_empty() {
            Self::mark_fired(&mut tx, &timers, now).await?;
        }
        tx.commit().await?;
        Ok(Batch::Fired(timers.len()))
    }

    /// The next due timer alone: whether it fired, `None` when none was due.
    async fn fire_one(
        &self,
        kinds: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<bool>, BusError> {
        let mut tx = self.pool.begin().await?;
        let Some(timer) = self.due(&mut tx, kinds, now, 1).await?.pop() else {
            return Ok(None);
        };
        match self.fire(&mut tx, &timer).await {
            Ok(()) => {
                Self::mark_fired(&mut tx, std::slice::from_ref(&timer), now).await?;
                tx.commit().await?;
                Ok(Some(true))
            }
            Err(err) => {
                tx.rollback().await?;
                let (delay, reason) = match &err {
                    HandlerError::Permanent(r) => (chrono::Duration::days(3650), r.clone()),
                    HandlerError::Transient(r) if timer.attempt >= self.max_attempts => (
                        chrono::Duration::days(3650),
                        format!("gave up after {} attempts: {r}", timer.attempt),
                    ),
                    HandlerError::Transient(r) => (
                        chrono::Duration::seconds(2i64.pow(timer.attempt.min(10) as u32)),
                        r.clone(),
                    ),
                };
                tracing::warn!(kind = %timer.kind, key = %timer.key, %reason, "timer failed");
                sqlx::query(
                    "UPDATE timers SET attempts = attempts + 1, last_error = $3, due_at = $4 \
                     WHERE kind = $1 AND key = $2",
                )
                .bind(&timer.kind)
                .bind(&timer.key)
                .bind(&reason)
                .bind(now + delay)
                .execute(&self.pool)
                .await?;
                Ok(Some(false))
            }
        }
    }

    async fn record_backlog(&self, kinds: &[String], now: DateTime<Utc>) {
        if let Ok(n) = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM timers WHERE fired_at IS NULL AND due_at <= $1 AND kind = ANY($2)",
        )
        .bind(now)
        .bind(kinds)
        .fetch_one(&self.pool)
        .await
        {
            metrics::TIMER_BACKLOG.with_label_values(&[self.service.as_str()]).set(n);
        }
    }

    /// Ticks every `poll` until shutdown.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(service = %self.service, error = %e, "timer pass failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}
