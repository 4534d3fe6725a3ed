//! The listing rule (Jiangxi style, configurable, off by default) on durable
//! timers: a supply-list product with no active relation
//! `listing_at_risk_days` after its period starts is reported at risk, and
//! suspended at `listing_suspend_days` unless a relation became active.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use vbp_bus::timers::{DueTimer, TimerHandler};
use vbp_bus::{Context, HandlerError};
use vbp_contracts::agreements::PeriodId;
use vbp_contracts::distribution::{ListingAtRisk, ListingState, ListingSuspended};
use vbp_kernel::{Actor, CorrelationId};

use crate::api::Shared;
use crate::domain::{self, Settings};
use crate::store;

pub const LISTING_AT_RISK_TIMER: &str = "distribution.listing.at_risk";
pub const LISTING_SUSPEND_TIMER: &str = "distribution.listing.suspend";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListingDue {
    pub period: PeriodId,
}

/// Arms the two listing timers of a period once (when the rule is on and
/// the period's bounds are known). Returns whether it armed them.
pub async fn arm_listing(
    conn: &mut PgConnection,
    period: PeriodId,
    settings: &Settings,
    correlation: CorrelationId,
) -> Result<bool, HandlerError> {
    if !settings.listing_rule_enabled {
        return Ok(false);
    }
    let Some(p) = store::lock_period(conn, period).await? else {
        return Ok(false);
    };
    if p.listing_armed {
        return Ok(false);
    }
    let (risk_at, suspend_at) = domain::listing_deadlines(p.starts_at, settings);
    let key = period.to_string();
    let payload = ListingDue { period };
    vbp_bus::timers::schedule(
        conn,
        LISTING_AT_RISK_TIMER,
        &key,
        risk_at,
        Some(correlation),
        &payload,
    )
    .await?;
    vbp_bus::timers::schedule(
        conn,
        LISTING_SUSPEND_TIMER,
        &key,
        suspend_at,
        Some(correlation),
        &payload,
    )
    .await?;
    store::set_listing_armed(conn, period).await?;
    tracing::info!(%period, %risk_at, %suspend_at, "listing rule armed");
    Ok(true)
}

fn ctx_of(timer: &DueTimer) -> Context {
    Context::with_correlation(
        timer.correlation.unwrap_or_else(CorrelationId::new),
        Some(Actor::system("distribution-listing-rule")),
    )
}

/// Flags every product of the period without an active relation at `now`
/// that has no listing state yet; returns how many.
async fn flag_at_risk(
    conn: &mut PgConnection,
    svc: &Shared,
    ctx: &Context,
    period: PeriodId,
    now: DateTime<Utc>,
) -> Result<usize, HandlerError> {
    let Some(p) = store::lock_period(conn, period).await? else {
        return Err(HandlerError::permanent(format!(
            "period {period} of a listing timer is not projected"
        )));
    };
    let (_, suspend_at) = domain::listing_deadlines(p.starts_at, &svc.settings);
    let reason = format!(
        "no active distribution relation {} days after the period started",
        svc.settings.listing_at_risk_days
    );
    let mut n = 0;
    for item in store::items_without_active_relation(conn, period, now).await? {
        if store::flag_at_risk(
            conn,
            period,
            &item.national_code,
            item.manufacturer,
            p.starts_at,
            suspend_at,
            now,
        )
        .await?
        {
            svc.outbox
                .append(
                    conn,
                    ctx,
                    &ListingAtRisk {
                        period,
                        national_code: item.national_code.clone(),
                        manufacturer: item.manufacturer,
                        since: p.starts_at,
                        suspend_at,
                        reason: reason.clone(),
                        flagged_at: now,
                    },
                )
                .await?;
            n += 1;
        }
    }
    Ok(n)
}

pub struct AtRisk(pub Shared);

#[async_trait]
impl TimerHandler for AtRisk {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        let due: ListingDue = timer.payload()?;
        let now = self.0.clock.now();
        let n = flag_at_risk(conn, &self.0, &ctx_of(timer), due.period, now).await?;
        tracing::info!(period = %due.period, flagged = n, "listing rule: at-risk pass");
        Ok(())
    }
}

pub struct Suspend(pub Shared);

#[async_trait]
impl TimerHandler for Suspend {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        let due: ListingDue = timer.payload()?;
        let now = self.0.clock.now();
        let ctx = ctx_of(timer);
        // Whatever the at-risk pass has not flagged yet (same due time,
        // late firing) is flagged first.
        flag_at_risk(conn, &self.0, &ctx, due.period, now).await?;
        let still: std::collections::BTreeSet<String> =
            store::items_without_active_relation(conn, due.period, now)
                .await?
                .into_iter()
                .map(|i| i.national_code.as_str().to_owned())
                .collect();
        let reason = format!(
            "no active distribution relation {} days after the period started; restoring needs an application",
            self.0.settings.listing_suspend_days
        );
        let mut n = 0;
        for l in store::at_risk(conn, due.period).await? {
            if !still.contains(l.national_code.as_str()) {
                store::clear_at_risk(conn, due.period, &l.national_code, now).await?;
                continue;
            }
            store::set_listing_state(
                conn,
                due.period,
                &l.national_code,
                ListingState::Suspended,
                now,
            )
            .await?;
            self.0
                .outbox
                .append(
                    conn,
                    &ctx,
                    &ListingSuspended {
                        period: due.period,
                        national_code: l.national_code.clone(),
                        manufacturer: l.manufacturer,
                        reason: reason.clone(),
                        suspended_at: now,
                    },
                )
                .await?;
            n += 1;
        }
        tracing::info!(period = %due.period, suspended = n, "listing rule: suspension pass");
        Ok(())
    }
}

/// Arms the listing timers of projected periods that have none (the rule
/// was switched on after their events arrived); run once at start-up.
pub async fn arm_missing(svc: &Shared) -> Result<usize, HandlerError> {
    if !svc.settings.listing_rule_enabled {
        return Ok(0);
    }
    let mut tx = svc.pool.begin().await?;
    let mut n = 0;
    for id in store::periods_without_listing_timers(&mut tx).await? {
        if arm_listing(&mut tx, id, &svc.settings, CorrelationId::new()).await? {
            n += 1;
        }
    }
    tx.commit().await?;
    Ok(n)
}
