//! The demo's orders, shipments, acceptances, invoices and settlements in
//! agreement period 2 (2024-08-01..2025-07-31), made as the demo
//! organisations would. The services run on today's clock, so what happened
//! inside the period reaches the platform the way past business does: the
//! hospitals' integrator publishes orders, shipping notes, receipts and
//! acceptances with their business times; distributors then upload their
//! invoices, and hospitals and the fund record payments in payment runs with
//! the day each was made.
//!
//! The result: three items paid on time online, one paid late directly by
//! the fund, one moved to offline settlement (wrong invoice), one never
//! paid (flagged overdue), and a declaration of offline purchases — so the
//! rates of 2024-10 (due) and 2024-09 (online) show real figures.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use vbp_agreements::demo as d;
use vbp_bus::RpcClient;
use vbp_contracts::Service;
use vbp_contracts::ingest::{ORDER_ACCEPTED, ORDER_PLACED, ORDER_RECEIVED, SHIPMENT_DISPATCHED};
use vbp_kernel::Actor;
use vbp_platform::Platform;

use crate::demo_flow::{actor_of, call, items, text};

/// How an item is settled.
#[derive(Clone, Copy)]
enum Settle {
    /// The hospital pays online on the day given.
    Online(&'static str),
    /// The fund pays the distributor directly, by the given bureau, on the day given.
    Direct(&'static str, &'static str),
    /// The hospital moves it offline with the reason given.
    Offline(&'static str),
    /// Nobody pays: the payment deadline passes.
    Unpaid,
}

struct Demo {
    external_id: &'static str,
    hospital: &'static str,
    distributor: &'static str,
    /// (national code, quantity, winning price in fen)
    lines: &'static [(&'static str, i64, i64)],
    /// Beijing times: placed, shipped, received and accepted.
    placed: &'static str,
    shipped: &'static str,
    accepted: &'static str,
    invoice_number: &'static str,
    settle: Settle,
}

const P11: &str = "C02010205103001107660000011";
const P12: &str = "C02010205103001107660000012";
const P21: &str = "C02010205103002107660000021";
const P31: &str = "C02010205103001108810000031";
const P32: &str = "C02010205103001108810000032";

const ORDERS: &[Demo] = &[
    Demo {
        external_id: "LN-DEMO-PO-0001",
        hospital: d::FUXIN_HOSPITAL,
        distributor: d::DISTRIBUTOR_SHENYANG,
        lines: &[(P12, 30, 72_000)],
        placed: "2024-09-02T10:00:00+08:00",
        shipped: "2024-09-03T09:00:00+08:00",
        accepted: "2024-09-04T15:00:00+08:00",
        invoice_number: "24210001",
        settle: Settle::Online("2024-10-15"),
    },
    Demo {
        external_id: "LN-DEMO-PO-0002",
        hospital: d::FUXIN_HOSPITAL,
        distributor: d::DISTRIBUTOR_FUXIN,
        lines: &[(P32, 20, 69_800)],
        placed: "2024-10-08T09:30:00+08:00",
        shipped: "2024-10-09T10:00:00+08:00",
        accepted: "2024-10-10T16:00:00+08:00",
        invoice_number: "24210002",
        settle: Settle::Offline("已上传发票信息有误，经医院与配送企业确认转线下结算"),
    },
    Demo {
        external_id: "LN-DEMO-PO-0003",
        hospital: d::SHENYANG_HOSPITAL,
        distributor: d::DISTRIBUTOR_SHENYANG,
        lines: &[(P11, 50, 72_000), (P31, 40, 69_800)],
        placed: "2024-09-10T08:45:00+08:00",
        shipped: "2024-09-11T09:00:00+08:00",
        accepted: "2024-09-12T14:00:00+08:00",
        invoice_number: "24210003",
        settle: Settle::Online("2024-10-25"),
    },
    Demo {
        external_id: "LN-DEMO-PO-0004",
        hospital: d::SHENYANG_HOSPITAL,
        distributor: d::DISTRIBUTOR_SHENYANG,
        lines: &[(P21, 24, 75_000)],
        placed: "2024-11-05T10:00:00+08:00",
        shipped: "2024-11-06T09:00:00+08:00",
        accepted: "2024-11-07T11:00:00+08:00",
        invoice_number: "24210004",
        settle: Settle::Direct(d::SHENYANG_BUREAU, "2025-01-10"),
    },
    Demo {
        external_id: "LN-DEMO-PO-0005",
        hospital: d::COUNTY_HOSPITAL,
        distributor: d::DISTRIBUTOR_FUXIN,
        lines: &[(P11, 6, 72_000)],
        placed: "2024-09-20T09:00:00+08:00",
        shipped: "2024-09-21T09:00:00+08:00",
        accepted: "2024-09-23T10:00:00+08:00",
        invoice_number: "24210005",
        settle: Settle::Unpaid,
    },
    Demo {
        external_id: "LN-DEMO-PO-0006",
        hospital: d::COUNTY_HOSPITAL,
        distributor: d::DISTRIBUTOR_FUXIN,
        lines: &[(P11, 4, 72_000)],
        placed: "2025-03-03T09:00:00+08:00",
        shipped: "2025-03-04T09:00:00+08:00",
        accepted: "2025-03-05T10:00:00+08:00",
        invoice_number: "25210006",
        settle: Settle::Online("2025-04-20"),
    },
];

/// The county hospital bought some catheters outside the platform in
/// September 2024 and declares them, so its online rate is below 100 %.
const OFFLINE_DECLARATION: (&str, &str, i64) = (d::COUNTY_HOSPITAL, "2024-09-01", 86_400);

fn demo_actor(org: &str) -> anyhow::Result<Actor> {
    actor_of(org).with_context(|| format!("{org} has no demo identity"))
}

/// The integrator's messages for one order, in the order its systems send them.
fn messages(o: &Demo) -> Vec<(&'static str, Value)> {
    let id = |step: &str| format!("{}-{step}", o.external_id);
    let shipment_no = format!("FH-{}", &o.external_id[8..]);
    vec![
        (
            ORDER_PLACED,
            json!({ "external_id": o.external_id, "hospital": o.hospital,
                    "distributor": o.distributor, "placed_at": o.placed,
                    "lines": o.lines.iter().map(|(c, q, p)| json!({
                        "national_code": c, "quantity": q, "unit_price_fen": p })).collect::<Vec<_>>() }),
        ),
        (
            SHIPMENT_DISPATCHED,
            json!({ "external_id": id("SHIP"), "order_external_id": o.external_id,
                    "shipment_no": shipment_no, "shipped_at": o.shipped,
                    "lines": o.lines.iter().map(|(c, q, _)| json!({
                        "national_code": c, "batch_no": "B2408A", "expiry_date": "2027-07-31",
                        "quantity": q })).collect::<Vec<_>>() }),
        ),
        (
            ORDER_RECEIVED,
            json!({ "external_id": id("RECV"), "order_external_id": o.external_id,
                    "shipment_no": shipment_no, "received_at": o.accepted }),
        ),
        (
            ORDER_ACCEPTED,
            json!({ "external_id": id("ACPT"), "order_external_id": o.external_id,
                    "accepted_at": o.accepted,
                    "lines": o.lines.iter().map(|(c, q, _)| json!({
                        "national_code": c, "accepted_quantity": q,
                        "rejected_quantity": 0 })).collect::<Vec<_>>() }),
        ),
    ]
}

/// Publishes on `{ns}.ingest.{integrator}.{event}` as the integrator's own
/// NATS user would; a repeat is recognised by its external id.
async fn publish(platform: &Platform, missing: &[&Demo]) -> anyhow::Result<()> {
    platform.ensure_ingest_stream().await?;
    for o in missing {
        for (event, body) in messages(o) {
            platform
                .js
                .publish(
                    platform.ns.ingest(d::INTEGRATOR, event),
                    serde_json::to_vec(&body)?.into(),
                )
                .await?
                .await?;
        }
    }
    Ok(())
}

/// The demo's orders by external id, once `want` of them exist.
async fn demo_orders(
    rpc: &RpcClient,
    operator: &Actor,
    want: usize,
) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut found = BTreeMap::new();
    for _ in 0..150 {
        let list = call(
            rpc,
            Service::Orders,
            "order_list",
            operator,
            json!({ "page_size": 500 }),
        )
        .await?;
        found = items(&list)
            .iter()
            .filter(|o| text(&o["external_id"]).starts_with("LN-DEMO-PO-"))
            .map(|o| (text(&o["external_id"]), o.clone()))
            .collect();
        if found.len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(found)
}

/// The acceptance of a demo order, once the integrator's message is applied.
async fn acceptance_of(rpc: &RpcClient, operator: &Actor, order: &str) -> anyhow::Result<Value> {
    for _ in 0..150 {
        let list = call(
            rpc,
            Service::Orders,
            "acceptance_list",
            operator,
            json!({ "order": order, "page_size": 10 }),
        )
        .await?;
        if let Some(a) = items(&list).first() {
            return Ok(a.clone());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("order {order} has no acceptance: see the ingest rejections")
}

/// Invoices and settles what is not yet; returns how many records it made.
/// Each distributor uploads its invoices at once, and each payer pays its
/// items in one payment run, as their finance departments do.
async fn settle(rpc: &RpcClient, open: &[(&Demo, Value)]) -> anyhow::Result<usize> {
    let mut made = 0;
    let mut uploads: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (o, acceptance) in open {
        if acceptance["invoice"].is_null() {
            let amount = acceptance["amount_fen"].as_i64().unwrap_or_default();
            uploads.entry(o.distributor).or_default().push(
                json!({ "acceptance": text(&acceptance["acceptance"]), "invoice_code": "021002400111",
                        "invoice_number": o.invoice_number, "amount_fen": amount,
                        "tax_fen": amount * 13 / 113, "issued_on": &o.accepted[..10] }),
            );
        }
    }
    for (distributor, invoices) in uploads {
        made += invoices.len();
        call(
            rpc,
            Service::Orders,
            "invoice_issue_batch",
            &demo_actor(distributor)?,
            json!({ "invoices": invoices }),
        )
        .await?;
    }
    let mut runs: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (o, acceptance) in open {
        if acceptance["paid_fen"].as_i64().unwrap_or_default() > 0 {
            continue;
        }
        let id = text(&acceptance["acceptance"]);
        let amount = acceptance["amount_fen"].as_i64().unwrap_or_default();
        let pay = |channel: &str, paid_on: &str| json!({ "acceptance": id, "amount_fen": amount, "channel": channel, "paid_on": paid_on });
        match o.settle {
            Settle::Online(day) => runs.entry(o.hospital).or_default().push(pay("online", day)),
            Settle::Direct(bureau, day) => runs.entry(bureau).or_default().push(pay("direct", day)),
            Settle::Offline(reason) => {
                call(
                    rpc,
                    Service::Orders,
                    "settlement_move_offline",
                    &demo_actor(o.hospital)?,
                    json!({ "acceptance": id, "reason": reason }),
                )
                .await?;
                made += 1;
            }
            Settle::Unpaid => {}
        }
    }
    for (payer, payments) in runs {
        made += payments.len();
        call(
            rpc,
            Service::Orders,
            "settlement_pay_batch",
            &demo_actor(payer)?,
            json!({ "payments": payments }),
        )
        .await?;
    }
    Ok(made)
}

/// Loads what is not loaded yet; returns how many records were created.
pub async fn load(platform: &Platform) -> anyhow::Result<usize> {
    let rpc = &platform.rpc_client();
    let operator = Actor::system("demo");
    let existing = demo_orders(rpc, &operator, 0).await?;
    let missing: Vec<&Demo> = ORDERS
        .iter()
        .filter(|o| !existing.contains_key(o.external_id))
        .collect();
    let mut created = 0;
    if !missing.is_empty() {
        publish(platform, &missing).await?;
        created += missing.len();
    }
    let orders = demo_orders(rpc, &operator, ORDERS.len()).await?;
    let mut acceptances = Vec::with_capacity(ORDERS.len());
    for o in ORDERS {
        let Some(order) = orders.get(o.external_id) else {
            bail!(
                "demo order {} was not placed: see the ingest rejections",
                o.external_id
            );
        };
        acceptances.push((
            o,
            acceptance_of(rpc, &operator, &text(&order["order"])).await?,
        ));
    }
    created += settle(rpc, &acceptances).await?;
    let (hospital, month, amount) = OFFLINE_DECLARATION;
    let hospital = demo_actor(hospital)?;
    let rates = call(
        rpc,
        Service::Orders,
        "rates_get",
        &hospital,
        json!({ "month": month }),
    )
    .await?;
    if rates["offline_declared_fen"].as_i64().unwrap_or_default() == 0 {
        call(
            rpc,
            Service::Orders,
            "offline_purchase_declare",
            &hospital,
            json!({ "month": month, "amount_fen": amount }),
        )
        .await?;
        created += 1;
    }
    Ok(created)
}
