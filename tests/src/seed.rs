//! Data the whole-system tests read: the Liaoning demo of the agreements and
//! distribution services, the tripartite agreements of its agreed volumes
//! signed by each party in turn, then orders and issues of hospitals in
//! different cities and one order an integrator placed over NATS. Everything
//! goes through the services' own operations, as the organisations would.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use vbp_agreements::demo as d;
use vbp_bus::Context;
use vbp_contracts::Service;
use vbp_kernel::Actor;

use crate::cast::{self, CastOrg};
use crate::system::System;

/// The order the integrator places in the seed; hostile tests replay its id.
pub const SEEDED_EXTERNAL_ID: &str = "SPD-SEED-0001";

/// An order the seed places: (hospital, distributor, product, price in fen).
pub const ORDERS: &[(&str, &str, &str, i64)] = &[
    (
        "hospital-shenyang",
        "distributor-shenyang",
        "C02010205103001107660000011",
        72_000,
    ),
    (
        "hospital-fuxin",
        "distributor-fuxin",
        "C02010205103001108810000032",
        69_800,
    ),
    (
        "hospital-zhangwu",
        "distributor-fuxin",
        "C02010205103001107660000011",
        72_000,
    ),
];

pub async fn load(system: &System) {
    let demo = Actor::system("proof");
    for service in [Service::Agreements, Service::Distribution] {
        retry(&format!("{service} demo_load"), || {
            system.call(service, "demo_load", &demo, json!({}))
        })
        .await;
    }
    sign_agreements(system).await;
    for (hospital, distributor, code, price) in ORDERS {
        let body = json!({
            "distributor": cast::by_name(distributor).id,
            "lines": [{ "national_code": code, "quantity": 2, "unit_price_fen": price }],
        });
        let hospital = cast::by_name(hospital);
        eventually_http(system, "/api/v1/orders", hospital, body).await;
        let issue = json!({
            "national_code": code,
            "quantity": 5,
            "issue_type": "late_delivery",
            "occurred_at": system.platform.clock.now(),
            "impact_scope": "心内科",
            "statement": "配送企业未按约定时间配送",
        });
        eventually_http(system, "/api/v1/issues", hospital, issue).await;
    }
    // A credit record of one enterprise, filed by its city's bureau, so the
    // supervision routes have a row other tenants must not reach.
    let record = json!({
        "enterprise": cast::by_name("distributor-fuxin").id,
        "kind": "offline_sales",
        "description": "线下销售中选产品",
    });
    eventually_http(
        system,
        "/api/v1/supervision/credit-records",
        cast::by_name("bureau-fuxin"),
        record,
    )
    .await;
    let placed = json!({
        "external_id": SEEDED_EXTERNAL_ID,
        "hospital": d::FUXIN_HOSPITAL,
        "distributor": d::DISTRIBUTOR_FUXIN,
        "placed_at": system.platform.clock.now(),
        "lines": [{ "national_code": "C02010205103001108810000032", "quantity": 3, "unit_price_fen": 69_800 }],
    });
    system
        .publish_ingest(
            d::INTEGRATOR,
            vbp_contracts::ingest::ORDER_PLACED,
            Some(&vbp_contracts::ingest::message_id(
                d::INTEGRATOR,
                SEEDED_EXTERNAL_ID,
            )),
            serde_json::to_vec(&placed).expect("json"),
        )
        .await;
    wait_ingested(system, SEEDED_EXTERNAL_ID).await;
}

/// Retries while a service is still projecting what another one published.
async fn retry<F, Fut>(what: &str, mut call: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Value>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match call().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{what}: {e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn eventually_http(system: &System, path: &str, org: &CastOrg, body: Value) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = system.post(path, org, body.clone()).await;
        if (200..300).contains(&answer.status) {
            return answer.json;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "seeding POST {path} as {}: {} {}",
            org.name,
            answer.status,
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_ingested(system: &System, external_id: &str) {
    let pool = system.admin_pool().await;
    let sql =
        format!("SELECT count(*) FROM orders.ingest_messages WHERE external_id = '{external_id}'");
    vbp_platform::testkit::wait_count(&pool, &sql, 1).await;
    let outcome: String = sqlx::query_scalar(
        "SELECT outcome || coalesce(': ' || reason, '') FROM orders.ingest_messages \
         WHERE external_id = $1",
    )
    .bind(external_id)
    .fetch_one(&pool)
    .await
    .expect("ingest outcome");
    assert_eq!(outcome, "applied", "the seeded integrator order");
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// One agreement per (hospital, manufacturer) of the agreed volumes, over the
/// products a distributor actively delivers, confirmed by every party.
async fn sign_agreements(system: &System) {
    let operator = cast::by_name("operator").actor();
    let call = |op: &'static str, actor: Actor, body: Value| async move {
        let ctx = Context::new(Some(actor));
        let reply = system
            .rpc
            .call_raw(
                Service::Agreements,
                op,
                &ctx,
                serde_json::to_vec(&body)?.into(),
            )
            .await?;
        anyhow::Ok(serde_json::from_slice::<Value>(&reply)?)
    };
    let volumes = retry("agreed volumes", || {
        call(
            "agreed_volume_list",
            operator.clone(),
            json!({"period": d::PERIOD_2, "page_size": 500}),
        )
    })
    .await;
    let relations = retry("relations", || {
        system.call(
            Service::Distribution,
            "relation_list",
            &operator,
            json!({"period": d::PERIOD_2, "page_size": 500, "state": "active"}),
        )
    })
    .await;
    let mut delivering: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in items(&relations) {
        delivering
            .entry((text(&r["hospital"]), text(&r["national_code"])))
            .or_default()
            .insert(text(&r["distributor"]));
    }
    let mut plans: BTreeMap<(String, String), (Vec<Value>, BTreeSet<String>)> = BTreeMap::new();
    for volume in items(&volumes) {
        let hospital = text(&volume["hospital"]);
        for line in volume["lines"].as_array().cloned().unwrap_or_default() {
            let code = text(&line["national_code"]);
            let Some(distributors) = delivering.get(&(hospital.clone(), code.clone())) else {
                continue;
            };
            let plan = plans
                .entry((hospital.clone(), text(&line["manufacturer"])))
                .or_default();
            plan.0
                .push(json!({"national_code": code, "quantity": line["quantity"]}));
            plan.1.extend(distributors.iter().cloned());
        }
    }
    assert!(!plans.is_empty(), "the demo has agreed volumes to sign");
    for ((hospital, manufacturer), (lines, distributors)) in plans {
        let parties: Vec<Actor> = [&hospital, &manufacturer]
            .into_iter()
            .chain(distributors.iter())
            .map(|id| cast::by_id(id).expect("a cast party").actor())
            .collect();
        let body = json!({"period": d::PERIOD_2, "hospital": hospital, "manufacturer": manufacturer,
                          "distributors": distributors, "lines": lines});
        let draft = retry("agreement_create", || {
            call("agreement_create", parties[0].clone(), body.clone())
        })
        .await;
        let confirm = json!({"agreement": draft["agreement"], "version": 1});
        for party in &parties {
            retry("agreement_confirm", || {
                call("agreement_confirm", party.clone(), confirm.clone())
            })
            .await;
        }
    }
}
