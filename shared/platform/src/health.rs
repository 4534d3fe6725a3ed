//! `/healthz` (the process is up), `/readyz` (its dependencies answer) and
//! `/metrics` (Prometheus text) for every process.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus::Encoder;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[async_trait]
pub trait ReadyCheck: Send + Sync {
    fn name(&self) -> String;
    async fn check(&self) -> Result<(), String>;
}

#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<Vec<Arc<dyn ReadyCheck>>>>,
}

impl Readiness {
    pub fn add(&self, check: Arc<dyn ReadyCheck>) {
        self.checks.lock().expect("readiness lock").push(check);
    }

    /// Each check's name and its failure, if any.
    pub async fn evaluate(&self) -> Vec<(String, Result<(), String>)> {
        let checks: Vec<_> = self.checks.lock().expect("readiness lock").clone();
        futures::future::join_all(checks.iter().map(|c| async move {
            let outcome =
                match tokio::time::timeout(std::time::Duration::from_secs(2), c.check()).await {
                    Ok(r) => r,
                    Err(_) => Err("no answer within 2s".to_owned()),
                };
            (c.name(), outcome)
        }))
        .await
    }
}

pub struct PgCheck {
    pub name: String,
    pub pool: sqlx::PgPool,
}

#[async_trait]
impl ReadyCheck for PgCheck {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn check(&self) -> Result<(), String> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

pub struct NatsCheck(pub async_nats::Client);

#[async_trait]
impl ReadyCheck for NatsCheck {
    fn name(&self) -> String {
        "nats".into()
    }

    async fn check(&self) -> Result<(), String> {
        match self.0.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            other => Err(format!("{other:?}")),
        }
    }
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    let results = readiness.evaluate().await;
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let checks: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(name, r)| (name, json!(r.err().unwrap_or_else(|| "ok".into()))))
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": if ready { "ready" } else { "not ready" }, "checks": checks })),
    )
}

/// The Prometheus text of the default registry.
pub fn metrics_text() -> String {
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    let _ = encoder.encode(&prometheus::gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        metrics_text(),
    )
}

pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(readiness)
}

pub async fn serve(addr: &str, router: Router, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding health/metrics on {addr}: {e}"))?;
    tracing::info!(addr, "health and metrics listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
