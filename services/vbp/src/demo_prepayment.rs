//! The demo's prepayment approvals and disbursements, made through the services' own
//! operations as the demo organisations would. Period 2 began on 2024-08-01, so the bureaus
//! record decisions taken then: the Shenyang hospital's prepayment disbursed in time, the
//! Fuxin hospital's disbursed after the 15-working-day deadline, and the county hospital's
//! approved but never disbursed, which the service flags as late.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use vbp_agreements::demo as d;
use vbp_bus::RpcClient;
use vbp_contracts::Service;
use vbp_kernel::{Actor, OrgKind};

use crate::demo::CAST;
use crate::demo_flow::{actor_of, call, items, text};

/// What the bureaus decided for one hospital's prepayment.
struct Decision {
    hospital: &'static str,
    approved_on: &'static str,
    /// `(payment reference, disbursed on)`; `None` leaves it approved.
    disbursement: Option<(&'static str, &'static str)>,
}

const DECISIONS: &[Decision] = &[
    Decision {
        hospital: d::SHENYANG_HOSPITAL,
        approved_on: "2024-09-20",
        disbursement: Some(("LNYB-YFJ-2024-0001", "2024-09-27")),
    },
    Decision {
        hospital: d::FUXIN_HOSPITAL,
        approved_on: "2024-09-20",
        disbursement: Some(("LNYB-YFJ-2024-0002", "2024-11-05")),
    },
    Decision {
        hospital: d::COUNTY_HOSPITAL,
        approved_on: "2024-09-23",
        disbursement: None,
    },
];

/// Bureaus whose region contains `region`, the nearest first, so the
/// decision is the territorial bureau's wherever the configured approval
/// level allows it.
fn bureaus_over(region: vbp_kernel::RegionCode) -> Vec<Actor> {
    let mut found: Vec<_> = CAST
        .iter()
        .filter(|o| o.kind == OrgKind::Bureau && o.region().contains(region))
        .collect();
    found.sort_by_key(|o| std::cmp::Reverse(o.region));
    found.iter().filter_map(|o| actor_of(o.id)).collect()
}

/// The ledgers of period 2, once the service has calculated one for every
/// hospital with an effective agreement.
async fn ledgers(rpc: &RpcClient, operator: &Actor) -> anyhow::Result<Vec<Value>> {
    let agreements = call(
        rpc,
        Service::Agreements,
        "agreement_list",
        operator,
        json!({ "period": d::PERIOD_2, "page_size": 500 }),
    )
    .await?;
    let hospitals: BTreeSet<String> = items(&agreements)
        .iter()
        .filter(|a| a["state"] == "effective")
        .map(|a| text(&a["hospital"]))
        .collect();
    for _ in 0..150 {
        let list = call(
            rpc,
            Service::Prepayment,
            "ledger_list",
            operator,
            json!({ "period": d::PERIOD_2, "page_size": 500 }),
        )
        .await?;
        let seen: BTreeSet<String> = items(&list).iter().map(|l| text(&l["hospital"])).collect();
        if hospitals.is_subset(&seen) {
            return Ok(items(&list).to_vec());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!(
        "prepayment ledgers for {} hospitals with effective agreements not calculated in time",
        hospitals.len()
    )
}

/// Loads what is not loaded yet; returns how many records were created.
pub async fn load(rpc: &RpcClient) -> anyhow::Result<usize> {
    let operator = Actor::system("demo");
    let mut created = 0;
    for ledger in ledgers(rpc, &operator).await? {
        let hospital = text(&ledger["hospital"]);
        let Some(plan) = DECISIONS.iter().find(|p| p.hospital == hospital) else {
            continue;
        };
        let region = ledger["hospital_region"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .context("ledger without a hospital region")?;
        let id = ledger["ledger"].clone();
        let mut state = text(&ledger["state"]);
        let mut approver = None;
        for bureau in bureaus_over(region) {
            if state != "calculated" {
                break;
            }
            let body = json!({ "ledger": id, "approved_on": plan.approved_on });
            match call(rpc, Service::Prepayment, "ledger_approve", &bureau, body).await {
                Ok(v) => {
                    state = text(&v["state"]);
                    approver = Some(bureau);
                    created += 1;
                }
                Err(e) => tracing::debug!(error = %e, "demo approval left to a higher bureau"),
            }
        }
        let Some((reference, on)) = plan.disbursement else {
            continue;
        };
        if state != "approved" {
            continue;
        }
        let approver = match approver {
            Some(a) => a,
            None => bureaus_over(region)
                .into_iter()
                .find(|b| ledger["approved_by"] == b.org.to_string())
                .context("the approving bureau is not in the demo cast")?,
        };
        let body = json!({ "ledger": id, "payment_reference": reference, "disbursed_on": on });
        call(rpc, Service::Prepayment, "ledger_disburse", &approver, body).await?;
        created += 1;
    }
    Ok(created)
}
