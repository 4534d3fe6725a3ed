//! A running prepayment service on a fresh database and namespace, called
//! over real NATS RPC with chosen actors; the agreements and orders services' events
//! published on JetStream as its relay would, and this service's published
//! events collected from NATS.

#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use vbp_bus::{Context, RpcClient, RpcError};
use vbp_contracts::prepayment as p;
use vbp_contracts::{Event, RpcOp};
use vbp_kernel::{Actor, EventId, OrgId, OrgKind};
use vbp_platform::Platform;
use vbp_platform::testkit::{self, TestEnv};

pub struct World {
    pub env: TestEnv,
    pub platform: Platform,
    pub rpc: RpcClient,
    pub db: sqlx::PgPool,
    /// (vbp-type, payload) of every prepayment event seen on NATS.
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

impl World {
    pub async fn start() -> World {
        Self::start_with(serde_json::json!({})).await
    }

    /// With `[prepayment]` settings.
    pub async fn start_with(settings: serde_json::Value) -> World {
        let env = TestEnv::new().await;
        let config = env
            .config()
            .with_figment_overrides(serde_json::json!({ "prepayment": settings }))
            .unwrap();
        let platform = env.platform_with(config, CancellationToken::new()).await;
        let seen = testkit::EventWatch::start(&platform, vbp_contracts::Service::Prepayment).await;
        tokio::spawn(vbp_prepayment::run(platform.clone()));
        let rpc = platform.rpc_client();
        let op = operator();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let probe = rpc
                .call::<p::RegionSummaryOp>(
                    &Context::new(Some(op.clone())),
                    &p::SummariseRegions::default(),
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
        let db = env.pool_in("prepayment").await;
        World {
            env,
            platform,
            rpc,
            db,
            seen,
        }
    }

    /// Stops the service and starts it again on the same database and
    /// namespace with other `[prepayment]` settings (e.g. a ratio change).
    pub async fn restart_with(&mut self, settings: serde_json::Value) {
        self.platform.shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let config = self
            .env
            .config()
            .with_figment_overrides(serde_json::json!({ "prepayment": settings }))
            .unwrap();
        let platform = self
            .env
            .platform_with(config, CancellationToken::new())
            .await;
        tokio::spawn(vbp_prepayment::run(platform.clone()));
        self.rpc = platform.rpc_client();
        self.platform = platform;
        let op = operator();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self
            .rpc
            .call::<p::RegionSummaryOp>(
                &Context::new(Some(op.clone())),
                &p::SummariseRegions::default(),
            )
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "service did not come back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
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
// The upstream side: periods, agreement versions and paid settlements
// ---------------------------------------------------------------------------

use vbp_contracts::agreements::{
    AgreementId, AgreementState, AgreementStateChanged, PeriodId, PeriodOpened, ProjectId,
};
use vbp_contracts::orders::{OrderId, SettlementChannel, SettlementId, SettlementPaid};
use vbp_kernel::Money;

pub struct Cast {
    pub province: Actor,
    pub fuxin: Actor,
    pub shenyang: Actor,
    pub sichuan: Actor,
    /// 阜新市中心医院 (210902)
    pub a: Actor,
    /// 彰武县人民医院 (210922)
    pub b: Actor,
    /// 四川省人民医院 (510104)
    pub c: Actor,
    pub maker: Actor,
    pub project: ProjectId,
    /// 2024-08-01 – 2025-08-01 (number 2) and 2025-08-01 – 2026-08-01 (number 3).
    pub p1: PeriodId,
    pub p2: PeriodId,
}

impl Cast {
    pub fn new() -> Cast {
        let a = |k, r: &str| actor(k, OrgId::new(), r);
        Cast {
            province: a(OrgKind::Bureau, "210000"),
            fuxin: a(OrgKind::Bureau, "210900"),
            shenyang: a(OrgKind::Bureau, "210100"),
            sichuan: a(OrgKind::Bureau, "510000"),
            a: a(OrgKind::Hospital, "210902"),
            b: a(OrgKind::Hospital, "210922"),
            c: a(OrgKind::Hospital, "510104"),
            maker: a(OrgKind::Manufacturer, "330100"),
            project: ProjectId::new(),
            p1: PeriodId::new(),
            p2: PeriodId::new(),
        }
    }

    pub async fn publish_periods(&self, w: &World) {
        for (period, number, s, e) in [
            (
                self.p1,
                2,
                "2024-08-01T00:00:00+08:00",
                "2025-08-01T00:00:00+08:00",
            ),
            (
                self.p2,
                3,
                "2025-08-01T00:00:00+08:00",
                "2026-08-01T00:00:00+08:00",
            ),
        ] {
            w.publish(
                EventId::new(),
                &PeriodOpened {
                    period,
                    project: self.project,
                    project_code: "ZJHCCG-2022-01".into(),
                    number,
                    starts_at: at(s),
                    ends_at: at(e),
                    paper_deadline: None,
                    carried_over_from: None,
                    opened_at: at("2024-07-31T10:00:00+08:00"),
                },
            )
            .await;
        }
        w.wait_count("SELECT count(*) FROM periods", 2).await;
    }

    /// An agreement version of `hospital` in `period` changing to `state`.
    #[allow(clippy::too_many_arguments)]
    pub fn agreement(
        &self,
        hospital: &Actor,
        period: PeriodId,
        agreement: AgreementId,
        version: i32,
        state: AgreementState,
        amount_fen: i64,
    ) -> AgreementStateChanged {
        AgreementStateChanged {
            agreement,
            version,
            period,
            project: self.project,
            hospital: hospital.org,
            hospital_region: hospital.region,
            manufacturer: self.maker.org,
            distributors: vec![],
            from: Some(AgreementState::DistributorConfirmed),
            state,
            reason: None,
            lines: vec![],
            amount_fen: Money::from_fen(amount_fen),
            amends_version: (version > 1).then_some(version - 1),
            changed_at: at("2024-08-02T10:00:00+08:00"),
        }
    }

    pub fn settlement(
        &self,
        hospital: &Actor,
        period: PeriodId,
        settlement: SettlementId,
        amount_fen: i64,
    ) -> SettlementPaid {
        // Built from JSON so optional fields the orders service adds later
        // need no change here.
        serde_json::from_value(serde_json::json!({
            "settlement": settlement,
            "order": OrderId::new(),
            "period": period,
            "hospital": hospital.org,
            "hospital_region": hospital.region,
            "payee": self.maker.org,
            "amount_fen": amount_fen,
            "channel": SettlementChannel::Online,
            "due_at": at("2024-12-31T00:00:00+08:00"),
            "paid_at": at("2024-12-01T00:00:00+08:00"),
            "on_time": true,
        }))
        .unwrap()
    }
}

impl World {
    /// The single ledger of `hospital` in `period`, as the operator sees it.
    pub async fn ledger(&self, hospital: &Actor, period: PeriodId) -> p::LedgerView {
        let list = self
            .ok::<p::LedgerListOp>(
                &operator(),
                &p::ListLedgers {
                    period: Some(period),
                    hospital: Some(hospital.org),
                    state: None,
                    page: 1,
                    page_size: 50,
                },
            )
            .await;
        assert_eq!(list.items.len(), 1, "ledgers of {}: {list:?}", hospital.org);
        list.items.into_iter().next().unwrap()
    }

    /// The invariant: every ledger's balance is Σ its entries, and every
    /// entry's balance is the running sum.
    pub async fn assert_balances(&self) {
        let bad = self
            .count(
                "SELECT count(*) FROM ledgers l WHERE l.balance_fen <> \
                 COALESCE((SELECT SUM(amount_fen) FROM entries e WHERE e.ledger = l.id), 0)",
            )
            .await;
        assert_eq!(
            bad, 0,
            "a ledger balance differs from the sum of its entries"
        );
        let bad = self
            .count(
                "SELECT count(*) FROM entries e WHERE e.balance_fen <> \
                 (SELECT SUM(x.amount_fen) FROM entries x WHERE x.ledger = e.ledger AND x.seq <= e.seq)",
            )
            .await;
        assert_eq!(bad, 0, "an entry's balance is not the running sum");
    }
}
