//! Issue 4's Liaoning scenario over HTTP, with the real agreements and
//! distribution services: the province registers the project and both
//! periods (period 2 carried over, exact bounds), a tripartite agreement is
//! signed by all three parties once distribution has activated the relation,
//! acceptances drive progress and classes at chosen clock times, over-volume
//! is accepted and flagged, the paper-deadline list turns at 17:00, and the
//! effective agreement becomes a prepayment the city bureau approves and
//! disburses.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vbp_agreements::demo::{
    self as d, DISTRIBUTOR_FUXIN, FUXIN_BUREAU, FUXIN_HOSPITAL, MANUFACTURER_A, MANUFACTURER_B,
    PROVINCE_BUREAU, SHENYANG_BUREAU,
};
use vbp_contracts::Service;
use vbp_contracts::orders::{AcceptedLine, OrderSource, ReceiptAccepted};
use vbp_kernel::{EventId, Money, OrgKind};

use crate::common::{Harness, json_ok, problem, who};

const P1: &str = "C02010205103001107660000011";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

/// What the orders service will publish when a hospital accepts a delivery.
async fn publish_acceptance(h: &Harness, period: &str, qty: i64, when: &str) {
    let event = ReceiptAccepted {
        acceptance: vbp_contracts::orders::AcceptanceId::new(),
        order: vbp_contracts::orders::OrderId::new(),
        shipment: None,
        period: period.parse().expect("period"),
        hospital: FUXIN_HOSPITAL.parse().expect("id"),
        hospital_region: "210902".parse().expect("region"),
        distributor: DISTRIBUTOR_FUXIN.parse().expect("id"),
        source: OrderSource::Online,
        lines: vec![AcceptedLine {
            line_no: 1,
            national_code: P1.parse().expect("code"),
            manufacturer: MANUFACTURER_A.parse().expect("id"),
            accepted_quantity: qty,
            rejected_quantity: 0,
            rejection_reason: None,
            unit_price_fen: Money::from_fen(72_000),
            amount_fen: Money::from_fen(72_000 * qty),
        }],
        amount_fen: Money::from_fen(72_000 * qty),
        accepted_at: at(when),
        payment_due_at: None,
    };
    h.platform
        .ensure_event_stream(Service::Orders)
        .await
        .expect("orders stream");
    vbp_platform::testkit::publish_event(&h.platform, EventId::new(), &event).await;
}

/// Retries a request while another service's events are still on their way.
async fn eventually(h: &Harness, path: &str, token: &str, body: &Value) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = h.post(path, token, body).await;
        if response.status().is_success() {
            return response.json().await.expect("json");
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path}: {status} {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn until_ledger(h: &Harness, token: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = json_ok(
            h.get(
                &format!("/api/v1/prepayment/ledgers?hospital={FUXIN_HOSPITAL}"),
                token,
            )
            .await,
        )
        .await;
        if let Some(ledger) = list["items"].as_array().and_then(|items| items.first()) {
            return ledger.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no prepayment ledger was calculated"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn progress_row(h: &Harness, period: &str, token: &str) -> Value {
    let report = json_ok(
        h.get(
            &format!("/api/v1/periods/{period}/progress?national_code={P1}"),
            token,
        )
        .await,
    )
    .await;
    let rows = report["items"].as_array().expect("items");
    rows.iter()
        .find(|r| r["hospital"] == FUXIN_HOSPITAL)
        .expect("the hospital's row")
        .clone()
}

#[tokio::test]
async fn the_liaoning_guiding_catheter_scenario_through_the_gateway() {
    let h = Harness::start().await;
    h.start_backend(Service::Agreements, vbp_agreements::run)
        .await;
    h.start_backend(Service::Distribution, vbp_distribution::run)
        .await;
    h.start_backend(Service::Prepayment, vbp_prepayment::run)
        .await;
    h.env.clock.set(at("2024-07-20T09:00:00+08:00"));
    let operator = h.token(OrgKind::Operator);
    let province = h.long_token_for(&who(PROVINCE_BUREAU, OrgKind::Bureau, "210000"));
    let fuxin = h.long_token_for(&who(FUXIN_BUREAU, OrgKind::Bureau, "210900"));
    let shenyang = h.long_token_for(&who(SHENYANG_BUREAU, OrgKind::Bureau, "210100"));
    let hospital = h.long_token_for(&who(FUXIN_HOSPITAL, OrgKind::Hospital, "210902"));
    let maker = h.long_token_for(&who(MANUFACTURER_A, OrgKind::Manufacturer, "330100"));
    let dist = h.long_token_for(&who(DISTRIBUTOR_FUXIN, OrgKind::Distributor, "210900"));

    for org in [
        json!({"id": PROVINCE_BUREAU, "kind": "bureau", "name": "辽宁省医疗保障局", "region": "210000"}),
        json!({"id": FUXIN_BUREAU, "kind": "bureau", "name": "阜新市医疗保障局", "region": "210900"}),
        json!({"id": SHENYANG_BUREAU, "kind": "bureau", "name": "沈阳市医疗保障局", "region": "210100"}),
        json!({"id": FUXIN_HOSPITAL, "kind": "hospital", "name": "阜新市中心医院", "region": "210902",
               "nhsa_code": "H21090200001", "level": "tertiary"}),
        json!({"id": MANUFACTURER_A, "kind": "manufacturer", "name": "示例心血管医疗器械有限公司", "region": "330100",
               "uscc": "91330100MA2A0001XD", "is_manufacturer": true}),
        json!({"id": MANUFACTURER_B, "kind": "manufacturer", "name": "上海示例介入医疗科技有限公司", "region": "310100",
               "uscc": "91310000MA1F0004XR", "is_manufacturer": true}),
        json!({"id": DISTRIBUTOR_FUXIN, "kind": "distributor", "name": "阜新示例医药有限公司", "region": "210900",
               "uscc": "91210900MA0Y0002X0", "is_distributor": true}),
    ] {
        json_ok(h.post("/api/v1/orgs", &operator, &org).await).await;
    }

    // The province registers the project and opens both periods.
    let project = json_ok(
        h.post(
            "/api/v1/projects",
            &province,
            &json!({"code": "ZJHCCG-2022-01", "name": "浙江等16省(自治区)联盟冠脉导引导管集中带量采购",
                    "organiser": "浙江等16省(自治区)联盟", "category": "consumable",
                    "provinces": ["330000", "210000"], "product_groups": [{"code": "G1", "name": "常规"}, {"code": "G2", "name": "加强"}]}),
        )
        .await,
    )
    .await;
    let period_body = |n: i32, first: &str, last: &str, carry: bool, deadline: Option<&str>| {
        json!({"project": project["project"], "number": n, "first_day": first, "last_day": last,
               "carry_over": carry, "paper_deadline": deadline})
    };
    let p1 = json_ok(
        h.post(
            "/api/v1/periods",
            &province,
            &period_body(1, "2023-08-01", "2024-07-31", false, None),
        )
        .await,
    )
    .await;
    let p1_id = p1["period"].as_str().expect("id").to_owned();
    let rows = serde_json::to_value(d::supply_rows()).expect("rows");
    json_ok(
        h.put_json(
            &format!("/api/v1/periods/{p1_id}/supply-list/draft"),
            &province,
            &json!({"rows": rows}),
        )
        .await,
    )
    .await;
    json_ok(
        h.post(
            &format!("/api/v1/periods/{p1_id}/supply-list/publish"),
            &province,
            &json!({}),
        )
        .await,
    )
    .await;
    // A city bureau may not open a period.
    problem(
        h.post(
            "/api/v1/periods",
            &fuxin,
            &period_body(2, "2024-08-01", "2025-07-31", true, None),
        )
        .await,
        403,
    )
    .await;
    let p2 = json_ok(
        h.post(
            "/api/v1/periods",
            &province,
            &period_body(
                2,
                "2024-08-01",
                "2025-07-31",
                true,
                Some("2024-09-18T17:00:00+08:00"),
            ),
        )
        .await,
    )
    .await;
    let p2_id = p2["period"].as_str().expect("id").to_owned();
    assert_eq!(
        at(p2["starts_at"].as_str().expect("start")),
        at("2024-08-01T00:00:00+08:00")
    );
    assert_eq!(
        at(p2["ends_at"].as_str().expect("end")),
        at("2025-08-01T00:00:00+08:00"),
        "2025-07-31 24:00, half-open"
    );
    let list1 = json_ok(
        h.get(&format!("/api/v1/periods/{p1_id}/supply-list"), &hospital)
            .await,
    )
    .await;
    let list2 = json_ok(
        h.get(&format!("/api/v1/periods/{p2_id}/supply-list"), &hospital)
            .await,
    )
    .await;
    assert_eq!(
        list2["items"], list1["items"],
        "period 2 carries period 1's list over unchanged"
    );

    // Agreed volume by the hospital's city bureau; another city's bureau may not.
    let volume = json!({"hospital": FUXIN_HOSPITAL, "product_group": "G1",
                        "lines": [{"national_code": P1, "quantity": 100}], "reason": "按上年用量核定"});
    problem(
        h.put_json(
            &format!("/api/v1/periods/{p2_id}/agreed-volumes"),
            &shenyang,
            &volume,
        )
        .await,
        403,
    )
    .await;
    let agreed = json_ok(
        h.put_json(
            &format!("/api/v1/periods/{p2_id}/agreed-volumes"),
            &fuxin,
            &volume,
        )
        .await,
    )
    .await;
    assert_eq!(agreed["amount_fen"], 7_200_000, "100 × 720.00 yuan, in fen");

    // Distribution: authorise, confirm, select, confirm → the relation agreements needs.
    h.env.clock.set(at("2024-08-01T09:00:00+08:00"));
    let auth = eventually(
        &h,
        "/api/v1/authorisations",
        &maker,
        &json!({"period": p2_id, "distributor": DISTRIBUTOR_FUXIN, "products": [P1], "areas": ["210900"]}),
    )
    .await;
    let auth_id = auth["authorisation"].as_str().expect("id");
    json_ok(
        h.post(
            &format!("/api/v1/authorisations/{auth_id}/confirm"),
            &dist,
            &json!({}),
        )
        .await,
    )
    .await;
    let selection = json_ok(
        h.post(
            "/api/v1/relations/select",
            &hospital,
            &json!({"period": p2_id, "national_code": P1, "distributors": [DISTRIBUTOR_FUXIN]}),
        )
        .await,
    )
    .await;
    let relation = selection["relations"][0]["relation"].as_str().expect("id");
    json_ok(
        h.post(
            &format!("/api/v1/relations/{relation}/confirm"),
            &dist,
            &json!({}),
        )
        .await,
    )
    .await;

    // The tripartite agreement: hospital → manufacturer → distributor.
    let draft = json_ok(
        h.post(
            "/api/v1/agreements",
            &hospital,
            &json!({"period": p2_id, "hospital": FUXIN_HOSPITAL, "manufacturer": MANUFACTURER_A, "distributors": [DISTRIBUTOR_FUXIN]}),
        )
        .await,
    )
    .await;
    assert_eq!(draft["state"], "draft");
    let agreement = draft["agreement"].as_str().expect("id").to_owned();
    let confirm_path = format!("/api/v1/agreements/{agreement}/confirm");
    let confirm = json!({"version": 1});
    let early = problem(h.post(&confirm_path, &maker, &confirm).await, 409).await;
    assert_eq!(
        early["status"], 409,
        "the manufacturer may not confirm before the hospital"
    );
    json_ok(h.post(&confirm_path, &hospital, &confirm).await).await;
    json_ok(h.post(&confirm_path, &maker, &confirm).await).await;
    // The distributor's confirmation waits for the relation to reach agreements.
    let effective = eventually(&h, &confirm_path, &dist, &confirm).await;
    assert_eq!(effective["state"], "effective");
    assert_eq!(effective["amount_fen"], 7_200_000);

    // Prepayment follows the effective agreement: 30% of 72,000.00 yuan, to the fen;
    // the hospital's city bureau approves and records the disbursement.
    let ledger = until_ledger(&h, &fuxin).await;
    assert_eq!(ledger["agreed_amount_fen"], 7_200_000);
    assert_eq!(ledger["amount_fen"], 2_160_000);
    let ledger_id = ledger["ledger"].as_str().expect("id").to_owned();
    problem(
        h.post(
            &format!("/api/v1/prepayment/ledgers/{ledger_id}/approve"),
            &hospital,
            &json!({}),
        )
        .await,
        403,
    )
    .await;
    let approved = json_ok(
        h.post(
            &format!("/api/v1/prepayment/ledgers/{ledger_id}/approve"),
            &fuxin,
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(approved["state"], "approved");
    let disbursed = json_ok(
        h.post(
            &format!("/api/v1/prepayment/ledgers/{ledger_id}/disbursement"),
            &fuxin,
            &json!({"payment_reference": "LN-PP-2024-0001", "disbursed_on": "2024-08-01"}),
        )
        .await,
    )
    .await;
    assert_eq!(disbursed["state"], "disbursed");
    assert_eq!(disbursed["balance_fen"], 2_160_000);

    // Progress at chosen clock times.
    publish_acceptance(&h, &p2_id, 20, "2024-10-14T10:00:00+08:00").await;
    h.env.clock.set(at("2024-10-14T12:00:00+08:00"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let row = loop {
        let row = progress_row(&h, &p2_id, &fuxin).await;
        if row["accepted_quantity"] == 20 || tokio::time::Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row["accepted_quantity"], 20);
    assert_eq!(row["accepted_amount_fen"], 1_440_000);
    assert_eq!(
        row["class"], "slow",
        "20% accepted against about 20.3% of the period elapsed"
    );

    publish_acceptance(&h, &p2_id, 85, "2025-03-03T10:00:00+08:00").await;
    h.env.clock.set(at("2025-03-03T12:00:00+08:00"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let row = loop {
        let row = progress_row(&h, &p2_id, &hospital).await;
        if row["accepted_quantity"] == 105 || tokio::time::Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row["class"], "over_volume", "{row}");
    assert_eq!(
        row["over_volume_quantity"], 5,
        "over-volume purchases count and stay valid"
    );
    let flags = json_ok(
        h.get(&format!("/api/v1/periods/{p2_id}/flags"), &fuxin)
            .await,
    )
    .await;
    assert!(
        flags["flags"].to_string().contains("over_volume"),
        "{flags}"
    );

    // The paper-signing deadline list turns at 2024-09-18 17:00 Beijing time.
    let deadline_path = format!("/api/v1/periods/{p2_id}/paper-deadline");
    h.env.clock.set(at("2024-09-18T16:59:59+08:00"));
    let before = json_ok(h.get(&deadline_path, &fuxin).await).await;
    assert_eq!(before["past_deadline"], false);
    assert_eq!(before["overdue"].as_array().map(Vec::len), Some(0));
    h.env.clock.set(at("2024-09-18T17:00:00+08:00"));
    let after = json_ok(h.get(&deadline_path, &fuxin).await).await;
    assert_eq!(after["past_deadline"], true);
    assert_eq!(
        after["overdue"].as_array().map(Vec::len),
        Some(1),
        "{after}"
    );
}
