//! One integrator message applied through the same functions as the API
//! (`place_in`, `dispatch_in`, `receive_in`, `accept_in`), or told to wait
//! when what it refers to has not arrived.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};
use vbp_bus::{Context, RpcError};
use vbp_contracts::ingest::{
    self, OrderAccepted, OrderPlaced, OrderReceived, OrderUpdated, ShipmentDispatched,
};
use vbp_contracts::orders::{
    self as ev, AcceptLine, DispatchLine, OrderLine, OrderResponded, OrderResponse, OrderSource,
    OrderState, OrderView, RespondedLine,
};
use vbp_kernel::{OrgId, OrgKind};

use crate::api::Shared;
use crate::api::orders::{MAX_LINES, NewOrder, accept_in, dispatch_in, place_in, receive_in};
use crate::store::{self, OrgRow, ingest as queue};

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Applied. `opens` names the order whose waiting messages may follow.
    Applied { opens: Option<String> },
    /// Its predecessor has not arrived: it waits behind it.
    Waits {
        order_external_id: String,
        waits_for: String,
        field: String,
    },
}

/// A message to apply.
pub struct Message<'a> {
    pub integrator: &'a str,
    pub event: &'a str,
    pub payload: &'a [u8],
    pub ctx: &'a Context,
}

/// Where an event stands in an order's life: a message waits while one of
/// an earlier stage of its order waits, so a receipt never overtakes the
/// shipment it names, nor an acceptance the receipt.
pub fn stage(event: &str) -> i16 {
    match event {
        ingest::ORDER_PLACED => 0,
        ingest::ORDER_UPDATED => 1,
        ingest::SHIPMENT_DISPATCHED => 2,
        ingest::ORDER_RECEIVED => 3,
        _ => 4,
    }
}

fn reject(field: impl Into<String>, reason: impl Into<String>) -> RpcError {
    RpcError::invalid(field, reason)
}

pub fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, RpcError> {
    let de = &mut serde_json::Deserializer::from_slice(payload);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        reject(
            if path == "." { "payload".into() } else { path },
            e.inner().to_string(),
        )
    })
}

/// Applies `m` in the caller's transaction. A rule broken half-way leaves
/// writes behind: the caller runs this in a savepoint.
pub async fn apply(
    svc: &Shared,
    conn: &mut PgConnection,
    directory: &mut Directory,
    m: &Message<'_>,
    now: DateTime<Utc>,
) -> Result<Step, RpcError> {
    let integ = m.integrator.parse::<OrgId>().map_err(|_| {
        reject(
            "integrator",
            format!("{} is not an integrator id", m.integrator),
        )
    })?;
    let org = directory
        .org(conn, integ)
        .await?
        .filter(|o| o.kind == OrgKind::Integrator && o.active)
        .ok_or_else(|| {
            reject(
                "integrator",
                format!(
                    "{} is not an active integrator in the directory",
                    m.integrator
                ),
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
    let mut on = Orders {
        conn,
        integ,
        org: &org,
        m,
    };
    match m.event {
        ingest::ORDER_PLACED => {
            let p: OrderPlaced = decode(m.payload)?;
            not_future("placed_at", p.placed_at)?;
            acts_for(&org, m.integrator, p.hospital)?;
            place_in(
                on.conn,
                &svc.outbox,
                m.ctx,
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
                    external_id: Some(p.external_id.clone()),
                },
                now,
            )
            .await?;
            Ok(Step::Applied {
                opens: Some(p.external_id),
            })
        }
        ingest::ORDER_UPDATED => {
            let u: OrderUpdated = decode(m.payload)?;
            not_future("updated_at", u.updated_at)?;
            let o = match on.order(&u.order_external_id).await? {
                Ok(o) => o,
                Err(wait) => return Ok(wait),
            };
            update(svc, on.conn, m.ctx, &o, &u, now).await?;
            Ok(Step::Applied { opens: None })
        }
        ingest::SHIPMENT_DISPATCHED => {
            let d: ShipmentDispatched = decode(m.payload)?;
            not_future("shipped_at", d.shipped_at)?;
            let o = match on.order(&d.order_external_id).await? {
                Ok(o) => o,
                Err(wait) => return Ok(wait),
            };
            dispatch(svc, on.conn, m.ctx, o, &d).await?;
            Ok(Step::Applied {
                opens: Some(d.order_external_id),
            })
        }
        ingest::ORDER_RECEIVED => {
            let r: OrderReceived = decode(m.payload)?;
            not_future("received_at", r.received_at)?;
            let o = match on.order(&r.order_external_id).await? {
                Ok(o) => o,
                Err(wait) => return Ok(wait),
            };
            let Some(s) = o
                .shipments
                .iter()
                .find(|s| s.shipment_no == r.shipment_no)
                .cloned()
            else {
                return Ok(Step::Waits {
                    waits_for: format!(
                        "shipment {} of order {}",
                        r.shipment_no, r.order_external_id
                    ),
                    order_external_id: r.order_external_id,
                    field: "shipment_no".into(),
                });
            };
            receive_in(on.conn, &svc.outbox, m.ctx, &o, &s, r.received_at).await?;
            // An acceptance that came before this receipt may wait for it.
            Ok(Step::Applied {
                opens: Some(r.order_external_id),
            })
        }
        ingest::ORDER_ACCEPTED => {
            let a: OrderAccepted = decode(m.payload)?;
            not_future("accepted_at", a.accepted_at)?;
            let o = match on.order(&a.order_external_id).await? {
                Ok(o) => o,
                Err(wait) => return Ok(wait),
            };
            let mut lines = Vec::new();
            for (i, l) in a.lines.iter().enumerate() {
                let line_no = line_of(&o, &a.order_external_id, i, &l.national_code)?;
                lines.push(AcceptLine {
                    line_no,
                    accepted_quantity: l.accepted_quantity,
                    rejected_quantity: l.rejected_quantity,
                    rejection_reason: l.rejection_reason.clone(),
                });
            }
            if let Some(line_no) = awaits_receipt(&o, &lines) {
                return Ok(Step::Waits {
                    waits_for: format!(
                        "the receipt of line {line_no} of order {}",
                        a.order_external_id
                    ),
                    order_external_id: a.order_external_id,
                    field: "lines".into(),
                });
            }
            accept_in(
                on.conn,
                &svc.outbox,
                m.ctx,
                &svc.settings,
                &o,
                None,
                &lines,
                a.accepted_at,
            )
            .await?;
            Ok(Step::Applied { opens: None })
        }
        other => Err(reject(
            "event",
            format!(
                "unknown ingest event {other}; expected one of {}",
                ingest::EVENTS.join(", ")
            ),
        )),
    }
}

/// Directory entries read once per batch: a batch's messages mostly come
/// from the same few integrators.
#[derive(Default)]
pub struct Directory {
    orgs: HashMap<OrgId, Option<OrgRow>>,
}

impl Directory {
    async fn org(
        &mut self,
        conn: &mut PgConnection,
        id: OrgId,
    ) -> Result<Option<OrgRow>, RpcError> {
        if let Some(o) = self.orgs.get(&id) {
            return Ok(o.clone());
        }
        let o = store::get_org(conn, id).await?;
        self.orgs.insert(id, o.clone());
        Ok(o)
    }
}

fn acts_for(org: &OrgRow, integrator: &str, hospital: OrgId) -> Result<(), RpcError> {
    if org.acts_for.contains(&hospital) {
        Ok(())
    } else {
        Err(reject(
            "hospital",
            format!("integrator {integrator} does not act for hospital {hospital}"),
        ))
    }
}

/// The order line of a product, by the integrator's line position `i`.
fn line_of(
    o: &OrderView,
    order_external_id: &str,
    i: usize,
    code: &vbp_kernel::NationalCode,
) -> Result<i32, RpcError> {
    o.lines
        .iter()
        .find(|x| x.national_code == *code)
        .map(|x| x.line_no)
        .ok_or_else(|| {
            reject(
                format!("lines[{i}].national_code"),
                format!("order {order_external_id} has no line for {code}"),
            )
        })
}

/// The first line an acceptance asks more of than has been received while
/// goods of it are still on their way (shipped, or not shipped at all yet):
/// its receipt may come later than the acceptance, e.g. redelivered after a
/// crash, so the acceptance waits for it rather than being refused. Asking
/// more than everything shipped and received is refused at once.
fn awaits_receipt(o: &OrderView, lines: &[AcceptLine]) -> Option<i32> {
    lines.iter().find_map(|l| {
        let line = o.lines.iter().find(|x| x.line_no == l.line_no)?;
        let open = line.received_quantity - line.accepted_quantity - line.rejected_quantity;
        let in_transit = line.shipped_quantity > line.received_quantity || o.shipments.is_empty();
        (l.accepted_quantity + l.rejected_quantity > open && in_transit).then_some(l.line_no)
    })
}

/// Looks up the orders a message refers to.
struct Orders<'c, 'a> {
    conn: &'c mut PgConnection,
    integ: OrgId,
    org: &'a OrgRow,
    m: &'a Message<'a>,
}

impl Orders<'_, '_> {
    /// The order (locked), or the wait for it: it has not arrived, or
    /// messages of an earlier stage of it are still waiting and go first.
    async fn order(&mut self, external_id: &str) -> Result<Result<OrderView, Step>, RpcError> {
        let (id, queued) =
            queue::order_and_queue(self.conn, self.integ, external_id, stage(self.m.event)).await?;
        let Some(id) = id else {
            return Ok(Err(Step::Waits {
                order_external_id: external_id.to_owned(),
                waits_for: format!("order {external_id}"),
                field: "order_external_id".into(),
            }));
        };
        if queued {
            return Ok(Err(Step::Waits {
                order_external_id: external_id.to_owned(),
                waits_for: format!("earlier-stage messages of order {external_id}"),
                field: "order_external_id".into(),
            }));
        }
        let o = store::get_order(self.conn, id, false)
            .await?
            .ok_or_else(|| reject("order_external_id", format!("order {external_id} vanished")))?;
        acts_for(self.org, self.m.integrator, o.hospital)?;
        Ok(Ok(o))
    }
}

/// New lines for an unanswered order. They pass exactly the placement rules
/// because they are placed: as a scratch order in a savepoint that is
/// rolled back, whose checked and priced lines then replace the old ones.
async fn update(
    svc: &Shared,
    conn: &mut PgConnection,
    ctx: &Context,
    o: &OrderView,
    u: &OrderUpdated,
    now: DateTime<Utc>,
) -> Result<(), RpcError> {
    if o.state != OrderState::Placed {
        return Err(RpcError::conflict(
            "invalid_transition",
            format!(
                "order {} was already answered by its distributor ({:?}); it can no longer be changed",
                u.order_external_id, o.state
            ),
        )
        .with_field("order_external_id"));
    }
    if u.lines.is_empty() || u.lines.len() > MAX_LINES {
        return Err(reject(
            "lines",
            format!("an order has 1 to {MAX_LINES} lines"),
        ));
    }
    let priced = {
        let mut scratch = conn.begin().await?;
        let placed = place_in(
            &mut scratch,
            &svc.outbox,
            ctx,
            NewOrder {
                hospital: o.hospital,
                distributor: o.distributor,
                lines: u
                    .lines
                    .iter()
                    .map(|l| (l.national_code.clone(), l.quantity, l.unit_price_fen))
                    .collect(),
                placed_at: o.placed_at,
                source: OrderSource::Integrator,
                integrator: None,
                external_id: None,
            },
            now,
        )
        .await;
        scratch.rollback().await?;
        placed?
    };
    queue::replace_order_lines(conn, o.order, &priced.lines, priced.total_amount_fen).await?;
    svc.outbox
        .append(
            conn,
            ctx,
            &ev::OrderUpdated {
                order: o.order,
                period: o.period,
                hospital: o.hospital,
                hospital_region: o.hospital_region,
                distributor: o.distributor,
                lines: priced
                    .lines
                    .iter()
                    .map(|l| OrderLine {
                        line_no: l.line_no,
                        national_code: l.national_code.clone(),
                        manufacturer: l.manufacturer,
                        quantity: l.quantity,
                        unit_price_fen: l.unit_price_fen,
                        amount_fen: l.amount_fen,
                        requested_quantity: l.requested_quantity,
                    })
                    .collect(),
                total_amount_fen: priced.total_amount_fen,
                updated_at: u.updated_at,
            },
        )
        .await?;
    Ok(())
}

/// A relayed shipping note. The distributor shipping an order it has not
/// answered on the platform is its answer: the order is confirmed in full
/// first (`order.responded`, accepted), then shipped under the API's rules.
async fn dispatch(
    svc: &Shared,
    conn: &mut PgConnection,
    ctx: &Context,
    mut o: OrderView,
    d: &ShipmentDispatched,
) -> Result<(), RpcError> {
    let mut lines = Vec::with_capacity(d.lines.len());
    for (i, l) in d.lines.iter().enumerate() {
        lines.push(DispatchLine {
            line_no: line_of(&o, &d.order_external_id, i, &l.national_code)?,
            batch_no: l.batch_no.clone(),
            expiry_date: l.expiry_date,
            quantity: l.quantity,
        });
    }
    if o.state == OrderState::Placed {
        let confirmed: Vec<(i32, i64, Option<String>)> = o
            .lines
            .iter()
            .map(|l| (l.line_no, l.quantity, None))
            .collect();
        store::set_response(
            conn,
            o.order,
            OrderState::Confirmed,
            None,
            &confirmed,
            d.shipped_at,
        )
        .await?;
        svc.outbox
            .append(
                conn,
                ctx,
                &OrderResponded {
                    order: o.order,
                    period: o.period,
                    hospital: o.hospital,
                    hospital_region: o.hospital_region,
                    distributor: o.distributor,
                    response: OrderResponse::Accepted,
                    lines: o
                        .lines
                        .iter()
                        .map(|l| RespondedLine {
                            line_no: l.line_no,
                            national_code: l.national_code.clone(),
                            confirmed_quantity: l.quantity,
                            reason: None,
                        })
                        .collect(),
                    reason: None,
                    responded_at: d.shipped_at,
                },
            )
            .await?;
        o.state = OrderState::Confirmed;
        for l in &mut o.lines {
            l.confirmed_quantity = Some(l.quantity);
        }
    }
    dispatch_in(
        conn,
        &svc.outbox,
        ctx,
        &o,
        &d.shipment_no,
        &lines,
        d.shipped_at,
    )
    .await?;
    Ok(())
}
