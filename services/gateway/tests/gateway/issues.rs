//! The issue routes against the real issues service: the working-day
//! deadline preview across the 2026 Spring Festival, who may file, and the
//! whole loop through the edge — evidence upload into the object store and
//! download with its checksum, filing, response, escalation, feedback,
//! reopening, confirmation, false reports, the work list and the ledger.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vbp_contracts::Service;
use vbp_contracts::agreements::{
    OrgRecord, OrgRegistered, PeriodId, ProjectId, SupplyItem, SupplyListPublished,
};
use vbp_contracts::distribution::{RelationActivated, RelationId};
use vbp_kernel::{Actor, EventId, Money, NationalCode, OrgId, OrgKind};
use vbp_platform::testkit;

use crate::common::{Harness, json_ok, problem};

#[tokio::test]
async fn the_deadline_preview_counts_working_days_across_the_spring_festival() {
    let h = Harness::start().await;
    h.start_backend(Service::Issues, vbp_issues::run).await;
    let hospital = h.token(OrgKind::Hospital);
    let preview = json_ok(
        h.get(
            "/api/v1/issues/deadline-preview?dispatched_at=2026-02-12T10:00:00%2B08:00",
            &hospital,
        )
        .await,
    )
    .await;
    let due = |field: &str| {
        preview[field]
            .as_str()
            .and_then(|s| s.parse::<DateTime<Utc>>().ok())
            .unwrap_or_else(|| panic!("{field} in {preview}"))
    };
    // 2/13 Fri, 2/14 make-up Sat, 2/15–2/23 holidays, 2/24 Tue: the end of 2/24.
    assert_eq!(
        due("enterprise_due_at"),
        "2026-02-25T00:00:00+08:00"
            .parse::<DateTime<Utc>>()
            .unwrap()
    );
    assert_eq!(preview["enterprise_last_day"], "2026-02-24");

    let bad = problem(
        h.get(
            "/api/v1/issues/deadline-preview?dispatched_at=yesterday",
            &hospital,
        )
        .await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "dispatched_at");
    let manufacturer = h.token(OrgKind::Manufacturer);
    problem(
        h.post("/api/v1/issues", &manufacturer, &json!({})).await,
        403,
    )
    .await;
}

const P1: &str = "C15011121200000107660000016";
/// `%PDF-1.7\n%evidence of late delivery\n`, and its SHA-256.
const PDF: &[u8] = b"%PDF-1.7\n%evidence of late delivery\n";
const PDF_SHA256: &str = "a562a79a545d936a32e36bf540118416ce48d38754a07d458a84eb0a8e12510f";

fn who(kind: OrgKind, region: &str) -> Actor {
    Actor {
        sub: format!("{kind}-{region}-user"),
        org: OrgId::new(),
        org_kind: kind,
        region: region.parse().unwrap(),
        roles: Vec::new(),
    }
}

async fn register(h: &Harness, a: &Actor) {
    let event = OrgRegistered {
        record: OrgRecord {
            org: a.org,
            kind: a.org_kind,
            name: format!("{} {}", a.org_kind, a.region),
            region: a.region,
            nhsa_code: None,
            level: None,
            uscc: None,
            is_manufacturer: false,
            is_distributor: false,
            acts_for: vec![],
            active: true,
            revision: 1,
        },
        registered_at: "2024-07-01T00:00:00Z".parse().unwrap(),
    };
    testkit::publish_event(&h.platform, EventId::new(), &event).await;
}

async fn upload(
    h: &Harness,
    token: &str,
    query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    h.http
        .post(h.url(&format!("/api/v1/issues/evidence?{query}")))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn the_whole_loop_through_the_edge_with_evidence_in_the_object_store() {
    let h = Harness::start().await;
    h.start_backend(Service::Issues, |mut p| {
        let config = p
            .config
            .as_ref()
            .clone()
            .with_figment_overrides(json!({ "issues": { "evidence_max_bytes": 2048 } }))
            .unwrap();
        p.config = Arc::new(config);
        vbp_issues::run(p)
    })
    .await;
    let hospital = who(OrgKind::Hospital, "210921");
    let bureau = who(OrgKind::Bureau, "210900");
    let province = who(OrgKind::Bureau, "210000");
    let maker = who(OrgKind::Manufacturer, "330100");
    let other_maker = who(OrgKind::Manufacturer, "320100");
    let distributor = who(OrgKind::Distributor, "210900");
    for a in [
        &hospital,
        &bureau,
        &province,
        &maker,
        &other_maker,
        &distributor,
    ] {
        register(&h, a).await;
    }
    let code = NationalCode::parse(P1).unwrap();
    testkit::publish_event(
        &h.platform,
        EventId::new(),
        &SupplyListPublished {
            period: PeriodId::new(),
            project: ProjectId::new(),
            project_code: "LN-2024-01".into(),
            period_number: 2,
            starts_at: "2024-07-31T16:00:00Z".parse().unwrap(),
            ends_at: "2025-07-31T16:00:00Z".parse().unwrap(),
            revision: 1,
            items: vec![SupplyItem {
                national_code: code.clone(),
                generic_name: "冠脉导引导管".into(),
                spec_model: "6F".into(),
                unit: "根".into(),
                manufacturer: maker.org,
                manufacturer_name: "厂家".into(),
                winning_price_fen: Money::from_fen(50_000),
                product_group: "G1".into(),
            }],
            published_at: "2024-07-20T00:00:00Z".parse().unwrap(),
        },
    )
    .await;
    testkit::publish_event(
        &h.platform,
        EventId::new(),
        &RelationActivated {
            relation: RelationId::new(),
            period: PeriodId::new(),
            hospital: hospital.org,
            hospital_region: hospital.region,
            national_code: code,
            manufacturer: maker.org,
            distributor: distributor.org,
            valid_from: "2024-07-01T00:00:00Z".parse().unwrap(),
            valid_to: None,
            replaces: None,
            activated_at: "2024-07-01T00:00:00Z".parse().unwrap(),
        },
    )
    .await;
    let db = h.env.pool_in("issues").await;
    testkit::wait_count(&db, "SELECT count(*) FROM orgs", 6).await;
    testkit::wait_count(&db, "SELECT count(*) FROM supply_items", 1).await;
    testkit::wait_count(&db, "SELECT count(*) FROM relations", 1).await;
    let [th, tb, tp, tm, tm2, td] = [
        &hospital,
        &bureau,
        &province,
        &maker,
        &other_maker,
        &distributor,
    ]
    .map(|a| h.token_for(a));

    // Evidence: the raw file in, checked by the service.
    let ev = upload(
        &h,
        &th,
        "file_name=%E8%AF%B4%E6%98%8E.pdf&sealed=true",
        "application/pdf",
        PDF.to_vec(),
    )
    .await;
    assert_eq!(ev.status().as_u16(), 201);
    let ev: Value = ev.json().await.unwrap();
    assert_eq!(ev["sha256"], PDF_SHA256);
    assert_eq!(ev["size_bytes"], PDF.len());
    assert_eq!(ev["file_name"], "说明.pdf");
    assert_eq!(ev["sealed"], true);
    let evidence = ev["evidence"].as_str().unwrap().to_owned();
    let png_as_pdf = problem(
        upload(
            &h,
            &th,
            "file_name=a.pdf",
            "application/pdf",
            b"\x89PNG\r\n\x1a\n0000".to_vec(),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(png_as_pdf["field"], "content_type");
    let gif = problem(
        upload(&h, &th, "file_name=a.gif", "image/gif", b"GIF89a".to_vec()).await,
        422,
    )
    .await;
    assert_eq!(gif["field"], "content_type");
    let mut big = PDF.to_vec();
    big.resize(2049, b'x');
    let too_big = problem(
        upload(&h, &th, "file_name=big.pdf", "application/pdf", big).await,
        413,
    )
    .await;
    assert_eq!(too_big["field"], "file");
    let unnamed = problem(
        upload(&h, &th, "sealed=true", "application/pdf", PDF.to_vec()).await,
        422,
    )
    .await;
    assert_eq!(unnamed["field"], "file_name");
    problem(
        upload(&h, &tm, "file_name=a.pdf", "application/pdf", PDF.to_vec()).await,
        403,
    )
    .await;

    // Filing with it: dispatched to the maker, the distributor and the bureau.
    let filed = h
        .post(
            "/api/v1/issues",
            &th,
            &json!({
                "national_code": P1,
                "quantity": 10,
                "issue_type": "late_delivery",
                "occurred_at": "2024-08-01T08:00:00+08:00",
                "impact_scope": "心内科介入手术",
                "statement": "情况说明（已盖章）",
                "statement_sealed": true,
                "evidence": [evidence],
            }),
        )
        .await;
    assert_eq!(filed.status().as_u16(), 201);
    let filed: Value = filed.json().await.unwrap();
    let issue = filed["issue"].as_str().unwrap().to_owned();
    assert_eq!(filed["product_name"], "冠脉导引导管");
    assert_eq!(filed["recipients"].as_array().unwrap().len(), 3);
    assert_eq!(filed["evidence"][0]["sha256"], PDF_SHA256);

    // Download, scoped like the issue.
    let content = h
        .get(&format!("/api/v1/issues/evidence/{evidence}/content"), &td)
        .await;
    assert_eq!(content.status().as_u16(), 200);
    assert_eq!(content.headers()["content-type"], "application/pdf");
    assert_eq!(content.headers()["x-content-sha256"], PDF_SHA256);
    assert!(
        content.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("UTF-8''%E8%AF%B4%E6%98%8E.pdf")
    );
    assert_eq!(&content.bytes().await.unwrap()[..], PDF);
    problem(
        h.get(&format!("/api/v1/issues/evidence/{evidence}/content"), &tm2)
            .await,
        404,
    )
    .await;
    let meta = json_ok(
        h.get(&format!("/api/v1/issues/evidence/{evidence}"), &tb)
            .await,
    )
    .await;
    assert_eq!(meta["issue"], issue.as_str());

    // Work lists.
    let work = json_ok(h.get("/api/v1/issues/work-list", &tm).await).await;
    assert_eq!(work["items"][0]["stage"], "enterprise_response");
    let work = json_ok(h.get("/api/v1/issues/work-list", &tb).await).await;
    assert_eq!(work["items"][0]["stage"], "bureau_handling");

    // Response, escalation, feedback, reopening, feedback, confirmation.
    let path = |what: &str| format!("/api/v1/issues/{issue}/{what}");
    json_ok(
        h.post(
            &path("response"),
            &tm,
            &json!({
                "cause_kind": "logistics",
                "cause": "物流中断",
                "solution": "改用备用承运商",
                "completion_date": "2024-08-05",
                "written_statement": "承运商停运说明（盖章）",
            }),
        )
        .await,
    )
    .await;
    let esc = json_ok(
        h.post(&path("escalation"), &tb, &json!({ "reason": "跨省企业" }))
            .await,
    )
    .await;
    assert_eq!(esc["state"], "escalated");
    let work = json_ok(h.get("/api/v1/issues/work-list", &tp).await).await;
    assert_eq!(work["items"][0]["stage"], "province_handling");
    let fb = json!({ "feedback": "已约谈企业，恢复配送" });
    json_ok(h.post(&path("feedback"), &tp, &fb).await).await;
    let reopened = json_ok(
        h.post(&path("reopen"), &th, &json!({ "reason": "仍未到货" }))
            .await,
    )
    .await;
    assert_eq!(reopened["state"], "escalated");
    json_ok(h.post(&path("feedback"), &tp, &fb).await).await;
    let work = json_ok(h.get("/api/v1/issues/work-list", &th).await).await;
    assert_eq!(work["items"][0]["stage"], "hospital_confirmation");
    let done = json_ok(h.post(&path("confirmation"), &th, &json!({})).await).await;
    assert_eq!(done["state"], "resolved");
    let got = json_ok(h.get(&format!("/api/v1/issues/{issue}"), &tm).await).await;
    assert_eq!(got["state"], "resolved");
    let list = json_ok(h.get("/api/v1/issues?state=resolved", &tb).await).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let none = json_ok(h.get("/api/v1/issues", &tm2).await).await;
    assert!(none["items"].as_array().unwrap().is_empty());
    assert_eq!(none["total"], 0);
    // The bureau's list a page at a time: the total counts every page.
    let all = json_ok(h.get("/api/v1/issues", &tb).await).await;
    let first = json_ok(h.get("/api/v1/issues?page=1&page_size=1", &tb).await).await;
    assert_eq!(
        (first["page"].clone(), first["page_size"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    assert_eq!(first["total"], all["items"].as_array().unwrap().len());
    assert_eq!(first["items"][0], all["items"][0]);
    let p = problem(h.get("/api/v1/issues?page=0", &tb).await, 422).await;
    assert_eq!(p["field"], "page");

    // A second report, found false by the bureau.
    let second: Value = h
        .post(
            "/api/v1/issues",
            &th,
            &json!({
                "national_code": P1,
                "quantity": 1,
                "issue_type": "unreasonable_packaging",
                "occurred_at": "2024-08-01T08:00:00+08:00",
                "impact_scope": "库房",
                "statement": "包装破损",
            }),
        )
        .await
        .json()
        .await
        .unwrap();
    let second = second["issue"].as_str().unwrap();
    problem(
        h.post(
            &format!("/api/v1/issues/{second}/false-report"),
            &tm,
            &json!({ "reason": "x" }),
        )
        .await,
        403,
    )
    .await;
    let marked = json_ok(
        h.post(
            &format!("/api/v1/issues/{second}/false-report"),
            &tb,
            &json!({ "reason": "核查不属实" }),
        )
        .await,
    )
    .await;
    assert_eq!(marked["state"], "false_report");

    // The ledger and its quarterly export.
    let ledger = json_ok(h.get("/api/v1/issues/ledger?by=hospital", &tb).await).await;
    let row = &ledger["rows"][0];
    assert_eq!(row["filed"], 2);
    assert_eq!(row["resolved"], 1);
    assert_eq!(row["false_reports"], 1);
    assert_eq!(row["responded_on_time"], 1);
    let export = json_ok(
        h.get("/api/v1/issues/ledger/export?year=2024&quarter=3", &tp)
            .await,
    )
    .await;
    assert_eq!(export["file_name"], "issues_ledger_2024Q3.xlsx");
    // Maker and distributor, the hospital, its region.
    assert_eq!(export["rows"], 4);
    let bad = problem(
        h.get("/api/v1/issues/ledger/export?year=2024&quarter=0", &tp)
            .await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "quarter");

    // Every route is in the document.
    let doc = json_ok(h.get("/api/openapi.json", &th).await).await;
    for (path, method) in [
        ("/api/v1/issues/evidence", "post"),
        ("/api/v1/issues/evidence/{evidence}", "get"),
        ("/api/v1/issues/evidence/{evidence}/content", "get"),
        ("/api/v1/issues/{issue}/false-report", "post"),
        ("/api/v1/issues/work-list", "get"),
        ("/api/v1/issues/ledger/export", "get"),
    ] {
        assert!(
            doc["paths"][path][method]["summary"].is_string(),
            "{method} {path} undocumented"
        );
    }
}

/// A body without `Content-Length` is cut off while it streams: the answer
/// is 413 and nothing stays in the evidence store.
#[tokio::test]
async fn a_chunked_upload_over_the_limit_is_refused_and_not_kept() {
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let h = Harness::start().await;
    h.start_backend(Service::Issues, |mut p| {
        let config = p
            .config
            .as_ref()
            .clone()
            .with_figment_overrides(json!({ "issues": { "evidence_max_bytes": 2048 } }))
            .unwrap();
        p.config = Arc::new(config);
        vbp_issues::run(p)
    })
    .await;
    let token = h.token(OrgKind::Hospital);
    let addr = h.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/issues/evidence?file_name=a.pdf HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/pdf\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut body = PDF.to_vec();
    body.resize(1500, b'x');
    for _ in 0..2 {
        // Two chunks of 1500 bytes: 3000 in all, above 2048.
        let _ = tcp
            .write_all(format!("{:x}\r\n", body.len()).as_bytes())
            .await;
        let _ = tcp.write_all(&body).await;
        let _ = tcp.write_all(b"\r\n").await;
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"field\":\"file\""), "{answer}");

    let store = h
        .platform
        .js
        .get_object_store(vbp_contracts::issues::evidence_bucket(&h.platform.ns))
        .await
        .unwrap();
    let kept: Vec<_> = store.list().await.unwrap().collect().await;
    assert!(kept.is_empty(), "{} objects kept", kept.len());
}
