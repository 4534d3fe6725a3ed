//! Dead letters: what a consumer gave up on, with the reason. Each is a row
//! in the service's `dlq` table (the system of record, replayable) and a
//! message on `{ns}.dlq.{service}.{consumer}` (for alerting), written in one
//! transaction through the outbox. Replay runs inside the owning consumer,
//! through the same inbox transaction as a live message.

use std::collections::BTreeMap;

use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use vbp_contracts::Service;
use vbp_contracts::system::{DEAD_LETTER_TYPE, DeadLetter};
use vbp_kernel::EventId;

use crate::context::Context;
use crate::error::BusError;
use crate::inbox::{Applied, Consumer, HandlerFailure, Incoming, insert_inbox_rows};
use crate::metrics;

fn headers_json(headers: Option<&HeaderMap>) -> serde_json::Value {
    let mut out = BTreeMap::new();
    if let Some(headers) = headers {
        for (name, values) in headers.iter() {
            if let Some(v) = values.last() {
                out.insert(name.to_string(), v.as_str().to_owned());
            }
        }
    }
    serde_json::to_value(out).unwrap_or_default()
}

/// Parks `incoming` with `reason`: its inbox row is marked dead (so a
/// redelivery is not applied behind the operator's back), the dlq row and
/// the DLQ message are written, all in one transaction.
pub(crate) async fn record(
    consumer: &Consumer,
    incoming: &Incoming,
    reason: &str,
    headers: Option<&HeaderMap>,
) -> Result<(), BusError> {
    let mut tx = consumer.pool.begin().await?;
    insert_inbox_rows(
        &mut tx,
        &consumer.spec.name,
        std::iter::once(incoming),
        "dead",
    )
    .await?;
    let id = uuid::Uuid::now_v7();
    let dead_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO dlq (id, consumer, event_id, event_type, subject, headers, payload, reason, attempts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING dead_at",
    )
    .bind(id)
    .bind(&consumer.spec.name)
    .bind(incoming.meta.id.as_uuid())
    .bind(&incoming.meta.event_type)
    .bind(&incoming.subject)
    .bind(headers_json(headers))
    .bind(incoming.payload.as_ref())
    .bind(reason)
    .bind(incoming.delivered as i32)
    .fetch_one(&mut *tx)
    .await?;
    let letter = DeadLetter {
        id,
        service: consumer.service,
        consumer: consumer.spec.name.clone(),
        event_id: incoming.meta.id,
        event_type: incoming.meta.event_type.clone(),
        subject: incoming.subject.clone(),
        reason: reason.to_owned(),
        attempts: incoming.delivered as i32,
        payload: String::from_utf8_lossy(&incoming.payload).into_owned(),
        dead_at,
        replay_requested_at: None,
        replayed_at: None,
        replay_outcome: None,
    };
    let subject = consumer.ns.dlq(consumer.service, &consumer.spec.name);
    consumer
        .outbox
        .append_raw(
            &mut tx,
            &Context::caused_by(&incoming.meta),
            &subject,
            DEAD_LETTER_TYPE,
            1,
            &letter,
        )
        .await?;
    tx.commit().await?;
    refresh_size(&consumer.pool, consumer.service).await;
    Ok(())
}

async fn refresh_size(pool: &PgPool, service: Service) {
    if let Ok(n) = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM dlq WHERE replayed_at IS NULL OR replay_outcome <> 'applied'",
    )
    .fetch_one(pool)
    .await
    {
        metrics::DLQ_SIZE
            .with_label_values(&[service.as_str()])
            .set(n);
    }
}

/// Dead letters of a service, newest first.
pub async fn list(
    pool: &PgPool,
    service: Service,
    limit: i64,
) -> Result<Vec<DeadLetter>, BusError> {
    let rows = sqlx::query(
        "SELECT id, consumer, event_id, event_type, subject, reason, attempts, payload, dead_at, \
         replay_requested_at, replayed_at, replay_outcome FROM dlq ORDER BY dead_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let payload: Vec<u8> = row.try_get("payload")?;
            Ok(DeadLetter {
                id: row.try_get("id")?,
                service,
                consumer: row.try_get("consumer")?,
                event_id: EventId::from_uuid(row.try_get("event_id")?),
                event_type: row.try_get("event_type")?,
                subject: row.try_get("subject")?,
                reason: row.try_get("reason")?,
                attempts: row.try_get("attempts")?,
                payload: String::from_utf8_lossy(&payload).into_owned(),
                dead_at: row.try_get("dead_at")?,
                replay_requested_at: row.try_get("replay_requested_at")?,
                replayed_at: row.try_get("replayed_at")?,
                replay_outcome: row.try_get("replay_outcome")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(BusError::from)
}

/// Asks the owning consumer to apply the dead letter `id` again (or every
/// dead letter not yet applied, when `id` is None). The running service picks
/// the request up within seconds. Returns how many were requested.
pub async fn request_replay(pool: &PgPool, id: Option<uuid::Uuid>) -> Result<u64, BusError> {
    let done = sqlx::query(
        "UPDATE dlq SET replay_requested_at = now(), replayed_at = NULL, replay_outcome = NULL \
         WHERE ($1::uuid IS NULL OR id = $1) AND (replay_outcome IS DISTINCT FROM 'applied')",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Applies requested replays of this consumer's dead letters.
pub(crate) async fn replay_requested(consumer: &Consumer) -> Result<(), BusError> {
    loop {
        let mut tx = consumer.pool.begin().await?;
        let row = sqlx::query(
            "SELECT id, event_id, subject, headers, payload FROM dlq \
             WHERE consumer = $1 AND replay_requested_at IS NOT NULL AND replayed_at IS NULL \
             ORDER BY dead_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .bind(&consumer.spec.name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(()) };
        let id: uuid::Uuid = row.try_get("id")?;
        let event_id: uuid::Uuid = row.try_get("event_id")?;
        let headers: sqlx::types::Json<BTreeMap<String, String>> = row.try_get("headers")?;
        let mut map = HeaderMap::new();
        for (k, v) in headers.0 {
            if let (Ok(v), true) = (v.parse::<async_nats::HeaderValue>(), !k.is_empty()) {
                map.insert(k.as_str(), v);
            }
        }
        let subject: String = row.try_get("subject")?;
        let payload: Vec<u8> = row.try_get("payload")?;
        // Lift the dead mark so the inbox transaction applies it as new.
        sqlx::query("DELETE FROM inbox WHERE consumer = $1 AND event_id = $2 AND outcome = 'dead'")
            .bind(&consumer.spec.name)
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;

        let decoded = if consumer.spec.ingest {
            crate::codec::decode_ingest(&subject, Some(&map), 0, consumer.clock.now())
        } else {
            crate::codec::decode(Some(&map))
        };
        let outcome = match decoded {
            Err(e) => format!("failed: undecodable: {e}"),
            Ok(mut meta) => {
                meta.id = EventId::from_uuid(event_id);
                let incoming = Incoming {
                    subject,
                    meta,
                    payload: payload.into(),
                    delivered: 1,
                };
                match consumer.apply_one(&incoming).await {
                    Ok(Applied::Yes) | Ok(Applied::Duplicate) => "applied".to_owned(),
                    Err(HandlerFailure::Handler(e)) => format!("failed: {e}"),
                    Err(HandlerFailure::Infrastructure(e)) => format!("failed: {e}"),
                }
            }
        };
        if outcome != "applied" {
            // Keep it parked: restore the dead mark so live redeliveries stay inert.
            sqlx::query(
                "INSERT INTO inbox (consumer, event_id, event_type, subject, outcome) \
                 SELECT consumer, event_id, event_type, subject, 'dead' FROM dlq WHERE id = $1 \
                 ON CONFLICT (consumer, event_id) DO NOTHING",
            )
            .bind(id)
            .execute(&consumer.pool)
            .await?;
        }
        sqlx::query("UPDATE dlq SET replayed_at = now(), replay_outcome = $2 WHERE id = $1")
            .bind(id)
            .bind(&outcome)
            .execute(&consumer.pool)
            .await?;
        refresh_size(&consumer.pool, consumer.service).await;
    }
}
