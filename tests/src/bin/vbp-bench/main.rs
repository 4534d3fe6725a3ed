//! `vbp bench`: the end-to-end load benchmark of the whole platform.
//!
//! The real `vbp` binary runs as operating-system processes (one all-in-one
//! `vbp serve all`, or one per service with `--topology split`) on a fresh
//! database and subject namespace. The Liaoning demo is loaded first through
//! the services' own operations (directory, period 2 with its supply list,
//! relations, signed tripartite agreements, disbursed prepayments), then the
//! processes start again clean, so idle memory is that of a serving process.
//!
//! The load: the demo integrator publishes N order lines on NATS as a
//! hospital system would (order placed, shipping note, received, accepted);
//! as acceptances are committed the distributor uploads their invoices and
//! the hospital pays them in payment runs over RPC (`--run-size` items a
//! call; 1 = one invoice and one payment call per acceptance). Each payment's
//! `orders.settlement.paid` reaches prepayment, which records the settlement
//! and its offset (冲抵) against the hospital's disbursed prepayment.
//!
//! Measured, in the same run on the same servers:
//! - lines/s end to end: first publish → the last settlement committed by
//!   prepayment's offset handler;
//! - per order, ingest → progress: its first publish → the transaction in
//!   which agreements counted its acceptance (agreements' inbox row);
//! - `VmRSS` of each process idle before the load and at its peak during it;
//! - the raw durable single-row INSERT ceiling of the same Postgres and the
//!   JetStream publish ceiling of the same NATS, and the ratios to them.
//!
//!   deploy/local/bench e2e                          (builds release, fresh servers)
//!   deploy/local/bench e2e -- --lines 20000 --topology split --json
//!   vbp bench --lines 20000                         (VBP_TEST_DATABASE_URL, VBP_TEST_NATS_URL)

use std::collections::{BTreeMap, HashSet};
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use vbp_agreements::demo as d;
use vbp_bus::{CallError, Context, RpcClient};
use vbp_contracts::orders::RUN_MAX_ITEMS;
use vbp_contracts::{Service, ingest};
use vbp_kernel::Actor;
use vbp_platform::Platform;
use vbp_platform::testkit::TestEnv;
use vbp_tests::cast;
use vbp_tests::load::{ceiling, memory, statements};
use vbp_tests::procs::{Cluster, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Topology {
    /// One `vbp serve all` process.
    All,
    /// One process per service, the gateway included.
    Split,
}

#[derive(Parser, Debug)]
#[command(
    name = "vbp bench",
    about = "End-to-end load benchmark of the whole platform"
)]
struct Args {
    /// Order lines through the pipeline (rounded up to whole orders).
    #[arg(long, default_value_t = 20_000)]
    lines: usize,
    /// How the platform runs: one all-in-one process or one per service.
    #[arg(long, value_enum, default_value_t = Topology::All)]
    topology: Topology,
    /// Integrator connections publishing concurrently.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Invoice uploads and payment runs in flight at once (the
    /// distributors' and hospitals' systems).
    #[arg(long, default_value_t = 32)]
    settlers: usize,
    /// Acceptances per invoice upload and payment run, at most (1: one
    /// `invoice_issue` and one `settlement_pay` call per acceptance).
    #[arg(long, default_value_t = 100)]
    run_size: usize,
    /// Connections of each service's database pool.
    #[arg(long, default_value_t = 8)]
    db_connections: u32,
    /// Seconds per ceiling measurement.
    #[arg(long, default_value_t = 4)]
    ceiling_secs: u64,
    /// Give up on the pipeline after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Prints the figures as one JSON object (progress goes to stderr).
    #[arg(long)]
    json: bool,
    /// Also prints the N statements that took the most database time under
    /// load (needs `pg_stat_statements` preloaded: `VBP_PG_SETTINGS=
    /// "shared_preload_libraries = 'pg_stat_statements'" deploy/local/bench`).
    #[arg(long, value_name = "N")]
    statements: Option<usize>,
}

/// What an integrator orders for one hospital: the products it has an
/// agreed volume and an active relation for with that distributor in the
/// demo, at their winning prices.
struct Plan {
    hospital: &'static str,
    distributor: &'static str,
    lines: &'static [(&'static str, i64)],
}

const PLANS: &[Plan] = &[
    Plan {
        hospital: d::SHENYANG_HOSPITAL,
        distributor: d::DISTRIBUTOR_SHENYANG,
        lines: &[
            ("C02010205103001107660000011", 72_000),
            ("C02010205103001108810000031", 69_800),
            ("C02010205103002107660000021", 75_000),
        ],
    },
    Plan {
        hospital: d::FUXIN_HOSPITAL,
        distributor: d::DISTRIBUTOR_SHENYANG,
        lines: &[("C02010205103001107660000012", 72_000)],
    },
    Plan {
        hospital: d::FUXIN_HOSPITAL,
        distributor: d::DISTRIBUTOR_FUXIN,
        lines: &[("C02010205103001108810000032", 69_800)],
    },
];

/// Business times inside agreement period 2, as in the demo's own orders.
const PLACED_AT: &str = "2024-09-10T08:00:00+08:00";
const SHIPPED_AT: &str = "2024-09-11T09:00:00+08:00";
const ACCEPTED_AT: &str = "2024-09-12T14:00:00+08:00";
const ISSUED_ON: &str = "2024-09-12";
const PAID_ON: &str = "2024-10-25";

const PREFIX: &str = "BENCH-PO-";

fn plan_of(k: usize) -> &'static Plan {
    &PLANS[k % PLANS.len()]
}

/// Orders needed for `lines` lines.
fn orders_for(lines: usize) -> (usize, usize) {
    let (mut orders, mut total) = (0, 0);
    while total < lines {
        total += plan_of(orders).lines.len();
        orders += 1;
    }
    (orders, total)
}

/// The four messages of order `k`, in the order a hospital system sends them.
fn messages(k: usize) -> [(&'static str, Value); 4] {
    let plan = plan_of(k);
    let po = format!("{PREFIX}{k}");
    let qty = |i: usize| 1 + ((k + i) % 3) as i64;
    let lines = plan.lines.iter().enumerate();
    [
        (
            ingest::ORDER_PLACED,
            json!({"external_id": po, "hospital": plan.hospital, "distributor": plan.distributor,
                "placed_at": PLACED_AT,
                "lines": lines.clone().map(|(i, (c, p))| json!({
                    "national_code": c, "quantity": qty(i), "unit_price_fen": p})).collect::<Vec<_>>()}),
        ),
        (
            ingest::SHIPMENT_DISPATCHED,
            json!({"external_id": format!("{po}-SHIP"), "order_external_id": po,
                "shipment_no": format!("FH-{k}"), "shipped_at": SHIPPED_AT,
                "lines": lines.clone().map(|(i, (c, _))| json!({
                    "national_code": c, "batch_no": "B2409", "expiry_date": "2027-06-30",
                    "quantity": qty(i)})).collect::<Vec<_>>()}),
        ),
        (
            ingest::ORDER_RECEIVED,
            json!({"external_id": format!("{po}-RECV"), "order_external_id": po,
                "shipment_no": format!("FH-{k}"), "received_at": ACCEPTED_AT}),
        ),
        (
            ingest::ORDER_ACCEPTED,
            json!({"external_id": format!("{po}-ACPT"), "order_external_id": po,
                "accepted_at": ACCEPTED_AT,
                "lines": lines.map(|(i, (c, _))| json!({
                    "national_code": c, "accepted_quantity": qty(i), "rejected_quantity": 0}))
                    .collect::<Vec<_>>()}),
        ),
    ]
}

/// Publishes orders `k ≡ n (mod publishers)` pipelined, acknowledgements
/// awaited in windows; returns (order, wall-clock seconds of its first publish).
async fn publish(
    platform: Platform,
    n: usize,
    publishers: usize,
    orders: usize,
) -> anyhow::Result<Vec<(usize, f64)>> {
    let integrator = d::INTEGRATOR;
    let mut sent = Vec::with_capacity(orders / publishers + 1);
    let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(512);
    for k in (n..orders).step_by(publishers) {
        sent.push((k, epoch(Utc::now())));
        for (event, body) in messages(k) {
            let ext = body["external_id"].as_str().unwrap_or_default().to_owned();
            let msg = PublishMessage::build()
                .message_id(ingest::message_id(integrator, &ext))
                .payload(serde_json::to_vec(&body)?.into());
            acks.push(
                platform
                    .js
                    .send_publish(platform.ns.ingest(integrator, event), msg)
                    .await?,
            );
        }
        if acks.len() >= 400 {
            for ack in
                futures::future::try_join_all(acks.drain(..).map(IntoFuture::into_future)).await?
            {
                anyhow::ensure!(!ack.duplicate, "a fresh message was taken for a duplicate");
            }
        }
    }
    futures::future::try_join_all(acks.into_iter().map(IntoFuture::into_future)).await?;
    Ok(sent)
}

fn epoch(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

fn actor(id: &str) -> anyhow::Result<Actor> {
    let org = cast::by_id(id).ok_or_else(|| anyhow::anyhow!("{id} is not a demo organisation"))?;
    Ok(Actor {
        sub: format!("bench:{}", org.name),
        ..org.actor()
    })
}

async fn call(
    rpc: &RpcClient,
    service: Service,
    op: &str,
    actor: &Actor,
    body: Value,
) -> Result<Value, CallError> {
    let ctx = Context::new(Some(actor.clone()));
    let body = serde_json::to_vec(&body).map_err(|e| CallError::Decode(e.to_string()))?;
    let reply = rpc.call_raw(service, op, &ctx, body.into()).await?;
    serde_json::from_slice(&reply).map_err(|e| CallError::Decode(e.to_string()))
}

/// Quantities the load orders per (hospital, national code).
fn ordered(orders: usize) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    for k in 0..orders {
        let [(_, placed), ..] = messages(k);
        for line in placed["lines"].as_array().into_iter().flatten() {
            let key = (
                placed["hospital"].as_str().unwrap_or_default().to_owned(),
                line["national_code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            *out.entry(key).or_insert(0) += line["quantity"].as_i64().unwrap_or_default();
        }
    }
    out
}

/// The demo's agreements cover a few hundred units, so their prepayments
/// would be recovered after a few hundred settlements and later offsets
/// would recover nothing. Each effective agreement of a hospital the load
/// orders for is amended to cover what the load orders on top, and
/// confirmed by every party, as a province would after raising volumes;
/// prepayment then raises the disbursed balances by an adjustment. Returns
/// how many agreements were amended.
async fn amend_agreements(rpc: &RpcClient, orders: usize) -> anyhow::Result<usize> {
    let operator = Actor::system("bench");
    let more = ordered(orders);
    let list = call(
        rpc,
        Service::Agreements,
        "agreement_list",
        &operator,
        json!({ "period": d::PERIOD_2, "page_size": 500 }),
    )
    .await?;
    let mut amended = 0;
    for a in list["items"].as_array().into_iter().flatten() {
        let hospital = a["hospital"].as_str().unwrap_or_default();
        if a["state"] != "effective" || !PLANS.iter().any(|p| p.hospital == hospital) {
            continue;
        }
        let lines: Vec<Value> = a["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                let code = l["national_code"].as_str().unwrap_or_default();
                let extra = more
                    .get(&(hospital.to_owned(), code.to_owned()))
                    .copied()
                    .unwrap_or(0);
                json!({ "national_code": code,
                        "quantity": l["quantity"].as_i64().unwrap_or_default() + extra })
            })
            .collect();
        let draft = call(
            rpc,
            Service::Agreements,
            "agreement_amend",
            &actor(hospital)?,
            json!({ "agreement": a["agreement"], "version": a["version"], "lines": lines,
                    "reason": "带量采购执行量提高，协议量相应调整" }),
        )
        .await?;
        let confirm = json!({ "agreement": draft["agreement"], "version": draft["version"] });
        let manufacturer = a["manufacturer"].as_str().unwrap_or_default();
        let distributors = a["distributors"].as_array().into_iter().flatten();
        let mut parties = vec![actor(hospital)?, actor(manufacturer)?];
        for dist in distributors {
            parties.push(actor(dist["distributor"].as_str().unwrap_or_default())?);
        }
        for party in &parties {
            call(
                rpc,
                Service::Agreements,
                "agreement_confirm",
                party,
                confirm.clone(),
            )
            .await?;
        }
        amended += 1;
    }
    Ok(amended)
}

/// An acceptance committed by orders and not yet invoiced.
struct Open {
    acceptance: uuid::Uuid,
    amount_fen: i64,
}

/// Calls `op`, retrying a call that timed out; it may have been applied, so
/// a repeat refused as the transition `done` counts as done.
async fn call_once(
    rpc: &RpcClient,
    op: &str,
    who: &Actor,
    body: Value,
    done: &str,
) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        match call(rpc, Service::Orders, op, who, body.clone()).await {
            Ok(_) => return Ok(()),
            Err(CallError::Remote(e)) if attempt > 0 && e.to_string().contains(done) => {
                return Ok(());
            }
            Err(CallError::Remote(e)) if e.is_contention() && attempt < 5 => {
                tracing::warn!(op, error = %e, "retried");
                attempt += 1;
            }
            Err(e @ (CallError::Timeout(..) | CallError::NoResponders(_))) if attempt < 5 => {
                tracing::warn!(op, error = %e, "retried");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => anyhow::bail!("{op}: {e}"),
        }
    }
}

/// The distributor invoices the acceptances, then the hospital pays them
/// online: one call each per acceptance, or one upload and one payment run.
async fn settle(
    rpc: &RpcClient,
    (hospital, distributor): (uuid::Uuid, uuid::Uuid),
    open: &[Open],
    first: usize,
) -> anyhow::Result<()> {
    let distributor = actor(&distributor.to_string())?;
    let hospital = actor(&hospital.to_string())?;
    let invoice = |n: usize, o: &Open| {
        json!({ "acceptance": o.acceptance, "invoice_code": "021002400111",
        "invoice_number": format!("B{:09}", first + n), "amount_fen": o.amount_fen,
        "tax_fen": o.amount_fen * 13 / 113, "issued_on": ISSUED_ON })
    };
    let pay = |o: &Open| {
        json!({ "acceptance": o.acceptance, "amount_fen": o.amount_fen,
        "channel": "online", "paid_on": PAID_ON })
    };
    if let [o] = open {
        call_once(
            rpc,
            "invoice_issue",
            &distributor,
            invoice(0, o),
            "already invoiced",
        )
        .await?;
        call_once(rpc, "settlement_pay", &hospital, pay(o), "already settled").await?;
    } else {
        let invoices: Vec<Value> = open
            .iter()
            .enumerate()
            .map(|(n, o)| invoice(n, o))
            .collect();
        let payments: Vec<Value> = open.iter().map(pay).collect();
        call_once(
            rpc,
            "invoice_issue_batch",
            &distributor,
            json!({ "invoices": invoices }),
            "already invoiced",
        )
        .await?;
        call_once(
            rpc,
            "settlement_pay_batch",
            &hospital,
            json!({ "payments": payments }),
            "already settled",
        )
        .await?;
    }
    Ok(())
}

/// Invoices and pays every acceptance as orders commits it, in runs of up
/// to `run_size` per hospital and distributor, `settlers` runs at once,
/// until `orders` are settled; returns the RPC calls made.
async fn settle_all(
    rpc: RpcClient,
    db: PgPool,
    orders: usize,
    settlers: usize,
    run_size: usize,
) -> anyhow::Result<usize> {
    let permits = Arc::new(Semaphore::new(settlers));
    let mut taken: HashSet<uuid::Uuid> = HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    let (mut runs, mut numbered) = (0, 0);
    while taken.len() < orders {
        let rows: Vec<(uuid::Uuid, i64, uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
            "SELECT a.id, a.amount_fen, a.hospital, a.distributor FROM orders.acceptances a \
             WHERE a.invoice IS NULL ORDER BY a.accepted_at, a.id",
        )
        .fetch_all(&db)
        .await?;
        let mut fresh: BTreeMap<(uuid::Uuid, uuid::Uuid), Vec<Open>> = BTreeMap::new();
        for (acceptance, amount_fen, hospital, distributor) in rows {
            if taken.insert(acceptance) {
                fresh
                    .entry((hospital, distributor))
                    .or_default()
                    .push(Open {
                        acceptance,
                        amount_fen,
                    });
            }
        }
        for (parties, open) in fresh {
            let mut open = open.into_iter().peekable();
            while open.peek().is_some() {
                let run: Vec<Open> = open.by_ref().take(run_size).collect();
                let first = numbered;
                numbered += run.len();
                runs += 1;
                let permit = permits.clone().acquire_owned().await?;
                let rpc = rpc.clone();
                tasks.spawn(async move {
                    let done = settle(&rpc, parties, &run, first).await;
                    drop(permit);
                    done
                });
            }
        }
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
        // The distributors' and hospitals' systems look for new work a few
        // times a second; a scan of every acceptance each time.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(2 * runs)
}

async fn scalar(db: &PgPool, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar::<_, i64>(sql).fetch_one(db).await?)
}

/// Rows every service's outbox has recorded, and how many are unsent.
async fn outbox_totals(db: &PgPool) -> anyhow::Result<(i64, i64)> {
    let mut total = 0;
    let mut unsent = 0;
    for schema in Service::BACKENDS {
        let (t, u): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT (SELECT count(*) FROM {schema}.outbox), (SELECT count(*) FROM {schema}.outbox_pending)"
        )))
        .fetch_one(db)
        .await
        .unwrap_or((0, 0));
        total += t;
        unsent += u;
    }
    Ok((total, unsent))
}

/// The demo is loaded when both demo prepayments are disbursed and every
/// service's outbox has stood still, all sent, for two seconds.
async fn wait_demo(db: &PgPool, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    let mut last = (-1, -1);
    let mut still_since = Instant::now();
    loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the Liaoning demo did not finish loading within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let disbursed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM prepayment.ledgers WHERE state = 'disbursed'")
                .fetch_one(db)
                .await
                .unwrap_or(0);
        let now = outbox_totals(db).await?;
        if now != last || disbursed < 2 || now.1 > 0 {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= Duration::from_secs(2) {
            return Ok(());
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.lines >= 1, "--lines: at least 1");
    anyhow::ensure!(args.publishers >= 1, "--publishers: at least 1");
    anyhow::ensure!(args.settlers >= 1, "--settlers: at least 1");
    anyhow::ensure!(
        (1..=RUN_MAX_ITEMS).contains(&args.run_size),
        "--run-size: 1 to {RUN_MAX_ITEMS} (the most a run takes)"
    );
    for var in ["VBP_TEST_DATABASE_URL", "VBP_TEST_NATS_URL"] {
        anyhow::ensure!(
            std::env::var_os(var).is_some(),
            "{var} is not set: run `deploy/local/bench e2e`, which starts a fresh Postgres and NATS, \
             or set VBP_TEST_DATABASE_URL (a superuser URL) and VBP_TEST_NATS_URL"
        );
    }
    anyhow::ensure!(
        std::env::var_os("VBP_BIN").is_some(),
        "VBP_BIN is not set: run this as `vbp bench` (it measures the vbp binary that starts it) \
         or set VBP_BIN to a release build of vbp"
    );
    let say = |line: String| eprintln!("vbp bench: {line}");
    let (orders, lines) = orders_for(args.lines);
    let env = TestEnv::new().await;
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&env.database_url)
        .await?;

    say("measuring the raw durable single-row INSERT ceiling".into());
    let raw = ceiling::raw_inserts(&admin, args.ceiling_secs).await?;
    let raw_best = ceiling::best(&raw);
    let mut cluster = Cluster::new(Target::from(&env)).await;
    say("measuring the JetStream publish ceiling".into());
    let sample = serde_json::to_vec(&messages(0)[0].1)?.len();
    let js_ceiling = ceiling::jetstream_publishes(
        &cluster.platform.js,
        &env.ns,
        args.publishers,
        400,
        sample,
        args.ceiling_secs,
    )
    .await?;

    cluster.set_env("VBP_DB_MAX_CONNECTIONS", &args.db_connections.to_string());
    say("loading the Liaoning demo through the services (vbp serve all --demo)".into());
    cluster.spawn("all", &["--demo"]);
    cluster.wait_ready("all", Duration::from_secs(120)).await;
    wait_demo(&admin, Duration::from_secs(300)).await?;
    let amended = amend_agreements(&cluster.rpc(), orders).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while scalar(
        &admin,
        "SELECT count(*) FROM prepayment.agreements WHERE version > 1",
    )
    .await?
        < amended as i64
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "prepayment did not take the {amended} amended agreements within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_demo(&admin, Duration::from_secs(120)).await?;
    let balance_before = scalar(
        &admin,
        "SELECT COALESCE(SUM(balance_fen), 0)::bigint FROM prepayment.ledgers WHERE state = 'disbursed'",
    )
    .await?;
    say(format!(
        "{amended} agreements amended to cover the load; disbursed prepayments to recover: {:.2} yuan",
        balance_before as f64 / 100.0
    ));
    cluster.kill("all");

    let names: Vec<&str> = match args.topology {
        Topology::All => vec!["all"],
        Topology::Split => Service::ALL.iter().map(|s| s.as_str()).collect(),
    };
    say(format!("starting {names:?}"));
    for name in &names {
        cluster.start(name).await;
    }
    cluster.platform.ensure_ingest_stream().await?;
    // Start-up work (stream and consumer checks, pools filling) settles
    // before memory counts as idle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pids: Vec<(String, u32)> = names
        .iter()
        .map(|n| {
            cluster
                .pid(n)
                .map(|p| ((*n).to_owned(), p))
                .ok_or_else(|| anyhow::anyhow!("{n} is not running"))
        })
        .collect::<anyhow::Result<_>>()?;
    let idle: BTreeMap<String, memory::Reading> = pids
        .iter()
        .filter_map(|(n, p)| Some((n.clone(), memory::read(*p)?)))
        .collect();

    let settled_before = scalar(&admin, "SELECT count(*) FROM prepayment.settlements").await?;
    let progress_before = scalar(&admin, "SELECT count(*) FROM agreements.accepted_lines").await?;
    let (offsets_before, offset_fen_before): (i64, i64) = sqlx::query_as(
        "SELECT count(*), COALESCE(-SUM(amount_fen), 0)::bigint FROM prepayment.entries WHERE kind = 'offset'",
    )
    .fetch_one(&admin)
    .await?;

    if args.statements.is_some() {
        statements::reset(&admin).await?;
    }
    say(format!(
        "driving {orders} orders = {lines} lines ({} publishers, {} settlers, runs of up to {}, topology {:?})",
        args.publishers, args.settlers, args.run_size, args.topology
    ));
    let sampler = memory::Sampler::start(pids.clone(), Duration::from_millis(100));
    let mut settler = Some(tokio::spawn(settle_all(
        cluster
            .platform
            .rpc_client()
            .with_timeout(Duration::from_secs(30)),
        admin.clone(),
        orders,
        args.settlers,
        args.run_size,
    )));
    let mut rpc_calls = 0;
    let started_wall = epoch(Utc::now());
    let started = Instant::now();
    let publishers: Vec<_> = (0..args.publishers)
        .map(|n| {
            tokio::spawn(publish(
                cluster.platform.clone(),
                n,
                args.publishers,
                orders,
            ))
        })
        .collect();
    let mut first_publish: BTreeMap<String, f64> = BTreeMap::new();
    for p in publishers {
        for (k, at) in p.await?? {
            first_publish.insert(format!("{PREFIX}{k}"), at);
        }
    }
    let published = started.elapsed();

    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut progressed_after = None;
    let mut polls = 0u64;
    let settled_after = loop {
        let progress = scalar(&admin, "SELECT count(*) FROM agreements.accepted_lines").await?
            - progress_before;
        if progressed_after.is_none() && progress >= lines as i64 {
            progressed_after = Some(started.elapsed());
        }
        let settled =
            scalar(&admin, "SELECT count(*) FROM prepayment.settlements").await? - settled_before;
        if settled >= orders as i64 && progressed_after.is_some() {
            break started.elapsed();
        }
        if settler.as_ref().is_some_and(|s| s.is_finished()) {
            // Done invoicing and paying; an error is why nothing more will come.
            if let Some(s) = settler.take() {
                rpc_calls = s
                    .await?
                    .map_err(|e| e.context("settling the acceptances"))?;
            }
        }
        // The refusal check scans every ingest record: once a second.
        polls += 1;
        let refused: Option<(String, String, Option<String>, Option<String>)> =
            if polls.is_multiple_of(10) {
                sqlx::query_as(
                    "SELECT external_id, outcome, field, reason FROM orders.ingest_messages \
                 WHERE outcome NOT IN ('applied', 'pending') LIMIT 1",
                )
                .fetch_optional(&admin)
                .await?
            } else {
                None
            };
        if let Some((ext, outcome, field, reason)) = refused {
            anyhow::bail!(
                "integrator message {ext} was {outcome}: {} {}",
                field.unwrap_or_default(),
                reason.unwrap_or_default()
            );
        }
        for (name, pid) in &pids {
            anyhow::ensure!(
                memory::read(*pid).is_some(),
                "{name} exited under load\n{}",
                cluster.log_tail(name, 30)
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "after {}s: {progress} of {lines} lines counted as progress, {settled} of {orders} \
             settlements offset by prepayment",
            args.timeout_secs
        );
        // Counting scans the tables it counts: ten times a second times the
        // run to a tenth of a second without loading the servers measured.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let peaks = sampler.finish().await;
    let hwm: BTreeMap<String, memory::Reading> = pids
        .iter()
        .filter_map(|(n, p)| Some((n.clone(), memory::read(*p)?)))
        .collect();
    if let Some(s) = settler {
        rpc_calls = s.await??;
    }

    // Every message applied, nothing dead-lettered: the figure is of a
    // pipeline that did all its work.
    let unapplied = scalar(
        &admin,
        "SELECT count(*) FROM orders.ingest_messages WHERE outcome <> 'applied'",
    )
    .await?;
    let mut dead = 0;
    for schema in ["agreements", "orders", "prepayment"] {
        dead += sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}.inbox WHERE outcome <> 'applied'"
        )))
        .fetch_one(&admin)
        .await?;
    }
    anyhow::ensure!(
        unapplied == 0 && dead == 0,
        "{unapplied} ingest messages not applied, {dead} events dead-lettered"
    );
    let (offsets_after, offset_fen_after): (i64, i64) = sqlx::query_as(
        "SELECT count(*), COALESCE(-SUM(amount_fen), 0)::bigint FROM prepayment.entries WHERE kind = 'offset'",
    )
    .fetch_one(&admin)
    .await?;
    let balances: i64 = scalar(
        &admin,
        "SELECT COALESCE(SUM(balance_fen), 0)::bigint FROM prepayment.ledgers WHERE state = 'disbursed'",
    )
    .await?;

    // Ingest → progress per order: agreements' inbox row for the order's
    // `orders.receipt.accepted` is written in the transaction that counted
    // it; `processed_at` is that transaction's time.
    let rows: Vec<(String, f64)> = sqlx::query_as(
        "SELECT o.external_id, extract(epoch FROM i.processed_at)::float8 \
         FROM agreements.inbox i JOIN orders.outbox ob ON ob.id = i.event_id \
         JOIN orders.orders o ON o.id = (ob.payload->>'order')::uuid \
         WHERE i.event_type = 'orders.receipt.accepted' AND o.external_id LIKE 'BENCH-PO-%'",
    )
    .fetch_all(&admin)
    .await?;
    let mut latencies: Vec<f64> = rows
        .iter()
        .filter_map(|(po, at)| Some((at - first_publish.get(po)?) * 1000.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    if latencies.len() != orders {
        say(format!(
            "only {} of {orders} orders traced to agreements' inbox; latencies are of those",
            latencies.len()
        ));
    }
    let (p50, p99, max) = (
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
    );

    let top = match args.statements {
        Some(n) => statements::top(&admin, n).await?,
        None => Vec::new(),
    };
    let secs = settled_after.as_secs_f64();
    let rate = lines as f64 / secs;
    let messages = orders * 4;
    let publish_rate = messages as f64 / published.as_secs_f64();
    let progressed = progressed_after.unwrap_or(settled_after).as_secs_f64();
    let report = json!({
        "topology": format!("{:?}", args.topology).to_lowercase(),
        "orders": orders,
        "lines": lines,
        "ingest_messages": messages,
        "rpc_calls": rpc_calls,
        "seconds": secs,
        "lines_per_sec": rate,
        "published_after_secs": published.as_secs_f64(),
        "publish_messages_per_sec": publish_rate,
        "progressed_after_secs": progressed,
        "ingest_to_progress_ms": { "orders": latencies.len(), "p50": p50, "p99": p99, "max": max },
        "offsets": {
            "settlements": orders,
            "with_amount": offsets_after - offsets_before,
            "amount_fen": offset_fen_after - offset_fen_before,
            "disbursed_balance_left_fen": balances,
        },
        "raw_insert_rows_per_sec": raw,
        "raw_insert_ceiling": raw_best,
        "ratio_to_raw_insert": rate / raw_best,
        "jetstream_publish_ceiling": js_ceiling,
        "publish_ratio_to_jetstream": publish_rate / js_ceiling,
        "rss_mib": pids.iter().map(|(n, _)| (n.clone(), json!({
            "idle": idle.get(n).map(|r| memory::mib(r.rss_kib)),
            "peak_under_load": peaks.get(n).map(|k| memory::mib(*k)),
            "hwm": hwm.get(n).map(|r| memory::mib(r.hwm_kib)),
        }))).collect::<serde_json::Map<_, _>>(),
        "started_at_epoch": started_wall,
        "statements": top,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!();
    println!(
        "vbp bench — {orders} orders, {lines} lines, topology {:?}",
        args.topology
    );
    println!(
        "  pipeline: integrator NATS -> orders (ingest, acceptance) -> agreements progress; \
         invoice uploads + payment runs (RPC) -> orders settlement -> prepayment offset"
    );
    println!(
        "  {:<44} {:>12}",
        "settlement calls (invoice + payment RPC)",
        format!("{rpc_calls} for {orders}")
    );
    println!(
        "  {:<44} {:>12}",
        "end to end (first publish -> last offset)",
        format!("{secs:.2} s")
    );
    println!(
        "  {:<44} {:>12}",
        "lines/s end to end",
        format!("{rate:.0}")
    );
    println!(
        "  {:<44} {:>12}",
        "all lines counted as progress after",
        format!("{progressed:.2} s")
    );
    println!(
        "  {:<44} {:>12}",
        "ingest -> progress p50 / p99 / max",
        format!("{p50:.0} / {p99:.0} / {max:.0} ms")
    );
    println!(
        "  {:<44} {:>12}",
        "ingest messages published",
        format!("{messages} in {:.2} s", published.as_secs_f64())
    );
    println!(
        "  {:<44} {:>12}",
        "offsets recorded (of settlements)",
        format!("{} of {orders}", offsets_after - offsets_before)
    );
    println!(
        "  {:<44} {:>12}",
        "recovered / disbursed balance left (yuan)",
        format!(
            "{:.2} / {:.2}",
            (offset_fen_after - offset_fen_before) as f64 / 100.0,
            balances as f64 / 100.0
        )
    );
    println!();
    ceiling::print_raw(&raw);
    println!(
        "  {:<44} {:>12}",
        "lines/s ÷ raw INSERT ceiling",
        format!("{:.2}x", rate / raw_best)
    );
    println!(
        "  {:<44} {:>12}",
        "JetStream publish ceiling (msgs/s)",
        format!("{js_ceiling:.0}")
    );
    println!(
        "  {:<44} {:>12}",
        "ingest publish rate ÷ JetStream ceiling",
        format!("{publish_rate:.0}/s = {:.2}x", publish_rate / js_ceiling)
    );
    println!();
    println!(
        "  {:<14} {:>10} {:>14} {:>10}",
        "process", "idle MiB", "peak load MiB", "VmHWM MiB"
    );
    for (name, _) in &pids {
        let f = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
        println!(
            "  {:<14} {:>10} {:>14} {:>10}",
            name,
            f(idle.get(name).map(|r| memory::mib(r.rss_kib))),
            f(peaks.get(name).map(|k| memory::mib(*k))),
            f(hwm.get(name).map(|r| memory::mib(r.hwm_kib))),
        );
    }
    statements::print(&top);
    println!();
    println!(
        "  targets on 2 cores: >= 10000 lines/s ({}), >= 0.66x the raw ceiling ({}), \
         idle all-in-one RSS < 100 MiB ({})",
        if rate >= 10_000.0 { "met" } else { "missed" },
        if rate / raw_best >= 0.66 {
            "met"
        } else {
            "missed"
        },
        match idle.get("all") {
            Some(r) if memory::mib(r.rss_kib) < 100.0 => "met",
            Some(_) => "missed",
            None => "not measured: --topology all",
        }
    );
    Ok(())
}
