//! Projections of other services' events, each applied inside the inbox
//! transaction: the agreements service's directory (with integrators'
//! `acts_for`), periods and supply lists with winning prices; the
//! distribution service's relations over time.

use async_trait::async_trait;
use sqlx::PgConnection;
use vbp_bus::{Handler, HandlerError, Incoming};
use vbp_contracts::Event;
use vbp_contracts::agreements::{OrgRegistered, OrgUpdated, PeriodOpened, SupplyListPublished};
use vbp_contracts::distribution::{RelationActivated, RelationChanged, RelationEnded};

use crate::store::{self, RelationRow};

/// `agreements.org.*`, `agreements.period.opened`, `agreements.supply_list.published`.
pub struct Directory;

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
            bounds(ev.period, ev.starts_at, ev.ends_at)?;
            store::upsert_period(conn, ev.period, ev.number, ev.starts_at, ev.ends_at).await?;
        } else if t == SupplyListPublished::event_type() {
            let ev: SupplyListPublished = msg.json()?;
            bounds(ev.period, ev.starts_at, ev.ends_at)?;
            store::upsert_period(conn, ev.period, ev.period_number, ev.starts_at, ev.ends_at)
                .await?;
            if !store::replace_supply_list(conn, ev.period, ev.revision, &ev.items, ev.published_at)
                .await?
            {
                tracing::debug!(period = %ev.period, revision = ev.revision,
                    "supply list revision already held; ignored");
            }
        }
        Ok(())
    }
}

fn bounds(
    period: impl std::fmt::Display,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<(), HandlerError> {
    if from >= to {
        return Err(HandlerError::permanent(format!(
            "period {period}: starts_at must be before ends_at"
        )));
    }
    Ok(())
}

/// `distribution.relation.activated / ended / changed`.
pub struct Relations;

#[async_trait]
impl Handler for Relations {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let t = msg.meta.event_type.as_str();
        if t == RelationActivated::event_type() {
            let ev: RelationActivated = msg.json()?;
            store::upsert_relation(
                conn,
                &RelationRow {
                    id: ev.relation.as_uuid(),
                    period: ev.period,
                    hospital: ev.hospital,
                    national_code: &ev.national_code,
                    distributor: ev.distributor,
                    valid_from: ev.valid_from,
                    valid_to: ev.valid_to,
                },
            )
            .await?;
        } else if t == RelationEnded::event_type() {
            let ev: RelationEnded = msg.json()?;
            store::upsert_relation(
                conn,
                &RelationRow {
                    id: ev.relation.as_uuid(),
                    period: ev.period,
                    hospital: ev.hospital,
                    national_code: &ev.national_code,
                    distributor: ev.distributor,
                    valid_from: ev.valid_from,
                    valid_to: Some(ev.valid_to),
                },
            )
            .await?;
        } else if t == RelationChanged::event_type() {
            // The old relation's `ended` and the new one's `activated`
            // follow in the same transaction; they carry the intervals.
            let _: RelationChanged = msg.json()?;
        }
        Ok(())
    }
}
