//! Each organisation kind against routes it may and may not call.

use serde_json::json;
use vbp_kernel::OrgKind;

use crate::common::{Harness, actor, json_ok, problem};

#[tokio::test]
async fn each_org_kind_reaches_its_route_and_is_refused_elsewhere() {
    let h = Harness::start().await;
    h.serve_test_ops().await;
    for kind in OrgKind::ALL {
        let me = actor(kind);
        let token = h.token_for(&me);
        let echoed = json_ok(
            h.post(&format!("/api/v1/test/only/{kind}"), &token, &json!({}))
                .await,
        )
        .await;
        // The actor the service receives is the token's, for its own scoping.
        assert_eq!(echoed["actor"]["org"], me.org.to_string(), "{kind}");
        assert_eq!(echoed["actor"]["org_kind"], kind.as_str());
        assert_eq!(echoed["actor"]["region"], me.region.to_string());

        for other in OrgKind::ALL.into_iter().filter(|o| *o != kind) {
            let refused = problem(
                h.post(&format!("/api/v1/test/only/{other}"), &token, &json!({}))
                    .await,
                403,
            )
            .await;
            assert_eq!(refused["code"], "forbidden");
            assert!(
                refused["detail"].as_str().unwrap().contains(other.as_str()),
                "{refused}"
            );
        }
    }
}

#[tokio::test]
async fn roles_are_required_on_top_of_the_kind() {
    let h = Harness::start().await;
    h.serve_test_ops().await;
    let body = json!({"id": "x"});
    let mut nurse = actor(OrgKind::Hospital);
    problem(
        h.post("/api/v1/test/roles", &h.token_for(&nurse), &body)
            .await,
        403,
    )
    .await;
    nurse.roles = vec!["order.write".into()];
    json_ok(
        h.post("/api/v1/test/roles", &h.token_for(&nurse), &body)
            .await,
    )
    .await;
    let mut bureau = actor(OrgKind::Bureau);
    bureau.roles = vec!["order.write".into()];
    problem(
        h.post("/api/v1/test/roles", &h.token_for(&bureau), &body)
            .await,
        403,
    )
    .await;
}

#[tokio::test]
async fn operator_routes_refuse_every_other_kind_before_any_rpc() {
    // No backend is running: a refusal must come from the gateway's policy
    // (403), never from trying the service (503).
    let h = Harness::start().await;
    for kind in OrgKind::ALL.into_iter().filter(|k| *k != OrgKind::Operator) {
        let token = h.token(kind);
        problem(h.get("/api/v1/services/orders/ping", &token).await, 403).await;
        problem(
            h.get("/api/v1/services/orders/dead-letters", &token).await,
            403,
        )
        .await;
        let flow = format!("/api/v1/flows/{}", uuid::Uuid::now_v7());
        problem(h.get(&flow, &token).await, 403).await;
    }
    let operator = h.token(OrgKind::Operator);
    problem(h.get("/api/v1/services/orders/ping", &operator).await, 503).await;
}
