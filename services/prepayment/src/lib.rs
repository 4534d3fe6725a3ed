//! The prepayment service: prepayment fund calculation (预付金测算), approval, disbursement (划拨), offset (冲抵) and reconciliation.
//!
//! It owns the Postgres schema `prepayment` and talks to other services only
//! through NATS subjects (DESIGN §2–§3).

use vbp_contracts::Service;
use vbp_platform::{Platform, ServiceHost};

pub const SERVICE: Service = Service::Prepayment;

/// This service's migrations, tracked inside its own schema.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// Runs the service until the platform shuts down.
pub async fn run(platform: Platform) -> anyhow::Result<()> {
    ServiceHost::start(&platform, SERVICE, migrator())
        .await?
        .run()
        .await
}
