//! Transactional outbox (DESIGN §3): an event exists iff the transaction that
//! changed the state committed; the relay publishes it afterwards.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde::Serialize;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;
use vbp_contracts::{Event, MessageMeta, Namespace, Service};
use vbp_kernel::{Actor, CorrelationId, EventId, SharedClock};

use crate::codec;
use crate::context::Context;
use crate::error::BusError;
use crate::metrics;

/// Appends events inside the caller's transaction.
#[derive(Clone, Debug)]
pub struct Outbox {
    ns: Namespace,
    clock: SharedClock,
}

impl Outbox {
    pub fn new(ns: Namespace, clock: SharedClock) -> Self {
        Self { ns, clock }
    }

    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// Records `event` for publication on its subject once `conn`'s
    /// transaction commits. The trace context of the current span goes with
    /// it, so the consumer's span joins the producer's trace.
    pub async fn append<E: Event>(
        &self,
        conn: &mut PgConnection,
        ctx: &Context,
        event: &E,
    ) -> Result<EventId, BusError> {
        self.append_raw(
            conn,
            ctx,
            &E::subject(&self.ns),
            &E::event_type(),
            E::VERSION,
            event,
        )
        .await
    }

    /// Appends many events of one type in one statement: the same rows
    /// `append` writes one at a time, for batch operations (a province-wide
    /// recalculation emits tens of thousands).
    pub async fn append_many<E: Event>(
        &self,
        conn: &mut PgConnection,
        ctx: &Context,
        events: &[E],
    ) -> Result<Vec<EventId>, BusError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<EventId> = events.iter().map(|_| EventId::new()).collect();
        let uuids: Vec<uuid::Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let payloads = events
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()?;
        let (traceparent, tracestate) = crate::trace::current_carrier();
        sqlx::query(
            "WITH o AS (INSERT INTO outbox (id, subject, event_type, version, correlation, \
             causation, actor, traceparent, tracestate, payload, occurred_at) \
             SELECT u.id, $3, $4, $5, $6, $7, $8, $9, $10, u.payload::jsonb, $11 \
             FROM UNNEST($1::uuid[], $2::text[]) WITH ORDINALITY AS u(id, payload, n) ORDER BY u.n \
             RETURNING seq) \
             INSERT INTO outbox_pending (seq) SELECT seq FROM o",
        )
        .bind(&uuids)
        .bind(&payloads)
        .bind(E::subject(&self.ns))
        .bind(E::event_type())
        .bind(E::VERSION as i32)
        .bind(ctx.correlation.as_uuid())
        .bind(ctx.causation.map(|c| c.as_uuid()))
        .bind(ctx.actor.as_ref().map(sqlx::types::Json))
        .bind(traceparent)
        .bind(tracestate)
        .bind(self.clock.now())
        .execute(conn)
        .await?;
        Ok(ids)
    }

    /// An event ready to be appended later, with its context and the trace
    /// of the span it was staged in: work that decides many events one by
    /// one (a batch of messages, each in its own span) then writes them in
    /// one statement with [`Outbox::append_staged`].
    pub fn stage<E: Event>(&self, ctx: &Context, event: &E) -> Result<Staged, BusError> {
        let (traceparent, tracestate) = crate::trace::current_carrier();
        Ok(Staged {
            id: EventId::new(),
            subject: E::subject(&self.ns),
            event_type: E::event_type(),
            version: E::VERSION as i32,
            correlation: ctx.correlation.as_uuid(),
            causation: ctx.causation.map(|c| c.as_uuid()),
            actor: ctx.actor.as_ref().map(serde_json::to_string).transpose()?,
            traceparent,
            tracestate,
            payload: serde_json::to_string(event)?,
        })
    }

    /// Appends staged events in one statement, in the given order.
    pub async fn append_staged(
        &self,
        conn: &mut PgConnection,
        events: &[Staged],
    ) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let col = |f: fn(&Staged) -> Option<String>| events.iter().map(f).collect::<Vec<_>>();
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id.as_uuid()).collect();
        let versions: Vec<i32> = events.iter().map(|e| e.version).collect();
        let correlations: Vec<uuid::Uuid> = events.iter().map(|e| e.correlation).collect();
        let causations: Vec<Option<uuid::Uuid>> = events.iter().map(|e| e.causation).collect();
        sqlx::query(
            "WITH o AS (INSERT INTO outbox (id, subject, event_type, version, correlation, \
             causation, actor, traceparent, tracestate, payload, occurred_at) \
             SELECT u.id, u.subject, u.event_type, u.version, u.correlation, u.causation, \
             u.actor::jsonb, u.traceparent, u.tracestate, u.payload::jsonb, $11 \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int[], $5::uuid[], $6::uuid[], \
             $7::text[], $8::text[], $9::text[], $10::text[]) WITH ORDINALITY \
             AS u(id, subject, event_type, version, correlation, causation, actor, traceparent, \
             tracestate, payload, n) ORDER BY u.n \
             RETURNING seq) \
             INSERT INTO outbox_pending (seq) SELECT seq FROM o",
        )
        .bind(&ids)
        .bind(col(|e| Some(e.subject.clone())))
        .bind(col(|e| Some(e.event_type.clone())))
        .bind(&versions)
        .bind(&correlations)
        .bind(&causations)
        .bind(col(|e| e.actor.clone()))
        .bind(col(|e| e.traceparent.clone()))
        .bind(col(|e| e.tracestate.clone()))
        .bind(col(|e| Some(e.payload.clone())))
        .bind(self.clock.now())
        .execute(conn)
        .await?;
        Ok(())
    }

    /// For messages that are not domain events of this service (dead letters).
    pub async fn append_raw<P: Serialize + ?Sized>(
        &self,
        conn: &mut PgConnection,
        ctx: &Context,
        subject: &str,
        event_type: &str,
        version: u32,
        payload: &P,
    ) -> Result<EventId, BusError> {
        let id = EventId::new();
        let (traceparent, tracestate) = crate::trace::current_carrier();
        sqlx::query(
            "WITH o AS (INSERT INTO outbox (id, subject, event_type, version, correlation, \
             causation, actor, traceparent, tracestate, payload, occurred_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING seq) \
             INSERT INTO outbox_pending (seq) SELECT seq FROM o",
        )
        .bind(id.as_uuid())
        .bind(subject)
        .bind(event_type)
        .bind(version as i32)
        .bind(ctx.correlation.as_uuid())
        .bind(ctx.causation.map(|c| c.as_uuid()))
        .bind(ctx.actor.as_ref().map(sqlx::types::Json))
        .bind(traceparent)
        .bind(tracestate)
        .bind(sqlx::types::Json(payload))
        .bind(self.clock.now())
        .execute(conn)
        .await?;
        Ok(id)
    }
}

/// An event decided but not yet appended ([`Outbox::stage`]).
#[derive(Debug, Clone)]
pub struct Staged {
    id: EventId,
    subject: String,
    event_type: String,
    version: i32,
    correlation: uuid::Uuid,
    causation: Option<uuid::Uuid>,
    actor: Option<String>,
    traceparent: Option<String>,
    tracestate: Option<String>,
    payload: String,
}

impl Staged {
    pub fn id(&self) -> EventId {
        self.id
    }
}

#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows per relay transaction; their publishes are pipelined.
    pub batch: i64,
    /// Fallback poll when no NOTIFY arrives (lost listener, another writer).
    pub poll: Duration,
    /// How long published rows are kept for `republish` after broker loss.
    pub retention: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 500,
            poll: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Publishes committed outbox rows to JetStream. Any number of relays may run
/// against one schema: `FOR UPDATE SKIP LOCKED` hands each row to one of
/// them, and a row is marked sent only after JetStream acknowledged it. A
/// crash between the ack and the mark re-publishes the row with the same
/// `Nats-Msg-Id`, which JetStream drops as a duplicate.
pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    service: Service,
    settings: RelaySettings,
}

struct Row_ {
    seq: i64,
    subject: String,
    meta: MessageMeta,
    generation: i32,
    payload: Vec<u8>,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        js: jetstream::Context,
        service: Service,
        settings: RelaySettings,
    ) -> Self {
        Self {
            pool,
            js,
            service,
            settings,
        }
    }

    /// Runs until `shutdown`, then drains what is committed (best effort).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener = None;
        let mut last_cleanup = tokio::time::Instant::now();
        loop {
            if listener.is_none() {
                listener = self.listen().await;
            }
            let busy = match self.relay_once().await {
                Ok(n) => n as i64 >= self.settings.batch,
                Err(err) => {
                    tracing::warn!(service = %self.service, error = %err, "outbox relay pass failed");
                    false
                }
            };
            if last_cleanup.elapsed() > Duration::from_secs(60) {
                last_cleanup = tokio::time::Instant::now();
                if let Err(err) = self.cleanup().await {
                    tracing::warn!(service = %self.service, error = %err, "outbox retention cleanup failed");
                }
            }
            if busy {
                if shutdown.is_cancelled() {
                    break;
                }
                continue;
            }
            self.record_backlog().await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                woke = wait(&mut listener), if listener.is_some() => {
                    if !woke { listener = None; }
                }
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
        // Flush what committed before the stop, so a graceful shutdown leaves
        // nothing behind for the next start.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while tokio::time::Instant::now() < deadline {
            match self.relay_once().await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&self.pool)
            .await
            .ok()?;
        listener
            .listen(&format!("vbp_outbox_{schema}"))
            .await
            .ok()?;
        Some(listener)
    }

    async fn record_backlog(&self) {
        if let Ok(n) = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox_pending")
            .fetch_one(&self.pool)
            .await
        {
            metrics::OUTBOX_BACKLOG
                .with_label_values(&[self.service.as_str()])
                .set(n);
        }
    }

    /// One batch: claim, publish pipelined, await acks, mark. Returns the
    /// number of rows claimed.
    pub async fn relay_once(&self) -> Result<usize, BusError> {
        let mut tx = self.pool.begin().await?;
        // Claimed first, read second: as one join the planner may scan the
        // whole outbox for a few hundred rows.
        let claimed: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM outbox_pending ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.settings.batch)
        .fetch_all(&mut *tx)
        .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT seq, id, subject, event_type, version, correlation, causation, actor, \
             traceparent, tracestate, payload::text AS payload, occurred_at, generation \
             FROM outbox WHERE seq = ANY($1) ORDER BY seq",
        )
        .bind(&claimed)
        .fetch_all(&mut *tx)
        .await?;
        let rows: Vec<Row_> = rows.into_iter().map(decode_row).collect::<Result<_, _>>()?;

        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            let publish = PublishMessage::build()
                .headers(codec::encode(&row.meta, row.generation))
                .message_id(codec::msg_id(row.meta.id, row.generation))
                .payload(row.payload.clone().into());
            pending.push(self.js.send_publish(row.subject.clone(), publish).await);
        }
        let acks = join_all(pending.into_iter().map(|sent| async move {
            match sent {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }))
        .await;

        // Entries whose row is gone have nothing to send and leave the queue too.
        let mut failed = Vec::new();
        let mut first_error = None;
        for (row, ack) in rows.iter().zip(acks) {
            if let Err(e) = ack {
                failed.push(row.seq);
                first_error.get_or_insert(e);
            }
        }
        let sent: Vec<i64> = claimed
            .iter()
            .copied()
            .filter(|seq| !failed.contains(seq))
            .collect();
        let claimed = claimed.len();
        sqlx::query("DELETE FROM outbox_pending WHERE seq = ANY($1)")
            .bind(&sent)
            .execute(&mut *tx)
            .await?;
        if let Some(err) = &first_error {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE seq = ANY($1)",
            )
            .bind(&failed)
            .bind(err)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let label = [self.service.as_str()];
        metrics::OUTBOX_PUBLISHED
            .with_label_values(&label)
            .inc_by(sent.len() as u64);
        if let Some(err) = first_error {
            metrics::OUTBOX_PUBLISH_ERRORS
                .with_label_values(&label)
                .inc_by(failed.len() as u64);
            return Err(BusError::Nats(format!(
                "{} of {claimed} publishes failed: {err}",
                failed.len()
            )));
        }
        Ok(claimed)
    }

    async fn cleanup(&self) -> Result<u64, BusError> {
        let secs = self.settings.retention.as_secs_f64();
        let done = sqlx::query(
            "DELETE FROM outbox o WHERE recorded_at < now() - make_interval(secs => $1) \
             AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.seq = o.seq)",
        )
        .bind(secs)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

async fn wait(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => l.recv().await.is_ok(),
        None => std::future::pending().await,
    }
}

fn decode_row(row: sqlx::postgres::PgRow) -> Result<Row_, BusError> {
    let actor: Option<sqlx::types::Json<Actor>> = row.try_get("actor")?;
    let payload: String = row.try_get("payload")?;
    Ok(Row_ {
        seq: row.try_get("seq")?,
        subject: row.try_get("subject")?,
        generation: row.try_get("generation")?,
        payload: payload.into_bytes(),
        meta: MessageMeta {
            id: EventId::from_uuid(row.try_get("id")?),
            event_type: row.try_get("event_type")?,
            version: row.try_get::<i32, _>("version")? as u32,
            correlation: CorrelationId::from_uuid(row.try_get("correlation")?),
            causation: row
                .try_get::<Option<uuid::Uuid>, _>("causation")?
                .map(EventId::from_uuid),
            actor: actor.map(|a| a.0),
            occurred_at: row.try_get::<DateTime<Utc>, _>("occurred_at")?,
            traceparent: row.try_get("traceparent")?,
            tracestate: row.try_get("tracestate")?,
        },
    })
}

/// The recovery path after the broker lost acknowledged messages (store
/// wiped, stream purged): every row recorded since `since` is queued again
/// under a new generation, so JetStream accepts it even if its dedup window
/// remembers the old message id; consumers' inboxes drop what they already
/// applied. Returns the number of rows queued.
pub async fn republish_since(pool: &PgPool, since: DateTime<Utc>) -> Result<u64, BusError> {
    let done = sqlx::query(
        "WITH r AS (UPDATE outbox o SET generation = generation + 1 \
         WHERE recorded_at >= $1 \
         AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.seq = o.seq) RETURNING seq) \
         INSERT INTO outbox_pending (seq) SELECT seq FROM r",
    )
    .bind(since)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
