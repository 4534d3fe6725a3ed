//! The orders service: orders, deliveries, receipt and acceptance, invoices, settlement, payment deadlines, online-procurement rate and integrator ingest.
//!
//! It owns the Postgres schema `orders` and talks to other services only
//! through NATS subjects (DESIGN §2–§3).

use vbp_contracts::Service;
use vbp_platform::{Platform, ServiceHost};

pub const SERVICE: Service = Service::Orders;

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
