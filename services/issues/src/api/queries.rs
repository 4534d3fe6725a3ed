//! Reads, each scoped by the caller in SQL: one issue, the list, the work
//! list of what is due next, and the deadline preview.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use vbp_bus::Context;
use vbp_contracts::issues::*;
use vbp_contracts::page::Window;
use vbp_kernel::{NationalCode, OrgId};

use super::*;
use crate::store::{SCOPE, Scope, enum_of};

pub async fn issue_get(svc: Shared, ctx: Context, req: GetIssue) -> R<IssueView> {
    let a = actor(&ctx)?;
    let mut tx = svc.pool.begin().await?;
    let r = visible_locked(&mut tx, a, req.issue).await?;
    answer(tx, &r).await
}

pub async fn issue_list(svc: Shared, ctx: Context, req: ListIssues) -> R<Page<IssueView>> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let mut conn = svc.pool.acquire().await?;
    let state = req.state.map(enum_str);
    let (rows, total) =
        store::scoped_rows(&mut conn, a, state.as_deref(), w.limit(), w.offset()).await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        items.push(store::view(&mut conn, r).await?);
    }
    Ok(w.page(items, total))
}

/// What the caller owes next, soonest first: an enterprise its responses,
/// a bureau its handling (the province what was escalated to it), a
/// hospital its confirmations; the operator sees every open stage.
pub async fn work_list(svc: Shared, ctx: Context, _req: WorkListQuery) -> R<WorkList> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let s = Scope::of(a);
    // One row per stage owed; `$4` is the caller's org, and the operator
    // (kind 'operator') owes nothing itself but sees every stage.
    let sql = format!(
        "SELECT id, stage, due_at, state, hospital, national_code, product_name, issue_type \
         FROM ( \
           SELECT *, 'enterprise_response' AS stage, enterprise_due_at AS due_at FROM issues \
            WHERE state = 'dispatched' AND responded_at IS NULL \
              AND ($1 = 'operator' OR ($1 IN ('manufacturer', 'distributor') \
                   AND (manufacturer = $4 OR $4 = ANY(distributors)))) \
           UNION ALL \
           SELECT *, 'bureau_handling', handling_due_at FROM issues \
            WHERE state IN ('dispatched', 'responded') AND handling_due_at IS NOT NULL \
              AND ($1 = 'operator' OR ($1 = 'bureau' AND bureau = $4)) \
           UNION ALL \
           SELECT *, 'province_handling', handling_due_at FROM issues \
            WHERE state = 'escalated' AND handling_due_at IS NOT NULL \
              AND ($1 = 'operator' OR ($1 = 'bureau' AND province = $4)) \
           UNION ALL \
           SELECT *, 'hospital_confirmation', auto_resolve_at FROM issues \
            WHERE state = 'feedback_given' AND auto_resolve_at IS NOT NULL \
              AND ($1 = 'operator' OR ($1 = 'hospital' AND hospital = $4)) \
         ) owed WHERE {SCOPE} ORDER BY due_at, id"
    );
    #[allow(clippy::type_complexity)]
    let rows: Vec<(
        uuid::Uuid,
        String,
        DateTime<Utc>,
        String,
        uuid::Uuid,
        String,
        String,
        String,
    )> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(s.kind)
        .bind(s.lo)
        .bind(s.hi)
        .bind(s.org)
        .fetch_all(&mut *svc.pool.acquire().await?)
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for (id, stage, due_at, state, hospital, code, product_name, issue_type) in rows {
        items.push(WorkItem {
            issue: IssueId::from_uuid(id),
            stage: enum_of(&stage),
            due_at,
            overdue: due_at <= now,
            state: enum_of(&state),
            hospital: OrgId::from_uuid(hospital),
            national_code: NationalCode::parse(&code)
                .map_err(|e| RpcError::internal(format!("stored national code {code}: {e}")))?,
            product_name,
            issue_type: enum_of(&issue_type),
        });
    }
    Ok(WorkList { items })
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
