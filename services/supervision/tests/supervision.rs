//! The supervision service on a fresh database and namespace, fed the
//! agreements, orders and issues events it projects exactly as their relays
//! publish them, called over real NATS RPC with chosen actors; the issues
//! service runs beside it where findings are filed as issues.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio_util::sync::CancellationToken;
use vbp_bus::RpcClient;
use vbp_contracts::agreements::*;
use vbp_contracts::issues::{IssueRepeated, IssueType};
use vbp_contracts::orders::*;
use vbp_contracts::supervision::*;
use vbp_contracts::{Event, Service};
use vbp_kernel::{Actor, EventId, Money, NationalCode, OrgId, OrgKind, RegionCode};
use vbp_platform::Platform;
use vbp_platform::testkit::{self, TestEnv, err_as, ok_as, publish_event};

const CODE: &str = "C15011121200000107660000016";
const PRICE: i64 = 1_000;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn actor(kind: OrgKind, org: OrgId, region: &str) -> Actor {
    Actor {
        sub: format!("test-{kind}-{org}"),
        org,
        org_kind: kind,
        region: region.parse().unwrap(),
        roles: vec![],
    }
}

fn code() -> NationalCode {
    NationalCode::parse(CODE).unwrap()
}

struct World {
    env: TestEnv,
    platform: Platform,
    rpc: RpcClient,
    db: sqlx::PgPool,
    seen: testkit::EventWatch,
    period: PeriodId,
    project: ProjectId,
    h1: OrgId,
    h2: OrgId,
    h3: OrgId,
    city: Actor,
    distributor: OrgId,
    manufacturer: OrgId,
}

impl World {
    async fn start(with_issues: bool) -> World {
        Self::start_with(with_issues, false).await
    }

    async fn start_with(with_issues: bool, auto_generate: bool) -> World {
        let env = TestEnv::new().await;
        let config = env
            .config()
            .with_figment_overrides(serde_json::json!({
                "supervision": { "auto_generate": auto_generate }
            }))
            .unwrap();
        let platform = env.platform_with(config, CancellationToken::new()).await;
        let seen = testkit::EventWatch::start(&platform, Service::Supervision).await;
        tokio::spawn(vbp_supervision::run(platform.clone()));
        if with_issues {
            tokio::spawn(vbp_issues::run(platform.clone()));
        }
        let rpc = platform.rpc_client();
        let op = actor(OrgKind::Operator, OrgId::new(), "000000");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while rpc
            .call::<ThresholdsGet>(&vbp_bus::Context::new(Some(op.clone())), &GetThresholds {})
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "service did not come up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let db = env.pool_in("supervision").await;
        let city_bureau = OrgId::new();
        let w = World {
            env,
            platform,
            rpc,
            db,
            seen,
            period: PeriodId::new(),
            project: ProjectId::new(),
            h1: OrgId::new(),
            h2: OrgId::new(),
            h3: OrgId::new(),
            city: actor(OrgKind::Bureau, city_bureau, "210900"),
            distributor: OrgId::new(),
            manufacturer: OrgId::new(),
        };
        w.seed().await;
        w
    }

    async fn publish<E: Event>(&self, e: &E) -> EventId {
        let id = EventId::new();
        publish_event(&self.platform, id, e).await;
        id
    }

    async fn org(&self, org: OrgId, kind: OrgKind, name: &str, region: &str) {
        self.publish(&OrgRegistered {
            record: OrgRecord {
                org,
                kind,
                name: name.to_owned(),
                region: region.parse().unwrap(),
                nhsa_code: None,
                level: None,
                uscc: None,
                is_manufacturer: kind == OrgKind::Manufacturer,
                is_distributor: kind == OrgKind::Distributor,
                acts_for: vec![],
                active: true,
                revision: 1,
            },
            registered_at: self.platform.clock.now(),
        })
        .await;
    }

    /// Liaoning: three hospitals of one Fuxin county, the city bureau, a
    /// manufacturer and a distributor; one period with agreed volumes of 100
    /// for the first two hospitals.
    async fn seed(&self) {
        self.org(self.h1, OrgKind::Hospital, "阜新市第一医院", "210902")
            .await;
        self.org(self.h2, OrgKind::Hospital, "阜新市第二医院", "210902")
            .await;
        self.org(self.h3, OrgKind::Hospital, "阜新市第三医院", "210902")
            .await;
        self.org(self.city.org, OrgKind::Bureau, "阜新市医疗保障局", "210900")
            .await;
        self.org(
            self.manufacturer,
            OrgKind::Manufacturer,
            "导管生产企业",
            "330100",
        )
        .await;
        self.org(
            self.distributor,
            OrgKind::Distributor,
            "辽宁配送企业",
            "210100",
        )
        .await;
        let starts = at("2024-08-01T00:00:00+08:00");
        let ends = at("2025-08-01T00:00:00+08:00");
        self.publish(&PeriodOpened {
            period: self.period,
            project: self.project,
            project_code: "ZJHCCG-2022-01".into(),
            number: 2,
            starts_at: starts,
            ends_at: ends,
            paper_deadline: None,
            carried_over_from: None,
            opened_at: starts,
        })
        .await;
        self.publish(&SupplyListPublished {
            period: self.period,
            project: self.project,
            project_code: "ZJHCCG-2022-01".into(),
            period_number: 2,
            starts_at: starts,
            ends_at: ends,
            revision: 1,
            items: vec![SupplyItem {
                national_code: code(),
                generic_name: "冠脉导引导管".into(),
                spec_model: "6F".into(),
                unit: "根".into(),
                manufacturer: self.manufacturer,
                manufacturer_name: "导管生产企业".into(),
                winning_price_fen: Money::from_fen(PRICE),
                product_group: "G1".into(),
            }],
            published_at: starts,
        })
        .await;
        for h in [self.h1, self.h2] {
            self.publish(&AgreedVolumeSet {
                period: self.period,
                project: self.project,
                hospital: h,
                hospital_region: "210902".parse().unwrap(),
                product_group: "G1".into(),
                lines: vec![AgreedVolumeLine {
                    national_code: code(),
                    manufacturer: self.manufacturer,
                    quantity: 100,
                    unit_price_fen: Money::from_fen(PRICE),
                    amount_fen: Money::from_fen(100 * PRICE),
                }],
                quantity: 100,
                amount_fen: Money::from_fen(100 * PRICE),
                revision: 1,
                reason: None,
                set_at: starts,
            })
            .await;
        }
        testkit::wait_count(&self.db, "SELECT count(*) FROM orgs", 6).await;
        testkit::wait_count(&self.db, "SELECT count(*) FROM agreed_lines", 2).await;
        testkit::wait_count(&self.db, "SELECT count(*) FROM periods", 1).await;
    }

    async fn accept(&self, h: OrgId, qty: i64, when: &str, due: &str) -> AcceptanceId {
        let acceptance = AcceptanceId::new();
        self.publish(&ReceiptAccepted {
            acceptance,
            order: OrderId::new(),
            shipment: None,
            period: self.period,
            hospital: h,
            hospital_region: "210902".parse().unwrap(),
            distributor: self.distributor,
            source: OrderSource::Online,
            lines: vec![AcceptedLine {
                line_no: 1,
                national_code: code(),
                manufacturer: self.manufacturer,
                accepted_quantity: qty,
                rejected_quantity: 0,
                rejection_reason: None,
                unit_price_fen: Money::from_fen(PRICE),
                amount_fen: Money::from_fen(qty * PRICE),
            }],
            amount_fen: Money::from_fen(qty * PRICE),
            accepted_at: at(when),
            payment_due_at: Some(at(due)),
        })
        .await;
        acceptance
    }

    async fn place(&self, h: OrgId, qty: i64) -> (OrderId, EventId) {
        let order = OrderId::new();
        let id = self
            .publish(&OrderPlaced {
                order,
                period: self.period,
                hospital: h,
                hospital_region: "210902".parse().unwrap(),
                distributor: self.distributor,
                source: OrderSource::Online,
                integrator: None,
                external_id: None,
                lines: vec![OrderLine {
                    line_no: 1,
                    national_code: code(),
                    manufacturer: self.manufacturer,
                    quantity: qty,
                    unit_price_fen: Money::from_fen(PRICE),
                    amount_fen: Money::from_fen(qty * PRICE),
                    requested_quantity: None,
                }],
                total_amount_fen: Money::from_fen(qty * PRICE),
                placed_at: self.platform.clock.now(),
            })
            .await;
        (order, id)
    }

    async fn ship(&self, h: OrgId, order: OrderId) -> EventId {
        self.publish(&ShipmentDispatched {
            shipment: ShipmentId::new(),
            order,
            hospital: h,
            distributor: self.distributor,
            shipment_no: "S-1".into(),
            lines: vec![ShipmentLine {
                line_no: 1,
                national_code: code(),
                batch_no: "B1".into(),
                expiry_date: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
                quantity: 1,
            }],
            shipped_at: self.platform.clock.now(),
        })
        .await
    }

    async fn refuse(&self, h: OrgId, order: OrderId) -> EventId {
        self.publish(&OrderResponded {
            order,
            period: self.period,
            hospital: h,
            hospital_region: "210902".parse().unwrap(),
            distributor: self.distributor,
            response: OrderResponse::Refused,
            lines: vec![],
            reason: Some("缺货".into()),
            responded_at: self.platform.clock.now(),
        })
        .await
    }

    fn hospital(&self, h: OrgId) -> Actor {
        actor(OrgKind::Hospital, h, "210902")
    }
}

#[tokio::test]
async fn weekly_progress_reminders_notices_and_assessment_follow_the_data() {
    let w = World::start(false).await;
    w.env.clock.set(at("2025-02-01T10:00:00+08:00"));
    let a1 = w
        .accept(
            w.h1,
            60,
            "2025-01-10T10:00:00+08:00",
            "2025-01-31T00:00:00+08:00",
        )
        .await;
    w.accept(
        w.h2,
        10,
        "2025-01-10T10:00:00+08:00",
        "2025-02-28T00:00:00+08:00",
    )
    .await;
    w.publish(&OfflinePurchaseDeclared {
        hospital: w.h2,
        hospital_region: "210902".parse().unwrap(),
        month: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        national_code: None,
        amount_fen: Money::from_fen(50_000),
        declared_at: w.platform.clock.now(),
    })
    .await;
    testkit::wait_count(&w.db, "SELECT count(*) FROM accepted_lines", 2).await;
    testkit::wait_count(&w.db, "SELECT count(*) FROM offline_purchases", 1).await;

    // Week of 2025-01-13: both hospitals had their acceptances.
    let weekly = ok_as::<ProgressWeekly>(
        &w.rpc,
        &w.city,
        &WeeklyProgressQuery {
            week_of: Some(NaiveDate::from_ymd_opt(2025, 1, 15).unwrap()),
            period: None,
            by: ProgressGrouping::Hospital,
        },
    )
    .await;
    assert_eq!(
        weekly.week_start,
        NaiveDate::from_ymd_opt(2025, 1, 13).unwrap()
    );
    assert_eq!(weekly.as_of, at("2025-01-20T00:00:00+08:00"));
    assert_eq!(weekly.rows.len(), 2);
    let r1 = weekly
        .rows
        .iter()
        .find(|r| r.key == w.h1.to_string())
        .unwrap();
    let r2 = weekly
        .rows
        .iter()
        .find(|r| r.key == w.h2.to_string())
        .unwrap();
    assert_eq!(
        (r1.accepted_quantity, r1.progress_bp, r1.slow),
        (60, 6_000, false)
    );
    assert_eq!(
        (r2.accepted_quantity, r2.progress_bp, r2.slow),
        (10, 1_000, true)
    );
    // 172 of 365 days elapsed at 2025-01-20 00:00.
    assert_eq!(r1.time_progress_bp, 4_712);
    // Before the acceptances the same hospitals had nothing.
    let early = ok_as::<ProgressWeekly>(
        &w.rpc,
        &w.city,
        &WeeklyProgressQuery {
            week_of: Some(NaiveDate::from_ymd_opt(2025, 1, 5).unwrap()),
            period: Some(w.period),
            by: ProgressGrouping::Region,
        },
    )
    .await;
    assert_eq!(early.rows.len(), 1);
    assert_eq!(early.rows[0].key, "210902");
    assert_eq!(
        (
            early.rows[0].hospitals,
            early.rows[0].slow_hospitals,
            early.rows[0].accepted_quantity
        ),
        (2, 2, 0)
    );
    // A hospital sees only itself; an enterprise is refused; a bureau
    // elsewhere sees nothing.
    let own =
        ok_as::<ProgressWeekly>(&w.rpc, &w.hospital(w.h1), &WeeklyProgressQuery::default()).await;
    assert_eq!(own.rows.len(), 1);
    assert_eq!(own.rows[0].key, w.h1.to_string());
    let e = err_as::<ProgressWeekly>(
        &w.rpc,
        &actor(OrgKind::Distributor, w.distributor, "210100"),
        &WeeklyProgressQuery::default(),
    )
    .await;
    assert_eq!(e.body().status, 403);
    let jx = actor(OrgKind::Bureau, OrgId::new(), "360000");
    assert!(
        ok_as::<ProgressWeekly>(&w.rpc, &jx, &WeeklyProgressQuery::default())
            .await
            .rows
            .is_empty()
    );
    let e = err_as::<ProgressWeekly>(
        &w.rpc,
        &w.city,
        &WeeklyProgressQuery {
            week_of: Some(NaiveDate::from_ymd_opt(2025, 3, 1).unwrap()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(e.body().field.as_deref(), Some("week_of"));

    // January reminders: the second hospital is slow and buys mostly offline.
    let jan = GenerateWorkItems {
        kind: WorkItemKind::MonthlyReminder,
        year: 2025,
        month: Some(1),
        quarter: None,
    };
    let items = ok_as::<WorkItemsGenerate>(&w.rpc, &w.city, &jan)
        .await
        .items;
    let mut reasons: Vec<_> = items.iter().map(|i| (i.hospital, i.reason)).collect();
    reasons.sort_by_key(|(_, r)| enum_key(*r));
    assert_eq!(
        reasons,
        vec![
            (w.h2, WorkItemReason::SlowProgress),
            (w.h2, WorkItemReason::LowOnlineRate)
        ]
    );
    let online = items
        .iter()
        .find(|i| i.reason == WorkItemReason::LowOnlineRate)
        .unwrap();
    assert_eq!(
        (online.measured_bp, online.threshold_bp),
        (Some(1_667), Some(8_000))
    );
    assert_eq!(online.term, "2025-01");
    // Generating again adds nothing and announces nothing new.
    let again = ok_as::<WorkItemsGenerate>(&w.rpc, &w.city, &jan)
        .await
        .items;
    assert_eq!(again, items);
    testkit::wait_count(
        &w.db,
        "SELECT count(*) FROM outbox WHERE event_type = 'supervision.work_item.generated'",
        2,
    )
    .await;
    let e = err_as::<WorkItemsGenerate>(
        &w.rpc,
        &w.city,
        &GenerateWorkItems {
            month: Some(13),
            ..jan.clone()
        },
    )
    .await;
    assert_eq!(e.body().field.as_deref(), Some("month"));
    let e = err_as::<WorkItemsGenerate>(&w.rpc, &w.hospital(w.h1), &jan).await;
    assert_eq!(e.body().status, 403);

    // First quarter notices.
    let q1 = ok_as::<WorkItemsGenerate>(
        &w.rpc,
        &w.city,
        &GenerateWorkItems {
            kind: WorkItemKind::QuarterlyNotice,
            year: 2025,
            month: None,
            quarter: Some(1),
        },
    )
    .await
    .items;
    let has = |h: OrgId, r: WorkItemReason| q1.iter().any(|i| i.hospital == h && i.reason == r);
    assert!(has(w.h3, WorkItemReason::NotParticipating), "{q1:#?}");
    assert!(has(w.h2, WorkItemReason::SlowProgress));
    assert!(has(w.h2, WorkItemReason::LowOnlineRate));
    assert!(has(w.h2, WorkItemReason::FalseVolumeReport));
    // The first hospital's payment fell due on 31 January and is unpaid.
    assert!(has(w.h1, WorkItemReason::LowSettlementRate));
    assert!(!has(w.h1, WorkItemReason::SlowProgress));
    assert_eq!(q1.len(), 5, "{q1:#?}");

    // The hospital sees its own items; the export has every row in scope.
    let mine = ok_as::<WorkItemsList>(&w.rpc, &w.hospital(w.h2), &work_items(None, None))
        .await
        .items;
    assert_eq!(mine.len(), 5);
    assert!(mine.iter().all(|i| i.hospital == w.h2));
    // Walked two at a time: 2, 2, 1, in the same order, with the total on each page.
    let mut walked = Vec::new();
    for page in 1..=3 {
        let p = ok_as::<WorkItemsList>(
            &w.rpc,
            &w.hospital(w.h2),
            &ListWorkItems {
                page,
                page_size: 2,
                ..work_items(None, None)
            },
        )
        .await;
        assert_eq!((p.total, p.items.len()), (5, if page < 3 { 2 } else { 1 }));
        walked.extend(p.items.into_iter().map(|i| i.item));
    }
    assert_eq!(walked, mine.iter().map(|i| i.item).collect::<Vec<_>>());
    let e = err_as::<WorkItemsList>(
        &w.rpc,
        &w.city,
        &ListWorkItems {
            page_size: 0,
            ..work_items(None, None)
        },
    )
    .await;
    assert_eq!(e.body().field.as_deref(), Some("page_size"));
    let file = ok_as::<WorkItemsExport>(
        &w.rpc,
        &w.city,
        &ExportWorkItems {
            term: "2025Q1".into(),
        },
    )
    .await;
    assert_eq!(file.rows, 5);
    let bytes = vbp_platform::sheets::decode_base64(&file.content_base64).unwrap();
    let sheet = vbp_platform::sheets::read_xlsx(&bytes).unwrap();
    assert_eq!(sheet.len(), 6);
    assert!(sheet[1..].iter().any(|r| r[2] == "not_participating"));
    let e = err_as::<WorkItemsExport>(
        &w.rpc,
        &w.city,
        &ExportWorkItems {
            term: "2025-1".into(),
        },
    )
    .await;
    assert_eq!(e.body().field.as_deref(), Some("term"));

    // Paying half of the overdue acceptance shows in the assessment.
    w.publish(&SettlementPaid {
        settlement: SettlementId::new(),
        order: OrderId::new(),
        acceptance: Some(a1),
        offline_reason: None,
        invoice: None,
        period: w.period,
        hospital: w.h1,
        hospital_region: "210902".parse().unwrap(),
        payee: w.distributor,
        amount_fen: Money::from_fen(30 * PRICE),
        channel: SettlementChannel::Online,
        due_at: at("2025-01-31T00:00:00+08:00"),
        paid_at: at("2025-01-30T00:00:00+08:00"),
        on_time: true,
    })
    .await;
    testkit::wait_count(&w.db, "SELECT count(*) FROM settlements", 1).await;
    let year = ok_as::<Assessment>(&w.rpc, &w.city, &AnnualAssessmentQuery { year: 2025 }).await;
    let h1 = year.rows.iter().find(|r| r.hospital == w.h1).unwrap();
    assert_eq!(h1.name, "阜新市第一医院");
    assert_eq!(
        (h1.agreed_quantity, h1.accepted_quantity, h1.completion_bp),
        (100, 60, 6_000)
    );
    assert_eq!(h1.due_amount_fen, Money::from_fen(60 * PRICE));
    assert_eq!(h1.settlement_rate_bp, Some(5_000));
    assert_eq!(h1.timely_rate_bp, Some(5_000));
    assert_eq!(h1.online_rate_bp, Some(10_000));
    assert_eq!((h1.reminders, h1.notices), (0, 1));
    let h2 = year.rows.iter().find(|r| r.hospital == w.h2).unwrap();
    assert_eq!(h2.online_rate_bp, Some(1_667));
    assert_eq!(h2.settlement_rate_bp, None);
    assert_eq!((h2.reminders, h2.notices), (2, 3));
    let e = err_as::<Assessment>(&w.rpc, &w.city, &AnnualAssessmentQuery { year: 2027 }).await;
    assert_eq!(e.body().field.as_deref(), Some("year"));
}

fn enum_key(r: WorkItemReason) -> u8 {
    match r {
        WorkItemReason::SlowProgress => 0,
        WorkItemReason::LowOnlineRate => 1,
        WorkItemReason::NotParticipating => 2,
        WorkItemReason::FalseVolumeReport => 3,
        WorkItemReason::LowSettlementRate => 4,
    }
}

async fn wait_level(w: &World, record: CreditRecordId, level: i32) {
    testkit::wait_count(
        &w.db,
        &format!("SELECT count(*) FROM credit_records WHERE id = '{record}' AND level = {level}"),
        1,
    )
    .await;
}

#[tokio::test]
async fn credit_records_escalate_by_working_days_until_rectified() {
    let w = World::start(false).await;
    // Monday 2 September 2024, Beijing.
    w.env.clock.set(at("2024-09-02T10:00:00+08:00"));
    let cause = EventId::new();
    let filed = ok_as::<CreditFile>(
        &w.rpc,
        &w.city,
        &FileCreditRecord {
            enterprise: w.distributor,
            kind: CreditKind::OfflineSales,
            description: "线下销售中选产品".into(),
            source_events: vec![cause],
        },
    )
    .await;
    assert_eq!(filed.state, CreditState::Open);
    assert_eq!(filed.level, 0);
    assert_eq!(filed.source_events, vec![cause]);
    assert_eq!(filed.region, RegionCode::parse("210900").unwrap());
    assert_eq!(filed.enterprise_name, "辽宁配送企业");
    // 10 working days: 3–6, 9–13 and 14 (a make-up Saturday) September;
    // 15–17 are the Mid-Autumn holiday.
    assert_eq!(
        filed.rectify_due_at,
        Some(at("2024-09-15T00:00:00+08:00")),
        "{filed:#?}"
    );

    // Who may see and act.
    let e = err_as::<CreditFile>(
        &w.rpc,
        &w.hospital(w.h1),
        &FileCreditRecord {
            enterprise: w.distributor,
            kind: CreditKind::OfflineSales,
            description: "x".into(),
            source_events: vec![],
        },
    )
    .await;
    assert_eq!(e.body().status, 403);
    let e = err_as::<CreditFile>(
        &w.rpc,
        &w.city,
        &FileCreditRecord {
            enterprise: w.h1,
            kind: CreditKind::ShortSupply,
            description: "x".into(),
            source_events: vec![],
        },
    )
    .await;
    assert_eq!(e.body().field.as_deref(), Some("enterprise"));
    let e = err_as::<CreditFile>(
        &w.rpc,
        &w.city,
        &FileCreditRecord {
            enterprise: w.distributor,
            kind: CreditKind::ShortSupply,
            description: "   ".into(),
            source_events: vec![],
        },
    )
    .await;
    assert_eq!(e.body().field.as_deref(), Some("description"));
    let own = actor(OrgKind::Distributor, w.distributor, "210100");
    let other = actor(OrgKind::Manufacturer, w.manufacturer, "330100");
    assert_eq!(
        ok_as::<CreditList>(&w.rpc, &own, &credit_records(None))
            .await
            .items
            .len(),
        1
    );
    assert!(
        ok_as::<CreditList>(&w.rpc, &other, &credit_records(None))
            .await
            .items
            .is_empty()
    );
    let jx = actor(OrgKind::Bureau, OrgId::new(), "360000");
    let e = err_as::<CreditGet>(
        &w.rpc,
        &jx,
        &GetCreditRecord {
            record: filed.record,
        },
    )
    .await;
    assert_eq!(e.body().status, 404);
    let e = err_as::<CreditRectify>(
        &w.rpc,
        &own,
        &RectifyCreditRecord {
            record: filed.record,
            note: "已整改".into(),
        },
    )
    .await;
    assert_eq!(e.body().status, 403);

    // The deadline passes: one level up, a new deadline of 10 working days.
    w.env.clock.set(at("2024-09-15T00:00:01+08:00"));
    wait_level(&w, filed.record, 1).await;
    let up = ok_as::<CreditGet>(
        &w.rpc,
        &w.city,
        &GetCreditRecord {
            record: filed.record,
        },
    )
    .await;
    assert_eq!(up.level_name, "约谈 interview");
    assert_eq!(up.state, CreditState::Open);
    // 18–20, 23–27, 29 (make-up Sunday), 30 September.
    assert_eq!(up.rectify_due_at, Some(at("2024-10-01T00:00:00+08:00")));
    assert_eq!(up.history.len(), 2);
    let ev = w
        .seen
        .wait_for("supervision.credit_record.escalated", |_| true)
        .await;
    assert_eq!(ev["from_level"], 0);
    assert_eq!(ev["level"], 1);

    // Rectified: no further escalation, and only once.
    let done = ok_as::<CreditRectify>(
        &w.rpc,
        &w.city,
        &RectifyCreditRecord {
            record: filed.record,
            note: "企业已恢复网上销售".into(),
        },
    )
    .await;
    assert_eq!(done.state, CreditState::Rectified);
    assert_eq!(done.rectify_due_at, None);
    let e = err_as::<CreditClose>(
        &w.rpc,
        &w.city,
        &CloseCreditRecord {
            record: filed.record,
            reason: "重复".into(),
        },
    )
    .await;
    assert_eq!(e.body().status, 409);
    w.env.clock.set(at("2024-11-01T00:00:00+08:00"));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let still = ok_as::<CreditGet>(
        &w.rpc,
        &w.city,
        &GetCreditRecord {
            record: filed.record,
        },
    )
    .await;
    assert_eq!((still.level, still.state), (1, CreditState::Rectified));

    // A repeated-issue signal files a detection record once while it is open.
    let signal = IssueRepeated {
        enterprise: w.manufacturer,
        issue_type: IssueType::InsufficientSupply,
        count: 3,
        window_days: 90,
        issues: vec![],
        detected_at: w.platform.clock.now(),
    };
    let first = w.publish(&signal).await;
    w.publish(&signal).await;
    testkit::wait_count(
        &w.db,
        "SELECT count(*) FROM credit_records WHERE kind = 'repeated_issues'",
        1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let list = ok_as::<CreditList>(&w.rpc, &other, &credit_records(Some(CreditState::Open)))
        .await
        .items;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].origin, CreditOrigin::Detection);
    assert_eq!(list[0].source_events, vec![first]);
}

#[tokio::test]
async fn refusals_and_delays_are_found_and_filed_as_issues() {
    let w = World::start(true).await;
    w.env.clock.set(at("2025-03-03T10:00:00+08:00"));
    // The distributor ships to the first hospital of the county...
    let (o1, _) = w.place(w.h1, 5).await;
    let shipped = w.ship(w.h1, o1).await;
    // ...and refuses the second.
    let (o2, placed2) = w.place(w.h2, 7).await;
    let refused = w.refuse(w.h2, o2).await;
    testkit::wait_count(
        &w.db,
        "SELECT count(*) FROM findings WHERE kind = 'selective_delivery'",
        1,
    )
    .await;
    let ev = w
        .seen
        .wait_for("supervision.finding.detected", |_| true)
        .await;
    let sources: Vec<String> = ev["source_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    for id in [placed2, refused, shipped] {
        assert!(sources.contains(&id.to_string()), "{id} not in {sources:?}");
    }
    // Filed in issue direct reporting for the hospital that was refused.
    testkit::wait_count(
        &w.db,
        "SELECT count(*) FROM findings WHERE issue IS NOT NULL",
        1,
    )
    .await;
    let found = ok_as::<FindingsList>(&w.rpc, &w.city, &findings(None))
        .await
        .items;
    assert_eq!(found.len(), 1);
    let f = &found[0];
    assert_eq!(
        (f.kind, f.hospital, f.enterprise),
        (FindingKind::SelectiveDelivery, w.h2, w.distributor)
    );
    let issue = vbp_platform::testkit::ok_as::<vbp_contracts::issues::IssueGet>(
        &w.rpc,
        &w.city,
        &vbp_contracts::issues::GetIssue {
            issue: f.issue.unwrap(),
        },
    )
    .await;
    assert_eq!(issue.hospital, w.h2);
    assert_eq!(issue.issue_type, IssueType::SelectiveDelivery);
    assert_eq!(issue.quantity, 7);
    // And a credit record of the distributor, pointing back at the finding.
    let record = ok_as::<CreditGet>(
        &w.rpc,
        &actor(OrgKind::Distributor, w.distributor, "210100"),
        &GetCreditRecord {
            record: f.credit_record.unwrap(),
        },
    )
    .await;
    assert_eq!(record.kind, CreditKind::SelectiveDelivery);
    assert_eq!(record.finding, Some(f.finding));
    // Each hospital sees only the findings about itself.
    assert!(
        ok_as::<FindingsList>(&w.rpc, &w.hospital(w.h1), &findings(None))
            .await
            .items
            .is_empty()
    );
    assert_eq!(
        ok_as::<FindingsList>(&w.rpc, &w.hospital(w.h2), &findings(None))
            .await
            .items
            .len(),
        1
    );

    // The first hospital completes its agreed volume; its next order is
    // neither refused nor shipped within the delay: stop after volume.
    w.accept(
        w.h1,
        100,
        "2025-03-03T11:00:00+08:00",
        "2025-04-30T00:00:00+08:00",
    )
    .await;
    testkit::wait_count(&w.db, "SELECT count(*) FROM accepted_lines", 1).await;
    w.env.clock.set(at("2025-03-03T12:00:00+08:00"));
    let (_o3, placed3) = w.place(w.h1, 4).await;
    testkit::wait_count(&w.db, "SELECT count(*) FROM orders", 3).await;
    w.env.clock.set(at("2025-03-06T12:00:01+08:00"));
    testkit::wait_count(
        &w.db,
        "SELECT count(*) FROM findings WHERE kind = 'stop_after_volume'",
        1,
    )
    .await;
    let stop = ok_as::<FindingsList>(
        &w.rpc,
        &w.city,
        &findings(Some(FindingKind::StopAfterVolume)),
    )
    .await
    .items;
    assert_eq!(stop.len(), 1);
    assert_eq!(stop[0].hospital, w.h1);
    assert!(stop[0].source_events.contains(&placed3));
    assert!(stop[0].detail.contains("accepted 100 of its agreed 100"));
    testkit::wait_count(
        &w.db,
        "SELECT count(*) FROM findings WHERE issue IS NOT NULL",
        2,
    )
    .await;
}

#[tokio::test]
async fn each_month_start_generates_the_past_months_reminders_and_quarters_notices() {
    // The service starts on 1 August 2024 and arms the 1 September start.
    let w = World::start_with(false, true).await;
    w.env.clock.set(at("2024-09-01T00:00:01+08:00"));
    testkit::wait_count(
        &w.db,
        "SELECT count(*) FROM work_items WHERE term = '2024-08' AND reason = 'slow_progress'",
        2,
    )
    .await;
    // 1 October: September's reminders and the third quarter's notices.
    w.env.clock.set(at("2024-10-01T00:00:01+08:00"));
    testkit::wait_count(
        &w.db,
        "SELECT count(*) FROM work_items WHERE term = '2024Q3'",
        3,
    )
    .await;
    let q3 = ok_as::<WorkItemsList>(
        &w.rpc,
        &w.city,
        &work_items(Some(WorkItemKind::QuarterlyNotice), Some("2024Q3")),
    )
    .await
    .items;
    let mut got: Vec<_> = q3.iter().map(|i| (i.hospital, i.reason)).collect();
    got.sort_by_key(|(h, r)| (enum_key(*r), *h == w.h2));
    assert_eq!(
        got,
        vec![
            (w.h1, WorkItemReason::SlowProgress),
            (w.h2, WorkItemReason::SlowProgress),
            (w.h3, WorkItemReason::NotParticipating),
        ]
    );
    testkit::wait_count(
        &w.db,
        "SELECT count(*) FROM work_items WHERE term = '2024-09'",
        2,
    )
    .await;
    // The next start is armed, once.
    assert_eq!(
        testkit::count(
            &w.db,
            "SELECT count(*) FROM timers WHERE kind = 'supervision.calendar' \
             AND fired_at IS NULL AND due_at = '2024-10-31T16:00:00Z'"
        )
        .await,
        1
    );
}

fn work_items(kind: Option<WorkItemKind>, term: Option<&str>) -> ListWorkItems {
    ListWorkItems {
        kind,
        term: term.map(str::to_owned),
        page: 1,
        page_size: 500,
    }
}

fn credit_records(state: Option<CreditState>) -> ListCreditRecords {
    ListCreditRecords {
        state,
        enterprise: None,
        page: 1,
        page_size: 500,
    }
}

fn findings(kind: Option<FindingKind>) -> ListFindings {
    ListFindings {
        kind,
        page: 1,
        page_size: 500,
    }
}
