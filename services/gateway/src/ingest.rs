//! `POST /api/v1/ingest/{integrator}`: integrator event batches onto the
//! ingest stream, for integrators that do not publish on NATS themselves.
//!
//! Each item is `{event, external_id?, payload}`: `event` names one of
//! [`vbp_contracts::ingest::EVENTS`], `payload` is that event's contract type,
//! and `external_id`, when given, must equal the payload's own (it lets the
//! answer name an item whose payload is unreadable). Items are judged one by
//! one — a bad item never sinks the batch — and published with
//! `Nats-Msg-Id = ingest:{integrator}:{external_id}`, the same id a direct NATS
//! publisher uses, so a resend through either path is a JetStream duplicate.
//!
//! Headers of a published item: `Nats-Msg-Id`, `vbp-type` (the event name),
//! `vbp-version`, `vbp-correlation`, `vbp-actor`, `vbp-occurred-at` and the
//! W3C trace context. The correlation is the caller's `X-Correlation-Id` when
//! sent, else the one the orders service would derive from the message id
//! ([`vbp_bus::codec::decode_ingest`]), so both ingest paths agree.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::Ordering;

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vbp_contracts::headers;
use vbp_contracts::ingest::{
    self, OrderAccepted, OrderPlaced, OrderReceived, OrderUpdated, ShipmentDispatched,
};
use vbp_contracts::subjects::valid_token;
use vbp_kernel::{Actor, CorrelationId, OrgKind};

use crate::input::{self, JsonLimits};
use crate::problem::{Problem, codes};
use crate::request::RequestContext;
use crate::schema_check;
use crate::{CompiledRoute, Gateway, forward};

/// The request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestBatch {
    /// Judged one by one, so an unreadable item is answered, not fatal.
    pub items: Vec<Value>,
}

/// One item of a batch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestItem {
    pub event: String,
    #[serde(default)]
    pub external_id: Option<String>,
    pub payload: Value,
}

impl JsonSchema for IngestBatch {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IngestBatch".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let item = generator.subschema_for::<IngestItem>();
        json_schema!({
            "type": "object",
            "description": "A batch of integrator events; at most `gateway.ingest_max_batch` items (500 by default).",
            "required": ["items"],
            "additionalProperties": false,
            "properties": { "items": { "type": "array", "minItems": 1, "items": item } },
        })
    }
}

impl JsonSchema for IngestItem {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IngestItem".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let payloads: Vec<Value> = ingest::EVENTS
            .iter()
            .filter_map(|event| payload_schema(event, generator))
            .map(Schema::to_value)
            .collect();
        json_schema!({
            "type": "object",
            "description": "One integrator event. `payload` is the contract type named by `event`.",
            "required": ["event", "payload"],
            "additionalProperties": false,
            "properties": {
                "event": { "type": "string", "enum": ingest::EVENTS },
                "external_id": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 64,
                    "description": "Optional; when given it must equal `payload.external_id`."
                },
                "payload": { "oneOf": payloads },
            },
        })
    }
}

/// The schema of `event`'s payload type; `None` for an unknown event.
fn payload_schema(event: &str, generator: &mut SchemaGenerator) -> Option<Schema> {
    Some(match event {
        ingest::ORDER_PLACED => generator.subschema_for::<OrderPlaced>(),
        ingest::ORDER_UPDATED => generator.subschema_for::<OrderUpdated>(),
        ingest::SHIPMENT_DISPATCHED => generator.subschema_for::<ShipmentDispatched>(),
        ingest::ORDER_RECEIVED => generator.subschema_for::<OrderReceived>(),
        ingest::ORDER_ACCEPTED => generator.subschema_for::<OrderAccepted>(),
        _ => return None,
    })
}

/// The answer: counts, then one result per item in the order sent.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IngestResponse {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub failed: usize,
    pub items: Vec<ItemResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Stored in the ingest stream for the first time.
    Accepted,
    /// Already received (same integrator and external id); nothing stored.
    Duplicate,
    /// Invalid; `code`, `field` and `reason` say why. Fix before resending.
    Rejected,
    /// Valid but the broker did not confirm it; resending is safe.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ItemResult {
    /// Position in `items`, from 0.
    pub index: usize,
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The de-duplication id (`Nats-Msg-Id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The business flow this event starts or joins (for `GET /api/v1/flows/{correlation}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<CorrelationId>,
    /// Position in the ingest stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_sequence: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The offending field, e.g. `items[2].payload.lines[0].quantity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ItemResult {
    fn new(index: usize, status: ItemStatus) -> Self {
        Self {
            index,
            status,
            event: None,
            external_id: None,
            message_id: None,
            correlation: None,
            stream_sequence: None,
            code: None,
            field: None,
            reason: None,
        }
    }

    fn rejected(index: usize, code: &str, field: String, reason: impl Into<String>) -> Box<Self> {
        Box::new(Self {
            code: Some(code.to_owned()),
            field: Some(field),
            reason: Some(reason.into()),
            ..Self::new(index, ItemStatus::Rejected)
        })
    }
}

/// A valid item, ready to publish.
struct Valid {
    index: usize,
    event: &'static str,
    external_id: String,
    body: Vec<u8>,
}

pub(crate) async fn handle(
    gateway: &Gateway,
    compiled: &CompiledRoute,
    request: Request,
) -> Result<Response, Problem> {
    let (mut parts, body) = request.into_parts();
    let actor = gateway.admit(
        &parts.headers,
        compiled.route.policy.as_ref().expect("validated table"),
    )?;
    let integrator = integrator_of(&actor, &mut parts).await?;
    let batch = read_batch(gateway, &parts.headers, body).await?;
    ensure_stream(gateway).await?;

    let now = gateway.platform.clock.now();
    let latest = now
        + chrono::Duration::seconds(
            i64::try_from(gateway.config.ingest_max_future_skew_secs).unwrap_or(0),
        );
    let mut results: Vec<Option<ItemResult>> = vec![None; batch.items.len()];
    let mut valid = Vec::new();
    for (index, item) in batch.items.iter().enumerate() {
        match judge(index, item, latest) {
            Ok(v) => valid.push(v),
            Err(rejected) => results[index] = Some(*rejected),
        }
    }
    let context = RequestContext::of(&parts);
    for result in publish(gateway, &integrator, &actor, &context, now, valid).await {
        let index = result.index;
        results[index] = Some(result);
    }
    let answer = IngestResponse::of(results.into_iter().flatten().collect());
    Ok(axum::Json(answer).into_response())
}

impl IngestResponse {
    fn of(items: Vec<ItemResult>) -> Self {
        let count = |s: ItemStatus| items.iter().filter(|i| i.status == s).count();
        Self {
            accepted: count(ItemStatus::Accepted),
            duplicates: count(ItemStatus::Duplicate),
            rejected: count(ItemStatus::Rejected),
            failed: count(ItemStatus::Failed),
            items,
        }
    }
}

/// The `{integrator}` of the path, which an integrator's token must name
/// (its `org` claim); operators may post for any integrator.
async fn integrator_of(
    actor: &Actor,
    parts: &mut axum::http::request::Parts,
) -> Result<String, Problem> {
    let integrator = forward::path_params(parts)
        .await?
        .into_iter()
        .find_map(|(k, v)| (k == "integrator").then_some(v))
        .unwrap_or_default();
    if !valid_token(&integrator) {
        return Err(Problem::invalid(
            "integrator",
            "the integrator id must be 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'",
        ));
    }
    if actor.org_kind == OrgKind::Integrator && integrator != actor.org.to_string() {
        return Err(Problem::forbidden(format!(
            "an integrator may post only for its own id {}, not {integrator}",
            actor.org
        )));
    }
    Ok(integrator)
}

/// The batch, refused as a whole only when the body itself is unusable:
/// too large, not JSON, not `{items: [...]}`, empty or over the batch size.
async fn read_batch(
    gateway: &Gateway,
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<IngestBatch, Problem> {
    let bytes = input::read_body(headers, body, gateway.config.ingest_body_limit_bytes).await?;
    input::require_json(headers, &bytes)?;
    let limits = JsonLimits {
        max_items: gateway
            .json_limits()
            .max_items
            .max(gateway.config.ingest_max_batch),
        ..gateway.json_limits()
    };
    input::check_shape(&bytes, limits)?;
    // Through an object first: serde would also read a struct from an array.
    let body = Value::Object(input::parse_object(&bytes)?);
    let batch: IngestBatch = serde_path_to_error::deserialize(&body).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        Problem::invalid(input::field_of(&path, &message), message)
    })?;
    if batch.items.is_empty() {
        return Err(Problem::invalid("items", "a batch needs at least one item"));
    }
    let max = gateway.config.ingest_max_batch;
    if batch.items.len() > max {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "batch_too_large",
            format!(
                "a batch holds at most {max} items, got {}",
                batch.items.len()
            ),
        )
        .with_field("items"));
    }
    Ok(batch)
}

/// The ingest stream exists once per process lifetime; a request that comes
/// before [`crate::run`]'s background ensure finishes does it itself.
async fn ensure_stream(gateway: &Gateway) -> Result<(), Problem> {
    if gateway.ingest_stream_ready.load(Ordering::Acquire) {
        return Ok(());
    }
    let platform = &gateway.platform;
    let ensure = vbp_bus::streams::ensure_ingest_stream(
        &platform.js,
        &platform.ns,
        &platform.config.streams,
    );
    match tokio::time::timeout(gateway.fanout_timeout(), ensure).await {
        Ok(Ok(_)) => {
            gateway.ingest_stream_ready.store(true, Ordering::Release);
            Ok(())
        }
        outcome => {
            tracing::warn!(?outcome, "ingest stream not available");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::BUS_UNAVAILABLE,
                "the ingest stream is not available; retry later",
            )
            .retry_after(5))
        }
    }
}

/// Validates one item: its shape, its payload against the contract type and
/// schema, then the rules an edge can check without state.
fn judge(index: usize, item: &Value, latest: DateTime<Utc>) -> Result<Valid, Box<ItemResult>> {
    let at = |field: &str| {
        if field.is_empty() {
            format!("items[{index}]")
        } else {
            format!("items[{index}].{field}")
        }
    };
    // Objects only: serde would also read a struct from an array.
    if !item.is_object() {
        return Err(ItemResult::rejected(
            index,
            codes::VALIDATION_FAILED,
            at(""),
            "an item must be a JSON object",
        ));
    }
    let parsed: IngestItem = serde_path_to_error::deserialize(item).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        ItemResult::rejected(
            index,
            codes::VALIDATION_FAILED,
            at(&input::field_of(&path, &message)),
            message,
        )
    })?;
    let named = |mut r: Box<ItemResult>| {
        r.event = Some(parsed.event.clone());
        r.external_id = parsed.external_id.clone();
        r
    };
    let Some(event) = ingest::EVENTS.iter().copied().find(|e| *e == parsed.event) else {
        return Err(named(ItemResult::rejected(
            index,
            "unknown_event",
            at("event"),
            format!(
                "unknown event {:?}; expected one of {}",
                parsed.event,
                ingest::EVENTS.join(", ")
            ),
        )));
    };
    let checked = match event {
        ingest::ORDER_PLACED => {
            payload::<OrderPlaced>(event, &parsed.payload, latest, placed_rules)
        }
        ingest::ORDER_UPDATED => {
            payload::<OrderUpdated>(event, &parsed.payload, latest, updated_rules)
        }
        ingest::SHIPMENT_DISPATCHED => {
            payload::<ShipmentDispatched>(event, &parsed.payload, latest, dispatched_rules)
        }
        ingest::ORDER_RECEIVED => {
            payload::<OrderReceived>(event, &parsed.payload, latest, received_rules)
        }
        ingest::ORDER_ACCEPTED => {
            payload::<OrderAccepted>(event, &parsed.payload, latest, accepted_rules)
        }
        _ => unreachable!("every event of EVENTS has a payload type"),
    };
    let (external_id, body) = checked.map_err(|(field, message)| {
        let field = if field.is_empty() {
            at("payload")
        } else {
            at(&format!("payload.{field}"))
        };
        named(ItemResult::rejected(
            index,
            codes::VALIDATION_FAILED,
            field,
            message,
        ))
    })?;
    if let Some(given) = &parsed.external_id
        && *given != external_id
    {
        return Err(named(ItemResult::rejected(
            index,
            "external_id_mismatch",
            at("external_id"),
            format!("external_id {given:?} differs from payload.external_id {external_id:?}"),
        )));
    }
    if external_id.chars().any(char::is_control) {
        return Err(named(ItemResult::rejected(
            index,
            codes::VALIDATION_FAILED,
            at("payload.external_id"),
            "external_id must not contain control characters",
        )));
    }
    Ok(Valid {
        index,
        event,
        external_id,
        body,
    })
}

/// Contract types of ingest payloads: their id and their own timestamp.
trait IngestPayload: DeserializeOwned + Serialize {
    fn external_id(&self) -> &str;
    fn occurred_at(&self) -> DateTime<Utc>;
    const TIME_FIELD: &'static str;
}

impl IngestPayload for OrderPlaced {
    const TIME_FIELD: &'static str = "placed_at";
    fn external_id(&self) -> &str {
        &self.external_id
    }
    fn occurred_at(&self) -> DateTime<Utc> {
        self.placed_at
    }
}

impl IngestPayload for OrderUpdated {
    const TIME_FIELD: &'static str = "updated_at";
    fn external_id(&self) -> &str {
        &self.external_id
    }
    fn occurred_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
}

impl IngestPayload for ShipmentDispatched {
    const TIME_FIELD: &'static str = "shipped_at";
    fn external_id(&self) -> &str {
        &self.external_id
    }
    fn occurred_at(&self) -> DateTime<Utc> {
        self.shipped_at
    }
}

impl IngestPayload for OrderReceived {
    const TIME_FIELD: &'static str = "received_at";
    fn external_id(&self) -> &str {
        &self.external_id
    }
    fn occurred_at(&self) -> DateTime<Utc> {
        self.received_at
    }
}

impl IngestPayload for OrderAccepted {
    const TIME_FIELD: &'static str = "accepted_at";
    fn external_id(&self) -> &str {
        &self.external_id
    }
    fn occurred_at(&self) -> DateTime<Utc> {
        self.accepted_at
    }
}

type FieldError = (String, String);

/// Contract schemas by event, generated once.
static SCHEMAS: LazyLock<HashMap<&'static str, Value>> = LazyLock::new(|| {
    ingest::EVENTS
        .iter()
        .filter_map(|e| ingest::schema_of(e).map(|s| (*e, s.to_value())))
        .collect()
});

fn payload<T: IngestPayload>(
    event: &str,
    value: &Value,
    latest: DateTime<Utc>,
    rules: fn(&T) -> Result<(), FieldError>,
) -> Result<(String, Vec<u8>), FieldError> {
    if !value.is_object() {
        return Err((String::new(), "the payload must be a JSON object".into()));
    }
    let typed: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        (input::field_of(&path, &message), message)
    })?;
    if let Some(schema) = SCHEMAS.get(event) {
        schema_check::check(value, schema).map_err(|v| (v.path, v.message))?;
    }
    if typed.occurred_at() > latest {
        return Err((
            T::TIME_FIELD.to_owned(),
            format!(
                "{} lies in the future ({})",
                T::TIME_FIELD,
                typed.occurred_at()
            ),
        ));
    }
    rules(&typed)?;
    let body = serde_json::to_vec(&typed).map_err(|e| (String::new(), e.to_string()))?;
    Ok((typed.external_id().to_owned(), body))
}

fn placed_rules(order: &OrderPlaced) -> Result<(), FieldError> {
    if order.hospital == order.distributor {
        return Err((
            "distributor".into(),
            "the distributor must be another organisation than the hospital".into(),
        ));
    }
    Ok(())
}

/// A product appears on one line only, as at placement.
fn unique_codes<'a>(
    codes: impl Iterator<Item = &'a vbp_kernel::NationalCode>,
) -> Result<(), FieldError> {
    let mut seen = std::collections::HashSet::new();
    for (i, code) in codes.enumerate() {
        if !seen.insert(code.as_str()) {
            return Err((
                format!("lines[{i}].national_code"),
                format!("{code} appears on more than one line"),
            ));
        }
    }
    Ok(())
}

fn updated_rules(update: &OrderUpdated) -> Result<(), FieldError> {
    unique_codes(update.lines.iter().map(|l| &l.national_code))
}

/// Goods must not expire on or before the shipping day (Beijing time).
fn dispatched_rules(note: &ShipmentDispatched) -> Result<(), FieldError> {
    let beijing = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    let day = note.shipped_at.with_timezone(&beijing).date_naive();
    for (i, line) in note.lines.iter().enumerate() {
        if line.batch_no.trim().is_empty() {
            return Err((
                format!("lines[{i}].batch_no"),
                "a batch number is required".into(),
            ));
        }
        if line.expiry_date <= day {
            return Err((
                format!("lines[{i}].expiry_date"),
                format!(
                    "goods expiring on {} may not be shipped on {day}",
                    line.expiry_date
                ),
            ));
        }
    }
    Ok(())
}

fn received_rules(_: &OrderReceived) -> Result<(), FieldError> {
    Ok(())
}

fn accepted_rules(acceptance: &OrderAccepted) -> Result<(), FieldError> {
    for (i, line) in acceptance.lines.iter().enumerate() {
        if line.accepted_quantity + line.rejected_quantity == 0 {
            return Err((
                format!("lines[{i}]"),
                "a line must accept or reject a quantity".into(),
            ));
        }
        let reason_given = line
            .rejection_reason
            .as_deref()
            .is_some_and(|r| !r.trim().is_empty());
        if line.rejected_quantity > 0 && !reason_given {
            return Err((
                format!("lines[{i}].rejection_reason"),
                "a rejected quantity needs a reason".into(),
            ));
        }
    }
    Ok(())
}

/// Publishes the valid items pipelined (all sent, then all acks awaited) and
/// answers each from its ack.
async fn publish(
    gateway: &Gateway,
    integrator: &str,
    actor: &Actor,
    context: &RequestContext,
    now: DateTime<Utc>,
    items: Vec<Valid>,
) -> Vec<ItemResult> {
    let platform = &gateway.platform;
    let (traceparent, tracestate) = vbp_bus::trace::current_carrier();
    let actor_json = serde_json::to_string(actor).unwrap_or_default();
    let mut pending: Vec<(ItemResult, Result<PublishAckFuture, String>)> =
        Vec::with_capacity(items.len());
    for item in items {
        let message_id = ingest::message_id(integrator, &item.external_id);
        let correlation = if context.client_correlation {
            context.correlation
        } else {
            CorrelationId::from_uuid(vbp_bus::codec::ingest_event_id(&message_id).as_uuid())
        };
        let mut hdrs = HeaderMap::new();
        hdrs.insert(headers::TYPE, item.event);
        hdrs.insert(headers::VERSION, "1");
        hdrs.insert(headers::CORRELATION, correlation.to_string().as_str());
        hdrs.insert(headers::OCCURRED_AT, now.to_rfc3339().as_str());
        if let Ok(v) = actor_json.parse::<async_nats::HeaderValue>() {
            hdrs.insert(headers::ACTOR, v);
        }
        if let Some(tp) = &traceparent {
            hdrs.insert(headers::TRACEPARENT, tp.as_str());
        }
        if let Some(ts) = tracestate.as_deref().filter(|s| !s.is_empty())
            && let Ok(v) = ts.parse::<async_nats::HeaderValue>()
        {
            hdrs.insert(headers::TRACESTATE, v);
        }
        // `headers` replaces the whole map, so the message id goes on after it.
        let message = PublishMessage::build()
            .headers(hdrs)
            .message_id(&message_id)
            .payload(item.body.into());
        let sent = platform
            .js
            .send_publish(platform.ns.ingest(integrator, item.event), message)
            .await
            .map_err(|e| e.to_string());
        let result = ItemResult {
            event: Some(item.event.to_owned()),
            external_id: Some(item.external_id),
            message_id: Some(message_id),
            correlation: Some(correlation),
            ..ItemResult::new(item.index, ItemStatus::Accepted)
        };
        pending.push((result, sent));
    }
    let acks = pending.into_iter().map(|(mut result, sent)| async move {
        let acked = match sent {
            Ok(ack) => ack.await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match acked {
            Ok(ack) => {
                result.stream_sequence = Some(ack.sequence);
                if ack.duplicate {
                    result.status = ItemStatus::Duplicate;
                }
            }
            Err(e) => {
                result.status = ItemStatus::Failed;
                result.code = Some(codes::BUS_UNAVAILABLE.to_owned());
                result.reason = Some(format!(
                    "the broker did not confirm the event: {e}; resending is safe"
                ));
            }
        }
        result
    });
    let results = futures::future::join_all(acks).await;
    if results.iter().any(|r| r.status == ItemStatus::Failed) {
        // The stream may have gone (deleted, broker reset): ensure it again next time.
        gateway.ingest_stream_ready.store(false, Ordering::Release);
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn latest() -> DateTime<Utc> {
        "2024-08-01T02:00:00Z".parse().unwrap()
    }

    fn placed(external_id: &str) -> Value {
        json!({
            "event": "order_placed",
            "payload": {
                "external_id": external_id,
                "hospital": "0190b6d4-7c3e-7def-8a12-3456789abcde",
                "distributor": "0190b6d4-7c3e-7def-8a12-3456789abcdf",
                "placed_at": "2024-08-01T01:00:00Z",
                "lines": [{"national_code": "C15011121200000107660000016", "quantity": 2, "unit_price_fen": 100}],
            }
        })
    }

    fn rejected(item: Value) -> ItemResult {
        match judge(3, &item, latest()) {
            Ok(_) => panic!("accepted: {item}"),
            Err(r) => *r,
        }
    }

    #[test]
    fn a_valid_item_keeps_its_payload_and_id() {
        let valid = judge(0, &placed("PO-1"), latest()).unwrap();
        assert_eq!(
            (valid.event, valid.external_id.as_str()),
            ("order_placed", "PO-1")
        );
        let body: OrderPlaced = serde_json::from_slice(&valid.body).unwrap();
        assert_eq!(body.lines[0].quantity, 2);
    }

    #[test]
    fn rejections_name_the_field_inside_the_item() {
        let mut item = placed("PO-1");
        item["payload"]["lines"][0]["quantity"] = json!("two");
        let r = rejected(item);
        assert_eq!(
            r.field.as_deref(),
            Some("items[3].payload.lines[0].quantity")
        );
        assert_eq!(r.status, ItemStatus::Rejected);

        let mut item = placed("PO-1");
        item["payload"]["lines"][0]["quantity"] = json!(0);
        assert_eq!(
            rejected(item).field.as_deref(),
            Some("items[3].payload.lines[0].quantity")
        );

        let mut item = placed("PO-1");
        item["payload"]["lines"][0]["national_code"] = json!("C123");
        assert_eq!(
            rejected(item).field.as_deref(),
            Some("items[3].payload.lines[0].national_code")
        );

        let mut item = placed("PO-1");
        item["event"] = json!("order_shipped");
        let r = rejected(item);
        assert_eq!(
            (r.code.as_deref(), r.field.as_deref()),
            (Some("unknown_event"), Some("items[3].event"))
        );

        let mut item = placed("PO-1");
        item["external_id"] = json!("PO-2");
        assert_eq!(rejected(item).code.as_deref(), Some("external_id_mismatch"));

        let mut item = placed("PO-1");
        item["payload"]["placed_at"] = json!("2024-08-02T00:00:00Z");
        assert_eq!(
            rejected(item).field.as_deref(),
            Some("items[3].payload.placed_at")
        );

        let r = rejected(json!({"event": "order_placed"}));
        assert_eq!(r.field.as_deref(), Some("items[3].payload"));
        let r = rejected(json!([1]));
        assert_eq!(r.field.as_deref(), Some("items[3]"));
    }

    #[test]
    fn acceptance_rules_need_reasons_for_rejected_quantities() {
        let item = json!({
            "event": "order_accepted",
            "payload": {
                "external_id": "ACC-1",
                "order_external_id": "PO-1",
                "accepted_at": "2024-08-01T01:30:00Z",
                "lines": [{"national_code": "C15011121200000107660000016", "accepted_quantity": 1, "rejected_quantity": 1}],
            }
        });
        let r = rejected(item);
        assert_eq!(
            r.field.as_deref(),
            Some("items[3].payload.lines[0].rejection_reason")
        );
    }

    #[test]
    fn every_event_has_a_payload_schema() {
        let mut generator = SchemaGenerator::default();
        for event in ingest::EVENTS {
            assert!(payload_schema(event, &mut generator).is_some(), "{event}");
            assert!(SCHEMAS.contains_key(event), "{event}");
        }
    }
}
