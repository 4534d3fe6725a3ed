//! [`MessageMeta`] to and from NATS headers.

use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use vbp_contracts::{MessageMeta, headers};
use vbp_kernel::{Actor, CorrelationId, EventId};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("header {0} is missing")]
    Missing(&'static str),
    #[error("header {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Separates the event id from the republish generation in `Nats-Msg-Id`.
/// A purge keeps JetStream's dedup map, so a republished row needs a new
/// message id; consumers still de-duplicate on the event id before it.
const GENERATION_SEPARATOR: char = '~';

/// The `Nats-Msg-Id` of an event: its id, plus the republish generation when
/// it was republished.
pub fn msg_id(id: EventId, generation: i32) -> String {
    if generation == 0 {
        id.to_string()
    } else {
        format!("{id}{GENERATION_SEPARATOR}{generation}")
    }
}

fn event_id_of_msg_id(msg_id: &str) -> Option<EventId> {
    let id = msg_id.split(GENERATION_SEPARATOR).next()?;
    id.parse().ok()
}

pub(crate) fn put(map: &mut HeaderMap, name: &'static str, value: &str) {
    // Values come from our own types (ids, numbers, compact JSON), which never
    // hold CR or LF; a value that did would be dropped rather than corrupt
    // the frame.
    if let Ok(value) = value.parse::<async_nats::HeaderValue>() {
        map.insert(name, value);
    }
}

pub(crate) fn put_actor(map: &mut HeaderMap, actor: &Actor) {
    if let Ok(json) = serde_json::to_string(actor) {
        put(map, headers::ACTOR, &json);
    }
}

pub fn encode(meta: &MessageMeta, generation: i32) -> HeaderMap {
    let mut map = HeaderMap::new();
    put(&mut map, headers::MSG_ID, &msg_id(meta.id, generation));
    put(&mut map, headers::TYPE, &meta.event_type);
    put(&mut map, headers::VERSION, &meta.version.to_string());
    put(
        &mut map,
        headers::CORRELATION,
        &meta.correlation.to_string(),
    );
    if let Some(causation) = meta.causation {
        put(&mut map, headers::CAUSATION, &causation.to_string());
    }
    if let Some(actor) = &meta.actor {
        put_actor(&mut map, actor);
    }
    put(
        &mut map,
        headers::OCCURRED_AT,
        &meta.occurred_at.to_rfc3339(),
    );
    if let Some(tp) = &meta.traceparent {
        put(&mut map, headers::TRACEPARENT, tp);
    }
    if let Some(ts) = &meta.tracestate {
        put(&mut map, headers::TRACESTATE, ts);
    }
    map
}

fn get<'a>(map: &'a HeaderMap, name: &'static str) -> Option<&'a str> {
    map.get(name).map(|v| v.as_str())
}

fn required<'a>(map: &'a HeaderMap, name: &'static str) -> Result<&'a str, CodecError> {
    get(map, name).ok_or(CodecError::Missing(name))
}

fn invalid(name: &'static str, reason: impl ToString) -> CodecError {
    CodecError::Invalid {
        name,
        reason: reason.to_string(),
    }
}

pub fn decode_actor(map: &HeaderMap) -> Result<Option<Actor>, CodecError> {
    get(map, headers::ACTOR)
        .map(|json| serde_json::from_str(json).map_err(|e| invalid(headers::ACTOR, e)))
        .transpose()
}

pub fn decode_correlation(map: &HeaderMap) -> Result<Option<CorrelationId>, CodecError> {
    get(map, headers::CORRELATION)
        .map(|v| v.parse().map_err(|e| invalid(headers::CORRELATION, e)))
        .transpose()
}

/// Strict decoding of a service's event: every contract header must be there.
pub fn decode(map: Option<&HeaderMap>) -> Result<MessageMeta, CodecError> {
    let map = map.ok_or(CodecError::Missing(headers::MSG_ID))?;
    let id = event_id_of_msg_id(required(map, headers::MSG_ID)?)
        .ok_or_else(|| invalid(headers::MSG_ID, "not an event id (UUID)"))?;
    let version = required(map, headers::VERSION)?
        .parse()
        .map_err(|e| invalid(headers::VERSION, e))?;
    let correlation = decode_correlation(map)?.ok_or(CodecError::Missing(headers::CORRELATION))?;
    let causation = get(map, headers::CAUSATION)
        .map(|v| v.parse().map_err(|e| invalid(headers::CAUSATION, e)))
        .transpose()?;
    let occurred_at = DateTime::parse_from_rfc3339(required(map, headers::OCCURRED_AT)?)
        .map_err(|e| invalid(headers::OCCURRED_AT, e))?
        .with_timezone(&Utc);
    Ok(MessageMeta {
        id,
        event_type: required(map, headers::TYPE)?.to_owned(),
        version,
        correlation,
        causation,
        actor: decode_actor(map)?,
        occurred_at,
        traceparent: get(map, headers::TRACEPARENT).map(str::to_owned),
        tracestate: get(map, headers::TRACESTATE).map(str::to_owned),
    })
}

/// Integrators publishing straight to NATS may send only `Nats-Msg-Id`: the
/// event type is the last subject token, the event id is derived from the
/// message id (so both ingest paths de-duplicate alike), and a message
/// without one gets an id from its stream position (stable across redelivery).
pub fn decode_ingest(
    subject: &str,
    map: Option<&HeaderMap>,
    stream_sequence: u64,
    received_at: DateTime<Utc>,
) -> Result<MessageMeta, CodecError> {
    let empty = HeaderMap::new();
    let map = map.unwrap_or(&empty);
    let event_type = subject.rsplit('.').next().unwrap_or_default().to_owned();
    let id = match get(map, headers::MSG_ID) {
        Some(msg_id) => event_id_of_msg_id(msg_id).unwrap_or_else(|| {
            EventId::from_uuid(uuid::Uuid::new_v5(&INGEST_ID_NAMESPACE, msg_id.as_bytes()))
        }),
        None => EventId::from_uuid(uuid::Uuid::new_v5(
            &INGEST_ID_NAMESPACE,
            format!("{subject}#{stream_sequence}").as_bytes(),
        )),
    };
    Ok(MessageMeta {
        id,
        event_type,
        version: get(map, headers::VERSION)
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
        correlation: decode_correlation(map)?
            .unwrap_or_else(|| CorrelationId::from_uuid(id.as_uuid())),
        causation: None,
        actor: decode_actor(map)?,
        occurred_at: received_at,
        traceparent: get(map, headers::TRACEPARENT).map(str::to_owned),
        tracestate: get(map, headers::TRACESTATE).map(str::to_owned),
    })
}

/// Fixed namespace for deriving ingest event ids (UUIDv5).
const INGEST_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x7b1c_9a3e_52d4_4f0b_9e51_6c0f_d2a8_4e17);

/// The event id a message id stands for, as [`decode_ingest`] derives it.
pub fn ingest_event_id(msg_id: &str) -> EventId {
    event_id_of_msg_id(msg_id).unwrap_or_else(|| {
        EventId::from_uuid(uuid::Uuid::new_v5(&INGEST_ID_NAMESPACE, msg_id.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> MessageMeta {
        MessageMeta {
            id: EventId::new(),
            event_type: "orders.receipt.accepted".into(),
            version: 1,
            correlation: CorrelationId::new(),
            causation: Some(EventId::new()),
            actor: None,
            occurred_at: "2026-02-12T02:00:00Z".parse().unwrap(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            tracestate: None,
        }
    }

    #[test]
    fn round_trips_through_headers_at_every_generation() {
        let meta = meta();
        for generation in [0, 1, 7] {
            let decoded = decode(Some(&encode(&meta, generation))).unwrap();
            assert_eq!(decoded, meta);
        }
        assert_ne!(msg_id(meta.id, 0), msg_id(meta.id, 1));
    }

    #[test]
    fn missing_or_bad_headers_name_the_header() {
        let mut map = encode(&meta(), 0);
        map.insert(headers::VERSION, "one");
        assert!(matches!(
            decode(Some(&map)),
            Err(CodecError::Invalid {
                name: headers::VERSION,
                ..
            })
        ));
        assert_eq!(decode(None), Err(CodecError::Missing(headers::MSG_ID)));
    }

    #[test]
    fn ingest_ids_are_stable_per_message_id() {
        let at = Utc::now();
        let mut map = HeaderMap::new();
        map.insert(headers::MSG_ID, "ingest:his01:PO-1");
        let a = decode_ingest("vbp.ingest.his01.order_placed", Some(&map), 5, at).unwrap();
        let b = decode_ingest("vbp.ingest.his01.order_placed", Some(&map), 9, at).unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(a.id, ingest_event_id("ingest:his01:PO-1"));
        assert_eq!(a.event_type, "order_placed");
        let c = decode_ingest("vbp.ingest.his01.order_placed", None, 5, at).unwrap();
        let d = decode_ingest("vbp.ingest.his01.order_placed", None, 6, at).unwrap();
        assert_ne!(c.id, d.id);
    }
}
