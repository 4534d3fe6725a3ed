//! A gateway on a random port in front of the test's own namespace on the
//! real NATS and Postgres that `deploy/local/test` starts.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use vbp_bus::{CallError, Context, RpcError, RpcRequest, RpcServer};
use vbp_contracts::{Service, system};
use vbp_gateway::token::{self, Claims};
use vbp_gateway::{Gateway, GatewayConfig, Route, RouteTable};
use vbp_kernel::{Actor, OrgId, OrgKind, RegionCode};
use vbp_platform::Platform;
use vbp_platform::testkit::TestEnv;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub struct Harness {
    pub env: TestEnv,
    pub platform: Platform,
    pub base: String,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    dev_secret: Option<Vec<u8>>,
}

/// How a test wants its gateway.
pub struct Setup {
    pub dev: bool,
    pub config: GatewayConfig,
    pub routes: RouteTable,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            dev: true,
            config: GatewayConfig {
                rpc_timeout_ms: Some(2_000),
                fanout_timeout_ms: 1_000,
                rate_limit_per_sec: 0.0,
                ..GatewayConfig::default()
            },
            routes: RouteTable::standard().with(test_routes()),
        }
    }
}

/// The request the test `echo` operation takes: typed, so the gateway's own
/// validation has fields to name.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoRequest {
    pub id: String,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub flag: Option<bool>,
    #[serde(default)]
    pub kind: Option<OrgKind>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub fail_with: Option<u16>,
    #[serde(default)]
    pub nested: Option<Value>,
}

/// Routes onto the test operations of the `orders` service (answered by
/// [`Harness::serve_test_ops`]) and the `issues` service (answered by nobody).
pub fn test_routes() -> Vec<Route> {
    let mut routes = vec![
        Route::post("/test/echo/{id}", Service::Orders, "echo")
            .allow_any()
            .summary("回显", "Echo")
            .request::<EchoRequest>(),
        Route::get("/test/slow", Service::Orders, "slow")
            .allow_any()
            .summary("慢", "Slow"),
        Route::get("/test/nobody", Service::Issues, "echo")
            .allow_any()
            .summary("无人", "Nobody answers"),
        Route::post("/test/roles", Service::Orders, "echo")
            .allow([OrgKind::Hospital])
            .roles(["order.write"])
            .operation_id("orders_echo_roles")
            .summary("需要角色", "Needs a role")
            .request::<EchoRequest>(),
    ];
    for kind in OrgKind::ALL {
        routes.push(
            Route::post(format!("/test/only/{kind}"), Service::Orders, "echo")
                .allow([kind])
                .operation_id(format!("orders_echo_{kind}"))
                .summary(format!("仅{kind}"), format!("Only {kind}")),
        );
    }
    routes
}

impl Harness {
    pub async fn start() -> Self {
        Self::with(Setup::default()).await
    }

    pub async fn with(setup: Setup) -> Self {
        let env = TestEnv::new().await;
        let shutdown = CancellationToken::new();
        let config = env
            .config()
            .with_figment_overrides(json!({ "dev": setup.dev }))
            .expect("config");
        let platform = env.platform_with(config, shutdown.clone()).await;
        let dev_secret = setup
            .dev
            .then(|| token::dev_secret(&platform.config).expect("dev secret"));
        let gateway = Gateway::new(platform.clone(), setup.config, setup.routes).expect("gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(vbp_gateway::serve(
            gateway.clone(),
            listener,
            shutdown.clone(),
        ));
        Self {
            env,
            platform,
            base,
            http: reqwest::Client::new(),
            shutdown,
            dev_secret,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A dev (HS256) token for `actor`, valid for an hour of the test clock.
    pub fn token_for(&self, actor: &Actor) -> String {
        let secret = self.dev_secret.as_ref().expect("a dev-mode harness");
        token::mint_dev(
            secret,
            &actor.sub,
            actor.org,
            actor.org_kind,
            actor.region,
            &actor.roles,
            Duration::from_secs(3600),
            self.platform.clock.now(),
        )
        .expect("mint")
    }

    /// A dev token valid for two years of the test clock, for scenarios
    /// that move the clock across a whole agreement period.
    pub fn long_token_for(&self, actor: &Actor) -> String {
        let secret = self.dev_secret.as_ref().expect("a dev-mode harness");
        token::mint_dev(
            secret,
            &actor.sub,
            actor.org,
            actor.org_kind,
            actor.region,
            &actor.roles,
            Duration::from_secs(2 * 366 * 24 * 3600),
            self.platform.clock.now(),
        )
        .expect("mint")
    }

    pub fn token(&self, kind: OrgKind) -> String {
        self.token_for(&actor(kind))
    }

    /// A real backend service of the platform, on its own connection so the
    /// test can stop it; returns once it answers its ping.
    pub async fn start_backend<F, Fut>(&self, service: Service, run: F) -> CancellationToken
    where
        F: FnOnce(Platform) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let stop = self.shutdown.child_token();
        let platform = self
            .env
            .platform_with(self.platform.config.as_ref().clone(), stop.clone())
            .await;
        tokio::spawn(run(platform));
        self.wait_for(service, system::PING).await;
        stop
    }

    /// Serves the test operations on the `orders` subject group: `echo`
    /// answers what it received (and can fail on request), `slow` sleeps.
    pub async fn serve_test_ops(&self) {
        let server = RpcServer::new(
            self.platform.nats.clone(),
            self.platform.ns.clone(),
            Service::Orders,
        )
        .route_raw("echo", |req: RpcRequest| async move {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            if let Some(status) = body.get("fail_with").and_then(Value::as_u64) {
                return Err(
                    RpcError::new(status as u16, "test_failure", "failing as asked")
                        .with_field("fail_with")
                        .with_details(json!({"asked": status})),
                );
            }
            let reply = json!({
                "body": body,
                "actor": req.ctx.actor,
                "correlation": req.ctx.correlation,
                "trace_id": vbp_bus::trace::trace_id_of(&tracing::Span::current()),
            });
            Ok(Bytes::from(serde_json::to_vec(&reply).unwrap()))
        })
        .route_raw("slow", |_req: RpcRequest| async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(Bytes::from_static(b"{}"))
        })
        .route_raw(system::PING, |_req: RpcRequest| async move {
            Ok(Bytes::from_static(b"{}"))
        });
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _ = server.serve(shutdown).await;
        });
        self.wait_for(Service::Orders, system::PING).await;
    }

    async fn wait_for(&self, service: Service, operation: &str) {
        let rpc = self
            .platform
            .rpc_client()
            .with_timeout(Duration::from_millis(500));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match rpc
                .call_raw(
                    service,
                    operation,
                    &Context::new(None),
                    Bytes::from_static(b"{}"),
                )
                .await
            {
                Ok(_) | Err(CallError::Remote(_)) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("{service} never answered {operation}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn put_json(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .put(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn actor(kind: OrgKind) -> Actor {
    Actor {
        sub: format!("{kind}-user"),
        org: OrgId::new(),
        org_kind: kind,
        region: region_of(kind),
        roles: Vec::new(),
    }
}

fn region_of(kind: OrgKind) -> RegionCode {
    let code = match kind {
        OrgKind::Bureau => "210900",
        OrgKind::Operator => "000000",
        _ => "210921",
    };
    code.parse().expect("region")
}

/// The body of a problem answer, after checking it is one.
pub async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(
        response.status().as_u16(),
        status,
        "status of {}",
        response.url()
    );
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem JSON");
    assert_eq!(body["status"], status);
    assert!(body["code"].is_string(), "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    body
}

pub async fn json_ok(response: reqwest::Response) -> Value {
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// An RS256 token signed with a fixture key.
pub fn rs256(key_file: &str, kid: Option<&str>, claims: &Claims) -> String {
    let pem = std::fs::read(fixture(key_file)).expect("fixture key");
    let key = EncodingKey::from_rsa_pem(&pem).expect("RSA key");
    token::sign(claims, Algorithm::RS256, &key, kid).expect("sign")
}

/// A user of the organisation `org`.
pub fn who(org: &str, kind: OrgKind, region: &str) -> Actor {
    Actor {
        sub: format!("user:{org}"),
        org: org.parse().expect("id"),
        org_kind: kind,
        region: region.parse().expect("region"),
        roles: Vec::new(),
    }
}

/// Polls `f` until it yields a value: what other services learn from
/// events arrives a moment later.
pub async fn until<F: AsyncFn() -> Option<Value>>(what: &str, f: F) -> Value {
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
