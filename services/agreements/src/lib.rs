//! The agreements service: projects, agreement periods, supply lists, volume reports, agreed volumes, tripartite agreements and procurement progress.
//!
//! It owns the Postgres schema `agreements` and talks to other services only
//! through NATS subjects (DESIGN §2–§3).

use vbp_contracts::Service;
use vbp_platform::{Platform, ServiceHost};

pub const SERVICE: Service = Service::Agreements;

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
