//! Operator commands. They work on the database directly with the
//! administrative URL, so they are usable while services are down.

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use vbp_contracts::Service;
use vbp_platform::{Config, db};

fn migrator_of(service: Service) -> Option<sqlx::migrate::Migrator> {
    Some(match service {
        Service::Gateway => return None,
        Service::Agreements => vbp_agreements::migrator(),
        Service::Distribution => vbp_distribution::migrator(),
        Service::Orders => vbp_orders::migrator(),
        Service::Prepayment => vbp_prepayment::migrator(),
        Service::Issues => vbp_issues::migrator(),
    })
}

pub async fn migrate(services: Vec<Service>) -> anyhow::Result<()> {
    let mut config = Config::load()?;
    config.db_bootstrap = true;
    let services = if services.is_empty() {
        Service::BACKENDS.to_vec()
    } else {
        services
    };
    let token = CancellationToken::new();
    for service in services {
        let Some(migrator) = migrator_of(service) else {
            println!("{service}: no schema");
            continue;
        };
        let pool = db::prepare(&config, service, &migrator, &token).await?;
        pool.close().await;
        println!("{service}: schema {service} migrated");
    }
    Ok(())
}

pub async fn republish(service: Service, since: DateTime<Utc>) -> anyhow::Result<()> {
    let config = Config::load()?;
    let pool = db::admin_pool_in(&config, service)?;
    let n = vbp_bus::outbox::republish_since(&pool, since).await?;
    println!("{service}: {n} events since {since} queued for re-publication");
    Ok(())
}

pub async fn backlog() -> anyhow::Result<()> {
    let config = Config::load()?;
    for service in Service::BACKENDS {
        let pool = db::admin_pool_in(&config, service)?;
        let n: Result<i64, _> =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
                .fetch_one(&pool)
                .await;
        match n {
            Ok(n) => println!("{service}: {n}"),
            Err(e) => println!("{service}: unavailable ({e})"),
        }
    }
    Ok(())
}

pub async fn dlq_list(service: Service, limit: i64) -> anyhow::Result<()> {
    let config = Config::load()?;
    let pool = db::admin_pool_in(&config, service)?;
    let letters = vbp_bus::dlq::list(&pool, service, limit).await?;
    if letters.is_empty() {
        println!("{service}: no dead letters");
    }
    for l in letters {
        println!(
            "{}  {}  consumer={} type={} attempts={} replay={}\n    reason: {}",
            l.id,
            l.dead_at.to_rfc3339(),
            l.consumer,
            l.event_type,
            l.attempts,
            l.replay_outcome
                .as_deref()
                .unwrap_or(if l.replay_requested_at.is_some() {
                    "requested"
                } else {
                    "-"
                }),
            l.reason
        );
    }
    Ok(())
}

pub async fn dlq_replay(service: Service, id: Option<uuid::Uuid>) -> anyhow::Result<()> {
    let config = Config::load()?;
    let pool = db::admin_pool_in(&config, service)?;
    let n = vbp_bus::dlq::request_replay(&pool, id).await?;
    println!(
        "{service}: replay requested for {n} dead letter(s); the running service applies them within seconds"
    );
    Ok(())
}
