//! Load generator for integrator ingest: order lines/s from integrators'
//! hospital systems publishing on NATS (order placed, shipping note relayed,
//! received, accepted) through the orders service until every
//! `orders.receipt.accepted` is committed in its outbox (durable: Postgres
//! with fsync on), printed beside the raw durable single-row INSERT ceiling
//! of the same Postgres, measured in the same run. Loopback only; bounded in
//! orders and seconds.
//!
//!   deploy/local/bench ingest                        (batched transactions)
//!   deploy/local/bench ingest -- --per-message       (one transaction per message)
//!   deploy/local/bench ingest -- --orders 20000 --lines 5 --integrators 4

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use chrono::{DateTime, Utc};
use clap::Parser;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use vbp_contracts::agreements::{
    OrgRecord, OrgRegistered, PeriodId, PeriodOpened, ProjectId, SupplyItem, SupplyListPublished,
};
use vbp_contracts::distribution::{RelationActivated, RelationId};
use vbp_contracts::{Service, ingest};
use vbp_kernel::{EventId, Money, NationalCode, OrgId, OrgKind, RegionCode};
use vbp_platform::Platform;
use vbp_platform::testkit::{TestEnv, publish_event};
use vbp_tests::load::statements;

#[derive(Parser, Debug)]
struct Args {
    /// Orders through the pipeline (four messages each).
    #[arg(long, default_value_t = 20_000)]
    orders: usize,
    /// Lines per order (one product each).
    #[arg(long, default_value_t = 5)]
    lines: usize,
    /// Integrators publishing concurrently.
    #[arg(long, default_value_t = 4)]
    integrators: usize,
    /// Hospitals each integrator acts for.
    #[arg(long, default_value_t = 5)]
    hospitals: usize,
    /// One transaction per message instead of one per fetched batch.
    #[arg(long)]
    per_message: bool,
    /// Messages per ingest transaction (`[orders] ingest_batch`).
    #[arg(long, default_value_t = vbp_orders::ingest::IngestSettings::default().ingest_batch)]
    batch: usize,
    /// Ingest batches applied at once (`[orders] ingest_lanes`).
    #[arg(long, default_value_t = vbp_orders::ingest::IngestSettings::default().ingest_lanes)]
    lanes: usize,
    /// Connections of the orders service's pool.
    #[arg(long, default_value_t = 16)]
    db_connections: u32,
    /// Seconds per raw-insert measurement.
    #[arg(long, default_value_t = 4)]
    raw_secs: u64,
    /// Give up on the pipeline after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Also prints the N statements that took the most database time
    /// (needs `pg_stat_statements` preloaded, see `vbp bench --help`).
    #[arg(long, value_name = "N")]
    statements: Option<usize>,
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn product(i: usize) -> NationalCode {
    NationalCode::parse(&format!("C0201020510300110766{i:07}")).expect("code")
}

const PRICE_FEN: i64 = 72_000;

fn org(org: OrgId, kind: OrgKind, region: &str, acts_for: Vec<OrgId>) -> OrgRecord {
    OrgRecord {
        org,
        kind,
        name: format!("{kind} {org}"),
        region: region.parse::<RegionCode>().expect("region"),
        nhsa_code: None,
        level: None,
        uscc: None,
        is_manufacturer: kind == OrgKind::Manufacturer,
        is_distributor: kind == OrgKind::Distributor,
        acts_for,
        active: true,
        revision: 1,
    }
}

/// Who publishes for whom.
struct World {
    integrators: Vec<(OrgId, Vec<OrgId>)>,
    distributor: OrgId,
}

/// The directory, the period with its supply list and every relation, as
/// the agreements and distribution services would publish them.
async fn project(platform: &Platform, db: &PgPool, args: &Args) -> anyhow::Result<World> {
    let maker = OrgId::new();
    let distributor = OrgId::new();
    let integrators: Vec<(OrgId, Vec<OrgId>)> = (0..args.integrators)
        .map(|_| {
            (
                OrgId::new(),
                (0..args.hospitals).map(|_| OrgId::new()).collect(),
            )
        })
        .collect();
    let mut records = vec![
        org(maker, OrgKind::Manufacturer, "330100", vec![]),
        org(distributor, OrgKind::Distributor, "210100", vec![]),
    ];
    for (integrator, hospitals) in &integrators {
        for h in hospitals {
            records.push(org(*h, OrgKind::Hospital, "210902", vec![]));
        }
        records.push(org(
            *integrator,
            OrgKind::Integrator,
            "210000",
            hospitals.clone(),
        ));
    }
    for record in &records {
        publish_event(
            platform,
            EventId::new(),
            &OrgRegistered {
                record: record.clone(),
                registered_at: at("2024-07-01T00:00:00Z"),
            },
        )
        .await;
    }
    let period = PeriodId::new();
    let project = ProjectId::new();
    let (starts_at, ends_at) = (
        at("2024-08-01T00:00:00+08:00"),
        at("2025-08-01T00:00:00+08:00"),
    );
    publish_event(
        platform,
        EventId::new(),
        &PeriodOpened {
            period,
            project,
            project_code: "LN-BENCH".into(),
            number: 1,
            starts_at,
            ends_at,
            paper_deadline: None,
            carried_over_from: None,
            opened_at: at("2024-07-31T10:00:00+08:00"),
        },
    )
    .await;
    let items: Vec<SupplyItem> = (0..args.lines)
        .map(|i| SupplyItem {
            national_code: product(i),
            generic_name: "冠脉导引导管".into(),
            spec_model: format!("{}F", 5 + i),
            unit: "根".into(),
            manufacturer: maker,
            manufacturer_name: "示例心血管".into(),
            winning_price_fen: Money::from_fen(PRICE_FEN),
            product_group: "G1".into(),
        })
        .collect();
    publish_event(
        platform,
        EventId::new(),
        &SupplyListPublished {
            period,
            project,
            project_code: "LN-BENCH".into(),
            period_number: 1,
            starts_at,
            ends_at,
            revision: 1,
            items,
            published_at: at("2024-07-31T10:00:00+08:00"),
        },
    )
    .await;
    let mut relations = 0;
    for (_, hospitals) in &integrators {
        for h in hospitals {
            for i in 0..args.lines {
                publish_event(
                    platform,
                    EventId::new(),
                    &RelationActivated {
                        relation: RelationId::new(),
                        period,
                        hospital: *h,
                        hospital_region: "210902".parse()?,
                        national_code: product(i),
                        manufacturer: maker,
                        distributor,
                        valid_from: starts_at,
                        valid_to: None,
                        replaces: None,
                        activated_at: starts_at,
                    },
                )
                .await;
                relations += 1;
            }
        }
    }
    for (sql, n) in [
        ("SELECT count(*) FROM orgs", records.len() as i64),
        ("SELECT count(*) FROM supply_items", args.lines as i64),
        ("SELECT count(*) FROM relations", relations),
    ] {
        wait_count(db, sql, n, Duration::from_secs(120)).await?;
    }
    Ok(World {
        integrators,
        distributor,
    })
}

async fn wait_count(db: &PgPool, sql: &'static str, n: i64, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let got: Result<i64, _> = sqlx::query_scalar(sql).fetch_one(db).await;
        match got {
            Ok(got) if got >= n => return Ok(()),
            _ if Instant::now() > deadline => anyhow::bail!("{sql}: {got:?}, expected {n}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The four messages of one order, in the order a hospital system sends them.
fn flow(k: usize, hospital: OrgId, distributor: OrgId, lines: usize) -> [(&'static str, Value); 4] {
    let po = format!("PO-{k}");
    let codes: Vec<String> = (0..lines).map(|i| product(i).as_str().to_owned()).collect();
    let qty = |i: usize| 1 + ((k + i) % 7) as i64;
    [
        (
            ingest::ORDER_PLACED,
            json!({"external_id": po, "hospital": hospital, "distributor": distributor,
                "placed_at": "2024-09-10T08:00:00+08:00",
                "lines": codes.iter().enumerate().map(|(i, c)| json!({
                    "national_code": c, "quantity": qty(i), "unit_price_fen": PRICE_FEN})).collect::<Vec<_>>()}),
        ),
        (
            ingest::SHIPMENT_DISPATCHED,
            json!({"external_id": format!("SH-{k}"), "order_external_id": po, "shipment_no": format!("S-{k}"),
                "shipped_at": "2024-09-10T08:10:00+08:00",
                "lines": codes.iter().enumerate().map(|(i, c)| json!({
                    "national_code": c, "batch_no": "B2409", "expiry_date": "2027-06-30",
                    "quantity": qty(i)})).collect::<Vec<_>>()}),
        ),
        (
            ingest::ORDER_RECEIVED,
            json!({"external_id": format!("RC-{k}"), "order_external_id": po, "shipment_no": format!("S-{k}"),
                "received_at": "2024-09-10T08:20:00+08:00"}),
        ),
        (
            ingest::ORDER_ACCEPTED,
            json!({"external_id": format!("AC-{k}"), "order_external_id": po,
                "accepted_at": "2024-09-10T08:30:00+08:00",
                "lines": codes.iter().enumerate().map(|(i, c)| json!({
                    "national_code": c, "accepted_quantity": qty(i), "rejected_quantity": 0})).collect::<Vec<_>>()}),
        ),
    ]
}

/// One integrator's orders, published pipelined (acks awaited in windows).
async fn publish(
    platform: Platform,
    integrator: OrgId,
    hospitals: Vec<OrgId>,
    distributor: OrgId,
    orders: Vec<usize>,
    lines: usize,
) -> anyhow::Result<()> {
    let id = integrator.to_string();
    let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(512);
    for k in orders {
        let hospital = hospitals[k % hospitals.len()];
        for (event, body) in flow(k, hospital, distributor, lines) {
            let ext = body["external_id"].as_str().unwrap_or_default().to_owned();
            let msg = PublishMessage::build()
                .message_id(ingest::message_id(&id, &ext))
                .payload(serde_json::to_vec(&body)?.into());
            acks.push(
                platform
                    .js
                    .send_publish(platform.ns.ingest(&id, event), msg)
                    .await?,
            );
        }
        if acks.len() >= 500 {
            for ack in
                futures::future::try_join_all(acks.drain(..).map(IntoFuture::into_future)).await?
            {
                anyhow::ensure!(!ack.duplicate, "a fresh message was taken for a duplicate");
            }
        }
    }
    futures::future::try_join_all(acks.into_iter().map(IntoFuture::into_future)).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.lines >= 1 && args.lines <= 500, "--lines: 1 to 500");
    let env = TestEnv::new().await;
    env.clock.set(at("2024-09-10T09:00:00+08:00"));

    let raw = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&env.database_url)
        .await?;
    let raw_rates = vbp_tests::load::ceiling::raw_inserts(&raw, args.raw_secs).await?;
    vbp_tests::load::ceiling::print_raw(&raw_rates);
    let ceiling = vbp_tests::load::ceiling::best(&raw_rates);
    raw.close().await;

    let stop = CancellationToken::new();
    let config = env.config().with_figment_overrides(json!({
        "db_max_connections": args.db_connections,
        "orders": {
            "ingest_batch_mode": !args.per_message,
            "ingest_lanes": args.lanes,
            "ingest_batch": args.batch,
        },
    }))?;
    let platform = env.platform_with(config, stop.clone()).await;
    let service = tokio::spawn(vbp_orders::run(platform.clone()));
    let db = env.pool_in("orders").await;
    for upstream in [Service::Agreements, Service::Distribution] {
        platform.ensure_event_stream(upstream).await?;
    }
    platform.ensure_ingest_stream().await?;
    let world = project(&platform, &db, &args).await?;

    if args.statements.is_some() {
        statements::reset(&db).await?;
    }
    let total_lines = (args.orders * args.lines) as f64;
    let started = Instant::now();
    let mut publishers = Vec::new();
    for (n, (integrator, hospitals)) in world.integrators.iter().enumerate() {
        let orders: Vec<usize> = (0..args.orders)
            .filter(|k| k % args.integrators == n)
            .collect();
        publishers.push(tokio::spawn(publish(
            platform.clone(),
            *integrator,
            hospitals.clone(),
            world.distributor,
            orders,
            args.lines,
        )));
    }
    for p in publishers {
        p.await??;
    }
    let published = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let accepted = loop {
        // An acceptance row commits with its `orders.receipt.accepted`
        // event, and counting the narrow table costs the server a fraction of
        // scanning the outbox.
        let accepted: i64 = sqlx::query_scalar("SELECT count(*) FROM acceptances")
            .fetch_one(&db)
            .await?;
        if accepted >= args.orders as i64 || Instant::now() > deadline || service.is_finished() {
            break accepted;
        }
        // Often enough to time the run to a tenth of a second.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let elapsed = started.elapsed();
    let top = match args.statements {
        Some(n) => statements::top(&db, n).await?,
        None => Vec::new(),
    };
    let unapplied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ingest_messages WHERE outcome <> 'applied'")
            .fetch_one(&db)
            .await?;
    stop.cancel();
    anyhow::ensure!(
        accepted == args.orders as i64,
        "only {accepted} of {} orders accepted within {}s ({unapplied} messages not applied)",
        args.orders,
        args.timeout_secs
    );
    anyhow::ensure!(unapplied == 0, "{unapplied} messages were not applied");
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE event_type = 'orders.receipt.accepted'",
    )
    .fetch_one(&db)
    .await?;
    anyhow::ensure!(
        events == args.orders as i64,
        "{events} orders.receipt.accepted events for {} acceptances",
        args.orders
    );
    let rate = total_lines / elapsed.as_secs_f64();
    println!(
        "integrator events on NATS -> orders service -> receipt.accepted committed ({}): \
         {} orders x {} lines = {total_lines:.0} lines, {} messages in {:.2}s = {rate:.0} lines/s, \
         {:.0} messages/s (publishers done after {:.2}s)",
        if args.per_message {
            "one transaction per message"
        } else {
            "one transaction per fetched batch"
        },
        args.orders,
        args.lines,
        args.orders * 4,
        elapsed.as_secs_f64(),
        (args.orders * 4) as f64 / elapsed.as_secs_f64(),
        published.as_secs_f64()
    );
    println!(
        "ratio to the raw single-row ceiling ({ceiling:.0} rows/s): {:.2}x; target >= 10000 lines/s and >= 0.66x",
        rate / ceiling
    );
    statements::print(&top);
    Ok(())
}
