//! The demo's supervision data, made through the services' own operations
//! on top of the orders demo: the county hospital of 彰武县 orders from the
//! Fuxin distributor in November 2024, when that distributor was serving
//! the city hospital, and the distributor refuses it as too remote — which
//! the supervision service finds as selective delivery, files as an issue
//! and a credit record. The Liaoning bureau then generates the reminders
//! and notices of the period's months and quarters, and the Fuxin bureau
//! files a credit record for the offline purchases the county hospital
//! declared. Each step looks for what it made before, so a restart
//! continues where it stopped and never repeats one.

use std::time::Duration;

use serde_json::{Value, json};
use vbp_agreements::demo as d;
use vbp_bus::RpcClient;
use vbp_contracts::Service;
use vbp_contracts::ingest::ORDER_PLACED;
use vbp_kernel::Actor;
use vbp_platform::Platform;

use crate::demo_flow::{actor_of, call, items, text, total};

const REFUSED_ORDER: &str = "LN-DEMO-PO-0101";
const P11: &str = "C02010205103001107660000011";

/// Terms whose reminders (`month`) and notices (`quarter`) the province
/// generates: inside period 2, where the demo's purchases are.
const MONTHS: &[(i32, u32)] = &[(2024, 9), (2024, 10), (2024, 11)];
const QUARTERS: &[(i32, u32)] = &[(2024, 4), (2025, 1)];

fn who(org: &str) -> anyhow::Result<Actor> {
    actor_of(org).ok_or_else(|| anyhow::anyhow!("{org} is not in the demo cast"))
}

async fn supervision(
    rpc: &RpcClient,
    op: &str,
    actor: &Actor,
    body: Value,
) -> anyhow::Result<Value> {
    call(rpc, Service::Supervision, op, actor, body).await
}

/// The refused order, once the orders service has it.
async fn find_order(rpc: &RpcClient, operator: &Actor) -> anyhow::Result<Option<Value>> {
    let list = call(
        rpc,
        Service::Orders,
        "order_list",
        operator,
        json!({ "limit": 500 }),
    )
    .await?;
    Ok(items(&list)
        .iter()
        .find(|o| text(&o["external_id"]) == REFUSED_ORDER)
        .cloned())
}

async fn refused_order(platform: &Platform, rpc: &RpcClient) -> anyhow::Result<usize> {
    let operator = Actor::system("demo");
    let mut order = find_order(rpc, &operator).await?;
    if order.is_none() {
        platform.ensure_ingest_stream().await?;
        let body = json!({
            "external_id": REFUSED_ORDER,
            "hospital": d::COUNTY_HOSPITAL,
            "distributor": d::DISTRIBUTOR_FUXIN,
            "placed_at": "2024-11-05T09:00:00+08:00",
            "lines": [{ "national_code": P11, "quantity": 2, "unit_price_fen": 72_000 }],
        });
        platform
            .js
            .publish(
                platform.ns.ingest(d::INTEGRATOR, ORDER_PLACED),
                serde_json::to_vec(&body)?.into(),
            )
            .await?
            .await?;
        for _ in 0..150 {
            order = find_order(rpc, &operator).await?;
            if order.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let Some(order) = order else {
        anyhow::bail!("order {REFUSED_ORDER} did not arrive: see the ingest rejections");
    };
    if text(&order["state"]) != "placed" {
        return Ok(0);
    }
    call(
        rpc,
        Service::Orders,
        "order_respond",
        &who(d::DISTRIBUTOR_FUXIN)?,
        json!({ "order": order["order"], "response": "refused",
                "reason": "彰武县路途较远，小批量订单暂不配送" }),
    )
    .await?;
    Ok(1)
}

/// Waits until supervision has projected the orders demo's acceptances, so
/// the generated items reflect them.
async fn projected(rpc: &RpcClient, province: &Actor) -> anyhow::Result<bool> {
    for _ in 0..150 {
        let year = supervision(rpc, "assessment", province, json!({ "year": 2025 })).await?;
        let county = year["rows"]
            .as_array()
            .and_then(|rows| {
                rows.iter()
                    .find(|r| text(&r["hospital"]) == d::COUNTY_HOSPITAL)
            })
            .and_then(|r| r["accepted_quantity"].as_i64())
            .unwrap_or_default();
        if county > 0 {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(false)
}

/// Loads what is missing; returns how many records it made.
pub async fn load(platform: &Platform, rpc: &RpcClient) -> anyhow::Result<usize> {
    let mut made = refused_order(platform, rpc).await?;
    let province = who(d::PROVINCE_BUREAU)?;
    if !projected(rpc, &province).await? {
        tracing::warn!("supervision has not projected the demo's acceptances yet");
    }
    let before = total(&supervision(rpc, "work_items_list", &province, json!({})).await?);
    for (year, month) in MONTHS {
        supervision(
            rpc,
            "work_items_generate",
            &province,
            json!({ "kind": "monthly_reminder", "year": year, "month": month }),
        )
        .await?;
    }
    for (year, quarter) in QUARTERS {
        supervision(
            rpc,
            "work_items_generate",
            &province,
            json!({ "kind": "quarterly_notice", "year": year, "quarter": quarter }),
        )
        .await?;
    }
    let after = total(&supervision(rpc, "work_items_list", &province, json!({})).await?);
    made += after.saturating_sub(before);

    let fuxin = who(d::FUXIN_BUREAU)?;
    let records = supervision(rpc, "credit_list", &fuxin, json!({ "page_size": 500 })).await?;
    let filed = items(&records)
        .iter()
        .any(|r| text(&r["origin"]) == "bureau" && text(&r["kind"]) == "offline_sales");
    if !filed {
        supervision(
            rpc,
            "credit_file",
            &fuxin,
            json!({
                "enterprise": d::DISTRIBUTOR_FUXIN,
                "kind": "offline_sales",
                "description": "彰武县人民医院2024年9月申报线下采购864元，涉及本企业配送的中选产品，限期整改为网上交易",
            }),
        )
        .await?;
        made += 1;
    }
    Ok(made)
}
