//! The edge (DESIGN §6): the only door for people and for integrators that do
//! not speak NATS. It authenticates bearer tokens, checks each route's policy,
//! limits what one caller may cost, turns HTTP into NATS RPC and back, takes
//! integrator batches onto the ingest stream, merges flow timelines, and
//! documents all of it as OpenAPI 3.1.
//!
//! Module map:
//! - [`config`]: the `[gateway]` section.
//! - [`token`]: dev token minting and JWT verification.
//! - [`policy`]: who may call a route.
//! - [`routes`]: the declarative route table (Steps 3–7 extend it).
//! - [`forward`]: the generic HTTP → RPC forwarder.
//! - [`input`]: body limits, JSON sanity, the path/query/body merge rule.
//! - [`ingest`], [`flows`]: the two built-in endpoints beyond forwarding.
//! - [`limits`]: the per-organisation rate limiter.
//! - [`request`]: per-request middleware (ids, trace, timeout, concurrency,
//!   metrics, problem rendering).
//! - [`problem`]: RFC 9457 problem details.
//! - [`openapi`]: the document, with schemars schemas bridged into utoipa.
//! - [`health`], [`metrics`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`console`]: the web console at `/`; [`export`]: a caller's table as `.xlsx`.

pub mod config;
pub mod console;
pub mod evidence;
pub mod export;
pub mod flows;
pub mod forward;
pub mod health;
pub mod ingest;
pub mod input;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod policy;
pub mod problem;
pub mod reconcile;
pub mod request;
pub mod routes;
mod schema_check;
pub mod token;

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get};
use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use vbp_bus::RpcClient;
use vbp_kernel::Actor;
use vbp_platform::Platform;

pub use config::GatewayConfig;
pub use policy::Policy;
pub use problem::Problem;
pub use routes::{Route, RouteTable, Target};

use crate::input::{JsonLimits, ParamKinds};
use crate::limits::RateLimiter;
use crate::problem::codes;
use crate::token::Verifier;

/// A route with what the forwarder derived from its declaration.
pub(crate) struct CompiledRoute {
    pub route: Route,
    /// How query and path parameters are typed, from the request schema.
    pub params: ParamKinds,
    /// The request type's whole schema, built once.
    pub request_schema: Option<serde_json::Value>,
}

/// Everything a request needs; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

/// The shared state behind [`Gateway`].
pub struct Inner {
    pub platform: Platform,
    pub config: GatewayConfig,
    pub rpc: RpcClient,
    pub(crate) verifier: Verifier,
    pub(crate) limiter: RateLimiter,
    pub(crate) concurrency: Arc<Semaphore>,
    pub(crate) routes: Vec<Arc<CompiledRoute>>,
    pub(crate) openapi: Bytes,
    pub(crate) ingest_stream_ready: AtomicBool,
}

impl Deref for Gateway {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl Gateway {
    /// A gateway serving `table`. Reads key files and the dev secret; fails
    /// on a configuration or table it must not serve.
    pub fn new(
        platform: Platform,
        config: GatewayConfig,
        table: RouteTable,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        table.validate()?;
        metrics::register();
        let verifier =
            Verifier::from_config(&platform.config, &config).context("gateway authentication")?;
        let built = openapi::build(&table).context("building the OpenAPI document")?;
        let routes = table
            .routes()
            .iter()
            .cloned()
            .zip(built.params)
            .map(|(route, params)| {
                let request_schema = route.request.as_ref().map(|r| (r.root)());
                Arc::new(CompiledRoute {
                    route,
                    params,
                    request_schema,
                })
            })
            .collect();
        let rpc = platform
            .rpc_client()
            .with_timeout(config.rpc_timeout(platform.config.rpc_timeout_ms));
        Ok(Self {
            inner: Arc::new(Inner {
                limiter: RateLimiter::new(config.rate_limit_per_sec, config.rate_limit_burst),
                concurrency: Arc::new(Semaphore::new(config.concurrency_limit)),
                openapi: built.json,
                ingest_stream_ready: AtomicBool::new(false),
                verifier,
                rpc,
                routes,
                config,
                platform,
            }),
        })
    }

    /// The gateway of `platform`'s configuration with the standard routes.
    pub fn from_platform(platform: Platform) -> anyhow::Result<Self> {
        let config: GatewayConfig = platform.config.section("gateway")?;
        Self::new(platform, config, RouteTable::standard())
    }

    pub(crate) fn json_limits(&self) -> JsonLimits {
        JsonLimits {
            max_depth: self.config.json_max_depth,
            max_items: self.config.json_max_items,
            max_string_bytes: self.config.json_max_string_bytes,
        }
    }

    pub(crate) fn fanout_timeout(&self) -> Duration {
        Duration::from_millis(self.config.fanout_timeout_ms.max(1))
    }

    /// Authentication, then the caller's rate limit, then the route's policy:
    /// a refused caller still spends from its bucket, so probing routes it
    /// may not call is limited too.
    pub(crate) fn admit(&self, headers: &HeaderMap, policy: &Policy) -> Result<Actor, Problem> {
        let token = bearer(headers)?;
        let actor = self.verifier.verify(token, self.platform.clock.now())?;
        tracing::Span::current().record("org", tracing::field::display(actor.org));
        if let Err(wait) = self.limiter.check(actor.org, Instant::now()) {
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                codes::RATE_LIMITED,
                format!(
                    "organisation {} exceeds {} requests per second",
                    actor.org, self.config.rate_limit_per_sec
                ),
            )
            .retry_after(wait.as_secs_f64().ceil() as u64));
        }
        policy.check(&actor)?;
        Ok(actor)
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, Problem> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(token::TokenError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(token::TokenError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(token::TokenError::Missing.into());
    }
    Ok(token.trim())
}

/// The HTTP application: the route table under `/api/v1`, the document and
/// its viewer, and health, all behind the request middleware.
pub fn app(gateway: Gateway) -> Router {
    let mut by_path: BTreeMap<String, MethodRouter<Gateway>> = BTreeMap::new();
    for compiled in &gateway.routes {
        let filter = method_filter(&compiled.route.method);
        let route = compiled.clone();
        let handler = move |State(gateway): State<Gateway>, request: Request| {
            dispatch(gateway, route.clone(), request)
        };
        let entry = by_path
            .remove(&compiled.route.full_path())
            .unwrap_or_default();
        by_path.insert(compiled.route.full_path(), entry.on(filter, handler));
    }
    let mut router = Router::new();
    for (path, methods) in by_path {
        router = router.route(&path, methods);
    }
    router = router
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route(openapi::DOCUMENT_PATH, get(openapi::document))
        .route(openapi::VIEWER_PATH, get(openapi::viewer))
        .merge(console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside `observe`, so even a bug answers problem+json with the
        // request's ids and is counted, instead of dropping the connection.
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("request handler panicked");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    codes::INTERNAL,
                    "the gateway failed on this request; it has been logged",
                )
                .into_response()
            },
        ))
        .layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            request::observe,
        ));
    if let Some(cors) = cors_layer(&gateway.config) {
        router = router.layer(cors);
    }
    router.with_state(gateway)
}

fn method_filter(method: &Method) -> MethodFilter {
    match *method {
        Method::GET => MethodFilter::GET,
        Method::POST => MethodFilter::POST,
        Method::PUT => MethodFilter::PUT,
        Method::PATCH => MethodFilter::PATCH,
        Method::DELETE => MethodFilter::DELETE,
        Method::HEAD => MethodFilter::HEAD,
        Method::OPTIONS => MethodFilter::OPTIONS,
        _ => MethodFilter::TRACE,
    }
}

async fn dispatch(gateway: Gateway, compiled: Arc<CompiledRoute>, request: Request) -> Response {
    let result = match &compiled.route.target {
        Target::Rpc { .. } if evidence::streams(&compiled.route) => {
            evidence::handle(&gateway, &compiled, request).await
        }
        Target::Rpc { .. } => forward::forward(&gateway, &compiled, request).await,
        Target::Ingest => ingest::handle(&gateway, &compiled, request).await,
        Target::Flow => flows::handle(&gateway, &compiled, request).await,
        Target::Reconcile => reconcile::handle(&gateway, &compiled, request).await,
        Target::Export => export::handle(&gateway, &compiled, request).await,
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn not_found(request: Request) -> Problem {
    Problem::not_found(format!(
        "no route {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

fn cors_layer(config: &GatewayConfig) -> Option<CorsLayer> {
    if config.cors_origins.is_empty() {
        return None;
    }
    let origin = if config.cors_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                request::X_REQUEST_ID,
                request::X_CORRELATION_ID,
                request::TRACEPARENT,
            ])
            .expose_headers([
                request::X_REQUEST_ID,
                request::X_CORRELATION_ID,
                request::TRACEPARENT,
                header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Serves `app` on `listener` until `shutdown`, then lets in-flight requests
/// finish.
pub async fn serve(
    gateway: Gateway,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "gateway listening");
    // Small request/response exchanges: Nagle plus delayed ACKs would add
    // tens of milliseconds to keep-alive connections.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app(gateway))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("gateway HTTP server")
}

/// Runs the gateway on `platform.config.http_addr` until the platform shuts
/// down.
pub async fn run(platform: Platform) -> anyhow::Result<()> {
    let gateway = Gateway::from_platform(platform.clone())?;
    // The ingest stream is ensured in the background (retrying while NATS is
    // down) so health and docs are served meanwhile; the ingest handler
    // ensures it itself if a request comes first.
    let ensure = gateway.clone();
    tokio::spawn(async move {
        if ensure.platform.ensure_ingest_stream().await.is_ok() {
            ensure
                .ingest_stream_ready
                .store(true, std::sync::atomic::Ordering::Release);
        }
    });
    let addr = platform.config.http_addr.clone();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding the gateway on {addr}"))?;
    serve(gateway, listener, platform.shutdown.clone()).await
}
