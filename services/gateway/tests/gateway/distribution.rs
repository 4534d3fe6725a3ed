//! The distribution routes, against the real agreements and distribution
//! services with the Liaoning demo: each caller sees its own relations, and
//! only the territorial bureau's kind may decide a change.

use std::time::Duration;

use serde_json::{Value, json};
use vbp_contracts::Service;
use vbp_distribution::demo::{DISTRIBUTOR_FUXIN, FUXIN_HOSPITAL, MANUFACTURER_A};
use vbp_kernel::{Actor, OrgKind};

use crate::common::{Harness, json_ok, problem};

fn demo_actor(org: &str, kind: OrgKind, region: &str) -> Actor {
    Actor {
        sub: format!("demo:{org}"),
        org: org.parse().expect("demo id"),
        org_kind: kind,
        region: region.parse().expect("region"),
        roles: Vec::new(),
    }
}

#[tokio::test]
async fn relations_are_reachable_through_the_gateway_and_scoped_by_caller() {
    let h = Harness::start().await;
    h.start_backend(Service::Agreements, vbp_agreements::run)
        .await;
    h.start_backend(Service::Distribution, vbp_distribution::run)
        .await;
    let operator = h.token(OrgKind::Operator);
    json_ok(
        h.post("/api/v1/demo/agreements", &operator, &json!({}))
            .await,
    )
    .await;
    // Distribution projects the agreements demo from events; until then it says so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = h
            .post("/api/v1/demo/distribution", &operator, &json!({}))
            .await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(
            response.status(),
            503,
            "only 'projection pending' is worth waiting for"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agreements demo was never projected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let hospital = h.token_for(&demo_actor(FUXIN_HOSPITAL, OrgKind::Hospital, "210902"));
    let mine = json_ok(h.get("/api/v1/relations?page_size=100", &hospital).await).await;
    let items = mine["items"].as_array().expect("items");
    assert!(!items.is_empty(), "the demo hospital has relations");
    assert!(
        items.iter().all(|r| r["hospital"] == FUXIN_HOSPITAL),
        "{mine}"
    );

    let distributor = h.token_for(&demo_actor(
        DISTRIBUTOR_FUXIN,
        OrgKind::Distributor,
        "210900",
    ));
    let theirs = json_ok(h.get("/api/v1/relations?page_size=100", &distributor).await).await;
    let theirs: &Vec<Value> = theirs["items"].as_array().expect("items");
    assert!(theirs.iter().all(|r| r["distributor"] == DISTRIBUTOR_FUXIN));

    let manufacturer = h.token_for(&demo_actor(MANUFACTURER_A, OrgKind::Manufacturer, "330100"));
    let change = uuid::Uuid::now_v7();
    let refused = problem(
        h.post(
            &format!("/api/v1/changes/{change}/approve"),
            &manufacturer,
            &json!({}),
        )
        .await,
        403,
    )
    .await;
    assert_eq!(refused["code"], "forbidden");
    let bad = problem(
        h.get("/api/v1/relations/at?hospital=x", &hospital).await,
        422,
    )
    .await;
    assert_eq!(bad["field"], "hospital");
}

/// The flow issue 5 describes, entirely through HTTP: authorise → confirm →
/// a county hospital selects two distributors → one confirms, one refuses
/// (remote county) → a change approved only by the hospital's city bureau →
/// "who delivered then" across the change → the change limit.
#[tokio::test]
async fn the_full_distribution_flow_through_the_gateway() {
    use vbp_agreements::demo::{
        COUNTY_HOSPITAL, DISTRIBUTOR_SHENYANG, FUXIN_BUREAU, PERIOD_2, SHENYANG_BUREAU,
    };
    use vbp_distribution::demo::A_PRODUCTS;

    let h = Harness::start().await;
    h.start_backend(Service::Agreements, vbp_agreements::run)
        .await;
    h.start_backend(Service::Distribution, vbp_distribution::run)
        .await;
    let operator = h.token(OrgKind::Operator);
    json_ok(
        h.post("/api/v1/demo/agreements", &operator, &json!({}))
            .await,
    )
    .await;

    let manufacturer = h.token_for(&demo_actor(MANUFACTURER_A, OrgKind::Manufacturer, "330100"));
    let d_fuxin = h.token_for(&demo_actor(
        DISTRIBUTOR_FUXIN,
        OrgKind::Distributor,
        "210900",
    ));
    let d_shenyang = h.token_for(&demo_actor(
        DISTRIBUTOR_SHENYANG,
        OrgKind::Distributor,
        "210100",
    ));
    let hospital = h.token_for(&demo_actor(COUNTY_HOSPITAL, OrgKind::Hospital, "210922"));
    let fuxin_bureau = h.token_for(&demo_actor(FUXIN_BUREAU, OrgKind::Bureau, "210900"));
    let shenyang_bureau = h.token_for(&demo_actor(SHENYANG_BUREAU, OrgKind::Bureau, "210100"));
    let product = A_PRODUCTS[0];

    // The supply list reaches distribution by events; authorising waits for it.
    let grant = |distributor: &str| json!({ "period": PERIOD_2, "distributor": distributor, "products": [product], "areas": ["210900"] });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let first = loop {
        let response = h
            .post(
                "/api/v1/authorisations",
                &manufacturer,
                &grant(DISTRIBUTOR_FUXIN),
            )
            .await;
        if response.status() == 201 {
            break response.json::<Value>().await.expect("json");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "supply list never projected: {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let second = json_ok(
        h.post(
            "/api/v1/authorisations",
            &manufacturer,
            &grant(DISTRIBUTOR_SHENYANG),
        )
        .await,
    )
    .await;
    for (auth, token) in [(&first, &d_fuxin), (&second, &d_shenyang)] {
        let id = auth["authorisation"].as_str().expect("id");
        let confirmed = json_ok(
            h.post(
                &format!("/api/v1/authorisations/{id}/confirm"),
                token,
                &json!({}),
            )
            .await,
        )
        .await;
        assert_eq!(confirmed["state"], "confirmed");
    }
    // Only the distributor named may confirm; a manufacturer may not even call it.
    let id = first["authorisation"].as_str().expect("id");
    problem(
        h.post(
            &format!("/api/v1/authorisations/{id}/confirm"),
            &manufacturer,
            &json!({}),
        )
        .await,
        403,
    )
    .await;

    json_ok(
        h.put_json(
            "/api/v1/remote-areas/210922",
            &fuxin_bureau,
            &json!({ "remote": true }),
        )
        .await,
    )
    .await;

    let selection = json_ok(
        h.post(
            "/api/v1/relations/select",
            &hospital,
            &json!({ "period": PERIOD_2, "national_code": product, "distributors": [DISTRIBUTOR_FUXIN, DISTRIBUTOR_SHENYANG] }),
        )
        .await,
    )
    .await;
    let relations = selection["relations"].as_array().expect("relations");
    assert_eq!(relations.len(), 2);
    let relation_of = |d: &str| {
        relations
            .iter()
            .find(|r| r["distributor"] == d)
            .expect("relation")["relation"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    let active = json_ok(
        h.post(
            &format!(
                "/api/v1/relations/{}/confirm",
                relation_of(DISTRIBUTOR_FUXIN)
            ),
            &d_fuxin,
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(active["state"], "active");
    let refused = json_ok(
        h.post(
            &format!(
                "/api/v1/relations/{}/refuse",
                relation_of(DISTRIBUTOR_SHENYANG)
            ),
            &d_shenyang,
            &json!({ "reason": "路途遥远，无法保障时效" }),
        )
        .await,
    )
    .await;
    assert_eq!(
        refused["remote_area"], true,
        "a refusal for a remote county is recorded as such"
    );

    // A change: only the hospital's territorial (city) bureau decides.
    let change = json_ok(
        h.post(
            "/api/v1/changes",
            &hospital,
            &json!({ "period": PERIOD_2, "national_code": product, "from_distributor": DISTRIBUTOR_FUXIN,
                     "to_distributor": DISTRIBUTOR_SHENYANG, "effective_from": "2024-08-10", "reason": "配送不及时" }),
        )
        .await,
    )
    .await;
    let change_id = change["change"].as_str().expect("id");
    let other_city = problem(
        h.post(
            &format!("/api/v1/changes/{change_id}/approve"),
            &shenyang_bureau,
            &json!({}),
        )
        .await,
        403,
    )
    .await;
    assert_eq!(other_city["code"], "forbidden");
    json_ok(
        h.post(
            &format!("/api/v1/changes/{change_id}/approve"),
            &fuxin_bureau,
            &json!({}),
        )
        .await,
    )
    .await;

    // Who delivered then, either side of the change date.
    let who = |day: &'static str| {
        let (h, hospital) = (&h, &hospital);
        async move {
            let path = format!(
                "/api/v1/relations/at?hospital={COUNTY_HOSPITAL}&national_code={product}&on={day}"
            );
            let answer = json_ok(h.get(&path, hospital).await).await;
            answer["relations"]
                .as_array()
                .expect("relations")
                .iter()
                .map(|r| r["distributor"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(who("2024-08-05").await, vec![DISTRIBUTOR_FUXIN.to_owned()]);
    assert_eq!(
        who("2024-08-15").await,
        vec![DISTRIBUTOR_SHENYANG.to_owned()]
    );

    // The limit of changes per relation per period (2 by default).
    let back = json!({ "period": PERIOD_2, "national_code": product, "from_distributor": DISTRIBUTOR_SHENYANG,
                       "to_distributor": DISTRIBUTOR_FUXIN, "effective_from": "2024-09-01", "reason": "恢复原配送企业" });
    json_ok(h.post("/api/v1/changes", &hospital, &back).await).await;
    let over = h.post("/api/v1/changes", &hospital, &back).await;
    assert!(over.status().is_client_error(), "{}", over.status());
    let over: Value = over.json().await.expect("problem");
    assert_eq!(over["code"], "change_limit_reached", "{over}");
}
