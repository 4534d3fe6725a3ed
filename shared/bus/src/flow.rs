//! A service's part of one business flow: what it emitted (outbox) and what
//! it consumed (inbox) under a correlation id. The gateway merges every
//! service's part into one timeline.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use vbp_contracts::Service;
use vbp_contracts::system::{FlowDirection, FlowEntry};
use vbp_kernel::{Actor, CorrelationId, EventId};

use crate::error::BusError;

pub async fn entries(
    pool: &PgPool,
    service: Service,
    correlation: CorrelationId,
) -> Result<Vec<FlowEntry>, BusError> {
    let rows = sqlx::query(
        "SELECT 'emitted' AS direction, id AS event_id, event_type, subject, occurred_at AS at, actor, causation \
           FROM outbox WHERE correlation = $1 AND event_type <> 'dlq.dead_letter' \
         UNION ALL \
         SELECT 'consumed', event_id, event_type, subject, processed_at, actor, causation \
           FROM inbox WHERE correlation = $1 AND outcome = 'applied' \
         ORDER BY at, event_id",
    )
    .bind(correlation.as_uuid())
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let direction: String = row.try_get("direction")?;
            let actor: Option<sqlx::types::Json<Actor>> = row.try_get("actor")?;
            Ok(FlowEntry {
                service,
                direction: if direction == "emitted" {
                    FlowDirection::Emitted
                } else {
                    FlowDirection::Consumed
                },
                event_id: EventId::from_uuid(row.try_get("event_id")?),
                event_type: row.try_get("event_type")?,
                subject: row.try_get("subject")?,
                at: row.try_get::<DateTime<Utc>, _>("at")?,
                actor: actor.map(|a| a.0),
                causation: row
                    .try_get::<Option<uuid::Uuid>, _>("causation")?
                    .map(EventId::from_uuid),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(BusError::from)
}
