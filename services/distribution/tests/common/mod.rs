//! A running distribution service on a fresh database and namespace, called
//! over real NATS RPC with chosen actors; the agreements service's events
//! published on JetStream as its relay would, and this service's published
//! events collected from NATS.

#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use vbp_bus::{Context, RpcClient, RpcError};
use vbp_contracts::agreements::{
    OrgRecord, OrgRegistered, PeriodId, PeriodOpened, ProjectId, SupplyItem, SupplyListPublished,
};
use vbp_contracts::distribution as d;
use vbp_contracts::{Event, RpcOp};
use vbp_kernel::{Actor, EventId, Money, NationalCode, OrgId, OrgKind};
use vbp_platform::Platform;
use vbp_platform::testkit::{self, TestEnv};

pub struct World {
    pub env: TestEnv,
    pub platform: Platform,
    pub rpc: RpcClient,
    pub db: sqlx::PgPool,
    /// (vbp-type, payload) of every distribution event seen on NATS.
    pub seen: testkit::EventWatch,
}

pub fn actor(kind: OrgKind, org: OrgId, region: &str) -> Actor {
    Actor {
        sub: format!("test-{kind}-{org}"),
        org,
        org_kind: kind,
        region: region.parse().unwrap(),
        roles: vec![],
    }
}

pub fn operator() -> Actor {
    actor(OrgKind::Operator, OrgId::new(), "000000")
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn code(s: &str) -> NationalCode {
    NationalCode::parse(s).unwrap()
}

impl World {
    pub async fn start() -> World {
        Self::start_with(serde_json::json!({})).await
    }

    /// With `[distribution]` settings.
    pub async fn start_with(settings: serde_json::Value) -> World {
        let env = TestEnv::new().await;
        let config = env
            .config()
            .with_figment_overrides(serde_json::json!({ "distribution": settings }))
            .unwrap();
        let platform = env.platform_with(config, CancellationToken::new()).await;
        let seen =
            testkit::EventWatch::start(&platform, vbp_contracts::Service::Distribution).await;
        tokio::spawn(vbp_distribution::run(platform.clone()));
        let rpc = platform.rpc_client();
        let op = operator();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let probe = rpc
                .call::<d::RemoteAreaListOp>(
                    &Context::new(Some(op.clone())),
                    &d::ListRemoteAreas {},
                )
                .await;
            if probe.is_ok() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "service did not come up: {probe:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let db = env.pool_in("distribution").await;
        World {
            env,
            platform,
            rpc,
            db,
            seen,
        }
    }

    pub async fn call<Op: RpcOp>(
        &self,
        who: &Actor,
        req: &Op::Request,
    ) -> Result<Op::Response, RpcError> {
        testkit::call_as::<Op>(&self.rpc, who, req).await
    }

    pub async fn ok<Op: RpcOp>(&self, who: &Actor, req: &Op::Request) -> Op::Response {
        testkit::ok_as::<Op>(&self.rpc, who, req).await
    }

    pub async fn err<Op: RpcOp>(&self, who: &Actor, req: &Op::Request) -> RpcError
    where
        Op::Response: std::fmt::Debug,
    {
        testkit::err_as::<Op>(&self.rpc, who, req).await
    }

    /// Publishes `event` as its producer's relay would, with event id `id`.
    pub async fn publish<E: Event>(&self, id: EventId, event: &E) {
        testkit::publish_event(&self.platform, id, event).await
    }

    /// Outbox rows of `event_type`, in order, as JSON payloads.
    pub async fn events(&self, event_type: &str) -> Vec<serde_json::Value> {
        testkit::outbox_payloads(&self.db, event_type).await
    }

    pub async fn outbox_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        testkit::count(&self.db, sql).await
    }

    /// Waits until `sql` (a count) reaches `n`.
    pub async fn wait_count(&self, sql: &str, n: i64) {
        testkit::wait_count(&self.db, sql, n).await
    }

    /// Waits for a published event of `event_type` matching `pred`.
    pub async fn published(
        &self,
        event_type: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.seen.wait_for(event_type, pred).await
    }

    /// Published events of `event_type` seen so far.
    pub fn seen_of(&self, event_type: &str) -> Vec<serde_json::Value> {
        self.seen.of(event_type)
    }

    pub fn set_clock(&self, s: &str) {
        self.env.clock.set(at(s));
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.platform.shutdown.cancel();
    }
}

// ---------------------------------------------------------------------------
// The agreements side: a cast and a period published as agreements events
// ---------------------------------------------------------------------------

pub const P1: &str = "C02010205103001107660000011";
pub const P2: &str = "C02010205103001107660000012";
pub const P3: &str = "C02010205103001108810000031";

pub struct Cast {
    pub province: Actor,
    pub fuxin: Actor,
    pub shenyang: Actor,
    pub zhangwu: Actor,
    pub hospital: Actor,
    pub county_hospital: Actor,
    pub shenyang_hospital: Actor,
    pub maker_a: Actor,
    pub maker_b: Actor,
    pub d1: Actor,
    pub d2: Actor,
    pub d3: Actor,
    pub integrator: Actor,
    pub period: PeriodId,
    pub list: SupplyListPublished,
}

fn record(a: &Actor, name: &str) -> OrgRecord {
    OrgRecord {
        org: a.org,
        kind: a.org_kind,
        name: name.into(),
        region: a.region,
        nhsa_code: None,
        level: None,
        uscc: None,
        is_manufacturer: a.org_kind == OrgKind::Manufacturer,
        is_distributor: a.org_kind == OrgKind::Distributor,
        acts_for: vec![],
        active: true,
        revision: 1,
    }
}

fn item(code_s: &str, maker: &Actor, name: &str) -> SupplyItem {
    SupplyItem {
        national_code: code(code_s),
        generic_name: "冠脉导引导管".into(),
        spec_model: "6F".into(),
        unit: "根".into(),
        manufacturer: maker.org,
        manufacturer_name: name.into(),
        winning_price_fen: Money::from_fen(72_000),
        product_group: "G1".into(),
    }
}

impl Cast {
    pub fn new() -> Cast {
        let a = |k, r: &str| actor(k, OrgId::new(), r);
        let maker_a = a(OrgKind::Manufacturer, "330100");
        let maker_b = a(OrgKind::Manufacturer, "310100");
        let period = PeriodId::new();
        let list = SupplyListPublished {
            period,
            project: ProjectId::new(),
            project_code: "ZJHCCG-2022-01".into(),
            period_number: 2,
            starts_at: at("2024-08-01T00:00:00+08:00"),
            ends_at: at("2025-08-01T00:00:00+08:00"),
            revision: 1,
            items: vec![
                item(P1, &maker_a, "示例心血管"),
                item(P2, &maker_a, "示例心血管"),
                item(P3, &maker_b, "上海示例介入"),
            ],
            published_at: at("2024-07-31T10:00:00+08:00"),
        };
        Cast {
            province: a(OrgKind::Bureau, "210000"),
            fuxin: a(OrgKind::Bureau, "210900"),
            shenyang: a(OrgKind::Bureau, "210100"),
            zhangwu: a(OrgKind::Bureau, "210922"),
            hospital: a(OrgKind::Hospital, "210902"),
            county_hospital: a(OrgKind::Hospital, "210922"),
            shenyang_hospital: a(OrgKind::Hospital, "210102"),
            maker_a,
            maker_b,
            d1: a(OrgKind::Distributor, "210100"),
            d2: a(OrgKind::Distributor, "210900"),
            d3: a(OrgKind::Distributor, "210100"),
            integrator: a(OrgKind::Integrator, "210000"),
            period,
            list,
        }
    }

    fn orgs(&self) -> Vec<(&Actor, &str)> {
        vec![
            (&self.province, "辽宁省医疗保障局"),
            (&self.fuxin, "阜新市医疗保障局"),
            (&self.shenyang, "沈阳市医疗保障局"),
            (&self.zhangwu, "彰武县医疗保障局"),
            (&self.hospital, "阜新市中心医院"),
            (&self.county_hospital, "彰武县人民医院"),
            (&self.shenyang_hospital, "中国医科大学附属第一医院"),
            (&self.maker_a, "示例心血管"),
            (&self.maker_b, "上海示例介入"),
            (&self.d1, "辽宁示例医药物流"),
            (&self.d2, "阜新示例医药"),
            (&self.d3, "沈阳示例配送"),
        ]
    }

    /// Publishes the directory, the period and its supply list as the
    /// agreements service would, and waits until they are projected.
    pub async fn publish(&self, w: &World) {
        for (a, name) in self.orgs() {
            w.publish(
                EventId::new(),
                &OrgRegistered {
                    record: record(a, name),
                    registered_at: at("2024-07-01T00:00:00Z"),
                },
            )
            .await;
        }
        w.publish(
            EventId::new(),
            &PeriodOpened {
                period: self.period,
                project: self.list.project,
                project_code: self.list.project_code.clone(),
                number: 2,
                starts_at: self.list.starts_at,
                ends_at: self.list.ends_at,
                paper_deadline: None,
                carried_over_from: None,
                opened_at: at("2024-07-31T10:00:00+08:00"),
            },
        )
        .await;
        w.publish(EventId::new(), &self.list).await;
        w.wait_count("SELECT count(*) FROM orgs", self.orgs().len() as i64)
            .await;
        w.wait_count("SELECT count(*) FROM supply_items", 3).await;
    }

    /// Grants and confirms an authorisation.
    pub async fn authorise(
        &self,
        w: &World,
        maker: &Actor,
        dist: &Actor,
        products: &[&str],
        areas: &[&str],
    ) -> d::AuthorisationView {
        let v = w
            .ok::<d::AuthorisationGrant>(
                maker,
                &d::GrantAuthorisation {
                    period: self.period,
                    distributor: dist.org,
                    products: products.iter().map(|c| code(c)).collect(),
                    areas: areas.iter().map(|r| r.parse().unwrap()).collect(),
                },
            )
            .await;
        w.ok::<d::AuthorisationConfirm>(
            dist,
            &d::ConfirmAuthorisation {
                authorisation: v.authorisation,
            },
        )
        .await
    }

    pub async fn select(
        &self,
        w: &World,
        hospital: &Actor,
        product: &str,
        dists: &[&Actor],
    ) -> Vec<d::RelationView> {
        w.ok::<d::RelationSelect>(
            hospital,
            &d::SelectDistributors {
                period: self.period,
                national_code: code(product),
                distributors: dists.iter().map(|d| d.org).collect(),
            },
        )
        .await
        .relations
    }

    /// Selects one distributor and has it confirm: an active relation.
    pub async fn relate(
        &self,
        w: &World,
        hospital: &Actor,
        product: &str,
        dist: &Actor,
    ) -> d::RelationView {
        let rel = self.select(w, hospital, product, &[dist]).await.remove(0);
        w.ok::<d::RelationConfirm>(
            dist,
            &d::ConfirmRelation {
                relation: rel.relation,
            },
        )
        .await
    }
}
