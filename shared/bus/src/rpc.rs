//! Request/reply over the NATS micro service API: one endpoint per
//! operation on `{ns}.rpc.{service}.{op}`, queue group = service, so replicas
//! share the load. Errors travel as a JSON [`RpcErrorBody`] with the micro
//! API's error headers set, so generic NATS tooling sees them as errors too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::service::ServiceExt;
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vbp_contracts::{Namespace, RpcErrorBody, RpcOp, Service, headers};

use crate::codec;
use crate::context::Context;
use crate::error::BusError;
use crate::metrics;

impl From<vbp_contracts::page::PageError> for RpcError {
    fn from(e: vbp_contracts::page::PageError) -> Self {
        Self::invalid(e.field, e.message)
    }
}

/// An error a handler answers with. `code` is stable for clients to branch on.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError(pub RpcErrorBody);

impl RpcError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self(RpcErrorBody {
            code: code.to_owned(),
            status,
            message: message.into(),
            field: None,
            details: serde_json::Value::Null,
        })
    }

    /// Input that breaks a rule; names the field and the rule.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(422, "validation_failed", message);
        e.0.field = Some(field.into());
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(409, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.0.details = details;
        self
    }

    pub fn body(&self) -> &RpcErrorBody {
        &self.0
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.0.code, self.0.status, self.0.message)
    }
}

impl std::error::Error for RpcError {}

/// The code of an error from a transaction that met a concurrent one
/// (deadlock or serialization failure): nothing was applied, and the same
/// call may be made again at once.
pub const CONTENTION: &str = "contention";

impl RpcError {
    /// Whether the call failed on contention and may be repeated.
    pub fn is_contention(&self) -> bool {
        self.0.code == CONTENTION
    }
}

impl From<sqlx::Error> for RpcError {
    fn from(e: sqlx::Error) -> Self {
        // 40P01 deadlock_detected, 40001 serialization_failure.
        if let Some(code) = e.as_database_error().and_then(|d| d.code())
            && (code == "40P01" || code == "40001")
        {
            tracing::warn!(error = %e, "transaction met a concurrent one");
            return RpcError::new(
                503,
                CONTENTION,
                "the change met a concurrent change to the same records and was not applied; retry",
            );
        }
        tracing::error!(error = %e, "database error in RPC handler");
        RpcError::new(
            503,
            "storage_unavailable",
            "the service's database did not answer; retry later",
        )
    }
}

impl From<BusError> for RpcError {
    fn from(e: BusError) -> Self {
        tracing::error!(error = %e, "bus error in RPC handler");
        RpcError::new(
            503,
            "bus_unavailable",
            "the service could not reach its storage or broker; retry later",
        )
    }
}

/// A request as a handler sees it.
#[derive(Debug, Clone)]
pub struct RpcRequest {
    pub operation: String,
    pub ctx: Context,
    pub body: Bytes,
}

impl RpcRequest {
    /// The body as `T`, naming the offending field when it does not fit.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, RpcError> {
        decode_body(&self.body)
    }
}

pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, RpcError> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            RpcError::new(
                400,
                "malformed_json",
                format!("body is not valid JSON: {inner}"),
            )
        } else {
            RpcError::invalid(
                if path == "." { String::new() } else { path },
                inner.to_string(),
            )
        }
    })
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Bytes, RpcError>> + Send>>;
type RawHandler = Arc<dyn Fn(RpcRequest) -> BoxFuture + Send + Sync>;

/// Collects operations, then serves them until shutdown.
pub struct RpcServer {
    client: Client,
    ns: Namespace,
    service: Service,
    routes: Vec<(String, RawHandler)>,
    concurrency: usize,
}

impl RpcServer {
    pub fn new(client: Client, ns: Namespace, service: Service) -> Self {
        Self {
            client,
            ns,
            service,
            routes: Vec::new(),
            concurrency: 256,
        }
    }

    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// A typed operation.
    pub fn route<Op, F, Fut>(self, handler: F) -> Self
    where
        Op: RpcOp,
        F: Fn(Context, Op::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Op::Response, RpcError>> + Send + 'static,
    {
        debug_assert_eq!(
            Op::SERVICE,
            self.service,
            "operation {} registered on the wrong service",
            Op::NAME
        );
        let handler = Arc::new(handler);
        self.route_raw(Op::NAME, move |req: RpcRequest| {
            let handler = handler.clone();
            async move {
                let input: Op::Request = req.json()?;
                let output = handler(req.ctx, input).await?;
                encode(&output)
            }
        })
    }

    /// [`RpcServer::route`] for a handler that takes the service's shared
    /// state first, cloned into each call.
    pub fn route_with<Op, S, F, Fut>(self, state: &S, handler: F) -> Self
    where
        Op: RpcOp,
        S: Clone + Send + Sync + 'static,
        F: Fn(S, Context, Op::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Op::Response, RpcError>> + Send + 'static,
    {
        let state = state.clone();
        self.route::<Op, _, _>(move |ctx, req| handler(state.clone(), ctx, req))
    }

    /// An operation on raw bytes.
    pub fn route_raw<F, Fut>(mut self, operation: &str, handler: F) -> Self
    where
        F: Fn(RpcRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, RpcError>> + Send + 'static,
    {
        let handler: RawHandler = Arc::new(move |req| Box::pin(handler(req)));
        self.routes.push((operation.to_owned(), handler));
        self
    }

    pub fn operations(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|(op, _)| op.as_str())
    }

    /// Serves until `shutdown`; then stops taking requests and lets the
    /// in-flight ones answer.
    pub async fn serve(&self, shutdown: CancellationToken) -> Result<(), BusError> {
        let service = self
            .client
            .service_builder()
            .queue_group(self.service.as_str())
            .description(format!("VBP {} service", self.service))
            .start(format!("vbp_{}", self.service), env!("CARGO_PKG_VERSION"))
            .await
            .map_err(BusError::nats)?;
        let group = service.group(self.ns.rpc_group(self.service));
        let limit = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for (operation, handler) in &self.routes {
            let (operation, handler) = (operation.clone(), handler.clone());
            let mut endpoint = group.endpoint(&operation).await.map_err(BusError::nats)?;
            let limit = limit.clone();
            let shutdown = shutdown.clone();
            let svc = self.service;
            tasks.spawn(async move {
                let mut inflight = tokio::task::JoinSet::new();
                loop {
                    let request = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        r = endpoint.next() => match r { Some(r) => r, None => break },
                    };
                    let Ok(permit) = limit.clone().acquire_owned().await else {
                        break;
                    };
                    let handler = handler.clone();
                    let operation = operation.clone();
                    inflight.spawn(async move {
                        handle(svc, &operation, request, handler).await;
                        drop(permit);
                    });
                    while inflight.try_join_next().is_some() {}
                }
                while inflight.join_next().await.is_some() {}
            });
        }
        while tasks.join_next().await.is_some() {}
        let _ = service.stop().await;
        Ok(())
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Bytes, RpcError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| RpcError::internal(format!("encoding the response: {e}")))
}

async fn handle(
    service: Service,
    operation: &str,
    request: async_nats::service::Request,
    handler: RawHandler,
) {
    let started = Instant::now();
    let hdrs = request.message.headers.clone().unwrap_or_default();
    let span = tracing::info_span!(
        "rpc",
        service = %service,
        operation = %operation,
        correlation = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        otel.kind = "server",
    );
    crate::trace::continue_trace(
        &span,
        hdrs.get(headers::TRACEPARENT).map(|v| v.as_str()),
        hdrs.get(headers::TRACESTATE).map(|v| v.as_str()),
    );
    let result = async {
        let ctx = context_of(&hdrs)?;
        tracing::Span::current().record("correlation", ctx.correlation.to_string().as_str());
        handler(RpcRequest {
            operation: operation.to_owned(),
            ctx,
            body: request.message.payload.clone(),
        })
        .await
    }
    .instrument(span.clone())
    .await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) if e.0.status >= 500 => "error",
        Err(_) => "rejected",
    };
    metrics::RPC_SECONDS
        .with_label_values(&[service.as_str(), operation, outcome])
        .observe(started.elapsed().as_secs_f64());
    let sent = match result {
        Ok(body) => request.respond(Ok(body)).await,
        Err(err) => {
            let mut reply = HeaderMap::new();
            let message: String = err
                .0
                .message
                .chars()
                .filter(|c| *c != '\r' && *c != '\n')
                .collect();
            reply.insert(headers::SERVICE_ERROR, message.as_str());
            reply.insert(
                headers::SERVICE_ERROR_CODE,
                err.0.status.to_string().as_str(),
            );
            let body = serde_json::to_vec(&err.0).unwrap_or_default();
            request.respond_with_headers(Ok(body.into()), reply).await
        }
    };
    if let Err(e) = sent {
        tracing::debug!(parent: &span, error = %e, "reply not sent");
    }
}

fn context_of(hdrs: &HeaderMap) -> Result<Context, RpcError> {
    let bad = |e: codec::CodecError| RpcError::bad_request(e.to_string());
    let actor = codec::decode_actor(hdrs).map_err(bad)?;
    let correlation = codec::decode_correlation(hdrs).map_err(bad)?;
    let causation = hdrs
        .get(headers::CAUSATION)
        .and_then(|v| v.as_str().parse().ok());
    let mut ctx = match correlation {
        Some(c) => Context::with_correlation(c, actor),
        None => Context::new(actor),
    };
    ctx.causation = causation;
    Ok(ctx)
}

/// Why a call failed, as the caller must tell them apart: the service
/// answered with an error, nobody serves the operation, or it did not answer
/// in time.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Remote(RpcError),
    #[error("no service answers {0}")]
    NoResponders(String),
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
    #[error("transport: {0}")]
    Transport(String),
    #[error("could not decode the reply: {0}")]
    Decode(String),
}

#[derive(Clone, Debug)]
pub struct RpcClient {
    client: Client,
    ns: Namespace,
    timeout: Duration,
}

impl RpcClient {
    pub fn new(client: Client, ns: Namespace, timeout: Duration) -> Self {
        Self {
            client,
            ns,
            timeout,
        }
    }

    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            timeout,
            ..self.clone()
        }
    }

    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    pub async fn call<Op: RpcOp>(
        &self,
        ctx: &Context,
        request: &Op::Request,
    ) -> Result<Op::Response, CallError> {
        let body = serde_json::to_vec(request).map_err(|e| CallError::Decode(e.to_string()))?;
        let reply = self
            .call_raw(Op::SERVICE, Op::NAME, ctx, body.into())
            .await?;
        serde_json::from_slice(&reply).map_err(|e| CallError::Decode(e.to_string()))
    }

    /// Sends `body` to `{ns}.rpc.{service}.{operation}` with the context and
    /// the current span's trace context in the headers.
    pub async fn call_raw(
        &self,
        service: Service,
        operation: &str,
        ctx: &Context,
        body: Bytes,
    ) -> Result<Bytes, CallError> {
        let subject = self.ns.rpc(service, operation);
        let mut hdrs = HeaderMap::new();
        codec::put(
            &mut hdrs,
            headers::CORRELATION,
            &ctx.correlation.to_string(),
        );
        if let Some(causation) = ctx.causation {
            codec::put(&mut hdrs, headers::CAUSATION, &causation.to_string());
        }
        if let Some(actor) = &ctx.actor {
            codec::put_actor(&mut hdrs, actor);
        }
        let (traceparent, tracestate) = crate::trace::current_carrier();
        if let Some(tp) = traceparent {
            codec::put(&mut hdrs, headers::TRACEPARENT, &tp);
        }
        if let Some(ts) = tracestate.filter(|s| !s.is_empty()) {
            codec::put(&mut hdrs, headers::TRACESTATE, &ts);
        }
        let request = async_nats::Request::new()
            .payload(body)
            .headers(hdrs)
            .timeout(Some(self.timeout));
        let reply = match self.client.send_request(subject.clone(), request).await {
            Ok(reply) => reply,
            Err(e) => {
                use async_nats::RequestErrorKind as K;
                return Err(match e.kind() {
                    K::TimedOut => CallError::Timeout(subject, self.timeout),
                    K::NoResponders => CallError::NoResponders(subject),
                    _ => CallError::Transport(e.to_string()),
                });
            }
        };
        let failed = reply
            .headers
            .as_ref()
            .and_then(|h| h.get(headers::SERVICE_ERROR_CODE))
            .map(|v| v.as_str().to_owned());
        match failed {
            None => Ok(reply.payload),
            Some(status) => {
                let body: RpcErrorBody =
                    serde_json::from_slice(&reply.payload).unwrap_or_else(|_| RpcErrorBody {
                        code: "remote_error".into(),
                        status: status.parse().unwrap_or(500),
                        message: reply
                            .headers
                            .as_ref()
                            .and_then(|h| h.get(headers::SERVICE_ERROR))
                            .map(|v| v.as_str().to_owned())
                            .unwrap_or_default(),
                        field: None,
                        details: serde_json::Value::Null,
                    });
                Err(CallError::Remote(RpcError(body)))
            }
        }
    }
}
