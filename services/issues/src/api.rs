//! RPC handlers and the transitions shared with the timers. Each one checks
//! who acts, validates, and commits its state change, audit row, timers and
//! outbox events in one transaction; on any error nothing changes.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use vbp_bus::{Context, Outbox, RpcError};
use vbp_contracts::issues::*;
use vbp_kernel::{
    Actor, BusinessCalendar, NationalCode, OrgId, OrgKind, RegionCode, RegionLevel, SharedClock,
};

use crate::domain::{self, Settings, region_from_i32, region_range};

pub const ENTERPRISE_TIMER: &str = "issues.enterprise_due";
pub const HANDLING_TIMER: &str = "issues.handling_due";
pub const RESOLVE_TIMER: &str = "issues.auto_resolve";

/// What every handler needs.
pub struct Svc {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub clock: SharedClock,
    pub calendar: Arc<BusinessCalendar>,
    pub settings: Settings,
}

pub type Shared = Arc<Svc>;

type R<T> = Result<T, RpcError>;

/// Payload of every issue timer: which issue, and the due instant it was
/// armed for (a moved deadline makes an older firing stale).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Due {
    pub issue: IssueId,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub id: uuid::Uuid,
    pub state: String,
    pub hospital: uuid::Uuid,
    pub hospital_region: i32,
    pub national_code: String,
    pub product_name: String,
    pub spec: String,
    pub quantity: i64,
    pub issue_type: String,
    pub occurred_at: DateTime<Utc>,
    pub impact_scope: String,
    pub statement: String,
    pub manufacturer: uuid::Uuid,
    pub distributors: Vec<uuid::Uuid>,
    pub bureau: uuid::Uuid,
    pub bureau_region: i32,
    pub filed_at: DateTime<Utc>,
    pub enterprise_due_at: DateTime<Utc>,
    pub responded_at: Option<DateTime<Utc>>,
    pub response_on_time: Option<bool>,
    pub handling_due_at: Option<DateTime<Utc>>,
    pub province: Option<uuid::Uuid>,
    pub province_region: Option<i32>,
    pub feedback_at: Option<DateTime<Utc>>,
    pub auto_resolve_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub overdue_enterprise: bool,
    pub overdue_bureau: bool,
    pub overdue_province: bool,
}

fn enum_str<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn enum_of<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .expect("stored enum values come from serialising the same enum")
}

impl Row {
    pub fn issue(&self) -> IssueId {
        IssueId::from_uuid(self.id)
    }
    pub fn state(&self) -> IssueState {
        enum_of(&self.state)
    }
    pub fn issue_type(&self) -> IssueType {
        enum_of(&self.issue_type)
    }
    fn recipients(&self) -> Vec<Recipient> {
        let mut r = vec![Recipient {
            org: OrgId::from_uuid(self.manufacturer),
            role: RecipientRole::Manufacturer,
        }];
        r.extend(self.distributors.iter().map(|d| Recipient {
            org: OrgId::from_uuid(*d),
            role: RecipientRole::Distributor,
        }));
        r.push(Recipient {
            org: OrgId::from_uuid(self.bureau),
            role: RecipientRole::Bureau,
        });
        r
    }
    fn is_enterprise(&self, org: OrgId) -> bool {
        let o = org.as_uuid();
        self.manufacturer == o || self.distributors.contains(&o)
    }
    /// What an actor may see: operator all; a bureau its region subtree
    /// (and what it handles); a hospital its own; an enterprise what was
    /// dispatched to it.
    pub fn visible_to(&self, a: &Actor) -> bool {
        match a.org_kind {
            OrgKind::Operator => true,
            OrgKind::Bureau => {
                let (lo, hi) = region_range(a.region);
                (lo..=hi).contains(&self.hospital_region)
                    || self.bureau == a.org.as_uuid()
                    || self.province == Some(a.org.as_uuid())
            }
            OrgKind::Hospital => self.hospital == a.org.as_uuid(),
            OrgKind::Manufacturer | OrgKind::Distributor => self.is_enterprise(a.org),
            OrgKind::Integrator => false,
        }
    }
}

const COLS: &str = "id, state, hospital, hospital_region, national_code, product_name, spec, \
    quantity, issue_type, occurred_at, impact_scope, statement, manufacturer, distributors, \
    bureau, bureau_region, filed_at, enterprise_due_at, responded_at, response_on_time, \
    handling_due_at, province, province_region, feedback_at, auto_resolve_at, resolved_at, \
    overdue_enterprise, overdue_bureau, overdue_province";

pub async fn lock(conn: &mut PgConnection, id: uuid::Uuid) -> Result<Option<Row>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM issues WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

async fn all_rows(conn: &mut PgConnection) -> Result<Vec<Row>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM issues ORDER BY filed_at, id"
    )))
    .fetch_all(conn)
    .await
}

pub async fn save(conn: &mut PgConnection, r: &Row, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE issues SET state = $2, responded_at = $3, response_on_time = $4, \
         handling_due_at = $5, province = $6, province_region = $7, feedback_at = $8, \
         auto_resolve_at = $9, resolved_at = $10, overdue_enterprise = $11, overdue_bureau = $12, \
         overdue_province = $13, updated_at = $14 WHERE id = $1",
    )
    .bind(r.id)
    .bind(&r.state)
    .bind(r.responded_at)
    .bind(r.response_on_time)
    .bind(r.handling_due_at)
    .bind(r.province)
    .bind(r.province_region)
    .bind(r.feedback_at)
    .bind(r.auto_resolve_at)
    .bind(r.resolved_at)
    .bind(r.overdue_enterprise)
    .bind(r.overdue_bureau)
    .bind(r.overdue_province)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn audit(
    conn: &mut PgConnection,
    issue: uuid::Uuid,
    a: &Actor,
    action: &str,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit (issue, action, actor, org, detail, at) VALUES ($1,$2,$3,$4,$5,$6)",
    )
    .bind(issue)
    .bind(action)
    .bind(&a.sub)
    .bind(a.org.as_uuid())
    .bind(detail)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn view(conn: &mut PgConnection, r: &Row) -> Result<IssueView, sqlx::Error> {
    let audit: Vec<(String, String, uuid::Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT action, actor, org, detail, at FROM audit WHERE issue = $1 ORDER BY seq",
    )
    .bind(r.id)
    .fetch_all(conn)
    .await?;
    let mut overdue = Vec::new();
    if r.overdue_enterprise {
        overdue.push(IssueStage::EnterpriseResponse);
    }
    if r.overdue_bureau {
        overdue.push(IssueStage::BureauHandling);
    }
    if r.overdue_province {
        overdue.push(IssueStage::ProvinceHandling);
    }
    Ok(IssueView {
        issue: r.issue(),
        state: r.state(),
        hospital: OrgId::from_uuid(r.hospital),
        hospital_region: region_from_i32(r.hospital_region),
        national_code: NationalCode::parse(&r.national_code)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        product_name: r.product_name.clone(),
        spec: r.spec.clone(),
        quantity: r.quantity,
        issue_type: r.issue_type(),
        occurred_at: r.occurred_at,
        impact_scope: r.impact_scope.clone(),
        statement: r.statement.clone(),
        recipients: r.recipients(),
        bureau_region: region_from_i32(r.bureau_region),
        filed_at: r.filed_at,
        enterprise_due_at: r.enterprise_due_at,
        responded_at: r.responded_at,
        response_on_time: r.response_on_time,
        handling_due_at: r.handling_due_at,
        province_region: r.province_region.map(region_from_i32),
        feedback_at: r.feedback_at,
        auto_resolve_at: r.auto_resolve_at,
        resolved_at: r.resolved_at,
        overdue,
        audit: audit
            .into_iter()
            .map(|(action, actor, org, detail, at)| AuditEntry {
                action,
                actor,
                org: OrgId::from_uuid(org),
                detail,
                at,
            })
            .collect(),
    })
}

fn actor(ctx: &Context) -> R<&Actor> {
    ctx.actor
        .as_ref()
        .ok_or_else(|| RpcError::forbidden("an authenticated actor is required"))
}

fn not_found(id: IssueId) -> RpcError {
    RpcError::not_found(format!("issue {id} does not exist"))
}

fn beijing_date(t: DateTime<Utc>) -> NaiveDate {
    (t + Duration::hours(8)).date_naive()
}

/// `n` working days on the business calendar; a year without calendar data
/// is a clear error, never a guess.
pub fn working_deadline(svc: &Svc, start: DateTime<Utc>, n: u32, key: &str) -> R<DateTime<Utc>> {
    svc.calendar.deadline(start, n).map_err(|e| {
        RpcError::new(
            422,
            "calendar_year_not_covered",
            format!("{key}: cannot count {n} working days from {start}: {e}"),
        )
    })
}

fn transition(r: &Row, allowed: &[IssueState], what: &str) -> R<()> {
    if allowed.contains(&r.state()) {
        return Ok(());
    }
    Err(RpcError::conflict(
        "invalid_transition",
        format!(
            "issue {} is {}; it can be {what} only when {}",
            r.id,
            r.state,
            allowed
                .iter()
                .map(|s| enum_str(*s))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    ))
}

fn required(field: &str, v: &str, max: usize) -> R<()> {
    let n = v.trim().chars().count();
    if n == 0 || n > max {
        return Err(RpcError::invalid(
            field,
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    Ok(())
}

/// The active bureau whose region is exactly `region`.
async fn bureau_at(conn: &mut PgConnection, region: RegionCode) -> R<Option<uuid::Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM orgs WHERE kind = 'bureau' AND active AND region = $1 ORDER BY id LIMIT 1",
    )
    .bind(region.as_u32() as i32)
    .fetch_optional(conn)
    .await?)
}

pub async fn schedule(
    conn: &mut PgConnection,
    kind: &str,
    issue: IssueId,
    due_at: DateTime<Utc>,
    ctx: &Context,
) -> R<()> {
    vbp_bus::timers::schedule(
        conn,
        kind,
        &issue.to_string(),
        due_at,
        Some(ctx.correlation),
        &Due { issue, due_at },
    )
    .await
    .map_err(|e| RpcError::internal(e.to_string()))
}

async fn cancel(conn: &mut PgConnection, kind: &str, issue: IssueId) -> R<()> {
    vbp_bus::timers::cancel(conn, kind, &issue.to_string())
        .await
        .map_err(|e| RpcError::internal(e.to_string()))?;
    Ok(())
}

/// Longest free-text field accepted.
pub const MAX_TEXT: usize = 2000;

pub async fn issue_file(svc: Shared, ctx: Context, req: FileIssue) -> R<IssueView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    if a.org_kind != OrgKind::Hospital {
        return Err(RpcError::forbidden(format!(
            "only a hospital may file an issue (you act for a {})",
            a.org_kind
        )));
    }
    if !req.evidence.is_empty() {
        return Err(RpcError::new(
            501,
            "evidence_not_supported",
            "evidence: evidence files are not supported yet; file without them",
        )
        .with_field("evidence"));
    }
    if req.quantity <= 0 {
        return Err(RpcError::invalid("quantity", "quantity must be positive"));
    }
    required("impact_scope", &req.impact_scope, MAX_TEXT)?;
    required("statement", &req.statement, MAX_TEXT)?;
    if req.occurred_at > now {
        return Err(RpcError::invalid(
            "occurred_at",
            format!("occurred_at {} is in the future", req.occurred_at),
        ));
    }
    let mut tx = svc.pool.begin().await?;
    // Product from the supply list in force at the occurrence time (else
    // the latest published).
    let item: Option<(String, String, uuid::Uuid)> = sqlx::query_as(
        "SELECT generic_name, spec_model, manufacturer FROM supply_items WHERE national_code = $1 \
         ORDER BY (starts_at <= $2 AND $2 < ends_at) DESC, published_at DESC LIMIT 1",
    )
    .bind(req.national_code.as_str())
    .bind(req.occurred_at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((product_name, spec, manufacturer)) = item else {
        return Err(RpcError::invalid(
            "national_code",
            format!(
                "national_code {} is on no published supply list",
                req.national_code.as_str()
            ),
        ));
    };
    let hospital_region: RegionCode =
        sqlx::query_scalar::<_, i32>("SELECT region FROM orgs WHERE id = $1")
            .bind(a.org.as_uuid())
            .fetch_optional(&mut *tx)
            .await?
            .map(region_from_i32)
            .unwrap_or(a.region);
    let distributors: Vec<uuid::Uuid> = if req.issue_type.is_delivery() {
        sqlx::query_scalar(
            "SELECT DISTINCT distributor FROM relations WHERE hospital = $1 AND national_code = $2 \
             AND valid_from <= $3 AND (valid_to IS NULL OR $3 < valid_to) ORDER BY distributor",
        )
        .bind(a.org.as_uuid())
        .bind(req.national_code.as_str())
        .bind(req.occurred_at)
        .fetch_all(&mut *tx)
        .await?
    } else {
        Vec::new()
    };
    // The territorial bureau: county where one is configured, else city.
    let mut bureau = None;
    if hospital_region.level() == RegionLevel::County {
        bureau = bureau_at(&mut tx, hospital_region)
            .await?
            .map(|b| (b, hospital_region));
    }
    if bureau.is_none()
        && let Some(city) = hospital_region.city()
    {
        bureau = bureau_at(&mut tx, city).await?.map(|b| (b, city));
    }
    let Some((bureau, bureau_region)) = bureau else {
        return Err(RpcError::invalid(
            "hospital_region",
            format!("no bureau is registered for the county or city of region {hospital_region}"),
        ));
    };
    let s = &svc.settings;
    let enterprise_due_at = working_deadline(
        &svc,
        now,
        s.enterprise_response_working_days,
        "issues.enterprise_response_working_days",
    )?;
    let handling_due_at = working_deadline(
        &svc,
        now,
        s.bureau_handling_working_days,
        "issues.bureau_handling_working_days",
    )?;
    let issue = IssueId::new();
    sqlx::query(
        "INSERT INTO issues (id, state, hospital, hospital_region, national_code, product_name, \
         spec, quantity, issue_type, occurred_at, impact_scope, statement, manufacturer, \
         distributors, bureau, bureau_region, filed_at, enterprise_due_at, handling_due_at, \
         updated_at) VALUES ($1,'dispatched',$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$16)",
    )
    .bind(issue.as_uuid())
    .bind(a.org.as_uuid())
    .bind(hospital_region.as_u32() as i32)
    .bind(req.national_code.as_str())
    .bind(&product_name)
    .bind(&spec)
    .bind(req.quantity)
    .bind(enum_str(req.issue_type))
    .bind(req.occurred_at)
    .bind(req.impact_scope.trim())
    .bind(req.statement.trim())
    .bind(manufacturer)
    .bind(&distributors)
    .bind(bureau)
    .bind(bureau_region.as_u32() as i32)
    .bind(now)
    .bind(enterprise_due_at)
    .bind(handling_due_at)
    .execute(&mut *tx)
    .await?;
    audit(
        &mut tx,
        issue.as_uuid(),
        a,
        "filed",
        "filed and dispatched",
        now,
    )
    .await?;
    schedule(&mut tx, ENTERPRISE_TIMER, issue, enterprise_due_at, &ctx).await?;
    schedule(&mut tx, HANDLING_TIMER, issue, handling_due_at, &ctx).await?;
    let r = lock(&mut tx, issue.as_uuid())
        .await?
        .ok_or_else(|| not_found(issue))?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &IssueFiled {
                issue,
                hospital: a.org,
                hospital_region,
                national_code: req.national_code.clone(),
                product_name,
                spec,
                quantity: req.quantity,
                issue_type: req.issue_type,
                occurred_at: req.occurred_at,
                impact_scope: r.impact_scope.clone(),
                statement: r.statement.clone(),
                evidence_sha256: vec![],
                filed_at: now,
            },
        )
        .await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &IssueDispatched {
                issue,
                hospital: a.org,
                hospital_region,
                issue_type: req.issue_type,
                national_code: req.national_code,
                recipients: r.recipients(),
                bureau_region,
                enterprise_due_at,
                dispatched_at: now,
            },
        )
        .await?;
    let v = view(&mut tx, &r).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn issue_get(svc: Shared, ctx: Context, req: GetIssue) -> R<IssueView> {
    let a = actor(&ctx)?;
    let mut tx = svc.pool.begin().await?;
    let r = lock(&mut tx, req.issue.as_uuid())
        .await?
        .filter(|r| r.visible_to(a))
        .ok_or_else(|| not_found(req.issue))?;
    let v = view(&mut tx, &r).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn issue_list(svc: Shared, ctx: Context, req: ListIssues) -> R<IssueList> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    let rows = all_rows(&mut conn).await?;
    let mut items = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.visible_to(a) && req.state.is_none_or(|s| r.state() == s))
    {
        items.push(view(&mut conn, r).await?);
    }
    Ok(IssueList { items })
}

/// Locks an issue the actor may see (otherwise not found).
async fn visible_locked(conn: &mut PgConnection, a: &Actor, id: IssueId) -> R<Row> {
    lock(conn, id.as_uuid())
        .await?
        .filter(|r| r.visible_to(a))
        .ok_or_else(|| not_found(id))
}

pub async fn issue_respond(svc: Shared, ctx: Context, req: RespondIssue) -> R<IssueView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    required("cause", &req.cause, MAX_TEXT)?;
    required("solution", &req.solution, MAX_TEXT)?;
    if domain::needs_written_statement(req.cause_kind) {
        required(
            "written_statement",
            req.written_statement.as_deref().unwrap_or(""),
            MAX_TEXT,
        )
        .map_err(|_| {
            RpcError::invalid(
                "written_statement",
                format!(
                    "a written statement is required when the cause is {}",
                    enum_str(req.cause_kind)
                ),
            )
        })?;
    }
    if req.completion_date < beijing_date(now) {
        return Err(RpcError::invalid(
            "completion_date",
            format!(
                "completion_date {} is before today ({}, Beijing)",
                req.completion_date,
                beijing_date(now)
            ),
        ));
    }
    let mut tx = svc.pool.begin().await?;
    let mut r = visible_locked(&mut tx, a, req.issue).await?;
    if !matches!(a.org_kind, OrgKind::Manufacturer | OrgKind::Distributor)
        || !r.is_enterprise(a.org)
    {
        return Err(RpcError::forbidden(
            "only an enterprise the issue was dispatched to may respond",
        ));
    }
    transition(&r, &[IssueState::Dispatched], "responded to")?;
    let on_time = now < r.enterprise_due_at;
    r.state = enum_str(IssueState::Responded);
    r.responded_at = Some(now);
    r.response_on_time = Some(on_time);
    save(&mut tx, &r, now).await?;
    audit(
        &mut tx,
        r.id,
        a,
        "responded",
        &format!(
            "cause ({}): {}; solution: {}; completion {}{}",
            enum_str(req.cause_kind),
            req.cause.trim(),
            req.solution.trim(),
            req.completion_date,
            req.written_statement
                .as_deref()
                .map(|s| format!("; written statement: {}", s.trim()))
                .unwrap_or_default()
        ),
        now,
    )
    .await?;
    cancel(&mut tx, ENTERPRISE_TIMER, r.issue()).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &IssueResponded {
                issue: r.issue(),
                enterprise: a.org,
                cause_kind: req.cause_kind,
                cause: req.cause.trim().to_owned(),
                solution: req.solution.trim().to_owned(),
                completion_date: req.completion_date,
                on_time,
                responded_at: now,
            },
        )
        .await?;
    let v = view(&mut tx, &r).await?;
    tx.commit().await?;
    Ok(v)
}

/// Moves the issue to the province with its handling clock; used by the
/// bureau and by the overdue timer. Returns false when no province bureau
/// is registered.
#[allow(clippy::too_many_arguments)]
pub async fn escalate(
    conn: &mut PgConnection,
    svc: &Svc,
    ctx: &Context,
    a: &Actor,
    r: &mut Row,
    automatic: bool,
    reason: &str,
    now: DateTime<Utc>,
) -> R<bool> {
    let from = region_from_i32(r.bureau_region);
    let Some(province_region) = region_from_i32(r.hospital_region).province() else {
        return Ok(false);
    };
    let Some(province) = bureau_at(conn, province_region).await? else {
        if automatic {
            return Ok(false);
        }
        return Err(RpcError::invalid(
            "issue",
            format!("no province bureau is registered for region {province_region}"),
        ));
    };
    let due = working_deadline(
        svc,
        now,
        svc.settings.province_handling_working_days,
        "issues.province_handling_working_days",
    )?;
    r.state = enum_str(IssueState::Escalated);
    r.province = Some(province);
    r.province_region = Some(province_region.as_u32() as i32);
    r.handling_due_at = Some(due);
    save(conn, r, now).await?;
    audit(
        conn,
        r.id,
        a,
        if automatic {
            "escalated_automatically"
        } else {
            "escalated"
        },
        reason,
        now,
    )
    .await?;
    schedule(conn, HANDLING_TIMER, r.issue(), due, ctx).await?;
    svc.outbox
        .append(
            conn,
            ctx,
            &IssueEscalated {
                issue: r.issue(),
                from_region: from,
                to_region: province_region,
                automatic,
                due_at: due,
                escalated_at: now,
            },
        )
        .await?;
    Ok(true)
}

pub async fn issue_escalate(svc: Shared, ctx: Context, req: EscalateIssue) -> R<IssueView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    required("reason", &req.reason, MAX_TEXT)?;
    let mut tx = svc.pool.begin().await?;
    let mut r = visible_locked(&mut tx, a, req.issue).await?;
    if a.org_kind != OrgKind::Bureau || r.bureau != a.org.as_uuid() {
        return Err(RpcError::forbidden(
            "only the territorial bureau the issue was dispatched to may escalate it",
        ));
    }
    transition(
        &r,
        &[IssueState::Dispatched, IssueState::Responded],
        "escalated",
    )?;
    escalate(
        &mut tx,
        &svc,
        &ctx,
        a,
        &mut r,
        false,
        req.reason.trim(),
        now,
    )
    .await?;
    let v = view(&mut tx, &r).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn issue_feedback(svc: Shared, ctx: Context, req: GiveFeedback) -> R<IssueView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    required("feedback", &req.feedback, MAX_TEXT)?;
    let mut tx = svc.pool.begin().await?;
    let mut r = visible_locked(&mut tx, a, req.issue).await?;
    transition(
        &r,
        &[
            IssueState::Dispatched,
            IssueState::Responded,
            IssueState::Escalated,
        ],
        "given feedback",
    )?;
    let handler = if r.state() == IssueState::Escalated {
        r.province
    } else {
        Some(r.bureau)
    };
    if a.org_kind != OrgKind::Bureau || handler != Some(a.org.as_uuid()) {
        return Err(RpcError::forbidden(
            "only the bureau handling the issue (the province after escalation) may give feedback",
        ));
    }
    let auto = now + Duration::days(i64::from(svc.settings.auto_resolve_days));
    r.state = enum_str(IssueState::FeedbackGiven);
    r.feedback_at = Some(now);
    r.auto_resolve_at = Some(auto);
    save(&mut tx, &r, now).await?;
    audit(&mut tx, r.id, a, "feedback_given", req.feedback.trim(), now).await?;
    cancel(&mut tx, HANDLING_TIMER, r.issue()).await?;
    schedule(&mut tx, RESOLVE_TIMER, r.issue(), auto, &ctx).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &IssueFeedbackGiven {
                issue: r.issue(),
                bureau: a.org,
                bureau_region: a.region,
                feedback: req.feedback.trim().to_owned(),
                auto_resolve_at: auto,
                given_at: now,
            },
        )
        .await?;
    let v = view(&mut tx, &r).await?;
    tx.commit().await?;
    Ok(v)
}

async fn own_feedback(tx: &mut PgConnection, a: &Actor, id: IssueId, what: &str) -> R<Row> {
    let r = visible_locked(tx, a, id).await?;
    if a.org_kind != OrgKind::Hospital || r.hospital != a.org.as_uuid() {
        return Err(RpcError::forbidden(format!(
            "only the filing hospital may {what} the issue"
        )));
    }
    transition(&r, &[IssueState::FeedbackGiven], &format!("{what}ed"))?;
    Ok(r)
}

pub async fn issue_confirm(svc: Shared, ctx: Context, req: ConfirmIssue) -> R<IssueView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let mut tx = svc.pool.begin().await?;
    let mut r = own_feedback(&mut tx, a, req.issue, "confirm").await?;
    r.state = enum_str(IssueState::Resolved);
    r.resolved_at = Some(now);
    save(&mut tx, &r, now).await?;
    audit(&mut tx, r.id, a, "confirmed", "resolution confirmed", now).await?;
    cancel(&mut tx, RESOLVE_TIMER, r.issue()).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &IssueResolved {
                issue: r.issue(),
                hospital: a.org,
                hospital_region: region_from_i32(r.hospital_region),
                resolved_at: now,
            },
        )
        .await?;
    let v = view(&mut tx, &r).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn issue_reopen(svc: Shared, ctx: Context, req: ReopenIssue) -> R<IssueView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    required("reason", &req.reason, MAX_TEXT)?;
    let mut tx = svc.pool.begin().await?;
    let mut r = own_feedback(&mut tx, a, req.issue, "reopen").await?;
    // Back to whoever handled it, with a fresh handling clock.
    let (state, due) = if r.province.is_some() {
        (
            IssueState::Escalated,
            working_deadline(
                &svc,
                now,
                svc.settings.province_handling_working_days,
                "issues.province_handling_working_days",
            )?,
        )
    } else {
        (
            if r.responded_at.is_some() {
                IssueState::Responded
            } else {
                IssueState::Dispatched
            },
            working_deadline(
                &svc,
                now,
                svc.settings.bureau_handling_working_days,
                "issues.bureau_handling_working_days",
            )?,
        )
    };
    r.state = enum_str(state);
    r.handling_due_at = Some(due);
    r.auto_resolve_at = None;
    save(&mut tx, &r, now).await?;
    audit(&mut tx, r.id, a, "reopened", req.reason.trim(), now).await?;
    cancel(&mut tx, RESOLVE_TIMER, r.issue()).await?;
    schedule(&mut tx, HANDLING_TIMER, r.issue(), due, &ctx).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &IssueReopened {
                issue: r.issue(),
                hospital: a.org,
                reason: req.reason.trim().to_owned(),
                reopened_at: now,
            },
        )
        .await?;
    let v = view(&mut tx, &r).await?;
    tx.commit().await?;
    Ok(v)
}

fn last_day(due: DateTime<Utc>) -> NaiveDate {
    beijing_date(due - Duration::seconds(1))
}

pub async fn deadline_preview(
    svc: Shared,
    ctx: Context,
    req: PreviewDeadlines,
) -> R<DeadlinePreview> {
    actor(&ctx)?;
    let s = &svc.settings;
    let t = req.dispatched_at;
    let e = working_deadline(
        &svc,
        t,
        s.enterprise_response_working_days,
        "issues.enterprise_response_working_days",
    )?;
    let b = working_deadline(
        &svc,
        t,
        s.bureau_handling_working_days,
        "issues.bureau_handling_working_days",
    )?;
    let p = working_deadline(
        &svc,
        b,
        s.province_handling_working_days,
        "issues.province_handling_working_days",
    )?;
    Ok(DeadlinePreview {
        dispatched_at: t,
        enterprise_due_at: e,
        enterprise_last_day: last_day(e),
        bureau_due_at: b,
        bureau_last_day: last_day(b),
        province_due_at: p,
        province_last_day: last_day(p),
    })
}

fn bp(n: i64, d: i64) -> i64 {
    if d == 0 { 0 } else { n * 10_000 / d }
}

pub async fn ledger(svc: Shared, ctx: Context, req: LedgerQuery) -> R<LedgerReport> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    let rows = all_rows(&mut conn).await?;
    let mut by: std::collections::BTreeMap<String, LedgerRow> = Default::default();
    for r in rows.iter().filter(|r| r.visible_to(a)) {
        let key = match req.by {
            LedgerGrouping::Enterprise => r.manufacturer.to_string(),
            LedgerGrouping::Hospital => r.hospital.to_string(),
            LedgerGrouping::Region => format!("{:06}", r.hospital_region),
        };
        let e = by.entry(key.clone()).or_insert_with(|| LedgerRow {
            key,
            filed: 0,
            responded: 0,
            responded_on_time: 0,
            resolved: 0,
            response_rate_bp: 0,
            resolution_rate_bp: 0,
            overdue_enterprise: 0,
            overdue_bureau: 0,
            overdue_province: 0,
        });
        e.filed += 1;
        e.responded += i64::from(r.responded_at.is_some());
        e.responded_on_time += i64::from(r.response_on_time == Some(true));
        e.resolved += i64::from(r.resolved_at.is_some());
        e.overdue_enterprise += i64::from(r.overdue_enterprise);
        e.overdue_bureau += i64::from(r.overdue_bureau);
        e.overdue_province += i64::from(r.overdue_province);
    }
    let rows = by
        .into_values()
        .map(|mut r| {
            r.response_rate_bp = bp(r.responded, r.filed);
            r.resolution_rate_bp = bp(r.resolved, r.filed);
            r
        })
        .collect();
    Ok(LedgerReport { by: req.by, rows })
}
