//! The issues service end to end on real Postgres + NATS with a manual
//! clock: projections → filing and auto-dispatch; working-day clocks through
//! the 2026 Spring Festival; escalation, feedback, reopen, confirmation and
//! the 30-day default; deadline preview; ledger and scoping.

mod common;

use std::time::Duration;

use common::*;
use vbp_contracts::issues::*;
use vbp_kernel::{Actor, OrgId, OrgKind};

#[tokio::test]
async fn filing_dispatches_to_the_manufacturer_the_distributor_at_the_occurrence_and_the_bureau() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.setup(&w).await;
    w.set_clock("2026-01-20T10:00:00+08:00");

    // Before the relation change: D1; after it: D2.
    let early = w
        .ok::<IssueFile>(
            &cast.a,
            &cast.filing(P1, IssueType::LateDelivery, "2026-01-05T10:00:00+08:00"),
        )
        .await;
    assert_eq!(early.product_name, "中心静脉导管");
    assert_eq!(early.spec, "7Fr 单腔");
    assert_eq!(early.state, IssueState::Dispatched);
    assert_eq!(
        recipients(&early, RecipientRole::Manufacturer),
        vec![cast.m1.org]
    );
    assert_eq!(
        recipients(&early, RecipientRole::Distributor),
        vec![cast.d1.org]
    );
    assert_eq!(
        recipients(&early, RecipientRole::Bureau),
        vec![cast.nanchang.org]
    );
    assert_eq!(early.bureau_region.to_string(), "360100");
    let late = w
        .ok::<IssueFile>(
            &cast.a,
            &cast.filing(
                P1,
                IssueType::InsufficientSupply,
                "2026-01-15T10:00:00+08:00",
            ),
        )
        .await;
    assert_eq!(
        recipients(&late, RecipientRole::Distributor),
        vec![cast.d2.org]
    );
    // Not a delivery type: no distributor.
    let pack = w
        .ok::<IssueFile>(
            &cast.a,
            &cast.filing(
                P1,
                IssueType::UnreasonablePackaging,
                "2026-01-15T10:00:00+08:00",
            ),
        )
        .await;
    assert!(recipients(&pack, RecipientRole::Distributor).is_empty());
    // County hospital: the county bureau.
    let county = w
        .ok::<IssueFile>(
            &cast.b,
            &cast.filing(P2, IssueType::UnsuitableSpec, "2026-01-15T10:00:00+08:00"),
        )
        .await;
    assert_eq!(
        recipients(&county, RecipientRole::Bureau),
        vec![cast.nanchang_county.org]
    );
    assert_eq!(
        recipients(&county, RecipientRole::Manufacturer),
        vec![cast.m2.org]
    );

    let ev = w
        .published("issues.issue.dispatched", |v| {
            v["issue"] == early.issue.to_string()
        })
        .await;
    assert_eq!(ev["recipients"].as_array().unwrap().len(), 3);
    assert_eq!(ev["bureau_region"], "360100");
    w.published("issues.issue.filed", |v| {
        v["issue"] == early.issue.to_string()
    })
    .await;

    // Errors name the field and change nothing.
    let before = w.count("SELECT count(*) FROM issues").await;
    let mut f = cast.filing(P1, IssueType::LateDelivery, "2026-01-15T10:00:00+08:00");
    f.evidence = vec![EvidenceId::new()];
    let e = w.err::<IssueFile>(&cast.a, &f).await;
    assert_eq!(e.body().field.as_deref(), Some("evidence"), "{e:?}");
    let e = w
        .err::<IssueFile>(
            &cast.a,
            &cast.filing(
                "C15011121200000107660000099",
                IssueType::LateDelivery,
                "2026-01-15T10:00:00+08:00",
            ),
        )
        .await;
    assert_eq!(e.body().field.as_deref(), Some("national_code"), "{e:?}");
    let mut f = cast.filing(P1, IssueType::LateDelivery, "2026-01-15T10:00:00+08:00");
    f.quantity = 0;
    let e = w.err::<IssueFile>(&cast.a, &f).await;
    assert_eq!(e.body().field.as_deref(), Some("quantity"));
    let e = w
        .err::<IssueFile>(
            &cast.m1,
            &cast.filing(P1, IssueType::LateDelivery, "2026-01-15T10:00:00+08:00"),
        )
        .await;
    assert_eq!(e.body().status, 403);
    assert_eq!(w.count("SELECT count(*) FROM issues").await, before);

    // Scoping.
    let list = |who: &Actor| {
        let w = &w;
        let who = who.clone();
        async move {
            w.ok::<IssueListOp>(&who, &all_issues())
                .await
                .items
                .into_iter()
                .map(|i| i.issue)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(&cast.m1).await.len(), 3);
    assert_eq!(list(&cast.m2).await, vec![county.issue]);
    assert_eq!(list(&cast.d1).await, vec![early.issue]);
    assert_eq!(list(&cast.nanchang).await.len(), 4);
    assert_eq!(list(&cast.nanchang_county).await, vec![county.issue]);
    assert!(list(&cast.jiujiang).await.is_empty());
    assert_eq!(list(&cast.b).await, vec![county.issue]);
    assert_eq!(list(&cast.province).await.len(), 4);
    assert_eq!(list(&operator()).await.len(), 4);
    assert!(
        list(&actor(OrgKind::Integrator, OrgId::new(), "360000"))
            .await
            .is_empty()
    );
    // The province's four, a page of three then a page of one, each once.
    let page = |n| ListIssues {
        page: n,
        page_size: 3,
        ..all_issues()
    };
    let first = w.ok::<IssueListOp>(&cast.province, &page(1)).await;
    let second = w.ok::<IssueListOp>(&cast.province, &page(2)).await;
    assert_eq!((first.total, second.total), (4, 4));
    assert_eq!((first.items.len(), second.items.len()), (3, 1));
    let mut walked: Vec<_> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|i| i.issue)
        .collect();
    walked.sort();
    walked.dedup();
    assert_eq!(walked.len(), 4);
    let e = w
        .err::<IssueListOp>(
            &cast.province,
            &ListIssues {
                page_size: 501,
                ..all_issues()
            },
        )
        .await;
    assert_eq!(
        (e.body().status, e.body().field.as_deref()),
        (422, Some("page_size"))
    );
    let e = w
        .err::<IssueGet>(&cast.m2, &GetIssue { issue: early.issue })
        .await;
    assert_eq!(e.body().status, 404);
    let e = w
        .err::<IssueGet>(&cast.jiujiang, &GetIssue { issue: early.issue })
        .await;
    assert_eq!(e.body().status, 404);

    // Ledger, scoped.
    let rep = w
        .ok::<LedgerOp>(
            &cast.province,
            &LedgerQuery {
                by: LedgerGrouping::Enterprise,
                from: None,
                to: None,
            },
        )
        .await;
    let m1 = rep
        .rows
        .iter()
        .find(|r| r.key == cast.m1.org.to_string())
        .unwrap();
    assert_eq!(m1.filed, 3);
    assert_eq!(m1.response_rate_bp, 0);
    let rep = w
        .ok::<LedgerOp>(
            &cast.m2,
            &LedgerQuery {
                by: LedgerGrouping::Enterprise,
                from: None,
                to: None,
            },
        )
        .await;
    assert_eq!(rep.rows.len(), 1);
    assert_eq!(rep.rows[0].key, cast.m2.org.to_string());
    let rep = w
        .ok::<LedgerOp>(
            &cast.jiujiang,
            &LedgerQuery {
                by: LedgerGrouping::Region,
                from: None,
                to: None,
            },
        )
        .await;
    assert!(rep.rows.is_empty());
}

#[tokio::test]
async fn the_spring_festival_example_enterprise_due_end_of_feb_24_overdue_not_before() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.setup(&w).await;
    w.set_clock("2026-02-12T10:00:00+08:00");
    let v = w
        .ok::<IssueFile>(
            &cast.a,
            &cast.filing(P1, IssueType::LateDelivery, "2026-02-11T10:00:00+08:00"),
        )
        .await;
    assert_eq!(v.enterprise_due_at, at("2026-02-25T00:00:00+08:00"));

    w.set_clock("2026-02-24T23:59:59+08:00");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(w.events("issues.issue.overdue").await.is_empty());
    w.set_clock("2026-02-25T00:00:00+08:00");
    let ev = w
        .published("issues.issue.overdue", |v| {
            v["stage"] == "enterprise_response"
        })
        .await;
    assert_eq!(ev["party"], cast.m1.org.to_string());
    let got = w
        .ok::<IssueGet>(&cast.a, &GetIssue { issue: v.issue })
        .await;
    assert_eq!(got.overdue, vec![IssueStage::EnterpriseResponse]);

    // A late response: objective cause needs a written statement.
    w.set_clock("2026-02-25T09:00:00+08:00");
    let mut r = RespondIssue {
        issue: v.issue,
        cause_kind: CauseKind::Logistics,
        cause: "春节物流停运".into(),
        solution: "加急补货".into(),
        completion_date: "2026-02-27".parse().unwrap(),
        written_statement: None,
    };
    let e = w.err::<IssueRespond>(&cast.m1, &r).await;
    assert_eq!(
        e.body().field.as_deref(),
        Some("written_statement"),
        "{e:?}"
    );
    r.written_statement = Some("物流公司停运说明（盖章）".into());
    let e = w.err::<IssueRespond>(&cast.m2, &r).await;
    assert_eq!(e.body().status, 404);
    let done = w.ok::<IssueRespond>(&cast.m1, &r).await;
    assert_eq!(done.state, IssueState::Responded);
    assert_eq!(done.response_on_time, Some(false));
    let e = w.err::<IssueRespond>(&cast.d2, &r).await;
    assert_eq!(e.body().code, "invalid_transition", "{e:?}");
    let ev = w.published("issues.issue.responded", |_| true).await;
    assert_eq!(ev["on_time"], false);
    let rep = w
        .ok::<LedgerOp>(
            &cast.province,
            &LedgerQuery {
                by: LedgerGrouping::Hospital,
                from: None,
                to: None,
            },
        )
        .await;
    assert_eq!(rep.rows[0].overdue_enterprise, 1);
    assert_eq!(rep.rows[0].response_rate_bp, 10_000);
}

#[tokio::test]
async fn escalation_province_deadline_reopen_confirm_and_thirty_day_default() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.setup(&w).await;
    w.set_clock("2026-03-02T10:00:00+08:00"); // Monday
    let v = w
        .ok::<IssueFile>(
            &cast.a,
            &cast.filing(
                P1,
                IssueType::SelectiveDelivery,
                "2026-03-01T10:00:00+08:00",
            ),
        )
        .await;
    // Bureau: 7 working days → end of Wed 2026-03-11.
    assert_eq!(v.handling_due_at, Some(at("2026-03-12T00:00:00+08:00")));
    // Only the territorial bureau escalates.
    let esc = EscalateIssue {
        issue: v.issue,
        reason: "跨省企业".into(),
    };
    let e = w.err::<IssueEscalate>(&cast.province, &esc).await;
    assert_eq!(e.body().status, 403);
    w.set_clock("2026-03-03T10:00:00+08:00");
    let x = w.ok::<IssueEscalate>(&cast.nanchang, &esc).await;
    assert_eq!(x.state, IssueState::Escalated);
    // Province: 10 working days from 03-03 → end of Tue 2026-03-17.
    assert_eq!(x.handling_due_at, Some(at("2026-03-18T00:00:00+08:00")));
    let ev = w.published("issues.issue.escalated", |_| true).await;
    assert_eq!(ev["automatic"], false);
    assert_eq!(ev["to_region"], "360000");
    // Confirming before feedback is refused.
    let e = w
        .err::<IssueConfirm>(&cast.a, &ConfirmIssue { issue: v.issue })
        .await;
    assert_eq!(e.body().code, "invalid_transition");
    // The city bureau no longer handles it.
    let fb = GiveFeedback {
        issue: v.issue,
        feedback: "已协调企业配送".into(),
    };
    let e = w.err::<IssueFeedback>(&cast.nanchang, &fb).await;
    assert_eq!(e.body().status, 403);
    // Province overdue flagged at its deadline.
    w.set_clock("2026-03-18T00:00:00+08:00");
    let ev = w
        .published("issues.issue.overdue", |v| {
            v["stage"] == "province_handling"
        })
        .await;
    assert_eq!(ev["party"], cast.province.org.to_string());
    w.set_clock("2026-03-18T09:00:00+08:00");
    let f = w.ok::<IssueFeedback>(&cast.province, &fb).await;
    assert_eq!(f.state, IssueState::FeedbackGiven);
    assert_eq!(f.auto_resolve_at, Some(at("2026-04-17T09:00:00+08:00")));
    // Reopen: back to the province with a fresh clock.
    w.set_clock("2026-03-19T09:00:00+08:00");
    let r = w
        .ok::<IssueReopen>(
            &cast.a,
            &ReopenIssue {
                issue: v.issue,
                reason: "仍未配送".into(),
            },
        )
        .await;
    assert_eq!(r.state, IssueState::Escalated);
    w.published("issues.issue.reopened", |_| true).await;
    w.set_clock("2026-03-20T09:00:00+08:00");
    w.ok::<IssueFeedback>(&cast.province, &fb).await;
    let c = w
        .ok::<IssueConfirm>(&cast.a, &ConfirmIssue { issue: v.issue })
        .await;
    assert_eq!(c.state, IssueState::Resolved);
    w.published("issues.issue.confirmed", |_| true).await;
    assert!(c.audit.iter().any(|a| a.action == "reopened"));

    // The 30-day default: exactly 30 days after feedback, not before.
    let v2 = w
        .ok::<IssueFile>(
            &cast.b,
            &cast.filing(
                P2,
                IssueType::UnclearBatchPrinting,
                "2026-03-19T10:00:00+08:00",
            ),
        )
        .await;
    w.set_clock("2026-03-23T10:00:00+08:00");
    let f = w
        .ok::<IssueFeedback>(
            &cast.nanchang_county,
            &GiveFeedback {
                issue: v2.issue,
                feedback: "已更换批号印刷".into(),
            },
        )
        .await;
    assert_eq!(f.auto_resolve_at, Some(at("2026-04-22T10:00:00+08:00")));
    w.set_clock("2026-04-22T09:59:59+08:00");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(w.events("issues.issue.auto_resolved").await.is_empty());
    w.set_clock("2026-04-22T10:00:00+08:00");
    let ev = w.published("issues.issue.auto_resolved", |_| true).await;
    assert_eq!(ev["issue"], v2.issue.to_string());
    let got = w
        .ok::<IssueGet>(&cast.b, &GetIssue { issue: v2.issue })
        .await;
    assert_eq!(got.state, IssueState::Resolved);
    let e = w
        .err::<IssueReopen>(
            &cast.b,
            &ReopenIssue {
                issue: v2.issue,
                reason: "x".into(),
            },
        )
        .await;
    assert_eq!(e.body().code, "invalid_transition");
}

#[tokio::test]
async fn an_overdue_bureau_escalates_automatically() {
    let w = World::start().await;
    let cast = Cast::new();
    cast.setup(&w).await;
    w.set_clock("2026-03-02T10:00:00+08:00");
    let v = w
        .ok::<IssueFile>(
            &cast.a,
            &cast.filing(P1, IssueType::NoResponse, "2026-03-01T10:00:00+08:00"),
        )
        .await;
    w.set_clock("2026-03-12T00:00:00+08:00");
    let ev = w
        .published("issues.issue.escalated", |v| v["automatic"] == true)
        .await;
    // 10 working days after Thu 03-12 (13, 16–20, 23–26) → end of Thu 03-26.
    assert_eq!(ev["due_at"], "2026-03-26T16:00:00Z");
    let o = w
        .published("issues.issue.overdue", |v| v["stage"] == "bureau_handling")
        .await;
    assert_eq!(o["party"], cast.nanchang.org.to_string());
    let got = w
        .ok::<IssueGet>(&cast.province, &GetIssue { issue: v.issue })
        .await;
    assert_eq!(got.state, IssueState::Escalated);
}

#[tokio::test]
async fn deadline_preview_across_the_spring_festival_and_uncovered_years() {
    let w = World::start().await;
    let cast = Cast::new();
    let p = w
        .ok::<DeadlinePreviewOp>(
            &cast.a,
            &PreviewDeadlines {
                dispatched_at: at("2026-02-12T10:00:00+08:00"),
            },
        )
        .await;
    assert_eq!(p.enterprise_due_at, at("2026-02-25T00:00:00+08:00"));
    assert_eq!(p.enterprise_last_day.to_string(), "2026-02-24");
    // 2/13, 2/14 (make-up), 2/24, 2/25, 2/26, 2/27, 2/28 (make-up).
    assert_eq!(p.bureau_last_day.to_string(), "2026-02-28");
    // From 03-01 (Sunday): 03-02 … 03-13.
    assert_eq!(p.province_last_day.to_string(), "2026-03-13");
    let e = w
        .err::<DeadlinePreviewOp>(
            &cast.a,
            &PreviewDeadlines {
                dispatched_at: at("2031-02-12T10:00:00+08:00"),
            },
        )
        .await;
    assert_eq!(e.body().code, "calendar_year_not_covered", "{e:?}");
}

/// Every issue the caller may see, on one page.
fn all_issues() -> ListIssues {
    ListIssues {
        state: None,
        page: 1,
        page_size: 500,
    }
}
