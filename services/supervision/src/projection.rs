//! The orders service's placements, responses, shipments, acceptances,
//! payments and declared offline purchases, projected a batch at a time: one
//! statement per kind of event.

use sqlx::PgConnection;
use vbp_contracts::orders::{
    OfflinePurchaseDeclared, OrderPlaced, OrderResponded, ReceiptAccepted, SettlementPaid,
    ShipmentDispatched,
};
use vbp_kernel::EventId;

/// Records placed orders; returns the ids of those not seen before.
pub async fn insert_orders<'e>(
    conn: &mut PgConnection,
    placed: impl Iterator<Item = (EventId, &'e OrderPlaced)>,
) -> Result<Vec<uuid::Uuid>, sqlx::Error> {
    let (mut ids, mut periods, mut hospitals, mut regions, mut distributors) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut codes, mut quantities, mut placed_at, mut events) = (vec![], vec![], vec![], vec![]);
    for (event, ev) in placed {
        ids.push(ev.order.as_uuid());
        periods.push(ev.period.as_uuid());
        hospitals.push(ev.hospital.as_uuid());
        regions.push(ev.hospital_region.as_u32() as i32);
        distributors.push(ev.distributor.as_uuid());
        // One text per order: Postgres arrays of arrays must be rectangular.
        let of_order: Vec<&str> = ev.lines.iter().map(|l| l.national_code.as_str()).collect();
        codes.push(of_order.join(","));
        quantities.push(ev.lines.iter().map(|l| l.quantity).sum::<i64>());
        placed_at.push(ev.placed_at);
        events.push(event.as_uuid());
    }
    sqlx::query_scalar(
        "INSERT INTO orders (id, period, hospital, hospital_region, distributor, codes, quantity, \
         placed_at, placed_event) \
         SELECT id, period, hospital, region, distributor, string_to_array(codes, ','), quantity, \
         placed_at, event FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::uuid[], \
         $6::text[], $7::bigint[], $8::timestamptz[], $9::uuid[]) \
         AS t(id, period, hospital, region, distributor, codes, quantity, placed_at, event) \
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(ids)
    .bind(periods)
    .bind(hospitals)
    .bind(regions)
    .bind(distributors)
    .bind(codes)
    .bind(quantities)
    .bind(placed_at)
    .bind(events)
    .fetch_all(conn)
    .await
}

/// What recording responses found.
#[derive(Debug, Default)]
pub struct Responses {
    /// Orders whose response was recorded now (not already there).
    pub recorded: Vec<uuid::Uuid>,
    /// Orders not projected yet: their placement is still on its way.
    pub unknown: Vec<uuid::Uuid>,
}

/// Records the first response to each order.
pub async fn record_responses(
    conn: &mut PgConnection,
    responded: &[(EventId, OrderResponded)],
) -> Result<Responses, sqlx::Error> {
    let rows: Vec<(uuid::Uuid, bool, bool)> = sqlx::query_as(
        "WITH r AS (SELECT DISTINCT ON (id) * FROM unnest($1::uuid[], $2::text[], \
         $3::timestamptz[], $4::uuid[], $5::text[]) WITH ORDINALITY \
         AS t(id, response, at, event, reason, n) ORDER BY id, n), \
         u AS (UPDATE orders o SET response = r.response, responded_at = r.at, \
         response_event = r.event, response_reason = r.reason \
         FROM r WHERE o.id = r.id AND o.response IS NULL RETURNING o.id) \
         SELECT r.id, EXISTS (SELECT 1 FROM u WHERE u.id = r.id), \
         EXISTS (SELECT 1 FROM orders o WHERE o.id = r.id) FROM r",
    )
    .bind(
        responded
            .iter()
            .map(|(_, e)| e.order.as_uuid())
            .collect::<Vec<_>>(),
    )
    .bind(
        responded
            .iter()
            .map(|(_, e)| crate::api::enum_str(e.response))
            .collect::<Vec<_>>(),
    )
    .bind(
        responded
            .iter()
            .map(|(_, e)| e.responded_at)
            .collect::<Vec<_>>(),
    )
    .bind(
        responded
            .iter()
            .map(|(id, _)| id.as_uuid())
            .collect::<Vec<_>>(),
    )
    .bind(
        responded
            .iter()
            .map(|(_, e)| e.reason.clone())
            .collect::<Vec<_>>(),
    )
    .fetch_all(conn)
    .await?;
    let mut found = Responses::default();
    for (order, recorded, known) in rows {
        if recorded {
            found.recorded.push(order);
        } else if !known {
            found.unknown.push(order);
        }
    }
    Ok(found)
}

/// Records declarations of offline purchases; one already recorded is left
/// as it is.
pub async fn insert_offline_purchases(
    conn: &mut PgConnection,
    declared: &[(EventId, OfflinePurchaseDeclared)],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO offline_purchases (event_id, hospital, hospital_region, month, amount_fen) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::date[], $5::bigint[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(
        declared
            .iter()
            .map(|(id, _)| id.as_uuid())
            .collect::<Vec<_>>(),
    )
    .bind(
        declared
            .iter()
            .map(|(_, e)| e.hospital.as_uuid())
            .collect::<Vec<_>>(),
    )
    .bind(
        declared
            .iter()
            .map(|(_, e)| e.hospital_region.as_u32() as i32)
            .collect::<Vec<_>>(),
    )
    .bind(declared.iter().map(|(_, e)| e.month).collect::<Vec<_>>())
    .bind(
        declared
            .iter()
            .map(|(_, e)| e.amount_fen.fen())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the first shipment of each order.
pub async fn mark_shipped(
    conn: &mut PgConnection,
    shipped: &[(EventId, ShipmentDispatched)],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders o SET shipped_at = s.at, shipped_event = s.event \
         FROM (SELECT DISTINCT ON (id) * FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[]) \
               WITH ORDINALITY AS t(id, at, event, n) ORDER BY id, n) s \
         WHERE o.id = s.id AND o.shipped_at IS NULL",
    )
    .bind(
        shipped
            .iter()
            .map(|(_, e)| e.order.as_uuid())
            .collect::<Vec<_>>(),
    )
    .bind(
        shipped
            .iter()
            .map(|(_, e)| e.shipped_at)
            .collect::<Vec<_>>(),
    )
    .bind(
        shipped
            .iter()
            .map(|(id, _)| id.as_uuid())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records accepted lines; a line already recorded is left as it is.
pub async fn insert_accepted_lines(
    conn: &mut PgConnection,
    accepted: &[(EventId, ReceiptAccepted)],
) -> Result<(), sqlx::Error> {
    let (mut acceptances, mut line_nos, mut events, mut periods, mut hospitals) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut regions, mut distributors, mut codes, mut quantities, mut amounts) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut accepted_at, mut due_at) = (vec![], vec![]);
    for (event, ev) in accepted {
        for l in &ev.lines {
            acceptances.push(ev.acceptance.as_uuid());
            line_nos.push(l.line_no);
            events.push(event.as_uuid());
            periods.push(ev.period.as_uuid());
            hospitals.push(ev.hospital.as_uuid());
            regions.push(ev.hospital_region.as_u32() as i32);
            distributors.push(ev.distributor.as_uuid());
            codes.push(l.national_code.as_str());
            quantities.push(l.accepted_quantity);
            amounts.push(l.amount_fen.fen());
            accepted_at.push(ev.accepted_at);
            due_at.push(ev.payment_due_at);
        }
    }
    sqlx::query(
        "INSERT INTO accepted_lines (acceptance, line_no, event_id, period, hospital, \
         hospital_region, distributor, national_code, quantity, amount_fen, accepted_at, \
         payment_due_at) \
         SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::uuid[], $5::uuid[], \
         $6::int[], $7::uuid[], $8::text[], $9::bigint[], $10::bigint[], $11::timestamptz[], \
         $12::timestamptz[]) ON CONFLICT DO NOTHING",
    )
    .bind(acceptances)
    .bind(line_nos)
    .bind(events)
    .bind(periods)
    .bind(hospitals)
    .bind(regions)
    .bind(distributors)
    .bind(codes)
    .bind(quantities)
    .bind(amounts)
    .bind(accepted_at)
    .bind(due_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records payments; one already recorded is left as it is.
pub async fn insert_settlements(
    conn: &mut PgConnection,
    paid: &[SettlementPaid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO settlements (id, hospital, hospital_region, acceptance, amount_fen, due_at, \
         paid_at, on_time) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::uuid[], $5::bigint[], \
         $6::timestamptz[], $7::timestamptz[], $8::boolean[]) ON CONFLICT DO NOTHING",
    )
    .bind(
        paid.iter()
            .map(|e| e.settlement.as_uuid())
            .collect::<Vec<_>>(),
    )
    .bind(
        paid.iter()
            .map(|e| e.hospital.as_uuid())
            .collect::<Vec<_>>(),
    )
    .bind(
        paid.iter()
            .map(|e| e.hospital_region.as_u32() as i32)
            .collect::<Vec<_>>(),
    )
    .bind(
        paid.iter()
            .map(|e| e.acceptance.map(|a| a.as_uuid()))
            .collect::<Vec<_>>(),
    )
    .bind(paid.iter().map(|e| e.amount_fen.fen()).collect::<Vec<_>>())
    .bind(paid.iter().map(|e| e.due_at).collect::<Vec<_>>())
    .bind(paid.iter().map(|e| e.paid_at).collect::<Vec<_>>())
    .bind(paid.iter().map(|e| e.on_time).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
