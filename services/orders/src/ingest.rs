//! Integrator ingest (`{ns}.ingest.{integrator}.{event}`): hospital systems'
//! orders, receipts and acceptances, applied through the same rules as the
//! API. Each message is idempotent per (integrator, external id). A message
//! that breaks a rule applies nothing (it runs in a savepoint), is recorded
//! with its reason (visible through `ingest_rejection_list`) and announced
//! as `orders.ingest.rejected`; it is acked, not retried.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};
use vbp_bus::{Context, HandlerError, Incoming, RpcError};
use vbp_contracts::ingest::{self, OrderAccepted, OrderPlaced, OrderReceived};
use vbp_contracts::orders::{AcceptLine, IngestRejected, OrderSource};
use vbp_kernel::{OrgId, OrgKind};

use crate::api::Shared;
use crate::api::orders::{NewOrder, accept_in, place_in, receive_in};
use crate::store;

pub struct Ingest(pub Shared);

/// `(integrator, event)` from `{ns}.ingest.{integrator}.{event}`.
fn tokens(subject: &str) -> (String, String) {
    let mut it = subject.rsplit('.');
    let event = it.next().unwrap_or_default().to_owned();
    let integrator = it.next().unwrap_or_default().to_owned();
    (integrator, event)
}

fn reject(field: impl Into<String>, reason: impl Into<String>) -> RpcError {
    RpcError::invalid(field, reason)
}

#[async_trait]
impl vbp_bus::Handler for Ingest {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let svc = &self.0;
        let now = svc.clock.now();
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
        if !store::claim_ingest(conn, &integrator, &external_id, &event, now).await? {
            tracing::debug!(%integrator, %external_id, "ingest message already applied or rejected");
            return Ok(());
        }
        let ctx = msg.context();
        let outcome = {
            let mut sp = conn.begin().await?;
            let r = apply(svc, &mut sp, &ctx, &integrator, &event, msg, now).await;
            if r.is_ok() {
                sp.commit().await?;
            }
            r
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(e) if e.0.status >= 500 => Err(HandlerError::transient(e.to_string())),
            Err(e) => {
                let rej = IngestRejected {
                    integrator,
                    event,
                    external_id,
                    field: e.0.field.clone(),
                    reason: e.0.message.clone(),
                    rejected_at: now,
                };
                tracing::info!(integrator = %rej.integrator, external_id = %rej.external_id,
                    reason = %rej.reason, "ingest message rejected");
                store::record_rejection(conn, &rej).await?;
                svc.outbox.append(conn, &ctx, &rej).await?;
                Ok(())
            }
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(msg: &Incoming) -> Result<T, RpcError> {
    let de = &mut serde_json::Deserializer::from_slice(&msg.payload);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        reject(
            if path == "." { "payload".into() } else { path },
            e.inner().to_string(),
        )
    })
}

async fn apply(
    svc: &Shared,
    conn: &mut PgConnection,
    ctx: &Context,
    integrator: &str,
    event: &str,
    msg: &Incoming,
    now: DateTime<Utc>,
) -> Result<(), RpcError> {
    let integ = integrator.parse::<OrgId>().map_err(|_| {
        reject(
            "integrator",
            format!("{integrator} is not an integrator id"),
        )
    })?;
    let org = store::get_org(conn, integ)
        .await?
        .filter(|o| o.kind == OrgKind::Integrator && o.active)
        .ok_or_else(|| {
            reject(
                "integrator",
                format!("{integrator} is not an active integrator in the directory"),
            )
        })?;
    let not_future = |field: &str, at: DateTime<Utc>| {
        if at > now + svc.settings.skew() {
            Err(reject(
                field,
                format!("{at} lies in the future (now {now})"),
            ))
        } else {
            Ok(())
        }
    };
    match event {
        ingest::ORDER_PLACED => {
            let p: OrderPlaced = decode(msg)?;
            not_future("placed_at", p.placed_at)?;
            if !org.acts_for.contains(&p.hospital) {
                return Err(reject(
                    "hospital",
                    format!(
                        "integrator {integrator} does not act for hospital {}",
                        p.hospital
                    ),
                ));
            }
            place_in(
                conn,
                &svc.outbox,
                ctx,
                NewOrder {
                    hospital: p.hospital,
                    distributor: p.distributor,
                    lines: p
                        .lines
                        .iter()
                        .map(|l| (l.national_code.clone(), l.quantity, l.unit_price_fen))
                        .collect(),
                    placed_at: p.placed_at,
                    source: OrderSource::Integrator,
                    integrator: Some(integ),
                    external_id: Some(p.external_id),
                },
                now,
            )
            .await?;
        }
        ingest::ORDER_RECEIVED => {
            let r: OrderReceived = decode(msg)?;
            not_future("received_at", r.received_at)?;
            let o = order_of(conn, integ, &r.order_external_id).await?;
            let Some(s) = o
                .shipments
                .iter()
                .find(|s| s.shipment_no == r.shipment_no)
                .cloned()
            else {
                return Err(reject(
                    "shipment_no",
                    format!(
                        "order {} has no shipment {} (not dispatched yet?)",
                        r.order_external_id, r.shipment_no
                    ),
                ));
            };
            receive_in(conn, &svc.outbox, ctx, &o, &s, r.received_at).await?;
        }
        ingest::ORDER_ACCEPTED => {
            let a: OrderAccepted = decode(msg)?;
            not_future("accepted_at", a.accepted_at)?;
            let o = order_of(conn, integ, &a.order_external_id).await?;
            let mut lines = Vec::new();
            for (i, l) in a.lines.iter().enumerate() {
                let Some(line) = o.lines.iter().find(|x| x.national_code == l.national_code) else {
                    return Err(reject(
                        format!("lines[{i}].national_code"),
                        format!(
                            "order {} has no line for {}",
                            a.order_external_id, l.national_code
                        ),
                    ));
                };
                lines.push(AcceptLine {
                    line_no: line.line_no,
                    accepted_quantity: l.accepted_quantity,
                    rejected_quantity: l.rejected_quantity,
                    rejection_reason: l.rejection_reason.clone(),
                });
            }
            accept_in(
                conn,
                &svc.outbox,
                ctx,
                &svc.settings,
                &o,
                None,
                &lines,
                a.accepted_at,
            )
            .await?;
        }
        other => {
            return Err(reject(
                "event",
                format!(
                    "unknown ingest event {other}; expected one of {}",
                    ingest::EVENTS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

async fn order_of(
    conn: &mut PgConnection,
    integrator: OrgId,
    external_id: &str,
) -> Result<vbp_contracts::orders::OrderView, RpcError> {
    let id = store::order_by_external(conn, integrator, external_id)
        .await?
        .ok_or_else(|| {
            reject(
                "order_external_id",
                format!("this integrator placed no order {external_id}"),
            )
        })?;
    store::get_order(conn, id, true)
        .await?
        .ok_or_else(|| reject("order_external_id", format!("order {external_id} vanished")))
}
