//! Province-wide prepayment recalculation after a ratio change: time of one
//! `prepayment.ledger_recalculate` call over every open ledger of a province.
//!
//! The inputs are loaded directly into the prepayment schema with set-based
//! SQL (the state the agreement-event consumer leaves behind: projected
//! periods, effective agreement versions, one ledger per hospital × project
//! with its first calculation at 30%), not replayed as events, so the
//! measurement is the recalculation alone. The service then runs with
//! Liaoning at 50% and the call recalculates every ledger: a new
//! calculation each, an adjustment entry on the disbursed ones, approvals
//! of changed figures withdrawn, one `calculated` event each.
//!
//!   deploy/local/bench prepayment
//!   deploy/local/bench prepayment -- --hospitals 6000 --projects 10 --agreements 10

use std::time::{Duration, Instant};

use clap::Parser;
use tokio_util::sync::CancellationToken;
use vbp_bus::Context;
use vbp_contracts::prepayment as p;
use vbp_kernel::{Actor, OrgId, OrgKind};
use vbp_platform::testkit::TestEnv;

#[derive(Parser, Debug)]
struct Args {
    /// Hospitals in the province.
    #[arg(long, default_value_t = 6_000)]
    hospitals: i64,
    /// VBP projects each hospital has a period of.
    #[arg(long, default_value_t = 10)]
    projects: i64,
    /// Effective agreement lines per hospital × project.
    #[arg(long, default_value_t = 10)]
    agreements: i64,
    /// Target for the recalculation, in seconds.
    #[arg(long, default_value_t = 10.0)]
    target_secs: f64,
}

const LOAD: &[&str] = &[
    "INSERT INTO periods (id, project, project_code, number, starts_at, ends_at) \
     SELECT gen_random_uuid(), gen_random_uuid(), 'BENCH-' || g, 1, \
            '2026-01-01T00:00:00+08:00', '2027-01-01T00:00:00+08:00' \
     FROM generate_series(1, $2) g",
    // Hospitals spread over Liaoning's counties (2101xx … 2114xx).
    "CREATE TEMP TABLE bench_hospitals AS \
     SELECT gen_random_uuid() AS id, \
            210000 + (1 + g % 14) * 100 + 1 + (g / 14) % 20 AS region \
     FROM generate_series(0, $1 - 1) g",
    "INSERT INTO agreements (id, version, state, period, project, hospital, hospital_region, amount_fen, changed_at) \
     SELECT gen_random_uuid(), 1, 'effective', p.id, p.project, h.id, h.region, \
            (1 + floor(random() * 2000000))::bigint, now() \
     FROM periods p CROSS JOIN bench_hospitals h CROSS JOIN generate_series(1, $3) k",
    "INSERT INTO ledgers (id, hospital, hospital_region, project, period, state, agreed_amount_fen, \
        ratio_bp, amount_fen, rule, created_at, updated_at) \
     SELECT gen_random_uuid(), a.hospital, a.hospital_region, a.project, a.period, \
            (ARRAY['calculated', 'approved', 'disbursed'])[1 + (row_number() OVER ()) % 3], \
            SUM(a.amount_fen), 3000, (SUM(a.amount_fen) * 3000 + 5000) / 10000, 'default', now(), now() \
     FROM agreements a GROUP BY a.hospital, a.hospital_region, a.project, a.period",
    "UPDATE ledgers SET approved_by = gen_random_uuid(), approved_at = now(), \
        approved_on = current_date, disburse_by = now() + interval '21 days' \
     WHERE state IN ('approved', 'disbursed')",
    "UPDATE ledgers SET payment_reference = 'BENCH-' || id, disbursed_on = current_date, \
        balance_fen = amount_fen WHERE state = 'disbursed'",
    "INSERT INTO entries (id, ledger, seq, kind, amount_fen, balance_fen, cause, recorded_at) \
     SELECT gen_random_uuid(), id, 1, 'disbursed', amount_fen, amount_fen, 'bench load', now() \
     FROM ledgers WHERE state = 'disbursed'",
    "INSERT INTO calculations (ledger, seq, agreed_amount_fen, ratio_bp, amount_fen, adjustment_fen, \
        inputs, rule, cause, calculated_at) \
     SELECT l.id, 1, l.agreed_amount_fen, 3000, l.amount_fen, 0, \
            (SELECT jsonb_agg(jsonb_build_object('agreement', a.id, 'version', a.version, \
                     'agreed_amount_fen', a.amount_fen) ORDER BY a.id) \
               FROM agreements a WHERE a.hospital = l.hospital AND a.project = l.project \
                 AND a.period = l.period), \
            'default', 'bench load', now() \
     FROM ledgers l",
    "ANALYZE",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let env = TestEnv::new().await;
    let config = env.config().with_figment_overrides(serde_json::json!({
        "db_max_connections": 4,
        "prepayment": { "ratios": [ { "region": "210000", "ratio_bp": 5000 } ] }
    }))?;
    let platform = env.platform_with(config, CancellationToken::new()).await;
    let service = tokio::spawn(vbp_prepayment::run(platform.clone()));
    let rpc = platform.rpc_client().with_timeout(Duration::from_secs(600));
    let operator = Actor {
        sub: "bench".into(),
        org: OrgId::new(),
        org_kind: OrgKind::Operator,
        region: "000000".parse()?,
        roles: vec![],
    };
    let ctx = Context::new(Some(operator));
    let started = Instant::now();
    while rpc
        .call::<p::RegionSummaryOp>(&ctx, &p::SummariseRegions::default())
        .await
        .is_err()
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the prepayment service did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let db = env.pool_in("prepayment").await;
    let lines = args.hospitals * args.projects * args.agreements;
    println!(
        "loading {lines} agreement lines ({} hospitals × {} projects × {} lines) into the prepayment schema",
        args.hospitals, args.projects, args.agreements
    );
    let load = Instant::now();
    let mut conn = db.acquire().await?;
    for sql in LOAD {
        let sql = sql
            .replace("$1", &args.hospitals.to_string())
            .replace("$2", &args.projects.to_string())
            .replace("$3", &args.agreements.to_string());
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *conn)
            .await
            .map_err(|e| anyhow::anyhow!("{sql}: {e}"))?;
    }
    drop(conn);
    let ledgers: i64 = sqlx::query_scalar("SELECT count(*) FROM ledgers")
        .fetch_one(&db)
        .await?;
    println!(
        "loaded in {:.1} s: {ledgers} ledgers",
        load.elapsed().as_secs_f64()
    );

    let req = p::RecalculateLedgers {
        region: "210000".parse()?,
        period: None,
    };
    let t = Instant::now();
    let r = rpc.call::<p::LedgerRecalculate>(&ctx, &req).await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "recalculated the province: {} ledgers looked at, {} changed, in {secs:.2} s ({:.0} agreement lines/s); target < {} s: {}",
        r.ledgers,
        r.changed,
        lines as f64 / secs,
        args.target_secs,
        if secs < args.target_secs {
            "met"
        } else {
            "MISSED"
        }
    );

    let t = Instant::now();
    let s = rpc
        .call::<p::RegionSummaryOp>(&ctx, &p::SummariseRegions::default())
        .await?;
    println!(
        "summary of {} rows in {:.2} s; reconciled: {}; adjustments {} yuan over {} ledgers",
        s.rows.len(),
        t.elapsed().as_secs_f64(),
        s.reconciled,
        s.total.adjustment_fen,
        s.total.ledgers
    );
    let calculations: i64 = sqlx::query_scalar("SELECT count(*) FROM calculations")
        .fetch_one(&db)
        .await?;
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE event_type = 'prepayment.ledger.calculated'",
    )
    .fetch_one(&db)
    .await?;
    println!("{calculations} calculations kept, {events} calculated events in the outbox");
    anyhow::ensure!(s.reconciled, "the ledgers do not reconcile");
    anyhow::ensure!(r.changed == ledgers, "not every ledger was recalculated");
    platform.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), service).await;
    Ok(())
}
