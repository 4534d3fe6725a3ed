//! Projection of `agreements.agreed_volume.set`: which hospitals hold an
//! agreed volume of which product, so shortage mode serves them first.

use async_trait::async_trait;
use sqlx::PgConnection;
use vbp_bus::{Handler, HandlerError, Incoming};
use vbp_contracts::Event;
use vbp_contracts::agreements::AgreedVolumeSet;

use crate::store;

pub struct AgreedVolumes;

#[async_trait]
impl Handler for AgreedVolumes {
    async fn handle(&self, conn: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        if msg.meta.event_type.as_str() == AgreedVolumeSet::event_type() {
            let ev: AgreedVolumeSet = msg.json()?;
            if !store::apply_agreed_volume(conn, &ev).await? {
                tracing::debug!(period = %ev.period, hospital = %ev.hospital,
                    group = %ev.product_group, revision = ev.revision,
                    "agreed volume revision already held; ignored");
            }
        }
        Ok(())
    }
}
