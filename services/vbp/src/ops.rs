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
        Service::Supervision => vbp_supervision::migrator(),
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
        let n: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM outbox_pending")
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

pub async fn reconcile(
    period: Option<uuid::Uuid>,
    region: Option<vbp_kernel::RegionCode>,
    json: bool,
) -> anyhow::Result<()> {
    use vbp_contracts::reconcile::FiguresRequest;
    let config = Config::load()?;
    let platform = vbp_platform::Platform::connect(
        config,
        vbp_kernel::SystemClock::shared(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await?;
    let req = FiguresRequest {
        period: period.map(vbp_contracts::agreements::PeriodId::from_uuid),
        region,
    };
    let ctx = vbp_bus::Context::new(Some(vbp_kernel::Actor::system("reconcile")));
    let report = vbp_gateway::reconcile::report(&platform.rpc_client(), &ctx, &req).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    if report.clean {
        Ok(())
    } else {
        anyhow::bail!("the reconciliation is not clean")
    }
}

/// The report as an operator reads it in a terminal.
fn render(report: &vbp_contracts::reconcile::ReconciliationReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for s in &report.sources {
        if !s.ok {
            let _ = writeln!(
                out,
                "{}: no answer ({})",
                s.service,
                s.detail.as_deref().unwrap_or("-")
            );
        }
    }
    for c in &report.checks {
        let state = match (c.compared, c.differences.len()) {
            (false, _) => "NOT COMPARED".to_owned(),
            (true, 0) => "ok".to_owned(),
            (true, n) => format!("{n} difference(s)"),
        };
        let measure = serde_json::to_value(c.measure)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{measure}: {} {} vs {} {} over {} keys: {state}",
            c.source, c.source_total, c.mirror, c.mirror_total, c.keys
        );
        for d in &c.differences {
            let _ = writeln!(
                out,
                "    period {} hospital {}{}: {} {} vs {} {}",
                d.period,
                d.hospital,
                d.national_code
                    .as_ref()
                    .map(|c| format!(" product {c}"))
                    .unwrap_or_default(),
                c.source,
                d.source_value,
                c.mirror,
                d.mirror_value
            );
        }
    }
    let _ = writeln!(out, "{}", if report.clean { "clean" } else { "NOT clean" });
    out
}
