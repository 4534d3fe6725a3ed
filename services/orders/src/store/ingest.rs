//! Integrator messages: their outcome per (integrator, external id, body
//! digest), the queue of messages waiting for a predecessor, and the
//! replacement of an unanswered order's lines.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use vbp_contracts::MessageMeta;
use vbp_contracts::orders::{IngestRejected, OrderId, OrderLineView};
use vbp_kernel::Money;

/// What a message's key says before it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First seen: now claimed as applied, to be corrected in the same
    /// transaction if it is parked or rejected.
    New,
    /// The same body again: nothing to do.
    Duplicate,
    /// The external id is taken by a message with another body.
    Reused,
}

/// One message to claim.
pub struct ClaimKey<'a> {
    pub integrator: &'a str,
    pub external_id: &'a str,
    pub event: &'a str,
    /// The body as JSON text; compared as jsonb.
    pub body: &'a str,
}

/// Claims many messages in two statements; the answer follows `keys`.
/// Within one call a repeated key is `Duplicate` (same body) or `Reused`.
pub async fn claim_all(
    conn: &mut PgConnection,
    keys: &[ClaimKey<'_>],
    at: DateTime<Utc>,
) -> Result<Vec<Claim>, sqlx::Error> {
    let integrators: Vec<&str> = keys.iter().map(|k| k.integrator).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.external_id).collect();
    let events: Vec<&str> = keys.iter().map(|k| k.event).collect();
    let bodies: Vec<&str> = keys.iter().map(|k| k.body).collect();
    // `ord` keeps the caller's order so the first of two equal keys wins.
    let rows = sqlx::query(
        "WITH input AS ( \
           SELECT ord, i, e, ev, md5(b::jsonb::text) AS d \
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS t(i, e, ev, b, ord)), \
         ins AS ( \
           INSERT INTO ingest_messages (integrator, external_id, event, outcome, digest, first, at) \
           SELECT DISTINCT ON (i, e) i, e, ev, 'applied', d, true, $5 FROM input ORDER BY i, e, ord \
           ON CONFLICT DO NOTHING RETURNING integrator, external_id) \
         SELECT input.ord, input.d, (ins.integrator IS NOT NULL) AS fresh \
         FROM input LEFT JOIN ins ON ins.integrator = input.i AND ins.external_id = input.e \
         ORDER BY input.ord",
    )
    .bind(&integrators)
    .bind(&ids)
    .bind(&events)
    .bind(&bodies)
    .bind(at)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(keys.len());
    let mut first_of: std::collections::HashMap<(&str, &str), String> = Default::default();
    let mut unresolved = Vec::new();
    for (k, r) in keys.iter().zip(&rows) {
        let digest: String = r.try_get("d")?;
        let fresh: bool = r.try_get("fresh")?;
        match first_of.get(&(k.integrator, k.external_id)) {
            Some(d) if *d == digest => out.push(Claim::Duplicate),
            Some(_) => out.push(Claim::Reused),
            None if fresh => {
                first_of.insert((k.integrator, k.external_id), digest);
                out.push(Claim::New);
            }
            None => {
                unresolved.push((out.len(), digest));
                out.push(Claim::Duplicate);
            }
        }
    }
    for (idx, digest) in unresolved {
        let k = &keys[idx];
        let same: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM ingest_messages \
             WHERE integrator = $1 AND external_id = $2 AND digest = $3)",
        )
        .bind(k.integrator)
        .bind(k.external_id)
        .bind(&digest)
        .fetch_one(&mut *conn)
        .await?;
        if !same {
            out[idx] = Claim::Reused;
        }
    }
    Ok(out)
}

/// Serialises the messages of each order across replicas sharing the
/// ingest consumer (and the expiry timer) until the transaction ends, so a
/// message is never parked while its predecessor's queue is being drained. Locks are taken in one
/// global order, so two batches sharing orders cannot deadlock.
pub async fn lock_orders(
    conn: &mut PgConnection,
    orders: &[(&str, &str)],
) -> Result<(), sqlx::Error> {
    let keys: Vec<String> = orders.iter().map(|(i, o)| format!("{i}/{o}")).collect();
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock(h)) FROM ( \
           SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest($1::text[]) AS k \
           ORDER BY h OFFSET 0) s",
    )
    .bind(&keys)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the rejection of a replay under a taken external id with another
/// body, beside the original. False when this very body was rejected so before.
pub async fn record_reuse(
    conn: &mut PgConnection,
    r: &IngestRejected,
    body: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO ingest_messages (integrator, external_id, event, outcome, field, reason, at, digest, first) \
         VALUES ($1, $2, $3, 'rejected', $4, $5, $6, md5($7::jsonb::text), false) ON CONFLICT DO NOTHING",
    )
    .bind(&r.integrator)
    .bind(&r.external_id)
    .bind(&r.event)
    .bind(&r.field)
    .bind(&r.reason)
    .bind(r.rejected_at)
    .bind(body)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Which of `orders` (integrator, order external id) have messages waiting.
pub async fn waiting_orders(
    conn: &mut PgConnection,
    orders: &[(&str, &str)],
) -> Result<HashSet<(String, String)>, sqlx::Error> {
    let integrators: Vec<&str> = orders.iter().map(|o| o.0).collect();
    let ids: Vec<&str> = orders.iter().map(|o| o.1).collect();
    let rows = sqlx::query(
        "SELECT DISTINCT p.integrator, p.order_external_id FROM ingest_pending p \
         JOIN unnest($1::text[], $2::text[]) AS k(i, o) \
         ON p.integrator = k.i AND p.order_external_id = k.o",
    )
    .bind(&integrators)
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("integrator")?, r.try_get("order_external_id")?)))
        .collect()
}

/// A message waiting for its predecessor.
#[derive(Debug, Clone)]
pub struct Pending {
    pub integrator: String,
    pub external_id: String,
    pub event: String,
    /// Where the event stands in an order's life (placed 0 … accepted 4).
    pub stage: i16,
    pub order_external_id: String,
    pub waits_for: String,
    /// The field a rejection on expiry names.
    pub waits_field: String,
    pub payload: Vec<u8>,
    pub meta: MessageMeta,
    pub parked_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

fn pending_of(r: &sqlx::postgres::PgRow) -> Result<Pending, sqlx::Error> {
    Ok(Pending {
        integrator: r.try_get("integrator")?,
        external_id: r.try_get("external_id")?,
        event: r.try_get("event")?,
        stage: r.try_get("stage")?,
        order_external_id: r.try_get("order_external_id")?,
        waits_for: r.try_get("waits_for")?,
        waits_field: r.try_get("waits_field")?,
        payload: r.try_get("payload")?,
        meta: r.try_get::<sqlx::types::Json<MessageMeta>, _>("meta")?.0,
        parked_at: r.try_get("parked_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

const PENDING_COLUMNS: &str = "integrator, external_id, event, stage, order_external_id, waits_for, \
     waits_field, payload, meta, parked_at, expires_at";

/// A waiting message by its key, locked.
pub async fn pending(
    conn: &mut PgConnection,
    integrator: &str,
    external_id: &str,
) -> Result<Option<Pending>, sqlx::Error> {
    let sql = format!(
        "SELECT {PENDING_COLUMNS} FROM ingest_pending WHERE integrator = $1 AND external_id = $2 \
         FOR UPDATE"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(integrator)
        .bind(external_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(pending_of)
        .transpose()
}

/// Every waiting message of `orders` by order, stage, then arrival; locked.
pub async fn queues_of(
    conn: &mut PgConnection,
    orders: &[(&str, &str)],
) -> Result<Vec<Pending>, sqlx::Error> {
    let integrators: Vec<&str> = orders.iter().map(|o| o.0).collect();
    let ids: Vec<&str> = orders.iter().map(|o| o.1).collect();
    let sql = format!(
        "SELECT {PENDING_COLUMNS} FROM ingest_pending p \
         WHERE (p.integrator, p.order_external_id) IN \
           (SELECT i, o FROM unnest($1::text[], $2::text[]) AS k(i, o)) \
         ORDER BY p.integrator, p.order_external_id, p.stage, p.seq FOR UPDATE OF p"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&integrators)
        .bind(&ids)
        .fetch_all(conn)
        .await?
        .iter()
        .map(pending_of)
        .collect()
}

/// Parks messages, in the given order (their arrival).
pub async fn park_many(conn: &mut PgConnection, ps: &[&Pending]) -> Result<(), sqlx::Error> {
    if ps.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&Pending) -> &str| ps.iter().map(|p| f(p)).collect::<Vec<&str>>();
    let stages: Vec<i16> = ps.iter().map(|p| p.stage).collect();
    let payloads: Vec<&[u8]> = ps.iter().map(|p| p.payload.as_slice()).collect();
    let metas = ps
        .iter()
        .map(|p| serde_json::to_string(&p.meta))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let parked: Vec<DateTime<Utc>> = ps.iter().map(|p| p.parked_at).collect();
    let expires: Vec<DateTime<Utc>> = ps.iter().map(|p| p.expires_at).collect();
    sqlx::query(
        "INSERT INTO ingest_pending (integrator, external_id, event, stage, order_external_id, \
         waits_for, waits_field, payload, meta, parked_at, expires_at) \
         SELECT i, e, ev, st, o, w, wf, pl, m::jsonb, pa, ex FROM unnest($1::text[], $2::text[], \
         $3::text[], $4::smallint[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::text[], \
         $10::timestamptz[], $11::timestamptz[]) WITH ORDINALITY \
         AS t(i, e, ev, st, o, w, wf, pl, m, pa, ex, n) ORDER BY n",
    )
    .bind(text(|p| &p.integrator))
    .bind(text(|p| &p.external_id))
    .bind(text(|p| &p.event))
    .bind(&stages)
    .bind(text(|p| &p.order_external_id))
    .bind(text(|p| &p.waits_for))
    .bind(text(|p| &p.waits_field))
    .bind(&payloads)
    .bind(&metas)
    .bind(&parked)
    .bind(&expires)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes messages out of the queue.
pub async fn unpark_many(
    conn: &mut PgConnection,
    keys: &[(&str, &str)],
) -> Result<(), sqlx::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    let integrators: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.1).collect();
    sqlx::query(
        "DELETE FROM ingest_pending p USING unnest($1::text[], $2::text[]) AS k(i, e) \
         WHERE p.integrator = k.i AND p.external_id = k.e",
    )
    .bind(&integrators)
    .bind(&ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Waiting messages that now wait for something else: `(integrator,
/// external id, waits for, field)`.
pub async fn rewait_many(
    conn: &mut PgConnection,
    rows: &[(&str, &str, &str, &str)],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (mut i, mut e, mut w, mut f) = (vec![], vec![], vec![], vec![]);
    for r in rows {
        i.push(r.0);
        e.push(r.1);
        w.push(r.2);
        f.push(r.3);
    }
    sqlx::query(
        "UPDATE ingest_pending p SET waits_for = k.w, waits_field = k.f \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(i, e, w, f) \
         WHERE p.integrator = k.i AND p.external_id = k.e",
    )
    .bind(&i)
    .bind(&e)
    .bind(&w)
    .bind(&f)
    .execute(conn)
    .await?;
    Ok(())
}

/// What became of a claimed message, written over its claim.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub integrator: String,
    pub external_id: String,
    /// `applied`, `pending` or `rejected`.
    pub outcome: &'static str,
    pub field: Option<String>,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

pub async fn set_outcomes(conn: &mut PgConnection, rows: &[Outcome]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let integrators: Vec<&str> = rows.iter().map(|r| r.integrator.as_str()).collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.external_id.as_str()).collect();
    let outcomes: Vec<&str> = rows.iter().map(|r| r.outcome).collect();
    let fields: Vec<Option<&str>> = rows.iter().map(|r| r.field.as_deref()).collect();
    let reasons: Vec<Option<&str>> = rows.iter().map(|r| r.reason.as_deref()).collect();
    let at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.at).collect();
    sqlx::query(
        "UPDATE ingest_messages m SET outcome = k.o, at = k.at, \
         field = CASE WHEN k.o = 'rejected' THEN k.f ELSE m.field END, \
         reason = CASE WHEN k.o = 'rejected' THEN k.r ELSE m.reason END \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) \
         AS k(i, e, o, f, r, at) WHERE m.integrator = k.i AND m.external_id = k.e AND m.first",
    )
    .bind(&integrators)
    .bind(&ids)
    .bind(&outcomes)
    .bind(&fields)
    .bind(&reasons)
    .bind(&at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces the lines and total of an order nobody has answered yet.
pub async fn replace_order_lines(
    conn: &mut PgConnection,
    order: OrderId,
    lines: &[OrderLineView],
    total: Money,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM order_lines WHERE order_id = $1")
        .bind(order.as_uuid())
        .execute(&mut *conn)
        .await?;
    let n: Vec<i32> = lines.iter().map(|l| l.line_no).collect();
    let c: Vec<&str> = lines.iter().map(|l| l.national_code.as_str()).collect();
    let m: Vec<uuid::Uuid> = lines.iter().map(|l| l.manufacturer.as_uuid()).collect();
    let q: Vec<i64> = lines.iter().map(|l| l.quantity).collect();
    let p: Vec<i64> = lines.iter().map(|l| l.unit_price_fen.fen()).collect();
    let a: Vec<i64> = lines.iter().map(|l| l.amount_fen.fen()).collect();
    let r: Vec<Option<i64>> = lines.iter().map(|l| l.requested_quantity).collect();
    sqlx::query(
        "INSERT INTO order_lines (order_id, line_no, national_code, manufacturer, quantity, \
         unit_price_fen, amount_fen, requested_quantity) SELECT $1, * FROM unnest($2::int[], \
         $3::text[], $4::uuid[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])",
    )
    .bind(order.as_uuid())
    .bind(&n)
    .bind(&c)
    .bind(&m)
    .bind(&q)
    .bind(&p)
    .bind(&a)
    .bind(&r)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE orders SET total_amount_fen = $2 WHERE id = $1")
        .bind(order.as_uuid())
        .bind(total.fen())
        .execute(conn)
        .await?;
    Ok(())
}
