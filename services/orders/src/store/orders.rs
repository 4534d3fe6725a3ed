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

/// The order with lines and shipments; `lock` takes the order row for update.
pub async fn get_order(
    conn: &mut PgConnection,
    id: OrderId,
    lock: bool,
) -> Result<Option<OrderView>, sqlx::Error> {
    let sql = format!(
        "SELECT id, period, hospital, hospital_region, distributor, source, integrator, external_id, \
         state, response_reason, total_amount_fen, placed_at FROM orders WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let Some(r) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let source: String = r.try_get("source")?;
    let state: String = r.try_get("state")?;
    let mut view = OrderView {
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
    };
    let lines = sqlx::query(
        "SELECT line_no, national_code, manufacturer, quantity, confirmed_quantity, shipped_quantity, \
         received_quantity, accepted_quantity, rejected_quantity, unit_price_fen, amount_fen, \
         requested_quantity FROM order_lines WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(id.as_uuid())
    .fetch_all(&mut *conn)
    .await?;
    for l in lines {
        let code: String = l.try_get("national_code")?;
        view.lines.push(OrderLineView {
            line_no: l.try_get("line_no")?,
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
        });
    }
    let ships = sqlx::query(
        "SELECT id, shipment_no, shipped_at, received_at FROM shipments WHERE order_id = $1 \
         ORDER BY shipped_at, shipment_no",
    )
    .bind(id.as_uuid())
    .fetch_all(&mut *conn)
    .await?;
    for s in ships {
        let sid: uuid::Uuid = s.try_get("id")?;
        let lines = sqlx::query(
            "SELECT line_no, national_code, batch_no, expiry_date, quantity FROM shipment_lines \
             WHERE shipment = $1 ORDER BY line_no, batch_no",
        )
        .bind(sid)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::new();
        for l in lines {
            let code: String = l.try_get("national_code")?;
            out.push(ShipmentLine {
                line_no: l.try_get("line_no")?,
                national_code: NationalCode::parse(&code).map_err(decode)?,
                batch_no: l.try_get("batch_no")?,
                expiry_date: l.try_get("expiry_date")?,
                quantity: l.try_get("quantity")?,
            });
        }
        view.shipments.push(ShipmentView {
            shipment: ShipmentId::from_uuid(sid),
            shipment_no: s.try_get("shipment_no")?,
            lines: out,
            shipped_at: s.try_get("shipped_at")?,
            received_at: s.try_get("received_at")?,
        });
    }
    Ok(Some(view))
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
    sqlx::query(
        "UPDATE orders SET state = $2, response_reason = $3, responded_at = $4 WHERE id = $1",
    )
    .bind(id.as_uuid())
    .bind(state_str(state))
    .bind(reason)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    for (line, qty, why) in confirmed {
        sqlx::query(
            "UPDATE order_lines SET confirmed_quantity = $3, response_reason = $4 \
             WHERE order_id = $1 AND line_no = $2",
        )
        .bind(id.as_uuid())
        .bind(line)
        .bind(qty)
        .bind(why)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn insert_shipment(
    conn: &mut PgConnection,
    id: ShipmentId,
    order: OrderId,
    shipment_no: &str,
    lines: &[ShipmentLine],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO shipments (id, order_id, shipment_no, shipped_at) VALUES ($1,$2,$3,$4)",
    )
    .bind(id.as_uuid())
    .bind(order.as_uuid())
    .bind(shipment_no)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    for l in lines {
        sqlx::query(
            "INSERT INTO shipment_lines (shipment, line_no, national_code, batch_no, expiry_date, quantity) \
             VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(id.as_uuid())
        .bind(l.line_no)
        .bind(l.national_code.as_str())
        .bind(&l.batch_no)
        .bind(l.expiry_date)
        .bind(l.quantity)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE order_lines SET shipped_quantity = shipped_quantity + $3 \
             WHERE order_id = $1 AND line_no = $2",
        )
        .bind(order.as_uuid())
        .bind(l.line_no)
        .bind(l.quantity)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn mark_received(
    conn: &mut PgConnection,
    order: OrderId,
    shipment: &ShipmentView,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE shipments SET received_at = $2 WHERE id = $1")
        .bind(shipment.shipment.as_uuid())
        .bind(at)
        .execute(&mut *conn)
        .await?;
    for l in &shipment.lines {
        sqlx::query(
            "UPDATE order_lines SET received_quantity = received_quantity + $3 \
             WHERE order_id = $1 AND line_no = $2",
        )
        .bind(order.as_uuid())
        .bind(l.line_no)
        .bind(l.quantity)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn add_accepted(
    conn: &mut PgConnection,
    order: OrderId,
    line_no: i32,
    accepted: i64,
    rejected: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE order_lines SET accepted_quantity = accepted_quantity + $3, \
         rejected_quantity = rejected_quantity + $4 WHERE order_id = $1 AND line_no = $2",
    )
    .bind(order.as_uuid())
    .bind(line_no)
    .bind(accepted)
    .bind(rejected)
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
    limit: i64,
) -> Result<Vec<OrderId>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM orders o WHERE ($1 = 'all' \
         OR ($1 = 'region' AND o.hospital_region BETWEEN $2 AND $3) \
         OR ($1 = 'hospital' AND o.hospital = $4) \
         OR ($1 = 'distributor' AND o.distributor = $4) \
         OR ($1 = 'integrator' AND o.integrator = $4)) \
         AND ($5::uuid IS NULL OR o.hospital = $5) AND ($6::uuid IS NULL OR o.distributor = $6) \
         ORDER BY o.placed_at DESC, o.id LIMIT $7",
    )
    .bind(scope.kind)
    .bind(scope.lo)
    .bind(scope.hi)
    .bind(scope.org)
    .bind(hospital.map(|h| h.as_uuid()))
    .bind(distributor.map(|d| d.as_uuid()))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(OrderId::from_uuid).collect())
}
