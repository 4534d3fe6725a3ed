//! The demo's issue direct reports (集采问题直报), made through the issues
//! service's own operations as the demo organisations would: a late
//! delivery dispatched to the distributor and the manufacturer, one the
//! manufacturer responded to, one the county's city bureau escalated to the
//! province, and one closed by the hospital's confirmation. Each report is
//! found by its impact scope, so a restart continues where it stopped and
//! never files twice.

use std::time::Duration;

use serde_json::{Value, json};
use vbp_agreements::demo as d;
use vbp_bus::RpcClient;
use vbp_contracts::Service;
use vbp_kernel::Actor;

use crate::demo_flow::{actor_of, call, items, text};

/// How far a report is taken.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Dispatched,
    Responded,
    Escalated,
    Confirmed,
}

struct Report {
    hospital: &'static str,
    national_code: &'static str,
    manufacturer: &'static str,
    /// The city bureau of the hospital (the demo configures no county
    /// bureau).
    bureau: &'static str,
    issue_type: &'static str,
    occurred_at: &'static str,
    impact_scope: &'static str,
    statement: &'static str,
    stage: Stage,
}

/// Occurrences lie inside period 2 (2024-08-01..2025-07-31), while the
/// products are on its supply list and the relations are active.
const REPORTS: &[Report] = &[
    Report {
        hospital: d::SHENYANG_HOSPITAL,
        national_code: "C02010205103001107660000011",
        manufacturer: d::MANUFACTURER_A,
        bureau: d::SHENYANG_BUREAU,
        issue_type: "late_delivery",
        occurred_at: "2025-06-10T09:30:00+08:00",
        impact_scope: "心内科导管室：3台择期冠脉介入手术延期",
        statement: "6月6日订单约定48小时内送达，至6月10日仍未到货（情况说明已加盖院章）",
        stage: Stage::Dispatched,
    },
    Report {
        hospital: d::FUXIN_HOSPITAL,
        national_code: "C02010205103001108810000032",
        manufacturer: d::MANUFACTURER_B,
        bureau: d::FUXIN_BUREAU,
        issue_type: "insufficient_supply",
        occurred_at: "2025-05-20T14:00:00+08:00",
        impact_scope: "介入科：库存仅余2根，需求20根",
        statement: "连续两周订单仅部分配送（情况说明已加盖院章）",
        stage: Stage::Responded,
    },
    Report {
        hospital: d::COUNTY_HOSPITAL,
        national_code: "C02010205103001107660000011",
        manufacturer: d::MANUFACTURER_A,
        bureau: d::FUXIN_BUREAU,
        issue_type: "selective_delivery",
        occurred_at: "2025-04-15T10:00:00+08:00",
        impact_scope: "县医院心内科：偏远县区订单多次被拒配",
        statement: "配送企业以路途较远为由拒绝小批量订单（情况说明已加盖院章）",
        stage: Stage::Escalated,
    },
    Report {
        hospital: d::SHENYANG_HOSPITAL,
        national_code: "C02010205103001108810000031",
        manufacturer: d::MANUFACTURER_B,
        bureau: d::SHENYANG_BUREAU,
        issue_type: "unreasonable_packaging",
        occurred_at: "2025-03-12T11:00:00+08:00",
        impact_scope: "中心库房：外包装破损导致5根无法使用",
        statement: "外包装强度不足，运输中破损（情况说明已加盖院章）",
        stage: Stage::Confirmed,
    },
];

fn who(org: &str) -> anyhow::Result<Actor> {
    actor_of(org).ok_or_else(|| anyhow::anyhow!("{org} is not in the demo cast"))
}

async fn issues(rpc: &RpcClient, op: &str, actor: &Actor, body: Value) -> anyhow::Result<Value> {
    call(rpc, Service::Issues, op, actor, body).await
}

/// The hospital's report with this impact scope, if filed.
async fn find(rpc: &RpcClient, hospital: &Actor, r: &Report) -> anyhow::Result<Option<Value>> {
    let list = issues(rpc, "issue_list", hospital, json!({ "page_size": 500 })).await?;
    Ok(items(&list)
        .iter()
        .find(|i| i["impact_scope"] == r.impact_scope)
        .cloned())
}

/// Files the report, waiting while the issues service has not yet projected
/// the supply list, the relations and the directory the demo just loaded.
async fn file(rpc: &RpcClient, hospital: &Actor, r: &Report) -> anyhow::Result<Value> {
    let body = json!({
        "national_code": r.national_code,
        "quantity": 20,
        "issue_type": r.issue_type,
        "occurred_at": r.occurred_at,
        "impact_scope": r.impact_scope,
        "statement": r.statement,
        "statement_sealed": true,
    });
    let mut tries = 0;
    loop {
        match issues(rpc, "issue_file", hospital, body.clone()).await {
            Ok(v) if v["issue"].is_string() => return Ok(v),
            outcome if tries < 60 => {
                tracing::debug!(
                    ?outcome,
                    "demo issue not filed yet; waiting for projections"
                );
                tries += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            outcome => anyhow::bail!("filing the demo issue failed: {outcome:?}"),
        }
    }
}

/// Takes a report from wherever it stands to its demo stage.
async fn advance(rpc: &RpcClient, r: &Report, mut v: Value) -> anyhow::Result<usize> {
    let issue = text(&v["issue"]);
    let mut steps = 0;
    let state = |v: &Value| text(&v["state"]);
    // The promised completion: two weeks from today (Beijing), as a
    // response must not promise a day already past.
    let completion =
        (vbp_kernel::beijing_date(chrono::Utc::now()) + chrono::Days::new(14)).to_string();
    if r.stage >= Stage::Responded && state(&v) == "dispatched" {
        v = issues(
            rpc,
            "issue_respond",
            &who(r.manufacturer)?,
            json!({
                "issue": issue,
                "cause_kind": "capacity",
                "cause": "该规格产线检修，产能临时下降",
                "solution": "调配其他基地库存优先保障，并恢复正常排产",
                "completion_date": completion,
                "written_statement": "产线检修情况书面说明（已加盖企业公章）",
            }),
        )
        .await?;
        steps += 1;
    }
    if r.stage == Stage::Escalated && state(&v) == "responded" {
        v = issues(
            rpc,
            "issue_escalate",
            &who(r.bureau)?,
            json!({ "issue": issue, "reason": "涉及跨市配送企业，需省级统筹协调" }),
        )
        .await?;
        steps += 1;
    }
    if r.stage == Stage::Confirmed {
        if matches!(state(&v).as_str(), "responded" | "dispatched") {
            v = issues(
                rpc,
                "issue_feedback",
                &who(r.bureau)?,
                json!({ "issue": issue, "feedback": "已约谈企业，更换加固包装并补发5根" }),
            )
            .await?;
            steps += 1;
        }
        if state(&v) == "feedback_given" {
            issues(
                rpc,
                "issue_confirm",
                &who(r.hospital)?,
                json!({ "issue": issue }),
            )
            .await?;
            steps += 1;
        }
    }
    Ok(steps)
}

/// Loads what is not loaded yet; returns how many records were created.
pub async fn load(rpc: &RpcClient) -> anyhow::Result<usize> {
    let mut created = 0;
    for r in REPORTS {
        let hospital = who(r.hospital)?;
        let v = match find(rpc, &hospital, r).await? {
            Some(v) => v,
            None => {
                created += 1;
                file(rpc, &hospital, r).await?
            }
        };
        created += advance(rpc, r, v).await?;
    }
    Ok(created)
}
