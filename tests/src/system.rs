//! The whole platform in one process: every backend service and the gateway
//! on the test's own database and NATS namespace (from `deploy/local/test`),
//! the Liaoning demo loaded through the services' own operations, and an
//! HTTP client holding a dev token for each organisation of the cast.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use vbp_bus::{CallError, Context, RpcClient};
use vbp_contracts::{Service, system};
use vbp_gateway::{Gateway, GatewayConfig, RouteTable, token};
use vbp_kernel::Actor;
use vbp_platform::Platform;
use vbp_platform::testkit::TestEnv;

use crate::cast::{CAST, CastOrg};
use crate::seed;

/// How long (test clock) an integrator message waits for its predecessor.
pub const PENDING_TIMEOUT_SECS: u64 = 5;

/// What the gateway answered, read once.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    /// The body as JSON; `Null` when it is not JSON.
    pub json: Value,
}

impl Answer {
    pub fn is_problem(&self) -> bool {
        self.content_type
            .starts_with(vbp_gateway::problem::CONTENT_TYPE)
    }

    pub fn code(&self) -> Option<&str> {
        self.json.get("code").and_then(Value::as_str)
    }

    pub fn field(&self) -> Option<&str> {
        self.json.get("field").and_then(Value::as_str)
    }

    /// The gateway's own policy refusal (as opposed to a service's 403 about
    /// one row): its detail names the route's policy.
    pub fn is_policy_refusal(&self) -> bool {
        self.status == 403
            && self.code() == Some(vbp_gateway::problem::codes::FORBIDDEN)
            && self
                .json
                .get("detail")
                .and_then(Value::as_str)
                .is_some_and(|d| d.contains("may not call this route"))
    }
}

/// A request body as sent: JSON, or raw bytes with their content type.
#[derive(Debug, Clone)]
pub enum Body {
    None,
    Json(Value),
    Raw {
        content_type: &'static str,
        bytes: Bytes,
    },
    /// A JSON body declared (`Content-Length`) this long, of which only the
    /// start is sent before the answer is read: a server may refuse by the
    /// declared size alone, and a client that then keeps writing megabytes
    /// only meets a closed connection.
    Declared(usize),
}

pub struct System {
    pub env: TestEnv,
    pub platform: Platform,
    pub base: String,
    pub http: reqwest::Client,
    unpooled: reqwest::Client,
    pub rpc: RpcClient,
    pub config: GatewayConfig,
    pub shutdown: CancellationToken,
    tokens: HashMap<&'static str, String>,
}

impl System {
    /// Every service and the gateway, answering; no data yet.
    pub async fn start() -> Self {
        let env = TestEnv::new().await;
        let shutdown = CancellationToken::new();
        // Integrator messages waiting for a predecessor that never comes are
        // rejected after this long on the test clock (a day by default).
        let config = env
            .config()
            .with_figment_overrides(json!({
                "orders": { "ingest_pending_timeout_secs": PENDING_TIMEOUT_SECS }
            }))
            .expect("config");
        let platform = env.platform_with(config, shutdown.clone()).await;
        spawn(Service::Agreements, vbp_agreements::run(platform.clone()));
        spawn(
            Service::Distribution,
            vbp_distribution::run(platform.clone()),
        );
        spawn(Service::Orders, vbp_orders::run(platform.clone()));
        spawn(Service::Prepayment, vbp_prepayment::run(platform.clone()));
        spawn(Service::Issues, vbp_issues::run(platform.clone()));
        spawn(Service::Supervision, vbp_supervision::run(platform.clone()));
        let config = GatewayConfig {
            rpc_timeout_ms: Some(8_000),
            rate_limit_per_sec: 0.0,
            ..GatewayConfig::default()
        };
        let gateway = Gateway::new(platform.clone(), config.clone(), RouteTable::standard())
            .expect("gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(vbp_gateway::serve(gateway, listener, shutdown.clone()));
        let secret = token::dev_secret(&platform.config).expect("dev secret");
        let tokens = CAST
            .iter()
            .map(|org| {
                let actor = org.actor();
                let token = token::mint_dev(
                    &secret,
                    &actor.sub,
                    actor.org,
                    actor.org_kind,
                    actor.region,
                    &actor.roles,
                    Duration::from_secs(2 * 366 * 24 * 3600),
                    platform.clock.now(),
                )
                .expect("mint");
                (org.name, token)
            })
            .collect();
        let rpc = platform.rpc_client().with_timeout(Duration::from_secs(8));
        let system = Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("client"),
            unpooled: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
            env,
            platform,
            base,
            rpc,
            config,
            shutdown,
            tokens,
        };
        for service in Service::BACKENDS {
            system.wait_for(service).await;
        }
        system
            .platform
            .ensure_ingest_stream()
            .await
            .expect("ingest stream");
        system
    }

    /// [`System::start`] with the Liaoning demo loaded and a few orders,
    /// issues and integrator messages on top, all settled.
    pub async fn with_demo() -> Self {
        let system = Self::start().await;
        seed::load(&system).await;
        system.settle().await;
        system
    }

    async fn wait_for(&self, service: Service) {
        let rpc = self.rpc.clone().with_timeout(Duration::from_millis(500));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match rpc
                .call_raw(
                    service,
                    system::PING,
                    &Context::new(None),
                    Bytes::from_static(b"{}"),
                )
                .await
            {
                Ok(_) | Err(CallError::Remote(_)) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("{service} never answered its ping: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub fn token(&self, org: &CastOrg) -> &str {
        &self.tokens[org.name]
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One request as `org` (anonymous when `None`).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        org: Option<&CastOrg>,
        body: Body,
    ) -> Answer {
        if let Body::Declared(length) = body {
            return self.send_declared(&method, path, org, length).await;
        }
        // Raw bodies are the hostile ones a server may answer before reading
        // them and then close: they get a connection of their own, so a
        // pooled connection is never one the server is closing.
        let client = match body {
            Body::Raw { .. } => &self.unpooled,
            _ => &self.http,
        };
        let mut request = client.request(method.clone(), self.url(path));
        if let Some(org) = org {
            request = request.bearer_auth(self.token(org));
        }
        request = match body {
            Body::None | Body::Declared(_) => request,
            Body::Json(value) => request.json(&value),
            Body::Raw {
                content_type,
                bytes,
            } => request.header("content-type", content_type).body(bytes),
        };
        let first = request.send().await;
        // A reads-only request that met a kept-alive connection closing under
        // it never reached the gateway; like any HTTP client, send it again.
        let first = match first {
            Err(e) if method == Method::GET && e.is_request() => {
                let mut retry = client.request(method.clone(), self.url(path));
                if let Some(org) = org {
                    retry = retry.bearer_auth(self.token(org));
                }
                retry.send().await
            }
            other => other,
        };
        let response = match first {
            Ok(r) => r,
            // No HTTP answer at all (the connection was dropped): status 0,
            // so the caller can judge it like any other answer.
            Err(e) => {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                return Answer {
                    status: 0,
                    content_type: String::new(),
                    text,
                    json: Value::Null,
                };
            }
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            text,
            json,
        }
    }

    /// [`Body::Declared`] over a plain connection.
    async fn send_declared(
        &self,
        method: &Method,
        path: &str,
        org: Option<&CastOrg>,
        length: usize,
    ) -> Answer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(host)
            .await
            .expect("connect to the gateway");
        let auth = org
            .map(|o| format!("Authorization: Bearer {}\r\n", self.token(o)))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {length}\r\nConnection: close\r\n\r\n{{\"pad\":\""
        );
        stream.write_all(head.as_bytes()).await.expect("write head");
        let mut raw = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n").filter(|_| read.is_ok()) else {
            return Answer {
                status: 0,
                content_type: String::new(),
                text: format!("no answer to a body declared {length} bytes long: {text}"),
                json: Value::Null,
            };
        };
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let content_type = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default();
        Answer {
            status,
            content_type,
            json: serde_json::from_str(body).unwrap_or(Value::Null),
            text: body.to_owned(),
        }
    }

    pub async fn get(&self, path: &str, org: &CastOrg) -> Answer {
        self.send(Method::GET, path, Some(org), Body::None).await
    }

    pub async fn post(&self, path: &str, org: &CastOrg, body: Value) -> Answer {
        self.send(Method::POST, path, Some(org), Body::Json(body))
            .await
    }

    /// The OpenAPI document the gateway serves.
    pub async fn openapi(&self) -> Value {
        let answer = self
            .send(Method::GET, "/api/openapi.json", None, Body::None)
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json
    }

    /// Calls a service operation directly as `actor`.
    pub async fn call(
        &self,
        service: Service,
        operation: &str,
        actor: &Actor,
        body: Value,
    ) -> anyhow::Result<Value> {
        let ctx = Context::new(Some(actor.clone()));
        let reply = self
            .rpc
            .call_raw(service, operation, &ctx, serde_json::to_vec(&body)?.into())
            .await?;
        Ok(serde_json::from_slice(&reply)?)
    }

    /// Publishes one integrator message on `{ns}.ingest.{integrator}.{event}`
    /// as an integrator speaking NATS would; with `msg_id`, JetStream
    /// de-duplicates on it.
    pub async fn publish_ingest(
        &self,
        integrator: &str,
        event: &str,
        msg_id: Option<&str>,
        payload: Vec<u8>,
    ) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(vbp_contracts::headers::TYPE, event);
        if let Some(id) = msg_id {
            headers.insert(vbp_contracts::headers::MSG_ID, id);
        }
        self.platform
            .js
            .publish_with_headers(
                self.platform.ns.ingest(integrator, event),
                headers,
                payload.into(),
            )
            .await
            .expect("ingest publish sent")
            .await
            .expect("ingest publish acknowledged");
    }

    /// A superuser pool on the test database (no search path: queries name
    /// their schema).
    pub async fn admin_pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.env.database_url)
            .await
            .expect("admin pool")
    }

    /// Waits until every outbox row is published and the business tables
    /// stop changing, so a fingerprint taken next is not racing a projection.
    pub async fn settle(&self) {
        let pool = self.admin_pool().await;
        let deadline = Instant::now() + Duration::from_secs(40);
        let mut last = crate::fingerprint::Fingerprint::take(&pool).await;
        let mut stable_since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = crate::fingerprint::Fingerprint::take(&pool).await;
            let unsent = crate::fingerprint::unsent_outbox(&pool).await;
            if now != last || unsent > 0 {
                last = now;
                stable_since = Instant::now();
            } else if stable_since.elapsed() >= Duration::from_millis(1_000) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the platform did not settle within 40 s ({unsent} outbox rows unsent)"
            );
        }
    }
}

fn spawn(
    service: Service,
    run: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
) {
    tokio::spawn(async move {
        if let Err(e) = run.await {
            tracing::error!(%service, error = %format!("{e:#}"), "service stopped");
        }
    });
}

impl Drop for System {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
