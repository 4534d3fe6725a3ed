//! The Liaoning guiding-catheter scenario through RPC on real Postgres and
//! NATS, with the manual clock.

mod common;

use std::time::Duration;

use chrono::NaiveDate;
use common::{World, actor, at, operator};
use vbp_agreements::demo;
use vbp_contracts::agreements::{self as c, *};
use vbp_contracts::distribution::{RelationActivated, RelationId};
use vbp_contracts::orders::{AcceptanceId, AcceptedLine, OrderId, OrderSource, ReceiptAccepted};
use vbp_kernel::{Actor, CodeKind, EventId, Money, OrgId, OrgKind};

const P1: &str = "C02010205103001107660000011";

struct Cast {
    province: Actor,
    fuxin: Actor,
    shenyang: Actor,
    hospital: Actor,
    other_hospital: Actor,
    maker_a: Actor,
    maker_b: Actor,
    dist: Actor,
    project: ProjectId,
    period1: PeriodView,
    period2: PeriodView,
}

fn org(s: &str) -> OrgId {
    s.parse().unwrap()
}

fn reg(kind: OrgKind, id: &str, name: &str, region: &str, code: Option<&str>) -> RegisterOrg {
    RegisterOrg {
        id: Some(org(id)),
        kind,
        name: name.into(),
        region: region.parse().unwrap(),
        nhsa_code: (kind == OrgKind::Hospital).then(|| code.unwrap().to_owned()),
        level: (kind == OrgKind::Hospital).then_some(HospitalLevel::Tertiary),
        uscc: matches!(kind, OrgKind::Manufacturer | OrgKind::Distributor)
            .then(|| code.unwrap().to_owned()),
        is_manufacturer: false,
        is_distributor: false,
        acts_for: vec![],
    }
}

/// Orgs, project, period 1 with its list, period 2 carried over — all by RPC.
async fn setup(w: &World) -> Cast {
    let op = operator();
    for r in [
        reg(
            OrgKind::Bureau,
            demo::PROVINCE_BUREAU,
            "辽宁省医疗保障局",
            "210000",
            None,
        ),
        reg(
            OrgKind::Bureau,
            demo::FUXIN_BUREAU,
            "阜新市医疗保障局",
            "210900",
            None,
        ),
        reg(
            OrgKind::Bureau,
            demo::SHENYANG_BUREAU,
            "沈阳市医疗保障局",
            "210100",
            None,
        ),
        reg(
            OrgKind::Hospital,
            demo::FUXIN_HOSPITAL,
            "阜新市中心医院",
            "210902",
            Some("H21090200001"),
        ),
        reg(
            OrgKind::Hospital,
            demo::SHENYANG_HOSPITAL,
            "中国医科大学附属第一医院",
            "210102",
            Some("H21010200001"),
        ),
        reg(
            OrgKind::Manufacturer,
            demo::MANUFACTURER_A,
            "示例心血管医疗器械有限公司",
            "330100",
            Some("91330100MA2A0001XD"),
        ),
        reg(
            OrgKind::Manufacturer,
            demo::MANUFACTURER_B,
            "上海示例介入医疗科技有限公司",
            "310100",
            Some("91310000MA1F0004XR"),
        ),
        reg(
            OrgKind::Distributor,
            demo::DISTRIBUTOR_FUXIN,
            "阜新示例医药有限公司",
            "210900",
            Some("91210900MA0Y0002X0"),
        ),
    ] {
        w.ok::<c::OrgRegister>(&op, &r).await;
    }
    let province = actor(OrgKind::Bureau, org(demo::PROVINCE_BUREAU), "210000");
    let project = w
        .ok::<c::ProjectRegister>(
            &province,
            &RegisterProject {
                id: None,
                code: "ZJHCCG-2022-01".into(),
                name: "浙江等16省(自治区)联盟冠脉导引导管集中带量采购".into(),
                organiser: "浙江等16省(自治区)联盟".into(),
                category: CodeKind::Consumable,
                provinces: vec!["330000".parse().unwrap(), "210000".parse().unwrap()],
                product_groups: vec![
                    ProductGroup {
                        code: "G1".into(),
                        name: "常规".into(),
                    },
                    ProductGroup {
                        code: "G2".into(),
                        name: "加强".into(),
                    },
                ],
            },
        )
        .await
        .project;
    let period1 = w
        .ok::<c::PeriodOpen>(
            &province,
            &OpenPeriod {
                id: None,
                project,
                number: 1,
                first_day: NaiveDate::from_ymd_opt(2023, 8, 1).unwrap(),
                last_day: NaiveDate::from_ymd_opt(2024, 7, 31).unwrap(),
                paper_deadline: None,
                carry_over: false,
            },
        )
        .await;
    w.ok::<c::SupplyListImport>(
        &province,
        &ImportSupplyList {
            period: period1.period,
            rows: demo::supply_rows(),
        },
    )
    .await;
    w.ok::<c::SupplyListPublish>(
        &province,
        &PublishSupplyList {
            period: period1.period,
        },
    )
    .await;
    let period2 = w
        .ok::<c::PeriodOpen>(
            &province,
            &OpenPeriod {
                id: None,
                project,
                number: 2,
                first_day: NaiveDate::from_ymd_opt(2024, 8, 1).unwrap(),
                last_day: NaiveDate::from_ymd_opt(2025, 7, 31).unwrap(),
                paper_deadline: Some(at("2024-09-18T17:00:00+08:00")),
                carry_over: true,
            },
        )
        .await;
    Cast {
        province,
        fuxin: actor(OrgKind::Bureau, org(demo::FUXIN_BUREAU), "210900"),
        shenyang: actor(OrgKind::Bureau, org(demo::SHENYANG_BUREAU), "210100"),
        hospital: actor(OrgKind::Hospital, org(demo::FUXIN_HOSPITAL), "210902"),
        other_hospital: actor(OrgKind::Hospital, org(demo::SHENYANG_HOSPITAL), "210102"),
        maker_a: actor(OrgKind::Manufacturer, org(demo::MANUFACTURER_A), "330100"),
        maker_b: actor(OrgKind::Manufacturer, org(demo::MANUFACTURER_B), "310100"),
        dist: actor(OrgKind::Distributor, org(demo::DISTRIBUTOR_FUXIN), "210900"),
        project,
        period1,
        period2,
    }
}

fn accepted(
    cast: &Cast,
    acceptance: AcceptanceId,
    code: &str,
    qty: i64,
    when: &str,
) -> ReceiptAccepted {
    ReceiptAccepted {
        acceptance,
        order: OrderId::new(),
        shipment: None,
        period: cast.period2.period,
        hospital: cast.hospital.org,
        hospital_region: cast.hospital.region,
        distributor: cast.dist.org,
        source: OrderSource::Online,
        lines: vec![AcceptedLine {
            line_no: 1,
            national_code: code.parse().unwrap(),
            manufacturer: cast.maker_a.org,
            accepted_quantity: qty,
            rejected_quantity: 0,
            rejection_reason: None,
            unit_price_fen: Money::from_fen(72_000),
            amount_fen: Money::from_fen(72_000 * qty),
        }],
        amount_fen: Money::from_fen(72_000 * qty),
        accepted_at: at(when),
        payment_due_at: None,
    }
}

async fn progress_of(w: &World, who: &Actor, cast: &Cast) -> ProgressReport {
    w.ok::<c::ProgressQuery>(
        who,
        &QueryProgress {
            period: cast.period2.period,
            hospital: None,
            region: None,
            national_code: None,
            class: None,
            as_of: None,
            page: 1,
            page_size: 100,
        },
    )
    .await
}

async fn wait_accepted(w: &World, cast: &Cast, code: &str, qty: i64) -> ProgressRow {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = progress_of(w, &cast.province, cast).await;
        if let Some(row) = r
            .items
            .iter()
            .find(|i| i.national_code.as_str() == code && i.hospital == cast.hospital.org)
            && row.accepted_quantity >= qty
        {
            return row.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "progress never reached {qty}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn period_two_carries_the_list_over_with_exact_bounds() {
    let w = World::start().await;
    let cast = setup(&w).await;
    assert_eq!(cast.period2.starts_at, at("2024-08-01T00:00:00+08:00"));
    assert_eq!(cast.period2.ends_at, at("2025-08-01T00:00:00+08:00"));
    assert_eq!(cast.period2.carried_over_from, Some(cast.period1.period));
    assert_eq!(cast.period2.supply_list_revision, 1);
    let l1 = w
        .ok::<c::SupplyListGet>(
            &cast.hospital,
            &GetSupplyList {
                period: cast.period1.period,
                draft: false,
            },
        )
        .await;
    let l2 = w
        .ok::<c::SupplyListGet>(
            &cast.hospital,
            &GetSupplyList {
                period: cast.period2.period,
                draft: false,
            },
        )
        .await;
    assert_eq!(l1.items.len(), 6);
    assert_eq!(l1.items, l2.items, "period 2 list identical to period 1's");
    assert_eq!(l2.items[0].winning_price_fen, Money::from_fen(72_000));
    // Events: period opened ×2, list published ×2 (one per period), the second carrying the same items.
    let opened = w.events("agreements.period.opened").await;
    assert_eq!(opened.len(), 2);
    assert_eq!(opened[1]["starts_at"], "2024-07-31T16:00:00Z");
    assert_eq!(opened[1]["ends_at"], "2025-07-31T16:00:00Z");
    assert_eq!(opened[1]["paper_deadline"], "2024-09-18T09:00:00Z");
    let published = w.events("agreements.supply_list.published").await;
    assert_eq!(published.len(), 2);
    assert_eq!(published[0]["items"], published[1]["items"]);
    assert_eq!(published[1]["period"], cast.period2.period.to_string());
    // Carry-over is refused when there is nothing to carry, and nothing is created.
    let before = w.outbox_count().await;
    let e = w
        .err::<c::PeriodOpen>(
            &cast.province,
            &OpenPeriod {
                id: None,
                project: cast.project,
                number: 4,
                first_day: NaiveDate::from_ymd_opt(2026, 8, 1).unwrap(),
                last_day: NaiveDate::from_ymd_opt(2027, 7, 31).unwrap(),
                paper_deadline: None,
                carry_over: true,
            },
        )
        .await;
    assert_eq!(e.0.field.as_deref(), Some("carry_over"), "{e}");
    assert_eq!(w.outbox_count().await, before);
    // A city bureau may not open periods.
    let e = w
        .err::<c::PeriodOpen>(
            &cast.fuxin,
            &OpenPeriod {
                id: None,
                project: cast.project,
                number: 3,
                first_day: NaiveDate::from_ymd_opt(2025, 8, 1).unwrap(),
                last_day: NaiveDate::from_ymd_opt(2026, 7, 31).unwrap(),
                paper_deadline: None,
                carry_over: true,
            },
        )
        .await;
    assert_eq!(e.0.status, 403);
}

#[tokio::test]
async fn agreement_signed_by_all_three_parties_takes_effect_and_progress_follows_acceptances() {
    let w = World::start().await;
    let cast = setup(&w).await;
    let period = cast.period2.period;
    // Agreed volume set by the Fuxin bureau (no report → lines + reason).
    let agreed = w
        .ok::<c::AgreedVolumeSetOp>(
            &cast.fuxin,
            &SetAgreedVolume {
                period,
                hospital: cast.hospital.org,
                product_group: "G1".into(),
                lines: Some(vec![QuantityLine {
                    national_code: P1.parse().unwrap(),
                    quantity: 100,
                }]),
                reason: Some("按上年用量核定".into()),
            },
        )
        .await;
    assert_eq!(agreed.amount_fen, Money::from_fen(7_200_000));
    // Shenyang's bureau may not set a Fuxin hospital's volume.
    let e = w
        .err::<c::AgreedVolumeSetOp>(
            &cast.shenyang,
            &SetAgreedVolume {
                period,
                hospital: cast.hospital.org,
                product_group: "G1".into(),
                lines: Some(vec![]),
                reason: Some("x".into()),
            },
        )
        .await;
    assert_eq!(e.0.status, 403);

    let draft = w
        .ok::<c::AgreementCreate>(
            &cast.hospital,
            &CreateAgreement {
                period,
                hospital: cast.hospital.org,
                manufacturer: cast.maker_a.org,
                distributors: vec![cast.dist.org],
                lines: None,
            },
        )
        .await;
    assert_eq!(draft.state, AgreementState::Draft);
    assert_eq!(draft.lines.len(), 1);
    assert_eq!(draft.amount_fen, Money::from_fen(7_200_000));
    let id = draft.agreement;
    let confirm = ConfirmAgreement {
        agreement: id,
        version: 1,
    };

    // Out of order: the manufacturer before the hospital → conflict, nothing changed.
    let before = w.outbox_count().await;
    let e = w.err::<c::AgreementConfirm>(&cast.maker_a, &confirm).await;
    assert_eq!(
        (e.0.status, e.0.code.as_str()),
        (409, "invalid_transition"),
        "{e}"
    );
    assert_eq!(w.outbox_count().await, before);
    let still = w
        .ok::<c::AgreementGet>(
            &cast.hospital,
            &GetAgreement {
                agreement: id,
                version: None,
            },
        )
        .await;
    assert_eq!(still.state, AgreementState::Draft);
    // A stranger cannot confirm.
    assert_eq!(
        w.err::<c::AgreementConfirm>(&cast.maker_b, &confirm)
            .await
            .0
            .status,
        403
    );

    assert_eq!(
        w.ok::<c::AgreementConfirm>(&cast.hospital, &confirm)
            .await
            .state,
        AgreementState::HospitalConfirmed
    );
    assert_eq!(
        w.ok::<c::AgreementConfirm>(&cast.maker_a, &confirm)
            .await
            .state,
        AgreementState::ManufacturerConfirmed
    );
    // No distribution relation yet → refused.
    let e = w.err::<c::AgreementConfirm>(&cast.dist, &confirm).await;
    assert_eq!(e.0.code, "no_distribution_relation", "{e}");
    // The distribution service activates the relation; agreements projects it.
    w.publish(
        EventId::new(),
        &RelationActivated {
            relation: RelationId::new(),
            period,
            hospital: cast.hospital.org,
            hospital_region: cast.hospital.region,
            national_code: P1.parse().unwrap(),
            manufacturer: cast.maker_a.org,
            distributor: cast.dist.org,
            valid_from: at("2024-08-01T00:00:00+08:00"),
            valid_to: None,
            replaces: None,
            activated_at: at("2024-08-01T09:00:00+08:00"),
        },
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let effective = loop {
        match w.call::<c::AgreementConfirm>(&cast.dist, &confirm).await {
            Ok(v) => break v,
            Err(e)
                if e.0.code == "no_distribution_relation"
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(effective.state, AgreementState::Effective);
    let changes = w.events("agreements.agreement.state_changed").await;
    let states: Vec<&str> = changes
        .iter()
        .map(|c| c["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "draft",
            "hospital_confirmed",
            "manufacturer_confirmed",
            "distributor_confirmed",
            "effective"
        ]
    );
    let eff = changes.last().unwrap();
    assert_eq!(eff["amount_fen"], 7_200_000);
    assert_eq!(eff["lines"][0]["national_code"], P1);
    assert_eq!(eff["lines"][0]["quantity"], 100);
    assert_eq!(eff["version"], 1);
    // Effective is final for confirmation and rejection.
    assert_eq!(
        w.err::<c::AgreementReject>(
            &cast.hospital,
            &RejectAgreement {
                agreement: id,
                version: 1,
                reason: "x".into()
            }
        )
        .await
        .0
        .status,
        409
    );

    // Scoping of agreements: each org kind sees exactly its own.
    let list = |who: Actor| {
        let w = &w;
        async move {
            w.ok::<c::AgreementList>(
                &who,
                &ListAgreements {
                    period: Some(period),
                    hospital: None,
                    region: None,
                    state: None,
                    page: 1,
                    page_size: 50,
                },
            )
            .await
            .total
        }
    };
    assert_eq!(list(cast.fuxin.clone()).await, 1);
    assert_eq!(list(cast.province.clone()).await, 1);
    assert_eq!(list(cast.shenyang.clone()).await, 0);
    assert_eq!(list(cast.hospital.clone()).await, 1);
    assert_eq!(list(cast.other_hospital.clone()).await, 0);
    assert_eq!(list(cast.maker_a.clone()).await, 1);
    assert_eq!(list(cast.maker_b.clone()).await, 0);
    assert_eq!(list(cast.dist.clone()).await, 1);
    assert_eq!(
        w.err::<c::AgreementGet>(
            &cast.shenyang,
            &GetAgreement {
                agreement: id,
                version: None
            }
        )
        .await
        .0
        .status,
        404
    );

    // Progress from acceptances, at 2024-10-14 00:00+08 (74 of 365 days elapsed).
    w.set_clock("2024-10-14T00:00:00+08:00");
    let a1 = AcceptanceId::new();
    w.publish(
        EventId::new(),
        &accepted(&cast, a1, P1, 20, "2024-10-01T10:00:00+08:00"),
    )
    .await;
    let row = wait_accepted(&w, &cast, P1, 20).await;
    assert_eq!(row.class, ProgressClass::Slow, "20/100 < 74/365");
    assert_eq!(row.accepted_amount_fen, Money::from_fen(1_440_000));
    let a2 = AcceptanceId::new();
    let e2 = EventId::new();
    let ev2 = accepted(&cast, a2, P1, 1, "2024-10-02T10:00:00+08:00");
    w.publish(e2, &ev2).await;
    let row = wait_accepted(&w, &cast, P1, 21).await;
    assert_eq!(row.class, ProgressClass::Normal, "21/100 >= 74/365");
    // Duplicates: the same event again, and the same acceptance re-emitted under a new event id.
    w.publish(e2, &ev2).await;
    w.publish(EventId::new(), &ev2).await;
    let a3 = AcceptanceId::new();
    w.publish(
        EventId::new(),
        &accepted(&cast, a3, P1, 84, "2024-10-03T10:00:00+08:00"),
    )
    .await;
    let row = wait_accepted(&w, &cast, P1, 105).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let row2 = wait_accepted(&w, &cast, P1, 105).await;
    assert_eq!(row2.accepted_quantity, 105, "duplicates counted once");
    assert_eq!(row.class, ProgressClass::OverVolume);
    assert_eq!(row.over_volume_quantity, 5);
    let flags = w
        .ok::<c::FlagListOp>(
            &cast.fuxin,
            &ListFlags {
                period,
                kind: Some(FlagKind::OverVolume),
                hospital: None,
                region: None,
            },
        )
        .await;
    assert_eq!(flags.flags.len(), 1);
    // Progress scoping.
    assert!(
        progress_of(&w, &cast.shenyang, &cast)
            .await
            .items
            .is_empty()
    );
    assert!(
        progress_of(&w, &cast.other_hospital, &cast)
            .await
            .items
            .is_empty()
    );
    assert!(
        progress_of(&w, &cast.maker_b, &cast)
            .await
            .items
            .iter()
            .all(|r| r.national_code.as_str() != P1)
    );
    assert_eq!(progress_of(&w, &cast.maker_a, &cast).await.items.len(), 1);
    assert_eq!(progress_of(&w, &cast.dist, &cast).await.items.len(), 1);
    // Monthly balance: all 105 in October 2024; expected 100/12 ≈ 8 per month.
    let m = w
        .ok::<c::ProgressMonthly>(
            &cast.hospital,
            &QueryMonthlyBalance {
                period,
                hospital: None,
                national_code: P1.parse().unwrap(),
            },
        )
        .await;
    assert_eq!(m.months.len(), 12);
    assert_eq!(
        m.months[2].month,
        NaiveDate::from_ymd_opt(2024, 10, 1).unwrap()
    );
    assert_eq!(m.months[2].accepted_quantity, 105);
    assert_eq!(m.months[2].expected_quantity, 8);
    // Sudden stop: 60 days later, still no purchase while the period runs.
    w.set_clock("2024-12-05T00:00:00+08:00");
    let flags = w
        .ok::<c::FlagListOp>(
            &cast.fuxin,
            &ListFlags {
                period,
                kind: Some(FlagKind::SuddenStop),
                hospital: None,
                region: None,
            },
        )
        .await;
    assert_eq!(flags.flags.len(), 1);
}

#[tokio::test]
async fn paper_deadline_list_before_and_after_17_00() {
    let w = World::start().await;
    let cast = setup(&w).await;
    let period = cast.period2.period;
    let draft = w
        .ok::<c::AgreementCreate>(
            &cast.fuxin,
            &CreateAgreement {
                period,
                hospital: cast.hospital.org,
                manufacturer: cast.maker_a.org,
                distributors: vec![cast.dist.org],
                lines: Some(vec![QuantityLine {
                    national_code: P1.parse().unwrap(),
                    quantity: 10,
                }]),
            },
        )
        .await;
    let q = PaperDeadlineQuery {
        period,
        region: None,
    };
    w.set_clock("2024-09-18T16:59:59+08:00");
    let before = w.ok::<c::AgreementPaperDeadline>(&cast.fuxin, &q).await;
    assert!(!before.past_deadline);
    assert!(before.overdue.is_empty());
    assert_eq!(before.pending, 1);
    w.set_clock("2024-09-18T17:00:00+08:00");
    let after = w.ok::<c::AgreementPaperDeadline>(&cast.fuxin, &q).await;
    assert!(after.past_deadline);
    assert_eq!(after.overdue.len(), 1);
    assert_eq!(after.overdue[0].agreement, draft.agreement);
    assert_eq!(after.overdue_by_region[0].region, "210902".parse().unwrap());
    // Another city's bureau sees none of it.
    assert!(
        w.ok::<c::AgreementPaperDeadline>(&cast.shenyang, &q)
            .await
            .overdue
            .is_empty()
    );
    // Signed late → recorded, flagged late, off the list.
    let e = w
        .err::<c::AgreementPaperSign>(
            &cast.hospital,
            &RecordPaperSigning {
                agreement: draft.agreement,
                version: 1,
                signed_at: at("2024-09-18T18:00:00+08:00"),
                document_sha256: "abc".into(),
            },
        )
        .await;
    assert_eq!(e.0.field.as_deref(), Some("document_sha256"));
    w.set_clock("2024-09-19T09:00:00+08:00");
    let signed = w
        .ok::<c::AgreementPaperSign>(
            &cast.hospital,
            &RecordPaperSigning {
                agreement: draft.agreement,
                version: 1,
                signed_at: at("2024-09-18T18:00:00+08:00"),
                document_sha256: "A".repeat(64),
            },
        )
        .await;
    assert!(signed.paper.as_ref().unwrap().late);
    assert!(
        w.ok::<c::AgreementPaperDeadline>(&cast.fuxin, &q)
            .await
            .overdue
            .is_empty()
    );
}

#[tokio::test]
async fn csv_import_reports_every_bad_row_and_imports_nothing() {
    let w = World::start().await;
    let cast = setup(&w).await;
    let period = cast.period1.period;
    let header = "国家医保编码,通用名,规格型号,单位,生产企业统一社会信用代码,中选价格(元),产品组\n";
    let good =
        "C02010205103001107660000011,冠脉导引导管,6F JL3.5,根,91330100MA2A0001XD,720.00,G1\n";
    let bad = format!(
        "{header}{good}C0201020510300110766000001,冠脉导引导管,6F,根,91330100MA2A0001XD,720.00,G1\n\
         C02010205103001107660000013,冠脉导引导管,6F,根,91330100MA2A0001XE,720.00,G1\n\
         C02010205103001107660000014,冠脉导引导管,6F,根,91330100MA2A0001XD,7.205,G1\n"
    );
    let e = w
        .err::<c::SupplyListImportFile>(
            &cast.province,
            &ImportSupplyListFile {
                period,
                file_name: "list.csv".into(),
                content_base64: b64(bad.as_bytes()),
            },
        )
        .await;
    assert_eq!(e.0.code, "import_rejected", "{e}");
    let details: ImportRejected = serde_json::from_value(e.0.details.clone()).unwrap();
    let cells: Vec<(u32, &str)> = details
        .errors
        .iter()
        .map(|x| (x.row, x.column.as_str()))
        .collect();
    assert_eq!(
        cells,
        [
            (3, "national_code"),
            (4, "manufacturer_uscc"),
            (5, "winning_price_yuan")
        ],
        "{details:?}"
    );
    assert!(
        details.errors[0].rule.contains("27 characters"),
        "{:?}",
        details.errors[0]
    );
    assert!(
        details.errors[1].rule.contains("check character"),
        "{:?}",
        details.errors[1]
    );
    // Nothing imported: the draft is still the earlier one (6 items).
    let draft = w
        .ok::<c::SupplyListGet>(
            &cast.province,
            &GetSupplyList {
                period,
                draft: true,
            },
        )
        .await;
    assert_eq!(draft.items.len(), 6);
    // A valid file replaces the draft; publishing emits revision 2.
    let ok = w
        .ok::<c::SupplyListImportFile>(
            &cast.province,
            &ImportSupplyListFile {
                period,
                file_name: "list.csv".into(),
                content_base64: b64(format!("{header}{good}").as_bytes()),
            },
        )
        .await;
    assert_eq!(ok.rows, 1);
    let published = w
        .ok::<c::SupplyListPublish>(&cast.province, &PublishSupplyList { period })
        .await;
    assert_eq!(published.revision, 2);
    // A file that is not a workbook names the field; hospitals cannot import.
    let e = w
        .err::<c::SupplyListImportFile>(
            &cast.province,
            &ImportSupplyListFile {
                period,
                file_name: "list.xlsx".into(),
                content_base64: b64(b"PK"),
            },
        )
        .await;
    assert_eq!(
        (e.0.status, e.0.field.as_deref()),
        (422, Some("content_base64")),
        "{e}"
    );
    let e = w
        .err::<c::SupplyListImport>(
            &cast.hospital,
            &ImportSupplyList {
                period,
                rows: vec![],
            },
        )
        .await;
    assert_eq!(e.0.status, 403);
}

#[tokio::test]
async fn directory_validates_codes_and_scopes_by_region() {
    let w = World::start().await;
    let cast = setup(&w).await;
    let mut r = reg(
        OrgKind::Hospital,
        "01930000-0000-7000-8000-0000000001ff",
        "x",
        "210922",
        Some("H21092200002"),
    );
    r.id = None;
    // Fuxin bureau registers a county hospital; Shenyang may not.
    assert_eq!(
        w.err::<c::OrgRegister>(&cast.shenyang, &r).await.0.status,
        403
    );
    let mut bad = r.clone();
    bad.nhsa_code = Some("H21010200002".into());
    assert_eq!(
        w.err::<c::OrgRegister>(&cast.fuxin, &bad)
            .await
            .0
            .field
            .as_deref(),
        Some("nhsa_code")
    );
    let h = w.ok::<c::OrgRegister>(&cast.fuxin, &r).await;
    let dup = w.err::<c::OrgRegister>(&cast.fuxin, &r).await;
    assert_eq!(dup.0.code, "duplicate_nhsa_code");
    let mut e = reg(
        OrgKind::Distributor,
        "01930000-0000-7000-8000-0000000003ff",
        "y",
        "210900",
        Some("91210900MA0Y0002X1"),
    );
    e.id = None;
    assert!(
        w.err::<c::OrgRegister>(&cast.fuxin, &e)
            .await
            .0
            .message
            .contains("check character")
    );
    let list = w
        .ok::<c::OrgList>(
            &cast.fuxin,
            &ListOrgs {
                kind: Some(OrgKind::Hospital),
                region: None,
                q: None,
                page: 1,
                page_size: 50,
            },
        )
        .await;
    assert_eq!(list.total, 2, "{list:?}");
    let list = w
        .ok::<c::OrgList>(
            &cast.shenyang,
            &ListOrgs {
                kind: Some(OrgKind::Hospital),
                region: None,
                q: None,
                page: 1,
                page_size: 50,
            },
        )
        .await;
    assert_eq!(list.total, 1);
    let own = w
        .ok::<c::OrgList>(
            &cast.hospital,
            &ListOrgs {
                kind: None,
                region: None,
                q: None,
                page: 1,
                page_size: 50,
            },
        )
        .await;
    assert_eq!(own.total, 1);
    // Update bumps the revision and emits org.updated.
    let up = w
        .ok::<c::OrgUpdate>(
            &cast.fuxin,
            &UpdateOrg {
                org: h.record.org,
                name: Some("彰武县人民医院".into()),
                level: None,
                is_manufacturer: None,
                is_distributor: None,
                acts_for: None,
                active: None,
                expected_revision: Some(1),
            },
        )
        .await;
    assert_eq!(up.record.revision, 2);
    let stale = w
        .err::<c::OrgUpdate>(
            &cast.fuxin,
            &UpdateOrg {
                org: h.record.org,
                name: Some("z".into()),
                level: None,
                is_manufacturer: None,
                is_distributor: None,
                acts_for: None,
                active: None,
                expected_revision: Some(1),
            },
        )
        .await;
    assert_eq!(stale.0.code, "stale_revision");
    assert_eq!(w.events("agreements.org.updated").await.len(), 1);
}

#[tokio::test]
async fn demo_loads_once() {
    let w = World::start().await;
    let op = operator();
    assert!(w.ok::<c::DemoLoad>(&op, &LoadDemo {}).await.created);
    let n = w.outbox_count().await;
    assert!(!w.ok::<c::DemoLoad>(&op, &LoadDemo {}).await.created);
    assert_eq!(w.outbox_count().await, n);
    let p2 = w
        .ok::<c::PeriodGet>(
            &op,
            &GetPeriod {
                period: demo::PERIOD_2.parse().unwrap(),
            },
        )
        .await;
    assert_eq!(p2.starts_at, at("2024-08-01T00:00:00+08:00"));
    assert_eq!(p2.carried_over_from, Some(demo::PERIOD_1.parse().unwrap()));
    let list = w
        .ok::<c::SupplyListGet>(
            &op,
            &GetSupplyList {
                period: p2.period,
                draft: false,
            },
        )
        .await;
    assert_eq!(list.items.len(), 6);
    let fuxin = actor(
        OrgKind::Bureau,
        demo::FUXIN_BUREAU.parse().unwrap(),
        "210900",
    );
    let av = w
        .ok::<c::AgreedVolumeList>(
            &fuxin,
            &ListAgreedVolumes {
                period: p2.period,
                hospital: None,
                region: None,
                page: 1,
                page_size: 50,
            },
        )
        .await;
    assert_eq!(
        av.total, 2,
        "Fuxin sees its city hospital and the county hospital"
    );
    assert!(w.err::<c::DemoLoad>(&fuxin, &LoadDemo {}).await.0.status == 403);
}

fn b64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// .xlsx import and export
// ---------------------------------------------------------------------------

/// A cell of a test workbook.
enum X {
    S(&'static str),
    N(f64),
}

/// A one-sheet workbook with a title row above the header (as notices'
/// attachments have), so the header is row 2 and data starts at row 3.
fn workbook(header: &[&str], rows: &[Vec<X>]) -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "辽宁省冠脉导引导管集中带量采购中选产品供应清单")
        .unwrap();
    for (j, h) in header.iter().enumerate() {
        ws.write_string(1, j as u16, *h).unwrap();
    }
    for (i, r) in rows.iter().enumerate() {
        for (j, c) in r.iter().enumerate() {
            let (row, col) = (i as u32 + 2, j as u16);
            match c {
                X::S(s) => ws.write_string(row, col, *s).map(|_| ()).unwrap(),
                X::N(n) => ws.write_number(row, col, *n).map(|_| ()).unwrap(),
            }
        }
    }
    wb.save_to_buffer().unwrap()
}

const XLSX_HEADER: [&str; 8] = [
    "序号",
    "国家医保耗材编码",
    "generic_name",
    "规格型号",
    "单位",
    "生产企业",
    "中选价格(元)",
    "product_group",
];

fn xlsx_row(
    n: f64,
    code: &'static str,
    maker: &'static str,
    price: X,
    group: &'static str,
) -> Vec<X> {
    vec![
        X::N(n),
        X::S(code),
        X::S("冠脉导引导管"),
        X::S("6F JL3.5 100cm"),
        X::S("根"),
        X::S(maker),
        price,
        X::S(group),
    ]
}

/// The first sheet read back with calamine, every cell as text.
fn read_back(file: &ExportedFile) -> Vec<Vec<String>> {
    use calamine::Reader;
    assert_eq!(file.content_type, XLSX_CONTENT_TYPE);
    assert!(file.file_name.ends_with(".xlsx"), "{}", file.file_name);
    let bytes = vbp_platform::sheets::decode_base64(&file.content_base64).unwrap();
    let mut wb: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let range = wb.worksheet_range_at(0).unwrap().unwrap();
    assert_eq!(range.start(), Some((0, 0)));
    range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

#[tokio::test]
async fn xlsx_import_of_a_valid_list_replaces_the_draft_and_publishes() {
    let w = World::start().await;
    let cast = setup(&w).await;
    let period = cast.period1.period;
    // Numeric and text prices, the manufacturer by credit code or by org id.
    let file = workbook(
        &XLSX_HEADER,
        &[
            xlsx_row(1.0, P1, "91330100MA2A0001XD", X::N(720.0), "G1"),
            xlsx_row(
                2.0,
                "C02010205103001107660000012",
                demo::MANUFACTURER_B,
                X::N(650.5),
                "G1",
            ),
            xlsx_row(
                3.0,
                "C02010205103001107660000013",
                "91330100MA2A0001XD",
                X::S("688.80"),
                "G2",
            ),
        ],
    );
    let ok = w
        .ok::<c::SupplyListImportFile>(
            &cast.province,
            &ImportSupplyListFile {
                period,
                file_name: "供应清单.XLSX".into(),
                content_base64: b64(&file),
            },
        )
        .await;
    assert_eq!(ok.rows, 3);
    let published = w
        .ok::<c::SupplyListPublish>(&cast.province, &PublishSupplyList { period })
        .await;
    assert_eq!(published.revision, 2);
    let prices: Vec<(&str, i64, OrgId)> = published
        .items
        .iter()
        .map(|i| {
            (
                i.national_code.as_str(),
                i.winning_price_fen.fen(),
                i.manufacturer,
            )
        })
        .collect();
    assert_eq!(
        prices,
        [
            (P1, 72_000, cast.maker_a.org),
            ("C02010205103001107660000012", 65_050, cast.maker_b.org),
            ("C02010205103001107660000013", 68_880, cast.maker_a.org),
        ]
    );
    let events = w.events("agreements.supply_list.published").await;
    let last = events.last().unwrap();
    assert_eq!(last["period"], serde_json::json!(period));
    assert_eq!(last["revision"], 2);
    assert_eq!(last["items"].as_array().unwrap().len(), 3);
    assert_eq!(last["items"][1]["winning_price_fen"], 65_050);
}

#[tokio::test]
async fn xlsx_with_three_bad_rows_reports_three_cells_and_imports_nothing() {
    let w = World::start().await;
    let cast = setup(&w).await;
    let period = cast.period1.period;
    let file = workbook(
        &XLSX_HEADER,
        &[
            xlsx_row(1.0, P1, "91330100MA2A0001XD", X::N(720.0), "G1"),
            // Row 4: a price with a third decimal typed as a number.
            xlsx_row(
                2.0,
                "C02010205103001107660000012",
                "91330100MA2A0001XD",
                X::N(720.005),
                "G1",
            ),
            // Row 5: a 26-character national code.
            xlsx_row(
                3.0,
                "C0201020510300110766000001",
                "91330100MA2A0001XD",
                X::N(720.0),
                "G1",
            ),
            xlsx_row(
                4.0,
                "C02010205103001107660000014",
                "91330100MA2A0001XD",
                X::N(1.5),
                "G2",
            ),
            // Row 7: a product group the project does not have.
            xlsx_row(
                5.0,
                "C02010205103001107660000015",
                "91330100MA2A0001XD",
                X::N(720.0),
                "G9",
            ),
        ],
    );
    let before = w.outbox_count().await;
    let e = w
        .err::<c::SupplyListImportFile>(
            &cast.province,
            &ImportSupplyListFile {
                period,
                file_name: "list.xlsx".into(),
                content_base64: b64(&file),
            },
        )
        .await;
    assert_eq!(
        (e.0.status, e.0.code.as_str()),
        (422, "import_rejected"),
        "{e}"
    );
    let details: ImportRejected = serde_json::from_value(e.0.details.clone()).unwrap();
    let cells: Vec<(u32, &str, Option<&str>, Option<&str>)> = details
        .errors
        .iter()
        .map(|x| {
            (
                x.row,
                x.column.as_str(),
                x.header.as_deref(),
                x.cell.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        cells,
        [
            (4, "winning_price_yuan", Some("中选价格(元)"), Some("G4")),
            (5, "national_code", Some("国家医保耗材编码"), Some("B5")),
            (7, "product_group", Some("product_group"), Some("H7")),
        ],
        "{details:?}"
    );
    assert!(
        details.errors[0].rule.contains("at most 2 decimals"),
        "{:?}",
        details.errors[0]
    );
    assert!(
        details.errors[1].rule.contains("27 characters"),
        "{:?}",
        details.errors[1]
    );
    assert!(
        details.errors[2].rule.contains("G9"),
        "{:?}",
        details.errors[2]
    );
    // Nothing imported, nothing emitted.
    let draft = w
        .ok::<c::SupplyListGet>(
            &cast.province,
            &GetSupplyList {
                period,
                draft: true,
            },
        )
        .await;
    assert_eq!(draft.items.len(), 6);
    assert_eq!(w.outbox_count().await, before);
}

#[tokio::test]
async fn org_directory_imports_from_xlsx_all_or_nothing() {
    let w = World::start().await;
    let cast = setup(&w).await;
    let header = [
        "机构类型",
        "机构名称",
        "行政区划",
        "医疗机构编码",
        "医院等级",
        "统一社会信用代码",
    ];
    let good = vec![
        X::S("医院"),
        X::S("阜新市第二人民医院"),
        X::S("210902"),
        X::S("H21090200002"),
        X::S("二级"),
    ];
    let bad = vec![
        X::S("医院"),
        X::S("阜新市第三人民医院"),
        X::N(210902.0),
        X::S("H21090200003"),
        X::S("四级"),
    ];
    let e = w
        .err::<c::OrgImportFile>(
            &cast.fuxin,
            &ImportOrgsFile {
                file_name: "orgs.xlsx".into(),
                content_base64: b64(&workbook(&header, &[good, bad])),
            },
        )
        .await;
    let details: ImportRejected = serde_json::from_value(e.0.details.clone()).unwrap();
    let cells: Vec<(u32, &str, Option<&str>)> = details
        .errors
        .iter()
        .map(|x| (x.row, x.column.as_str(), x.cell.as_deref()))
        .collect();
    assert_eq!(cells, [(4, "level", Some("E4"))], "{details:?}");
    let good = vec![
        X::S("医院"),
        X::S("阜新市第二人民医院"),
        X::N(210902.0),
        X::S("H21090200002"),
        X::S("二级"),
    ];
    let ok = w
        .ok::<c::OrgImportFile>(
            &cast.fuxin,
            &ImportOrgsFile {
                file_name: "orgs.xlsx".into(),
                content_base64: b64(&workbook(&header, &[good])),
            },
        )
        .await;
    assert_eq!(ok.imported.len(), 1);
    // Shenyang's bureau may not register a Fuxin hospital.
    let other = vec![
        X::S("医院"),
        X::S("阜新市第四人民医院"),
        X::S("210902"),
        X::S("H21090200004"),
    ];
    let e = w
        .err::<c::OrgImportFile>(
            &cast.shenyang,
            &ImportOrgsFile {
                file_name: "orgs.xlsx".into(),
                content_base64: b64(&workbook(&header, &[other])),
            },
        )
        .await;
    let details: ImportRejected = serde_json::from_value(e.0.details.clone()).unwrap();
    assert_eq!(details.errors.len(), 1, "{details:?}");
    assert_eq!(
        (details.errors[0].row, details.errors[0].column.as_str()),
        (3, "region")
    );
}

#[tokio::test]
async fn supply_list_and_progress_export_to_xlsx_and_read_back() {
    let w = World::start().await;
    let cast = setup(&w).await;
    let period = cast.period2.period;
    // Supply list: the import's headers, prices as yuan text; re-importable.
    let file = w
        .ok::<c::SupplyListExport>(
            &cast.hospital,
            &ExportSupplyList {
                period,
                draft: false,
            },
        )
        .await;
    assert_eq!(file.file_name, "ZJHCCG-2022-01_P2_supply_list.xlsx");
    assert_eq!(file.rows, 6);
    let table = read_back(&file);
    assert_eq!(table.len(), 7);
    assert_eq!(table[0][1], "国家医保耗材编码");
    assert_eq!(table[0][7], "中选价格(元)");
    assert_eq!(
        table[1][1..],
        [
            P1,
            "冠脉导引导管",
            "6F JL3.5 100cm",
            "根",
            "91330100MA2A0001XD",
            "示例心血管医疗器械有限公司",
            "720.00",
            "G1"
        ]
    );
    let again = w
        .ok::<c::SupplyListImportFile>(
            &cast.province,
            &ImportSupplyListFile {
                period,
                file_name: file.file_name.clone(),
                content_base64: file.content_base64.clone(),
            },
        )
        .await;
    assert_eq!(again.rows, 6);
    let draft = w
        .ok::<c::SupplyListGet>(
            &cast.province,
            &GetSupplyList {
                period,
                draft: true,
            },
        )
        .await;
    let published = w
        .ok::<c::SupplyListGet>(
            &cast.province,
            &GetSupplyList {
                period,
                draft: false,
            },
        )
        .await;
    assert_eq!(draft.items, published.items, "export → import round trip");
    assert_eq!(
        w.err::<c::SupplyListExport>(
            &cast.hospital,
            &ExportSupplyList {
                period,
                draft: true
            }
        )
        .await
        .0
        .status,
        403
    );

    // Progress: 100 agreed, 30 accepted by 2024-10-14 (74 of 365 days).
    w.ok::<c::AgreedVolumeSetOp>(
        &cast.fuxin,
        &SetAgreedVolume {
            period,
            hospital: cast.hospital.org,
            product_group: "G1".into(),
            lines: Some(vec![QuantityLine {
                national_code: P1.parse().unwrap(),
                quantity: 100,
            }]),
            reason: Some("按上年用量核定".into()),
        },
    )
    .await;
    w.set_clock("2024-10-14T00:00:00+08:00");
    w.publish(
        EventId::new(),
        &accepted(
            &cast,
            AcceptanceId::new(),
            P1,
            30,
            "2024-10-01T10:00:00+08:00",
        ),
    )
    .await;
    wait_accepted(&w, &cast, P1, 30).await;
    let export = |who: Actor| {
        let w = &w;
        async move {
            w.ok::<c::ProgressExport>(
                &who,
                &ExportProgress {
                    period,
                    hospital: None,
                    region: None,
                    national_code: None,
                    class: None,
                    as_of: None,
                },
            )
            .await
        }
    };
    let file = export(cast.fuxin.clone()).await;
    assert_eq!(file.file_name, "ZJHCCG-2022-01_P2_progress_20241014.xlsx");
    let table = read_back(&file);
    assert_eq!(table[0][7], "协议采购量 agreed_quantity");
    assert_eq!(table[0][12], "序时进度 time_progress");
    let line = table
        .iter()
        .find(|r| r[2] == P1)
        .unwrap_or_else(|| panic!("{table:?}"));
    assert_eq!(
        line[..],
        [
            "210902",
            "阜新市中心医院",
            P1,
            "冠脉导引导管",
            "6F JL3.5 100cm",
            "示例心血管医疗器械有限公司",
            "G1",
            "100",
            "30",
            "21600.00",
            "0",
            "30.00%",
            "20.27%",
            "正常",
            "normal",
            "2024-10-01 10:00",
            "否"
        ]
    );
    assert_eq!(file.rows as usize, table.len() - 1);
    // Scoped like the progress query: Shenyang sees none of Fuxin's lines,
    // the hospital its own, the manufacturer of P1 this line.
    assert_eq!(export(cast.shenyang.clone()).await.rows, 0);
    assert_eq!(read_back(&export(cast.shenyang.clone()).await).len(), 1);
    assert_eq!(export(cast.hospital.clone()).await.rows, file.rows);
    assert!(
        read_back(&export(cast.maker_a.clone()).await)
            .iter()
            .any(|r| r[2] == P1)
    );
    assert_eq!(export(cast.maker_b.clone()).await.rows, 0);
}

// ---------------------------------------------------------------------------
// Weekly progress snapshot timer
// ---------------------------------------------------------------------------

async fn snapshot_timers(w: &World) -> Vec<(String, chrono::DateTime<chrono::Utc>, bool)> {
    sqlx::query_as::<_, (String, chrono::DateTime<chrono::Utc>, bool)>(
        "SELECT key, due_at, fired_at IS NOT NULL FROM timers \
         WHERE kind = 'agreements.weekly_snapshot' ORDER BY due_at",
    )
    .fetch_all(&w.db)
    .await
    .unwrap()
}

/// Snapshot events of `period`, waiting until there are `n` (and a little
/// longer, so a duplicate would show).
async fn snapshots(w: &World, period: PeriodId, n: usize) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let all: Vec<_> = w
            .events("agreements.progress.weekly_snapshot")
            .await
            .into_iter()
            .filter(|e| e["period"] == serde_json::json!(period))
            .collect();
        if all.len() >= n {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            return w
                .events("agreements.progress.weekly_snapshot")
                .await
                .into_iter()
                .filter(|e| e["period"] == serde_json::json!(period))
                .collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} snapshots never came: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn opening_a_period_arms_a_weekly_snapshot_that_fires_once_and_rearms() {
    let w = World::start().await;
    let cast = setup(&w).await;
    let period = cast.period2.period;
    // Opened on Thursday 2024-08-01 09:00 +08: the first snapshot is due
    // Monday 2024-08-05 00:00 +08 (Sunday 16:00 UTC). Period 1 had ended.
    let key = |d: &str| format!("{period}/{d}");
    assert_eq!(
        snapshot_timers(&w).await,
        [(key("2024-08-05"), at("2024-08-04T16:00:00Z"), false)]
    );
    w.ok::<c::AgreedVolumeSetOp>(
        &cast.fuxin,
        &SetAgreedVolume {
            period,
            hospital: cast.hospital.org,
            product_group: "G1".into(),
            lines: Some(vec![QuantityLine {
                national_code: P1.parse().unwrap(),
                quantity: 100,
            }]),
            reason: Some("按上年用量核定".into()),
        },
    )
    .await;
    // A second before it is due nothing fires; the running host's
    // scheduler fires it once the clock passes Monday 00:00 Beijing.
    w.set_clock("2024-08-04T23:59:59+08:00");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        w.events("agreements.progress.weekly_snapshot")
            .await
            .is_empty()
    );
    w.set_clock("2024-08-05T09:00:00+08:00");
    let got = snapshots(&w, period, 1).await;
    assert_eq!(got.len(), 1, "exactly once: {got:?}");
    let s = &got[0];
    assert_eq!(s["hospital"], serde_json::json!(cast.hospital.org));
    assert_eq!(s["week_start"], "2024-08-05");
    assert_eq!(s["time_progress_bp"], 110, "4 of 365 days");
    assert_eq!(s["agreed_amount_fen"], 7_200_000);
    assert_eq!(s["lines"][0]["class"], "zero");
    // Fired, and next Monday's timer is armed.
    assert_eq!(
        snapshot_timers(&w).await,
        [
            (key("2024-08-05"), at("2024-08-04T16:00:00Z"), true),
            (key("2024-08-12"), at("2024-08-11T16:00:00Z"), false),
        ]
    );
    // The RPC in the same week emits nothing more.
    let taken = w
        .ok::<c::ProgressSnapshotOp>(&operator(), &TakeProgressSnapshot { period })
        .await;
    assert_eq!(taken.hospitals, 0);
    // A timer that fires late emits its own week once; the weeks missed in
    // between are not replayed, and the next armed is the coming Monday.
    w.set_clock("2024-08-21T10:00:00+08:00");
    let got = snapshots(&w, period, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["week_start"], "2024-08-12");
    let timers = snapshot_timers(&w).await;
    assert_eq!(
        timers.last().unwrap(),
        &(key("2024-08-26"), at("2024-08-25T16:00:00Z"), false)
    );
    assert_eq!(timers.iter().filter(|t| !t.2).count(), 1, "{timers:?}");
}
