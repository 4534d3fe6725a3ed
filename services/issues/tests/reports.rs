//! Evidence files through the object store (checksum, type and size
//! rejection, scoping), repeated-issue detection, false reports, the work
//! list and the ledger's averages and quarterly export, on real Postgres +
//! NATS with a manual clock.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use vbp_contracts::issues::*;
use vbp_kernel::Actor;
use vbp_platform::sheets;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn pdf(len: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n".to_vec();
    v.resize(len, b'x');
    v
}

fn png(len: usize) -> Vec<u8> {
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    v.resize(len, 7);
    v
}

#[tokio::test]
async fn evidence_round_trip_with_checksum_and_type_and_size_rejection() {
    let w = World::start_with(serde_json::json!({ "evidence_max_bytes": 4096 })).await;
    let cast = Cast::new();
    cast.setup(&w).await;
    w.set_clock("2026-01-20T10:00:00+08:00");

    let statement = pdf(3000);
    let e1 = w
        .upload(&cast.a, "情况说明.pdf", "application/pdf", &statement)
        .await
        .unwrap();
    assert_eq!(e1.sha256, sha256_hex(&statement));
    assert_eq!(e1.size_bytes, 3000);
    assert_eq!(e1.content_type, "application/pdf");
    assert!(e1.sealed);
    assert_eq!(e1.issue, None);
    assert_eq!(e1.uploaded_by, cast.a.org);
    let photo = png(4096);
    let e2 = w
        .upload(&cast.a, "现场照片.png", "image/png", &photo)
        .await
        .unwrap();

    // Declared PNG, content PDF: refused and removed from the store.
    let slot = w
        .ok::<EvidenceBegin>(
            &cast.a,
            &BeginEvidence {
                file_name: "x.png".into(),
                content_type: "image/png".into(),
            },
        )
        .await;
    assert_eq!(slot.max_bytes, 4096);
    let bucket = w.bucket().await;
    bucket
        .put(slot.object.as_str(), &mut &pdf(100)[..])
        .await
        .unwrap();
    let e = w
        .err::<EvidenceUpload>(
            &cast.a,
            &UploadEvidence {
                object: slot.object.clone(),
                file_name: "x.png".into(),
                content_type: "image/png".into(),
                sealed: false,
            },
        )
        .await;
    assert_eq!(e.body().field.as_deref(), Some("content_type"), "{e:?}");
    assert!(bucket.get(&slot.object).await.is_err());
    // One byte over the limit.
    let e = w
        .upload(&cast.a, "big.pdf", "application/pdf", &pdf(4097))
        .await
        .unwrap_err();
    assert_eq!(e.body().status, 413);
    assert_eq!(e.body().code, "evidence_too_large");
    assert_eq!(e.body().field.as_deref(), Some("file"));
    let e = w
        .upload(&cast.a, "a.gif", "image/gif", b"GIF89a....")
        .await
        .unwrap_err();
    assert_eq!(e.body().field.as_deref(), Some("content_type"));
    let e = w
        .upload(&cast.a, "a.pdf", "application/pdf", b"")
        .await
        .unwrap_err();
    assert_eq!(e.body().field.as_deref(), Some("file"), "{e:?}");
    let e = w
        .upload(&cast.a, "../a.pdf", "application/pdf", &pdf(10))
        .await
        .unwrap_err();
    assert_eq!(e.body().field.as_deref(), Some("file_name"));
    let e = w
        .upload(&cast.m1, "a.pdf", "application/pdf", &pdf(10))
        .await
        .unwrap_err();
    assert_eq!(e.body().status, 403);
    // Another hospital cannot register this hospital's slot.
    let slot = w
        .ok::<EvidenceBegin>(
            &cast.a,
            &BeginEvidence {
                file_name: "y.pdf".into(),
                content_type: "application/pdf".into(),
            },
        )
        .await;
    let e = w
        .err::<EvidenceUpload>(
            &cast.b,
            &UploadEvidence {
                object: slot.object,
                file_name: "y.pdf".into(),
                content_type: "application/pdf".into(),
                sealed: false,
            },
        )
        .await;
    assert_eq!(e.body().field.as_deref(), Some("object"));
    assert_eq!(w.count("SELECT count(*) FROM evidence").await, 2);

    // Filing with the evidence attaches it; the event carries the checksums.
    let mut f = cast.filing(P1, IssueType::LateDelivery, "2026-01-15T10:00:00+08:00");
    f.evidence = vec![e1.evidence, e2.evidence];
    let v = w.ok::<IssueFile>(&cast.a, &f).await;
    assert!(v.statement_sealed);
    assert_eq!(v.evidence.len(), 2);
    assert!(v.evidence.iter().all(|e| e.issue == Some(v.issue)));
    let ev = w
        .published("issues.issue.filed", |x| x["issue"] == v.issue.to_string())
        .await;
    assert_eq!(
        ev["evidence_sha256"],
        serde_json::json!([sha256_hex(&statement), sha256_hex(&photo)])
    );
    // Attached once only; another hospital's files are not its to attach.
    let e = w.err::<IssueFile>(&cast.a, &f).await;
    assert_eq!(e.body().field.as_deref(), Some("evidence"));
    let e3 = w
        .upload(&cast.a, "补充.pdf", "application/pdf", &pdf(20))
        .await
        .unwrap();
    let mut g = cast.filing(P2, IssueType::UnsuitableSpec, "2026-01-15T10:00:00+08:00");
    g.evidence = vec![e3.evidence];
    let e = w.err::<IssueFile>(&cast.b, &g).await;
    assert_eq!(e.body().field.as_deref(), Some("evidence"));
    assert_eq!(w.count("SELECT count(*) FROM issues").await, 1);

    // Scoped like the issue; the stored bytes hash to the recorded sum.
    for who in [&cast.a, &cast.m1, &cast.d2, &cast.nanchang, &cast.province] {
        let got = w
            .ok::<EvidenceGet>(
                who,
                &GetEvidence {
                    evidence: e1.evidence,
                },
            )
            .await;
        assert_eq!(got.sha256, e1.sha256);
    }
    for who in [&cast.m2, &cast.d1, &cast.jiujiang, &cast.b] {
        let e = w
            .err::<EvidenceGet>(
                who,
                &GetEvidence {
                    evidence: e1.evidence,
                },
            )
            .await;
        assert_eq!(e.body().status, 404);
    }
    let mut obj = bucket.get(&e1.object).await.unwrap();
    let mut back = Vec::new();
    obj.read_to_end(&mut back).await.unwrap();
    assert_eq!(sha256_hex(&back), e1.sha256);
}

#[tokio::test]
async fn repeated_issues_raise_one_event_per_run_and_false_reports_count_for_the_hospital() {
    let w = World::start_with(serde_json::json!({
        "repeat_threshold": 2,
        "repeat_window_days": 30,
    }))
    .await;
    let cast = Cast::new();
    cast.setup(&w).await;
    w.set_clock("2026-03-02T10:00:00+08:00");
    let late = |occurred: &str| cast.filing(P1, IssueType::LateDelivery, occurred);
    // M1 + D1, then M1 + D2: M1 reaches two.
    let i1 = w
        .ok::<IssueFile>(&cast.a, &late("2026-01-05T10:00:00+08:00"))
        .await;
    assert!(w.events("issues.issue.repeated").await.is_empty());
    let i2 = w
        .ok::<IssueFile>(&cast.a, &late("2026-01-15T10:00:00+08:00"))
        .await;
    let ev = w
        .published("issues.issue.repeated", |v| {
            v["enterprise"] == cast.m1.org.to_string()
        })
        .await;
    assert_eq!(ev["count"], 2);
    assert_eq!(ev["issue_type"], "late_delivery");
    assert_eq!(ev["window_days"], 30);
    assert_eq!(
        ev["issues"],
        serde_json::json!([i1.issue.to_string(), i2.issue.to_string()])
    );
    // A third: M1 already reported in this window; D2 reaches two.
    let i3 = w
        .ok::<IssueFile>(&cast.a, &late("2026-01-20T10:00:00+08:00"))
        .await;
    let events = w.events("issues.issue.repeated").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["enterprise"], cast.d2.org.to_string());
    // Another type does not count.
    w.ok::<IssueFile>(
        &cast.a,
        &cast.filing(
            P1,
            IssueType::UnreasonablePackaging,
            "2026-01-20T10:00:00+08:00",
        ),
    )
    .await;
    assert_eq!(w.events("issues.issue.repeated").await.len(), 2);

    // False report: only the handling bureau, only before feedback.
    let mark = MarkFalseReport {
        issue: i3.issue,
        reason: "核查无此情况".into(),
    };
    for who in [&cast.province, &cast.m1, &cast.a] {
        let e = w.err::<IssueMarkFalse>(who, &mark).await;
        assert_eq!(e.body().status, 403, "{e:?}");
    }
    let e = w
        .err::<IssueMarkFalse>(
            &cast.nanchang,
            &MarkFalseReport {
                issue: i3.issue,
                reason: " ".into(),
            },
        )
        .await;
    assert_eq!(e.body().field.as_deref(), Some("reason"));
    let v = w.ok::<IssueMarkFalse>(&cast.nanchang, &mark).await;
    assert_eq!(v.state, IssueState::FalseReport);
    assert!(v.audit.iter().any(|a| a.action == "marked_false"));
    let ev = w.published("issues.issue.false_report", |_| true).await;
    assert_eq!(ev["hospital"], cast.a.org.to_string());
    assert_eq!(ev["false_reports"], 1);
    let e = w.err::<IssueMarkFalse>(&cast.nanchang, &mark).await;
    assert_eq!(e.body().code, "invalid_transition");
    let e = w
        .err::<IssueRespond>(
            &cast.m1,
            &RespondIssue {
                issue: i3.issue,
                cause_kind: CauseKind::Other,
                cause: "x".into(),
                solution: "y".into(),
                completion_date: "2026-03-10".parse().unwrap(),
                written_statement: None,
            },
        )
        .await;
    assert_eq!(e.body().code, "invalid_transition");
    let by_hospital = w
        .ok::<LedgerOp>(
            &cast.nanchang,
            &LedgerQuery {
                by: LedgerGrouping::Hospital,
                from: None,
                to: None,
            },
        )
        .await;
    assert_eq!(by_hospital.rows.len(), 1);
    assert_eq!(by_hospital.rows[0].false_reports, 1);
    assert_eq!(by_hospital.rows[0].filed, 4);

    // Its clocks stopped: the others go overdue, it does not.
    w.set_clock("2026-03-06T00:00:00+08:00");
    for i in [i1.issue, i2.issue] {
        w.published("issues.issue.overdue", |v| v["issue"] == i.to_string())
            .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert!(
        w.events("issues.issue.overdue")
            .await
            .iter()
            .all(|v| v["issue"] != i3.issue.to_string())
    );
}

fn due_list(list: &WorkList) -> Vec<(IssueId, IssueStage, String)> {
    list.items
        .iter()
        .map(|i| (i.issue, i.stage, i.due_at.to_rfc3339()))
        .collect()
}

#[tokio::test]
async fn the_work_list_shows_what_each_actor_owes_soonest_first() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.setup(&w).await;
    let work = |who: &Actor| {
        let who = who.clone();
        let w = &w;
        async move { w.ok::<WorkListOp>(&who, &WorkListQuery {}).await }
    };
    w.set_clock("2026-03-02T10:00:00+08:00"); // Monday
    let i1 = w
        .ok::<IssueFile>(
            &cast.a,
            &cast.filing(P1, IssueType::LateDelivery, "2026-03-01T10:00:00+08:00"),
        )
        .await;
    w.set_clock("2026-03-03T10:00:00+08:00");
    let i2 = w
        .ok::<IssueFile>(
            &cast.b,
            &cast.filing(P2, IssueType::UnsuitableSpec, "2026-03-01T10:00:00+08:00"),
        )
        .await;
    let ent = IssueStage::EnterpriseResponse;
    let bur = IssueStage::BureauHandling;
    assert_eq!(
        due_list(&work(&cast.m1).await),
        vec![(i1.issue, ent, "2026-03-05T16:00:00+00:00".into())]
    );
    assert_eq!(due_list(&work(&cast.d2).await).len(), 1);
    assert!(work(&cast.d1).await.items.is_empty());
    assert_eq!(
        due_list(&work(&cast.nanchang).await),
        vec![(i1.issue, bur, "2026-03-11T16:00:00+00:00".into())]
    );
    assert_eq!(
        due_list(&work(&cast.nanchang_county).await),
        vec![(i2.issue, bur, "2026-03-12T16:00:00+00:00".into())]
    );
    assert!(work(&cast.province).await.items.is_empty());
    assert!(work(&cast.a).await.items.is_empty());
    let all = work(&operator()).await;
    assert_eq!(
        due_list(&all),
        vec![
            (i1.issue, ent, "2026-03-05T16:00:00+00:00".into()),
            (i2.issue, ent, "2026-03-06T16:00:00+00:00".into()),
            (i1.issue, bur, "2026-03-11T16:00:00+00:00".into()),
            (i2.issue, bur, "2026-03-12T16:00:00+00:00".into()),
        ]
    );
    assert!(all.items.iter().all(|i| !i.overdue));

    // Responded and escalated: the province owes it; then the hospital.
    w.ok::<IssueRespond>(
        &cast.m1,
        &RespondIssue {
            issue: i1.issue,
            cause_kind: CauseKind::Other,
            cause: "排产".into(),
            solution: "加急配送".into(),
            completion_date: "2026-03-10".parse().unwrap(),
            written_statement: None,
        },
    )
    .await;
    assert!(work(&cast.m1).await.items.is_empty());
    w.ok::<IssueEscalate>(
        &cast.nanchang,
        &EscalateIssue {
            issue: i1.issue,
            reason: "跨省企业".into(),
        },
    )
    .await;
    assert!(work(&cast.nanchang).await.items.is_empty());
    let p = work(&cast.province).await;
    assert_eq!(p.items.len(), 1);
    assert_eq!(p.items[0].stage, IssueStage::ProvinceHandling);
    assert_eq!(p.items[0].state, IssueState::Escalated);
    w.ok::<IssueFeedback>(
        &cast.province,
        &GiveFeedback {
            issue: i1.issue,
            feedback: "已协调".into(),
        },
    )
    .await;
    assert_eq!(
        due_list(&work(&cast.a).await),
        vec![(
            i1.issue,
            IssueStage::HospitalConfirmation,
            "2026-04-02T02:00:00+00:00".into()
        )]
    );
    assert!(work(&cast.b).await.items.is_empty());
    // Past due shows as overdue.
    w.set_clock("2026-03-07T00:00:00+08:00");
    let m2 = work(&cast.m2).await;
    assert_eq!(m2.items.len(), 1);
    assert!(m2.items[0].overdue);
}

#[tokio::test]
async fn the_ledger_averages_times_and_exports_the_quarter_as_xlsx() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.setup(&w).await;
    w.set_clock("2026-03-02T10:00:00+08:00");
    let i1 = w
        .ok::<IssueFile>(
            &cast.a,
            &cast.filing(P1, IssueType::LateDelivery, "2026-03-01T10:00:00+08:00"),
        )
        .await;
    w.ok::<IssueFile>(
        &cast.b,
        &cast.filing(P2, IssueType::UnsuitableSpec, "2026-03-01T10:00:00+08:00"),
    )
    .await;
    w.set_clock("2026-03-02T12:00:00+08:00");
    w.ok::<IssueRespond>(
        &cast.m1,
        &RespondIssue {
            issue: i1.issue,
            cause_kind: CauseKind::Other,
            cause: "排产".into(),
            solution: "加急配送".into(),
            completion_date: "2026-03-10".parse().unwrap(),
            written_statement: None,
        },
    )
    .await;
    w.set_clock("2026-03-03T10:00:00+08:00");
    w.ok::<IssueFeedback>(
        &cast.nanchang,
        &GiveFeedback {
            issue: i1.issue,
            feedback: "已协调".into(),
        },
    )
    .await;
    w.set_clock("2026-03-04T10:00:00+08:00");
    w.ok::<IssueConfirm>(&cast.a, &ConfirmIssue { issue: i1.issue })
        .await;

    let q = |by| LedgerQuery {
        by,
        from: None,
        to: None,
    };
    let rep = w
        .ok::<LedgerOp>(&cast.province, &q(LedgerGrouping::Enterprise))
        .await;
    let keys: Vec<&str> = rep.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys.len(), 3, "{keys:?}"); // m1, d2 (delivery), m2
    let m1 = rep
        .rows
        .iter()
        .find(|r| r.key == cast.m1.org.to_string())
        .unwrap();
    assert_eq!(m1.name, format!("{} {}", cast.m1.org_kind, cast.m1.region));
    assert_eq!((m1.filed, m1.responded, m1.resolved), (1, 1, 1));
    assert_eq!(m1.responded_on_time, 1);
    assert_eq!(m1.resolution_rate_bp, 10_000);
    assert_eq!(m1.avg_response_minutes, Some(120));
    assert_eq!(m1.avg_feedback_minutes, Some(24 * 60));
    assert_eq!(m1.avg_resolution_minutes, Some(48 * 60));
    let m2 = rep
        .rows
        .iter()
        .find(|r| r.key == cast.m2.org.to_string())
        .unwrap();
    assert_eq!(m2.avg_response_minutes, None);
    // A manufacturer sees only its own row.
    let own = w
        .ok::<LedgerOp>(&cast.m1, &q(LedgerGrouping::Enterprise))
        .await;
    assert_eq!(own.rows.len(), 1);
    let regions = w
        .ok::<LedgerOp>(&cast.province, &q(LedgerGrouping::Region))
        .await;
    assert_eq!(
        regions
            .rows
            .iter()
            .map(|r| r.key.as_str())
            .collect::<Vec<_>>(),
        vec!["360102", "360121"]
    );
    // Filed-at window.
    let later = w
        .ok::<LedgerOp>(
            &cast.province,
            &LedgerQuery {
                by: LedgerGrouping::Hospital,
                from: Some(at("2026-04-01T00:00:00+08:00")),
                to: None,
            },
        )
        .await;
    assert!(later.rows.is_empty());

    let file = w
        .ok::<LedgerExportOp>(
            &cast.province,
            &LedgerExport {
                year: 2026,
                quarter: 1,
            },
        )
        .await;
    assert_eq!(file.file_name, "issues_ledger_2026Q1.xlsx");
    // 3 enterprise + 2 hospital + 2 region rows.
    assert_eq!(file.rows, 7);
    let table = sheets::read_xlsx(&sheets::decode_base64(&file.content_base64).unwrap()).unwrap();
    assert_eq!(table.len(), 8);
    let m1_row = table
        .iter()
        .find(|r| r[1] == cast.m1.org.to_string())
        .unwrap();
    assert_eq!(m1_row[3], "1");
    assert_eq!(m1_row[13], "120");
    let empty = w
        .ok::<LedgerExportOp>(
            &cast.province,
            &LedgerExport {
                year: 2026,
                quarter: 2,
            },
        )
        .await;
    assert_eq!(empty.rows, 0);
    let e = w
        .err::<LedgerExportOp>(
            &cast.province,
            &LedgerExport {
                year: 2026,
                quarter: 5,
            },
        )
        .await;
    assert_eq!(e.body().field.as_deref(), Some("quarter"));
    let scoped = w
        .ok::<LedgerExportOp>(
            &cast.m2,
            &LedgerExport {
                year: 2026,
                quarter: 1,
            },
        )
        .await;
    // m2's own enterprise row, the county hospital and its region.
    assert_eq!(scoped.rows, 3);
}
