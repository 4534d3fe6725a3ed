//! One database, one schema and one login role per service (DESIGN §4). A
//! service's role owns only its schema, and its connections' search_path is
//! that schema, so every table a service touches is its own.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor, PgPool};
use tokio_util::sync::CancellationToken;
use vbp_contracts::Service;

use crate::config::Config;

pub fn role_name(service: Service) -> String {
    format!("vbp_{service}")
}

pub fn schema_name(service: Service) -> &'static str {
    service.as_str()
}

/// Creates the service's role and schema if missing. Safe to run from many
/// processes at once.
pub async fn bootstrap(
    admin: &PgPool,
    service: Service,
    role_password: &str,
) -> anyhow::Result<()> {
    let role = role_name(service);
    let schema = schema_name(service);
    // Identifiers come from the closed Service enum; the password is quoted
    // as a literal by Postgres itself.
    let password: String = sqlx::query_scalar("SELECT quote_literal($1)")
        .bind(role_password)
        .fetch_one(admin)
        .await?;
    let create_role = format!(
        "DO $$ BEGIN CREATE ROLE {role} LOGIN PASSWORD {password}; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    );
    let create_schema = format!(
        "DO $$ BEGIN CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}; \
         EXCEPTION WHEN duplicate_schema OR unique_violation THEN NULL; END $$"
    );
    for attempt in 0..5 {
        let result = async {
            admin.execute(AssertSqlSafe(create_role.clone())).await?;
            admin.execute(AssertSqlSafe(create_schema.clone())).await?;
            admin
                .execute(AssertSqlSafe(format!(
                    "ALTER SCHEMA {schema} OWNER TO {role}"
                )))
                .await?;
            Ok::<_, sqlx::Error>(())
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            // Concurrent catalogue updates ("tuple concurrently updated").
            Err(_) if attempt < 4 => {
                tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn options(url: &str) -> anyhow::Result<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|e| anyhow::anyhow!("database URL: {e}"))
}

/// Connect options of a service: its own URL when configured, else the
/// administrative URL with the service's role; search_path = its schema.
pub fn service_options(config: &Config, service: Service) -> anyhow::Result<PgConnectOptions> {
    let opts = match config.service_database_urls.get(service.as_str()) {
        Some(url) => options(url)?,
        None => options(&config.database_url)?
            .username(&role_name(service))
            .password(&config.db_role_password),
    };
    Ok(opts
        .application_name(&format!("vbp-{service}"))
        .options([("search_path", schema_name(service))]))
}

pub fn admin_pool(config: &Config) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options(&config.database_url)?.application_name("vbp-admin")))
}

/// An administrative pool whose search_path is one service's schema, for
/// operator commands (`vbp dlq`, `vbp outbox`).
pub fn admin_pool_in(config: &Config, service: Service) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(
            options(&config.database_url)?
                .application_name("vbp-admin")
                .options([("search_path", schema_name(service))]),
        ))
}

pub fn service_pool(config: &Config, service: Service) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(service_options(config, service)?))
}

/// Waits until the pool answers, with backoff, so a service started before
/// its database (or during a restart) waits instead of crash-looping.
pub async fn wait_until_ready(
    pool: &PgPool,
    what: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut pause = Duration::from_millis(200);
    loop {
        match sqlx::query("SELECT 1").execute(pool).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::warn!(database = what, error = %e, retry_in = ?pause, "database not reachable yet");
                tokio::select! {
                    _ = shutdown.cancelled() => anyhow::bail!("shut down while waiting for {what}"),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Bootstrap (when configured), wait, and migrate: the delivery tables
/// first, then the service's own migrations, both tracked in its schema.
pub async fn prepare(
    config: &Config,
    service: Service,
    migrator: &sqlx::migrate::Migrator,
    shutdown: &CancellationToken,
) -> anyhow::Result<PgPool> {
    if config.db_bootstrap {
        let admin = admin_pool(config)?;
        wait_until_ready(&admin, "admin", shutdown).await?;
        bootstrap(&admin, service, &config.db_role_password).await?;
        admin.close().await;
    }
    let pool = service_pool(config, service)?;
    wait_until_ready(&pool, service.as_str(), shutdown).await?;
    vbp_bus::migrator().run(&pool).await?;
    migrator.run(&pool).await?;
    Ok(pool)
}
