use std::collections::BTreeSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vbp_contracts::Service;
use vbp_kernel::SystemClock;
use vbp_platform::{Config, Platform, health, shutdown, telemetry};

/// Parses `all` or a list of service names.
pub fn selection(names: &[String]) -> anyhow::Result<BTreeSet<Service>> {
    let mut out = BTreeSet::new();
    for name in names {
        if name == "all" {
            out.extend(Service::ALL);
        } else {
            out.insert(name.parse::<Service>()?);
        }
    }
    Ok(out)
}

async fn run_one(service: Service, platform: Platform) -> anyhow::Result<()> {
    match service {
        Service::Gateway => vbp_gateway::run(platform).await,
        Service::Agreements => vbp_agreements::run(platform).await,
        Service::Distribution => vbp_distribution::run(platform).await,
        Service::Orders => vbp_orders::run(platform).await,
        Service::Prepayment => vbp_prepayment::run(platform).await,
        Service::Issues => vbp_issues::run(platform).await,
        Service::Supervision => vbp_supervision::run(platform).await,
    }
}

pub async fn serve(names: &[String], demo: bool) -> anyhow::Result<()> {
    let services = selection(names)?;
    let config = Config::load()?;
    telemetry::init("vbp", config.log_format);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let metrics_addr = config.metrics_addr.clone();
    let shutdown_token = CancellationToken::new();
    shutdown::on_signal(shutdown_token.clone());
    let platform = Platform::connect(config, SystemClock::shared(), shutdown_token.clone()).await?;

    let health_router = health::router(platform.readiness.clone());
    let health_shutdown = shutdown_token.clone();
    let health_task =
        tokio::spawn(
            async move { health::serve(&metrics_addr, health_router, health_shutdown).await },
        );

    let mut tasks = tokio::task::JoinSet::new();
    for service in &services {
        let platform = platform.clone();
        let service = *service;
        tasks.spawn(async move { (service, run_one(service, platform).await) });
    }
    tracing::info!(services = ?services, ns = %platform.ns, demo, "vbp serving");
    if demo {
        match demo_tokens(&platform.config) {
            Ok(text) => eprint!("{text}"),
            Err(e) => tracing::warn!(error = %e, "demo tokens not printed"),
        }
        tokio::spawn(load_demo(platform.clone(), services.clone()));
    }

    let mut failure = None;
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                None => break,
                Some(Ok((service, Err(e)))) => {
                    // One service failing takes the process down, so the
                    // supervisor (systemd, Kubernetes) restarts it whole.
                    tracing::error!(%service, error = %format!("{e:#}"), "service failed");
                    failure.get_or_insert(anyhow::anyhow!("{service}: {e:#}"));
                    shutdown_token.cancel();
                }
                Some(Ok((_, Ok(())))) => {}
                Some(Err(e)) => {
                    failure.get_or_insert(anyhow::anyhow!("service task panicked: {e}"));
                    shutdown_token.cancel();
                }
            },
            _ = shutdown_token.cancelled() => {
                // Finish in-flight work within the grace period, then stop.
                let drained = tokio::time::timeout(grace, async {
                    while let Some(done) = tasks.join_next().await {
                        if let Ok((service, Err(e))) = done {
                            tracing::warn!(%service, error = %e, "service ended with an error during shutdown");
                        }
                    }
                })
                .await;
                if drained.is_err() {
                    tracing::warn!("grace period over; aborting what is left");
                    tasks.abort_all();
                }
                break;
            }
        }
    }
    let _ = health_task.await;
    telemetry::shutdown();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One dev token per demo organisation, as ready-to-paste lines.
pub fn demo_tokens(config: &Config) -> anyhow::Result<String> {
    let secret = vbp_gateway::token::dev_secret(config)?;
    let now = chrono::Utc::now();
    let mut out = format!(
        "\nDemo tokens (valid 12 h; `vbp demo-tokens` prints fresh ones). Use as: \
         curl -H \"Authorization: Bearer $TOKEN\" http://{}/api/v1/...\n",
        config.http_addr
    );
    for org in crate::demo::CAST {
        let token = vbp_gateway::token::mint_dev(
            &secret,
            &format!("demo:{}", org.id),
            org.org(),
            org.kind,
            org.region(),
            org.roles,
            Duration::from_secs(12 * 3600),
            now,
        )?;
        out.push_str(&format!(
            "  {:<12} {} {}\n    {token}\n",
            org.kind.as_str(),
            org.region,
            org.name
        ));
    }
    Ok(out)
}

/// Loads the Liaoning scenario through the services' own operations, in
/// dependency order, once they answer (distribution projects the agreements
/// demo from its events first), then signs the demo's tripartite agreements.
/// Idempotent: a restart finds it loaded.
async fn load_demo(platform: Platform, services: BTreeSet<Service>) {
    let rpc = platform.rpc_client();
    let ctx = vbp_bus::Context::new(Some(vbp_kernel::Actor::system("demo")));
    for service in [Service::Agreements, Service::Distribution] {
        if !services.contains(&service) {
            continue;
        }
        let mut pause = Duration::from_millis(200);
        loop {
            match rpc
                .call_raw(service, "demo_load", &ctx, bytes::Bytes::from_static(b"{}"))
                .await
            {
                Ok(reply) => {
                    let created = serde_json::from_slice::<serde_json::Value>(&reply)
                        .ok()
                        .and_then(|v| v["created"].as_bool())
                        .unwrap_or(false);
                    let what = if created { "loaded" } else { "already loaded" };
                    tracing::info!(%service, "Liaoning demo data {what}");
                    break;
                }
                Err(e) => {
                    tracing::info!(%service, error = %e, "demo data waits for the service");
                    tokio::select! {
                        _ = platform.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
    if services.contains(&Service::Agreements) && services.contains(&Service::Distribution) {
        match crate::demo_flow::sign_agreements(&rpc, vbp_agreements::demo::PERIOD_2).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(agreements = n, "demo tripartite agreements signed"),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "demo agreements not signed"),
        }
    }
    // Each later part needs the services it drives; what is missing is skipped.
    let parts: [(&str, &[Service]); 4] = [
        (
            "orders",
            &[Service::Orders, Service::Agreements, Service::Distribution],
        ),
        ("prepayment", &[Service::Prepayment, Service::Agreements]),
        (
            "issues",
            &[Service::Issues, Service::Agreements, Service::Distribution],
        ),
        (
            "supervision",
            &[
                Service::Supervision,
                Service::Orders,
                Service::Agreements,
                Service::Distribution,
            ],
        ),
    ];
    for (part, needs) in parts {
        if !needs.iter().all(|s| services.contains(s)) {
            continue;
        }
        let loaded = match part {
            "orders" => crate::demo_orders::load(&platform).await,
            "prepayment" => crate::demo_prepayment::load(&rpc).await,
            "supervision" => crate::demo_supervision::load(&platform, &rpc).await,
            _ => crate::demo_issues::load(&rpc).await,
        };
        match loaded {
            Ok(0) => {}
            Ok(n) => tracing::info!(part, records = n, "demo data loaded"),
            Err(e) => tracing::warn!(part, error = %format!("{e:#}"), "demo data not loaded"),
        }
    }
}
