//! Monitoring of hospitals, computed on read from the projections: weekly
//! progress against time progress, the monthly reminders and quarterly
//! notices generated as work items, their `.xlsx` export, and the annual
//! assessment figures.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::PgConnection;
use vbp_bus::{Context, RpcError};
use vbp_contracts::agreements::PeriodId;
use vbp_contracts::files::ExportedFile;
use vbp_contracts::page::Window;
use vbp_contracts::supervision::*;
use vbp_kernel::{Actor, Money, OrgId, OrgKind, beijing_midnight};
use vbp_platform::sheets::{self, Cell, Column, col};

use crate::api::*;
use crate::domain::{
    Term, bp, date_of, region_from_i32, time_progress_bp, week_bounds, year_bounds,
};

/// Hospitals see their own figures; bureaus their region; the operator all.
fn monitor_reader(a: &Actor) -> R<()> {
    match a.org_kind {
        OrgKind::Hospital | OrgKind::Bureau | OrgKind::Operator => Ok(()),
        k => Err(RpcError::forbidden(format!(
            "hospital progress and assessment are for hospitals, bureaus and the operator (you act for a {k})"
        ))),
    }
}

/// One hospital × period at an instant.
struct Progress {
    period: uuid::Uuid,
    hospital: uuid::Uuid,
    region: i32,
    name: String,
    agreed_q: i64,
    agreed_amt: i64,
    accepted_q: i64,
    accepted_amt: i64,
    progress_bp: i64,
    time_bp: i64,
}

/// Progress of every hospital × period in scope whose period overlaps
/// `[from, as_of)`, counting acceptances before `as_of`.
async fn progress(
    conn: &mut PgConnection,
    a: &Actor,
    from: DateTime<Utc>,
    as_of: DateTime<Utc>,
    period: Option<uuid::Uuid>,
) -> R<Vec<Progress>> {
    let s = Scope::of(a);
    let sql = format!(
        "WITH agreed AS ( \
           SELECT l.period, l.hospital, max(l.hospital_region) AS hospital_region, \
                  sum(l.quantity)::bigint AS q, sum(l.amount_fen)::bigint AS amt \
           FROM agreed_lines l JOIN periods p ON p.id = l.period \
           WHERE p.starts_at < $6 AND p.ends_at > $5 AND ($7::uuid IS NULL OR l.period = $7) \
           GROUP BY 1, 2), \
         acc AS ( \
           SELECT period, hospital, sum(quantity)::bigint AS q, sum(amount_fen)::bigint AS amt \
           FROM accepted_lines WHERE accepted_at < $6 GROUP BY 1, 2) \
         SELECT g.period, g.hospital, g.hospital_region, coalesce(o.name, '') AS name, g.q, g.amt, \
                coalesce(c.q, 0)::bigint AS cq, coalesce(c.amt, 0)::bigint AS camt, \
                p.starts_at, p.ends_at \
         FROM (SELECT *, hospital_region AS scope_region, hospital AS scope_hospital, \
               NULL::uuid AS scope_enterprise FROM agreed) g \
         JOIN periods p ON p.id = g.period \
         LEFT JOIN acc c ON c.period = g.period AND c.hospital = g.hospital \
         LEFT JOIN orgs o ON o.id = g.hospital \
         WHERE {SCOPE} ORDER BY g.hospital_region, name, g.hospital, p.starts_at"
    );
    #[allow(clippy::type_complexity)]
    let rows: Vec<(
        uuid::Uuid,
        uuid::Uuid,
        i32,
        String,
        i64,
        i64,
        i64,
        i64,
        DateTime<Utc>,
        DateTime<Utc>,
    )> = s
        .query_as(sql)
        .bind(from)
        .bind(as_of)
        .bind(period)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Progress {
            period: r.0,
            hospital: r.1,
            region: r.2,
            name: r.3,
            agreed_q: r.4,
            agreed_amt: r.5,
            accepted_q: r.6,
            accepted_amt: r.7,
            progress_bp: bp(r.6, r.4).unwrap_or(0),
            time_bp: time_progress_bp(r.8, r.9, as_of),
        })
        .collect())
}

pub async fn progress_weekly(
    svc: Shared,
    ctx: Context,
    req: WeeklyProgressQuery,
) -> R<WeeklyProgress> {
    let a = actor(&ctx)?;
    monitor_reader(a)?;
    let now = svc.clock.now();
    let day = req.week_of.unwrap_or_else(|| date_of(now));
    let (start, end) = week_bounds(day);
    if start > now {
        return Err(RpcError::invalid(
            "week_of",
            format!("week_of {day} is a week that has not begun"),
        ));
    }
    let as_of = end.min(now);
    let mut conn = svc.pool.acquire().await?;
    let rows = progress(&mut conn, a, start, as_of, req.period.map(|p| p.as_uuid())).await?;
    let st = &svc.settings;
    let out = match req.by {
        ProgressGrouping::Hospital => rows
            .into_iter()
            .map(|p| {
                let slow = st.is_slow(p.progress_bp, p.time_bp);
                WeeklyProgressRow {
                    key: p.hospital.to_string(),
                    name: p.name,
                    region: region_from_i32(p.region),
                    period: PeriodId::from_uuid(p.period),
                    hospitals: 1,
                    slow_hospitals: i64::from(slow),
                    agreed_quantity: p.agreed_q,
                    accepted_quantity: p.accepted_q,
                    agreed_amount_fen: Money::from_fen(p.agreed_amt),
                    accepted_amount_fen: Money::from_fen(p.accepted_amt),
                    progress_bp: p.progress_bp,
                    time_progress_bp: p.time_bp,
                    slow,
                }
            })
            .collect(),
        ProgressGrouping::Region => {
            let mut by: BTreeMap<(i32, uuid::Uuid), WeeklyProgressRow> = BTreeMap::new();
            for p in rows {
                let slow = st.is_slow(p.progress_bp, p.time_bp);
                let region = region_from_i32(p.region);
                let r = by
                    .entry((p.region, p.period))
                    .or_insert_with(|| WeeklyProgressRow {
                        key: region.to_string(),
                        name: String::new(),
                        region,
                        period: PeriodId::from_uuid(p.period),
                        hospitals: 0,
                        slow_hospitals: 0,
                        agreed_quantity: 0,
                        accepted_quantity: 0,
                        agreed_amount_fen: Money::ZERO,
                        accepted_amount_fen: Money::ZERO,
                        progress_bp: 0,
                        time_progress_bp: p.time_bp,
                        slow: false,
                    });
                r.hospitals += 1;
                r.slow_hospitals += i64::from(slow);
                r.agreed_quantity += p.agreed_q;
                r.accepted_quantity += p.accepted_q;
                r.agreed_amount_fen = Money::from_fen(r.agreed_amount_fen.fen() + p.agreed_amt);
                r.accepted_amount_fen =
                    Money::from_fen(r.accepted_amount_fen.fen() + p.accepted_amt);
            }
            let names: BTreeMap<i32, String> = sqlx::query_as::<_, (i32, String)>(
                "SELECT region, min(name) FROM orgs WHERE kind = 'bureau' GROUP BY region",
            )
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
            by.into_iter()
                .map(|((region, _), mut r)| {
                    r.progress_bp = bp(r.accepted_quantity, r.agreed_quantity).unwrap_or(0);
                    r.slow = st.is_slow(r.progress_bp, r.time_progress_bp);
                    r.name = names.get(&region).cloned().unwrap_or_default();
                    r
                })
                .collect()
        }
    };
    Ok(WeeklyProgress {
        week_start: crate::domain::week_start(day),
        as_of,
        by: req.by,
        rows: out,
    })
}

/// Online and offline purchase amounts per hospital in `[from, to)`.
async fn purchases(
    conn: &mut PgConnection,
    a: &Actor,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> R<Vec<(uuid::Uuid, i32, i64, i64)>> {
    let s = Scope::of(a);
    let sql = format!(
        "SELECT hospital, max(hospital_region), sum(online)::bigint, sum(offline)::bigint FROM ( \
           SELECT hospital, hospital_region, amount_fen AS online, 0 AS offline FROM accepted_lines \
            WHERE accepted_at >= $5 AND accepted_at < $6 \
           UNION ALL \
           SELECT hospital, hospital_region, 0, amount_fen FROM offline_purchases \
            WHERE month >= $7 AND month < $8 \
         ) t0 CROSS JOIN LATERAL (SELECT t0.hospital_region AS scope_region, \
               t0.hospital AS scope_hospital, NULL::uuid AS scope_enterprise) sc \
         WHERE {SCOPE} GROUP BY hospital ORDER BY hospital"
    );
    Ok(s.query_as(sql)
        .bind(from)
        .bind(to)
        .bind(date_of(from))
        .bind(date_of(to))
        .fetch_all(conn)
        .await?)
}

/// A work item before it is stored.
struct Candidate {
    reason: WorkItemReason,
    hospital: uuid::Uuid,
    region: i32,
    measured: Option<i64>,
    threshold: Option<i64>,
    detail: String,
}

fn slow_candidates(svc: &Svc, rows: &[Progress], out: &mut Vec<Candidate>) {
    let mut seen = std::collections::HashSet::new();
    for p in rows {
        if svc.settings.is_slow(p.progress_bp, p.time_bp) && seen.insert(p.hospital) {
            let parts: Vec<String> = rows
                .iter()
                .filter(|q| {
                    q.hospital == p.hospital && svc.settings.is_slow(q.progress_bp, q.time_bp)
                })
                .map(|q| {
                    format!(
                        "period {}: accepted {} of agreed {} ({} bp) below time progress {} bp",
                        q.period, q.accepted_q, q.agreed_q, q.progress_bp, q.time_bp
                    )
                })
                .collect();
            out.push(Candidate {
                reason: WorkItemReason::SlowProgress,
                hospital: p.hospital,
                region: p.region,
                measured: Some(p.progress_bp),
                threshold: Some(p.time_bp),
                detail: parts.join("; "),
            });
        }
    }
}

async fn online_candidates(
    svc: &Svc,
    conn: &mut PgConnection,
    a: &Actor,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    out: &mut Vec<Candidate>,
) -> R<()> {
    let min = svc.settings.online_rate_min_bp;
    for (hospital, region, online, offline) in purchases(conn, a, from, to).await? {
        if let Some(rate) = bp(online, online + offline)
            && rate < min
        {
            out.push(Candidate {
                reason: WorkItemReason::LowOnlineRate,
                hospital,
                region,
                measured: Some(rate),
                threshold: Some(min),
                detail: format!(
                    "online {} of {} fen purchased ({rate} bp), below {min} bp",
                    online,
                    online + offline
                ),
            });
        }
    }
    Ok(())
}

pub async fn work_items_generate(
    svc: Shared,
    ctx: Context,
    req: GenerateWorkItems,
) -> R<WorkItemList> {
    let a = actor(&ctx)?;
    supervisor(a, "generate reminders and notices")?;
    let term = match req.kind {
        WorkItemKind::MonthlyReminder => {
            let m = req.month.ok_or_else(|| {
                RpcError::invalid("month", "month (1 to 12) is required for monthly reminders")
            })?;
            Term::month(req.year, m).ok_or_else(|| {
                RpcError::invalid("month", "month must be 1 to 12 and year 2000 to 2100")
            })?
        }
        WorkItemKind::QuarterlyNotice => {
            let q = req.quarter.ok_or_else(|| {
                RpcError::invalid(
                    "quarter",
                    "quarter (1 to 4) is required for quarterly notices",
                )
            })?;
            Term::quarter(req.year, q).ok_or_else(|| {
                RpcError::invalid("quarter", "quarter must be 1 to 4 and year 2000 to 2100")
            })?
        }
    };
    if term.bounds().0 > svc.clock.now() {
        return Err(RpcError::invalid(
            if req.month.is_some() {
                "month"
            } else {
                "quarter"
            },
            format!("{} has not begun", term.label()),
        ));
    }
    let mut tx = svc.pool.begin().await?;
    let items = generate(&mut tx, &svc, &ctx, a, req.kind, term).await?;
    tx.commit().await?;
    Ok(WorkItemList { items })
}

/// Generates the items of `term` in `a`'s scope, announcing each new one;
/// answers every item of the term in scope.
pub async fn generate(
    conn: &mut PgConnection,
    svc: &Svc,
    ctx: &Context,
    a: &Actor,
    kind: WorkItemKind,
    term: Term,
) -> R<Vec<WorkItemView>> {
    let now = svc.clock.now();
    let (from, to) = term.bounds();
    let as_of = to.min(now);
    let rows = progress(conn, a, from, as_of, None).await?;
    let mut found = Vec::new();
    slow_candidates(svc, &rows, &mut found);
    online_candidates(svc, conn, a, from, as_of, &mut found).await?;
    if kind == WorkItemKind::QuarterlyNotice {
        quarterly_candidates(svc, conn, a, &rows, from, as_of, &mut found).await?;
    }
    let label = term.label();
    let kind_text = enum_str(kind);
    for c in found {
        let id = WorkItemId::new();
        let created: Option<uuid::Uuid> = sqlx::query_scalar(
            "INSERT INTO work_items (id, kind, reason, hospital, hospital_region, term, \
             measured_bp, threshold_bp, detail, generated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) \
             ON CONFLICT (kind, reason, hospital, term) DO NOTHING RETURNING id",
        )
        .bind(id.as_uuid())
        .bind(&kind_text)
        .bind(enum_str(c.reason))
        .bind(c.hospital)
        .bind(c.region)
        .bind(&label)
        .bind(c.measured)
        .bind(c.threshold)
        .bind(&c.detail)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        if created.is_some() {
            svc.outbox
                .append(
                    conn,
                    ctx,
                    &WorkItemGenerated {
                        item: id,
                        kind,
                        reason: c.reason,
                        hospital: OrgId::from_uuid(c.hospital),
                        hospital_region: region_from_i32(c.region),
                        term: label.clone(),
                        detail: c.detail,
                        generated_at: now,
                    },
                )
                .await
                .map_err(|e| RpcError::internal(e.to_string()))?;
        }
    }
    Ok(list(conn, a, Some(kind), Some(&label), None).await?.0)
}

/// Payload of the calendar timer: the month (first day) that has begun.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MonthBegun {
    pub month: NaiveDate,
}

/// The first day of the month after `day`.
pub fn next_month(day: NaiveDate) -> NaiveDate {
    let (y, m) = if day.month() == 12 {
        (day.year() + 1, 1)
    } else {
        (day.year(), day.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).expect("the first of a month exists")
}

/// Arms the calendar timer for the next month's start unless it is armed
/// (or was fired and re-armed) already.
pub async fn arm_calendar(pool: &sqlx::PgPool, now: DateTime<Utc>) -> anyhow::Result<()> {
    let month = next_month(date_of(now));
    sqlx::query(
        "INSERT INTO timers (kind, key, due_at, payload) VALUES ($1, 'calendar', $2, $3) \
         ON CONFLICT (kind, key) DO NOTHING",
    )
    .bind(CALENDAR_TIMER)
    .bind(beijing_midnight(month))
    .bind(sqlx::types::Json(MonthBegun { month }))
    .execute(pool)
    .await?;
    Ok(())
}

/// At each Beijing month start: the previous month's reminders and, at a
/// quarter's start, the previous quarter's notices, for the whole
/// deployment; then the next month is armed. A timer that fires late (the
/// service was down) catches up one month per firing.
pub struct Calendar(pub Shared);

#[async_trait::async_trait]
impl vbp_bus::timers::TimerHandler for Calendar {
    async fn fire(
        &self,
        conn: &mut PgConnection,
        timer: &vbp_bus::timers::DueTimer,
    ) -> Result<(), vbp_bus::HandlerError> {
        let svc = &self.0;
        if !svc.settings.auto_generate {
            return Ok(());
        }
        let begun: MonthBegun = timer.payload()?;
        let a = Actor::system("supervision-calendar");
        let ctx = Context::with_correlation(vbp_kernel::CorrelationId::new(), Some(a.clone()));
        let fail = |e: RpcError| vbp_bus::HandlerError::transient(e.to_string());
        let last = begun.month - chrono::Duration::days(1);
        if let Some(term) = Term::month(last.year(), last.month()) {
            generate(conn, svc, &ctx, &a, WorkItemKind::MonthlyReminder, term)
                .await
                .map_err(fail)?;
        }
        if begun.month.month() % 3 == 1
            && let Some(term) = Term::quarter(last.year(), (last.month() - 1) / 3 + 1)
        {
            generate(conn, svc, &ctx, &a, WorkItemKind::QuarterlyNotice, term)
                .await
                .map_err(fail)?;
        }
        let next = next_month(begun.month);
        vbp_bus::timers::schedule(
            conn,
            CALENDAR_TIMER,
            "calendar",
            beijing_midnight(next),
            None,
            &MonthBegun { month: next },
        )
        .await
        .map_err(|e| vbp_bus::HandlerError::transient(e.to_string()))?;
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
async fn quarterly_candidates(
    svc: &Svc,
    conn: &mut PgConnection,
    a: &Actor,
    rows: &[Progress],
    from: DateTime<Utc>,
    as_of: DateTime<Utc>,
    out: &mut Vec<Candidate>,
) -> R<()> {
    let st = &svc.settings;
    let s = Scope::of(a);
    // Not participating: an active hospital with no agreed volume in any
    // period running in the quarter.
    let sql = format!(
        "SELECT o.id, o.region FROM (SELECT *, region AS scope_region, id AS scope_hospital, \
           NULL::uuid AS scope_enterprise FROM orgs) o \
         WHERE o.kind = 'hospital' AND o.active AND {SCOPE} \
         AND EXISTS (SELECT 1 FROM periods p WHERE p.starts_at < $6 AND p.ends_at > $5) \
         AND NOT EXISTS (SELECT 1 FROM agreed_lines l JOIN periods p ON p.id = l.period \
             WHERE l.hospital = o.id AND p.starts_at < $6 AND p.ends_at > $5) \
         ORDER BY o.id"
    );
    let absent: Vec<(uuid::Uuid, i32)> = s
        .query_as(sql)
        .bind(from)
        .bind(as_of)
        .fetch_all(&mut *conn)
        .await?;
    for (hospital, region) in absent {
        out.push(Candidate {
            reason: WorkItemReason::NotParticipating,
            hospital,
            region,
            measured: None,
            threshold: None,
            detail: "no agreed volume in any period running this quarter".to_owned(),
        });
    }
    // False volume report: a flag from the agreements service in the
    // quarter, or progress far below time progress (报而不用).
    let sql = format!(
        "SELECT f.hospital, max(f.hospital_region), string_agg(f.kind || ': ' || f.detail, '; ' \
           ORDER BY f.raised_at) \
         FROM (SELECT *, hospital_region AS scope_region, hospital AS scope_hospital, \
               NULL::uuid AS scope_enterprise FROM flags) f \
         WHERE f.kind IN ('reported_not_used', 'used_not_reported') \
         AND f.raised_at >= $5 AND f.raised_at < $6 AND {SCOPE} GROUP BY f.hospital"
    );
    let flagged: Vec<(uuid::Uuid, i32, String)> = s
        .query_as(sql)
        .bind(from)
        .bind(as_of)
        .fetch_all(&mut *conn)
        .await?;
    let mut falsely = std::collections::HashSet::new();
    for (hospital, region, detail) in flagged {
        falsely.insert(hospital);
        out.push(Candidate {
            reason: WorkItemReason::FalseVolumeReport,
            hospital,
            region,
            measured: None,
            threshold: None,
            detail,
        });
    }
    for p in rows {
        if st.is_false_report(p.progress_bp, p.time_bp) && falsely.insert(p.hospital) {
            out.push(Candidate {
                reason: WorkItemReason::FalseVolumeReport,
                hospital: p.hospital,
                region: p.region,
                measured: Some(p.progress_bp),
                threshold: Some(p.time_bp * st.false_report_progress_share_bp / 10_000),
                detail: format!(
                    "period {}: reported and agreed {}, accepted {} ({} bp), under {} bp of time progress {} bp",
                    p.period,
                    p.agreed_q,
                    p.accepted_q,
                    p.progress_bp,
                    st.false_report_progress_share_bp,
                    p.time_bp
                ),
            });
        }
    }
    // Low settlement rate: of what fell due in the quarter, the share paid.
    let min = st.settlement_rate_min_bp;
    for (hospital, region, due, paid, _) in settlement(conn, a, from, as_of).await? {
        if let Some(rate) = bp(paid.min(due), due)
            && rate < min
        {
            out.push(Candidate {
                reason: WorkItemReason::LowSettlementRate,
                hospital,
                region,
                measured: Some(rate),
                threshold: Some(min),
                detail: format!("paid {paid} of {due} fen due ({rate} bp), below {min} bp"),
            });
        }
    }
    Ok(())
}

/// Per hospital: amount accepted with a payment deadline in `[from, to)`,
/// the part of it paid, and the part paid by the deadline.
async fn settlement(
    conn: &mut PgConnection,
    a: &Actor,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> R<Vec<(uuid::Uuid, i32, i64, i64, i64)>> {
    let s = Scope::of(a);
    let sql = format!(
        "WITH due AS ( \
           SELECT acceptance, max(hospital::text)::uuid AS hospital, \
                  max(hospital_region) AS hospital_region, sum(amount_fen)::bigint AS amt \
           FROM accepted_lines WHERE payment_due_at >= $5 AND payment_due_at < $6 \
           GROUP BY acceptance), \
         paid AS ( \
           SELECT acceptance, sum(amount_fen)::bigint AS amt, \
                  sum(amount_fen) FILTER (WHERE on_time)::bigint AS timely \
           FROM settlements WHERE acceptance IS NOT NULL GROUP BY acceptance) \
         SELECT d.hospital, max(d.hospital_region), sum(d.amt)::bigint, \
                sum(LEAST(coalesce(p.amt, 0), d.amt))::bigint, \
                sum(LEAST(coalesce(p.timely, 0), d.amt))::bigint \
         FROM (SELECT *, hospital_region AS scope_region, hospital AS scope_hospital, \
               NULL::uuid AS scope_enterprise FROM due) d \
         LEFT JOIN paid p ON p.acceptance = d.acceptance \
         WHERE {SCOPE} GROUP BY d.hospital ORDER BY d.hospital"
    );
    Ok(s.query_as(sql).bind(from).bind(to).fetch_all(conn).await?)
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: uuid::Uuid,
    kind: String,
    reason: String,
    hospital: uuid::Uuid,
    hospital_name: Option<String>,
    hospital_region: i32,
    term: String,
    measured_bp: Option<i64>,
    threshold_bp: Option<i64>,
    detail: String,
    generated_at: DateTime<Utc>,
}

async fn list(
    conn: &mut PgConnection,
    a: &Actor,
    kind: Option<WorkItemKind>,
    term: Option<&str>,
    page: Option<&Window>,
) -> R<(Vec<WorkItemView>, i64)> {
    let s = Scope::of(a);
    let from = format!(
        "FROM (SELECT *, hospital_region AS scope_region, hospital AS scope_hospital, \
               NULL::uuid AS scope_enterprise FROM work_items) w \
         LEFT JOIN orgs o ON o.id = w.hospital \
         WHERE {SCOPE} AND ($5::text IS NULL OR w.kind = $5) AND ($6::text IS NULL OR w.term = $6)"
    );
    // LIMIT NULL is no limit: generation and export answer the whole term.
    let rows: Vec<ItemRow> = s
        .query_as(format!(
            "SELECT w.id, w.kind, w.reason, w.hospital, o.name AS hospital_name, \
             w.hospital_region, w.term, w.measured_bp, w.threshold_bp, w.detail, w.generated_at \
             {from} ORDER BY w.term, w.kind, w.hospital_region, w.hospital, w.reason, w.id \
             LIMIT $7 OFFSET $8"
        ))
        .bind(kind.map(enum_str))
        .bind(term)
        .bind(page.map(Window::limit))
        .bind(page.map_or(0, Window::offset))
        .fetch_all(&mut *conn)
        .await?;
    let total = match page {
        None => rows.len() as i64,
        Some(_) => {
            s.query_as::<(i64,)>(format!("SELECT count(*) {from}"))
                .bind(kind.map(enum_str))
                .bind(term)
                .fetch_one(&mut *conn)
                .await?
                .0
        }
    };
    let items = rows
        .into_iter()
        .map(|r| {
            Ok(WorkItemView {
                item: WorkItemId::from_uuid(r.id),
                kind: enum_of(&r.kind)?,
                reason: enum_of(&r.reason)?,
                hospital: OrgId::from_uuid(r.hospital),
                hospital_name: r.hospital_name.unwrap_or_default(),
                hospital_region: region_from_i32(r.hospital_region),
                term: r.term,
                measured_bp: r.measured_bp,
                threshold_bp: r.threshold_bp,
                detail: r.detail,
                generated_at: r.generated_at,
            })
        })
        .collect::<R<Vec<_>>>()?;
    Ok((items, total))
}

fn parse_term(field: &str, s: &str) -> R<Term> {
    Term::parse(s).ok_or_else(|| {
        RpcError::invalid(
            field,
            format!("{field} must be a month like 2026-03 or a quarter like 2026Q1 (got {s:?})"),
        )
    })
}

pub async fn work_items_list(
    svc: Shared,
    ctx: Context,
    req: ListWorkItems,
) -> R<Page<WorkItemView>> {
    let a = actor(&ctx)?;
    monitor_reader(a)?;
    let w = Window::new(req.page, req.page_size)?;
    let term = match &req.term {
        Some(t) => Some(parse_term("term", t)?.label()),
        None => None,
    };
    let mut conn = svc.pool.acquire().await?;
    let (items, total) = list(&mut conn, a, req.kind, term.as_deref(), Some(&w)).await?;
    Ok(w.page(items, total))
}

const ITEM_SHEET: [Column; 9] = [
    col("期间 term", 10.0),
    col("类型 kind", 16.0),
    col("事由 reason", 20.0),
    col("地区 region", 8.0),
    col("医疗机构 hospital", 38.0),
    col("名称 name", 28.0),
    col("实际 measured (bp)", 12.0),
    col("标准 threshold (bp)", 12.0),
    col("说明 detail", 60.0),
];

pub async fn work_items_export(svc: Shared, ctx: Context, req: ExportWorkItems) -> R<ExportedFile> {
    let a = actor(&ctx)?;
    monitor_reader(a)?;
    let term = parse_term("term", &req.term)?.label();
    let mut conn = svc.pool.acquire().await?;
    let (items, _) = list(&mut conn, a, None, Some(&term), None).await?;
    let opt = |v: Option<i64>| v.map_or(Cell::Empty, Cell::Int);
    let rows = items
        .into_iter()
        .map(|i| {
            vec![
                i.term.into(),
                enum_str(i.kind).into(),
                enum_str(i.reason).into(),
                i.hospital_region.to_string().into(),
                i.hospital.to_string().into(),
                i.hospital_name.into(),
                opt(i.measured_bp),
                opt(i.threshold_bp),
                i.detail.into(),
            ]
        })
        .collect();
    sheets::xlsx_export(
        format!("supervision_{term}.xlsx"),
        "督办事项",
        &ITEM_SHEET,
        rows,
        svc.settings.max_export_bytes,
        "term",
    )
}

pub async fn assessment(
    svc: Shared,
    ctx: Context,
    req: AnnualAssessmentQuery,
) -> R<AnnualAssessment> {
    let a = actor(&ctx)?;
    monitor_reader(a)?;
    let (from, to) = year_bounds(req.year)
        .ok_or_else(|| RpcError::invalid("year", "year must be 2000 to 2100"))?;
    let now = svc.clock.now();
    if from > now {
        return Err(RpcError::invalid(
            "year",
            format!("year {} has not begun", req.year),
        ));
    }
    let as_of = to.min(now);
    let mut conn = svc.pool.acquire().await?;
    #[derive(Default)]
    struct Acc {
        region: i32,
        name: String,
        agreed: i64,
        accepted_total: i64,
        accepted_q: i64,
        accepted_amt: i64,
        offline: i64,
        due: i64,
        paid: i64,
        timely: i64,
        reminders: i64,
        notices: i64,
    }
    let mut by: BTreeMap<uuid::Uuid, Acc> = BTreeMap::new();
    for p in progress(&mut conn, a, from, as_of, None).await? {
        let e = by.entry(p.hospital).or_default();
        e.region = p.region;
        e.name = p.name;
        e.agreed += p.agreed_q;
        e.accepted_total += p.accepted_q;
    }
    let s = Scope::of(a);
    let sql = format!(
        "SELECT l.hospital, max(l.hospital_region), sum(l.quantity)::bigint, \
                sum(l.amount_fen)::bigint \
         FROM (SELECT *, hospital_region AS scope_region, hospital AS scope_hospital, \
               NULL::uuid AS scope_enterprise FROM accepted_lines) l \
         WHERE l.accepted_at >= $5 AND l.accepted_at < $6 AND {SCOPE} GROUP BY l.hospital"
    );
    let accepted: Vec<(uuid::Uuid, i32, i64, i64)> = s
        .query_as(sql)
        .bind(from)
        .bind(as_of)
        .fetch_all(&mut *conn)
        .await?;
    for (h, region, q, amt) in accepted {
        let e = by.entry(h).or_default();
        e.region = region;
        e.accepted_q = q;
        e.accepted_amt = amt;
    }
    for (h, region, _online, offline) in purchases(&mut conn, a, from, as_of).await? {
        let e = by.entry(h).or_default();
        e.region = region;
        e.offline = offline;
    }
    for (h, region, due, paid, timely) in settlement(&mut conn, a, from, as_of).await? {
        let e = by.entry(h).or_default();
        e.region = region;
        e.due = due;
        e.paid = paid;
        e.timely = timely;
    }
    let year = req.year.to_string();
    let sql = format!(
        "SELECT w.hospital, count(*) FILTER (WHERE w.kind = 'monthly_reminder'), \
                count(*) FILTER (WHERE w.kind = 'quarterly_notice') \
         FROM (SELECT *, hospital_region AS scope_region, hospital AS scope_hospital, \
               NULL::uuid AS scope_enterprise FROM work_items) w \
         WHERE left(w.term, 4) = $5 AND {SCOPE} GROUP BY w.hospital"
    );
    let counts: Vec<(uuid::Uuid, i64, i64)> =
        s.query_as(sql).bind(&year).fetch_all(&mut *conn).await?;
    for (h, r, n) in counts {
        if let Some(e) = by.get_mut(&h) {
            e.reminders = r;
            e.notices = n;
        }
    }
    let names: BTreeMap<uuid::Uuid, String> = sqlx::query_as::<_, (uuid::Uuid, String)>(
        "SELECT id, name FROM orgs WHERE kind = 'hospital'",
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let rows = by
        .into_iter()
        .map(|(h, e)| AssessmentRow {
            hospital: OrgId::from_uuid(h),
            name: names.get(&h).cloned().unwrap_or(e.name),
            region: region_from_i32(e.region),
            agreed_quantity: e.agreed,
            accepted_quantity: e.accepted_q,
            accepted_amount_fen: Money::from_fen(e.accepted_amt),
            completion_bp: bp(e.accepted_total, e.agreed).unwrap_or(0),
            offline_amount_fen: Money::from_fen(e.offline),
            online_rate_bp: bp(e.accepted_amt, e.accepted_amt + e.offline),
            due_amount_fen: Money::from_fen(e.due),
            paid_amount_fen: Money::from_fen(e.paid),
            settlement_rate_bp: bp(e.paid, e.due),
            timely_rate_bp: bp(e.timely, e.due),
            reminders: e.reminders,
            notices: e.notices,
        })
        .collect();
    Ok(AnnualAssessment {
        year: req.year,
        rows,
    })
}
