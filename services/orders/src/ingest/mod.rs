//! Integrator ingest (`{ns}.ingest.{integrator}.{event}`): hospital systems'
//! orders, order changes, relayed shipping notes, receipts and acceptances,
//! applied through the same rules as the API.
//!
//! Each message is idempotent per (integrator, external id): the same body
//! again changes nothing, another body under a taken id is rejected. A
//! message that breaks a rule applies nothing (its rules are checked before
//! it changes anything), is recorded with its reason (visible through
//! `ingest_rejection_list`) and announced as `orders.ingest.rejected`; it is
//! acked, not retried. A message whose predecessor has not arrived waits
//! ([`pending`]). A fetched batch is applied as one [`unit::Unit`]: read
//! once, checked message by message in memory, written set-wise.

mod apply;
pub mod pending;
mod unit;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tracing::Instrument;
use vbp_bus::{Context, HandlerError, Incoming};
use vbp_contracts::MessageMeta;
use vbp_contracts::ingest::{ORDER_PLACED, OrderPlaced};
use vbp_contracts::orders::IngestRejected;
use vbp_kernel::OrgId;

use self::apply::Refusal;
use self::unit::Unit;
use crate::api::Shared;
use crate::store::ingest::{self as store, Claim, ClaimKey, Outcome};

pub use apply::Step;

/// The ingest keys of `[orders]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestSettings {
    /// How long a message waits for its predecessor (its order, or the
    /// shipment a receipt names) before it is rejected, in seconds.
    pub ingest_pending_timeout_secs: u64,
    /// One transaction per fetched batch of messages (default), or one per
    /// message; the latter only to compare.
    pub ingest_batch_mode: bool,
    /// About how many messages one transaction applies. Each order of a
    /// batch holds a lock until it commits (PostgreSQL's lock table is sized
    /// by `max_locks_per_transaction`).
    pub ingest_batch: usize,
    /// How long a batch that is not full waits for more messages, in
    /// milliseconds: fuller batches cost less per message.
    pub ingest_linger_ms: u64,
    /// Batches applied at once, each by order (an order's messages always
    /// take the same lane, so they apply in the order they were published).
    pub ingest_lanes: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            ingest_pending_timeout_secs: 86_400,
            ingest_batch_mode: true,
            ingest_batch: 1000,
            ingest_linger_ms: 5,
            ingest_lanes: 2,
        }
    }
}

impl IngestSettings {
    pub fn validate(&self) -> Result<(), crate::domain::Invalid> {
        if self.ingest_pending_timeout_secs == 0 || self.ingest_pending_timeout_secs > 90 * 86_400 {
            return Err(crate::domain::Invalid {
                field: "orders.ingest_pending_timeout_secs".into(),
                rule: "between 1 second and 90 days".into(),
            });
        }
        if !(1..=5_000).contains(&self.ingest_batch) {
            return Err(crate::domain::Invalid {
                field: "orders.ingest_batch".into(),
                rule: "between 1 and 5000 messages".into(),
            });
        }
        if self.ingest_linger_ms > 1_000 {
            return Err(crate::domain::Invalid {
                field: "orders.ingest_linger_ms".into(),
                rule: "at most 1000 milliseconds".into(),
            });
        }
        if !(1..=16).contains(&self.ingest_lanes) {
            return Err(crate::domain::Invalid {
                field: "orders.ingest_lanes".into(),
                rule: "between 1 and 16 lanes".into(),
            });
        }
        Ok(())
    }

    pub fn pending_timeout(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.ingest_pending_timeout_secs as i64)
    }
}

/// The ingest consumer's handler.
#[derive(Clone)]
pub struct Ingest {
    svc: Shared,
    settings: IngestSettings,
}

impl Ingest {
    pub fn new(svc: Shared, settings: IngestSettings) -> Self {
        Self { svc, settings }
    }
}

/// `(integrator, event)` from `{ns}.ingest.{integrator}.{event}`.
fn tokens(subject: &str) -> (&str, &str) {
    let mut it = subject.rsplit('.');
    let event = it.next().unwrap_or_default();
    let integrator = it.next().unwrap_or_default();
    (integrator, event)
}

/// The order a raw message belongs to, as (integrator, order external id):
/// what [`read`] finds, without building the body. `None` when it is not
/// readable (it is refused in whichever lane it lands).
fn order_key<'a>(subject: &'a str, payload: &'a [u8]) -> Option<(&'a str, String)> {
    #[derive(Deserialize)]
    struct Keys {
        external_id: Option<String>,
        order_external_id: Option<String>,
    }
    let (integrator, event) = tokens(subject);
    let keys: Keys = serde_json::from_slice(payload).ok()?;
    let order = order_of(
        event,
        keys.order_external_id.as_deref(),
        keys.external_id?.as_str(),
    );
    Some((integrator, order))
}

/// The order a message belongs to: its own id for a placement, otherwise
/// the order it names (or its own id when it names none, which the rules
/// then refuse).
fn order_of(event: &str, order_external_id: Option<&str>, external_id: &str) -> String {
    match order_external_id {
        Some(o) if event != ORDER_PLACED => o.to_owned(),
        _ => external_id.to_owned(),
    }
}

/// A message read far enough to be claimed.
struct Read<'a> {
    integrator: &'a str,
    event: &'a str,
    external_id: String,
    /// The order the message belongs to (its own id for a placement).
    order: String,
    /// The body re-serialised, for its digest.
    body: String,
}

fn read(msg: &Incoming) -> Result<Read<'_>, HandlerError> {
    let (integrator, event) = tokens(&msg.subject);
    let body: serde_json::Value = serde_json::from_slice(&msg.payload)
        .map_err(|e| HandlerError::permanent(format!("payload is not JSON: {e}")))?;
    let Some(external_id) = body
        .get("external_id")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .map(str::to_owned)
    else {
        // Nothing to key a rejection on: the DLQ keeps it with the reason.
        return Err(HandlerError::permanent(format!(
            "{event} from {integrator}: payload field external_id is missing or not 1 to 64 characters"
        )));
    };
    let order = order_of(
        event,
        body.get("order_external_id").and_then(|v| v.as_str()),
        &external_id,
    );
    Ok(Read {
        integrator,
        event,
        external_id,
        order,
        body: body.to_string(),
    })
}

impl Ingest {
    async fn one(
        &self,
        conn: &mut PgConnection,
        unit: &mut Unit,
        msg: &Incoming,
        r: &Read<'_>,
        claim: Claim,
        now: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        match claim {
            Claim::Duplicate => {
                tracing::debug!(integrator = %r.integrator, external_id = %r.external_id,
                    "ingest message already handled");
                Ok(())
            }
            Claim::Reused => {
                let rej = IngestRejected {
                    integrator: r.integrator.to_owned(),
                    event: r.event.to_owned(),
                    external_id: r.external_id.clone(),
                    field: Some("external_id".into()),
                    reason: format!(
                        "external_id {} reused with a different body; the first message under it stands",
                        r.external_id
                    ),
                    rejected_at: now,
                };
                if store::record_reuse(conn, &rej, &r.body).await? {
                    unit.stage(&self.svc.outbox, &msg.context(), &rej)?;
                }
                Ok(())
            }
            Claim::New => {
                let arrived = Arrived {
                    integrator: r.integrator,
                    external_id: &r.external_id,
                    event: r.event,
                    payload: &msg.payload,
                    meta: &msg.meta,
                };
                self.settle(conn, unit, &arrived, now).await
            }
        }
    }

    /// Applies a newly arrived message, parks it, or rejects it.
    async fn settle(
        &self,
        conn: &mut PgConnection,
        unit: &mut Unit,
        a: &Arrived<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let ctx = Context::caused_by(a.meta);
        match self.attempt(conn, unit, a, &ctx, now).await? {
            Ok(Step::Applied { opens }) => {
                if let Some(order) = opens {
                    pending::drain(self, conn, unit, a.integrator, &order, now).await?;
                }
                Ok(())
            }
            Ok(Step::Waits {
                order_external_id,
                waits_for,
                field,
            }) => {
                tracing::info!(integrator = %a.integrator, external_id = %a.external_id,
                    waits_for = %waits_for, "ingest message waits for its predecessor");
                unit.park(
                    conn,
                    store::Pending {
                        integrator: a.integrator.to_owned(),
                        external_id: a.external_id.to_owned(),
                        event: a.event.to_owned(),
                        stage: apply::stage(a.event),
                        order_external_id,
                        waits_for,
                        waits_field: field,
                        payload: a.payload.to_vec(),
                        meta: a.meta.clone(),
                        parked_at: now,
                        expires_at: now + self.settings.pending_timeout(),
                    },
                )
                .await
            }
            Err((field, reason)) => {
                self.reject(unit, a, &ctx, field, reason.clone(), now)?;
                if a.event == ORDER_PLACED {
                    pending::reject_queue(
                        self,
                        conn,
                        unit,
                        a.integrator,
                        a.external_id,
                        &format!("its order {} was rejected: {reason}", a.external_id),
                        now,
                    )
                    .await?;
                }
                Ok(())
            }
        }
    }

    /// Checks and applies a message to the batch. `Err((field, reason))` is
    /// a broken rule, and nothing of the message is kept; a failure of the
    /// database is the handler's error (retried).
    async fn attempt(
        &self,
        conn: &mut PgConnection,
        unit: &mut Unit,
        a: &Arrived<'_>,
        ctx: &Context,
        now: DateTime<Utc>,
    ) -> Result<Result<Step, (Option<String>, String)>, HandlerError> {
        let m = apply::Message {
            integrator: a.integrator,
            event: a.event,
            payload: a.payload,
            ctx,
        };
        match apply::apply(&self.svc, conn, unit, &m, now).await {
            Ok(step) => Ok(Ok(step)),
            Err(Refusal::Rule(e)) => Ok(Err((e.0.field.clone(), e.0.message.clone()))),
            Err(Refusal::Failed(e)) => Err(e),
        }
    }

    /// Records and announces a rejection.
    fn reject(
        &self,
        unit: &mut Unit,
        a: &Arrived<'_>,
        ctx: &Context,
        field: Option<String>,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let rej = IngestRejected {
            integrator: a.integrator.to_owned(),
            event: a.event.to_owned(),
            external_id: a.external_id.to_owned(),
            field,
            reason,
            rejected_at: now,
        };
        tracing::info!(integrator = %rej.integrator, external_id = %rej.external_id,
            reason = %rej.reason, "ingest message rejected");
        unit.outcome(Outcome {
            integrator: rej.integrator.clone(),
            external_id: rej.external_id.clone(),
            outcome: "rejected",
            field: rej.field.clone(),
            reason: Some(rej.reason.clone()),
            at: now,
        });
        unit.stage(&self.svc.outbox, ctx, &rej)
    }
}

/// A message as received, whether just now or parked earlier.
struct Arrived<'a> {
    integrator: &'a str,
    external_id: &'a str,
    event: &'a str,
    payload: &'a [u8],
    meta: &'a MessageMeta,
}

/// What a batch's messages will read, gathered before the first applies.
struct Wants<'a> {
    integrators: Vec<OrgId>,
    placing: Vec<(OrgId, OrgId, DateTime<Utc>, Vec<String>)>,
    orders: Vec<(OrgId, &'a str)>,
    queues: Vec<(&'a str, &'a str)>,
}

fn wants<'a>(msgs: &[&Incoming], read: &'a [Read<'a>], claims: &[Claim]) -> Wants<'a> {
    let mut w = Wants {
        integrators: vec![],
        placing: vec![],
        orders: vec![],
        queues: vec![],
    };
    for ((msg, r), claim) in msgs.iter().zip(read).zip(claims) {
        if *claim != Claim::New {
            continue;
        }
        let Ok(integ) = r.integrator.parse::<OrgId>() else {
            continue;
        };
        w.integrators.push(integ);
        w.queues.push((r.integrator, r.order.as_str()));
        if r.event == ORDER_PLACED {
            if let Ok(p) = serde_json::from_slice::<OrderPlaced>(&msg.payload) {
                let codes = p.lines.iter().map(|l| l.national_code.as_str().to_owned());
                w.placing
                    .push((p.hospital, p.distributor, p.placed_at, codes.collect()));
            }
        } else {
            w.orders.push((integ, r.order.as_str()));
        }
    }
    w
}

#[async_trait]
impl vbp_bus::Handler for Ingest {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        self.handle_batch(conn, &[msg]).await
    }

    /// The whole batch is claimed in one statement, what it reads is read in
    /// a few more, each message is checked and applied in memory, and the
    /// outcome is written set-wise. Any error rolls the batch back and the
    /// consumer retries message by message, so one bad message never takes
    /// its neighbours with it.
    async fn handle_batch(
        &self,
        conn: &mut PgConnection,
        msgs: &[&Incoming],
    ) -> Result<(), HandlerError> {
        let now = self.svc.clock.now();
        let read: Vec<Read<'_>> = msgs.iter().map(|m| read(m)).collect::<Result<_, _>>()?;
        let keys: Vec<ClaimKey<'_>> = read
            .iter()
            .map(|r| ClaimKey {
                integrator: r.integrator,
                external_id: &r.external_id,
                event: r.event,
                body: &r.body,
            })
            .collect();
        let orders: Vec<(&str, &str)> = read
            .iter()
            .map(|r| (r.integrator, r.order.as_str()))
            .collect();
        store::lock_orders(conn, &orders).await?;
        let claims = store::claim_all(conn, &keys, now).await?;
        let w = wants(msgs, &read, &claims);
        let mut unit = Unit::default();
        unit.prefetch(conn, &w.integrators, &w.placing, &w.orders, &w.queues)
            .await?;
        for ((msg, r), claim) in msgs.iter().zip(&read).zip(claims) {
            let span = vbp_bus::inbox::consume_span(msg);
            self.one(conn, &mut unit, msg, r, claim, now)
                .instrument(span)
                .await?;
        }
        unit.flush(conn, &self.svc.outbox, now).await
    }

    fn lane_key(&self, subject: &str, payload: &[u8]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        order_key(subject, payload).hash(&mut h);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waiting_time_defaults_to_a_day_and_must_be_positive() {
        let s = IngestSettings::default();
        assert_eq!(s.pending_timeout(), chrono::Duration::days(1));
        assert!(s.validate().is_ok());
        let zero = IngestSettings {
            ingest_pending_timeout_secs: 0,
            ..IngestSettings::default()
        };
        assert_eq!(
            zero.validate().unwrap_err().field,
            "orders.ingest_pending_timeout_secs"
        );
    }

    #[test]
    fn batches_are_bounded_by_the_lock_table_and_linger_briefly() {
        let s = IngestSettings::default();
        assert_eq!(
            (s.ingest_batch, s.ingest_linger_ms, s.ingest_lanes),
            (1000, 5, 2)
        );
        let lanes = IngestSettings {
            ingest_lanes: 0,
            ..IngestSettings::default()
        };
        assert_eq!(lanes.validate().unwrap_err().field, "orders.ingest_lanes");
        let huge = IngestSettings {
            ingest_batch: 50_000,
            ..IngestSettings::default()
        };
        assert_eq!(huge.validate().unwrap_err().field, "orders.ingest_batch");
        let slow = IngestSettings {
            ingest_linger_ms: 5_000,
            ..IngestSettings::default()
        };
        assert_eq!(
            slow.validate().unwrap_err().field,
            "orders.ingest_linger_ms"
        );
    }

    #[test]
    fn a_message_belongs_to_the_order_it_names_or_places() {
        let msg = |event: &str, body: serde_json::Value| Incoming {
            subject: format!("vbp.ingest.his01.{event}"),
            meta: vbp_bus::codec::decode_ingest("vbp.ingest.his01.x", None, 1, Utc::now()).unwrap(),
            payload: serde_json::to_vec(&body).unwrap().into(),
            delivered: 1,
        };
        let placed = msg("order_placed", serde_json::json!({"external_id": "PO-1"}));
        let r = read(&placed).unwrap();
        assert_eq!(
            (r.integrator, r.event, r.order.as_str()),
            ("his01", "order_placed", "PO-1")
        );
        let received = msg(
            "order_received",
            serde_json::json!({"external_id": "RC-1", "order_external_id": "PO-1"}),
        );
        assert_eq!(read(&received).unwrap().order, "PO-1");
        let anonymous = msg(
            "order_received",
            serde_json::json!({"order_external_id": "PO-1"}),
        );
        assert!(matches!(read(&anonymous), Err(HandlerError::Permanent(_))));
        // The lane follows the order, so an order's messages never overtake
        // each other when batches apply side by side.
        fn ingest(m: &Incoming) -> Option<(&str, String)> {
            order_key(&m.subject, &m.payload)
        }
        assert_eq!(ingest(&placed), Some(("his01", "PO-1".to_owned())));
        assert_eq!(ingest(&received), ingest(&placed));
        let other = msg("order_placed", serde_json::json!({"external_id": "PO-2"}));
        assert_ne!(ingest(&other), ingest(&placed));
    }
}
