//! A running orders service on a fresh database and namespace, called over
//! real NATS RPC with chosen actors; the agreements and distribution
//! services' events and integrators' ingest messages published on
//! JetStream; this service's published events collected from NATS.

#![allow(dead_code)]

use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use vbp_bus::{Context, RpcClient, RpcError};
use vbp_contracts::agreements::{
    OrgRecord, OrgRegistered, PeriodId, PeriodOpened, ProjectId, SupplyItem, SupplyListPublished,
};
use vbp_contracts::distribution::{RelationActivated, RelationId};
use vbp_contracts::orders as o;
use vbp_contracts::{Event, RpcOp};
use vbp_kernel::{Actor, EventId, Money, NationalCode, OrgId, OrgKind};
use vbp_platform::Platform;
use vbp_platform::testkit::{self, TestEnv};

pub struct World {
    pub env: TestEnv,
    pub platform: Platform,
    pub rpc: RpcClient,
    pub db: sqlx::PgPool,
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

/// The first page of an integrator's rejected messages.
pub fn rejections(page_size: u32) -> o::ListIngestRejections {
    o::ListIngestRejections { page: 1, page_size }
}

impl World {
    pub async fn start() -> World {
        Self::start_with(serde_json::json!({})).await
    }

    /// With `[orders]` settings.
    pub async fn start_with(settings: serde_json::Value) -> World {
        let env = TestEnv::new().await;
        env.clock.set(at("2024-09-10T09:00:00+08:00"));
        let config = env
            .config()
            .with_figment_overrides(serde_json::json!({ "orders": settings }))
            .unwrap();
        let platform = env.platform_with(config, CancellationToken::new()).await;
        let seen = testkit::EventWatch::start(&platform, vbp_contracts::Service::Orders).await;
        tokio::spawn(vbp_orders::run(platform.clone()));
        let rpc = platform.rpc_client();
        let op = operator();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let probe = rpc
                .call::<o::OrderListOp>(
                    &Context::new(Some(op.clone())),
                    &o::ListOrders {
                        hospital: None,
                        distributor: None,
                        page: 1,
                        page_size: 1,
                    },
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
        let db = env.pool_in("orders").await;
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

    /// Publishes `event` as its producer's relay would.
    pub async fn publish<E: Event>(&self, event: &E) {
        testkit::publish_event(&self.platform, EventId::new(), event).await
    }

    /// Publishes an integrator message as a hospital system would straight
    /// on NATS: only `Nats-Msg-Id`. `msg_id` None sends no id at all.
    pub async fn ingest(
        &self,
        integrator: &Actor,
        event: &str,
        body: &serde_json::Value,
        msg_id: Option<String>,
    ) {
        let mut msg = PublishMessage::build().payload(serde_json::to_vec(body).unwrap().into());
        if let Some(id) = msg_id {
            msg = msg.message_id(id);
        }
        self.platform
            .js
            .send_publish(
                self.platform.ns.ingest(&integrator.org.to_string(), event),
                msg,
            )
            .await
            .unwrap()
            .await
            .unwrap();
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

pub const P1: &str = "C02010205103001107660000011";
pub const P2: &str = "C02010205103001107660000012";
pub const P3: &str = "C02010205103001108810000031";
pub const PRICE1: i64 = 72_000;
pub const PRICE2: i64 = 1_234;

pub struct Cast {
    pub fuxin: Actor,
    pub hospital: Actor,
    pub other_hospital: Actor,
    pub maker: Actor,
    pub d1: Actor,
    pub d2: Actor,
    pub integrator: Actor,
    pub period: PeriodId,
    pub list: SupplyListPublished,
}

fn record(a: &Actor, acts_for: Vec<OrgId>) -> OrgRecord {
    OrgRecord {
        org: a.org,
        kind: a.org_kind,
        name: format!("{}", a.org_kind),
        region: a.region,
        nhsa_code: None,
        level: None,
        uscc: None,
        is_manufacturer: a.org_kind == OrgKind::Manufacturer,
        is_distributor: a.org_kind == OrgKind::Distributor,
        acts_for,
        active: true,
        revision: 1,
    }
}

fn item(code_s: &str, maker: &Actor, price: i64) -> SupplyItem {
    SupplyItem {
        national_code: code(code_s),
        generic_name: "冠脉导引导管".into(),
        spec_model: "6F".into(),
        unit: "根".into(),
        manufacturer: maker.org,
        manufacturer_name: "示例心血管".into(),
        winning_price_fen: Money::from_fen(price),
        product_group: "G1".into(),
    }
}

impl Cast {
    pub fn new() -> Cast {
        let a = |k, r: &str| actor(k, OrgId::new(), r);
        let maker = a(OrgKind::Manufacturer, "330100");
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
                item(P1, &maker, PRICE1),
                item(P2, &maker, PRICE2),
                item(P3, &maker, 50_000),
            ],
            published_at: at("2024-07-31T10:00:00+08:00"),
        };
        Cast {
            fuxin: a(OrgKind::Bureau, "210900"),
            hospital: a(OrgKind::Hospital, "210902"),
            other_hospital: a(OrgKind::Hospital, "210102"),
            maker,
            d1: a(OrgKind::Distributor, "210100"),
            d2: a(OrgKind::Distributor, "210900"),
            integrator: a(OrgKind::Integrator, "210000"),
            period,
            list,
        }
    }

    /// Directory, period, supply list, and active relations of d1 for P1 and
    /// P2 with the hospital (and the other hospital), as upstream publishes them.
    pub async fn publish(&self, w: &World) {
        let orgs = [
            record(&self.fuxin, vec![]),
            record(&self.hospital, vec![]),
            record(&self.other_hospital, vec![]),
            record(&self.maker, vec![]),
            record(&self.d1, vec![]),
            record(&self.d2, vec![]),
            record(&self.integrator, vec![self.hospital.org]),
        ];
        for r in &orgs {
            w.publish(&OrgRegistered {
                record: r.clone(),
                registered_at: at("2024-07-01T00:00:00Z"),
            })
            .await;
        }
        w.publish(&PeriodOpened {
            period: self.period,
            project: self.list.project,
            project_code: self.list.project_code.clone(),
            number: 2,
            starts_at: self.list.starts_at,
            ends_at: self.list.ends_at,
            paper_deadline: None,
            carried_over_from: None,
            opened_at: at("2024-07-31T10:00:00+08:00"),
        })
        .await;
        w.publish(&self.list).await;
        for h in [&self.hospital, &self.other_hospital] {
            for p in [P1, P2] {
                self.relate(w, h, p, &self.d1, "2024-08-01T00:00:00+08:00")
                    .await;
            }
        }
        w.wait_count("SELECT count(*) FROM orgs", orgs.len() as i64)
            .await;
        w.wait_count("SELECT count(*) FROM supply_items", 3).await;
        w.wait_count("SELECT count(*) FROM relations", 4).await;
    }

    pub async fn relate(&self, w: &World, h: &Actor, p: &str, d: &Actor, from: &str) -> RelationId {
        let id = RelationId::new();
        w.publish(&RelationActivated {
            relation: id,
            period: self.period,
            hospital: h.org,
            hospital_region: h.region,
            national_code: code(p),
            manufacturer: self.maker.org,
            distributor: d.org,
            valid_from: at(from),
            valid_to: None,
            replaces: None,
            activated_at: at(from),
        })
        .await;
        id
    }
}
