//! This service's part of the Liaoning demo (辽宁省 · 冠脉导引导管集采,
//! ZJHCCG-2022-01, period 2): authorisations of the two demo distributors by
//! the two demo manufacturers, and active relations for every agreed line of
//! the three demo hospitals, loaded through the same functions the RPC
//! handlers use, idempotently (a second load changes nothing).
//!
//! It needs the agreements demo projected here first (orgs, period 2 and its
//! supply list arrive as agreements events); until then `demo_load` answers
//! 503 `projection_pending` and the caller retries.
//!
//! | authorisation | manufacturer → distributor | areas |
//! |---|---|---|
//! | `…c001` | 示例心血管 → 辽宁示例医药物流 | 210100, 210900 |
//! | `…c002` | 上海示例介入 → 阜新示例医药 | 210900 |
//! | `…c003` | 上海示例介入 → 辽宁示例医药物流 | 210100 |
//! | `…c004` | 示例心血管 → 阜新示例医药 | 210900 |
//!
//! 彰武县 (210922) is marked remote by the Fuxin bureau.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use vbp_bus::{Context, Outbox, RpcError};
use vbp_contracts::agreements::PeriodId;
use vbp_contracts::distribution::{
    AuthorisationId, DemoLoaded, GrantAuthorisation, LoadDemo, RemoteAreaView, SelectDistributors,
};
use vbp_kernel::{Actor, NationalCode, OrgId, OrgKind, RegionCode, SharedClock};

use crate::api::{self, Shared};
use crate::store;

pub const FUXIN_BUREAU: &str = "01930000-0000-7000-8000-000000210900";
pub const SHENYANG_HOSPITAL: &str = "01930000-0000-7000-8000-000000000101";
pub const FUXIN_HOSPITAL: &str = "01930000-0000-7000-8000-000000000102";
pub const COUNTY_HOSPITAL: &str = "01930000-0000-7000-8000-000000000103";
pub const MANUFACTURER_A: &str = "01930000-0000-7000-8000-000000000201";
pub const MANUFACTURER_B: &str = "01930000-0000-7000-8000-000000000202";
pub const DISTRIBUTOR_SHENYANG: &str = "01930000-0000-7000-8000-000000000301";
pub const DISTRIBUTOR_FUXIN: &str = "01930000-0000-7000-8000-000000000302";
pub const PERIOD_2: &str = "01930000-0000-7000-8000-00000000b002";

pub const A_PRODUCTS: &[&str] = &[
    "C02010205103001107660000011",
    "C02010205103001107660000012",
    "C02010205103002107660000021",
];
pub const B_PRODUCTS: &[&str] = &[
    "C02010205103001108810000031",
    "C02010205103001108810000032",
    "C02010205103002108810000041",
];

/// (id, manufacturer, distributor, products, areas)
type DemoAuth = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

pub const AUTHORISATIONS: &[DemoAuth] = &[
    (
        "01930000-0000-7000-8000-00000000c001",
        MANUFACTURER_A,
        DISTRIBUTOR_SHENYANG,
        A_PRODUCTS,
        &["210100", "210900"],
    ),
    (
        "01930000-0000-7000-8000-00000000c002",
        MANUFACTURER_B,
        DISTRIBUTOR_FUXIN,
        B_PRODUCTS,
        &["210900"],
    ),
    (
        "01930000-0000-7000-8000-00000000c003",
        MANUFACTURER_B,
        DISTRIBUTOR_SHENYANG,
        B_PRODUCTS,
        &["210100"],
    ),
    (
        "01930000-0000-7000-8000-00000000c004",
        MANUFACTURER_A,
        DISTRIBUTOR_FUXIN,
        A_PRODUCTS,
        &["210900"],
    ),
];

/// Active relations: (hospital, region, product, distributor) — every
/// agreed line of the agreements demo.
pub const RELATIONS: &[(&str, &str, &str, &str)] = &[
    (
        SHENYANG_HOSPITAL,
        "210102",
        "C02010205103001107660000011",
        DISTRIBUTOR_SHENYANG,
    ),
    (
        SHENYANG_HOSPITAL,
        "210102",
        "C02010205103001108810000031",
        DISTRIBUTOR_SHENYANG,
    ),
    (
        SHENYANG_HOSPITAL,
        "210102",
        "C02010205103002107660000021",
        DISTRIBUTOR_SHENYANG,
    ),
    (
        FUXIN_HOSPITAL,
        "210902",
        "C02010205103001107660000012",
        DISTRIBUTOR_SHENYANG,
    ),
    (
        FUXIN_HOSPITAL,
        "210902",
        "C02010205103001108810000032",
        DISTRIBUTOR_FUXIN,
    ),
    (
        COUNTY_HOSPITAL,
        "210922",
        "C02010205103001107660000011",
        DISTRIBUTOR_FUXIN,
    ),
];

pub const REMOTE_COUNTY: &str = "210922";

fn org(s: &str) -> OrgId {
    s.parse().expect("demo ids are UUIDs")
}

fn region(s: &str) -> RegionCode {
    s.parse().expect("demo regions are valid")
}

fn code(s: &str) -> NationalCode {
    NationalCode::parse(s).expect("demo codes are valid")
}

fn demo_actor(id: &str, kind: OrgKind, region_code: &str) -> Actor {
    Actor {
        sub: format!("demo:{id}"),
        org: org(id),
        org_kind: kind,
        region: region(region_code),
        roles: Vec::new(),
    }
}

fn pending(what: String) -> RpcError {
    RpcError::new(
        503,
        "projection_pending",
        format!(
            "{what} has not arrived from the agreements service yet; load its demo first and retry"
        ),
    )
}

/// Loads the demo; returns whether anything was created.
pub async fn load_demo(
    pool: &PgPool,
    outbox: &Outbox,
    clock: &SharedClock,
) -> Result<bool, RpcError> {
    let ctx = Context::new(Some(Actor::system("distribution-demo")));
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('distribution-demo'))")
        .execute(&mut *tx)
        .await?;
    let period_id: PeriodId = PERIOD_2.parse().expect("uuid");
    let Some(period) = store::get_period(&mut tx, period_id).await? else {
        return Err(pending(format!("demo period {PERIOD_2}")));
    };
    let listed = store::count_supply_items(&mut tx, period_id).await?;
    if listed < (A_PRODUCTS.len() + B_PRODUCTS.len()) as i64 {
        return Err(pending("the demo supply list".into()));
    }
    for id in [
        SHENYANG_HOSPITAL,
        FUXIN_HOSPITAL,
        COUNTY_HOSPITAL,
        MANUFACTURER_A,
        MANUFACTURER_B,
        DISTRIBUTOR_SHENYANG,
        DISTRIBUTOR_FUXIN,
    ] {
        if store::get_org(&mut tx, org(id)).await?.is_none() {
            return Err(pending(format!("demo organisation {id}")));
        }
    }
    // The scenario's business time: now while period 2 runs; its second day
    // when the clock is already past it (so the rules for a running period
    // hold as they did then).
    let clock_now = clock.now();
    let now: DateTime<Utc> = if clock_now < period.ends_at {
        clock_now
    } else {
        period.starts_at + Duration::days(1)
    };
    if !store::mark_demo(&mut tx, "liaoning-guiding-catheter", clock_now).await? {
        return Ok(false);
    }
    store::mark_remote(
        &mut tx,
        &RemoteAreaView {
            region: region(REMOTE_COUNTY),
            remote: true,
            note: Some("演示数据: 彰武县为偏远地区".into()),
            marked_by: org(FUXIN_BUREAU),
            marked_at: now,
        },
    )
    .await?;
    for (id, maker, dist, products, areas) in AUTHORISATIONS {
        let auth: AuthorisationId = id.parse().expect("uuid");
        if store::get_authorisation(&mut tx, auth, false)
            .await?
            .is_some()
        {
            continue;
        }
        let m = demo_actor(maker, OrgKind::Manufacturer, "330100");
        let req = GrantAuthorisation {
            period: period_id,
            distributor: org(dist),
            products: products.iter().map(|c| code(c)).collect(),
            areas: areas.iter().map(|r| region(r)).collect(),
        };
        api::authorisations::grant_in(&mut tx, outbox, &ctx, &m, &req, auth, now).await?;
        let d = demo_actor(dist, OrgKind::Distributor, "210100");
        api::authorisations::decide_in(&mut tx, outbox, &ctx, &d, auth, None, now).await?;
    }
    for (hospital, hospital_region, product, dist) in RELATIONS {
        let h = demo_actor(hospital, OrgKind::Hospital, hospital_region);
        let product = code(product);
        if store::open_relation(&mut tx, period_id, h.org, &product, org(dist))
            .await?
            .is_some()
        {
            continue;
        }
        let sel = api::relations::select_in(
            &mut tx,
            outbox,
            &ctx,
            &h,
            &SelectDistributors {
                period: period_id,
                national_code: product,
                distributors: vec![org(dist)],
            },
            now,
        )
        .await?;
        let d = demo_actor(dist, OrgKind::Distributor, "210100");
        for rel in sel.relations {
            api::relations::decide_in(&mut tx, outbox, &ctx, &d, rel.relation, None, now).await?;
        }
    }
    tx.commit().await?;
    Ok(true)
}

/// `demo_load`: operators only.
pub async fn demo_load(svc: Shared, ctx: Context, _req: LoadDemo) -> Result<DemoLoaded, RpcError> {
    match &ctx.actor {
        Some(a) if a.org_kind == OrgKind::Operator => {}
        _ => return Err(RpcError::forbidden("only operators load demo data")),
    }
    let created = load_demo(&svc.pool, &svc.outbox, &svc.clock).await?;
    Ok(DemoLoaded { created })
}
