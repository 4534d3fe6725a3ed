//! Credit records of enterprises: filed by a bureau or from detection, a
//! rectification deadline in working days per level, escalation one level
//! up by a durable timer at each missed deadline, rectification or closing
//! by a bureau of the record's region. Every change is in the history.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use vbp_bus::timers::{DueTimer, TimerHandler};
use vbp_bus::{Context, HandlerError, RpcError};
use vbp_contracts::page::Window;
use vbp_contracts::supervision::*;
use vbp_kernel::{Actor, CorrelationId, OrgId, OrgKind, RegionCode};

use crate::api::*;
use crate::domain::{region_from_i32, region_range};

/// Payload of the escalation timer: the record and the deadline it was
/// armed for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Due {
    pub record: CreditRecordId,
    pub due_at: DateTime<Utc>,
}

/// What a new record is.
pub struct NewRecord<'a> {
    pub enterprise: OrgId,
    pub kind: CreditKind,
    pub origin: CreditOrigin,
    pub region: RegionCode,
    pub description: &'a str,
    pub source_events: Vec<uuid::Uuid>,
    pub finding: Option<uuid::Uuid>,
}

fn deadline(svc: &Svc, from: DateTime<Utc>) -> R<DateTime<Utc>> {
    let n = svc.settings.rectify_working_days;
    svc.calendar.deadline(from, n).map_err(|e| {
        RpcError::new(
            422,
            "calendar_year_not_covered",
            format!(
                "supervision.rectify_working_days: cannot count {n} working days from {from}: {e}"
            ),
        )
    })
}

async fn history(
    conn: &mut PgConnection,
    record: uuid::Uuid,
    who: &str,
    action: &str,
    detail: &str,
    at: DateTime<Utc>,
) -> R<()> {
    sqlx::query(
        "INSERT INTO credit_history (record, action, actor, detail, at) VALUES ($1,$2,$3,$4,$5)",
    )
    .bind(record)
    .bind(action)
    .bind(who)
    .bind(detail)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::internal(e.to_string())
}

/// Inserts a record at the first level with its deadline, timer, history
/// and `credit_record.filed` event.
pub async fn insert(
    conn: &mut PgConnection,
    svc: &Svc,
    ctx: &Context,
    who: &str,
    new: NewRecord<'_>,
) -> R<uuid::Uuid> {
    let now = svc.clock.now();
    let due = deadline(svc, now)?;
    let id = CreditRecordId::new();
    sqlx::query(
        "INSERT INTO credit_records (id, enterprise, kind, origin, state, region, description, \
         level, rectify_due_at, source_events, finding, filed_at, updated_at) \
         VALUES ($1,$2,$3,$4,'open',$5,$6,0,$7,$8,$9,$10,$10)",
    )
    .bind(id.as_uuid())
    .bind(new.enterprise.as_uuid())
    .bind(enum_str(new.kind))
    .bind(enum_str(new.origin))
    .bind(new.region.as_u32() as i32)
    .bind(new.description.trim())
    .bind(due)
    .bind(&new.source_events)
    .bind(new.finding)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let level_name = svc.settings.level_name(0);
    history(
        conn,
        id.as_uuid(),
        who,
        "filed",
        &format!("{level_name}; rectify by {due}"),
        now,
    )
    .await?;
    vbp_bus::timers::schedule(
        conn,
        ESCALATE_TIMER,
        &id.to_string(),
        due,
        Some(ctx.correlation),
        &Due {
            record: id,
            due_at: due,
        },
    )
    .await
    .map_err(internal)?;
    svc.outbox
        .append(
            conn,
            ctx,
            &CreditRecordFiled {
                record: id,
                enterprise: new.enterprise,
                kind: new.kind,
                origin: new.origin,
                region: new.region,
                level: 0,
                level_name,
                rectify_due_at: due,
                source_events: event_ids(&new.source_events),
                filed_at: now,
            },
        )
        .await
        .map_err(internal)?;
    Ok(id.as_uuid())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: uuid::Uuid,
    enterprise: uuid::Uuid,
    enterprise_name: Option<String>,
    kind: String,
    origin: String,
    state: String,
    region: i32,
    description: String,
    level: i32,
    rectify_due_at: Option<DateTime<Utc>>,
    source_events: Vec<uuid::Uuid>,
    finding: Option<uuid::Uuid>,
    filed_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
}

const SELECT: &str = "SELECT c.id, c.enterprise, o.name AS enterprise_name, c.kind, c.origin, \
    c.state, c.region, c.description, c.level, c.rectify_due_at, c.source_events, c.finding, \
    c.filed_at, c.resolved_at \
    FROM (SELECT *, region AS scope_region, NULL::uuid AS scope_hospital, \
          enterprise AS scope_enterprise FROM credit_records) c \
    LEFT JOIN orgs o ON o.id = c.enterprise";

async fn view(conn: &mut PgConnection, svc: &Svc, r: Row) -> R<CreditRecordView> {
    let history: Vec<(String, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT action, actor, detail, at FROM credit_history WHERE record = $1 ORDER BY seq",
    )
    .bind(r.id)
    .fetch_all(conn)
    .await?;
    let level = r.level.max(0) as u32;
    Ok(CreditRecordView {
        record: CreditRecordId::from_uuid(r.id),
        enterprise: OrgId::from_uuid(r.enterprise),
        enterprise_name: r.enterprise_name.unwrap_or_default(),
        kind: enum_of(&r.kind)?,
        origin: enum_of(&r.origin)?,
        state: enum_of(&r.state)?,
        region: region_from_i32(r.region),
        description: r.description,
        level,
        level_name: svc.settings.level_name(level),
        rectify_due_at: r.rectify_due_at,
        source_events: event_ids(&r.source_events),
        finding: r.finding.map(FindingId::from_uuid),
        filed_at: r.filed_at,
        resolved_at: r.resolved_at,
        history: history
            .into_iter()
            .map(|(action, actor, detail, at)| CreditHistoryEntry {
                action,
                actor,
                detail,
                at,
            })
            .collect(),
    })
}

async fn scoped(conn: &mut PgConnection, a: &Actor, id: CreditRecordId, lock: bool) -> R<Row> {
    let s = Scope::of(a);
    // The scoped read goes through a subquery `FOR UPDATE` cannot reach,
    // so a write locks the row itself first.
    if lock {
        sqlx::query("SELECT 1 FROM credit_records WHERE id = $1 FOR UPDATE")
            .bind(id.as_uuid())
            .execute(&mut *conn)
            .await?;
    }
    let sql = format!("{SELECT} WHERE {SCOPE} AND c.id = $5");
    s.query_as(sql)
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| RpcError::not_found(format!("credit record {id} does not exist")))
}

pub async fn credit_file(svc: Shared, ctx: Context, req: FileCreditRecord) -> R<CreditRecordView> {
    let a = actor(&ctx)?;
    if a.org_kind != OrgKind::Bureau {
        return Err(RpcError::forbidden(format!(
            "only a bureau may file a credit record (you act for a {})",
            a.org_kind
        )));
    }
    required("description", &req.description, MAX_TEXT)?;
    if req.source_events.len() > 100 {
        return Err(RpcError::invalid(
            "source_events",
            "at most 100 source events per record",
        ));
    }
    let mut tx = svc.pool.begin().await?;
    let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM orgs WHERE id = $1")
        .bind(req.enterprise.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
    match kind.as_deref() {
        Some("manufacturer" | "distributor") => {}
        Some(k) => {
            return Err(RpcError::invalid(
                "enterprise",
                format!(
                    "enterprise {} is a {k}; credit records are for manufacturers and distributors",
                    req.enterprise
                ),
            ));
        }
        None => {
            return Err(RpcError::invalid(
                "enterprise",
                format!("enterprise {} is not in the directory", req.enterprise),
            ));
        }
    }
    let id = insert(
        &mut tx,
        &svc,
        &ctx,
        &a.sub,
        NewRecord {
            enterprise: req.enterprise,
            kind: req.kind,
            origin: CreditOrigin::Bureau,
            region: a.region,
            description: &req.description,
            source_events: req.source_events.iter().map(|e| e.as_uuid()).collect(),
            finding: None,
        },
    )
    .await?;
    let r = scoped(&mut tx, a, CreditRecordId::from_uuid(id), false).await?;
    let v = view(&mut tx, &svc, r).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn credit_get(svc: Shared, ctx: Context, req: GetCreditRecord) -> R<CreditRecordView> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    let r = scoped(&mut conn, a, req.record, false).await?;
    view(&mut conn, &svc, r).await
}

pub async fn credit_list(
    svc: Shared,
    ctx: Context,
    req: ListCreditRecords,
) -> R<Page<CreditRecordView>> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let s = Scope::of(a);
    let filter = format!(
        "WHERE {SCOPE} AND ($5::text IS NULL OR c.state = $5) \
         AND ($6::uuid IS NULL OR c.enterprise = $6)"
    );
    let mut conn = svc.pool.acquire().await?;
    let rows: Vec<Row> = s
        .query_as(format!(
            "{SELECT} {filter} ORDER BY c.filed_at, c.id LIMIT $7 OFFSET $8"
        ))
        .bind(req.state.map(enum_str))
        .bind(req.enterprise.map(|e| e.as_uuid()))
        .bind(w.limit())
        .bind(w.offset())
        .fetch_all(&mut *conn)
        .await?;
    let (total,): (i64,) = s
        .query_as(format!("SELECT count(*) FROM ({SELECT} {filter}) q"))
        .bind(req.state.map(enum_str))
        .bind(req.enterprise.map(|e| e.as_uuid()))
        .fetch_one(&mut *conn)
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        items.push(view(&mut conn, &svc, r).await?);
    }
    Ok(w.page(items, total))
}

/// Locks an open record the bureau may act on.
async fn open_for_bureau(
    conn: &mut PgConnection,
    a: &Actor,
    id: CreditRecordId,
    what: &str,
) -> R<Row> {
    if a.org_kind != OrgKind::Bureau {
        return Err(RpcError::forbidden(format!(
            "only a bureau of the record's region may {what} a credit record (you act for a {})",
            a.org_kind
        )));
    }
    let r = scoped(conn, a, id, true).await?;
    let (lo, hi) = region_range(a.region);
    if !(lo..=hi).contains(&r.region) {
        return Err(RpcError::not_found(format!(
            "credit record {id} does not exist"
        )));
    }
    if r.state != "open" {
        return Err(RpcError::conflict(
            "invalid_transition",
            format!(
                "credit record {id} is {}; only an open record can be {what}d",
                r.state
            ),
        ));
    }
    Ok(r)
}

/// Ends an open record as `state` (rectified or closed): no deadline, no
/// more escalation, and its history says who ended it and why.
async fn resolve(
    conn: &mut PgConnection,
    a: &Actor,
    id: uuid::Uuid,
    state: &str,
    why: &str,
    now: DateTime<Utc>,
) -> R<()> {
    sqlx::query(
        "UPDATE credit_records SET state = $3, rectify_due_at = NULL, resolved_at = $2, \
         updated_at = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(state)
    .execute(&mut *conn)
    .await?;
    history(conn, id, &a.sub, state, why, now).await?;
    vbp_bus::timers::cancel(conn, ESCALATE_TIMER, &id.to_string())
        .await
        .map_err(internal)?;
    Ok(())
}

pub async fn credit_rectify(
    svc: Shared,
    ctx: Context,
    req: RectifyCreditRecord,
) -> R<CreditRecordView> {
    let a = actor(&ctx)?;
    required("note", &req.note, MAX_TEXT)?;
    let now = svc.clock.now();
    let mut tx = svc.pool.begin().await?;
    let r = open_for_bureau(&mut tx, a, req.record, "rectify").await?;
    resolve(&mut tx, a, r.id, "rectified", req.note.trim(), now).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &CreditRecordRectified {
                record: req.record,
                enterprise: OrgId::from_uuid(r.enterprise),
                region: region_from_i32(r.region),
                level: r.level.max(0) as u32,
                note: req.note.trim().to_owned(),
                rectified_at: now,
            },
        )
        .await
        .map_err(internal)?;
    let r = scoped(&mut tx, a, req.record, false).await?;
    let v = view(&mut tx, &svc, r).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn credit_close(
    svc: Shared,
    ctx: Context,
    req: CloseCreditRecord,
) -> R<CreditRecordView> {
    let a = actor(&ctx)?;
    required("reason", &req.reason, MAX_TEXT)?;
    let now = svc.clock.now();
    let mut tx = svc.pool.begin().await?;
    let r = open_for_bureau(&mut tx, a, req.record, "close").await?;
    resolve(&mut tx, a, r.id, "closed", req.reason.trim(), now).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &CreditRecordClosed {
                record: req.record,
                enterprise: OrgId::from_uuid(r.enterprise),
                region: region_from_i32(r.region),
                reason: req.reason.trim().to_owned(),
                closed_at: now,
            },
        )
        .await
        .map_err(internal)?;
    let r = scoped(&mut tx, a, req.record, false).await?;
    let v = view(&mut tx, &svc, r).await?;
    tx.commit().await?;
    Ok(v)
}

/// A missed rectification deadline: one level up, and a new deadline
/// unless that is the last level.
pub struct Escalate(pub Shared);

#[async_trait]
impl TimerHandler for Escalate {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        let svc = &self.0;
        let due: Due = timer.payload()?;
        let now = svc.clock.now();
        let row: Option<(String, i32, Option<DateTime<Utc>>, uuid::Uuid, i32)> = sqlx::query_as(
            "SELECT state, level, rectify_due_at, enterprise, region FROM credit_records \
             WHERE id = $1 FOR UPDATE",
        )
        .bind(due.record.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
        let Some((state, level, rectify_due_at, enterprise, region)) = row else {
            return Ok(());
        };
        if state != "open" || rectify_due_at != Some(due.due_at) {
            return Ok(());
        }
        let from = level.max(0) as u32;
        // At the last level a missed deadline is recorded and nothing is
        // armed again.
        let to = (from + 1).min(svc.settings.last_level());
        let next = if to < svc.settings.last_level() {
            Some(deadline(svc, now).map_err(|e| HandlerError::permanent(e.to_string()))?)
        } else {
            None
        };
        sqlx::query(
            "UPDATE credit_records SET level = $2, rectify_due_at = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(due.record.as_uuid())
        .bind(to as i32)
        .bind(next)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let level_name = svc.settings.level_name(to);
        let detail = match next {
            Some(n) => format!(
                "not rectified by {}: {level_name}; rectify by {n}",
                due.due_at
            ),
            None => format!("not rectified by {}: {level_name}", due.due_at),
        };
        history(
            conn,
            due.record.as_uuid(),
            "system:supervision-credit-deadline",
            "escalated",
            &detail,
            now,
        )
        .await
        .map_err(|e| HandlerError::transient(e.to_string()))?;
        let ctx = Context::with_correlation(
            timer.correlation.unwrap_or_else(CorrelationId::new),
            Some(Actor::system("supervision-credit-deadline")),
        );
        if let Some(n) = next {
            vbp_bus::timers::schedule(
                conn,
                ESCALATE_TIMER,
                &due.record.to_string(),
                n,
                Some(ctx.correlation),
                &Due {
                    record: due.record,
                    due_at: n,
                },
            )
            .await
            .map_err(|e| HandlerError::transient(e.to_string()))?;
        }
        svc.outbox
            .append(
                conn,
                &ctx,
                &CreditRecordEscalated {
                    record: due.record,
                    enterprise: OrgId::from_uuid(enterprise),
                    region: region_from_i32(region),
                    from_level: from,
                    level: to,
                    level_name,
                    rectify_due_at: next,
                    escalated_at: now,
                },
            )
            .await
            .map_err(|e| HandlerError::transient(e.to_string()))?;
        Ok(())
    }
}
