//! Filing and auto-dispatch: the product from the supply list, the
//! manufacturer, the distributor(s) at the occurrence time for delivery
//! issues, the territorial bureau; then the repeated-issue check.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;
use vbp_bus::{Context, RpcError};
use vbp_contracts::issues::*;
use vbp_kernel::{OrgId, OrgKind, RegionCode, RegionLevel};

use super::*;
use crate::domain::region_from_i32;
use crate::store::{audit, bureau_at, lock};

pub async fn issue_file(svc: Shared, ctx: Context, req: FileIssue) -> R<IssueView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    if a.org_kind != OrgKind::Hospital {
        return Err(RpcError::forbidden(format!(
            "only a hospital may file an issue (you act for a {})",
            a.org_kind
        )));
    }
    if req.evidence.len() > MAX_EVIDENCE {
        return Err(RpcError::invalid(
            "evidence",
            format!("at most {MAX_EVIDENCE} evidence files per issue"),
        ));
    }
    if req.quantity <= 0 || req.quantity > vbp_contracts::ingest::MAX_LINE_QUANTITY {
        return Err(RpcError::invalid(
            "quantity",
            format!(
                "quantity must be between 1 and {}",
                vbp_contracts::ingest::MAX_LINE_QUANTITY
            ),
        ));
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
         updated_at, statement_sealed) \
         VALUES ($1,'dispatched',$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$16,$19)",
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
    .bind(req.statement_sealed)
    .execute(&mut *tx)
    .await?;
    let evidence_sha256 = attach_evidence(&mut tx, a.org, issue, &req.evidence).await?;
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
                evidence_sha256,
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
    for enterprise in std::iter::once(r.manufacturer).chain(r.distributors.iter().copied()) {
        detect_repeat(&mut tx, &svc, &ctx, enterprise, &r.issue_type, now).await?;
    }
    answer(tx, &r).await
}

/// Most evidence files one issue carries.
pub const MAX_EVIDENCE: usize = 20;

/// Attaches the hospital's own, not yet attached evidence files to the new
/// issue; returns their SHA-256 in order.
async fn attach_evidence(
    conn: &mut PgConnection,
    hospital: OrgId,
    issue: IssueId,
    ids: &[EvidenceId],
) -> R<Vec<String>> {
    let wanted: Vec<uuid::Uuid> = ids.iter().map(|e| e.as_uuid()).collect();
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = wanted.iter().find(|id| !seen.insert(**id)) {
        return Err(RpcError::invalid(
            "evidence",
            format!("evidence {twice} is listed twice"),
        ));
    }
    let rows = store::lock_evidence(conn, &wanted).await?;
    let mut sums = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(e) = rows.iter().find(|e| e.id == id.as_uuid()) else {
            return Err(RpcError::invalid(
                "evidence",
                format!("evidence {id} does not exist"),
            ));
        };
        if e.uploaded_by != hospital.as_uuid() {
            return Err(RpcError::invalid(
                "evidence",
                format!("evidence {id} was not uploaded by your organisation"),
            ));
        }
        if e.issue.is_some() {
            return Err(RpcError::invalid(
                "evidence",
                format!("evidence {id} is already attached"),
            ));
        }
        sums.push(e.sha256.clone());
    }
    sqlx::query("UPDATE evidence SET issue = $1 WHERE id = ANY($2)")
        .bind(issue.as_uuid())
        .bind(&wanted)
        .execute(conn)
        .await?;
    Ok(sums)
}

/// Same enterprise and type at least `repeat_threshold` times within
/// `repeat_window_days`: one `repeated` event per run, i.e. not again while
/// an earlier detection for them lies inside the window.
async fn detect_repeat(
    conn: &mut PgConnection,
    svc: &Svc,
    ctx: &Context,
    enterprise: uuid::Uuid,
    issue_type: &str,
    now: DateTime<Utc>,
) -> R<()> {
    let s = &svc.settings;
    let since = now - Duration::days(i64::from(s.repeat_window_days));
    let issues: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM issues WHERE (manufacturer = $1 OR $1 = ANY(distributors)) \
         AND issue_type = $2 AND filed_at > $3 AND state <> 'false_report' ORDER BY filed_at, id",
    )
    .bind(enterprise)
    .bind(issue_type)
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    if issues.len() < s.repeat_threshold as usize {
        return Ok(());
    }
    let reported: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM repeats WHERE enterprise = $1 AND issue_type = $2 \
         AND detected_at > $3)",
    )
    .bind(enterprise)
    .bind(issue_type)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    if reported {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO repeats (enterprise, issue_type, detected_at, issues) VALUES ($1,$2,$3,$4)",
    )
    .bind(enterprise)
    .bind(issue_type)
    .bind(now)
    .bind(&issues)
    .execute(&mut *conn)
    .await?;
    svc.outbox
        .append(
            conn,
            ctx,
            &IssueRepeated {
                enterprise: OrgId::from_uuid(enterprise),
                issue_type: store::enum_of(issue_type),
                count: issues.len() as i64,
                window_days: i64::from(s.repeat_window_days),
                issues: issues.into_iter().map(IssueId::from_uuid).collect(),
                detected_at: now,
            },
        )
        .await?;
    Ok(())
}
