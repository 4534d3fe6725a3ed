//! The demo's tripartite agreements: for each demo hospital's agreed volumes,
//! an agreement with the manufacturer and the distributors it has active
//! relations with, confirmed by each party in turn through the services' own
//! operations. Prepayment and progress then start from real effective
//! agreements, as they would in a province.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use vbp_bus::{Context, RpcClient};
use vbp_contracts::Service;
use vbp_kernel::Actor;

use crate::demo::CAST;

pub(crate) fn actor_of(org: &str) -> Option<Actor> {
    CAST.iter().find(|o| o.id == org).map(|o| Actor {
        sub: format!("demo:{}", o.id),
        org: o.org(),
        org_kind: o.kind,
        region: o.region(),
        roles: o.roles.iter().map(|r| (*r).to_owned()).collect(),
    })
}

pub(crate) async fn call(
    rpc: &RpcClient,
    service: Service,
    op: &str,
    actor: &Actor,
    body: Value,
) -> anyhow::Result<Value> {
    let ctx = Context::new(Some(actor.clone()));
    let reply = rpc
        .call_raw(service, op, &ctx, serde_json::to_vec(&body)?.into())
        .await?;
    Ok(serde_json::from_slice(&reply)?)
}

pub(crate) fn items(v: &Value) -> &[Value] {
    v["items"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// How many items a list has on all its pages.
pub(crate) fn total(v: &Value) -> usize {
    v["total"].as_u64().unwrap_or_default() as usize
}

pub(crate) fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

#[derive(Default)]
struct Plan {
    lines: Vec<Value>,
    distributors: BTreeSet<String>,
}

/// Signs what is not signed yet; returns how many agreements took effect.
pub async fn sign_agreements(rpc: &RpcClient, period: &str) -> anyhow::Result<usize> {
    let operator = Actor::system("demo");
    let page = |extra: Value| {
        let mut body = json!({ "period": period, "page_size": 500 });
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().cloned().unwrap_or_default());
        body
    };
    let existing = call(
        rpc,
        Service::Agreements,
        "agreement_list",
        &operator,
        page(json!({})),
    )
    .await?;
    let signed: BTreeSet<(String, String)> = items(&existing)
        .iter()
        .map(|a| (text(&a["hospital"]), text(&a["manufacturer"])))
        .collect();
    let volumes = call(
        rpc,
        Service::Agreements,
        "agreed_volume_list",
        &operator,
        page(json!({})),
    )
    .await?;
    let relations = call(
        rpc,
        Service::Distribution,
        "relation_list",
        &operator,
        page(json!({ "state": "active" })),
    )
    .await?;
    let mut delivering: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in items(&relations) {
        delivering
            .entry((text(&r["hospital"]), text(&r["national_code"])))
            .or_default()
            .insert(text(&r["distributor"]));
    }
    let mut plans: BTreeMap<(String, String), Plan> = BTreeMap::new();
    for volume in items(&volumes) {
        let hospital = text(&volume["hospital"]);
        for line in volume["lines"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let code = text(&line["national_code"]);
            let Some(distributors) = delivering.get(&(hospital.clone(), code.clone())) else {
                continue;
            };
            let plan = plans
                .entry((hospital.clone(), text(&line["manufacturer"])))
                .or_default();
            plan.lines
                .push(json!({ "national_code": code, "quantity": line["quantity"] }));
            plan.distributors.extend(distributors.iter().cloned());
        }
    }
    let mut effective = 0;
    for ((hospital, manufacturer), plan) in plans {
        if signed.contains(&(hospital.clone(), manufacturer.clone())) {
            continue;
        }
        let parties: Option<Vec<Actor>> = std::iter::once(&hospital)
            .chain(std::iter::once(&manufacturer))
            .chain(plan.distributors.iter())
            .map(|org| actor_of(org))
            .collect();
        let Some(parties) = parties else { continue };
        let body = json!({ "period": period, "hospital": hospital, "manufacturer": manufacturer,
                           "distributors": plan.distributors, "lines": plan.lines });
        let draft = call(
            rpc,
            Service::Agreements,
            "agreement_create",
            &parties[0],
            body,
        )
        .await?;
        let confirm = json!({ "agreement": draft["agreement"], "version": 1 });
        for party in &parties {
            // A distributor's confirmation waits until agreements has projected
            // the relation distribution just activated.
            let mut attempt = 0;
            loop {
                match call(
                    rpc,
                    Service::Agreements,
                    "agreement_confirm",
                    party,
                    confirm.clone(),
                )
                .await
                {
                    Ok(_) => break,
                    Err(e) if attempt < 50 => {
                        tracing::debug!(error = %e, "demo agreement confirmation retried");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        effective += 1;
    }
    Ok(effective)
}
