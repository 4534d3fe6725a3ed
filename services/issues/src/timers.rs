//! Durable timers: the enterprise response deadline, the handling deadline
//! (bureau, or province after escalation) and the 30-day default
//! confirmation. Each checks that the issue still waits for exactly the
//! deadline it was armed for.

use async_trait::async_trait;
use sqlx::PgConnection;
use vbp_bus::timers::{DueTimer, TimerHandler};
use vbp_bus::{Context, HandlerError};
use vbp_contracts::issues::*;
use vbp_kernel::{Actor, CorrelationId, OrgId};

use crate::api::{self, Shared};
use crate::domain::region_from_i32;
use crate::store::{self, Due};

fn ctx_of(timer: &DueTimer, who: &str) -> Context {
    Context::with_correlation(
        timer.correlation.unwrap_or_else(CorrelationId::new),
        Some(Actor::system(who)),
    )
}

fn err(e: vbp_bus::RpcError) -> HandlerError {
    HandlerError::permanent(e.to_string())
}

#[allow(clippy::too_many_arguments)]
async fn overdue(
    conn: &mut PgConnection,
    svc: &Shared,
    ctx: &Context,
    r: &store::Row,
    stage: IssueStage,
    party: uuid::Uuid,
    due_at: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), HandlerError> {
    store::save(conn, r, now).await?;
    let a = ctx.actor.clone().unwrap_or_else(|| Actor::system("issues"));
    store::audit(
        conn,
        r.id,
        &a,
        "overdue",
        &format!("{stage:?} due {due_at}"),
        now,
    )
    .await?;
    svc.outbox
        .append(
            conn,
            ctx,
            &IssueOverdue {
                issue: r.issue(),
                stage,
                party: OrgId::from_uuid(party),
                due_at,
                flagged_at: now,
            },
        )
        .await?;
    Ok(())
}

/// Enterprise response overdue.
pub struct EnterpriseDue(pub Shared);

#[async_trait]
impl TimerHandler for EnterpriseDue {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        let due: Due = timer.payload()?;
        let now = self.0.clock.now();
        let ctx = ctx_of(timer, "issues-enterprise-deadline");
        let Some(mut r) = store::lock(conn, due.issue.as_uuid()).await? else {
            return Ok(());
        };
        if r.state() != IssueState::Dispatched
            || r.responded_at.is_some()
            || r.overdue_enterprise
            || r.enterprise_due_at != due.due_at
        {
            return Ok(());
        }
        r.overdue_enterprise = true;
        let party = r.manufacturer;
        overdue(
            conn,
            &self.0,
            &ctx,
            &r,
            IssueStage::EnterpriseResponse,
            party,
            due.due_at,
            now,
        )
        .await
    }
}

/// Bureau or province handling overdue; the bureau's overdue escalates to
/// the province when `issues.auto_escalate_when_overdue`.
pub struct HandlingDue(pub Shared);

#[async_trait]
impl TimerHandler for HandlingDue {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        let due: Due = timer.payload()?;
        let now = self.0.clock.now();
        let ctx = ctx_of(timer, "issues-handling-deadline");
        let Some(mut r) = store::lock(conn, due.issue.as_uuid()).await? else {
            return Ok(());
        };
        if r.handling_due_at != Some(due.due_at) {
            return Ok(());
        }
        match r.state() {
            IssueState::Dispatched | IssueState::Responded => {
                r.overdue_bureau = true;
                let party = r.bureau;
                overdue(
                    conn,
                    &self.0,
                    &ctx,
                    &r,
                    IssueStage::BureauHandling,
                    party,
                    due.due_at,
                    now,
                )
                .await?;
                if self.0.settings.auto_escalate_when_overdue {
                    let a = ctx.actor.clone().unwrap_or_else(|| Actor::system("issues"));
                    let reason = format!(
                        "bureau of {} did not give feedback by {}",
                        region_from_i32(r.bureau_region),
                        due.due_at
                    );
                    let done = api::escalate(conn, &self.0, &ctx, &a, &mut r, true, &reason, now)
                        .await
                        .map_err(err)?;
                    if !done {
                        tracing::warn!(issue = %r.id, "no province bureau to escalate to");
                    }
                }
                Ok(())
            }
            IssueState::Escalated if !r.overdue_province => {
                r.overdue_province = true;
                let party = r.province.unwrap_or_default();
                overdue(
                    conn,
                    &self.0,
                    &ctx,
                    &r,
                    IssueStage::ProvinceHandling,
                    party,
                    due.due_at,
                    now,
                )
                .await
            }
            _ => Ok(()),
        }
    }
}

/// 30 days after feedback without confirmation or reopening: resolved.
pub struct AutoResolve(pub Shared);

#[async_trait]
impl TimerHandler for AutoResolve {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        let due: Due = timer.payload()?;
        let now = self.0.clock.now();
        let ctx = ctx_of(timer, "issues-default-confirmation");
        let Some(mut r) = store::lock(conn, due.issue.as_uuid()).await? else {
            return Ok(());
        };
        if r.state() != IssueState::FeedbackGiven || r.auto_resolve_at != Some(due.due_at) {
            return Ok(());
        }
        r.state = "resolved".to_owned();
        r.resolved_at = Some(now);
        store::save(conn, &r, now).await?;
        let a = ctx.actor.clone().unwrap_or_else(|| Actor::system("issues"));
        store::audit(
            conn,
            r.id,
            &a,
            "auto_resolved",
            "no confirmation or reopening within the limit after feedback",
            now,
        )
        .await?;
        self.0
            .outbox
            .append(
                conn,
                &ctx,
                &IssueAutoResolved {
                    issue: r.issue(),
                    hospital: OrgId::from_uuid(r.hospital),
                    hospital_region: region_from_i32(r.hospital_region),
                    feedback_at: r.feedback_at.unwrap_or(due.due_at),
                    resolved_at: now,
                },
            )
            .await?;
        Ok(())
    }
}
