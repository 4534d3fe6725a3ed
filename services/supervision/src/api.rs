//! What every handler shares: the service state, the caller's scope, small
//! validation helpers; and the read-only operations (thresholds, findings).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use vbp_bus::{Context, Outbox, RpcClient, RpcError};
use vbp_contracts::page::Window;
use vbp_contracts::supervision::*;
use vbp_kernel::{Actor, BusinessCalendar, EventId, NationalCode, OrgId, OrgKind, SharedClock};

use crate::domain::{Settings, region_from_i32, region_range};

pub const ESCALATE_TIMER: &str = "supervision.credit_due";
pub const DELAY_TIMER: &str = "supervision.delivery_due";
pub const FILE_ISSUE_TIMER: &str = "supervision.file_issue";
pub const CALENDAR_TIMER: &str = "supervision.calendar";

/// Longest free-text field accepted.
pub const MAX_TEXT: usize = 2000;

pub struct Svc {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub clock: SharedClock,
    pub calendar: Arc<BusinessCalendar>,
    pub settings: Settings,
    /// Files findings in issue direct reporting.
    pub rpc: RpcClient,
}

pub type Shared = Arc<Svc>;

pub type R<T> = Result<T, RpcError>;

pub fn actor(ctx: &Context) -> R<&Actor> {
    ctx.actor
        .as_ref()
        .ok_or_else(|| RpcError::forbidden("an authenticated actor is required"))
}

pub fn required(field: &str, v: &str, max: usize) -> R<()> {
    let n = v.trim().chars().count();
    if n == 0 || n > max {
        return Err(RpcError::invalid(
            field,
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    Ok(())
}

pub fn enum_str<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub fn enum_of<T: serde::de::DeserializeOwned>(s: &str) -> R<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|e| RpcError::internal(format!("stored value {s:?}: {e}")))
}

pub fn event_ids(ids: &[uuid::Uuid]) -> Vec<EventId> {
    ids.iter().map(|u| EventId::from_uuid(*u)).collect()
}

/// Which rows an actor sees. Rows carry a hospital region and, where it
/// applies, the hospital and the enterprise: a bureau sees its region's
/// subtree, a hospital its own rows, an enterprise the rows about it.
pub const SCOPE: &str = "(($1 = 'operator') \
    OR ($1 = 'bureau' AND scope_region BETWEEN $2 AND $3) \
    OR ($1 = 'hospital' AND scope_hospital = $4) \
    OR ($1 IN ('manufacturer', 'distributor') AND scope_enterprise = $4))";

/// The values [`SCOPE`] is bound with, as `$1..$4`.
pub struct Scope {
    pub kind: &'static str,
    pub lo: i32,
    pub hi: i32,
    pub org: uuid::Uuid,
}

impl Scope {
    pub fn of(a: &Actor) -> Scope {
        let (lo, hi) = region_range(a.region);
        Scope {
            kind: match a.org_kind {
                OrgKind::Operator => "operator",
                OrgKind::Bureau => "bureau",
                OrgKind::Hospital => "hospital",
                OrgKind::Manufacturer => "manufacturer",
                OrgKind::Distributor => "distributor",
                OrgKind::Integrator => "none",
            },
            lo,
            hi,
            org: a.org.as_uuid(),
        }
    }

    /// A query over [`SCOPE`] with this scope bound as `$1..$4`; the caller
    /// binds its own parameters from `$5` on.
    pub fn query_as<'q, O>(
        &self,
        sql: String,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(self.kind)
            .bind(self.lo)
            .bind(self.hi)
            .bind(self.org)
    }
}

/// Only bureaus (within their region) and the operator act on supervision.
pub fn supervisor(a: &Actor, what: &str) -> R<()> {
    match a.org_kind {
        OrgKind::Bureau | OrgKind::Operator => Ok(()),
        k => Err(RpcError::forbidden(format!(
            "only a bureau or the operator may {what} (you act for a {k})"
        ))),
    }
}

pub async fn thresholds(svc: Shared, ctx: Context, _req: GetThresholds) -> R<Thresholds> {
    actor(&ctx)?;
    Ok(svc.settings.thresholds())
}

#[derive(sqlx::FromRow)]
struct FindingRow {
    id: uuid::Uuid,
    kind: String,
    enterprise: uuid::Uuid,
    enterprise_name: Option<String>,
    hospital: uuid::Uuid,
    hospital_name: Option<String>,
    hospital_region: i32,
    period: uuid::Uuid,
    national_code: String,
    detail: String,
    source_events: Vec<uuid::Uuid>,
    detected_at: DateTime<Utc>,
    issue: Option<uuid::Uuid>,
    issue_error: Option<String>,
    credit_record: Option<uuid::Uuid>,
}

pub async fn findings_list(svc: Shared, ctx: Context, req: ListFindings) -> R<Page<FindingView>> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let s = Scope::of(a);
    let from = format!(
        "FROM (SELECT *, hospital_region AS scope_region, hospital AS scope_hospital, \
               enterprise AS scope_enterprise FROM findings) f \
         WHERE {SCOPE} AND ($5::text IS NULL OR f.kind = $5)"
    );
    let rows: Vec<FindingRow> = s
        .query_as(format!(
            "SELECT f.id, f.kind, f.enterprise, e.name AS enterprise_name, f.hospital, \
             h.name AS hospital_name, f.hospital_region, f.period, f.national_code, f.detail, \
             f.source_events, f.detected_at, f.issue, f.issue_error, f.credit_record \
             FROM (SELECT f.* {from} ORDER BY f.detected_at, f.id LIMIT $6 OFFSET $7) f \
             LEFT JOIN orgs e ON e.id = f.enterprise LEFT JOIN orgs h ON h.id = f.hospital \
             ORDER BY f.detected_at, f.id"
        ))
        .bind(req.kind.map(enum_str))
        .bind(w.limit())
        .bind(w.offset())
        .fetch_all(&svc.pool)
        .await?;
    let (total,): (i64,) = s
        .query_as(format!("SELECT count(*) {from}"))
        .bind(req.kind.map(enum_str))
        .fetch_one(&svc.pool)
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        items.push(FindingView {
            finding: FindingId::from_uuid(r.id),
            kind: enum_of(&r.kind)?,
            enterprise: OrgId::from_uuid(r.enterprise),
            enterprise_name: r.enterprise_name.unwrap_or_default(),
            hospital: OrgId::from_uuid(r.hospital),
            hospital_name: r.hospital_name.unwrap_or_default(),
            hospital_region: region_from_i32(r.hospital_region),
            period: vbp_contracts::agreements::PeriodId::from_uuid(r.period),
            national_code: NationalCode::parse(&r.national_code).ok(),
            detail: r.detail,
            source_events: event_ids(&r.source_events),
            detected_at: r.detected_at,
            issue: r.issue.map(vbp_contracts::issues::IssueId::from_uuid),
            issue_error: r.issue_error,
            credit_record: r.credit_record.map(CreditRecordId::from_uuid),
        });
    }
    Ok(w.page(items, total))
}
