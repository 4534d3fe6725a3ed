//! Integrator batches onto the ingest stream: per-item answers, JetStream
//! de-duplication across resends, and tenancy of the integrator id.

use serde_json::{Value, json};
use vbp_contracts::{headers, ingest};
use vbp_gateway::ingest::IngestResponse;
use vbp_kernel::OrgKind;

use crate::common::{Harness, actor, json_ok, problem};

fn order(external_id: &str) -> Value {
    json!({
        "event": "order_placed",
        "external_id": external_id,
        "payload": {
            "external_id": external_id,
            "hospital": "0190b6d4-7c3e-7def-8a12-3456789abcde",
            "distributor": "0190b6d4-7c3e-7def-8a12-3456789abcdf",
            "placed_at": "2024-08-01T00:30:00Z",
            "lines": [{"national_code": "C15011121200000107660000016", "quantity": 20, "unit_price_fen": 48000}],
        }
    })
}

fn received(external_id: &str, order: &str) -> Value {
    json!({
        "event": "order_received",
        "payload": {
            "external_id": external_id,
            "order_external_id": order,
            "shipment_no": "SHP-1",
            "received_at": "2024-08-01T00:45:00Z",
        }
    })
}

async fn stream_messages(h: &Harness) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let mut stream = h
        .platform
        .js
        .get_stream(h.platform.ns.ingest_stream())
        .await
        .expect("ingest stream");
    let count = stream.info().await.expect("info").state.messages;
    let mut out = Vec::new();
    for seq in 1..=count {
        out.push(stream.get_raw_message(seq).await.expect("message"));
    }
    out
}

#[tokio::test]
async fn a_batch_is_answered_per_item_and_stored_exactly_once() {
    let h = Harness::start().await;
    let integrator = actor(OrgKind::Integrator);
    let token = h.token_for(&integrator);
    let path = format!("/api/v1/ingest/{}", integrator.org);

    let mut too_many = order("PO-3");
    too_many["payload"]["lines"][0]["quantity"] = json!(0);
    let mut wrong_type = order("PO-4");
    wrong_type["payload"]["lines"][0]["unit_price_fen"] = json!("480.00");
    let batch = json!({"items": [
        order("PO-1"),
        received("RCV-1", "PO-1"),
        order("PO-1"),
        too_many,
        wrong_type,
        {"event": "order_shipped", "payload": {}},
    ]});

    let first: IngestResponse =
        serde_json::from_value(json_ok(h.post(&path, &token, &batch).await).await).unwrap();
    let statuses: Vec<&str> = first
        .items
        .iter()
        .map(|i| match i.status {
            vbp_gateway::ingest::ItemStatus::Accepted => "accepted",
            vbp_gateway::ingest::ItemStatus::Duplicate => "duplicate",
            vbp_gateway::ingest::ItemStatus::Rejected => "rejected",
            vbp_gateway::ingest::ItemStatus::Failed => "failed",
        })
        .collect();
    assert_eq!(
        statuses,
        [
            "accepted",
            "accepted",
            "duplicate",
            "rejected",
            "rejected",
            "rejected"
        ]
    );
    assert_eq!(
        (
            first.accepted,
            first.duplicates,
            first.rejected,
            first.failed
        ),
        (2, 1, 3, 0)
    );
    assert_eq!(
        first.items.iter().map(|i| i.index).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(
        first.items[3].field.as_deref(),
        Some("items[3].payload.lines[0].quantity")
    );
    assert_eq!(
        first.items[4].field.as_deref(),
        Some("items[4].payload.lines[0].unit_price_fen")
    );
    assert_eq!(first.items[5].code.as_deref(), Some("unknown_event"));
    let expected_id = ingest::message_id(&integrator.org.to_string(), "PO-1");
    assert_eq!(
        first.items[0].message_id.as_deref(),
        Some(expected_id.as_str())
    );

    let second: IngestResponse =
        serde_json::from_value(json_ok(h.post(&path, &token, &batch).await).await).unwrap();
    assert_eq!(
        (second.accepted, second.duplicates, second.rejected),
        (0, 3, 3)
    );
    assert_eq!(
        second.items[0].stream_sequence,
        first.items[0].stream_sequence
    );

    let messages = stream_messages(&h).await;
    assert_eq!(messages.len(), 2, "the valid items, once each");
    let placed = &messages[0];
    assert_eq!(
        placed.subject.as_str(),
        h.platform
            .ns
            .ingest(&integrator.org.to_string(), "order_placed")
    );
    assert_eq!(
        placed.headers.get(headers::MSG_ID).unwrap().as_str(),
        expected_id
    );
    assert_eq!(
        placed.headers.get(headers::TYPE).unwrap().as_str(),
        "order_placed"
    );
    let actor_header: vbp_kernel::Actor =
        serde_json::from_str(placed.headers.get(headers::ACTOR).unwrap().as_str()).unwrap();
    assert_eq!(actor_header.org, integrator.org);
    // The correlation is the one the orders service derives from the message
    // id, so NATS-direct and HTTP ingest of one order join the same flow.
    let meta = vbp_bus::codec::decode_ingest(
        placed.subject.as_str(),
        Some(&placed.headers),
        placed.sequence,
        chrono::Utc::now(),
    )
    .unwrap();
    assert_eq!(
        meta.correlation.to_string(),
        first.items[0].correlation.unwrap().to_string()
    );
    assert_eq!(meta.id, vbp_bus::codec::ingest_event_id(&expected_id));
    let body: ingest::OrderPlaced = serde_json::from_slice(&placed.payload).unwrap();
    assert_eq!(body.lines[0].quantity, 20);
}

#[tokio::test]
async fn integrators_post_only_for_themselves() {
    let h = Harness::start().await;
    let integrator = actor(OrgKind::Integrator);
    let token = h.token_for(&integrator);
    let batch = json!({"items": [order("PO-9")]});
    let other = actor(OrgKind::Integrator);
    let refused = problem(
        h.post(&format!("/api/v1/ingest/{}", other.org), &token, &batch)
            .await,
        403,
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains(&integrator.org.to_string()),
        "{refused}"
    );
    let hospital = h.token(OrgKind::Hospital);
    problem(
        h.post(
            &format!("/api/v1/ingest/{}", integrator.org),
            &hospital,
            &batch,
        )
        .await,
        403,
    )
    .await;
    // An operator may post for any integrator (e.g. to replay a file).
    let operator = h.token(OrgKind::Operator);
    let ok: IngestResponse = serde_json::from_value(
        json_ok(
            h.post(&format!("/api/v1/ingest/{}", other.org), &operator, &batch)
                .await,
        )
        .await,
    )
    .unwrap();
    assert_eq!(ok.accepted, 1);
    assert_eq!(stream_messages(&h).await.len(), 1);
}

#[tokio::test]
async fn malformed_batches_are_refused_as_a_whole() {
    let h = Harness::with(crate::common::Setup {
        config: vbp_gateway::GatewayConfig {
            ingest_max_batch: 2,
            ..crate::common::Setup::default().config
        },
        ..crate::common::Setup::default()
    })
    .await;
    let integrator = actor(OrgKind::Integrator);
    let token = h.token_for(&integrator);
    let path = format!("/api/v1/ingest/{}", integrator.org);
    let big = json!({"items": [order("A"), order("B"), order("C")]});
    let p = problem(h.post(&path, &token, &big).await, 422).await;
    assert_eq!(
        (p["code"].as_str(), p["field"].as_str()),
        (Some("batch_too_large"), Some("items"))
    );
    assert_eq!(
        problem(h.post(&path, &token, &json!({"items": []})).await, 422).await["field"],
        "items"
    );
    assert_eq!(
        problem(h.post(&path, &token, &json!({"item": []})).await, 422).await["field"],
        "item"
    );
    assert_eq!(
        problem(h.post(&path, &token, &json!([order("A")])).await, 422).await["code"],
        "validation_failed"
    );
    let bad_id = problem(
        h.post("/api/v1/ingest/a.b", &h.token(OrgKind::Operator), &big)
            .await,
        422,
    )
    .await;
    assert_eq!(bad_id["field"], "integrator");
}

fn shipped(external_id: &str, expiry_date: &str) -> Value {
    json!({
        "event": "shipment_dispatched",
        "payload": {
            "external_id": external_id,
            "order_external_id": "PO-1",
            "shipment_no": "SHP-1",
            "shipped_at": "2024-08-01T00:40:00Z",
            "lines": [{"national_code": "C15011121200000107660000016", "batch_no": "B1",
                       "expiry_date": expiry_date, "quantity": 20}],
        }
    })
}

#[tokio::test]
async fn order_changes_and_shipping_notes_are_checked_at_the_edge_and_stored() {
    let h = Harness::start().await;
    let integrator = actor(OrgKind::Integrator);
    let token = h.token_for(&integrator);
    let path = format!("/api/v1/ingest/{}", integrator.org);
    let update = json!({"event": "order_updated", "payload": {
        "external_id": "UP-1", "order_external_id": "PO-1", "updated_at": "2024-08-01T00:35:00Z",
        "lines": [{"national_code": "C15011121200000107660000016", "quantity": 2, "unit_price_fen": 48000},
                  {"national_code": "C15011121200000107660000016", "quantity": 3, "unit_price_fen": 48000}]}});
    let mut fixed = update.clone();
    fixed["payload"]["lines"]
        .as_array_mut()
        .expect("lines")
        .pop();
    let answer: IngestResponse = serde_json::from_value(
        json_ok(
            h.post(
                &path,
                &token,
                &json!({"items": [
                    shipped("SH-1", "2024-08-01"),
                    shipped("SH-2", "2026-12-31"),
                    update,
                    fixed,
                ]}),
            )
            .await,
        )
        .await,
    )
    .unwrap();
    assert_eq!((answer.accepted, answer.rejected), (2, 2));
    // Expiring on the (Beijing) shipping day is refused before it is stored.
    assert_eq!(
        answer.items[0].field.as_deref(),
        Some("items[0].payload.lines[0].expiry_date")
    );
    assert_eq!(
        answer.items[2].field.as_deref(),
        Some("items[2].payload.lines[1].national_code")
    );
    let messages = stream_messages(&h).await;
    let subjects: Vec<&str> = messages.iter().map(|m| m.subject.as_str()).collect();
    let org = integrator.org.to_string();
    assert_eq!(
        subjects,
        [
            h.platform.ns.ingest(&org, "shipment_dispatched"),
            h.platform.ns.ingest(&org, "order_updated"),
        ]
    );
    let note: ingest::ShipmentDispatched = serde_json::from_slice(&messages[0].payload).unwrap();
    assert_eq!(note.lines[0].batch_no, "B1");
}

mod through_the_orders_service {
    //! With the real services and the Liaoning demo: an integrator's whole
    //! flow posted in one batch, out of order, applied in order.

    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};
    use vbp_agreements::demo::{DISTRIBUTOR_SHENYANG, FUXIN_HOSPITAL, INTEGRATOR, PERIOD_2};
    use vbp_contracts::Service;
    use vbp_kernel::{Actor, OrgKind};

    use crate::common::{Harness, json_ok};

    const PRODUCT: &str = "C02010205103001107660000012";

    fn who(org: &str, kind: OrgKind, region: &str) -> Actor {
        Actor {
            sub: format!("user:{org}"),
            org: org.parse().expect("id"),
            org_kind: kind,
            region: region.parse().expect("region"),
            roles: Vec::new(),
        }
    }

    async fn until<F: AsyncFn() -> Option<Value>>(what: &str, f: F) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tokio::test]
    async fn a_flow_posted_backwards_is_applied_in_order_and_a_bad_change_is_listed() {
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
        let line = |q: i64, p: i64| json!([{"national_code": PRODUCT, "quantity": q, "unit_price_fen": p}]);
        let item = |event: &str, payload: Value| json!({"event": event, "payload": payload});
        let items = json!([
            item(
                "order_accepted",
                json!({"external_id": "AC-1", "order_external_id": "PO-1",
                "accepted_at": "2024-09-02T01:55:00Z",
                "lines": [{"national_code": PRODUCT, "accepted_quantity": 8, "rejected_quantity": 0}]})
            ),
            item(
                "order_received",
                json!({"external_id": "RC-1", "order_external_id": "PO-1",
                "shipment_no": "S-1", "received_at": "2024-09-02T01:50:00Z"})
            ),
            item(
                "shipment_dispatched",
                json!({"external_id": "SH-1", "order_external_id": "PO-1",
                "shipment_no": "S-1", "shipped_at": "2024-09-02T01:45:00Z",
                "lines": [{"national_code": PRODUCT, "batch_no": "B1", "expiry_date": "2027-01-01", "quantity": 8}]})
            ),
            item(
                "order_updated",
                json!({"external_id": "UP-2", "order_external_id": "PO-1",
                "updated_at": "2024-09-02T01:42:00Z", "lines": line(9, price + 1)})
            ),
            item(
                "order_updated",
                json!({"external_id": "UP-1", "order_external_id": "PO-1",
                "updated_at": "2024-09-02T01:40:00Z", "lines": line(8, price)})
            ),
            item(
                "order_placed",
                json!({"external_id": "PO-1", "hospital": FUXIN_HOSPITAL,
                "distributor": DISTRIBUTOR_SHENYANG, "placed_at": "2024-09-02T01:30:00Z",
                "lines": line(12, price)})
            ),
        ]);
        let answer = json_ok(
            h.post(
                &format!("/api/v1/ingest/{INTEGRATOR}"),
                &integrator,
                &json!({ "items": items }),
            )
            .await,
        )
        .await;
        assert_eq!(answer["accepted"], 6, "{answer}");

        let order = until("the accepted order", async || {
            let list = json_ok(h.get("/api/v1/orders", &hospital).await).await;
            let o = list["items"].as_array()?.first()?.clone();
            (o["lines"][0]["accepted_quantity"] == 8).then_some(o)
        })
        .await;
        assert_eq!(order["lines"][0]["quantity"], 8);
        assert_eq!(order["total_amount_fen"], 8 * price);
        assert_eq!(order["shipments"][0]["shipment_no"], "S-1");

        let rejected = until("the rejected change", async || {
            let list = json_ok(h.get("/api/v1/ingest/rejections", &integrator).await).await;
            (list["items"].as_array().map(Vec::len) == Some(1)).then_some(list)
        })
        .await;
        assert_eq!(rejected["items"][0]["external_id"], "UP-2");
        assert_eq!(rejected["items"][0]["field"], "lines[0].unit_price_fen");
    }
}
