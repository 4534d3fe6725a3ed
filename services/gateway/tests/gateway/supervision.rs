//! The supervision routes against the real supervision service: who may
//! file and read credit records, the service's scoping of enterprises,
//! input refused by rule naming the field, and the reminders export.

use serde_json::json;
use vbp_contracts::Service;
use vbp_contracts::agreements::{OrgRecord, OrgRegistered};
use vbp_kernel::{EventId, OrgId, OrgKind};
use vbp_platform::testkit;

use crate::common::{Harness, actor, json_ok, problem, until};

#[tokio::test]
async fn credit_records_through_the_edge_are_filed_by_bureaus_and_seen_by_their_enterprise() {
    let h = Harness::start().await;
    h.start_backend(Service::Supervision, vbp_supervision::run)
        .await;
    let distributor = actor(OrgKind::Distributor);
    testkit::publish_event(
        &h.platform,
        EventId::new(),
        &OrgRegistered {
            record: OrgRecord {
                org: distributor.org,
                kind: OrgKind::Distributor,
                name: "辽宁示例医药物流有限公司".into(),
                region: "210100".parse().unwrap(),
                nhsa_code: None,
                level: None,
                uscc: None,
                is_manufacturer: false,
                is_distributor: true,
                acts_for: vec![],
                active: true,
                revision: 1,
            },
            registered_at: h.platform.clock.now(),
        },
    )
    .await;
    let bureau = h.token(OrgKind::Bureau);
    let body = json!({
        "enterprise": distributor.org,
        "kind": "refusing_remote_areas",
        "description": "拒绝向彰武县配送小批量订单",
    });
    let filed = until("the directory to know the distributor", async || {
        let r = h
            .post("/api/v1/supervision/credit-records", &bureau, &body)
            .await;
        (r.status().as_u16() == 201).then_some(())?;
        r.json().await.ok()
    })
    .await;
    assert_eq!(filed["state"], "open");
    assert_eq!(filed["level"], 0);
    assert_eq!(filed["region"], "210900");
    let record = filed["record"].as_str().unwrap().to_owned();

    // The enterprise sees its record; another one does not, not even by id.
    let own = h.token_for(&distributor);
    let list = json_ok(h.get("/api/v1/supervision/credit-records", &own).await).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let other = h.token(OrgKind::Distributor);
    let list = json_ok(h.get("/api/v1/supervision/credit-records", &other).await).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    problem(
        h.get(
            &format!("/api/v1/supervision/credit-records/{record}"),
            &other,
        )
        .await,
        404,
    )
    .await;

    // Hospitals may not file; the enterprise may not rectify its own.
    problem(
        h.post(
            "/api/v1/supervision/credit-records",
            &h.token(OrgKind::Hospital),
            &body,
        )
        .await,
        403,
    )
    .await;
    problem(
        h.post(
            &format!("/api/v1/supervision/credit-records/{record}/rectification"),
            &own,
            &json!({ "note": "已整改" }),
        )
        .await,
        403,
    )
    .await;

    // Bad input names the field and changes nothing.
    let bad = problem(
        h.post(
            "/api/v1/supervision/credit-records",
            &bureau,
            &json!({ "enterprise": distributor.org, "kind": "rude", "description": "x" }),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "kind");
    let bad = problem(
        h.post(
            &format!("/api/v1/supervision/credit-records/{record}/rectification"),
            &bureau,
            &json!({ "note": " " }),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "note");
    let bad = problem(
        h.post(
            "/api/v1/supervision/credit-records",
            &bureau,
            &json!({ "enterprise": OrgId::new(), "kind": "short_supply", "description": "断供" }),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "enterprise");
    let list = json_ok(h.get("/api/v1/supervision/credit-records", &bureau).await).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // The bureau closes it; closing again is a conflict.
    let closed = json_ok(
        h.post(
            &format!("/api/v1/supervision/credit-records/{record}/close"),
            &bureau,
            &json!({ "reason": "经核实为误报" }),
        )
        .await,
    )
    .await;
    assert_eq!(closed["state"], "closed");
    problem(
        h.post(
            &format!("/api/v1/supervision/credit-records/{record}/close"),
            &bureau,
            &json!({ "reason": "again" }),
        )
        .await,
        409,
    )
    .await;
}

#[tokio::test]
async fn monitoring_routes_check_terms_and_export_xlsx() {
    let h = Harness::start().await;
    h.start_backend(Service::Supervision, vbp_supervision::run)
        .await;
    let bureau = h.token(OrgKind::Bureau);
    let hospital = h.token(OrgKind::Hospital);
    let t = json_ok(h.get("/api/v1/supervision/thresholds", &hospital).await).await;
    assert_eq!(t["online_rate_min_bp"], 8000);
    let bad = problem(
        h.get("/api/v1/supervision/progress?week_of=someday", &bureau)
            .await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "week_of");
    let bad = problem(
        h.get("/api/v1/supervision/work-items?term=Q3", &hospital)
            .await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "term");
    // Generating needs a bureau; the month must have begun.
    problem(
        h.post(
            "/api/v1/supervision/work-items",
            &hospital,
            &json!({ "kind": "monthly_reminder", "year": 2024, "month": 7 }),
        )
        .await,
        403,
    )
    .await;
    let bad = problem(
        h.post(
            "/api/v1/supervision/work-items",
            &bureau,
            &json!({ "kind": "monthly_reminder", "year": 2024, "month": 12 }),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "month");
    let made = json_ok(
        h.post(
            "/api/v1/supervision/work-items",
            &bureau,
            &json!({ "kind": "quarterly_notice", "year": 2024, "quarter": 3 }),
        )
        .await,
    )
    .await;
    assert!(made["items"].as_array().unwrap().is_empty());
    let file = json_ok(
        h.get("/api/v1/supervision/work-items/export?term=2024Q3", &bureau)
            .await,
    )
    .await;
    assert_eq!(file["file_name"], "supervision_2024Q3.xlsx");
    assert_eq!(file["rows"], 0);
    let bytes =
        vbp_platform::sheets::decode_base64(file["content_base64"].as_str().unwrap()).unwrap();
    let sheet = vbp_platform::sheets::read_xlsx(&bytes).unwrap();
    assert_eq!(sheet[0][0], "期间 term");
    problem(
        h.get("/api/v1/supervision/findings", &h.token(OrgKind::Hospital))
            .await,
        403,
    )
    .await;
}
