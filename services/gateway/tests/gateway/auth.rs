//! Token matrix: only a valid token of an accepted algorithm and key passes.

use std::time::Duration;

use serde_json::json;
use vbp_gateway::GatewayConfig;
use vbp_gateway::token::{self, Claims};
use vbp_kernel::OrgKind;

use crate::common::{Harness, Setup, actor, fixture, problem, rs256};

/// Base64url without padding, for hand-made tokens.
fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn production_gateway(jwks: bool) -> Harness {
    let config = GatewayConfig {
        jwt_public_key_file: (!jwks).then(|| fixture("rs256-a.pub.pem")),
        jwks_file: jwks.then(|| fixture("jwks.json")),
        leeway_secs: 30,
        ..Setup::default().config
    };
    let h = Harness::with(Setup {
        dev: false,
        config,
        ..Setup::default()
    })
    .await;
    h.serve_test_ops().await;
    h
}

fn claims_at(h: &Harness, exp_in: i64, nbf_in: Option<i64>) -> Claims {
    let now = h.platform.clock.now().timestamp();
    let mut claims = Claims::for_actor(
        &actor(OrgKind::Hospital),
        Duration::from_secs(60),
        h.platform.clock.now(),
    );
    claims.exp = now + exp_in;
    claims.nbf = nbf_in.map(|n| now + n);
    claims
}

#[tokio::test]
async fn only_a_valid_rs256_token_passes_in_production() {
    let h = production_gateway(false).await;
    let body = json!({});
    let call = |token: String| {
        let h = &h;
        let body = &body;
        async move { h.post("/api/v1/test/only/hospital", &token, body).await }
    };

    let valid = rs256("rs256-a.key.pem", None, &claims_at(&h, 300, Some(0)));
    let ok = call(valid).await;
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());

    let expired = rs256("rs256-a.key.pem", None, &claims_at(&h, -120, Some(-600)));
    assert_eq!(
        problem(call(expired).await, 401).await["code"],
        "token_expired"
    );

    let early = rs256("rs256-a.key.pem", None, &claims_at(&h, 3600, Some(600)));
    assert_eq!(
        problem(call(early).await, 401).await["code"],
        "token_not_yet_valid"
    );

    let claims = claims_at(&h, 300, None);
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(&serde_json::to_vec(&claims).unwrap());
    let none = format!("{header}.{payload}.");
    assert_eq!(
        problem(call(none).await, 401).await["code"],
        "invalid_token"
    );

    // HS256 signed with the public key as the secret: the classic algorithm confusion.
    let public_pem = std::fs::read(fixture("rs256-a.pub.pem")).unwrap();
    let confused = token::sign(
        &claims,
        jsonwebtoken::Algorithm::HS256,
        &jsonwebtoken::EncodingKey::from_secret(&public_pem),
        None,
    )
    .unwrap();
    let refused = problem(call(confused).await, 401).await;
    assert_eq!(refused["code"], "invalid_token");
    assert!(
        refused["detail"].as_str().unwrap().contains("HS256"),
        "{refused}"
    );

    let wrong_key = rs256("rs256-b.key.pem", None, &claims);
    let refused = problem(call(wrong_key).await, 401).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("signature"),
        "{refused}"
    );

    for garbage in ["garbage", "a.b.c", "", "Bearer"] {
        let response = h
            .http
            .post(h.url("/api/v1/test/only/hospital"))
            .header("authorization", format!("Bearer {garbage}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let p = problem(response, 401).await;
        assert!(
            ["invalid_token", "missing_token"].contains(&p["code"].as_str().unwrap()),
            "{p}"
        );
    }

    let missing = h
        .http
        .post(h.url("/api/v1/test/only/hospital"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        missing.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(problem(missing, 401).await["code"], "missing_token");

    let mut bad_claims = serde_json::to_value(&claims).unwrap();
    bad_claims["org_kind"] = json!("pharmacy");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(
        &std::fs::read(fixture("rs256-a.key.pem")).unwrap(),
    )
    .unwrap();
    let odd = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &bad_claims,
        &key,
    )
    .unwrap();
    let refused = problem(call(odd).await, 401).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("org_kind"),
        "{refused}"
    );
}

#[tokio::test]
async fn jwks_keys_are_chosen_by_kid() {
    let h = production_gateway(true).await;
    let claims = claims_at(&h, 300, None);
    let body = json!({});
    let with_kid = rs256("rs256-a.key.pem", Some("key-a"), &claims);
    let ok = h.post("/api/v1/test/only/hospital", &with_kid, &body).await;
    assert_eq!(ok.status(), 200);
    let without_kid = rs256("rs256-a.key.pem", None, &claims);
    assert_eq!(
        h.post("/api/v1/test/only/hospital", &without_kid, &body)
            .await
            .status(),
        200
    );
    let unknown = rs256("rs256-a.key.pem", Some("key-z"), &claims);
    let refused = problem(
        h.post("/api/v1/test/only/hospital", &unknown, &body).await,
        401,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains("key-z"),
        "{refused}"
    );
    let other = rs256("rs256-b.key.pem", Some("key-a"), &claims);
    problem(
        h.post("/api/v1/test/only/hospital", &other, &body).await,
        401,
    )
    .await;
}

#[tokio::test]
async fn dev_mode_accepts_dev_tokens_and_refuses_rs256_without_a_key() {
    let h = Harness::start().await;
    h.serve_test_ops().await;
    let ok = h
        .post(
            "/api/v1/test/only/hospital",
            &h.token(OrgKind::Hospital),
            &json!({}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    let claims = claims_at(&h, 300, None);
    let rs = rs256("rs256-a.key.pem", None, &claims);
    let refused = problem(
        h.post("/api/v1/test/only/hospital", &rs, &json!({})).await,
        401,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains("RS256"),
        "{refused}"
    );
    // The dev secret is the one `vbp token` reads: a token minted from the
    // platform config alone passes.
    let secret = token::dev_secret(&h.platform.config).unwrap();
    let a = actor(OrgKind::Hospital);
    let cli = token::mint_dev(
        &secret,
        &a.sub,
        a.org,
        a.org_kind,
        a.region,
        &["order.write"],
        Duration::from_secs(60),
        h.platform.clock.now(),
    )
    .unwrap();
    assert_eq!(
        h.post("/api/v1/test/only/hospital", &cli, &json!({}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn production_refuses_to_start_without_a_public_key() {
    let env = vbp_platform::testkit::TestEnv::new().await;
    let config = env
        .config()
        .with_figment_overrides(json!({"dev": false}))
        .unwrap();
    let platform = env
        .platform_with(config, tokio_util::sync::CancellationToken::new())
        .await;
    let err = match vbp_gateway::Gateway::from_platform(platform) {
        Ok(_) => panic!("a production gateway without keys started"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("jwt_public_key_file"), "{err}");
}
