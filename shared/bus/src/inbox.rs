//! Inbox consumers (DESIGN §3): a durable JetStream pull consumer shared by
//! every replica of a service. Per message (or per fetched batch): the inbox
//! row, the handler's writes and the outbox rows it appends commit in one
//! transaction, and the ack follows the commit. A redelivered message finds
//! its inbox row and is acked without effect.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vbp_contracts::{MessageMeta, Namespace, Service};
use vbp_kernel::SharedClock;

use crate::context::Context;
use crate::error::BusError;
use crate::outbox::Outbox;
use crate::{codec, dlq, metrics};

/// A message as a handler sees it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub subject: String,
    pub meta: MessageMeta,
    pub payload: Bytes,
    /// 1 on first delivery.
    pub delivered: i64,
}

impl Incoming {
    /// The payload as `T`. A body that does not fit is permanent: retrying
    /// cannot fix it, so it goes to the DLQ naming the offending field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        let de = &mut serde_json::Deserializer::from_slice(&self.payload);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            HandlerError::permanent(if path == "." {
                format!("payload: {}", e.inner())
            } else {
                format!("payload field {path}: {}", e.inner())
            })
        })
    }

    /// The context for whatever this message causes.
    pub fn context(&self) -> Context {
        Context::caused_by(&self.meta)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying (database unavailable, a projection not there yet).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (invalid payload, broken rule): straight to the DLQ.
    #[error("{0}")]
    Permanent(String),
}

impl HandlerError {
    pub fn permanent(reason: impl Into<String>) -> Self {
        HandlerError::Permanent(reason.into())
    }

    pub fn transient(reason: impl Into<String>) -> Self {
        HandlerError::Transient(reason.into())
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        HandlerError::Transient(format!("database: {e}"))
    }
}

impl From<BusError> for HandlerError {
    fn from(e: BusError) -> Self {
        HandlerError::Transient(e.to_string())
    }
}

/// What a service does with one message, inside the inbox transaction.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError>;

    /// Applies a fetched batch (new messages only, in stream order) in one
    /// transaction. Handlers on a hot path override it to write the whole
    /// batch in a few statements instead of one round trip per message; an
    /// error rolls the batch back and the consumer retries message by message.
    async fn handle_batch(
        &self,
        conn: &mut PgConnection,
        msgs: &[&Incoming],
    ) -> Result<(), HandlerError> {
        for msg in msgs {
            let span = consume_span(msg);
            self.handle(conn, msg).instrument(span).await?;
        }
        Ok(())
    }

    /// The lane a message takes when the consumer runs several
    /// ([`ConsumerSpec::lanes`]): messages that must apply in stream order
    /// relative to each other return the same key. Read from the raw message
    /// so the split costs no decoding.
    fn lane_key(&self, _subject: &str, _payload: &[u8]) -> u64 {
        0
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Durable name suffix, unique within the service (`{service}_{name}`).
    pub name: String,
    pub stream: String,
    pub filter_subjects: Vec<String>,
    /// Attempts before a transient failure is dead-lettered. JetStream itself
    /// redelivers without limit, so a crash can never exhaust the count
    /// behind our back and drop a message silently.
    pub max_deliver: i64,
    /// Nak delays by attempt; the last repeats.
    pub backoff: Vec<Duration>,
    /// Messages per fetch; in batch mode also per transaction (about: a
    /// lingering batch takes whole bursts).
    pub batch: usize,
    /// One transaction per fetched batch (falls back to one per message
    /// when any handler in the batch fails).
    pub batch_mode: bool,
    /// Integrator messages carry only `Nats-Msg-Id` (see `codec::decode_ingest`).
    pub ingest: bool,
    /// Whether an applied message gets an inbox row. A handler that keeps
    /// its own idempotency record in the same transaction (ingest claims by
    /// integrator and external id) turns this off and saves a row per
    /// message; dead letters still get theirs, so a redelivered parked
    /// message is not applied behind the operator's back.
    pub record_inbox: bool,
    pub ack_wait: Duration,
    /// How long a batch that is not full waits for more messages once the
    /// first has come: messages arrive from the server in small bursts, and
    /// a handler whose cost is mostly per batch gains from fuller ones.
    pub linger: Duration,
    /// Transactions in flight at once. A fetched batch is split by
    /// [`Handler::lane_key`]; each lane applies its share in order, in its
    /// own transaction, while the others (and the next fetch) proceed, so
    /// one batch's commit no longer stalls the next one's work. Messages
    /// with one key never overtake each other.
    pub lanes: usize,
}

impl ConsumerSpec {
    pub fn new(
        name: impl Into<String>,
        stream: impl Into<String>,
        filter_subjects: Vec<String>,
    ) -> Self {
        Self {
            name: name.into(),
            stream: stream.into(),
            filter_subjects,
            max_deliver: 8,
            backoff: vec![
                Duration::from_millis(200),
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(15),
                Duration::from_secs(30),
                Duration::from_secs(60),
            ],
            batch: 200,
            batch_mode: true,
            ingest: false,
            record_inbox: true,
            ack_wait: Duration::from_secs(30),
            linger: Duration::ZERO,
            lanes: 1,
        }
    }
}

pub struct Consumer {
    pub(crate) pool: PgPool,
    pub(crate) js: jetstream::Context,
    pub(crate) ns: Namespace,
    pub(crate) service: Service,
    pub(crate) spec: ConsumerSpec,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) outbox: Outbox,
    pub(crate) clock: SharedClock,
}

impl Consumer {
    pub fn new(
        pool: PgPool,
        js: jetstream::Context,
        ns: Namespace,
        service: Service,
        spec: ConsumerSpec,
        handler: Arc<dyn Handler>,
        clock: SharedClock,
    ) -> Self {
        let outbox = Outbox::new(ns.clone(), clock.clone());
        Self {
            pool,
            js,
            ns,
            service,
            spec,
            handler,
            outbox,
            clock,
        }
    }

    pub fn durable_name(&self) -> String {
        self.ns.durable(self.service, &self.spec.name)
    }

    async fn ensure(&self) -> Result<jetstream::consumer::Consumer<pull::Config>, BusError> {
        let name = self.durable_name();
        let stream = self
            .js
            .get_stream(&self.spec.stream)
            .await
            .map_err(BusError::nats)?;
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subjects: self.spec.filter_subjects.clone(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.spec.ack_wait,
            max_deliver: -1,
            max_ack_pending: (self.spec.batch as i64 * 4).max(1000),
            ..Default::default()
        };
        stream
            .get_or_create_consumer(&name, config)
            .await
            .map_err(BusError::nats)
    }

    /// Runs until `shutdown`: stops pulling, finishes the batch in hand.
    /// Broker or database outages are waited out with backoff.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut pause = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.pull_until_error(&shutdown).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(service = %self.service, consumer = %self.spec.name, error = %err,
                        "consumer interrupted; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn pull_until_error(&self, shutdown: &CancellationToken) -> Result<(), BusError> {
        let consumer = self.ensure().await?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.spec.batch)
            .expires(Duration::from_secs(5))
            .heartbeat(Duration::from_secs(2))
            .messages()
            .await
            .map_err(BusError::nats)?;
        let mut chunks = messages.ready_chunks(self.spec.batch);
        let lanes = self.spec.lanes.max(1);
        // One batch queued per lane: the next fetch overlaps the work in hand
        // without fetching far ahead of it.
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..lanes)
            .map(|_| tokio::sync::mpsc::channel::<Vec<jetstream::Message>>(1))
            .unzip();
        let workers = futures::future::join_all(receivers.into_iter().map(|mut rx| async move {
            while let Some(batch) = rx.recv().await {
                self.process(batch).await;
            }
        }));
        let fetch = async move {
            let mut housekeeping = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(()),
                    chunk = chunks.next() => {
                        let Some(chunk) = chunk else {
                            return Err(BusError::Nats("message stream ended".into()));
                        };
                        let mut batch = Vec::with_capacity(chunk.len());
                        for msg in chunk {
                            batch.push(msg.map_err(BusError::nats)?);
                        }
                        let until = tokio::time::Instant::now() + self.spec.linger;
                        while batch.len() < self.spec.batch {
                            let Ok(Some(more)) = tokio::time::timeout_at(until, chunks.next()).await
                            else {
                                break;
                            };
                            for msg in more {
                                batch.push(msg.map_err(BusError::nats)?);
                            }
                        }
                        for (lane, share) in self.split(batch, lanes).into_iter().enumerate() {
                            if !share.is_empty() && senders[lane].send(share).await.is_err() {
                                return Err(BusError::Nats("consumer lane stopped".into()));
                            }
                        }
                    }
                    _ = housekeeping.tick() => {
                        self.housekeeping(&consumer).await;
                    }
                }
            }
        };
        // `fetch` returning drops the senders: every lane finishes what it
        // holds, then stops.
        let (outcome, _) = tokio::join!(fetch, workers);
        outcome
    }

    /// Shares of a batch by lane, each in stream order.
    fn split(&self, batch: Vec<jetstream::Message>, lanes: usize) -> Vec<Vec<jetstream::Message>> {
        if lanes == 1 {
            return vec![batch];
        }
        let mut shares: Vec<Vec<jetstream::Message>> = (0..lanes).map(|_| Vec::new()).collect();
        for msg in batch {
            let lane = self.handler.lane_key(&msg.subject, &msg.payload) % lanes as u64;
            shares[lane as usize].push(msg);
        }
        shares
    }

    async fn housekeeping(&self, consumer: &jetstream::consumer::Consumer<pull::Config>) {
        if let Err(err) = dlq::replay_requested(self).await {
            tracing::warn!(consumer = %self.spec.name, error = %err, "dead-letter replay pass failed");
        }
        let mut consumer = consumer.clone();
        if let Ok(info) = consumer.info().await {
            metrics::CONSUMER_LAG
                .with_label_values(&[self.service.as_str(), &self.spec.name])
                .set(info.num_pending as i64);
        }
    }

    fn decode(&self, msg: &jetstream::Message) -> Result<Incoming, String> {
        let info = msg
            .info()
            .map_err(|e| format!("not a JetStream message: {e}"))?;
        let meta = if self.spec.ingest {
            codec::decode_ingest(
                &msg.subject,
                msg.headers.as_ref(),
                info.stream_sequence,
                self.clock.now(),
            )
        } else {
            codec::decode(msg.headers.as_ref())
        }
        .map_err(|e| e.to_string())?;
        Ok(Incoming {
            subject: msg.subject.to_string(),
            meta,
            payload: msg.payload.clone(),
            delivered: info.delivered,
        })
    }

    async fn process(&self, batch: Vec<jetstream::Message>) {
        let mut decoded = Vec::with_capacity(batch.len());
        for msg in batch {
            match self.decode(&msg) {
                Ok(incoming) => {
                    if incoming.delivered > 1 {
                        metrics::REDELIVERIES
                            .with_label_values(&[self.service.as_str(), &self.spec.name])
                            .inc();
                    }
                    decoded.push((msg, incoming));
                }
                Err(reason) => self.dead_letter_undecodable(&msg, &reason).await,
            }
        }
        if decoded.is_empty() {
            return;
        }
        if self.spec.batch_mode && decoded.len() > 1 && self.process_batch(&decoded).await {
            return;
        }
        for (msg, incoming) in &decoded {
            self.process_one(msg, incoming).await;
        }
    }

    /// One transaction for the whole batch. Returns false (nothing committed)
    /// when anything failed, and the caller goes message by message.
    async fn process_batch(&self, batch: &[(jetstream::Message, Incoming)]) -> bool {
        let outcome: Result<Option<(usize, usize)>, BusError> = async {
            let mut tx = self.pool.begin().await?;
            let fresh = self.fresh(&mut tx, batch.iter().map(|(_, i)| i)).await?;
            let mut seen = HashSet::new();
            let todo: Vec<&Incoming> = batch
                .iter()
                .map(|(_, incoming)| incoming)
                .filter(|i| fresh.contains(&i.meta.id.as_uuid()) && seen.insert(i.meta.id))
                .collect();
            let applied = todo.len();
            let span =
                tracing::info_span!("consume_batch", consumer = %self.spec.name, size = applied);
            if let Err(err) = self
                .handler
                .handle_batch(&mut tx, &todo)
                .instrument(span)
                .await
            {
                // Correct either way, but one transaction per message is much
                // slower: worth seeing when it happens often.
                tracing::info!(consumer = %self.spec.name, error = ?err,
                    "batch not applied as one; applying its messages one by one");
                self.count("batch_fallback", 1);
                tx.rollback().await?;
                return Ok(None);
            }
            tx.commit().await?;
            Ok(Some((applied, batch.len() - applied)))
        }
        .await;
        match outcome {
            Ok(Some((applied, duplicates))) => {
                for (msg, _) in batch {
                    ack(msg, AckKind::Ack).await;
                }
                self.count("applied", applied as u64);
                self.count("duplicate", duplicates as u64);
                true
            }
            Ok(None) => false,
            Err(err) => {
                tracing::warn!(consumer = %self.spec.name, error = %err, "batch transaction failed");
                false
            }
        }
    }

    async fn process_one(&self, msg: &jetstream::Message, incoming: &Incoming) {
        let span = consume_span(incoming);
        let outcome = self.apply_one(incoming).instrument(span.clone()).await;
        match outcome {
            Ok(Applied::Yes) => {
                ack(msg, AckKind::Ack).await;
                self.count("applied", 1);
            }
            Ok(Applied::Duplicate) => {
                ack(msg, AckKind::Ack).await;
                self.count("duplicate", 1);
            }
            Err(HandlerFailure::Infrastructure(err)) => {
                // The database (or the transaction) failed around the
                // handler: not the message's fault, so it does not count
                // toward the dead-letter limit beyond JetStream's own count.
                tracing::warn!(parent: &span, error = %err, "inbox transaction failed; will retry");
                ack(msg, AckKind::Nak(Some(self.backoff(incoming.delivered)))).await;
                self.count("retry", 1);
            }
            Err(HandlerFailure::Handler(HandlerError::Transient(reason)))
                if incoming.delivered < self.spec.max_deliver =>
            {
                tracing::info!(parent: &span, attempt = incoming.delivered, %reason, "handler failed; will retry");
                ack(msg, AckKind::Nak(Some(self.backoff(incoming.delivered)))).await;
                self.count("retry", 1);
            }
            Err(HandlerFailure::Handler(err)) => {
                let reason = match err {
                    HandlerError::Transient(reason) => {
                        format!("gave up after {} attempts: {reason}", incoming.delivered)
                    }
                    HandlerError::Permanent(reason) => reason,
                };
                tracing::warn!(parent: &span, %reason, "dead-lettering message");
                match dlq::record(self, incoming, &reason, msg.headers.as_ref()).await {
                    Ok(()) => {
                        ack(msg, AckKind::Ack).await;
                        self.count("dead", 1);
                    }
                    Err(e) => {
                        tracing::error!(parent: &span, error = %e, "could not record dead letter; will retry");
                        ack(msg, AckKind::Nak(Some(self.backoff(incoming.delivered)))).await;
                    }
                }
            }
        }
    }

    /// The inbox transaction for one message.
    pub(crate) async fn apply_one(&self, incoming: &Incoming) -> Result<Applied, HandlerFailure> {
        let mut tx = self.pool.begin().await.map_err(HandlerFailure::infra)?;
        let fresh = self
            .fresh(&mut tx, std::iter::once(incoming))
            .await
            .map_err(HandlerFailure::infra)?;
        if fresh.is_empty() {
            return Ok(Applied::Duplicate);
        }
        self.handler
            .handle(&mut tx, incoming)
            .await
            .map_err(HandlerFailure::Handler)?;
        tx.commit().await.map_err(HandlerFailure::infra)?;
        Ok(Applied::Yes)
    }

    /// The messages not seen before: inbox rows written for them, or, when
    /// the handler keeps its own record, those without a dead letter.
    async fn fresh<'a>(
        &self,
        conn: &mut PgConnection,
        incoming: impl Iterator<Item = &'a Incoming>,
    ) -> Result<HashSet<uuid::Uuid>, sqlx::Error> {
        if self.spec.record_inbox {
            return insert_inbox_rows(conn, &self.spec.name, incoming, "applied").await;
        }
        let ids: Vec<uuid::Uuid> = incoming.map(|i| i.meta.id.as_uuid()).collect();
        let dead: HashSet<uuid::Uuid> = sqlx::query_scalar(
            "SELECT event_id FROM inbox WHERE consumer = $1 AND event_id = ANY($2)",
        )
        .bind(&self.spec.name)
        .bind(&ids)
        .fetch_all(conn)
        .await?
        .into_iter()
        .collect();
        Ok(ids.into_iter().filter(|id| !dead.contains(id)).collect())
    }

    fn backoff(&self, delivered: i64) -> Duration {
        let idx = (delivered.max(1) as usize - 1).min(self.spec.backoff.len().saturating_sub(1));
        self.spec
            .backoff
            .get(idx)
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }

    fn count(&self, outcome: &str, n: u64) {
        if n > 0 {
            metrics::CONSUMED
                .with_label_values(&[self.service.as_str(), &self.spec.name, outcome])
                .inc_by(n);
        }
    }

    async fn dead_letter_undecodable(&self, msg: &jetstream::Message, reason: &str) {
        let seq = msg.info().map(|i| i.stream_sequence).unwrap_or_default();
        let meta = codec::decode_ingest(&msg.subject, msg.headers.as_ref(), seq, self.clock.now())
            .unwrap_or_else(|_| fallback_meta(&msg.subject, seq, self.clock.now()));
        let incoming = Incoming {
            subject: msg.subject.to_string(),
            meta,
            payload: msg.payload.clone(),
            delivered: msg.info().map(|i| i.delivered).unwrap_or(1),
        };
        let reason = format!("undecodable message: {reason}");
        match dlq::record(self, &incoming, &reason, msg.headers.as_ref()).await {
            Ok(()) => {
                ack(msg, AckKind::Ack).await;
                self.count("dead", 1);
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record dead letter; will retry");
                ack(msg, AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
}

pub(crate) enum Applied {
    Yes,
    Duplicate,
}

pub(crate) enum HandlerFailure {
    Infrastructure(BusError),
    Handler(HandlerError),
}

impl HandlerFailure {
    fn infra(e: impl Into<BusError>) -> Self {
        HandlerFailure::Infrastructure(e.into())
    }
}

fn fallback_meta(subject: &str, seq: u64, now: chrono::DateTime<chrono::Utc>) -> MessageMeta {
    let id = codec::ingest_event_id(&format!("{subject}#{seq}"));
    MessageMeta {
        id,
        event_type: subject.rsplit('.').next().unwrap_or_default().to_owned(),
        version: 1,
        correlation: vbp_kernel::CorrelationId::from_uuid(id.as_uuid()),
        causation: None,
        actor: None,
        occurred_at: now,
        traceparent: None,
        tracestate: None,
    }
}

/// The span of consuming one message, continuing its producer's trace; a
/// `handle_batch` enters one per message so each effect stays in its flow's trace.
pub fn consume_span(incoming: &Incoming) -> tracing::Span {
    let span = tracing::info_span!(
        "consume",
        event_type = %incoming.meta.event_type,
        event_id = %incoming.meta.id,
        correlation = %incoming.meta.correlation,
        trace_id = tracing::field::Empty,
        otel.kind = "consumer",
    );
    crate::trace::continue_trace(
        &span,
        incoming.meta.traceparent.as_deref(),
        incoming.meta.tracestate.as_deref(),
    );
    span
}

async fn ack(msg: &jetstream::Message, kind: AckKind) {
    // A lost ack only means a redelivery, which the inbox absorbs.
    if let Err(err) = msg.ack_with(kind).await {
        tracing::debug!(error = %err, "ack not sent");
    }
}

/// Inserts inbox rows, returning the event ids that were not there yet.
pub(crate) async fn insert_inbox_rows<'a>(
    conn: &mut PgConnection,
    consumer: &str,
    incoming: impl Iterator<Item = &'a Incoming>,
    outcome: &str,
) -> Result<HashSet<uuid::Uuid>, sqlx::Error> {
    let mut ids = Vec::new();
    let mut types = Vec::new();
    let mut subjects = Vec::new();
    let mut correlations = Vec::new();
    let mut causations = Vec::new();
    let mut actors = Vec::new();
    let mut occurred = Vec::new();
    for i in incoming {
        ids.push(i.meta.id.as_uuid());
        types.push(i.meta.event_type.clone());
        subjects.push(i.subject.clone());
        correlations.push(i.meta.correlation.as_uuid());
        causations.push(i.meta.causation.map(|c| c.as_uuid()));
        actors.push(
            i.meta
                .actor
                .as_ref()
                .and_then(|a| serde_json::to_value(a).ok()),
        );
        occurred.push(i.meta.occurred_at);
    }
    let rows: Vec<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO inbox (consumer, event_id, event_type, subject, correlation, causation, actor, occurred_at, outcome) \
         SELECT $1, * , $9 FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::uuid[], $7::jsonb[], $8::timestamptz[]) \
         ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id",
    )
    .bind(consumer)
    .bind(&ids)
    .bind(&types)
    .bind(&subjects)
    .bind(&correlations)
    .bind(&causations)
    .bind(&actors)
    .bind(&occurred)
    .bind(outcome)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}
