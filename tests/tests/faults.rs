//! Faults with real processes: every service runs as its own `vbp serve`
//! process while an integrator publishes orders on NATS (placed, shipped,
//! received, accepted), and the test breaks what production breaks —
//! service processes killed with SIGKILL at random moments, the broker
//! stopped, the broker's store lost. Each test ends when the system has
//! converged and proves that nothing was lost and nothing doubled: every
//! order exists once, every acceptance is counted once in procurement
//! progress (to the unit and the fen, key by key), no message went to a
//! dead-letter queue, and the reconciliation report is clean.
//!
//! The tests run one at a time: each starts five service processes, which
//! is all two cores carry while keeping convergence times meaningful.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Value, json};
use tokio::time::Instant;
use vbp_agreements::demo::{INTEGRATOR, PERIOD_2};
use vbp_bus::Context;
use vbp_contracts::Service;
use vbp_contracts::ingest;
use vbp_contracts::reconcile::{FiguresRequest, Measure, ReconciliationReport};
use vbp_kernel::Actor;
use vbp_platform::Platform;
use vbp_platform::testkit::{NatsServer, TestEnv};
use vbp_tests::procs::{Cluster, PrivatePostgres, Target};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every backend service, one process each.
const BACKENDS: [&str; 6] = [
    "agreements",
    "distribution",
    "orders",
    "prepayment",
    "issues",
    "supervision",
];

/// How long the system may take to converge once the faults stop.
const CONVERGENCE: Duration = Duration::from_secs(75);

/// What the demo lets the integrator order: a hospital it acts for, a
/// product on period 2's supply list, the distributor delivering it there,
/// and the winning price.
#[derive(Debug, Clone)]
struct Line {
    hospital: &'static str,
    code: &'static str,
    distributor: &'static str,
    price_fen: i64,
}

fn demo_lines() -> Vec<Line> {
    vbp_distribution::demo::RELATIONS
        .iter()
        .map(|(hospital, _, code, distributor)| {
            let yuan = vbp_agreements::demo::PRODUCTS
                .iter()
                .find(|p| p.0 == *code)
                .map(|p| p.3)
                .expect("every related product is on the supply list");
            let (whole, cents) = yuan.split_once('.').expect("price in yuan with fen");
            Line {
                hospital,
                code,
                distributor,
                price_fen: whole.parse::<i64>().expect("yuan") * 100
                    + cents.parse::<i64>().expect("fen"),
            }
        })
        .collect()
}

/// The integrator's orders: order `k` takes line `k mod lines` and a
/// quantity of 1 to 5, and runs through all four messages.
struct Load {
    lines: Vec<Line>,
    orders: usize,
}

impl Load {
    fn new(orders: usize) -> Self {
        Self {
            lines: demo_lines(),
            orders,
        }
    }

    fn line(&self, k: usize) -> &Line {
        &self.lines[k % self.lines.len()]
    }

    fn quantity(k: usize) -> i64 {
        1 + (k % 5) as i64
    }

    /// The four messages of order `k`, in the order the hospital's system sends them.
    fn messages(&self, k: usize) -> [(&'static str, Value); 4] {
        let l = self.line(k);
        let q = Self::quantity(k);
        let po = format!("PO-{k}");
        [
            (
                ingest::ORDER_PLACED,
                json!({ "external_id": po, "hospital": l.hospital, "distributor": l.distributor,
                    "placed_at": "2024-09-10T08:00:00+08:00",
                    "lines": [{ "national_code": l.code, "quantity": q, "unit_price_fen": l.price_fen }] }),
            ),
            (
                ingest::SHIPMENT_DISPATCHED,
                json!({ "external_id": format!("SH-{k}"), "order_external_id": po,
                    "shipment_no": format!("S-{k}"), "shipped_at": "2024-09-10T08:10:00+08:00",
                    "lines": [{ "national_code": l.code, "batch_no": "B2409",
                                "expiry_date": "2027-06-30", "quantity": q }] }),
            ),
            (
                ingest::ORDER_RECEIVED,
                json!({ "external_id": format!("RC-{k}"), "order_external_id": po,
                    "shipment_no": format!("S-{k}"), "received_at": "2024-09-10T08:20:00+08:00" }),
            ),
            (
                ingest::ORDER_ACCEPTED,
                json!({ "external_id": format!("AC-{k}"), "order_external_id": po,
                    "accepted_at": "2024-09-10T08:30:00+08:00",
                    "lines": [{ "national_code": l.code, "accepted_quantity": q, "rejected_quantity": 0 }] }),
            ),
        ]
    }

    /// Accepted (quantity, amount in fen) per (hospital, product) once the
    /// first `n` orders are through.
    fn expected(&self, n: usize) -> BTreeMap<(String, String), (i64, i64)> {
        let mut out = BTreeMap::new();
        for k in 0..n {
            let l = self.line(k);
            let q = Self::quantity(k);
            let e = out
                .entry((l.hospital.to_owned(), l.code.to_owned()))
                .or_insert((0, 0));
            e.0 += q;
            e.1 += q * l.price_fen;
        }
        out
    }
}

/// Publishes one integrator message until the broker acknowledges it, as an
/// integrator's system does (the message id makes a resend harmless).
async fn send(platform: &Platform, event: &str, body: &Value) {
    let external_id = body["external_id"].as_str().expect("external_id");
    let subject = platform.ns.ingest(INTEGRATOR, event);
    let payload = serde_json::to_vec(body).expect("json");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let msg = PublishMessage::build()
            .message_id(ingest::message_id(INTEGRATOR, external_id))
            .payload(payload.clone().into());
        let acked = tokio::time::timeout(Duration::from_secs(5), async {
            platform
                .js
                .send_publish(subject.clone(), msg)
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|_| Err("no acknowledgement within 5 s".into()));
        match acked {
            Ok(_) => return,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "{event} {external_id} never acknowledged: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Publishes orders `from..to` in slices of `slice` orders, pausing
/// `pace` between slices so faults land while messages are in flight.
async fn publish(
    platform: Platform,
    load: std::sync::Arc<Load>,
    from: usize,
    to: usize,
    pace: Duration,
) {
    const SLICE: usize = 10;
    let mut k = from;
    while k < to {
        let end = (k + SLICE).min(to);
        for order in k..end {
            for (event, body) in load.messages(order) {
                send(&platform, event, &body).await;
            }
        }
        k = end;
        tokio::time::sleep(pace).await;
    }
}

/// Starts every backend as its own process and loads the Liaoning demo's
/// agreements and distribution data through their own operations; returns
/// once the orders service has projected what the integrator's orders need.
async fn start_system(target: Target) -> Cluster {
    let mut cluster = Cluster::new(target).await;
    for name in BACKENDS {
        cluster.spawn(name, &[]);
    }
    for name in BACKENDS {
        cluster.wait_ready(name, Duration::from_secs(90)).await;
    }
    let rpc = cluster.rpc();
    let ctx = Context::new(Some(Actor::system("demo")));
    for service in [Service::Agreements, Service::Distribution] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rpc
                .call_raw(service, "demo_load", &ctx, bytes::Bytes::from_static(b"{}"))
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "{service} demo_load: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    let orders = cluster.pool_in("orders").await;
    let relations = vbp_distribution::demo::RELATIONS.len() as i64;
    wait_until(
        "the orders service's projections of the demo",
        Duration::from_secs(30),
        async || {
            let (seen, integrators): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM relations), \
                 (SELECT count(*) FROM orgs WHERE kind = 'integrator')",
            )
            .fetch_one(&orders)
            .await
            .unwrap_or((0, 0));
            (seen >= relations && integrators >= 1).then_some(())
        },
    )
    .await;
    cluster
}

async fn wait_until<T, F: AsyncFn() -> Option<T>>(what: &str, limit: Duration, f: F) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the system holds of the load.
#[derive(Debug, PartialEq)]
struct Holdings {
    /// Integrator orders, and distinct external ids among them.
    orders: (i64, i64),
    /// Integrator messages applied, and any not applied (rejected or waiting).
    applied: i64,
    not_applied: Vec<(String, String, Option<String>)>,
    /// Accepted quantity per line in orders.
    accepted_in_orders: i64,
    /// Agreements' progress per (hospital, product).
    progress: BTreeMap<(String, String), (i64, i64)>,
    /// Dead letters per service.
    dead: BTreeMap<&'static str, i64>,
}

async fn holdings(cluster: &Cluster) -> Holdings {
    let orders = cluster.pool_in("orders").await;
    let agreements = cluster.pool_in("agreements").await;
    let counts: (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT external_id) FROM orders WHERE integrator IS NOT NULL",
    )
    .fetch_one(&orders)
    .await
    .expect("orders");
    let applied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ingest_messages WHERE first AND outcome = 'applied'",
    )
    .fetch_one(&orders)
    .await
    .expect("ingest messages");
    let mut not_applied: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT external_id, outcome, reason FROM ingest_messages WHERE outcome <> 'applied' \
         ORDER BY external_id LIMIT 10",
    )
    .fetch_all(&orders)
    .await
    .expect("ingest messages");
    let waiting: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT external_id, 'waiting', waits_for FROM ingest_pending ORDER BY seq LIMIT 10",
    )
    .fetch_all(&orders)
    .await
    .expect("pending ingest");
    not_applied.extend(waiting);
    let accepted_in_orders: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(accepted_quantity), 0)::bigint FROM order_lines")
            .fetch_one(&orders)
            .await
            .expect("order lines");
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT hospital::text, national_code, accepted_quantity, accepted_amount_fen \
         FROM progress WHERE period = $1::uuid",
    )
    .bind(PERIOD_2)
    .fetch_all(&agreements)
    .await
    .expect("progress");
    let progress = rows
        .into_iter()
        .filter(|r| r.2 != 0 || r.3 != 0)
        .map(|(h, c, q, a)| ((h, c), (q, a)))
        .collect();
    let mut dead = BTreeMap::new();
    for name in BACKENDS {
        let pool = cluster.pool_in(name).await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM dlq")
            .fetch_one(&pool)
            .await
            .unwrap_or(-1);
        dead.insert(name, n);
        pool.close().await;
    }
    orders.close().await;
    agreements.close().await;
    Holdings {
        orders: counts,
        applied,
        not_applied,
        accepted_in_orders,
        progress,
        dead,
    }
}

/// What the system must hold once the first `n` orders are through.
fn expected_holdings(load: &Load, n: usize) -> Holdings {
    let progress = load.expected(n);
    Holdings {
        orders: (n as i64, n as i64),
        applied: 4 * n as i64,
        not_applied: Vec::new(),
        accepted_in_orders: progress.values().map(|v| v.0).sum(),
        progress,
        dead: BACKENDS.iter().map(|s| (*s, 0)).collect(),
    }
}

async fn reconciliation(cluster: &Cluster) -> ReconciliationReport {
    let ctx = Context::new(Some(Actor::system("reconcile")));
    vbp_gateway::reconcile::report(&cluster.rpc(), &ctx, &FiguresRequest::default()).await
}

/// Whether the report is clean where it can be: every check compared and
/// without differences, except the settled amounts while prepayment does
/// not answer for its figures (then only that check stays uncompared).
fn reconciled(report: &ReconciliationReport) -> bool {
    let prepayment_silent = report
        .sources
        .iter()
        .any(|s| s.service == Service::Prepayment && !s.ok);
    report.checks.iter().all(|c| {
        c.differences.is_empty()
            && (c.compared || (c.measure == Measure::SettledAmountFen && prepayment_silent))
    })
}

/// Waits until the system holds exactly the first `n` orders' effects and
/// reconciles; fails naming what differs. Returns how long it took.
async fn assert_converged(cluster: &Cluster, load: &Load, n: usize) -> Duration {
    let started = Instant::now();
    let want = expected_holdings(load, n);
    loop {
        let got = holdings(cluster).await;
        let report = reconciliation(cluster).await;
        if got == want && reconciled(&report) {
            let quantity = report
                .checks
                .iter()
                .find(|c| c.measure == Measure::AcceptedQuantity)
                .expect("accepted quantity check");
            assert_eq!(
                quantity.source_total, want.accepted_in_orders,
                "the report's orders side counts every accepted unit"
            );
            for c in &report.checks {
                if !c.compared {
                    eprintln!(
                        "note: {:?} not compared ({} does not answer for its figures)",
                        c.measure, c.mirror
                    );
                }
            }
            return started.elapsed();
        }
        if started.elapsed() > CONVERGENCE {
            let mut logs = String::new();
            for name in BACKENDS {
                logs.push_str(&cluster.log_tail(name, 8));
            }
            panic!(
                "not converged within {CONVERGENCE:?}\nheld:     {got:?}\nexpected: {want:?}\nreport: {}\n{logs}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn seed() -> u64 {
    let seed = std::env::var("VBP_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("fault schedule seed {seed} (VBP_FAULT_SEED reproduces it)");
    seed
}

/// The tests proper, named `faults::…` so that `deploy/local/test -p
/// vbp-tests -- faults` selects them.
mod faults {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn service_processes_killed_at_random_moments_lose_and_double_nothing() {
        let _one = ONE_AT_A_TIME.lock().await;
        let env = TestEnv::new().await;
        let mut cluster = start_system(Target::from(&env)).await;
        let load = std::sync::Arc::new(Load::new(500));
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed());

        let publisher = tokio::spawn(publish(
            cluster.platform.clone(),
            load.clone(),
            0,
            load.orders,
            Duration::from_millis(250),
        ));
        // Kills land on the services the load runs through most often.
        let victims = [
            "orders",
            "orders",
            "agreements",
            "agreements",
            "prepayment",
            "distribution",
            "issues",
        ];
        let mut kills: Vec<(&str, Duration)> = Vec::new();
        let chaos_started = Instant::now();
        while !publisher.is_finished() || kills.len() < 6 {
            tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
            let victim = victims[rng.random_range(0..victims.len())];
            let killed = Instant::now();
            cluster.kill(victim);
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..800))).await;
            cluster.restart(victim).await;
            kills.push((victim, killed.elapsed()));
            assert!(
                chaos_started.elapsed() < Duration::from_secs(90),
                "the load did not finish publishing while faults ran"
            );
        }
        publisher.await.expect("publisher");
        let took = assert_converged(&cluster, &load, load.orders).await;
        eprintln!(
            "{} orders, {} kills (service, time from SIGKILL to answering again: {:?}), \
             converged {took:?} after the last restart",
            load.orders,
            kills.len(),
            kills
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_broker_stopped_and_restarted_under_load_loses_and_doubles_nothing() {
        let _one = ONE_AT_A_TIME.lock().await;
        let mut nats = NatsServer::start().await;
        let env = TestEnv::with_nats(nats.url()).await;
        let cluster = start_system(Target::from(&env)).await;
        let load = std::sync::Arc::new(Load::new(400));
        let publisher = tokio::spawn(publish(
            cluster.platform.clone(),
            load.clone(),
            0,
            load.orders,
            Duration::from_millis(150),
        ));
        tokio::time::sleep(Duration::from_secs(3)).await;
        nats.kill();
        tokio::time::sleep(Duration::from_secs(3)).await;
        nats.restart().await;
        let back = Instant::now();
        publisher.await.expect("publisher");
        let took = assert_converged(&cluster, &load, load.orders).await;
        eprintln!(
            "{} orders, broker down 3 s, converged {:?} after it came back",
            load.orders,
            back.elapsed().max(took)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_broker_store_is_recovered_by_republishing_the_outboxes() {
        let _one = ONE_AT_A_TIME.lock().await;
        let since: DateTime<Utc> = Utc::now() - chrono::Duration::seconds(5);
        let mut nats = NatsServer::start().await;
        let env = TestEnv::with_nats(nats.url()).await;
        let mut cluster = start_system(Target::from(&env)).await;
        let load = std::sync::Arc::new(Load::new(400));
        let half = load.orders / 2;
        // Agreements is down while the first half goes through orders, so its
        // acceptances sit in the broker when the broker's store is lost.
        cluster.kill("agreements");
        publish(
            cluster.platform.clone(),
            load.clone(),
            0,
            half,
            Duration::from_millis(20),
        )
        .await;
        let orders = cluster.pool_in("orders").await;
        wait_until(
            "orders to apply the first half",
            Duration::from_secs(60),
            async || {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM ingest_messages WHERE first AND outcome = 'applied'",
                )
                .fetch_one(&orders)
                .await
                .unwrap_or(0);
                (n == 4 * half as i64).then_some(())
            },
        )
        .await;
        let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_pending")
            .fetch_one(&orders)
            .await
            .expect("outbox");
        eprintln!("orders' outbox before the loss: {unsent} unsent");

        nats.kill();
        nats.wipe_store();
        nats.restart().await;
        let lost = Instant::now();
        // The operator's recovery: every service restarted on the empty broker
        // (streams and consumers are made at start), each outbox republished,
        // and the integrator resending what it sent since the loss window.
        for name in BACKENDS {
            cluster.kill(name);
        }
        for name in BACKENDS {
            cluster.spawn(name, &[]);
        }
        for name in BACKENDS {
            cluster.wait_ready(name, Duration::from_secs(60)).await;
        }
        let since_arg = since.to_rfc3339();
        for name in BACKENDS {
            let out = cluster.vbp(&[
                "outbox",
                "republish",
                "--service",
                name,
                "--since",
                &since_arg,
            ]);
            eprint!("{}", String::from_utf8_lossy(&out.stdout));
        }
        publish(
            cluster.platform.clone(),
            load.clone(),
            0,
            load.orders,
            Duration::from_millis(20),
        )
        .await;
        let took = assert_converged(&cluster, &load, load.orders).await;
        eprintln!(
            "{} orders, store lost after {half}; recovered {:?} after the loss ({took:?} after the last resend)",
            load.orders,
            lost.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_database_crashing_and_restarting_under_load_loses_and_doubles_nothing() {
        let _one = ONE_AT_A_TIME.lock().await;
        let pg = tokio::task::spawn_blocking(PrivatePostgres::start)
            .await
            .expect("private PostgreSQL");
        let suffix = uuid::Uuid::now_v7().simple().to_string();
        let target = Target {
            database_url: pg.url(),
            nats_url: std::env::var("VBP_TEST_NATS_URL")
                .expect("VBP_TEST_NATS_URL: run the tests with deploy/local/test"),
            ns: format!("t{}", &suffix[suffix.len() - 12..]),
        };
        let mut cluster = start_system(target).await;
        let load = std::sync::Arc::new(Load::new(400));
        let publisher = tokio::spawn(publish(
            cluster.platform.clone(),
            load.clone(),
            0,
            load.orders,
            Duration::from_millis(150),
        ));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let pg = tokio::task::spawn_blocking(move || {
            pg.crash();
            std::thread::sleep(Duration::from_secs(3));
            pg.restart();
            pg
        })
        .await
        .expect("database crashed and restarted");
        let back = Instant::now();
        publisher.await.expect("publisher");
        // A service that gave up on the database ends its process; the
        // supervisor starts it again.
        let revived = cluster.revive_exited().await;
        let took = assert_converged(&cluster, &load, load.orders).await;
        eprintln!(
            "{} orders, database down 3 s, processes that ended and were restarted: {revived:?}; \
             converged {:?} after it came back ({took:?} after the load)",
            load.orders,
            back.elapsed()
        );
        drop(cluster);
        drop(pg);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn orders_killed_in_the_middle_of_a_backlog_loses_and_doubles_nothing() {
        let _one = ONE_AT_A_TIME.lock().await;
        let env = TestEnv::new().await;
        let mut cluster = start_system(Target::from(&env)).await;
        let load = std::sync::Arc::new(Load::new(300));
        // The integrator's messages pile up while orders is down, so that when
        // it comes back it works through batches of them, and dies mid-way.
        cluster.kill("orders");
        publish(
            cluster.platform.clone(),
            load.clone(),
            0,
            load.orders,
            Duration::ZERO,
        )
        .await;
        cluster.restart("orders").await;
        let orders = cluster.pool_in("orders").await;
        let applied_at_kill = wait_until(
            "orders to be under way",
            Duration::from_secs(30),
            async || {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ingest_messages")
                    .fetch_one(&orders)
                    .await
                    .unwrap_or(0);
                (n > 0).then_some(n)
            },
        )
        .await;
        cluster.kill("orders");
        cluster.restart("orders").await;
        let took = assert_converged(&cluster, &load, load.orders).await;
        eprintln!(
            "{} orders queued while orders was down; killed after {applied_at_kill} of {} messages; converged {took:?}",
            load.orders,
            4 * load.orders
        );
    }
}
