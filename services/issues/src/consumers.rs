//! Projections, each inside the inbox transaction: supply lists and the org
//! directory from the agreements service; distribution relations over time.

use async_trait::async_trait;
use sqlx::PgConnection;
use vbp_bus::{Handler, HandlerError, Incoming};
use vbp_contracts::Event;
use vbp_contracts::agreements::{OrgRegistered, OrgUpdated, SupplyListPublished};
use vbp_contracts::distribution::{RelationActivated, RelationChanged, RelationEnded};

/// `agreements.supply_list.published`, `agreements.org.registered|updated`.
pub struct Agreements;

#[async_trait]
impl Handler for Agreements {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let t = msg.meta.event_type.as_str();
        if t == OrgRegistered::event_type() {
            let ev: OrgRegistered = msg.json()?;
            vbp_platform::directory::upsert_org(conn, &ev.record).await?;
        } else if t == OrgUpdated::event_type() {
            let ev: OrgUpdated = msg.json()?;
            vbp_platform::directory::upsert_org(conn, &ev.record).await?;
        } else if t == SupplyListPublished::event_type() {
            let ev: SupplyListPublished = msg.json()?;
            let held: Option<i32> =
                sqlx::query_scalar("SELECT max(revision) FROM supply_items WHERE period = $1")
                    .bind(ev.period.as_uuid())
                    .fetch_one(&mut *conn)
                    .await?;
            if held.is_some_and(|r| r > ev.revision) {
                return Ok(());
            }
            // The complete list replaces any earlier revision.
            sqlx::query("DELETE FROM supply_items WHERE period = $1")
                .bind(ev.period.as_uuid())
                .execute(&mut *conn)
                .await?;
            for i in &ev.items {
                sqlx::query(
                    "INSERT INTO supply_items (period, national_code, generic_name, spec_model, \
                     manufacturer, starts_at, ends_at, revision, published_at) \
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING",
                )
                .bind(ev.period.as_uuid())
                .bind(i.national_code.as_str())
                .bind(&i.generic_name)
                .bind(&i.spec_model)
                .bind(i.manufacturer.as_uuid())
                .bind(ev.starts_at)
                .bind(ev.ends_at)
                .bind(ev.revision)
                .bind(ev.published_at)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }
}

/// `distribution.relation.activated|ended|changed`.
pub struct Relations;

#[async_trait]
impl Handler for Relations {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let t = msg.meta.event_type.as_str();
        if t == RelationActivated::event_type() {
            let ev: RelationActivated = msg.json()?;
            sqlx::query(
                "INSERT INTO relations (id, hospital, national_code, manufacturer, distributor, \
                 valid_from, valid_to) VALUES ($1,$2,$3,$4,$5,$6,$7) \
                 ON CONFLICT (id) DO UPDATE SET valid_from = EXCLUDED.valid_from, \
                 valid_to = COALESCE(relations.valid_to, EXCLUDED.valid_to)",
            )
            .bind(ev.relation.as_uuid())
            .bind(ev.hospital.as_uuid())
            .bind(ev.national_code.as_str())
            .bind(ev.manufacturer.as_uuid())
            .bind(ev.distributor.as_uuid())
            .bind(ev.valid_from)
            .bind(ev.valid_to)
            .execute(&mut *conn)
            .await?;
        } else if t == RelationEnded::event_type() {
            let ev: RelationEnded = msg.json()?;
            // Arriving before its `activated` event still records the bounds.
            sqlx::query(
                "INSERT INTO relations (id, hospital, national_code, manufacturer, distributor, \
                 valid_from, valid_to) VALUES ($1,$2,$3,$4,$5,$6,$7) \
                 ON CONFLICT (id) DO UPDATE SET valid_to = EXCLUDED.valid_to",
            )
            .bind(ev.relation.as_uuid())
            .bind(ev.hospital.as_uuid())
            .bind(ev.national_code.as_str())
            .bind(ev.manufacturer.as_uuid())
            .bind(ev.distributor.as_uuid())
            .bind(ev.valid_from)
            .bind(ev.valid_to)
            .execute(&mut *conn)
            .await?;
        } else if t == RelationChanged::event_type() {
            // The old relation's `ended` and the new one's `activated`
            // follow; only the old relation's end is applied here in case
            // they arrive out of order.
            let ev: RelationChanged = msg.json()?;
            sqlx::query(
                "UPDATE relations SET valid_to = $2 WHERE id = $1 \
                 AND (valid_to IS NULL OR valid_to > $2)",
            )
            .bind(ev.old_relation.as_uuid())
            .bind(ev.effective_from)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
