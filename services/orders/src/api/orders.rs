//! The order lifecycle: place → respond → ship → receive → accept.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use vbp_bus::{Context, Outbox, RpcError};
use vbp_contracts::ingest::MAX_LINE_QUANTITY;
use vbp_contracts::orders::*;
use vbp_kernel::{Actor, Money, NationalCode, OrgId, OrgKind};

use super::{R, Shared, actor, begin, invalid, not_found, require_kind, transition};
use crate::domain::{self, Settings};
use crate::{store, timers};

/// Most lines one order may carry.
pub const MAX_LINES: usize = 500;

/// An order to place, from the API or an integrator.
pub struct NewOrder {
    pub hospital: OrgId,
    pub distributor: OrgId,
    pub lines: Vec<(NationalCode, i64, i64)>,
    pub placed_at: DateTime<Utc>,
    pub source: OrderSource,
    pub integrator: Option<OrgId>,
    pub external_id: Option<String>,
}

/// What placing an order reads: the parties, the period running at the
/// order time and the facts of its products in that period (keyed by
/// national code; empty when there is no hospital or period to ask about).
pub struct PlacementFacts<'a> {
    pub hospital: Option<&'a store::OrgRow>,
    pub distributor_known: bool,
    pub period: Option<&'a store::PeriodRow>,
    pub lines: &'a HashMap<String, store::LineFacts>,
}

/// Places an order inside the caller's transaction (see [`plan_place`]).
pub async fn place_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    n: NewOrder,
    now: DateTime<Utc>,
) -> R<OrderView> {
    let hospital = store::get_org(conn, n.hospital).await?;
    let distributor_known = store::get_org(conn, n.distributor).await?.is_some();
    let period = store::period_at(conn, n.placed_at).await?;
    let lines = match (&hospital, &period) {
        (Some(h), Some(p)) => {
            let codes: Vec<&NationalCode> = n.lines.iter().map(|l| &l.0).collect();
            store::line_facts(
                conn,
                p.id,
                n.hospital,
                h.region,
                n.distributor,
                &codes,
                n.placed_at,
            )
            .await?
        }
        _ => HashMap::new(),
    };
    let ev = plan_place(
        n,
        &PlacementFacts {
            hospital: hospital.as_ref(),
            distributor_known,
            period: period.as_ref(),
            lines: &lines,
        },
    )?;
    let view = placed_view(&ev);
    store::insert_order(conn, &view, now).await?;
    outbox.append(conn, ctx, &ev).await?;
    Ok(view)
}

/// The rules of placing an order: the period follows from the order time,
/// every price must be that period's winning price to the fen, and the
/// distributor must deliver every product to the hospital at that time.
/// Quantities beyond the agreed volume are valid. A line of a product
/// flagged short in the hospital's region at the order time is capped at
/// the flag's cap (`domain::cap_line`).
pub fn plan_place(n: NewOrder, f: &PlacementFacts<'_>) -> R<OrderPlaced> {
    let hospital = f
        .hospital
        .filter(|o| o.kind == OrgKind::Hospital)
        .ok_or_else(|| {
            RpcError::invalid(
                "hospital",
                format!(
                    "{} is not a hospital in the organisation directory",
                    n.hospital
                ),
            )
        })?;
    if !hospital.active {
        return Err(RpcError::invalid(
            "hospital",
            format!("hospital {} is inactive", n.hospital),
        ));
    }
    if !f.distributor_known {
        return Err(RpcError::invalid(
            "distributor",
            format!("{} is not in the organisation directory", n.distributor),
        ));
    }
    if n.lines.is_empty() || n.lines.len() > MAX_LINES {
        return Err(RpcError::invalid(
            "lines",
            format!("an order has 1 to {MAX_LINES} lines"),
        ));
    }
    let period = f.period.ok_or_else(|| {
        RpcError::invalid(
            "placed_at",
            format!(
                "no period with a published supply list runs at {}",
                n.placed_at
            ),
        )
    })?;
    let mut seen = BTreeSet::new();
    let mut lines = Vec::new();
    for (i, (code, qty, price)) in n.lines.iter().enumerate() {
        let fact = f.lines.get(code.as_str());
        let f = |x: &str| format!("lines[{i}].{x}");
        if !seen.insert(code.as_str().to_owned()) {
            return Err(RpcError::invalid(
                f("national_code"),
                format!("{code} appears on more than one line"),
            ));
        }
        if *qty < 1 || *qty > MAX_LINE_QUANTITY {
            return Err(RpcError::invalid(
                f("quantity"),
                format!("quantity must be between 1 and {MAX_LINE_QUANTITY}"),
            ));
        }
        let item = fact.and_then(|f| f.item.clone()).ok_or_else(|| {
            RpcError::invalid(
                f("national_code"),
                format!("{code} is not in the supply list of period {}", period.id),
            )
        })?;
        if item.winning_price.fen() != *price {
            return Err(RpcError::invalid(
                f("unit_price_fen"),
                format!(
                    "price {price} fen differs from the winning price {} fen of {code} in period {}",
                    item.winning_price.fen(),
                    period.id
                ),
            ));
        }
        if !fact.is_some_and(|f| f.related) {
            return Err(RpcError::invalid(
                "distributor",
                format!(
                    "distributor {} holds no active distribution relation for {code} with hospital {} at {}",
                    n.distributor, n.hospital, n.placed_at
                ),
            ));
        }
        let (qty, requested) = domain::cap_line(*qty, fact.and_then(|f| f.cap));
        let amount = item
            .winning_price
            .mul_quantity(qty)
            .ok_or_else(|| RpcError::invalid(f("quantity"), "quantity × price overflows"))?;
        lines.push(OrderLine {
            line_no: i as i32 + 1,
            national_code: code.clone(),
            manufacturer: item.manufacturer,
            quantity: qty,
            unit_price_fen: item.winning_price,
            amount_fen: amount,
            requested_quantity: requested,
        });
    }
    let total = Money::checked_sum(lines.iter().map(|l| l.amount_fen))
        .ok_or_else(|| RpcError::invalid("lines", "the order total overflows"))?;
    Ok(OrderPlaced {
        order: OrderId::new(),
        period: period.id,
        hospital: n.hospital,
        hospital_region: hospital.region,
        distributor: n.distributor,
        source: n.source,
        integrator: n.integrator,
        external_id: n.external_id,
        lines,
        total_amount_fen: total,
        placed_at: n.placed_at,
    })
}

/// The order as it stands right after `ev`.
pub fn placed_view(ev: &OrderPlaced) -> OrderView {
    OrderView {
        order: ev.order,
        period: ev.period,
        hospital: ev.hospital,
        hospital_region: ev.hospital_region,
        distributor: ev.distributor,
        source: ev.source,
        integrator: ev.integrator,
        external_id: ev.external_id.clone(),
        state: OrderState::Placed,
        response_reason: None,
        lines: ev
            .lines
            .iter()
            .map(|l| OrderLineView {
                line_no: l.line_no,
                national_code: l.national_code.clone(),
                manufacturer: l.manufacturer,
                quantity: l.quantity,
                confirmed_quantity: None,
                shipped_quantity: 0,
                received_quantity: 0,
                accepted_quantity: 0,
                rejected_quantity: 0,
                unit_price_fen: l.unit_price_fen,
                amount_fen: l.amount_fen,
                requested_quantity: l.requested_quantity,
            })
            .collect(),
        shipments: vec![],
        total_amount_fen: ev.total_amount_fen,
        placed_at: ev.placed_at,
    }
}

pub async fn order_place(svc: Shared, ctx: Context, req: PlaceOrder) -> R<OrderView> {
    let a = actor(&ctx)?;
    require_kind(a, &[OrgKind::Hospital], "place an order")?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let view = place_in(
        &mut tx,
        &svc.outbox,
        &ctx,
        NewOrder {
            hospital: a.org,
            distributor: req.distributor,
            lines: req
                .lines
                .iter()
                .map(|l| (l.national_code.clone(), l.quantity, l.unit_price_fen.fen()))
                .collect(),
            placed_at: now,
            source: OrderSource::Online,
            integrator: None,
            external_id: None,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(view)
}

async fn own_order(conn: &mut PgConnection, a: &Actor, id: OrderId, verb: &str) -> R<OrderView> {
    let o = store::get_order(conn, id, true)
        .await?
        .ok_or_else(|| not_found("order", id))?;
    let party = match a.org_kind {
        OrgKind::Hospital => o.hospital,
        OrgKind::Distributor => o.distributor,
        _ => OrgId::new(),
    };
    if party != a.org {
        return Err(RpcError::forbidden(format!(
            "order {id} is not yours to {verb}"
        )));
    }
    Ok(o)
}

pub async fn order_respond(svc: Shared, ctx: Context, req: RespondOrder) -> R<OrderView> {
    let a = actor(&ctx)?;
    require_kind(a, &[OrgKind::Distributor], "respond to an order")?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let o = own_order(&mut tx, a, req.order, "respond to").await?;
    if o.state != OrderState::Placed {
        return Err(transition(format!(
            "order {} was already answered ({:?}); only a placed order can be responded to",
            o.order, o.state
        )));
    }
    let by_line: BTreeMap<i32, &OrderLineView> = o.lines.iter().map(|l| (l.line_no, l)).collect();
    let mut given: BTreeMap<i32, &RespondLine> = BTreeMap::new();
    for (i, l) in req.lines.iter().enumerate() {
        let f = |x: &str| format!("lines[{i}].{x}");
        let Some(line) = by_line.get(&l.line_no) else {
            return Err(RpcError::invalid(
                f("line_no"),
                format!("order {} has no line {}", o.order, l.line_no),
            ));
        };
        if l.confirmed_quantity < 0 || l.confirmed_quantity > line.quantity {
            return Err(RpcError::invalid(
                f("confirmed_quantity"),
                format!(
                    "confirmed quantity must be between 0 and the ordered {}",
                    line.quantity
                ),
            ));
        }
        if given.insert(l.line_no, l).is_some() {
            return Err(RpcError::invalid(
                f("line_no"),
                format!("line {} is answered twice", l.line_no),
            ));
        }
    }
    let mut confirmed = Vec::new();
    let (state, reason) = match req.response {
        OrderResponse::Accepted => {
            if given
                .values()
                .any(|l| l.confirmed_quantity != by_line[&l.line_no].quantity)
            {
                return Err(RpcError::invalid(
                    "response",
                    "`accepted` confirms every line in full; use `partial` for less",
                ));
            }
            for l in &o.lines {
                confirmed.push((l.line_no, l.quantity, None));
            }
            (OrderState::Confirmed, None)
        }
        OrderResponse::Partial => {
            let mut short = false;
            let mut any = false;
            for l in &o.lines {
                let (q, why) = match given.get(&l.line_no) {
                    Some(g) => (g.confirmed_quantity, g.reason.clone()),
                    None => (l.quantity, None),
                };
                if q < l.quantity {
                    short = true;
                    if why.as_deref().map(str::trim).unwrap_or_default().is_empty()
                        && req.reason.is_none()
                    {
                        return Err(RpcError::invalid(
                            format!("lines[line_no={}].reason", l.line_no),
                            "a shortfall needs a reason (e.g. out of stock)",
                        ));
                    }
                }
                any |= q > 0;
                confirmed.push((l.line_no, q, why));
            }
            if !short {
                return Err(RpcError::invalid(
                    "lines",
                    "`partial` confirms less than ordered on at least one line",
                ));
            }
            if !any {
                return Err(RpcError::invalid(
                    "lines",
                    "`partial` confirms something; use `refused` to refuse the whole order",
                ));
            }
            (OrderState::Confirmed, req.reason.clone())
        }
        OrderResponse::Refused => {
            let why = domain::reason("reason", req.reason.as_deref()).map_err(invalid)?;
            for l in &o.lines {
                confirmed.push((l.line_no, 0, None));
            }
            (OrderState::Refused, Some(why))
        }
    };
    for (n, q, _) in &confirmed {
        if *q > 0 {
            served_first(&mut tx, &o, &by_line[n].national_code, now).await?;
        }
    }
    store::set_response(&mut tx, o.order, state, reason.as_deref(), &confirmed, now).await?;
    let ev = OrderResponded {
        order: o.order,
        period: o.period,
        hospital: o.hospital,
        hospital_region: o.hospital_region,
        distributor: o.distributor,
        response: req.response,
        lines: confirmed
            .iter()
            .map(|(n, q, why)| RespondedLine {
                line_no: *n,
                national_code: by_line[n].national_code.clone(),
                confirmed_quantity: *q,
                reason: why.clone(),
            })
            .collect(),
        reason,
        responded_at: now,
    };
    svc.outbox.append(&mut tx, &ctx, &ev).await?;
    let view = store::get_order(&mut tx, o.order, false)
        .await?
        .ok_or_else(|| not_found("order", o.order))?;
    tx.commit().await?;
    Ok(view)
}

/// Shortage mode's priority (湘医保函〔2024〕2号: 优先确保前期参与报量医疗机构):
/// while a product is flagged short in the hospital's region, a distributor
/// may confirm it to a hospital without an agreed volume for it only once
/// it has answered every waiting order of hospitals with one in the flagged
/// region. Refusing stays possible.
pub async fn served_first(
    conn: &mut PgConnection,
    o: &OrderView,
    code: &NationalCode,
    now: DateTime<Utc>,
) -> R<()> {
    let Some(short) = store::shortage_at(conn, o.hospital_region, code, now).await? else {
        return Ok(());
    };
    if store::has_agreed_volume(conn, o.period, o.hospital, code).await? {
        return Ok(());
    }
    let (lo, hi) = domain::region_range(short.region);
    let waiting = store::waiting_priority_orders(conn, o.distributor, code, lo, hi).await?;
    if waiting.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = waiting.iter().map(|w| w.to_string()).collect();
    Err(RpcError::conflict(
        "shortage_priority",
        format!(
            "{code} is flagged short in region {}: answer first the waiting orders of hospitals \
             with an agreed volume for it ({}); hospital {} has none",
            short.region,
            ids.join(", "),
            o.hospital
        ),
    ))
}

pub async fn shipment_dispatch(svc: Shared, ctx: Context, req: DispatchShipment) -> R<OrderView> {
    let a = actor(&ctx)?;
    require_kind(a, &[OrgKind::Distributor], "ship an order")?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let o = own_order(&mut tx, a, req.order, "ship").await?;
    dispatch_in(
        &mut tx,
        &svc.outbox,
        &ctx,
        &o,
        &req.shipment_no,
        &req.lines,
        now,
    )
    .await?;
    let view = store::get_order(&mut tx, o.order, false)
        .await?
        .ok_or_else(|| not_found("order", o.order))?;
    tx.commit().await?;
    Ok(view)
}

/// Records receipt of a shipment of a (locked) order.
pub async fn receive_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    o: &OrderView,
    shipment: &ShipmentView,
    at: DateTime<Utc>,
) -> R<()> {
    let ev = plan_receive(o, shipment, at)?;
    store::mark_received(conn, o.order, shipment, at).await?;
    outbox.append(conn, ctx, &ev).await?;
    Ok(())
}

/// The rule of receiving: a shipment is received once.
pub fn plan_receive(
    o: &OrderView,
    shipment: &ShipmentView,
    at: DateTime<Utc>,
) -> R<ShipmentReceived> {
    if let Some(when) = shipment.received_at {
        return Err(transition(format!(
            "shipment {} was already received at {when}",
            shipment.shipment_no
        )));
    }
    Ok(ShipmentReceived {
        shipment: shipment.shipment,
        order: o.order,
        hospital: o.hospital,
        distributor: o.distributor,
        received_at: at,
    })
}

pub async fn shipment_receive(svc: Shared, ctx: Context, req: ReceiveShipment) -> R<OrderView> {
    let a = actor(&ctx)?;
    require_kind(a, &[OrgKind::Hospital], "receive a shipment")?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let order: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT order_id FROM shipments WHERE id = $1")
            .bind(req.shipment.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
    let order = order.ok_or_else(|| not_found("shipment", req.shipment))?;
    let o = own_order(&mut tx, a, OrderId::from_uuid(order), "receive").await?;
    let s = o
        .shipments
        .iter()
        .find(|s| s.shipment == req.shipment)
        .cloned()
        .ok_or_else(|| not_found("shipment", req.shipment))?;
    receive_in(&mut tx, &svc.outbox, &ctx, &o, &s, now).await?;
    let view = store::get_order(&mut tx, o.order, false)
        .await?
        .ok_or_else(|| not_found("order", o.order))?;
    tx.commit().await?;
    Ok(view)
}

/// Accepts received quantities of a (locked) order; arms the payment-due
/// timer in the same transaction.
#[allow(clippy::too_many_arguments)]
pub async fn accept_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    settings: &Settings,
    o: &OrderView,
    shipment: Option<ShipmentId>,
    lines: &[AcceptLine],
    accepted_at: DateTime<Utc>,
) -> R<AcceptanceId> {
    let ev = plan_accept(settings, o, shipment, lines, accepted_at)?;
    let due_at = ev.payment_due_at.unwrap_or(accepted_at);
    let added: Vec<(i32, i64, i64)> = ev
        .lines
        .iter()
        .map(|l| (l.line_no, l.accepted_quantity, l.rejected_quantity))
        .collect();
    store::add_accepted(conn, o.order, &added).await?;
    store::insert_acceptance(conn, &ev, due_at).await?;
    if ev.amount_fen.fen() > 0 {
        timers::arm_payment_due(conn, ev.acceptance, due_at, ctx).await?;
    }
    outbox.append(conn, ctx, &ev).await?;
    Ok(ev.acceptance)
}

/// The rules of accepting: a confirmed order, received goods only, each
/// line once, never more than received and not yet accepted; the payment
/// falls due by the hospital's region's rule.
pub fn plan_accept(
    settings: &Settings,
    o: &OrderView,
    shipment: Option<ShipmentId>,
    lines: &[AcceptLine],
    accepted_at: DateTime<Utc>,
) -> R<ReceiptAccepted> {
    if o.state != OrderState::Confirmed {
        return Err(transition(format!(
            "order {} is {:?}; nothing of it can be accepted",
            o.order, o.state
        )));
    }
    if let Some(s) = shipment {
        let Some(sv) = o.shipments.iter().find(|x| x.shipment == s) else {
            return Err(RpcError::invalid(
                "shipment",
                format!("shipment {s} is not part of order {}", o.order),
            ));
        };
        if sv.received_at.is_none() {
            return Err(transition(format!(
                "shipment {} has not been received; receive it before accepting",
                sv.shipment_no
            )));
        }
    }
    if lines.is_empty() {
        return Err(RpcError::invalid(
            "lines",
            "an acceptance has at least one line",
        ));
    }
    let by_line: BTreeMap<i32, &OrderLineView> = o.lines.iter().map(|l| (l.line_no, l)).collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let f = |x: &str| format!("lines[{i}].{x}");
        let Some(line) = by_line.get(&l.line_no) else {
            return Err(RpcError::invalid(
                f("line_no"),
                format!("order {} has no line {}", o.order, l.line_no),
            ));
        };
        if !seen.insert(l.line_no) {
            return Err(RpcError::invalid(
                f("line_no"),
                format!("line {} appears twice", l.line_no),
            ));
        }
        if l.accepted_quantity < 0 || l.rejected_quantity < 0 {
            return Err(RpcError::invalid(
                f("accepted_quantity"),
                "quantities must not be negative",
            ));
        }
        if l.accepted_quantity + l.rejected_quantity == 0 {
            return Err(RpcError::invalid(
                f("accepted_quantity"),
                "accept or reject at least one unit",
            ));
        }
        let open = line.received_quantity - line.accepted_quantity - line.rejected_quantity;
        if l.accepted_quantity + l.rejected_quantity > open {
            return Err(RpcError::invalid(
                f("accepted_quantity"),
                format!(
                    "line {}: accepted + rejected = {} exceeds the {open} received and not yet accepted",
                    l.line_no,
                    l.accepted_quantity + l.rejected_quantity
                ),
            ));
        }
        let why = if l.rejected_quantity > 0 {
            Some(
                domain::reason(&f("rejection_reason"), l.rejection_reason.as_deref())
                    .map_err(invalid)?,
            )
        } else {
            None
        };
        let amount = line
            .unit_price_fen
            .mul_quantity(l.accepted_quantity)
            .ok_or_else(|| RpcError::invalid(f("accepted_quantity"), "amount overflows"))?;
        out.push(AcceptedLine {
            line_no: l.line_no,
            national_code: line.national_code.clone(),
            manufacturer: line.manufacturer,
            accepted_quantity: l.accepted_quantity,
            rejected_quantity: l.rejected_quantity,
            rejection_reason: why,
            unit_price_fen: line.unit_price_fen,
            amount_fen: amount,
        });
    }
    let amount = Money::checked_sum(out.iter().map(|l| l.amount_fen))
        .ok_or_else(|| RpcError::invalid("lines", "the accepted amount overflows"))?;
    let due_at = domain::payment_due(accepted_at, settings.days_for(o.hospital_region));
    Ok(ReceiptAccepted {
        acceptance: AcceptanceId::new(),
        order: o.order,
        shipment,
        period: o.period,
        hospital: o.hospital,
        hospital_region: o.hospital_region,
        distributor: o.distributor,
        source: o.source,
        lines: out,
        amount_fen: amount,
        accepted_at,
        payment_due_at: Some(due_at),
    })
}

pub async fn receipt_accept(svc: Shared, ctx: Context, req: AcceptReceipt) -> R<AcceptanceView> {
    let a = actor(&ctx)?;
    require_kind(a, &[OrgKind::Hospital], "accept a delivery")?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let o = own_order(&mut tx, a, req.order, "accept").await?;
    let id = accept_in(
        &mut tx,
        &svc.outbox,
        &ctx,
        &svc.settings,
        &o,
        req.shipment,
        &req.lines,
        now,
    )
    .await?;
    let v = store::get_acceptance(&mut tx, id, false)
        .await?
        .map(|r| r.view)
        .ok_or_else(|| not_found("acceptance", id))?;
    tx.commit().await?;
    Ok(v)
}

/// Ships part of a (locked) confirmed order at `at` inside the caller's
/// transaction (see [`plan_dispatch`]).
pub async fn dispatch_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    o: &OrderView,
    shipment_no: &str,
    lines_in: &[DispatchLine],
    at: DateTime<Utc>,
) -> R<ShipmentId> {
    let ev = plan_dispatch(o, shipment_no, lines_in, at)?;
    store::insert_shipment(conn, ev.shipment, o.order, &ev.shipment_no, &ev.lines, at).await?;
    outbox.append(conn, ctx, &ev).await?;
    Ok(ev.shipment)
}

/// The rules of shipping: a confirmed order, a new shipment number, batch
/// numbers, unexpired goods, and never more than confirmed per line.
pub fn plan_dispatch(
    o: &OrderView,
    shipment_no: &str,
    lines_in: &[DispatchLine],
    at: DateTime<Utc>,
) -> R<ShipmentDispatched> {
    if o.state != OrderState::Confirmed {
        return Err(transition(format!(
            "order {} is {:?}; only a confirmed order can be shipped",
            o.order, o.state
        )));
    }
    let no = shipment_no.trim();
    if no.is_empty() || no.chars().count() > 64 {
        return Err(RpcError::invalid(
            "shipment_no",
            "a shipment number has 1 to 64 characters",
        ));
    }
    if o.shipments.iter().any(|s| s.shipment_no == no) {
        return Err(RpcError::conflict(
            "duplicate_shipment",
            format!("order {} already has shipment {no}", o.order),
        )
        .with_field("shipment_no"));
    }
    if lines_in.is_empty() {
        return Err(RpcError::invalid(
            "lines",
            "a shipment has at least one line",
        ));
    }
    let today = domain::local_date(at);
    let by_line: BTreeMap<i32, &OrderLineView> = o.lines.iter().map(|l| (l.line_no, l)).collect();
    let mut adding: BTreeMap<i32, i64> = BTreeMap::new();
    let mut lines = Vec::new();
    for (i, l) in lines_in.iter().enumerate() {
        let f = |x: &str| format!("lines[{i}].{x}");
        let Some(line) = by_line.get(&l.line_no) else {
            return Err(RpcError::invalid(
                f("line_no"),
                format!("order {} has no line {}", o.order, l.line_no),
            ));
        };
        if l.batch_no.trim().is_empty() {
            return Err(RpcError::invalid(
                f("batch_no"),
                "a batch number is required",
            ));
        }
        if l.expiry_date <= today {
            return Err(RpcError::invalid(
                f("expiry_date"),
                format!(
                    "goods expiring on {} may not be shipped on {today}",
                    l.expiry_date
                ),
            ));
        }
        if l.quantity < 1 {
            return Err(RpcError::invalid(
                f("quantity"),
                "quantity must be at least 1",
            ));
        }
        let total = adding.entry(l.line_no).or_default();
        *total += l.quantity;
        let confirmed = line.confirmed_quantity.unwrap_or(0);
        if line.shipped_quantity + *total > confirmed {
            return Err(RpcError::invalid(
                f("quantity"),
                format!(
                    "line {} would ship {} in all, more than the {} confirmed",
                    l.line_no,
                    line.shipped_quantity + *total,
                    confirmed
                ),
            ));
        }
        lines.push(ShipmentLine {
            line_no: l.line_no,
            national_code: line.national_code.clone(),
            batch_no: l.batch_no.trim().to_owned(),
            expiry_date: l.expiry_date,
            quantity: l.quantity,
        });
    }
    Ok(ShipmentDispatched {
        shipment: ShipmentId::new(),
        order: o.order,
        hospital: o.hospital,
        distributor: o.distributor,
        shipment_no: no.to_owned(),
        lines,
        shipped_at: at,
    })
}
