//! RPC handlers and the transitions shared with the timers. Each one checks
//! who acts, validates, and commits its state change, audit row, timers and
//! outbox events in one transaction; on any error nothing changes.
//!
//! Modules by concern: [`filing`] (filing, auto-dispatch, repeats),
//! [`handling`] (response, escalation, feedback, confirmation, false
//! reports), [`queries`] (get, list, work list, deadline preview),
//! [`ledger`] (台账 and its quarterly export), [`evidence`] (files).

mod evidence;
mod filing;
mod handling;
mod ledger;
mod queries;

use std::sync::Arc;

use async_nats::jetstream::object_store::ObjectStore;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use vbp_bus::{Context, Outbox, RpcError};
use vbp_contracts::issues::*;
use vbp_kernel::{Actor, BusinessCalendar, SharedClock};

use crate::domain::Settings;
use crate::store::{self, Due, Row, enum_str};

pub use evidence::{evidence_begin, evidence_get, evidence_upload};
pub use filing::issue_file;
pub use handling::{
    escalate, issue_confirm, issue_escalate, issue_feedback, issue_mark_false, issue_reopen,
    issue_respond,
};
pub use ledger::{ledger, ledger_export};
pub use queries::{deadline_preview, issue_get, issue_list, work_list};

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
    /// The evidence bucket ([`vbp_contracts::issues::evidence_bucket`]).
    pub evidence: ObjectStore,
}

pub type Shared = Arc<Svc>;

pub(crate) type R<T> = Result<T, RpcError>;

pub(crate) fn actor(ctx: &Context) -> R<&Actor> {
    ctx.actor
        .as_ref()
        .ok_or_else(|| RpcError::forbidden("an authenticated actor is required"))
}

pub(crate) fn not_found(id: IssueId) -> RpcError {
    RpcError::not_found(format!("issue {id} does not exist"))
}

pub(crate) fn beijing_date(t: DateTime<Utc>) -> NaiveDate {
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

pub(crate) fn transition(r: &Row, allowed: &[IssueState], what: &str) -> R<()> {
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

pub(crate) fn required(field: &str, v: &str, max: usize) -> R<()> {
    let n = v.trim().chars().count();
    if n == 0 || n > max {
        return Err(RpcError::invalid(
            field,
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    Ok(())
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

pub(crate) async fn cancel(conn: &mut PgConnection, kind: &str, issue: IssueId) -> R<()> {
    vbp_bus::timers::cancel(conn, kind, &issue.to_string())
        .await
        .map_err(|e| RpcError::internal(e.to_string()))?;
    Ok(())
}

/// Longest free-text field accepted.
pub const MAX_TEXT: usize = 2000;

/// Locks an issue the actor may see (otherwise not found).
pub(crate) async fn visible_locked(conn: &mut PgConnection, a: &Actor, id: IssueId) -> R<Row> {
    store::lock_scoped(conn, a, id.as_uuid())
        .await?
        .ok_or_else(|| not_found(id))
}

/// Commits the transaction and answers the issue as it now stands.
pub(crate) async fn answer(mut tx: sqlx::Transaction<'_, sqlx::Postgres>, r: &Row) -> R<IssueView> {
    let v = store::view(&mut tx, r).await?;
    tx.commit().await?;
    Ok(v)
}
