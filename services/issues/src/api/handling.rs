//! The closed loop after dispatch: the enterprise responds, the territorial
//! bureau handles or escalates, the handling bureau gives feedback (or finds
//! the report false), and the hospital confirms or reopens.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;
use vbp_bus::{Context, RpcError};
use vbp_contracts::issues::*;
use vbp_kernel::{Actor, OrgKind};

use super::*;
use crate::domain::{self, region_from_i32};
use crate::store::{audit, bureau_at, save};

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
    answer(tx, &r).await
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
    answer(tx, &r).await
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
    answer(tx, &r).await
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
    answer(tx, &r).await
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
    answer(tx, &r).await
}

pub async fn issue_mark_false(svc: Shared, ctx: Context, req: MarkFalseReport) -> R<IssueView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    required("reason", &req.reason, MAX_TEXT)?;
    let mut tx = svc.pool.begin().await?;
    let mut r = visible_locked(&mut tx, a, req.issue).await?;
    let handler = if r.state() == IssueState::Escalated {
        r.province
    } else {
        Some(r.bureau)
    };
    if a.org_kind != OrgKind::Bureau || handler != Some(a.org.as_uuid()) {
        return Err(RpcError::forbidden(
            "only the bureau handling the issue (the province after escalation) may mark it false",
        ));
    }
    transition(
        &r,
        &[
            IssueState::Dispatched,
            IssueState::Responded,
            IssueState::Escalated,
        ],
        "marked false",
    )?;
    r.state = enum_str(IssueState::FalseReport);
    r.false_report_at = Some(now);
    save(&mut tx, &r, now).await?;
    audit(&mut tx, r.id, a, "marked_false", req.reason.trim(), now).await?;
    cancel(&mut tx, ENTERPRISE_TIMER, r.issue()).await?;
    cancel(&mut tx, HANDLING_TIMER, r.issue()).await?;
    // The hospital's reminder count: every report of it found false.
    let false_reports: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM issues WHERE hospital = $1 AND state = 'false_report'",
    )
    .bind(r.hospital)
    .fetch_one(&mut *tx)
    .await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &IssueFalseReport {
                issue: r.issue(),
                hospital: vbp_kernel::OrgId::from_uuid(r.hospital),
                bureau: a.org,
                reason: req.reason.trim().to_owned(),
                false_reports,
                marked_at: now,
            },
        )
        .await?;
    answer(tx, &r).await
}
