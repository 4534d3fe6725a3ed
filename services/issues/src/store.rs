//! Rows of the `issues` schema and the SQL that reads and writes them:
//! issues, their audit trail, evidence metadata and the actor scope.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, Row as _};
use vbp_contracts::issues::*;
use vbp_kernel::{Actor, NationalCode, OrgId, OrgKind, RegionCode};

use crate::domain::{region_from_i32, region_range};

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
    pub statement_sealed: bool,
    pub false_report_at: Option<DateTime<Utc>>,
}

pub fn enum_str<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub fn enum_of<T: serde::de::DeserializeOwned>(s: &str) -> T {
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
    pub fn recipients(&self) -> Vec<Recipient> {
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
    pub fn is_enterprise(&self, org: OrgId) -> bool {
        let o = org.as_uuid();
        self.manufacturer == o || self.distributors.contains(&o)
    }
}

const COLS: &str = "id, state, hospital, hospital_region, national_code, product_name, spec, \
    quantity, issue_type, occurred_at, impact_scope, statement, manufacturer, distributors, \
    bureau, bureau_region, filed_at, enterprise_due_at, responded_at, response_on_time, \
    handling_due_at, province, province_region, feedback_at, auto_resolve_at, resolved_at, \
    overdue_enterprise, overdue_bureau, overdue_province, statement_sealed, false_report_at";

pub async fn lock(conn: &mut PgConnection, id: uuid::Uuid) -> Result<Option<Row>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM issues WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn save(conn: &mut PgConnection, r: &Row, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE issues SET state = $2, responded_at = $3, response_on_time = $4, \
         handling_due_at = $5, province = $6, province_region = $7, feedback_at = $8, \
         auto_resolve_at = $9, resolved_at = $10, overdue_enterprise = $11, overdue_bureau = $12, \
         overdue_province = $13, updated_at = $14, false_report_at = $15 WHERE id = $1",
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
    .bind(r.false_report_at)
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
    .fetch_all(&mut *conn)
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
        statement_sealed: r.statement_sealed,
        evidence: evidence_of(&mut *conn, r.id).await?,
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

/// The actor's scope as a SQL condition on `issues` with binds `$1`–`$4`
/// (see [`Scope::bind`]): operator all; a bureau its region subtree and
/// what it handles; a hospital its own; an enterprise what was dispatched to
/// it; anyone else nothing.
pub const SCOPE: &str = "(($1 = 'operator') \
    OR ($1 = 'bureau' AND (hospital_region BETWEEN $2 AND $3 OR bureau = $4 OR province = $4)) \
    OR ($1 = 'hospital' AND hospital = $4) \
    OR ($1 IN ('manufacturer', 'distributor') AND (manufacturer = $4 OR $4 = ANY(distributors))))";

/// The values [`SCOPE`] is bound with.
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
}

/// Issues in the actor's scope, optionally in one state, oldest first.
pub async fn scoped_rows(
    conn: &mut PgConnection,
    a: &Actor,
    state: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Row>, i64), sqlx::Error> {
    let s = Scope::of(a);
    let filtered = |sql: String| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(s.kind)
            .bind(s.lo)
            .bind(s.hi)
            .bind(s.org)
            .bind(state)
    };
    const WHERE: &str = "($5::text IS NULL OR state = $5)";
    let rows = filtered(format!(
        "SELECT {COLS} FROM issues WHERE {SCOPE} AND {WHERE} ORDER BY filed_at, id LIMIT $6 OFFSET $7"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(Row::from_row)
    .collect::<Result<_, _>>()?;
    let total = filtered(format!(
        "SELECT count(*) FROM issues WHERE {SCOPE} AND {WHERE}"
    ))
    .fetch_one(conn)
    .await?
    .try_get(0)?;
    Ok((rows, total))
}

/// One issue if the actor may see it, locked for update.
pub async fn lock_scoped(
    conn: &mut PgConnection,
    a: &Actor,
    id: uuid::Uuid,
) -> Result<Option<Row>, sqlx::Error> {
    let s = Scope::of(a);
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM issues WHERE {SCOPE} AND id = $5 FOR UPDATE"
    )))
    .bind(s.kind)
    .bind(s.lo)
    .bind(s.hi)
    .bind(s.org)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The active bureau whose region is exactly `region`.
pub async fn bureau_at(
    conn: &mut PgConnection,
    region: RegionCode,
) -> Result<Option<uuid::Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM orgs WHERE kind = 'bureau' AND active AND region = $1 ORDER BY id LIMIT 1",
    )
    .bind(region.as_u32() as i32)
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EvidenceRow {
    pub id: uuid::Uuid,
    pub issue: Option<uuid::Uuid>,
    pub object: String,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub sealed: bool,
    pub uploaded_by: uuid::Uuid,
    pub uploader: String,
    pub uploaded_at: DateTime<Utc>,
}

impl EvidenceRow {
    pub fn view(&self) -> EvidenceView {
        EvidenceView {
            evidence: EvidenceId::from_uuid(self.id),
            issue: self.issue.map(IssueId::from_uuid),
            file_name: self.file_name.clone(),
            content_type: self.content_type.clone(),
            size_bytes: self.size_bytes as u64,
            sha256: self.sha256.clone(),
            sealed: self.sealed,
            uploaded_by: OrgId::from_uuid(self.uploaded_by),
            uploader: self.uploader.clone(),
            uploaded_at: self.uploaded_at,
            object: self.object.clone(),
        }
    }
}

const EVIDENCE_COLS: &str = "id, issue, object, file_name, content_type, size_bytes, sha256, \
    sealed, uploaded_by, uploader, uploaded_at";

pub async fn insert_evidence(conn: &mut PgConnection, e: &EvidenceRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO evidence (id, issue, object, file_name, content_type, size_bytes, sha256, \
         sealed, uploaded_by, uploader, uploaded_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
    )
    .bind(e.id)
    .bind(e.issue)
    .bind(&e.object)
    .bind(&e.file_name)
    .bind(&e.content_type)
    .bind(e.size_bytes)
    .bind(&e.sha256)
    .bind(e.sealed)
    .bind(e.uploaded_by)
    .bind(&e.uploader)
    .bind(e.uploaded_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn evidence_of(
    conn: &mut PgConnection,
    issue: uuid::Uuid,
) -> Result<Vec<EvidenceView>, sqlx::Error> {
    let rows: Vec<EvidenceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EVIDENCE_COLS} FROM evidence WHERE issue = $1 ORDER BY uploaded_at, id"
    )))
    .bind(issue)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(EvidenceRow::view).collect())
}

/// Evidence rows by id, locked: for attaching them at filing.
pub async fn lock_evidence(
    conn: &mut PgConnection,
    ids: &[uuid::Uuid],
) -> Result<Vec<EvidenceRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EVIDENCE_COLS} FROM evidence WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    )))
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// One evidence file if the actor may see it: its uploader's own, or
/// attached to an issue in the actor's scope.
pub async fn evidence_scoped(
    conn: &mut PgConnection,
    a: &Actor,
    id: uuid::Uuid,
) -> Result<Option<EvidenceRow>, sqlx::Error> {
    let s = Scope::of(a);
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EVIDENCE_COLS} FROM evidence e WHERE e.id = $5 AND (e.uploaded_by = $4 \
         OR EXISTS (SELECT 1 FROM issues WHERE issues.id = e.issue AND {SCOPE}))"
    )))
    .bind(s.kind)
    .bind(s.lo)
    .bind(s.hi)
    .bind(s.org)
    .bind(id)
    .fetch_optional(conn)
    .await
}
