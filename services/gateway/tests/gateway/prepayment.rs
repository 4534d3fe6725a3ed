//! The prepayment routes against the real prepayment service, fed with the
//! agreements and orders services' events: ledgers per hospital, a
//! back-dated approval flagged late, disbursement, an offset, the region
//! summary with its reconciliation, both `.xlsx` exports, the province
//! recalculation, who may do what, and each route's OpenAPI entry.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vbp_contracts::Service;
use vbp_contracts::agreements::{
    AgreementId, AgreementState, AgreementStateChanged, PeriodId, PeriodOpened, ProjectId,
};
use vbp_contracts::orders::{OrderId, SettlementId, SettlementPaid};
use vbp_kernel::{Actor, EventId, Money, OrgId, OrgKind};
use vbp_platform::{sheets, testkit};

use crate::common::{Harness, json_ok, problem};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn who(kind: OrgKind, region: &str) -> Actor {
    Actor {
        sub: format!("{kind}-{region}-user"),
        org: OrgId::new(),
        org_kind: kind,
        region: region.parse().unwrap(),
        roles: Vec::new(),
    }
}

async fn ledgers(h: &Harness, token: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = json_ok(h.get("/api/v1/prepayment/ledgers", token).await).await;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} ledgers calculated",
            items.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sheet(file: &Value) -> Vec<Vec<String>> {
    assert!(
        file["file_name"].as_str().unwrap().ends_with(".xlsx"),
        "{file}"
    );
    let bytes = sheets::decode_base64(file["content_base64"].as_str().unwrap()).unwrap();
    sheets::read_xlsx(&bytes).unwrap()
}

#[tokio::test]
async fn prepayment_ledgers_approval_disbursement_reports_and_recalculation_through_the_gateway() {
    let h = Harness::start().await;
    h.start_backend(Service::Prepayment, vbp_prepayment::run)
        .await;
    h.env.clock.set(at("2024-11-20T10:00:00+08:00"));
    let province = who(OrgKind::Bureau, "210000");
    let fuxin = who(OrgKind::Bureau, "210900");
    let central = who(OrgKind::Hospital, "210902");
    let county = who(OrgKind::Hospital, "210922");
    let maker = who(OrgKind::Manufacturer, "330100");
    let t = |a: &Actor| h.long_token_for(a);
    let (province_t, fuxin_t, central_t, county_t, maker_t) =
        (t(&province), t(&fuxin), t(&central), t(&county), t(&maker));

    let (project, period) = (ProjectId::new(), PeriodId::new());
    testkit::publish_event(
        &h.platform,
        EventId::new(),
        &PeriodOpened {
            period,
            project,
            project_code: "ZJHCCG-2022-01".into(),
            number: 2,
            starts_at: at("2024-08-01T00:00:00+08:00"),
            ends_at: at("2025-08-01T00:00:00+08:00"),
            paper_deadline: None,
            carried_over_from: None,
            opened_at: at("2024-07-31T10:00:00+08:00"),
        },
    )
    .await;
    // 1 000 005 × 30% = 300 001.5 → 300 002 fen; 2 000 000 × 30% = 600 000.
    for (hospital, amount) in [(&central, 1_000_005), (&county, 2_000_000)] {
        testkit::publish_event(
            &h.platform,
            EventId::new(),
            &AgreementStateChanged {
                agreement: AgreementId::new(),
                version: 1,
                period,
                project,
                hospital: hospital.org,
                hospital_region: hospital.region,
                manufacturer: maker.org,
                distributors: vec![],
                from: Some(AgreementState::DistributorConfirmed),
                state: AgreementState::Effective,
                reason: None,
                lines: vec![],
                amount_fen: Money::from_fen(amount),
                amends_version: None,
                changed_at: at("2024-09-10T10:00:00+08:00"),
            },
        )
        .await;
    }
    let all = ledgers(&h, &fuxin_t, 2).await;
    let own = json_ok(h.get("/api/v1/prepayment/ledgers", &central_t).await).await;
    let own = own["items"].as_array().unwrap();
    assert_eq!(own.len(), 1, "a hospital sees its own ledger only");
    assert_eq!(own[0]["amount_fen"], 300_002);
    assert_eq!(own[0]["calculations"][0]["ratio"], 3000);
    let id = own[0]["ledger"].as_str().unwrap().to_owned();
    assert!(all.iter().any(|l| l["ledger"] == id.as_str()));
    problem(h.get("/api/v1/prepayment/ledgers", &maker_t).await, 403).await;
    let one = json_ok(
        h.get(&format!("/api/v1/prepayment/ledgers/{id}"), &central_t)
            .await,
    )
    .await;
    assert_eq!(one["state"], "calculated");
    problem(
        h.get(&format!("/api/v1/prepayment/ledgers/{id}"), &county_t)
            .await,
        404,
    )
    .await;

    // Approval: bureaus only; a future decision date names the field.
    let approve = format!("/api/v1/prepayment/ledgers/{id}/approve");
    problem(h.post(&approve, &central_t, &json!({})).await, 403).await;
    let bad = problem(
        h.post(&approve, &fuxin_t, &json!({ "approved_on": "2024-12-01" }))
            .await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "approved_on");
    // Decided on paper on 2024-09-27: 15 working days across National Day
    // end on 2024-10-23, so it is late already.
    let approved = json_ok(
        h.post(&approve, &fuxin_t, &json!({ "approved_on": "2024-09-27" }))
            .await,
    )
    .await;
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["approved_on"], "2024-09-27");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let l = json_ok(
            h.get(&format!("/api/v1/prepayment/ledgers/{id}"), &fuxin_t)
                .await,
        )
        .await;
        if l["late"] == true {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never flagged late: {l}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let disburse = format!("/api/v1/prepayment/ledgers/{id}/disbursement");
    problem(
        h.post(
            &disburse,
            &central_t,
            &json!({ "payment_reference": "X", "disbursed_on": "2024-10-30" }),
        )
        .await,
        403,
    )
    .await;
    let disbursed = json_ok(
        h.post(
            &disburse,
            &fuxin_t,
            &json!({ "payment_reference": "LNYB-YFJ-0001", "disbursed_on": "2024-10-30" }),
        )
        .await,
    )
    .await;
    assert_eq!(disbursed["state"], "disbursed");
    assert_eq!(disbursed["late"], true);
    assert_eq!(disbursed["balance_fen"], 300_002);

    // A paid settlement recovers 30% of it (冲抵): 100 001 × 30% → 30 000.
    let settlement: SettlementPaid = serde_json::from_value(json!({
        "settlement": SettlementId::new(),
        "order": OrderId::new(),
        "period": period,
        "hospital": central.org,
        "hospital_region": central.region,
        "payee": maker.org,
        "amount_fen": 100_001,
        "channel": "online",
        "due_at": "2024-12-31T00:00:00+08:00",
        "paid_at": "2024-11-20T09:00:00+08:00",
        "on_time": true,
    }))
    .unwrap();
    testkit::publish_event(&h.platform, EventId::new(), &settlement).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let ledger = loop {
        let l = json_ok(
            h.get(&format!("/api/v1/prepayment/ledgers/{id}"), &central_t)
                .await,
        )
        .await;
        if l["balance_fen"] == 270_002 {
            break l;
        }
        assert!(tokio::time::Instant::now() < deadline, "no offset: {l}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let kinds: Vec<_> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["amount_fen"].clone(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("disbursed".to_owned(), json!(300_002)),
            ("offset".to_owned(), json!(-30_000))
        ]
    );

    // The summary and its reconciliation, in JSON and as .xlsx.
    let summary = json_ok(h.get("/api/v1/prepayment/summary", &province_t).await).await;
    assert_eq!(summary["reconciled"], true, "{summary}");
    assert_eq!(summary["total"]["disbursed_fen"], 300_002);
    assert_eq!(summary["total"]["offset_fen"], 30_000);
    assert_eq!(summary["total"]["balance_fen"], 270_002);
    assert_eq!(summary["total"]["amount_fen"], 900_002);
    problem(h.get("/api/v1/prepayment/summary", &central_t).await, 403).await;
    let file = json_ok(
        h.get(
            &format!("/api/v1/prepayment/summary/export?period={period}"),
            &province_t,
        )
        .await,
    )
    .await;
    let table = sheet(&file);
    let total = table.last().unwrap();
    let col = |name: &str| table[0].iter().position(|c| c.contains(name)).unwrap();
    assert!(total[0].contains("total"), "{total:?}");
    assert_eq!(total[col("balance_yuan")], "2700.02");
    assert_eq!(total[col("reconciled")], "是");
    problem(
        h.get("/api/v1/prepayment/summary/export", &central_t).await,
        403,
    )
    .await;

    // The hospital's statement: its own without naming it; a bureau names it.
    let own = sheet(
        &json_ok(
            h.get("/api/v1/prepayment/statement/export", &central_t)
                .await,
        )
        .await,
    );
    assert_eq!(own.len(), 3, "{own:?}");
    let col = |name: &str| own[0].iter().position(|c| c.contains(name)).unwrap();
    assert_eq!(own[2][col("entry_amount_yuan")], "-300.00");
    assert_eq!(own[2][col("balance_yuan")], "2700.02");
    assert_eq!(own[1][col("payment_reference")], "LNYB-YFJ-0001");
    let named = json_ok(
        h.get(
            &format!(
                "/api/v1/prepayment/statement/export?hospital={}",
                county.org
            ),
            &fuxin_t,
        )
        .await,
    )
    .await;
    assert_eq!(named["rows"], 1);
    let bad = problem(
        h.get("/api/v1/prepayment/statement/export", &fuxin_t).await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "hospital");

    // The province recalculates its ledgers as one operation; with the
    // ratio unchanged nothing changes. A city bureau may not.
    problem(
        h.post(
            "/api/v1/prepayment/recalculations",
            &fuxin_t,
            &json!({ "region": "210000" }),
        )
        .await,
        403,
    )
    .await;
    let r = json_ok(
        h.post(
            "/api/v1/prepayment/recalculations",
            &province_t,
            &json!({ "region": "210000" }),
        )
        .await,
    )
    .await;
    assert_eq!(
        (r["ledgers"].clone(), r["changed"].clone()),
        (json!(2), json!(0))
    );

    // A period closes (冲减, next-period blocks) only after it ends.
    let close = format!("/api/v1/prepayment/periods/{period}/close");
    problem(h.post(&close, &central_t, &json!({})).await, 403).await;
    let bad = problem(h.post(&close, &province_t, &json!({})).await, 422).await;
    assert_eq!(bad["field"], "period");

    // Every prepayment route is in the OpenAPI document.
    let doc = json_ok(h.get("/api/openapi.json", &province_t).await).await;
    for (path, method) in [
        ("/api/v1/prepayment/ledgers", "get"),
        ("/api/v1/prepayment/ledgers/{ledger}", "get"),
        ("/api/v1/prepayment/ledgers/{ledger}/approve", "post"),
        ("/api/v1/prepayment/ledgers/{ledger}/disbursement", "post"),
        ("/api/v1/prepayment/summary", "get"),
        ("/api/v1/prepayment/summary/export", "get"),
        ("/api/v1/prepayment/statement/export", "get"),
        ("/api/v1/prepayment/recalculations", "post"),
        ("/api/v1/prepayment/periods/{period}/close", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op["summary"].is_string(), "{method} {path} missing: {op}");
    }
}
