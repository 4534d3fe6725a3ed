//! The whole system as the README runs it — one `vbp serve all` process on
//! PostgreSQL and NATS — driven only over HTTP and NATS through Liaoning's
//! guiding-catheter period 2 (辽宁 · 冠脉导引导管 · 第2协议期): the supply
//! list re-imported from its own `.xlsx` export, distribution authorised and
//! selected, a tripartite agreement signed by its three parties, prepayment
//! calculated from it; an integrator publishes an order on NATS (placed,
//! shipped, received, accepted); progress and its class; the invoice and
//! the settlement; a late-delivery issue filed, dispatched, answered,
//! escalated and resolved. The order's correlation id and trace id ride
//! along every step, so `GET /api/v1/flows/{correlation}` shows the order's
//! steps across services in order, and every event the flow produced
//! carries the same trace id.
//!
//! What needs business time to pass cannot be driven in a process on the
//! system clock, and the services' own tests cover it on a manual clock: an
//! issue going overdue by the working-day calendar, and prepayment's
//! approval, disbursement and offsets while period 2 runs (on today's clock
//! period 2 has ended and its ledgers close).

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage;
use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;
use vbp_agreements::demo::{
    DISTRIBUTOR_SHENYANG, FUXIN_BUREAU, FUXIN_HOSPITAL, INTEGRATOR, MANUFACTURER_A, PERIOD_2,
    PROVINCE_BUREAU,
};
use vbp_contracts::{headers, ingest};
use vbp_kernel::{CorrelationId, OrgId, OrgKind};
use vbp_platform::testkit::TestEnv;
use vbp_tests::procs::{Cluster, DEV_SECRET, Target};

const OPERATOR: &str = "01930000-0000-7000-8000-000000000501";
/// 6F JR4.0 100cm, made by manufacturer A, delivered to the Fuxin hospital
/// by the Shenyang distributor.
const PRODUCT: &str = "C02010205103001107660000012";
const QUANTITY: i64 = 12;

fn token(org: &str, kind: OrgKind, region: &str, roles: &[&str]) -> String {
    vbp_gateway::token::mint_dev(
        DEV_SECRET.as_bytes(),
        &format!("user:{org}"),
        org.parse().expect("org id"),
        kind,
        region.parse().expect("region"),
        roles,
        Duration::from_secs(3600),
        Utc::now(),
    )
    .expect("dev token")
}

/// The gateway, called with the flow's correlation id and trace.
struct Api {
    http: reqwest::Client,
    base: String,
    correlation: String,
    traceparent: String,
}

impl Api {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(token)
            .header("x-correlation-id", &self.correlation)
            .header("traceparent", &self.traceparent)
            .timeout(Duration::from_secs(15));
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("the gateway answers")
    }

    /// A call that must succeed; its JSON answer.
    async fn ok(&self, method: Method, path: &str, token: &str, body: Option<&Value>) -> Value {
        let response = self.send(method.clone(), path, token, body).await;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        self.ok(Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> Value {
        self.ok(Method::POST, path, token, Some(body)).await
    }

    /// Retries while what the call needs is still travelling between services.
    async fn eventually(&self, method: Method, path: &str, token: &str, body: &Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let response = self.send(method.clone(), path, token, Some(body)).await;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status.is_success() {
                return serde_json::from_str(&text).unwrap_or(Value::Null);
            }
            assert!(
                Instant::now() < deadline,
                "{method} {path}: {status} {text}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Polls a GET until `pick` finds what it looks for.
    async fn until(
        &self,
        path: &str,
        token: &str,
        pick: impl Fn(&Value) -> Option<Value>,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.get(path, token).await;
            if let Some(found) = pick(&got) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "GET {path}: not there yet: {got}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Publishes an integrator message as a hospital's system does, carrying
/// the flow's correlation id and trace.
async fn publish(cluster: &Cluster, api: &Api, event: &str, body: Value) {
    let external_id = body["external_id"]
        .as_str()
        .expect("external_id")
        .to_owned();
    let mut hdrs = HeaderMap::new();
    hdrs.insert(headers::CORRELATION, api.correlation.as_str());
    hdrs.insert(headers::TRACEPARENT, api.traceparent.as_str());
    let msg = PublishMessage::build()
        .headers(hdrs)
        .message_id(ingest::message_id(INTEGRATOR, &external_id))
        .payload(serde_json::to_vec(&body).expect("json").into());
    let platform = &cluster.platform;
    platform
        .js
        .send_publish(platform.ns.ingest(INTEGRATOR, event), msg)
        .await
        .expect("published")
        .await
        .expect("acknowledged by the broker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liaonings_period_2_runs_end_to_end_and_one_order_is_one_timeline_and_one_trace() {
    let env = TestEnv::new().await;
    let mut cluster = Cluster::new(Target::from(&env)).await;
    cluster.start("all").await;
    let trace_id = uuid::Uuid::now_v7().simple().to_string();
    let api = Api {
        http: reqwest::Client::new(),
        base: cluster.base_url(),
        correlation: CorrelationId::new().to_string(),
        traceparent: format!(
            "00-{trace_id}-{}-01",
            &uuid::Uuid::now_v7().simple().to_string()[16..]
        ),
    };
    let operator = token(OPERATOR, OrgKind::Operator, "210000", &["admin"]);
    let province = token(PROVINCE_BUREAU, OrgKind::Bureau, "210000", &["admin"]);
    let fuxin = token(FUXIN_BUREAU, OrgKind::Bureau, "210900", &["admin"]);
    let hospital = token(FUXIN_HOSPITAL, OrgKind::Hospital, "210902", &["buyer"]);
    let maker = token(MANUFACTURER_A, OrgKind::Manufacturer, "330100", &["sales"]);
    let distributor = token(
        DISTRIBUTOR_SHENYANG,
        OrgKind::Distributor,
        "210100",
        &["dispatcher"],
    );

    // The province's directory, project, periods and supply list, and the
    // manufacturers' authorisations and hospitals' selections of
    // distributors (the demo data an operator loads).
    api.post("/demo/agreements", &operator, &json!({})).await;
    api.eventually(Method::POST, "/demo/distribution", &operator, &json!({}))
        .await;

    // The supply list goes out as .xlsx and comes back in as a draft, row for row.
    let list = api
        .get(&format!("/periods/{PERIOD_2}/supply-list"), &hospital)
        .await;
    let listed = items(&list);
    let price = listed
        .iter()
        .find(|i| i["national_code"] == PRODUCT)
        .and_then(|i| i["winning_price_fen"].as_i64())
        .expect("the product and its winning price are on the list");
    let file = api
        .get(
            &format!("/periods/{PERIOD_2}/supply-list/export"),
            &province,
        )
        .await;
    assert!(
        file["file_name"].as_str().unwrap_or("").ends_with(".xlsx"),
        "{file}"
    );
    let imported = api
        .post(
            &format!("/periods/{PERIOD_2}/supply-list/draft/file"),
            &province,
            &json!({ "file_name": file["file_name"], "content_base64": file["content_base64"] }),
        )
        .await;
    assert_eq!(imported["rows"], json!(listed.len()), "{imported}");

    // Distribution: the relation the demo's selection activated.
    let relation = api
        .until("/relations?state=active", &hospital, |v| {
            items(v)
                .into_iter()
                .find(|r| r["national_code"] == PRODUCT && r["distributor"] == DISTRIBUTOR_SHENYANG)
        })
        .await;
    assert_eq!(relation["hospital"], FUXIN_HOSPITAL);

    // The tripartite agreement: hospital, manufacturer, distributor.
    let draft = api
        .post(
            "/agreements",
            &hospital,
            &json!({ "period": PERIOD_2, "hospital": FUXIN_HOSPITAL, "manufacturer": MANUFACTURER_A,
                     "distributors": [DISTRIBUTOR_SHENYANG],
                     "lines": [{ "national_code": PRODUCT, "quantity": 180 }] }),
        )
        .await;
    let agreement = draft["agreement"]
        .as_str()
        .expect("agreement id")
        .to_owned();
    let confirm = format!("/agreements/{agreement}/confirm");
    for party in [&hospital, &maker, &distributor] {
        api.eventually(Method::POST, &confirm, party, &json!({ "version": 1 }))
            .await;
    }
    let signed = api
        .get(&format!("/agreements/{agreement}"), &hospital)
        .await;
    assert_eq!(signed["state"], "effective", "{signed}");

    // Prepayment: calculated from the effective agreement at the province's
    // ratio. (Period 2 ended on 2025-07-31, so on the system clock the
    // service closes its ledgers; approval, disbursement and offsets of a
    // running period are the prepayment service's own tests, on a manual clock.)
    let ledger = api
        .until(
            &format!("/prepayment/ledgers?hospital={FUXIN_HOSPITAL}"),
            &fuxin,
            |v| items(v).into_iter().next(),
        )
        .await;
    assert_eq!(ledger["agreed_amount_fen"], json!(180 * price), "{ledger}");
    let ratio = ledger["ratio"].as_i64().expect("ratio in basis points");
    assert_eq!(
        ledger["amount_fen"],
        json!(180 * price * ratio / 10_000),
        "{ledger}"
    );
    let today = (Utc::now() + chrono::Duration::hours(8)).date_naive();
    // The hospital's system publishes the order on NATS, through to acceptance.
    let po = "FX-PO-2024-0910-001";
    publish(
        &cluster,
        &api,
        ingest::ORDER_PLACED,
        json!({
        "external_id": po, "hospital": FUXIN_HOSPITAL, "distributor": DISTRIBUTOR_SHENYANG,
        "placed_at": "2024-09-10T08:00:00+08:00",
        "lines": [{ "national_code": PRODUCT, "quantity": QUANTITY, "unit_price_fen": price }] }),
    )
    .await;
    publish(
        &cluster,
        &api,
        ingest::SHIPMENT_DISPATCHED,
        json!({
        "external_id": "FX-SH-001", "order_external_id": po, "shipment_no": "SYFH-240910-01",
        "shipped_at": "2024-09-10T14:00:00+08:00",
        "lines": [{ "national_code": PRODUCT, "batch_no": "B240828", "expiry_date": "2027-08-27",
                    "quantity": QUANTITY }] }),
    )
    .await;
    publish(
        &cluster,
        &api,
        ingest::ORDER_RECEIVED,
        json!({
        "external_id": "FX-RC-001", "order_external_id": po, "shipment_no": "SYFH-240910-01",
        "received_at": "2024-09-11T09:00:00+08:00" }),
    )
    .await;
    publish(&cluster, &api, ingest::ORDER_ACCEPTED, json!({
        "external_id": "FX-AC-001", "order_external_id": po, "accepted_at": "2024-09-11T10:00:00+08:00",
        "lines": [{ "national_code": PRODUCT, "accepted_quantity": QUANTITY, "rejected_quantity": 0 }] }))
    .await;
    let order = api
        .until("/orders", &hospital, |v| {
            items(v)
                .into_iter()
                .find(|o| o["external_id"] == po && o["state"] != "placed")
        })
        .await;
    assert_eq!(order["source"], "integrator");
    let order_id = order["order"].as_str().expect("order id").to_owned();
    let acceptance = api
        .until(&format!("/acceptances?order={order_id}"), &hospital, |v| {
            items(v).into_iter().next()
        })
        .await;
    assert_eq!(
        acceptance["amount_fen"],
        json!(QUANTITY * price),
        "{acceptance}"
    );
    let acceptance_id = acceptance["acceptance"]
        .as_str()
        .expect("acceptance id")
        .to_owned();

    // Progress counts the accepted units, and classifies the hospital.
    let row = api
        .until(
            &format!("/periods/{PERIOD_2}/progress?national_code={PRODUCT}"),
            &fuxin,
            |v| {
                items(v)
                    .into_iter()
                    .find(|r| r["hospital"] == FUXIN_HOSPITAL && r["accepted_quantity"] == QUANTITY)
            },
        )
        .await;
    assert_eq!(row["accepted_amount_fen"], json!(QUANTITY * price), "{row}");
    assert!(row["class"].is_string(), "progress has a class: {row}");

    // The distributor invoices the acceptance; the hospital pays it online.
    let amount = QUANTITY * price;
    api.post(
        &format!("/acceptances/{acceptance_id}/invoice"),
        &distributor,
        &json!({ "invoice_code": "021002400111", "invoice_number": "00091001",
                 "amount_fen": amount, "tax_fen": amount * 13 / 113, "issued_on": today }),
    )
    .await;
    let paid = api
        .post(
            &format!("/acceptances/{acceptance_id}/settlement"),
            &hospital,
            &json!({ "amount_fen": amount, "channel": "online" }),
        )
        .await;
    assert_eq!(paid["paid_fen"], json!(amount), "{paid}");

    // A late delivery: filed by the hospital, dispatched to the enterprises
    // and the bureau, answered, escalated to the province, resolved.
    let filed = api
        .ok(
            Method::POST,
            "/issues",
            &hospital,
            Some(&json!({ "national_code": PRODUCT, "quantity": QUANTITY, "issue_type": "late_delivery",
                          "occurred_at": "2024-09-10T08:00:00+08:00", "impact_scope": "心内科介入手术",
                          "statement": "配送企业未按约定时限送达" })),
        )
        .await;
    let issue = filed["issue"].as_str().expect("issue id").to_owned();
    assert!(
        filed["recipients"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "dispatched to its recipients: {filed}"
    );
    let path = |what: &str| format!("/issues/{issue}/{what}");
    api.post(
        &path("response"),
        &maker,
        &json!({ "cause_kind": "logistics", "cause": "物流中断", "solution": "改用备用承运商",
                 "completion_date": today, "written_statement": "承运商停运说明（盖章）" }),
    )
    .await;
    let escalated = api
        .post(
            &path("escalation"),
            &fuxin,
            &json!({ "reason": "跨省企业" }),
        )
        .await;
    assert_eq!(escalated["state"], "escalated", "{escalated}");
    api.post(
        &path("feedback"),
        &province,
        &json!({ "feedback": "已约谈企业，恢复配送" }),
    )
    .await;
    let resolved = api.post(&path("confirmation"), &hospital, &json!({})).await;
    assert_eq!(resolved["state"], "resolved", "{resolved}");

    // One correlation: the order's steps across services, in time order.
    let flow_path = format!("/flows/{}", api.correlation);
    let timeline = api
        .until(&flow_path, &operator, |t| {
            let services: BTreeSet<String> = t["entries"]
                .as_array()?
                .iter()
                .filter_map(|e| e["service"].as_str().map(str::to_owned))
                .collect();
            ["orders", "agreements", "prepayment", "issues"]
                .iter()
                .all(|s| services.contains(*s))
                .then(|| t.clone())
        })
        .await;
    assert_eq!(timeline["complete"], true, "{timeline}");
    let entries = timeline["entries"].as_array().expect("entries").clone();
    let times: Vec<&str> = entries.iter().filter_map(|e| e["at"].as_str()).collect();
    let mut sorted: Vec<chrono::DateTime<Utc>> = times
        .iter()
        .map(|t| t.parse().expect("RFC 3339 time"))
        .collect();
    let as_listed = sorted.clone();
    sorted.sort();
    assert_eq!(as_listed, sorted, "entries in time order: {timeline}");
    let position = |service: &str, direction: &str, event_type: &str| {
        entries
            .iter()
            .position(|e| {
                e["service"] == service
                    && e["direction"] == direction
                    && e["event_type"] == event_type
            })
            .unwrap_or_else(|| panic!("no {service} {direction} {event_type} in {timeline}"))
    };
    let placed = position("orders", "emitted", "orders.order.placed");
    let accepted = position("orders", "emitted", "orders.receipt.accepted");
    let counted = position("agreements", "consumed", "orders.receipt.accepted");
    assert!(placed < accepted && accepted <= counted, "{timeline}");
    assert_eq!(
        entries[accepted]["event_id"], entries[counted]["event_id"],
        "agreements counted the very acceptance orders emitted"
    );

    eprintln!("flow {} ({} steps):", api.correlation, entries.len());
    for e in &entries {
        eprintln!(
            "  {} {:<12} {:<8} {}",
            e["at"].as_str().unwrap_or(""),
            e["service"].as_str().unwrap_or(""),
            e["direction"].as_str().unwrap_or(""),
            e["event_type"].as_str().unwrap_or("")
        );
    }

    // One trace: every event a request or a message of the flow produced,
    // in every service, carries the caller's trace id. A durable timer keeps
    // the flow's correlation but not its trace, so what a timer raises (the
    // payment deadline of an acceptance made in 2024 fires at once) starts a
    // trace of its own; those are listed, and must be a system actor's
    // steps of a timer of this flow.
    let mut carried = 0;
    let mut by_timers = Vec::new();
    let mut off_trace = Vec::new();
    for schema in ["orders", "agreements", "prepayment", "issues"] {
        let pool = cluster.pool_in(schema).await;
        let rows: Vec<(String, Option<String>, Option<Value>)> = sqlx::query_as(
            "SELECT event_type, traceparent, actor FROM outbox WHERE correlation = $1::uuid ORDER BY seq",
        )
        .bind(&api.correlation)
        .fetch_all(&pool)
        .await
        .expect("outbox");
        let timers: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM timers WHERE correlation = $1::uuid AND fired_at IS NOT NULL",
        )
        .bind(&api.correlation)
        .fetch_one(&pool)
        .await
        .expect("timers");
        for (event_type, tp, actor) in &rows {
            let id = tp
                .as_deref()
                .and_then(vbp_bus::trace::trace_id_of_traceparent)
                .unwrap_or_default();
            if id == trace_id {
                carried += 1;
                continue;
            }
            let by_system = actor
                .as_ref()
                .and_then(|a| serde_json::from_value::<vbp_kernel::Actor>(a.clone()).ok())
                .is_some_and(|a| a.is_system());
            if by_system && timers > 0 {
                by_timers.push(format!("{schema}: {event_type}"));
            } else {
                off_trace.push(format!("{schema}: {event_type} ({tp:?})"));
            }
        }
        pool.close().await;
    }
    if !by_timers.is_empty() {
        eprintln!("raised by timers, each on a trace of its own: {by_timers:?}");
    }
    assert!(
        off_trace.is_empty(),
        "events of the flow that left its trace {trace_id}: {off_trace:#?}"
    );
    assert!(
        carried
            >= entries
                .iter()
                .filter(|e| e["direction"] == "emitted"
                    && e["actor"]["org"] != OrgId::SYSTEM.to_string())
                .count(),
        "every event the flow's callers caused is on the trace"
    );
}
