//! One integrator message checked by the same rules as the API
//! (`plan_place`, `plan_dispatch`, `plan_receive`, `plan_accept`) against the
//! batch's state ([`Unit`]), or told to wait when what it refers to has not
//! arrived. A message that breaks a rule changes nothing.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use vbp_bus::outbox::Staged;
use vbp_bus::{Context, HandlerError, RpcError};
use vbp_contracts::ingest::{
    self, OrderAccepted, OrderPlaced, OrderReceived, OrderUpdated, ShipmentDispatched,
};
use vbp_contracts::orders::{
    self as ev, AcceptLine, DispatchLine, OrderResponded, OrderResponse, OrderSource, OrderState,
    OrderView, RespondedLine, ShipmentId, ShipmentView,
};
use vbp_kernel::{OrgId, OrgKind};

use super::unit::{Entry, Unit};
use crate::api::Shared;
use crate::api::orders::{
    MAX_LINES, NewOrder, PlacementFacts, placed_view, plan_accept, plan_dispatch, plan_place,
    plan_receive, served_first,
};
use crate::store::{self, FactAsk, OrgRow, ingest as queue};

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

/// A rule broken, or a failure of the database, which is the handler's to
/// retry.
pub enum Refusal {
    Rule(RpcError),
    Failed(HandlerError),
}

impl From<RpcError> for Refusal {
    fn from(e: RpcError) -> Self {
        if e.0.status >= 500 {
            Refusal::Failed(HandlerError::transient(e.to_string()))
        } else {
            Refusal::Rule(e)
        }
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        Refusal::Failed(HandlerError::transient(e.to_string()))
    }
}

impl From<HandlerError> for Refusal {
    fn from(e: HandlerError) -> Self {
        Refusal::Failed(e)
    }
}

/// Applies `m` to the batch's state: every rule is checked before anything
/// changes.
pub async fn apply(
    svc: &Shared,
    conn: &mut PgConnection,
    unit: &mut Unit,
    m: &Message<'_>,
    now: DateTime<Utc>,
) -> Result<Step, Refusal> {
    let integ = m.integrator.parse::<OrgId>().map_err(|_| {
        reject(
            "integrator",
            format!("{} is not an integrator id", m.integrator),
        )
    })?;
    let org = unit
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
    let on = Orders {
        integ,
        org: &org,
        m,
    };
    match m.event {
        ingest::ORDER_PLACED => {
            let p: OrderPlaced = decode(m.payload)?;
            not_future("placed_at", p.placed_at)?;
            acts_for(&org, m.integrator, p.hospital)?;
            let ev = plan(
                conn,
                unit,
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
            )
            .await?;
            unit.stage(&svc.outbox, m.ctx, &ev)?;
            unit.add_order(integ, &p.external_id, placed_view(&ev));
            Ok(Step::Applied {
                opens: Some(p.external_id),
            })
        }
        ingest::ORDER_UPDATED => {
            let u: OrderUpdated = decode(m.payload)?;
            not_future("updated_at", u.updated_at)?;
            if let Err(wait) = on.find(conn, unit, &u.order_external_id).await? {
                return Ok(wait);
            }
            update(svc, conn, unit, &on, &u).await?;
            Ok(Step::Applied { opens: None })
        }
        ingest::SHIPMENT_DISPATCHED => {
            let d: ShipmentDispatched = decode(m.payload)?;
            not_future("shipped_at", d.shipped_at)?;
            let short = unit.any_shortage(conn, now).await?;
            let o = match on.find(conn, unit, &d.order_external_id).await? {
                Ok(o) => o,
                Err(wait) => return Ok(wait),
            };
            if short && o.view.state == OrderState::Placed {
                // Shipping an unanswered order answers it: shortage mode's
                // priority holds for that answer as for one on the platform.
                for l in &o.view.lines {
                    served_first(conn, &o.view, &l.national_code, now).await?;
                }
            }
            let (staged, shipment) = dispatch(svc, o, m.ctx, &d)?;
            unit.shipped(shipment);
            for ev in staged {
                unit.push_staged(ev);
            }
            Ok(Step::Applied {
                opens: Some(d.order_external_id),
            })
        }
        ingest::ORDER_RECEIVED => {
            let r: OrderReceived = decode(m.payload)?;
            not_future("received_at", r.received_at)?;
            let o = match on.find(conn, unit, &r.order_external_id).await? {
                Ok(o) => o,
                Err(wait) => return Ok(wait),
            };
            let Some(s) = o
                .view
                .shipments
                .iter()
                .find(|s| s.shipment_no == r.shipment_no)
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
            let ev = plan_receive(&o.view, s, r.received_at)?;
            let lines = s.lines.clone();
            if let Some(s) = o
                .view
                .shipments
                .iter_mut()
                .find(|s| s.shipment == ev.shipment)
            {
                s.received_at = Some(r.received_at);
            }
            for l in &lines {
                if let Some(x) = o.view.lines.iter_mut().find(|x| x.line_no == l.line_no) {
                    x.received_quantity += l.quantity;
                }
            }
            Unit::touch(o);
            unit.shipment_received(ev.shipment, r.received_at);
            unit.stage(&svc.outbox, m.ctx, &ev)?;
            // An acceptance that came before this receipt may wait for it.
            Ok(Step::Applied {
                opens: Some(r.order_external_id),
            })
        }
        ingest::ORDER_ACCEPTED => {
            let a: OrderAccepted = decode(m.payload)?;
            not_future("accepted_at", a.accepted_at)?;
            let o = match on.find(conn, unit, &a.order_external_id).await? {
                Ok(o) => o,
                Err(wait) => return Ok(wait),
            };
            let mut lines = Vec::new();
            for (i, l) in a.lines.iter().enumerate() {
                let line_no = line_of(&o.view, &a.order_external_id, i, &l.national_code)?;
                lines.push(AcceptLine {
                    line_no,
                    accepted_quantity: l.accepted_quantity,
                    rejected_quantity: l.rejected_quantity,
                    rejection_reason: l.rejection_reason.clone(),
                });
            }
            if let Some(line_no) = awaits_receipt(&o.view, &lines) {
                return Ok(Step::Waits {
                    waits_for: format!(
                        "the receipt of line {line_no} of order {}",
                        a.order_external_id
                    ),
                    order_external_id: a.order_external_id,
                    field: "lines".into(),
                });
            }
            let ev = plan_accept(&svc.settings, &o.view, None, &lines, a.accepted_at)?;
            for l in &ev.lines {
                if let Some(x) = o.view.lines.iter_mut().find(|x| x.line_no == l.line_no) {
                    x.accepted_quantity += l.accepted_quantity;
                    x.rejected_quantity += l.rejected_quantity;
                }
            }
            Unit::touch(o);
            unit.stage(&svc.outbox, m.ctx, &ev)?;
            unit.accepted(ev, m.ctx)?;
            Ok(Step::Applied { opens: None })
        }
        other => Err(reject(
            "event",
            format!(
                "unknown ingest event {other}; expected one of {}",
                ingest::EVENTS.join(", ")
            ),
        )
        .into()),
    }
}

/// Checks an order to place against the directory, the period and the
/// facts of its products, read through the batch.
async fn plan(
    conn: &mut PgConnection,
    unit: &mut Unit,
    n: NewOrder,
) -> Result<vbp_contracts::orders::OrderPlaced, Refusal> {
    let hospital = unit.org(conn, n.hospital).await?;
    let distributor_known = unit.org(conn, n.distributor).await?.is_some();
    let period = store::period_in(unit.periods(conn).await?, n.placed_at).cloned();
    let facts = match (&hospital, &period) {
        (Some(h), Some(p)) => {
            let asks: Vec<FactAsk> = n
                .lines
                .iter()
                .map(|l| FactAsk {
                    period: p.id,
                    hospital: n.hospital,
                    region: h.region,
                    distributor: n.distributor,
                    code: l.0.as_str().to_owned(),
                    at: n.placed_at,
                })
                .collect();
            unit.facts(conn, &asks).await?
        }
        _ => Default::default(),
    };
    Ok(plan_place(
        n,
        &PlacementFacts {
            hospital: hospital.as_ref(),
            distributor_known,
            period: period.as_ref(),
            lines: &facts,
        },
    )?)
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
struct Orders<'a> {
    integ: OrgId,
    org: &'a OrgRow,
    m: &'a Message<'a>,
}

impl Orders<'_> {
    /// The order, or the wait for it: it has not arrived, or messages of an
    /// earlier stage of it are still waiting and go first.
    async fn find<'u>(
        &self,
        conn: &mut PgConnection,
        unit: &'u mut Unit,
        external_id: &str,
    ) -> Result<Result<&'u mut Entry, Step>, Refusal> {
        let wait = |what: String| Step::Waits {
            order_external_id: external_id.to_owned(),
            waits_for: what,
            field: "order_external_id".into(),
        };
        if unit.order(conn, self.integ, external_id).await?.is_none() {
            return Ok(Err(wait(format!("order {external_id}"))));
        }
        if unit
            .earlier_waiting(conn, self.m.integrator, external_id, stage(self.m.event))
            .await?
        {
            return Ok(Err(wait(format!(
                "earlier-stage messages of order {external_id}"
            ))));
        }
        let Some(o) = unit.order(conn, self.integ, external_id).await? else {
            return Ok(Err(wait(format!("order {external_id}"))));
        };
        acts_for(self.org, self.m.integrator, o.view.hospital)?;
        Ok(Ok(o))
    }
}

/// New lines for an unanswered order. They pass exactly the placement
/// rules because they are planned as an order, whose checked and priced
/// lines then replace the old ones.
async fn update(
    svc: &Shared,
    conn: &mut PgConnection,
    unit: &mut Unit,
    on: &Orders<'_>,
    u: &OrderUpdated,
) -> Result<(), Refusal> {
    let vanished = || {
        reject(
            "order_external_id",
            format!("order {} vanished", u.order_external_id),
        )
    };
    let o = match unit.order(conn, on.integ, &u.order_external_id).await? {
        Some(o) => o.view.clone(),
        None => return Err(vanished().into()),
    };
    if o.state != OrderState::Placed {
        return Err(RpcError::conflict(
            "invalid_transition",
            format!(
                "order {} was already answered by its distributor ({:?}); it can no longer be changed",
                u.order_external_id, o.state
            ),
        )
        .with_field("order_external_id")
        .into());
    }
    if u.lines.is_empty() || u.lines.len() > MAX_LINES {
        return Err(reject("lines", format!("an order has 1 to {MAX_LINES} lines")).into());
    }
    let priced = plan(
        conn,
        unit,
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
    )
    .await?;
    let fresh = placed_view(&priced);
    let Some(entry) = unit.order(conn, on.integ, &u.order_external_id).await? else {
        return Err(vanished().into());
    };
    if !Unit::is_new(entry) {
        // The batch writes the quantities of existing lines, never their
        // set: the new set is written now, under the order's lock.
        queue::replace_order_lines(conn, o.order, &fresh.lines, priced.total_amount_fen).await?;
    }
    entry.view.lines = fresh.lines;
    entry.view.total_amount_fen = priced.total_amount_fen;
    unit.stage(
        &svc.outbox,
        on.m.ctx,
        &ev::OrderUpdated {
            order: o.order,
            period: o.period,
            hospital: o.hospital,
            hospital_region: o.hospital_region,
            distributor: o.distributor,
            lines: priced.lines,
            total_amount_fen: priced.total_amount_fen,
            updated_at: u.updated_at,
        },
    )?;
    Ok(())
}

/// A relayed shipping note. The distributor shipping an order it has not
/// answered on the platform is its answer: the order is confirmed in full
/// first (`order.responded`, accepted), then shipped under the API's rules.
/// Returns the events and the new shipment.
fn dispatch(
    svc: &Shared,
    o: &mut Entry,
    ctx: &Context,
    d: &ShipmentDispatched,
) -> Result<(Vec<Staged>, ShipmentId), Refusal> {
    let mut lines = Vec::with_capacity(d.lines.len());
    for (i, l) in d.lines.iter().enumerate() {
        lines.push(DispatchLine {
            line_no: line_of(&o.view, &d.order_external_id, i, &l.national_code)?,
            batch_no: l.batch_no.clone(),
            expiry_date: l.expiry_date,
            quantity: l.quantity,
        });
    }
    let answers = o.view.state == OrderState::Placed;
    let mut view = o.view.clone();
    if answers {
        view.state = OrderState::Confirmed;
        for l in &mut view.lines {
            l.confirmed_quantity = Some(l.quantity);
        }
    }
    let shipped = plan_dispatch(&view, &d.shipment_no, &lines, d.shipped_at)?;
    let stage = |e: Result<Staged, vbp_bus::BusError>| {
        e.map_err(|e| Refusal::Failed(HandlerError::transient(e.to_string())))
    };
    let mut staged = Vec::with_capacity(2);
    if answers {
        staged.push(stage(
            svc.outbox.stage(
                ctx,
                &OrderResponded {
                    order: view.order,
                    period: view.period,
                    hospital: view.hospital,
                    hospital_region: view.hospital_region,
                    distributor: view.distributor,
                    response: OrderResponse::Accepted,
                    lines: view
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
            ),
        )?);
        o.responded_at = Some(d.shipped_at);
    }
    staged.push(stage(svc.outbox.stage(ctx, &shipped))?);
    for l in &shipped.lines {
        if let Some(x) = view.lines.iter_mut().find(|x| x.line_no == l.line_no) {
            x.shipped_quantity += l.quantity;
        }
    }
    view.shipments.push(ShipmentView {
        shipment: shipped.shipment,
        shipment_no: shipped.shipment_no,
        lines: shipped.lines,
        shipped_at: shipped.shipped_at,
        received_at: None,
    });
    o.view = view;
    Unit::touch(o);
    Ok((staged, shipped.shipment))
}
