//! The Liaoning demo (辽宁省 · 省际联盟冠脉导引导管集采, ZJHCCG-2022-01): a
//! working province for a newcomer, loaded through the same functions the
//! RPC handlers use, idempotently (a second load changes nothing).
//!
//! Fixed ids (the dev tokens printed by `deploy/local/run` use the same):
//!
//! | id | org | kind | region |
//! |---|---|---|---|
//! | `01930000-0000-7000-8000-000000210000` | 辽宁省医疗保障局 | bureau | 210000 |
//! | `01930000-0000-7000-8000-000000210100` | 沈阳市医疗保障局 | bureau | 210100 |
//! | `01930000-0000-7000-8000-000000210900` | 阜新市医疗保障局 | bureau | 210900 |
//! | `01930000-0000-7000-8000-000000000101` | 中国医科大学附属第一医院 (H21010200001) | hospital | 210102 |
//! | `01930000-0000-7000-8000-000000000102` | 阜新市中心医院 (H21090200001) | hospital | 210902 |
//! | `01930000-0000-7000-8000-000000000103` | 彰武县人民医院 (H21092200001) | hospital | 210922 |
//! | `01930000-0000-7000-8000-000000000201` | 示例心血管医疗器械有限公司 (91330100MA2A0001XD) | manufacturer | 330100 |
//! | `01930000-0000-7000-8000-000000000202` | 上海示例介入医疗科技有限公司 (91310000MA1F0004XR) | manufacturer | 310100 |
//! | `01930000-0000-7000-8000-000000000301` | 辽宁示例医药物流有限公司 (91210100MA0Y0001XM) | distributor | 210100 |
//! | `01930000-0000-7000-8000-000000000302` | 阜新示例医药有限公司 (91210900MA0Y0002X0) | distributor | 210900 |
//! | `01930000-0000-7000-8000-000000000401` | 示例医院SPD平台 (acts for the three hospitals) | integrator | 210000 |
//!
//! Project `01930000-0000-7000-8000-00000000a001`; period 1
//! `01930000-0000-7000-8000-00000000b001` (2023-08-01..2024-07-31), period 2
//! `01930000-0000-7000-8000-00000000b002` (2024-08-01 00:00 .. 2025-07-31
//! 24:00 Beijing, paper deadline 2024-09-18 17:00), carried over from period 1.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;
use vbp_bus::{Context, Outbox, RpcError};
use vbp_contracts::agreements::{
    AgreedVolumeSet, AgreedVolumeView, DemoLoaded, HospitalLevel, LoadDemo, OpenPeriod, PeriodId,
    ProductGroup, ProjectId, RegisterOrg, RegisterProject, SupplyRow,
};
use vbp_kernel::{Actor, CodeKind, Money, OrgId, OrgKind, SharedClock};

use crate::api::{self, Shared};
use crate::store;

pub const PROVINCE_BUREAU: &str = "01930000-0000-7000-8000-000000210000";
pub const SHENYANG_BUREAU: &str = "01930000-0000-7000-8000-000000210100";
pub const FUXIN_BUREAU: &str = "01930000-0000-7000-8000-000000210900";
pub const SHENYANG_HOSPITAL: &str = "01930000-0000-7000-8000-000000000101";
pub const FUXIN_HOSPITAL: &str = "01930000-0000-7000-8000-000000000102";
pub const COUNTY_HOSPITAL: &str = "01930000-0000-7000-8000-000000000103";
pub const MANUFACTURER_A: &str = "01930000-0000-7000-8000-000000000201";
pub const MANUFACTURER_B: &str = "01930000-0000-7000-8000-000000000202";
pub const DISTRIBUTOR_SHENYANG: &str = "01930000-0000-7000-8000-000000000301";
pub const DISTRIBUTOR_FUXIN: &str = "01930000-0000-7000-8000-000000000302";
pub const INTEGRATOR: &str = "01930000-0000-7000-8000-000000000401";
pub const PROJECT: &str = "01930000-0000-7000-8000-00000000a001";
pub const PERIOD_1: &str = "01930000-0000-7000-8000-00000000b001";
pub const PERIOD_2: &str = "01930000-0000-7000-8000-00000000b002";

pub const PROJECT_CODE: &str = "ZJHCCG-2022-01";

fn id(s: &str) -> OrgId {
    s.parse().expect("demo ids are UUIDs")
}

struct Org {
    id: &'static str,
    kind: OrgKind,
    name: &'static str,
    region: &'static str,
    code: Option<&'static str>,
    level: Option<HospitalLevel>,
}

const ORGS: &[Org] = &[
    Org {
        id: PROVINCE_BUREAU,
        kind: OrgKind::Bureau,
        name: "辽宁省医疗保障局",
        region: "210000",
        code: None,
        level: None,
    },
    Org {
        id: SHENYANG_BUREAU,
        kind: OrgKind::Bureau,
        name: "沈阳市医疗保障局",
        region: "210100",
        code: None,
        level: None,
    },
    Org {
        id: FUXIN_BUREAU,
        kind: OrgKind::Bureau,
        name: "阜新市医疗保障局",
        region: "210900",
        code: None,
        level: None,
    },
    Org {
        id: SHENYANG_HOSPITAL,
        kind: OrgKind::Hospital,
        name: "中国医科大学附属第一医院",
        region: "210102",
        code: Some("H21010200001"),
        level: Some(HospitalLevel::Tertiary),
    },
    Org {
        id: FUXIN_HOSPITAL,
        kind: OrgKind::Hospital,
        name: "阜新市中心医院",
        region: "210902",
        code: Some("H21090200001"),
        level: Some(HospitalLevel::Tertiary),
    },
    Org {
        id: COUNTY_HOSPITAL,
        kind: OrgKind::Hospital,
        name: "彰武县人民医院",
        region: "210922",
        code: Some("H21092200001"),
        level: Some(HospitalLevel::Secondary),
    },
    Org {
        id: MANUFACTURER_A,
        kind: OrgKind::Manufacturer,
        name: "示例心血管医疗器械有限公司",
        region: "330100",
        code: Some("91330100MA2A0001XD"),
        level: None,
    },
    Org {
        id: MANUFACTURER_B,
        kind: OrgKind::Manufacturer,
        name: "上海示例介入医疗科技有限公司",
        region: "310100",
        code: Some("91310000MA1F0004XR"),
        level: None,
    },
    Org {
        id: DISTRIBUTOR_SHENYANG,
        kind: OrgKind::Distributor,
        name: "辽宁示例医药物流有限公司",
        region: "210100",
        code: Some("91210100MA0Y0001XM"),
        level: None,
    },
    Org {
        id: DISTRIBUTOR_FUXIN,
        kind: OrgKind::Distributor,
        name: "阜新示例医药有限公司",
        region: "210900",
        code: Some("91210900MA0Y0002X0"),
        level: None,
    },
];

/// (national code, spec/model, manufacturer USCC, price yuan, group)
pub const PRODUCTS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "C02010205103001107660000011",
        "6F JL3.5 100cm",
        "91330100MA2A0001XD",
        "720.00",
        "G1",
    ),
    (
        "C02010205103001107660000012",
        "6F JR4.0 100cm",
        "91330100MA2A0001XD",
        "720.00",
        "G1",
    ),
    (
        "C02010205103002107660000021",
        "6F EBU3.5 100cm 加强支撑",
        "91330100MA2A0001XD",
        "750.00",
        "G2",
    ),
    (
        "C02010205103001108810000031",
        "6F JL4.0 100cm",
        "91310000MA1F0004XR",
        "698.00",
        "G1",
    ),
    (
        "C02010205103001108810000032",
        "7F JR4.0 100cm",
        "91310000MA1F0004XR",
        "698.00",
        "G1",
    ),
    (
        "C02010205103002108810000041",
        "6F XB3.5 100cm 加强支撑",
        "91310000MA1F0004XR",
        "735.00",
        "G2",
    ),
];

/// Agreed volumes of period 2: (hospital, group, [(code, quantity)]).
type AgreedRow = (&'static str, &'static str, &'static [(&'static str, i64)]);

const AGREED: &[AgreedRow] = &[
    (
        SHENYANG_HOSPITAL,
        "G1",
        &[
            ("C02010205103001107660000011", 600),
            ("C02010205103001108810000031", 400),
        ],
    ),
    (
        SHENYANG_HOSPITAL,
        "G2",
        &[("C02010205103002107660000021", 240)],
    ),
    (
        FUXIN_HOSPITAL,
        "G1",
        &[
            ("C02010205103001107660000012", 180),
            ("C02010205103001108810000032", 120),
        ],
    ),
    (
        COUNTY_HOSPITAL,
        "G1",
        &[("C02010205103001107660000011", 36)],
    ),
];

pub fn supply_rows() -> Vec<SupplyRow> {
    PRODUCTS
        .iter()
        .map(|(code, spec, uscc, price, group)| SupplyRow {
            national_code: (*code).into(),
            generic_name: "冠脉导引导管".into(),
            spec_model: (*spec).into(),
            unit: "根".into(),
            manufacturer_uscc: (*uscc).into(),
            winning_price_yuan: (*price).into(),
            product_group: (*group).into(),
        })
        .collect()
}

fn beijing(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("valid demo time")
        .with_timezone(&Utc)
}

/// Loads the demo; returns whether anything was created.
pub async fn load_demo(
    pool: &PgPool,
    outbox: &Outbox,
    clock: &SharedClock,
) -> Result<bool, RpcError> {
    let ctx = Context::new(Some(Actor::system("agreements-demo")));
    let now = clock.now();
    let mut tx = pool.begin().await?;
    // One loader at a time across replicas.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('agreements-demo'))")
        .execute(&mut *tx)
        .await?;
    if !store::mark_demo(&mut tx, "liaoning-guiding-catheter", now).await? {
        return Ok(false);
    }
    for o in ORGS {
        if store::get_org(&mut tx, id(o.id)).await?.is_some() {
            continue;
        }
        let (nhsa, uscc) = match o.kind {
            OrgKind::Hospital => (o.code.map(str::to_owned), None),
            OrgKind::Manufacturer | OrgKind::Distributor => (None, o.code.map(str::to_owned)),
            _ => (None, None),
        };
        let req = RegisterOrg {
            id: Some(id(o.id)),
            kind: o.kind,
            name: o.name.into(),
            region: o.region.parse().expect("demo region"),
            nhsa_code: nhsa,
            level: o.level,
            uscc,
            is_manufacturer: o.kind == OrgKind::Manufacturer,
            is_distributor: o.kind == OrgKind::Distributor,
            acts_for: vec![],
        };
        api::register_org_in(&mut tx, outbox, &ctx, &req, now, "").await?;
    }
    if store::get_org(&mut tx, id(INTEGRATOR)).await?.is_none() {
        let req = RegisterOrg {
            id: Some(id(INTEGRATOR)),
            kind: OrgKind::Integrator,
            name: "示例医院SPD平台".into(),
            region: "210000".parse().expect("region"),
            nhsa_code: None,
            level: None,
            uscc: None,
            is_manufacturer: false,
            is_distributor: false,
            acts_for: vec![
                id(SHENYANG_HOSPITAL),
                id(FUXIN_HOSPITAL),
                id(COUNTY_HOSPITAL),
            ],
        };
        api::register_org_in(&mut tx, outbox, &ctx, &req, now, "").await?;
    }
    let project: ProjectId = PROJECT.parse().expect("uuid");
    if store::get_project(&mut tx, project).await?.is_none() {
        let req = RegisterProject {
            id: Some(project),
            code: PROJECT_CODE.into(),
            name: "浙江等16省(自治区)联盟冠脉导引导管集中带量采购".into(),
            organiser: "浙江等16省(自治区)联盟".into(),
            category: CodeKind::Consumable,
            provinces: ["330000", "140000", "150000", "210000", "220000", "230000"]
                .iter()
                .map(|r| r.parse().expect("province"))
                .collect(),
            product_groups: vec![
                ProductGroup {
                    code: "G1".into(),
                    name: "冠脉导引导管(常规支撑)".into(),
                },
                ProductGroup {
                    code: "G2".into(),
                    name: "冠脉导引导管(加强支撑)".into(),
                },
            ],
        };
        api::register_project_in(&mut tx, outbox, &ctx, &req, now).await?;
    }
    let p1: PeriodId = PERIOD_1.parse().expect("uuid");
    if store::get_period(&mut tx, p1).await?.is_none() {
        let req = OpenPeriod {
            id: Some(p1),
            project,
            number: 1,
            first_day: NaiveDate::from_ymd_opt(2023, 8, 1).expect("date"),
            last_day: NaiveDate::from_ymd_opt(2024, 7, 31).expect("date"),
            paper_deadline: None,
            carry_over: false,
        };
        api::open_period_in(&mut tx, outbox, &ctx, &req, now).await?;
        api::import_rows_in(&mut tx, p1, &supply_rows(), 1000).await?;
        api::publish_in(&mut tx, outbox, &ctx, p1, now).await?;
    }
    let p2: PeriodId = PERIOD_2.parse().expect("uuid");
    if store::get_period(&mut tx, p2).await?.is_none() {
        let req = OpenPeriod {
            id: Some(p2),
            project,
            number: 2,
            first_day: NaiveDate::from_ymd_opt(2024, 8, 1).expect("date"),
            last_day: NaiveDate::from_ymd_opt(2025, 7, 31).expect("date"),
            paper_deadline: Some(beijing("2024-09-18T17:00:00+08:00")),
            carry_over: true,
        };
        let period = api::open_period_in(&mut tx, outbox, &ctx, &req, now).await?;
        let items = store::items(&mut tx, p2, "published").await?;
        for (hospital, group, lines) in AGREED {
            let h = store::get_org(&mut tx, id(hospital))
                .await?
                .expect("demo hospital");
            let mut out = Vec::new();
            for (code, q) in *lines {
                let it = items
                    .iter()
                    .find(|i| i.national_code.as_str() == *code)
                    .expect("demo product");
                out.push(vbp_contracts::agreements::AgreedVolumeLine {
                    national_code: it.national_code.clone(),
                    manufacturer: it.manufacturer,
                    quantity: *q,
                    unit_price_fen: it.winning_price_fen,
                    amount_fen: it.winning_price_fen.mul_quantity(*q).expect("small"),
                });
            }
            let view = AgreedVolumeView {
                period: p2,
                hospital: h.record.org,
                hospital_name: h.record.name.clone(),
                hospital_region: h.record.region,
                product_group: (*group).into(),
                quantity: out.iter().map(|l| l.quantity).sum(),
                amount_fen: Money::checked_sum(out.iter().map(|l| l.amount_fen)).expect("small"),
                lines: out,
                revision: 1,
                reason: Some("演示数据".into()),
                set_at: now,
            };
            store::upsert_agreed(&mut tx, &view).await?;
            outbox
                .append(
                    &mut tx,
                    &ctx,
                    &AgreedVolumeSet {
                        period: p2,
                        project: period.project,
                        hospital: view.hospital,
                        hospital_region: view.hospital_region,
                        product_group: view.product_group.clone(),
                        lines: view.lines.clone(),
                        quantity: view.quantity,
                        amount_fen: view.amount_fen,
                        revision: 1,
                        reason: view.reason.clone(),
                        set_at: now,
                    },
                )
                .await?;
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
