//! The writes of a batch of integrator messages, in a few multi-row
//! statements however many orders it touched: new orders as they stand at
//! the end of the batch, the state and quantities of orders that existed
//! before it, new shipments, receipts of earlier shipments, acceptances.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use vbp_contracts::orders::{OrderId, OrderView, ReceiptAccepted, ShipmentId, ShipmentView};

use super::orders::{source_str, state_str};

/// An order as a batch leaves it.
pub struct OrderChange<'a> {
    pub view: &'a OrderView,
    pub responded_at: Option<DateTime<Utc>>,
}

/// The line columns of `orders`, one array per column.
#[derive(Default)]
struct LineColumns<'a> {
    order: Vec<uuid::Uuid>,
    line_no: Vec<i32>,
    code: Vec<&'a str>,
    maker: Vec<uuid::Uuid>,
    quantity: Vec<i64>,
    confirmed: Vec<Option<i64>>,
    shipped: Vec<i64>,
    received: Vec<i64>,
    accepted: Vec<i64>,
    rejected: Vec<i64>,
    price: Vec<i64>,
    amount: Vec<i64>,
    requested: Vec<Option<i64>>,
}

impl<'a> LineColumns<'a> {
    fn of(orders: &[OrderChange<'a>]) -> Self {
        let mut c = Self::default();
        for o in orders {
            for l in &o.view.lines {
                c.order.push(o.view.order.as_uuid());
                c.line_no.push(l.line_no);
                c.code.push(l.national_code.as_str());
                c.maker.push(l.manufacturer.as_uuid());
                c.quantity.push(l.quantity);
                c.confirmed.push(l.confirmed_quantity);
                c.shipped.push(l.shipped_quantity);
                c.received.push(l.received_quantity);
                c.accepted.push(l.accepted_quantity);
                c.rejected.push(l.rejected_quantity);
                c.price.push(l.unit_price_fen.fen());
                c.amount.push(l.amount_fen.fen());
                c.requested.push(l.requested_quantity);
            }
        }
        c
    }
}

/// New orders with their lines.
pub async fn insert_orders(
    conn: &mut PgConnection,
    orders: &[OrderChange<'_>],
    recorded_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if orders.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = orders.iter().map(|o| o.view.order.as_uuid()).collect();
    let periods: Vec<uuid::Uuid> = orders.iter().map(|o| o.view.period.as_uuid()).collect();
    let hospitals: Vec<uuid::Uuid> = orders.iter().map(|o| o.view.hospital.as_uuid()).collect();
    let regions: Vec<i32> = orders
        .iter()
        .map(|o| o.view.hospital_region.as_u32() as i32)
        .collect();
    let distributors: Vec<uuid::Uuid> = orders
        .iter()
        .map(|o| o.view.distributor.as_uuid())
        .collect();
    let sources: Vec<&str> = orders.iter().map(|o| source_str(o.view.source)).collect();
    let integrators: Vec<Option<uuid::Uuid>> = orders
        .iter()
        .map(|o| o.view.integrator.map(|i| i.as_uuid()))
        .collect();
    let externals: Vec<Option<&str>> = orders
        .iter()
        .map(|o| o.view.external_id.as_deref())
        .collect();
    let states: Vec<&str> = orders.iter().map(|o| state_str(o.view.state)).collect();
    let reasons: Vec<Option<&str>> = orders
        .iter()
        .map(|o| o.view.response_reason.as_deref())
        .collect();
    let totals: Vec<i64> = orders
        .iter()
        .map(|o| o.view.total_amount_fen.fen())
        .collect();
    let placed: Vec<DateTime<Utc>> = orders.iter().map(|o| o.view.placed_at).collect();
    let responded: Vec<Option<DateTime<Utc>>> = orders.iter().map(|o| o.responded_at).collect();
    sqlx::query(
        "INSERT INTO orders (id, period, hospital, hospital_region, distributor, source, integrator, \
         external_id, state, response_reason, total_amount_fen, placed_at, responded_at, recorded_at) \
         SELECT *, $14 FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::uuid[], \
         $6::text[], $7::uuid[], $8::text[], $9::text[], $10::text[], $11::bigint[], \
         $12::timestamptz[], $13::timestamptz[])",
    )
    .bind(&ids)
    .bind(&periods)
    .bind(&hospitals)
    .bind(&regions)
    .bind(&distributors)
    .bind(&sources)
    .bind(&integrators)
    .bind(&externals)
    .bind(&states)
    .bind(&reasons)
    .bind(&totals)
    .bind(&placed)
    .bind(&responded)
    .bind(recorded_at)
    .execute(&mut *conn)
    .await?;
    let c = LineColumns::of(orders);
    sqlx::query(
        "INSERT INTO order_lines (order_id, line_no, national_code, manufacturer, quantity, \
         confirmed_quantity, shipped_quantity, received_quantity, accepted_quantity, \
         rejected_quantity, unit_price_fen, amount_fen, requested_quantity) \
         SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::uuid[], $5::bigint[], \
         $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], \
         $12::bigint[], $13::bigint[])",
    )
    .bind(&c.order)
    .bind(&c.line_no)
    .bind(&c.code)
    .bind(&c.maker)
    .bind(&c.quantity)
    .bind(&c.confirmed)
    .bind(&c.shipped)
    .bind(&c.received)
    .bind(&c.accepted)
    .bind(&c.rejected)
    .bind(&c.price)
    .bind(&c.amount)
    .bind(&c.requested)
    .execute(conn)
    .await?;
    Ok(())
}

/// The state, answer time and line quantities of orders that existed
/// before the batch (their rows locked by the batch).
pub async fn update_orders(
    conn: &mut PgConnection,
    orders: &[OrderChange<'_>],
) -> Result<(), sqlx::Error> {
    if orders.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = orders.iter().map(|o| o.view.order.as_uuid()).collect();
    let states: Vec<&str> = orders.iter().map(|o| state_str(o.view.state)).collect();
    let responded: Vec<Option<DateTime<Utc>>> = orders.iter().map(|o| o.responded_at).collect();
    let c = LineColumns::of(orders);
    sqlx::query(
        "WITH o AS (UPDATE orders o SET state = t.s, responded_at = COALESCE(t.r, o.responded_at) \
           FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS t(id, s, r) WHERE o.id = t.id) \
         UPDATE order_lines l SET confirmed_quantity = t.c, shipped_quantity = t.sh, \
         received_quantity = t.re, accepted_quantity = t.a, rejected_quantity = t.rj \
         FROM unnest($4::uuid[], $5::int[], $6::bigint[], $7::bigint[], $8::bigint[], \
         $9::bigint[], $10::bigint[]) AS t(id, n, c, sh, re, a, rj) \
         WHERE l.order_id = t.id AND l.line_no = t.n",
    )
    .bind(&ids)
    .bind(&states)
    .bind(&responded)
    .bind(&c.order)
    .bind(&c.line_no)
    .bind(&c.confirmed)
    .bind(&c.shipped)
    .bind(&c.received)
    .bind(&c.accepted)
    .bind(&c.rejected)
    .execute(conn)
    .await?;
    Ok(())
}

/// New shipments with their lines, as the batch leaves them (received or not).
pub async fn insert_shipments(
    conn: &mut PgConnection,
    shipments: &[(OrderId, &ShipmentView)],
) -> Result<(), sqlx::Error> {
    if shipments.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = shipments.iter().map(|s| s.1.shipment.as_uuid()).collect();
    let orders: Vec<uuid::Uuid> = shipments.iter().map(|s| s.0.as_uuid()).collect();
    let nos: Vec<&str> = shipments.iter().map(|s| s.1.shipment_no.as_str()).collect();
    let shipped: Vec<DateTime<Utc>> = shipments.iter().map(|s| s.1.shipped_at).collect();
    let received: Vec<Option<DateTime<Utc>>> = shipments.iter().map(|s| s.1.received_at).collect();
    let mut sid = Vec::new();
    let mut n = Vec::new();
    let mut code = Vec::new();
    let mut batch = Vec::new();
    let mut expiry: Vec<NaiveDate> = Vec::new();
    let mut q = Vec::new();
    for (_, s) in shipments {
        for l in &s.lines {
            sid.push(s.shipment.as_uuid());
            n.push(l.line_no);
            code.push(l.national_code.as_str());
            batch.push(l.batch_no.as_str());
            expiry.push(l.expiry_date);
            q.push(l.quantity);
        }
    }
    sqlx::query(
        "WITH s AS (INSERT INTO shipments (id, order_id, shipment_no, shipped_at, received_at) \
           SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], \
           $5::timestamptz[])) \
         INSERT INTO shipment_lines (shipment, line_no, national_code, batch_no, expiry_date, quantity) \
         SELECT * FROM unnest($6::uuid[], $7::int[], $8::text[], $9::text[], $10::date[], $11::bigint[])",
    )
    .bind(&ids)
    .bind(&orders)
    .bind(&nos)
    .bind(&shipped)
    .bind(&received)
    .bind(&sid)
    .bind(&n)
    .bind(&code)
    .bind(&batch)
    .bind(&expiry)
    .bind(&q)
    .execute(conn)
    .await?;
    Ok(())
}

/// Receipts of shipments recorded before the batch.
pub async fn mark_shipments_received(
    conn: &mut PgConnection,
    receipts: &[(ShipmentId, DateTime<Utc>)],
) -> Result<(), sqlx::Error> {
    if receipts.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = receipts.iter().map(|r| r.0.as_uuid()).collect();
    let at: Vec<DateTime<Utc>> = receipts.iter().map(|r| r.1).collect();
    sqlx::query(
        "UPDATE shipments s SET received_at = t.at FROM unnest($1::uuid[], $2::timestamptz[]) \
         AS t(id, at) WHERE s.id = t.id",
    )
    .bind(&ids)
    .bind(&at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Acceptances, each due at its `payment_due_at`.
pub async fn insert_acceptances(
    conn: &mut PgConnection,
    accepted: &[&ReceiptAccepted],
) -> Result<(), sqlx::Error> {
    if accepted.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = accepted.iter().map(|a| a.acceptance.as_uuid()).collect();
    let orders: Vec<uuid::Uuid> = accepted.iter().map(|a| a.order.as_uuid()).collect();
    let shipments: Vec<Option<uuid::Uuid>> = accepted
        .iter()
        .map(|a| a.shipment.map(|s| s.as_uuid()))
        .collect();
    let periods: Vec<uuid::Uuid> = accepted.iter().map(|a| a.period.as_uuid()).collect();
    let hospitals: Vec<uuid::Uuid> = accepted.iter().map(|a| a.hospital.as_uuid()).collect();
    let regions: Vec<i32> = accepted
        .iter()
        .map(|a| a.hospital_region.as_u32() as i32)
        .collect();
    let distributors: Vec<uuid::Uuid> = accepted.iter().map(|a| a.distributor.as_uuid()).collect();
    let sources: Vec<&str> = accepted.iter().map(|a| source_str(a.source)).collect();
    let amounts: Vec<i64> = accepted.iter().map(|a| a.amount_fen.fen()).collect();
    let at: Vec<DateTime<Utc>> = accepted.iter().map(|a| a.accepted_at).collect();
    let due: Vec<DateTime<Utc>> = accepted
        .iter()
        .map(|a| a.payment_due_at.unwrap_or(a.accepted_at))
        .collect();
    let lines = accepted
        .iter()
        .map(|a| serde_json::to_string(&a.lines))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO acceptances (id, order_id, shipment, period, hospital, hospital_region, \
         distributor, source, amount_fen, accepted_at, due_at, lines) \
         SELECT i, o, s, p, h, r, d, src, a, at, due, l::jsonb FROM unnest($1::uuid[], $2::uuid[], \
         $3::uuid[], $4::uuid[], $5::uuid[], $6::int[], $7::uuid[], $8::text[], $9::bigint[], \
         $10::timestamptz[], $11::timestamptz[], $12::text[]) \
         AS t(i, o, s, p, h, r, d, src, a, at, due, l)",
    )
    .bind(&ids)
    .bind(&orders)
    .bind(&shipments)
    .bind(&periods)
    .bind(&hospitals)
    .bind(&regions)
    .bind(&distributors)
    .bind(&sources)
    .bind(&amounts)
    .bind(&at)
    .bind(&due)
    .bind(&lines)
    .execute(conn)
    .await?;
    Ok(())
}
