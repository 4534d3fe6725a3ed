//! Orders, their lines and shipments.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use vbp_contracts::agreements::PeriodId;
use vbp_contracts::orders::{
    OrderId, OrderLineView, OrderSource, OrderState, OrderView, ShipmentId, ShipmentLine,
    ShipmentView,
};
use vbp_kernel::{Money, NationalCode, OrgId};

use crate::domain::region_from_i32;

fn decode<E: std::fmt::Display>(e: E) -> sqlx::Error {
    sqlx::Error::Decode(e.to_string().into())
}

pub fn source_str(s: OrderSource) -> &'static str {
    match s {
        OrderSource::Online => "online",
        OrderSource::Integrator => "integrator",
    }
}

pub fn source_of(s: &str) -> OrderSource {
    if s == "integrator" {
        OrderSource::Integrator
    } else {
        OrderSource::Online
    }
}

pub fn state_str(s: OrderState) -> &'static str {
    match s {
        OrderState::Placed => "placed",
        OrderState::Confirmed => "confirmed",
        OrderState::Refused => "refused",
    }
}

fn state_of(s: &str) -> Result<OrderState, sqlx::Error> {
    Ok(match s {
        "placed" => OrderState::Placed,
        "confirmed" => OrderState::Confirmed,
        "refused" => OrderState::Refused,
        x => return Err(decode(format!("order state {x}"))),
    })
}

pub async fn insert_order(
    conn: &mut PgConnection,
    o: &OrderView,
    recorded_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO orders (id, period, hospital, hospital_region, distributor, source, integrator, \
         external_id, state, total_amount_fen, placed_at, recorded_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'placed',$9,$10,$11)",
    )
    .bind(o.order.as_uuid())
    .bind(o.period.as_uuid())
    .bind(o.hospital.as_uuid())
    .bind(o.hospital_region.as_u32() as i32)
    .bind(o.distributor.as_uuid())
    .bind(source_str(o.source))
    .bind(o.integrator.map(|i| i.as_uuid()))
    .bind(&o.external_id)
    .bind(o.total_amount_fen.fen())
    .bind(o.placed_at)
    .bind(recorded_at)
    .execute(&mut *conn)
    .await?;
    let n: Vec<i32> = o.lines.iter().map(|l| l.line_no).collect();
    let c: Vec<&str> = o.lines.iter().map(|l| l.national_code.as_str()).collect();
    let m: Vec<uuid::Uuid> = o.lines.iter().map(|l| l.manufacturer.as_uuid()).collect();
    let q: Vec<i64> = o.lines.iter().map(|l| l.quantity).collect();
    let p: Vec<i64> = o.lines.iter().map(|l| l.unit_price_fen.fen()).collect();
    let a: Vec<i64> = o.lines.iter().map(|l| l.amount_fen.fen()).collect();
    let r: Vec<Option<i64>> = o.lines.iter().map(|l| l.requested_quantity).collect();
    sqlx::query(
        "INSERT INTO order_lines (order_id, line_no, national_code, manufacturer, quantity, \
         unit_price_fen, amount_fen, requested_quantity) SELECT $1, * FROM unnest($2::int[], \
         $3::text[], $4::uuid[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])",
    )
    .bind(o.order.as_uuid())
    .bind(&n)
    .bind(&c)
    .bind(&m)
    .bind(&q)
    .bind(&p)
    .bind(&a)
    .bind(&r)
    .execute(conn)
    .await?;
    Ok(())
}

const ORDER_COLS: &str = "o.id, o.period, o.hospital, o.hospital_region, o.distributor, o.source, \
     o.integrator, o.external_id, o.state, o.response_reason, o.total_amount_fen, o.placed_at";

const LINE_COLS: &str = "l.line_no, l.national_code, l.manufacturer, l.quantity, l.confirmed_quantity, \
     l.shipped_quantity, l.received_quantity, l.accepted_quantity, l.rejected_quantity, \
     l.unit_price_fen, l.amount_fen, l.requested_quantity";

fn order_of(id: OrderId, r: &sqlx::postgres::PgRow) -> Result<OrderView, sqlx::Error> {
    let source: String = r.try_get("source")?;
    let state: String = r.try_get("state")?;
    Ok(OrderView {
        order: id,
        period: PeriodId::from_uuid(r.try_get("period")?),
        hospital: OrgId::from_uuid(r.try_get("hospital")?),
        hospital_region: region_from_i32(r.try_get("hospital_region")?),
        distributor: OrgId::from_uuid(r.try_get("distributor")?),
        source: source_of(&source),
        integrator: r
            .try_get::<Option<uuid::Uuid>, _>("integrator")?
            .map(OrgId::from_uuid),
        external_id: r.try_get("external_id")?,
        state: state_of(&state)?,
        response_reason: r.try_get("response_reason")?,
        lines: vec![],
        shipments: vec![],
        total_amount_fen: Money::from_fen(r.try_get("total_amount_fen")?),
        placed_at: r.try_get("placed_at")?,
    })
}

/// The line of a row of `LINE_COLS`; `None` for the empty side of an
/// outer join.
fn line_of(l: &sqlx::postgres::PgRow) -> Result<Option<OrderLineView>, sqlx::Error> {
    let Some(line_no) = l.try_get::<Option<i32>, _>("line_no")? else {
        return Ok(None);
    };
    let code: String = l.try_get("national_code")?;
    Ok(Some(OrderLineView {
        line_no,
        national_code: NationalCode::parse(&code).map_err(decode)?,
        manufacturer: OrgId::from_uuid(l.try_get("manufacturer")?),
        quantity: l.try_get("quantity")?,
        confirmed_quantity: l.try_get("confirmed_quantity")?,
        shipped_quantity: l.try_get("shipped_quantity")?,
        received_quantity: l.try_get("received_quantity")?,
        accepted_quantity: l.try_get("accepted_quantity")?,
        rejected_quantity: l.try_get("rejected_quantity")?,
        unit_price_fen: Money::from_fen(l.try_get("unit_price_fen")?),
        amount_fen: Money::from_fen(l.try_get("amount_fen")?),
        requested_quantity: l.try_get("requested_quantity")?,
    }))
}

/// The order with lines and shipments; `lock` takes the order row for update.
pub async fn get_order(
    conn: &mut PgConnection,
    id: OrderId,
    lock: bool,
) -> Result<Option<OrderView>, sqlx::Error> {
    let mut view = if lock {
        // The lock is taken alone: a statement that waited for it would
        // otherwise join the lines as they were before the wait.
        let sql = format!("SELECT {ORDER_COLS} FROM orders o WHERE o.id = $1 FOR UPDATE");
        let Some(r) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let mut view = order_of(id, &r)?;
        let sql = format!(
            "SELECT {LINE_COLS} FROM order_lines l WHERE l.order_id = $1 ORDER BY l.line_no"
        );
        for l in sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .fetch_all(&mut *conn)
            .await?
        {
            view.lines.extend(line_of(&l)?);
        }
        view
    } else {
        let sql = format!(
            "SELECT {ORDER_COLS}, {LINE_COLS} FROM orders o \
             LEFT JOIN order_lines l ON l.order_id = o.id WHERE o.id = $1 ORDER BY l.line_no"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .fetch_all(&mut *conn)
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut view = order_of(id, first)?;
        for l in &rows {
            view.lines.extend(line_of(l)?);
        }
        view
    };
    // Shipments with their lines in one read; a shipment without lines
    // still shows (LEFT JOIN).
    let sql = format!("{SHIPMENTS_OF} WHERE s.order_id = $1 {SHIPMENT_ORDER}");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_all(&mut *conn)
        .await?;
    for r in rows {
        add_shipment_row(&mut view, &r)?;
    }
    Ok(Some(view))
}

const SHIPMENTS_OF: &str = "SELECT s.order_id, s.id, s.shipment_no, s.shipped_at, s.received_at, \
     l.line_no, l.national_code, l.batch_no, l.expiry_date, l.quantity FROM shipments s \
     LEFT JOIN shipment_lines l ON l.shipment = s.id";

const SHIPMENT_ORDER: &str =
    "ORDER BY s.order_id, s.shipped_at, s.shipment_no, s.id, l.line_no, l.batch_no";

/// Adds a row of `SHIPMENTS_OF` (rows in `SHIPMENT_ORDER`) to its order.
fn add_shipment_row(view: &mut OrderView, r: &sqlx::postgres::PgRow) -> Result<(), sqlx::Error> {
    let sid = ShipmentId::from_uuid(r.try_get("id")?);
    if view.shipments.last().map(|s| s.shipment) != Some(sid) {
        view.shipments.push(ShipmentView {
            shipment: sid,
            shipment_no: r.try_get("shipment_no")?,
            lines: vec![],
            shipped_at: r.try_get("shipped_at")?,
            received_at: r.try_get("received_at")?,
        });
    }
    let Some(line_no) = r.try_get::<Option<i32>, _>("line_no")? else {
        return Ok(());
    };
    let code: String = r.try_get("national_code")?;
    if let Some(s) = view.shipments.last_mut() {
        s.lines.push(ShipmentLine {
            line_no,
            national_code: NationalCode::parse(&code).map_err(decode)?,
            batch_no: r.try_get("batch_no")?,
            expiry_date: r.try_get("expiry_date")?,
            quantity: r.try_get("quantity")?,
        });
    }
    Ok(())
}

/// The orders integrators placed under `(integrator, external id)` keys,
/// locked in id order (two transactions never wait on each other in a
/// cycle), with their lines and shipments: three statements however many.
pub async fn orders_by_external(
    conn: &mut PgConnection,
    keys: &[(OrgId, &str)],
) -> Result<Vec<OrderView>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let integrators: Vec<uuid::Uuid> = keys.iter().map(|k| k.0.as_uuid()).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.1).collect();
    let sql = format!(
        "SELECT {ORDER_COLS} FROM orders o \
         JOIN (SELECT DISTINCT i, e FROM unnest($1::uuid[], $2::text[]) AS k(i, e)) k \
         ON o.integrator = k.i AND o.external_id = k.e ORDER BY o.id FOR UPDATE OF o"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&integrators)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
    let mut views = Vec::with_capacity(rows.len());
    let mut at = std::collections::HashMap::new();
    for r in &rows {
        let id = OrderId::from_uuid(r.try_get("id")?);
        at.insert(id, views.len());
        views.push(order_of(id, r)?);
    }
    let order_ids: Vec<uuid::Uuid> = views.iter().map(|v| v.order.as_uuid()).collect();
    let sql = format!(
        "SELECT l.order_id, {LINE_COLS} FROM order_lines l WHERE l.order_id = ANY($1) \
         ORDER BY l.order_id, l.line_no"
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&order_ids)
        .fetch_all(&mut *conn)
        .await?
    {
        let id = OrderId::from_uuid(r.try_get("order_id")?);
        views[at[&id]].lines.extend(line_of(&r)?);
    }
    let sql = format!("{SHIPMENTS_OF} WHERE s.order_id = ANY($1) {SHIPMENT_ORDER}");
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&order_ids)
        .fetch_all(&mut *conn)
        .await?
    {
        let id = OrderId::from_uuid(r.try_get("order_id")?);
        add_shipment_row(&mut views[at[&id]], &r)?;
    }
    Ok(views)
}

/// The order an integrator placed under `external_id`.
pub async fn order_by_external(
    conn: &mut PgConnection,
    integrator: OrgId,
    external_id: &str,
) -> Result<Option<OrderId>, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT id FROM orders WHERE integrator = $1 AND external_id = $2",
    )
    .bind(integrator.as_uuid())
    .bind(external_id)
    .fetch_optional(conn)
    .await?
    .map(OrderId::from_uuid))
}

pub async fn set_response(
    conn: &mut PgConnection,
    id: OrderId,
    state: OrderState,
    reason: Option<&str>,
    confirmed: &[(i32, i64, Option<String>)],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let n: Vec<i32> = confirmed.iter().map(|c| c.0).collect();
    let q: Vec<i64> = confirmed.iter().map(|c| c.1).collect();
    let why: Vec<Option<&str>> = confirmed.iter().map(|c| c.2.as_deref()).collect();
    sqlx::query(
        "WITH o AS (UPDATE orders SET state = $2, response_reason = $3, responded_at = $4 \
         WHERE id = $1) \
         UPDATE order_lines l SET confirmed_quantity = c.q, response_reason = c.why \
         FROM unnest($5::int[], $6::bigint[], $7::text[]) AS c(n, q, why) \
         WHERE l.order_id = $1 AND l.line_no = c.n",
    )
    .bind(id.as_uuid())
    .bind(state_str(state))
    .bind(reason)
    .bind(at)
    .bind(&n)
    .bind(&q)
    .bind(&why)
    .execute(conn)
    .await?;
    Ok(())
}

/// A shipment with its lines, and the shipped quantities of the order's
/// lines (a line may ship in several batches).
pub async fn insert_shipment(
    conn: &mut PgConnection,
    id: ShipmentId,
    order: OrderId,
    shipment_no: &str,
    lines: &[ShipmentLine],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let n: Vec<i32> = lines.iter().map(|l| l.line_no).collect();
    let c: Vec<&str> = lines.iter().map(|l| l.national_code.as_str()).collect();
    let b: Vec<&str> = lines.iter().map(|l| l.batch_no.as_str()).collect();
    let e: Vec<chrono::NaiveDate> = lines.iter().map(|l| l.expiry_date).collect();
    let q: Vec<i64> = lines.iter().map(|l| l.quantity).collect();
    sqlx::query(
        "WITH s AS (INSERT INTO shipments (id, order_id, shipment_no, shipped_at) \
           VALUES ($1,$2,$3,$4) RETURNING id), \
         l AS (INSERT INTO shipment_lines (shipment, line_no, national_code, batch_no, expiry_date, quantity) \
           SELECT s.id, t.* FROM s, unnest($5::int[], $6::text[], $7::text[], $8::date[], $9::bigint[]) \
           AS t(n, c, b, e, q)) \
         UPDATE order_lines ol SET shipped_quantity = shipped_quantity + t.q \
         FROM (SELECT n, sum(q)::bigint AS q FROM unnest($5::int[], $9::bigint[]) AS u(n, q) GROUP BY n) t \
         WHERE ol.order_id = $2 AND ol.line_no = t.n",
    )
    .bind(id.as_uuid())
    .bind(order.as_uuid())
    .bind(shipment_no)
    .bind(at)
    .bind(&n)
    .bind(&c)
    .bind(&b)
    .bind(&e)
    .bind(&q)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mark_received(
    conn: &mut PgConnection,
    order: OrderId,
    shipment: &ShipmentView,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let n: Vec<i32> = shipment.lines.iter().map(|l| l.line_no).collect();
    let q: Vec<i64> = shipment.lines.iter().map(|l| l.quantity).collect();
    sqlx::query(
        "WITH s AS (UPDATE shipments SET received_at = $2 WHERE id = $1) \
         UPDATE order_lines ol SET received_quantity = received_quantity + t.q \
         FROM (SELECT n, sum(q)::bigint AS q FROM unnest($4::int[], $5::bigint[]) AS u(n, q) GROUP BY n) t \
         WHERE ol.order_id = $3 AND ol.line_no = t.n",
    )
    .bind(shipment.shipment.as_uuid())
    .bind(at)
    .bind(order.as_uuid())
    .bind(&n)
    .bind(&q)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds accepted and rejected quantities, `(line_no, accepted, rejected)`
/// with each line at most once.
pub async fn add_accepted(
    conn: &mut PgConnection,
    order: OrderId,
    lines: &[(i32, i64, i64)],
) -> Result<(), sqlx::Error> {
    let n: Vec<i32> = lines.iter().map(|l| l.0).collect();
    let a: Vec<i64> = lines.iter().map(|l| l.1).collect();
    let r: Vec<i64> = lines.iter().map(|l| l.2).collect();
    sqlx::query(
        "UPDATE order_lines ol SET accepted_quantity = accepted_quantity + t.a, \
         rejected_quantity = rejected_quantity + t.r \
         FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS t(n, a, r) \
         WHERE ol.order_id = $1 AND ol.line_no = t.n",
    )
    .bind(order.as_uuid())
    .bind(&n)
    .bind(&a)
    .bind(&r)
    .execute(conn)
    .await?;
    Ok(())
}

/// Orders visible under `scope`, newest first.
pub async fn list_orders(
    conn: &mut PgConnection,
    scope: &super::Scope,
    hospital: Option<OrgId>,
    distributor: Option<OrgId>,
    (limit, offset): (i64, i64),
) -> Result<(Vec<OrderId>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE ($1 = 'all' \
         OR ($1 = 'region' AND o.hospital_region BETWEEN $2 AND $3) \
         OR ($1 = 'hospital' AND o.hospital = $4) \
         OR ($1 = 'distributor' AND o.distributor = $4) \
         OR ($1 = 'integrator' AND o.integrator = $4)) \
         AND ($5::uuid IS NULL OR o.hospital = $5) AND ($6::uuid IS NULL OR o.distributor = $6)";
    let filtered = |sql: String| {
        scope
            .query(sql)
            .bind(hospital.map(|h| h.as_uuid()))
            .bind(distributor.map(|d| d.as_uuid()))
    };
    let ids = filtered(format!(
        "SELECT id FROM orders o {WHERE} ORDER BY o.placed_at DESC, o.id DESC LIMIT $7 OFFSET $8"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get(0).map(OrderId::from_uuid))
    .collect::<Result<_, _>>()?;
    let total = filtered(format!("SELECT count(*) FROM orders o {WHERE}"))
        .fetch_one(conn)
        .await?
        .try_get(0)?;
    Ok((ids, total))
}
