//! Event handlers: the agreements service's directory, periods and supply
//! lists feed this service's projections. Each runs inside the inbox
//! transaction; the listing-rule timers of a period are armed in it too.

use async_trait::async_trait;
use sqlx::PgConnection;
use vbp_bus::{Handler, HandlerError, Incoming};
use vbp_contracts::Event;
use vbp_contracts::agreements::{OrgRegistered, OrgUpdated, PeriodOpened, SupplyListPublished};

use crate::domain::Settings;
use crate::{store, timers};

/// `agreements.org.*`, `agreements.period.opened`,
/// `agreements.supply_list.published` → projections.
pub struct Directory {
    pub settings: Settings,
}

#[async_trait]
impl Handler for Directory {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let t = msg.meta.event_type.as_str();
        if t == OrgRegistered::event_type() {
            let ev: OrgRegistered = msg.json()?;
            store::upsert_org(conn, &ev.record, ev.registered_at).await?;
        } else if t == OrgUpdated::event_type() {
            let ev: OrgUpdated = msg.json()?;
            store::upsert_org(conn, &ev.record, ev.updated_at).await?;
        } else if t == PeriodOpened::event_type() {
            let ev: PeriodOpened = msg.json()?;
            if ev.starts_at >= ev.ends_at {
                return Err(HandlerError::permanent(format!(
                    "period {}: starts_at must be before ends_at",
                    ev.period
                )));
            }
            store::upsert_period(
                conn,
                ev.period,
                ev.project.as_uuid(),
                &ev.project_code,
                ev.number,
                ev.starts_at,
                ev.ends_at,
            )
            .await?;
            timers::arm_listing(conn, ev.period, &self.settings, msg.meta.correlation).await?;
        } else if t == SupplyListPublished::event_type() {
            let ev: SupplyListPublished = msg.json()?;
            if ev.starts_at >= ev.ends_at {
                return Err(HandlerError::permanent(format!(
                    "period {}: starts_at must be before ends_at",
                    ev.period
                )));
            }
            store::upsert_period(
                conn,
                ev.period,
                ev.project.as_uuid(),
                &ev.project_code,
                ev.period_number,
                ev.starts_at,
                ev.ends_at,
            )
            .await?;
            let replaced = store::replace_supply_list(
                conn,
                ev.period,
                ev.revision,
                &ev.items,
                ev.published_at,
            )
            .await?;
            if !replaced {
                tracing::debug!(period = %ev.period, revision = ev.revision,
                    "supply list revision already held; ignored");
            }
            timers::arm_listing(conn, ev.period, &self.settings, msg.meta.correlation).await?;
        }
        Ok(())
    }
}
