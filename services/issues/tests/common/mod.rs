//! A running issues service on a fresh database and namespace, called
//! over real NATS RPC with chosen actors; the agreements and orders services' events
//! published on JetStream as its relay would, and this service's published
//! events collected from NATS.

#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use vbp_bus::{Context, RpcClient, RpcError};
use vbp_contracts::agreements::{
    OrgRecord, OrgRegistered, PeriodId, ProjectId, SupplyItem, SupplyListPublished,
};
use vbp_contracts::distribution::{RelationActivated, RelationEnded, RelationId};
use vbp_contracts::issues as p;
use vbp_contracts::issues::*;
use vbp_contracts::{Event, RpcOp};
use vbp_kernel::{Actor, EventId, Money, NationalCode, OrgId, OrgKind};
use vbp_platform::Platform;
use vbp_platform::testkit::{self, TestEnv};

pub struct World {
    pub env: TestEnv,
    pub platform: Platform,
    pub rpc: RpcClient,
    pub db: sqlx::PgPool,
    /// (vbp-type, payload) of every issues event seen on NATS.
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

    /// With `[issues]` settings.
    pub async fn start_with(settings: serde_json::Value) -> World {
        let env = TestEnv::new().await;
        let config = env
            .config()
            .with_figment_overrides(serde_json::json!({ "issues": settings }))
            .unwrap();
        let platform = env.platform_with(config, CancellationToken::new()).await;
        let seen = testkit::EventWatch::start(&platform, vbp_contracts::Service::Issues).await;
        tokio::spawn(vbp_issues::run(platform.clone()));
        let rpc = platform.rpc_client();
        let op = operator();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let probe = rpc
                .call::<p::DeadlinePreviewOp>(
                    &Context::new(Some(op.clone())),
                    &p::PreviewDeadlines {
                        dispatched_at: at("2026-03-02T10:00:00+08:00"),
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
        let db = env.pool_in("issues").await;
        World {
            env,
            platform,
            rpc,
            db,
            seen,
        }
    }

    /// Stops the service and starts it again on the same database and
    /// namespace with other `[issues]` settings (e.g. a ratio change).
    pub async fn restart_with(&mut self, settings: serde_json::Value) {
        self.platform.shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let config = self
            .env
            .config()
            .with_figment_overrides(serde_json::json!({ "issues": settings }))
            .unwrap();
        let platform = self
            .env
            .platform_with(config, CancellationToken::new())
            .await;
        tokio::spawn(vbp_issues::run(platform.clone()));
        self.rpc = platform.rpc_client();
        self.platform = platform;
        let op = operator();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self
            .rpc
            .call::<p::DeadlinePreviewOp>(
                &Context::new(Some(op.clone())),
                &p::PreviewDeadlines {
                    dispatched_at: at("2026-03-02T10:00:00+08:00"),
                },
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

    /// The evidence bucket, as the edge sees it.
    pub async fn bucket(&self) -> async_nats::jetstream::object_store::ObjectStore {
        self.platform
            .js
            .get_object_store(p::evidence_bucket(&self.platform.ns))
            .await
            .unwrap()
    }

    /// Uploads a file as the edge does: a slot, the bytes into the object
    /// store, then registration.
    pub async fn upload(
        &self,
        who: &Actor,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<p::EvidenceView, RpcError> {
        let slot = self
            .call::<p::EvidenceBegin>(
                who,
                &p::BeginEvidence {
                    file_name: file_name.into(),
                    content_type: content_type.into(),
                },
            )
            .await?;
        self.bucket()
            .await
            .put(slot.object.as_str(), &mut &bytes[..])
            .await
            .unwrap();
        self.call::<p::EvidenceUpload>(
            who,
            &p::UploadEvidence {
                object: slot.object,
                file_name: file_name.into(),
                content_type: content_type.into(),
                sealed: true,
            },
        )
        .await
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

pub const P1: &str = "C15011121200000107660000016";
pub const P2: &str = "C15011121200000107660000017";

pub struct Cast {
    pub province: Actor,
    pub nanchang: Actor,
    pub nanchang_county: Actor,
    pub jiujiang: Actor,
    /// 东湖区 hospital (no county bureau → Nanchang city bureau).
    pub a: Actor,
    /// 南昌县 hospital (county bureau configured).
    pub b: Actor,
    pub m1: Actor,
    pub m2: Actor,
    pub d1: Actor,
    pub d2: Actor,
}

pub fn nc(s: &str) -> NationalCode {
    NationalCode::parse(s).unwrap()
}

impl Cast {
    pub fn new() -> Cast {
        let a = |k, r: &str| actor(k, OrgId::new(), r);
        Cast {
            province: a(OrgKind::Bureau, "360000"),
            nanchang: a(OrgKind::Bureau, "360100"),
            nanchang_county: a(OrgKind::Bureau, "360121"),
            jiujiang: a(OrgKind::Bureau, "360400"),
            a: a(OrgKind::Hospital, "360102"),
            b: a(OrgKind::Hospital, "360121"),
            m1: a(OrgKind::Manufacturer, "330100"),
            m2: a(OrgKind::Manufacturer, "320100"),
            d1: a(OrgKind::Distributor, "360100"),
            d2: a(OrgKind::Distributor, "360100"),
        }
    }

    pub async fn setup(&self, w: &World) {
        for who in [
            &self.province,
            &self.nanchang,
            &self.nanchang_county,
            &self.jiujiang,
            &self.a,
            &self.b,
            &self.m1,
            &self.m2,
            &self.d1,
            &self.d2,
        ] {
            w.publish(
                EventId::new(),
                &OrgRegistered {
                    record: OrgRecord {
                        org: who.org,
                        kind: who.org_kind,
                        name: format!("{} {}", who.org_kind, who.region),
                        region: who.region,
                        nhsa_code: None,
                        level: None,
                        uscc: None,
                        is_manufacturer: false,
                        is_distributor: false,
                        acts_for: vec![],
                        active: true,
                        revision: 1,
                    },
                    registered_at: at("2026-01-01T09:00:00+08:00"),
                },
            )
            .await;
        }
        let item = |code: &str, name: &str, m: &Actor| SupplyItem {
            national_code: nc(code),
            generic_name: name.into(),
            spec_model: "7Fr 单腔".into(),
            unit: "支".into(),
            manufacturer: m.org,
            manufacturer_name: "厂家".into(),
            winning_price_fen: Money::from_fen(12_300),
            product_group: "G1".into(),
        };
        w.publish(
            EventId::new(),
            &SupplyListPublished {
                period: PeriodId::new(),
                project: ProjectId::new(),
                project_code: "JX-2026-01".into(),
                period_number: 1,
                starts_at: at("2025-08-01T00:00:00+08:00"),
                ends_at: at("2026-08-01T00:00:00+08:00"),
                revision: 1,
                items: vec![
                    item(P1, "中心静脉导管", &self.m1),
                    item(P2, "输液器", &self.m2),
                ],
                published_at: at("2025-07-20T09:00:00+08:00"),
            },
        )
        .await;
        // Hospital A × P1: D1 until 2026-01-10, then D2.
        let (r1, r2) = (RelationId::new(), RelationId::new());
        let rel = |id, d: &Actor, from: &str| RelationActivated {
            relation: id,
            period: PeriodId::new(),
            hospital: self.a.org,
            hospital_region: self.a.region,
            national_code: nc(P1),
            manufacturer: self.m1.org,
            distributor: d.org,
            valid_from: at(from),
            valid_to: None,
            replaces: None,
            activated_at: at(from),
        };
        w.publish(
            EventId::new(),
            &rel(r1, &self.d1, "2025-08-01T00:00:00+08:00"),
        )
        .await;
        w.publish(
            EventId::new(),
            &RelationEnded {
                relation: r1,
                period: PeriodId::new(),
                hospital: self.a.org,
                hospital_region: self.a.region,
                national_code: nc(P1),
                manufacturer: self.m1.org,
                distributor: self.d1.org,
                valid_from: at("2025-08-01T00:00:00+08:00"),
                valid_to: at("2026-01-10T00:00:00+08:00"),
                reason: "change".into(),
                replaced_by: Some(r2),
                ended_at: at("2026-01-09T10:00:00+08:00"),
            },
        )
        .await;
        w.publish(
            EventId::new(),
            &rel(r2, &self.d2, "2026-01-10T00:00:00+08:00"),
        )
        .await;
        w.wait_count("SELECT count(*) FROM orgs", 10).await;
        w.wait_count("SELECT count(*) FROM supply_items", 2).await;
        w.wait_count(
            "SELECT count(*) FROM relations WHERE valid_to IS NOT NULL",
            1,
        )
        .await;
        w.wait_count("SELECT count(*) FROM relations", 2).await;
    }

    pub fn filing(&self, code: &str, t: IssueType, occurred: &str) -> FileIssue {
        FileIssue {
            national_code: nc(code),
            quantity: 20,
            issue_type: t,
            occurred_at: at(occurred),
            impact_scope: "心内科手术排期".into(),
            statement: "已盖章情况说明".into(),
            statement_sealed: true,
            evidence: vec![],
        }
    }
}

pub fn recipients(v: &IssueView, role: RecipientRole) -> Vec<OrgId> {
    v.recipients
        .iter()
        .filter(|r| r.role == role)
        .map(|r| r.org)
        .collect()
}
