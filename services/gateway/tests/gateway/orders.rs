//! The integrator's path through the gateway with the real services and the
//! Liaoning demo: an order at the winning price becomes an order the
//! hospital sees; one a fen off is refused, and the integrator can read why.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vbp_agreements::demo::{
    DISTRIBUTOR_FUXIN, DISTRIBUTOR_SHENYANG, FUXIN_BUREAU, FUXIN_HOSPITAL, INTEGRATOR, PERIOD_2,
};
use vbp_contracts::Service;
use vbp_kernel::OrgKind;

use crate::common::{Harness, json_ok, problem, until, who};

const PRODUCT: &str = "C02010205103001107660000012";

#[tokio::test]
async fn an_integrators_order_at_the_winning_price_is_placed_and_a_fen_off_is_refused_with_its_reason()
 {
    let h = Harness::start().await;
    h.start_backend(Service::Agreements, vbp_agreements::run)
        .await;
    h.start_backend(Service::Distribution, vbp_distribution::run)
        .await;
    h.start_backend(Service::Orders, vbp_orders::run).await;
    let operator = h.token(OrgKind::Operator);
    json_ok(
        h.post("/api/v1/demo/agreements", &operator, &json!({}))
            .await,
    )
    .await;
    until("the distribution demo", async || {
        let r = h
            .post("/api/v1/demo/distribution", &operator, &json!({}))
            .await;
        (r.status() == 200).then_some(json!(true))
    })
    .await;
    h.env.clock.set(
        "2024-09-02T02:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("time"),
    );
    let hospital = h.long_token_for(&who(FUXIN_HOSPITAL, OrgKind::Hospital, "210902"));
    let integrator = h.long_token_for(&who(INTEGRATOR, OrgKind::Integrator, "210000"));

    let list = json_ok(
        h.get(
            &format!("/api/v1/periods/{PERIOD_2}/supply-list"),
            &hospital,
        )
        .await,
    )
    .await;
    let price = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["national_code"] == PRODUCT)
        .expect("the product is on the list")["winning_price_fen"]
        .as_i64()
        .expect("price");
    let order = |external_id: &str, unit_price_fen: i64| {
        json!({ "event": "order_placed", "external_id": external_id, "payload": {
            "external_id": external_id, "hospital": FUXIN_HOSPITAL, "distributor": DISTRIBUTOR_SHENYANG,
            "placed_at": "2024-09-02T01:30:00Z",
            "lines": [{ "national_code": PRODUCT, "quantity": 12, "unit_price_fen": unit_price_fen }] } })
    };
    let answer = json_ok(
        h.post(
            &format!("/api/v1/ingest/{INTEGRATOR}"),
            &integrator,
            &json!({ "items": [order("PO-2024-0902-1", price), order("PO-2024-0902-2", price + 1)] }),
        )
        .await,
    )
    .await;
    let statuses: Vec<&str> = answer["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "accepted"],
        "both are well-formed; the price rule is the service's: {answer}"
    );

    let orders = until("the order", async || {
        let list = json_ok(h.get("/api/v1/orders", &hospital).await).await;
        (list["items"].as_array().map(Vec::len) == Some(1)).then_some(list)
    })
    .await;
    assert_eq!(orders["items"][0]["distributor"], DISTRIBUTOR_SHENYANG);
    assert_eq!(orders["items"][0]["source"], "integrator");

    let rejected = until("the rejection", async || {
        let list = json_ok(h.get("/api/v1/ingest/rejections", &integrator).await).await;
        (list["items"].as_array().map(Vec::len) == Some(1)).then_some(list)
    })
    .await;
    let rejection = &rejected["items"][0];
    assert_eq!(rejection["external_id"], "PO-2024-0902-2");
    assert_eq!(rejection["field"], "lines[0].unit_price_fen");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = json_ok(h.get("/api/v1/orders", &hospital).await).await;
    assert_eq!(
        still["items"].as_array().map(Vec::len),
        Some(1),
        "the refused order created nothing"
    );
}

/// Posts until the orders service's projections have caught up (the demo's
/// relations arrive as events), then returns the created resource.
async fn created(h: &Harness, path: &str, token: &str, body: &Value) -> Value {
    until(path, async || {
        let r = h.post(path, token, body).await;
        (r.status() == 201).then_some(r)?.json::<Value>().await.ok()
    })
    .await
}

#[tokio::test]
async fn a_hospitals_order_runs_to_settlement_through_the_gateway_and_shortage_mode_caps_the_next()
{
    let h = Harness::start().await;
    h.start_backend(Service::Agreements, vbp_agreements::run)
        .await;
    h.start_backend(Service::Distribution, vbp_distribution::run)
        .await;
    h.start_backend(Service::Orders, vbp_orders::run).await;
    let operator = h.token(OrgKind::Operator);
    json_ok(
        h.post("/api/v1/demo/agreements", &operator, &json!({}))
            .await,
    )
    .await;
    until("the distribution demo", async || {
        let r = h
            .post("/api/v1/demo/distribution", &operator, &json!({}))
            .await;
        (r.status() == 200).then_some(json!(true))
    })
    .await;
    h.env.clock.set(
        "2024-09-02T02:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("time"),
    );
    let hospital = h.long_token_for(&who(FUXIN_HOSPITAL, OrgKind::Hospital, "210902"));
    let distributor = h.long_token_for(&who(DISTRIBUTOR_SHENYANG, OrgKind::Distributor, "210100"));
    let bureau = h.long_token_for(&who(FUXIN_BUREAU, OrgKind::Bureau, "210900"));
    const PRICE: i64 = 72_000;
    let line = |qty: i64, price: i64| {
        json!({ "distributor": DISTRIBUTOR_SHENYANG,
                "lines": [{ "national_code": PRODUCT, "quantity": qty, "unit_price_fen": price }] })
    };

    // Placed at the winning price; a fen off, another distributor, an
    // unknown product: 422 naming the field.
    let order = created(&h, "/api/v1/orders", &hospital, &line(12, PRICE)).await;
    assert_eq!(order["state"], "placed");
    assert_eq!(order["total_amount_fen"], 12 * PRICE);
    let bad = problem(
        h.post("/api/v1/orders", &hospital, &line(12, PRICE + 1))
            .await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "lines[0].unit_price_fen");
    let mut other = line(1, PRICE);
    other["distributor"] = json!(DISTRIBUTOR_FUXIN);
    let bad = problem(h.post("/api/v1/orders", &hospital, &other).await, 422).await;
    assert_eq!(bad["field"], "distributor");
    let mut unknown = line(1, PRICE);
    unknown["lines"][0]["national_code"] = json!("C02010205103001107669999999");
    let bad = problem(h.post("/api/v1/orders", &hospital, &unknown).await, 422).await;
    assert_eq!(bad["field"], "lines[0].national_code");

    let settle = async |order: &Value, qty: i64, invoice_no: &str| -> Value {
        let id = order["order"].as_str().expect("order id");
        json_ok(
            h.post(
                &format!("/api/v1/orders/{id}/response"),
                &distributor,
                &json!({ "response": "accepted" }),
            )
            .await,
        )
        .await;
        let shipped = json_ok(
            h.post(
                &format!("/api/v1/orders/{id}/shipments"),
                &distributor,
                &json!({ "shipment_no": format!("FH-{invoice_no}"), "lines": [
                    { "line_no": 1, "batch_no": "B240828", "expiry_date": "2027-08-27", "quantity": qty }] }),
            )
            .await,
        )
        .await;
        let shipment = shipped["shipments"][0]["shipment"]
            .as_str()
            .expect("shipment");
        json_ok(
            h.post(
                &format!("/api/v1/shipments/{shipment}/receipt"),
                &hospital,
                &json!({}),
            )
            .await,
        )
        .await;
        let acc = json_ok(
            h.post(
                &format!("/api/v1/orders/{id}/acceptances"),
                &hospital,
                &json!({ "lines": [{ "line_no": 1, "accepted_quantity": qty }] }),
            )
            .await,
        )
        .await;
        assert_eq!(acc["amount_fen"], qty * PRICE);
        acc
    };
    let invoice = |a: &str, qty: i64, invoice_no: &str| {
        json!({ "acceptance": a, "invoice_code": "021002400111", "invoice_number": invoice_no,
                "amount_fen": qty * PRICE, "tax_fen": qty * PRICE * 13 / 113,
                "issued_on": "2024-09-02" })
    };
    let first = settle(&order, 12, "00000001").await;
    let first_id = first["acceptance"].as_str().expect("id");
    // The distributor's list to invoice, a page at a time.
    let to_invoice = "/api/v1/acceptances?to_invoice=true&page=1&page_size=1";
    let todo = json_ok(h.get(to_invoice, &distributor).await).await;
    assert_eq!(
        (todo["total"].clone(), todo["page_size"].clone()),
        (json!(1), json!(1)),
        "{todo}"
    );
    assert_eq!(todo["items"][0]["acceptance"], first_id);
    let too_big = problem(
        h.get("/api/v1/acceptances?page_size=501", &distributor)
            .await,
        422,
    )
    .await;
    assert_eq!(too_big["field"], "page_size");
    // A parameter the route does not take is refused, not ignored.
    let unknown = problem(
        h.get("/api/v1/acceptances?limit=5", &distributor).await,
        422,
    )
    .await;
    assert_eq!(unknown["field"], "limit");
    assert!(
        unknown["detail"].as_str().unwrap().contains("page_size"),
        "{unknown}"
    );
    let first = json_ok(
        h.post(
            &format!("/api/v1/acceptances/{first_id}/invoice"),
            &distributor,
            &invoice(first_id, 12, "00000001"),
        )
        .await,
    )
    .await;
    assert_eq!(first["due_at"], "2024-10-31T16:00:00Z");
    let todo = json_ok(h.get(to_invoice, &distributor).await).await;
    assert_eq!(
        todo["total"], 0,
        "an invoiced item leaves the list to invoice: {todo}"
    );
    // A payment run of the hospital: a fen over what is due refuses the
    // whole run, naming the item; then it pays.
    let run = |fen: i64| json!({ "payments": [{ "acceptance": first_id, "amount_fen": fen, "channel": "online" }] });
    let refused = problem(
        h.post("/api/v1/payment-runs", &hospital, &run(12 * PRICE + 1))
            .await,
        422,
    )
    .await;
    assert_eq!(refused["field"], "payments[0].amount_fen");
    let paid = json_ok(
        h.post("/api/v1/payment-runs", &hospital, &run(12 * PRICE))
            .await,
    )
    .await;
    assert_eq!(paid["amount_fen"], 12 * PRICE);
    assert_eq!(paid["items"][0]["on_time"], true);
    let open = json_ok(h.get("/api/v1/acceptances?open_only=true", &hospital).await).await;
    assert_eq!(open["items"].as_array().map(Vec::len), Some(0), "{open}");

    // The bureau flags the product short with a cap of 5 per line.
    let shortage = created(
        &h,
        "/api/v1/shortages",
        &bureau,
        &json!({ "national_code": PRODUCT, "cap_per_line": 5, "reason": "生产企业供货不足" }),
    )
    .await;
    assert_eq!(shortage["region"], "210900");
    let listed = json_ok(h.get("/api/v1/shortages", &hospital).await).await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let capped = created(&h, "/api/v1/orders", &hospital, &line(12, PRICE)).await;
    assert_eq!(capped["lines"][0]["quantity"], 5);
    assert_eq!(capped["lines"][0]["requested_quantity"], 12);
    let second = settle(&capped, 5, "00000002").await;
    let second_id = second["acceptance"].as_str().expect("id");
    // The distributor uploads its invoices: one number twice refuses the upload.
    let upload = |numbers: &[&str]| json!({ "invoices": numbers.iter().map(|n| invoice(second_id, 5, n)).collect::<Vec<_>>() });
    let refused = problem(
        h.post(
            "/api/v1/invoice-uploads",
            &distributor,
            &upload(&["00000001"]),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(refused["field"], "invoices[0].invoice_number");
    let uploaded = json_ok(
        h.post(
            "/api/v1/invoice-uploads",
            &distributor,
            &upload(&["00000002"]),
        )
        .await,
    )
    .await;
    assert_eq!(uploaded["amount_fen"], 5 * PRICE);

    // Its invoice was wrong: moved offline with a reason, audited.
    let refused = problem(
        h.post(
            &format!("/api/v1/acceptances/{second_id}/offline-settlement"),
            &hospital,
            &json!({ "reason": "" }),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(refused["field"], "reason");
    json_ok(
        h.post(
            &format!("/api/v1/acceptances/{second_id}/offline-settlement"),
            &hospital,
            &json!({ "reason": "发票信息有误，转线下结算" }),
        )
        .await,
    )
    .await;
    let open = json_ok(
        h.get("/api/v1/acceptances?open_only=true", &distributor)
            .await,
    )
    .await;
    assert_eq!(open["items"].as_array().map(Vec::len), Some(0), "{open}");
    let all = json_ok(h.get("/api/v1/acceptances", &bureau).await).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2), "{all}");
    let audit = json_ok(h.get("/api/v1/offline-settlements", &bureau).await).await;
    assert_eq!(audit["items"][0]["acceptance"], second_id);
    assert_eq!(audit["items"][0]["reason"], "发票信息有误，转线下结算");
    assert_eq!(audit["items"][0]["actor_org"], FUXIN_HOSPITAL);

    // A non-winning substitute bought meanwhile goes to the ledger.
    let entry = created(
        &h,
        "/api/v1/substitutes",
        &hospital,
        &json!({ "short_product": PRODUCT, "substitute_name": "非中选 6F 导引导管",
                 "quantity": 3, "amount_fen": 255_000, "purchased_on": "2024-09-02" }),
    )
    .await;
    let ledger = json_ok(h.get("/api/v1/substitutes", &bureau).await).await;
    assert_eq!(ledger["items"][0]["entry"], entry["entry"]);
    let lifted = json_ok(
        h.post(
            &format!(
                "/api/v1/shortages/{}/lift",
                shortage["shortage"].as_str().expect("id")
            ),
            &bureau,
            &json!({ "reason": "恢复供应" }),
        )
        .await,
    )
    .await;
    assert!(lifted["lifted_at"].is_string());

    // Both are due in October: settled in full, one part offline; the
    // substitute is not in the online rate.
    let rates = json_ok(h.get("/api/v1/rates?month=2024-10-01", &bureau).await).await;
    assert_eq!(rates["due_fen"], 17 * PRICE);
    assert_eq!(rates["settled_fen"], 17 * PRICE);
    assert_eq!(rates["settled_offline_fen"], 5 * PRICE);
    assert_eq!(rates["settlement_rate_bp"], 10_000);
    let sep = json_ok(h.get("/api/v1/rates?month=2024-09-01", &hospital).await).await;
    assert_eq!(sep["online_fen"], 17 * PRICE);
    assert_eq!(sep["online_rate_bp"], 10_000);
    let file = json_ok(
        h.get("/api/v1/rates/export?month=2024-10-01", &bureau)
            .await,
    )
    .await;
    assert_eq!(file["rows"], 2);
    let bytes = vbp_platform::sheets::decode_base64(file["content_base64"].as_str().expect("b64"))
        .expect("base64");
    let table = vbp_platform::sheets::read_xlsx(&bytes).expect("xlsx");
    assert_eq!(table[1][1], "阜新市中心医院");
    assert_eq!(table[1][4], (17 * PRICE).to_string());
}
